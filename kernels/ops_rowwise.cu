/*
 * ops_rowwise.cu - softmax, LayerNorm and RMSNorm over the last dimension:
 * one thread block per row, block-wide reductions; each kernel has a launcher
 * taking a stream, called by its checked entry point.
 */
#include "cuda_common.h"

extern "C"
{
#include "../src/runtime/ops.h"
}

#define THREADS 256

/*
 * Threads per row's block: THREADS, or 1024 for a few long rows (a decode
 * step's single 4096-wide row: four loads per thread in flight, not sixteen
 * in series).
 */
static unsigned
row_threads(int64_t rows, int64_t d)
{
	return rows < 128 && d >= 2048 ? 1024 : THREADS;
}

/* Checks a row op's x and y and returns the row length and count. */
static groma_status
rows_of(const char *op, const groma_tensor *x, const groma_tensor *y, int64_t *d, int64_t *rows)
{
	GROMA_TRY(groma_cuda_check_f32(op, "x", x));
	GROMA_TRY(groma_cuda_check_f32(op, "y", y));
	if (!groma_tensor_same_shape(x, y) || x->ndim < 1)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: x and y differ in shape", op);
	*d = x->shape[x->ndim - 1];
	*rows = *d > 0 ? groma_tensor_numel(x) / *d : 0;
	if (*rows > 0x7fffffff)
		return groma_error(GROMA_ERR_LIMIT, "%s: too many rows for one launch", op);
	return groma_ok();
}

/* Checks an optional per-feature parameter of d values on the device. */
static groma_status
param_of(const char *op, const groma_tensor *p, int64_t d)
{
	if (p == NULL)
		return groma_ok();
	GROMA_TRY(groma_cuda_check_f32(op, "parameter", p));
	if (groma_tensor_numel(p) != d)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: parameter has the wrong size", op);
	return groma_ok();
}

/* Softmax of one row per block (max-subtracted; an all -inf row becomes zeros). */
__global__ static void
softmax_kernel(const float *x, float *y, int64_t d)
{
	__shared__ float scratch[32];
	const float *in = x + (int64_t) blockIdx.x * d;
	float	   *out = y + (int64_t) blockIdx.x * d;
	float		m = -INFINITY,
				s = 0.0f;

	for (int64_t i = threadIdx.x; i < d; i += blockDim.x)
		m = fmaxf(m, in[i]);
	m = groma_block_max(m, scratch);
	if (m == -INFINITY)
	{
		for (int64_t i = threadIdx.x; i < d; i += blockDim.x)
			out[i] = 0.0f;
		return;
	}
	for (int64_t i = threadIdx.x; i < d; i += blockDim.x)
		s += expf(in[i] - m);
	s = groma_block_sum(s, scratch);
	for (int64_t i = threadIdx.x; i < d; i += blockDim.x)
		out[i] = expf(in[i] - m) / s;
}

/* Queues softmax_kernel on stream over the rows rows of x[rows, d] into y[rows, d]. */
static groma_status
launch_softmax(const float *x, float *y, int64_t rows, int64_t d, cudaStream_t stream)
{
	softmax_kernel<<<(unsigned) rows, row_threads(rows, d), 0, stream>>>(x, y, d);
	return groma_cuda_launched("softmax");
}

/* Softmax over the last dimension; see ops.h. */
extern "C" groma_status
groma_cuda_softmax(const groma_tensor *x, groma_tensor *y)
{
	int64_t		d,
				rows;

	GROMA_TRY(rows_of("softmax", x, y, &d, &rows));
	if (rows == 0)
		return groma_ok();
	return launch_softmax((const float *) x->data, (float *) y->data, rows, d, groma_cuda_stream());
}

/* (x - mean) / sqrt(var + eps) · w + b for one row per block (two passes). */
__global__ static void
layer_norm_kernel(const float *x, const float *w, const float *b, float eps, float *y, int64_t d)
{
	__shared__ float scratch[32];
	const float *in = x + (int64_t) blockIdx.x * d;
	float	   *out = y + (int64_t) blockIdx.x * d;
	float		sum = 0.0f,
				sq = 0.0f,
				mean,
				inv;

	for (int64_t i = threadIdx.x; i < d; i += blockDim.x)
		sum += in[i];
	mean = groma_block_sum(sum, scratch) / (float) d;
	for (int64_t i = threadIdx.x; i < d; i += blockDim.x)
		sq += (in[i] - mean) * (in[i] - mean);
	inv = rsqrtf(groma_block_sum(sq, scratch) / (float) d + eps);
	for (int64_t i = threadIdx.x; i < d; i += blockDim.x)
		out[i] = (in[i] - mean) * inv * (w ? w[i] : 1.0f) + (b ? b[i] : 0.0f);
}

