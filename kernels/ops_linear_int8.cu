/*
 * ops_linear_int8.cu - weight-only int8 on the GPU: quantizing f32 rows
 * into i8 with one scale each (bit-equal to the CPU's), dequantizing them,
 * and the bf16 copy of an i8 weight that a linear of many rows (prefill)
 * multiplies on tensor cores; a few rows (decode steps, half the bytes of
 * bf16) take ops_gemm.cu's GEMV kernel.  Each kernel has a launcher
 * taking a stream.  The CPU twin is src/runtime/op_int8_cpu.c.
 */
#include "cuda_common.h"

#include <cuda_bf16.h>

#define QUANT_THREADS 256		/* threads per row of a quantize */

/* q[r, :] = v[r, :] / s[r] to nearest even within ±127, s[r] = max |v[r, :]| / 127: a block per row r. */
__global__ static void
quantize_rows_kernel(const float *v, int8_t *q, float *scale, int64_t cols)
{
	__shared__ float scratch[32];
	const float *row = v + (int64_t) blockIdx.x * cols;
	int8_t	   *out = q + (int64_t) blockIdx.x * cols;
	float		amax = 0.0f,
				s;

	for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
		amax = fmaxf(amax, fabsf(row[c]));
	s = groma_block_max(amax, scratch) / 127.0f;
	if (threadIdx.x == 0)
		scale[blockIdx.x] = s;
	for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
		out[c] = (int8_t) fminf(127.0f, fmaxf(-127.0f, s > 0.0f ? rintf(row[c] / s) : 0.0f));
}

/* Queues quantize_rows_kernel on stream: v[rows, cols] into q[rows, cols] and scale[rows], a block per row. */
static groma_status
launch_quantize_rows(const float *v, int8_t *q, float *scale, int64_t rows, int64_t cols, cudaStream_t stream)
{
	quantize_rows_kernel<<<(unsigned) rows, QUANT_THREADS, 0, stream>>>(v, q, scale, cols);
	return groma_cuda_launched("convert (quantize to i8)");
}

/* out[r, c] = q[r, c] · scale[r], as f32 (bf16 when narrow): rows strided over grid rows, columns over the rest. */
__global__ static void
dequantize_kernel(const int8_t *q, const float *scale, int64_t rows, int64_t cols, void *out, bool narrow)
{
	for (int64_t r = blockIdx.y; r < rows; r += gridDim.y)
	{
		float		s = scale[r];

		for (int64_t c = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; c < cols;
			 c += (int64_t) gridDim.x * blockDim.x)
		{
			float		v = (float) q[r * cols + c] * s;

			if (narrow)
				((__nv_bfloat16 *) out)[r * cols + c] = __float2bfloat16_rn(v);
			else
				((float *) out)[r * cols + c] = v;
		}
	}
}

/* Queues dequantize_kernel on stream over q[rows, cols] into out[rows, cols] (bf16 when narrow, else f32). */
static groma_status
launch_dequantize(const int8_t *q, const float *scale, int64_t rows, int64_t cols, void *out, bool narrow,
				  cudaStream_t stream)
{
	dim3		grid((unsigned) (groma_cuda_blocks(cols, 256) < 64 ? groma_cuda_blocks(cols, 256) : 64),
					 (unsigned) (rows < 65535 ? rows : 65535));

	dequantize_kernel<<<grid, 256, 0, stream>>>(q, scale, rows, cols, out, narrow);
	return groma_cuda_launched(narrow ? "linear: i8 weight to bf16" : "convert (dequantize i8)");
}

/* Quantizes f32 into i8 rows or dequantizes i8 into f32 on the GPU; see ops.h (groma_convert). */
extern "C" groma_status
groma_cuda_convert_int8(const groma_tensor *src, groma_tensor *dst)
{
	const groma_tensor *q = src->dtype == GROMA_I8 ? src : dst;
	int64_t		rows = q->ndim > 0 ? q->shape[0] : 1,
				n = groma_tensor_numel(q),
				cols = rows > 0 ? n / rows : 0;

	if (q->scale == NULL)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "convert: the i8 tensor has no row scales");
	if (n == 0)
		return groma_ok();
	if (src->dtype == GROMA_I8)
		return launch_dequantize((const int8_t *) src->data, src->scale, rows, cols, dst->data, false,
								 groma_cuda_stream());
	return launch_quantize_rows((const float *) src->data, (int8_t *) dst->data, dst->scale, rows, cols,
								groma_cuda_stream());
}

/* Fails unless w is a contiguous i8 CUDA matrix with row scales (a weight of linear). */
extern "C" groma_status
groma_cuda_check_int8_weight(const char *op, const groma_tensor *w)
{
	if (w->data == NULL || w->scale == NULL || w->device != GROMA_DEVICE_CUDA || !groma_tensor_is_contiguous(w) ||
		w->ndim != 2)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: an i8 w must be a contiguous CUDA matrix with row scales",
						   op);
	return groma_ok();
}

/* *wide = a bf16 view of w · scale in the context's buffer, for the tensor-core GEMM of many rows. */
extern "C" groma_status
groma_cuda_int8_as_bf16(const groma_tensor *w, groma_tensor *wide)
{
	groma_status st;
	void	   *buf = groma_cuda_buffer_reserve(&groma_cuda_ctx()->widened, (size_t) groma_tensor_numel(w) * 2,
												"linear: bf16 copy of an i8 weight", &st);

	if (buf == NULL)
		return st;
	*wide = *w;
	wide->dtype = GROMA_BF16;
	wide->data = buf;
	wide->scale = NULL;
	return launch_dequantize((const int8_t *) w->data, w->scale, w->shape[0], w->shape[1], buf, true,
							 groma_cuda_stream());
}
