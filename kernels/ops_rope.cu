/*
 * ops_rope.cu - LLaMA rotary position embedding on the GPU (rotate_half
 * layout: dimension i pairs with i + D/2), in place; a block's threads are
 * the D/2 pairs, each frequency computed once for several head rows.
 */
#include "cuda_common.h"

/* Head rows (token, head) one block rotates: its threads compute their frequency once for all of them. */
#define ROPE_ROWS_PER_BLOCK 16

/*
 * Rotates pair i = threadIdx.x (blockDim.x = D/2) of ROPE_ROWS_PER_BLOCK
 * consecutive head rows of x[rows, D]: each thread computes its inverse
 * frequency once (in double, as the CPU op) instead of once per element.
 */
__global__ static void
rope_kernel(float *x, int64_t tokens, int64_t heads, int64_t dim, int64_t start_pos, float theta, int64_t rows)
{
	int64_t		half = dim / 2,
				i = threadIdx.x,
				first = (int64_t) blockIdx.x * ROPE_ROWS_PER_BLOCK;
	/* the same float32 values the CPU op computes */
	float		inv_freq = (float) (1.0 / pow((double) theta, (double) (2 * i) / (double) dim));

	for (int64_t row = first; row < first + ROPE_ROWS_PER_BLOCK && row < rows; row++)
	{
		int64_t		t = (row / heads) % tokens;	/* row = (b · T + t) · H + h */
		float		angle = (float) (start_pos + t) * inv_freq,
					c = cosf(angle),
					s = sinf(angle),
					x1,
					x2;
		float	   *r = x + row * dim;

		x1 = r[i];
		x2 = r[i + half];
		r[i] = x1 * c - x2 * s;
		r[i + half] = x2 * c + x1 * s;
	}
}

/* Rotates x[B, T, H, D] in place; positions must be NULL (start_pos + t) on the GPU. */
extern "C" groma_status
groma_cuda_rope(groma_tensor *x, const int64_t *positions, int64_t start_pos, float theta)
{
	int64_t		rows;

	GROMA_TRY(groma_cuda_check_f32("rope", "x", x));
	if (x->ndim != 4 || x->shape[3] % 2 != 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "rope: x must be [B, T, H, D] with even D");
	if (positions != NULL)
		return groma_error(GROMA_ERR_UNSUPPORTED, "rope: explicit positions are not supported on the GPU");
	if (groma_tensor_numel(x) == 0)
		return groma_ok();
	rows = groma_tensor_numel(x) / x->shape[3];
	if (x->shape[3] / 2 > 1024)
		return groma_error(GROMA_ERR_LIMIT, "rope: head dimension %lld is over 2048", (long long) x->shape[3]);
	rope_kernel<<<(unsigned) ((rows + ROPE_ROWS_PER_BLOCK - 1) / ROPE_ROWS_PER_BLOCK), (unsigned) (x->shape[3] / 2), 0,
		groma_cuda_stream()>>>((float *) x->data, x->shape[1], x->shape[2], x->shape[3], start_pos, theta, rows);
	return groma_cuda_launched("rope");
}
