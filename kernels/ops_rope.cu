/*
 * ops_rope.cu - LLaMA rotary position embedding on the GPU (rotate_half
 * layout: dimension i pairs with i + D/2), in place; a block's threads are
 * the D/2 pairs, each frequency computed once for several head rows.
 */
#include "cuda_common.h"

extern "C"
{
#include "../src/runtime/ops.h"
}

/* Head rows (token, head) one block rotates: its threads compute their frequency once for all of them. */
#define ROPE_ROWS_PER_BLOCK 16

/* RoPE's inverse frequencies on the device, uploaded once per (theta, dim); see cuda_common.h. */
const float *
groma_cuda_rope_table(float theta, int64_t dim, groma_status *st)
{
	groma_cuda_context *ctx = groma_cuda_ctx();
	float		host[1024];
	float	   *table;

	*st = groma_ok();
	if (dim < 2 || dim % 2 != 0 || dim / 2 > 1024)
	{
		*st = groma_error(GROMA_ERR_LIMIT, "rope: head dimension %lld (even, at most 2048)", (long long) dim);
		return NULL;
	}
	if (ctx->rope_table.data != NULL && ctx->rope_theta == theta && ctx->rope_dim == dim)
		return (const float *) ctx->rope_table.data;
	if (ctx->capturing)
	{
		*st = groma_error(GROMA_ERR_UNSUPPORTED, "rope: a new frequency table while a graph is recorded");
		return NULL;
	}
	table = (float *) groma_cuda_buffer_reserve(&ctx->rope_table, sizeof(host), "rope table", st);
	if (table == NULL)
		return NULL;
	for (int64_t i = 0; i < dim / 2; i++)
		host[i] = groma_rope_inv_freq(theta, i, dim);
	*st = groma_cuda_status(cudaMemcpyAsync(table, host, (size_t) (dim / 2) * sizeof(float), cudaMemcpyHostToDevice,
											groma_cuda_stream()), "rope table");
	if (st->code == GROMA_OK)
		*st = groma_cuda_status(cudaStreamSynchronize(groma_cuda_stream()), "rope table");
	if (st->code != GROMA_OK)
	{
		ctx->rope_dim = 0;		/* half written: fill it again next time */
		return NULL;
	}
	ctx->rope_theta = theta;
	ctx->rope_dim = dim;
	ctx->generation++;			/* new contents under the same pointer: recordings made with the old ones are stale */
	return table;
}

/*
 * Rotates pair i = threadIdx.x (blockDim.x = D/2) of ROPE_ROWS_PER_BLOCK
 * consecutive head rows of x[rows, D], with inv_freq[D/2] from
 * groma_cuda_rope_table (the CPU op's float32 values).
 */
__global__ static void
rope_kernel(float *x, const float *inv_freq_of, int64_t tokens, int64_t heads, int64_t dim, int64_t start_pos,
			int64_t rows)
{
	int64_t		half = dim / 2,
				i = threadIdx.x,
				first = (int64_t) blockIdx.x * ROPE_ROWS_PER_BLOCK;
	float		inv_freq = inv_freq_of[i];

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

/* Queues rope_kernel on stream over the rows head rows of x[rows, D] (T tokens of H heads each). */
static groma_status
launch_rope(float *x, const float *inv_freq, int64_t tokens, int64_t heads, int64_t dim, int64_t start_pos,
			int64_t rows, cudaStream_t stream)
{
	rope_kernel<<<(unsigned) ((rows + ROPE_ROWS_PER_BLOCK - 1) / ROPE_ROWS_PER_BLOCK), (unsigned) (dim / 2), 0,
		stream>>>(x, inv_freq, tokens, heads, dim, start_pos, rows);
	return groma_cuda_launched("rope");
}

/* Rotates x[B, T, H, D] in place; positions must be NULL (start_pos + t) on the GPU. */
extern "C" groma_status
groma_cuda_rope(groma_tensor *x, const int64_t *positions, int64_t start_pos, float theta)
{
	int64_t		rows;
	const float *inv_freq;
	groma_status st;

	GROMA_TRY(groma_cuda_check_f32("rope", "x", x));
	if (x->ndim != 4 || x->shape[3] % 2 != 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "rope: x must be [B, T, H, D] with even D");
	if (positions != NULL)
		return groma_error(GROMA_ERR_UNSUPPORTED, "rope: explicit positions are not supported on the GPU");
	if (groma_tensor_numel(x) == 0)
		return groma_ok();
	rows = groma_tensor_numel(x) / x->shape[3];
	inv_freq = groma_cuda_rope_table(theta, x->shape[3], &st);
	if (inv_freq == NULL)
		return st;
	return launch_rope((float *) x->data, inv_freq, x->shape[1], x->shape[2], x->shape[3], start_pos, rows,
					   groma_cuda_stream());
}