/* Queues layer_norm_kernel on stream over the rows rows of x[rows, d] into y[rows, d]; w and b may be NULL. */
static groma_status
launch_layer_norm(const float *x, const float *w, const float *b, float eps, float *y, int64_t rows, int64_t d,
				  cudaStream_t stream)
{
	layer_norm_kernel<<<(unsigned) rows, row_threads(rows, d), 0, stream>>>(x, w, b, eps, y, d);
	return groma_cuda_launched("layer_norm");
}

/* LayerNorm over the last dimension; see ops.h. */
extern "C" groma_status
groma_cuda_layer_norm(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b, float eps, groma_tensor *y)
{
	int64_t		d,
				rows;

	GROMA_TRY(rows_of("layer_norm", x, y, &d, &rows));
	GROMA_TRY(param_of("layer_norm", w, d));
	GROMA_TRY(param_of("layer_norm", b, d));
	if (rows == 0)
		return groma_ok();
	return launch_layer_norm((const float *) x->data, w ? (const float *) w->data : NULL,
							 b ? (const float *) b->data : NULL, eps, (float *) y->data, rows, d, groma_cuda_stream());
}

/* x / sqrt(mean(x²) + eps) · w for one row per block. */
__global__ static void
rms_norm_kernel(const float *x, const float *w, float eps, float *y, int64_t d)
{
	__shared__ float scratch[32];
	const float *in = x + (int64_t) blockIdx.x * d;
	float	   *out = y + (int64_t) blockIdx.x * d;
	float		sq = 0.0f,
				inv;

	for (int64_t i = threadIdx.x; i < d; i += blockDim.x)
		sq += in[i] * in[i];
	inv = rsqrtf(groma_block_sum(sq, scratch) / (float) d + eps);
	for (int64_t i = threadIdx.x; i < d; i += blockDim.x)
		out[i] = in[i] * inv * (w ? w[i] : 1.0f);
}

/* Queues rms_norm_kernel on stream over the rows rows of x[rows, d] into y[rows, d]; w may be NULL. */
static groma_status
launch_rms_norm(const float *x, const float *w, float eps, float *y, int64_t rows, int64_t d, cudaStream_t stream)
{
	rms_norm_kernel<<<(unsigned) rows, row_threads(rows, d), 0, stream>>>(x, w, eps, y, d);
	return groma_cuda_launched("rms_norm");
}

/* RMSNorm over the last dimension; see ops.h. */
extern "C" groma_status
groma_cuda_rms_norm(const groma_tensor *x, const groma_tensor *w, float eps, groma_tensor *y)
{
	int64_t		d,
				rows;

	GROMA_TRY(rows_of("rms_norm", x, y, &d, &rows));
	GROMA_TRY(param_of("rms_norm", w, d));
	if (rows == 0)
		return groma_ok();
	return launch_rms_norm((const float *) x->data, w ? (const float *) w->data : NULL, eps, (float *) y->data, rows,
						   d, groma_cuda_stream());
}

/* x += delta, then y = x / sqrt(mean(x²) + eps) · w, for one row per block (each thread rereads what it wrote). */
__global__ static void
add_rms_norm_kernel(float *x, const float *delta, const float *w, float eps, float *y, int64_t d)
{
	__shared__ float scratch[32];
	float	   *in = x + (int64_t) blockIdx.x * d;
	const float *dr = delta + (int64_t) blockIdx.x * d;
	float	   *out = y + (int64_t) blockIdx.x * d;
	float		sq = 0.0f,
				inv;

	for (int64_t i = threadIdx.x; i < d; i += blockDim.x)
	{
		float		v = in[i] + dr[i];

		in[i] = v;
		sq += v * v;
	}
	inv = rsqrtf(groma_block_sum(sq, scratch) / (float) d + eps);
	for (int64_t i = threadIdx.x; i < d; i += blockDim.x)
		out[i] = in[i] * inv * (w ? w[i] : 1.0f);
}

/* Queues add_rms_norm_kernel on stream over the rows rows of x[rows, d] and delta[rows, d] into y[rows, d]. */
static groma_status
launch_add_rms_norm(float *x, const float *delta, const float *w, float eps, float *y, int64_t rows, int64_t d,
					cudaStream_t stream)
{
	add_rms_norm_kernel<<<(unsigned) rows, row_threads(rows, d), 0, stream>>>(x, delta, w, eps, y, d);
	return groma_cuda_launched("add_rms_norm");
}

