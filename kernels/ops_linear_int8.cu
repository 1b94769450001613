/*
 * ops_linear_int8.cu - weight-only int8 on the GPU: quantizing f32 rows
 * into i8 with one scale each (bit-equal to the CPU's), dequantizing them,
 * and the two halves of a linear with i8 weights: a bandwidth-bound kernel
 * for a few input rows (decode steps read half the bytes of bf16), and a
 * bf16 copy of the weight for cuBLAS's tensor cores when there are more
 * rows (prefill).  The CPU twin is src/runtime/op_int8_cpu.c.
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

/* out[r, c] = q[r, c] · scale[r], as f32 (bf16 when narrow is set): rows strided over grid rows, columns over the rest. */
__global__ static void
dequantize_kernel(const int8_t *q, const float *scale, int64_t rows, int64_t cols, void *out, bool narrow)
{
	for (int64_t r = blockIdx.y; r < rows; r += gridDim.y)
	{
		float		s = scale[r];

		for (int64_t c = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += (int64_t) gridDim.x * blockDim.x)
		{
			float		v = (float) q[r * cols + c] * s;

			if (narrow)
				((__nv_bfloat16 *) out)[r * cols + c] = __float2bfloat16_rn(v);
			else
				((float *) out)[r * cols + c] = v;
		}
	}
}

/* Launches dequantize_kernel over rows × cols. */
static groma_status
dequantize(const int8_t *q, const float *scale, int64_t rows, int64_t cols, void *out, bool narrow)
{
	dim3		grid((unsigned) (groma_cuda_blocks(cols, 256) < 64 ? groma_cuda_blocks(cols, 256) : 64),
					 (unsigned) (rows < 65535 ? rows : 65535));

	dequantize_kernel<<<grid, 256, 0, groma_cuda_stream()>>>(q, scale, rows, cols, out, narrow);
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
		return dequantize((const int8_t *) src->data, src->scale, rows, cols, dst->data, false);
	quantize_rows_kernel<<<(unsigned) rows, QUANT_THREADS, 0, groma_cuda_stream()>>>(
		(const float *) src->data, (int8_t *) dst->data, dst->scale, cols);
	return groma_cuda_launched("convert (quantize to i8)");
}

#define GEMV_I8_WARPS 8			/* output features per block: a warp each */

/* Σ of the four signed bytes of p times x's four floats. */
__device__ static inline float
dot_i8x4(unsigned p, float4 x)
{
	return (float) (signed char) (p & 0xffu) * x.x + (float) (signed char) ((p >> 8) & 0xffu) * x.y +
		(float) (signed char) ((p >> 16) & 0xffu) * x.z + (float) (signed char) (p >> 24) * x.w;
}

/*
 * y[r, o] = scale[o] · Σ_k w[o, k] · x[r, k] (+ b[o]) for i8 w read as
 * 16-byte vectors of 16 (K a multiple of 16): a warp per output feature o
 * (blockIdx.x · GEMV_I8_WARPS + warp), a grid row per input row r
 * (blockIdx.y), x in f32.
 */
__global__ static void
gemv_i8_kernel(const uint4 *w, const float *scale, const float *x, const float *b, float *y, int64_t n, int64_t k)
{
	int			lane = threadIdx.x & 31;
	int64_t		o = (int64_t) blockIdx.x * GEMV_I8_WARPS + (threadIdx.x >> 5),
				r = blockIdx.y,
				vectors = k / 16;
	const uint4 *wo;
	const float4 *xr = (const float4 *) (x + r * k);
	float		acc = 0.0f;

	if (o >= n)
		return;					/* a whole warp: no block barrier follows */
	wo = w + o * vectors;
#pragma unroll 4
	for (int64_t c = lane; c < vectors; c += 32)
	{
		uint4		p = wo[c];

		acc += dot_i8x4(p.x, xr[4 * c]) + dot_i8x4(p.y, xr[4 * c + 1]) + dot_i8x4(p.z, xr[4 * c + 2]) +
			dot_i8x4(p.w, xr[4 * c + 3]);
	}
	for (int off = 16; off > 0; off >>= 1)
		acc += __shfl_xor_sync(0xffffffffu, acc, off);
	if (lane == 0)
		y[r * n + o] = acc * scale[o] + (b ? b[o] : 0.0f);
}

/* Input rows up to which a linear with i8 weights goes to gemv_i8_kernel (decode steps have one per answer). */
#define GEMV_I8_MAX_ROWS 8

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

/* True when gemv_i8_kernel takes x[m, k] · wᵀ: few rows, K a multiple of 16, 16-byte aligned operands. */
extern "C" bool
groma_cuda_gemv_int8_fits(const groma_tensor *x, const groma_tensor *w, int64_t m, int64_t k)
{
	return m <= GEMV_I8_MAX_ROWS && k % 16 == 0 && groma_cuda_aligned16(w->data) && groma_cuda_aligned16(x->data);
}

/* y[m, n] = x[m, k] · (w · scale)ᵀ (+ b) through gemv_i8_kernel (groma_cuda_gemv_int8_fits holds). */
extern "C" groma_status
groma_cuda_gemv_int8(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b, groma_tensor *y, int64_t m,
					 int64_t n, int64_t k)
{
	gemv_i8_kernel<<<dim3(groma_cuda_blocks(n, GEMV_I8_WARPS), (unsigned) m), GEMV_I8_WARPS * 32, 0,
					 groma_cuda_stream()>>>((const uint4 *) w->data, w->scale, (const float *) x->data,
											b ? (const float *) b->data : NULL, (float *) y->data, n, k);
	return groma_cuda_launched("linear (i8 weights, few rows)");
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
	return dequantize((const int8_t *) w->data, w->scale, w->shape[0], w->shape[1], buf, true);
}
