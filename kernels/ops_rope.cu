/*
 * ops_rope.cu - LLaMA rotary position embedding on the GPU (rotate_half
 * layout: dimension i pairs with i + D/2), in place.
 */
#include "cuda_common.h"

/* Rotates one (i, i + D/2) pair of one head of one token. */
__global__ static void
rope_kernel(float *x, int64_t tokens, int64_t heads, int64_t dim, int64_t start_pos, float theta, int64_t pairs)
{
	int64_t		p = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;
	int64_t		half = dim / 2;
	int64_t		i,
				row,
				t;
	float		inv_freq,
				angle,
				c,
				s,
				x1,
				x2;
	float	   *r;

	if (p >= pairs)
		return;
	i = p % half;
	row = p / half;				/* (b · T + t) · H + h */
	t = (row / heads) % tokens;
	/* the same float32 values the CPU op computes */
	inv_freq = (float) (1.0 / pow((double) theta, (double) (2 * i) / (double) dim));
	angle = (float) (start_pos + t) * inv_freq;
	c = cosf(angle);
	s = sinf(angle);
	r = x + row * dim;
	x1 = r[i];
	x2 = r[i + half];
	r[i] = x1 * c - x2 * s;
	r[i + half] = x2 * c + x1 * s;
}

/* Rotates x[B, T, H, D] in place; positions must be NULL (start_pos + t) on the GPU. */
extern "C" groma_status
groma_cuda_rope(groma_tensor *x, const int64_t *positions, int64_t start_pos, float theta)
{
	int64_t		pairs;

	GROMA_TRY(groma_cuda_check_f32("rope", "x", x));
	if (x->ndim != 4 || x->shape[3] % 2 != 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "rope: x must be [B, T, H, D] with even D");
	if (positions != NULL)
		return groma_error(GROMA_ERR_UNSUPPORTED, "rope: explicit positions are not supported on the GPU");
	pairs = groma_tensor_numel(x) / 2;
	if (pairs == 0)
		return groma_ok();
	rope_kernel<<<groma_cuda_blocks(pairs, 256), 256, 0, groma_cuda_stream()>>>(
		(float *) x->data, x->shape[1], x->shape[2], x->shape[3], start_pos, theta, pairs);
	return groma_cuda_launched("rope");
}