/* Residual add, then RMSNorm of the sum; see ops.h. */
extern "C" groma_status
groma_cuda_add_rms_norm(groma_tensor *x, const groma_tensor *delta, const groma_tensor *w, float eps, groma_tensor *y)
{
	int64_t		d,
				rows;

	GROMA_TRY(rows_of("add_rms_norm", x, y, &d, &rows));
	GROMA_TRY(groma_cuda_check_f32("add_rms_norm", "delta", delta));
	if (!groma_tensor_same_shape(x, delta))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "add_rms_norm: x and delta differ in shape");
	if (x->data == y->data)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "add_rms_norm: y must not be x");
	GROMA_TRY(param_of("add_rms_norm", w, d));
	if (rows == 0)
		return groma_ok();
	return launch_add_rms_norm((float *) x->data, (const float *) delta->data, w ? (const float *) w->data : NULL, eps,
							   (float *) y->data, rows, d, groma_cuda_stream());
}

/* True when (a, ia) is the better pick than (b, ib): a NaN first, then the larger value, then the lower index. */
__device__ static inline bool
argmax_better(float a, int64_t ia, float b, int64_t ib)
{
	if (isnan(a) || isnan(b))
		return isnan(a) && (!isnan(b) || ia < ib);
	return a > b || (a == b && ia < ib);
}

/*
 * The first largest value of row blockIdx.x of a[R, na] followed by
 * b[R, nb] (nb = 0 without b): its index in the concatenated row into
 * idx[row].
 */
__global__ static void
argmax_rows_kernel(const float *a, int64_t na, const float *b, int64_t nb, int32_t *idx)
{
	__shared__ float best_v[32];
	__shared__ int64_t best_i[32];
	const float *ra = a + (int64_t) blockIdx.x * na,
			   *rb = b ? b + (int64_t) blockIdx.x * nb : NULL;
	float		v = ra[0];
	int64_t		i = 0;
	int			lane = threadIdx.x & 31,
				warp = threadIdx.x >> 5;

	for (int64_t k = threadIdx.x; k < na + nb; k += blockDim.x)
	{
		float		x = k < na ? ra[k] : rb[k - na];

		if (argmax_better(x, k, v, i))
		{
			v = x;
			i = k;
		}
	}
	for (int o = 16; o > 0; o >>= 1)
	{
		float		ov = __shfl_xor_sync(0xffffffffu, v, o);
		int64_t		oi = __shfl_xor_sync(0xffffffffu, i, o);

		if (argmax_better(ov, oi, v, i))
		{
			v = ov;
			i = oi;
		}
	}
	if (lane == 0)
	{
		best_v[warp] = v;
		best_i[warp] = i;
	}
	__syncthreads();
	if (threadIdx.x == 0)
	{
		for (int w = 1; w < (int) (blockDim.x >> 5); w++)
			if (argmax_better(best_v[w], best_i[w], v, i))
			{
				v = best_v[w];
				i = best_i[w];
			}
		idx[blockIdx.x] = (int32_t) i;
	}
}

/* Queues argmax_rows_kernel on stream over rows rows of a[rows, na] and b[rows, nb] (NULL if nb = 0) into idx[rows]. */
static groma_status
launch_argmax_rows(const float *a, int64_t na, const float *b, int64_t nb, int32_t *idx, int64_t rows,
				   cudaStream_t stream)
{
	argmax_rows_kernel<<<(unsigned) rows, THREADS, 0, stream>>>(a, na, b, nb, idx);
	return groma_cuda_launched("argmax_rows");
}

/* The greedy pick of each row, reduced on the GPU into idx there; see ops.h. */
extern "C" groma_status
groma_cuda_argmax_rows(const groma_tensor *a, const groma_tensor *b, groma_tensor *idx)
{
	int64_t		rows = a->shape[0];

	GROMA_TRY(groma_argmax_rows_check(a, b, idx));
	if (rows == 0)
		return groma_ok();
	if (rows > 0x7fffffff)
		return groma_error(GROMA_ERR_LIMIT, "argmax_rows: too many rows for one launch");
	return launch_argmax_rows((const float *) a->data, a->shape[1], b ? (const float *) b->data : NULL,
							  b ? b->shape[1] : 0, (int32_t *) idx->data, rows, groma_cuda_stream());
}
