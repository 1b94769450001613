/*
 * ops_gemm.cu - linear and batched matmul through cuBLAS: fp32, and linear
 * with bf16/f16 weights on tensor cores (activations rounded to the weight
 * type, fp32 accumulation and output); a linear of a few rows with bf16
 * or i8 weights (a decode step) goes to a bandwidth-bound kernel instead;
 * more rows with i8 weights multiply ops_linear_int8.cu's bf16 copy.
 * Each kernel has a launcher taking a stream.
 *
 * Row-major operands are handed to column-major cuBLAS as their transposes:
 * C = op(A)·op(B) is computed as Cᵀ = op(B)ᵀ·op(A)ᵀ.
 */
#include "cuda_common.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

/* y[r, :] = b for every row r (b may be NULL: zeros). */
__global__ static void
fill_rows_kernel(float *y, const float *b, int64_t rows, int64_t n)
{
	int64_t		i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i < rows * n)
		y[i] = b ? b[i % n] : 0.0f;
}

/* Queues fill_rows_kernel on stream: y[rows, n] = b[n] in every row (zeros when b is NULL). */
static groma_status
launch_fill_rows(float *y, const float *b, int64_t rows, int64_t n, cudaStream_t stream)
{
	fill_rows_kernel<<<groma_cuda_blocks(rows * n, 256), 256, 0, stream>>>(y, b, rows, n);
	return groma_cuda_launched("linear bias");
}

/* dst[i] = src[i] rounded to bf16 (or f16 when half is set), nearest even. */
__global__ static void
narrow_kernel(const float *src, void *dst, int64_t n, bool half)
{
	int64_t		i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		groma_store_f32(dst, i, half ? GROMA_F16 : GROMA_BF16, src[i]);
}

/* Queues narrow_kernel on stream: the n floats of src rounded into dst (f16 when half, else bf16). */
static groma_status
launch_narrow(const float *src, void *dst, int64_t n, bool half, cudaStream_t stream)
{
	narrow_kernel<<<groma_cuda_blocks(n, 256), 256, 0, stream>>>(src, dst, n, half);
	return groma_cuda_launched("linear: rounding activations");
}

/* Returns x rounded to w's 16-bit type in the context's buffer (queued on stream), or NULL with *st set. */
static const void *
narrow_input(const groma_tensor *x, groma_dtype dtype, groma_status *st, cudaStream_t stream)
{
	int64_t		n = groma_tensor_numel(x);
	void	   *buf = groma_cuda_buffer_reserve(&groma_cuda_ctx()->narrow, (size_t) n * 2,
												"linear: 16-bit activation buffer", st);

	if (buf == NULL)
		return NULL;
	*st = launch_narrow((const float *) x->data, buf, n, dtype == GROMA_F16, stream);
	return st->code == GROMA_OK ? buf : NULL;
}

#define GEMV_WARPS 8			/* warps per block */
#define GEMV_FEATURES 2			/* output features per warp: each x vector loaded serves them all */
#define GEMV_ROWS 8				/* input rows one launch takes: each weight vector loaded serves them all */
#define GEMV_UNROLL 4			/* weight vectors per feature a lane loads before it multiplies */

/* Σ of the 8 bf16 values of p times x[0..7] (two float4). */
__device__ static inline float
dot_bf16x8(uint4 p, const float4 *x)
{
	float4		x0 = x[0],
				x1 = x[1];

	return __uint_as_float(p.x << 16) * x0.x + __uint_as_float(p.x & 0xffff0000u) * x0.y +
		__uint_as_float(p.y << 16) * x0.z + __uint_as_float(p.y & 0xffff0000u) * x0.w +
		__uint_as_float(p.z << 16) * x1.x + __uint_as_float(p.z & 0xffff0000u) * x1.y +
		__uint_as_float(p.w << 16) * x1.z + __uint_as_float(p.w & 0xffff0000u) * x1.w;
}

/* Σ of the four signed bytes of p times x's four floats. */
__device__ static inline float
dot_i8x4(unsigned p, float4 x)
{
	return (float) (signed char) (p & 0xffu) * x.x + (float) (signed char) ((p >> 8) & 0xffu) * x.y +
		(float) (signed char) ((p >> 16) & 0xffu) * x.z + (float) (signed char) (p >> 24) * x.w;
}

/* Σ of the 16 i8 values of p times x[0..15] (four float4). */
__device__ static inline float
dot_i8x16(uint4 p, const float4 *x)
{
	return dot_i8x4(p.x, x[0]) + dot_i8x4(p.y, x[1]) + dot_i8x4(p.z, x[2]) + dot_i8x4(p.w, x[3]);
}

#define GEMV_MAX_PARTS 4		/* weights one GEMV launch multiplies x by */

/* The weights of one GEMV launch, of one shape and dtype, and where each one's output goes (by value). */
typedef struct gemv_parts
{
	const uint4 *w[GEMV_MAX_PARTS];	/* [N, K] each */
	const float *scale[GEMV_MAX_PARTS];	/* [N] for i8 weights, else NULL */
	const float *b[GEMV_MAX_PARTS];	/* [N] or NULL */
	float	   *y[GEMV_MAX_PARTS];	/* [M, N] */
	int			count;
	bool		swiglu;			/* two parts, gate and up: y[0] = silu(gate) · up, a warp per feature of both */
} gemv_parts;

static_assert(GEMV_FEATURES == 2, "a SwiGLU warp takes one feature of gate and the same of up");

/*
 * y_p[r, o] = s[o] · Σ_k w_p[o, k] · x[r, k] (+ b_p[o]) for every part p
 * and every row r < m (m ≤ GEMV_ROWS), w read as 16-byte vectors of 8 bf16
 * values (s = 1) or, with a scale, of 16 i8 values (s = scale).  A warp
 * takes GEMV_FEATURES consecutive features of the parts laid end to end
 * (blockIdx.x · GEMV_WARPS + warp is the group), all rows at once: each
 * weight vector is read from memory once for the m rows, and each x vector
 * once for the warp's features; a lane loads GEMV_UNROLL vectors of each
 * feature before it multiplies, so 8 loads per lane are in flight.  Lane l
 * sums vectors l, l + 32, ... in that order, and the
 * lanes' sums are added by shuffles, so a row's sum is the same whatever m
 * and wherever its feature falls (batch-invariant).  Decode steps' linears
 * (one input row per answer) read the weights once at full bandwidth, with
 * x in f32 as the CPU twin multiplies it; q, k and v (gate and up) share
 * one launch.  With parts.swiglu a warp takes feature o of gate and of up
 * (group o) and writes silu(gate) · up as silu_mul_kernel computes it.
 */
__global__ static void
gemv_kernel(gemv_parts parts, const float *x, int m, int64_t n, int64_t k)
{
	int			lane = threadIdx.x & 31;
	int64_t		group = (int64_t) blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5),
				first = parts.swiglu ? group : group * GEMV_FEATURES,
				vectors = k / (parts.scale[0] ? 16 : 8),
				floats = parts.scale[0] ? 4 : 2;	/* float4 of x per weight vector */
	const uint4 *wf[GEMV_FEATURES];	/* each feature's row of w, or NULL past the last */
	float		acc[GEMV_FEATURES][GEMV_ROWS];

	if (first >= (parts.swiglu ? n : parts.count * n))
		return;					/* a whole warp: no block barrier follows */
#pragma unroll
	for (int f = 0; f < GEMV_FEATURES; f++)
	{
		int64_t		part = parts.swiglu ? f : (first + f) / n;

		wf[f] = part < parts.count ? parts.w[part] + (parts.swiglu ? first : first + f - part * n) * vectors : NULL;
#pragma unroll
		for (int r = 0; r < GEMV_ROWS; r++)
			acc[f][r] = 0.0f;
	}
	for (int64_t c0 = lane; c0 < vectors; c0 += 32 * GEMV_UNROLL)
	{
		uint4		wv[GEMV_UNROLL][GEMV_FEATURES];

		/* every load of the group first, so GEMV_UNROLL · GEMV_FEATURES of them are in flight per lane */
#pragma unroll
		for (int u = 0; u < GEMV_UNROLL; u++)
#pragma unroll
			for (int f = 0; f < GEMV_FEATURES; f++)
				wv[u][f] = wf[f] && c0 + 32 * u < vectors ? wf[f][c0 + 32 * u] : uint4{0u, 0u, 0u, 0u};
#pragma unroll
		for (int u = 0; u < GEMV_UNROLL; u++)
		{
			int64_t		c = c0 + 32 * u;

			if (c >= vectors)
				break;
#pragma unroll
			for (int r = 0; r < GEMV_ROWS; r++)
			{
				const float4 *xv = (const float4 *) (x + r * k) + floats * c;

				if (r >= m)
					break;
#pragma unroll
				for (int f = 0; f < GEMV_FEATURES; f++)
					acc[f][r] += floats == 4 ? dot_i8x16(wv[u][f], xv) : dot_bf16x8(wv[u][f], xv);
			}
		}
	}
#pragma unroll
	for (int r = 0; r < GEMV_ROWS; r++)
	{
		float		sum[GEMV_FEATURES];

		if (r >= m)
			break;
#pragma unroll
		for (int f = 0; f < GEMV_FEATURES; f++)
		{
			sum[f] = acc[f][r];
			for (int off = 16; off > 0; off >>= 1)
				sum[f] += __shfl_xor_sync(0xffffffffu, sum[f], off);
		}
		if (lane != 0)
			continue;
		if (parts.swiglu)
		{
			/* + 0.0f as the plain epilogue adds a missing bias, so -0 sums round alike */
			float		g = (parts.scale[0] ? sum[0] * parts.scale[0][first] : sum[0]) + 0.0f,
						u = (parts.scale[1] ? sum[1] * parts.scale[1][first] : sum[1]) + 0.0f;

			parts.y[0][r * n + first] = g / (1.0f + expf(-g)) * u;
			continue;
		}
#pragma unroll
		for (int f = 0; f < GEMV_FEATURES; f++)
		{
			int64_t		feature = first + f,
						part = feature / n,
						o = feature - part * n;

			if (part < parts.count)
				parts.y[part][r * n + o] = (parts.scale[part] ? sum[f] * parts.scale[part][o] : sum[f]) +
					(parts.b[part] ? parts.b[part][o] : 0.0f);
		}
	}
}

/* Queues gemv_kernel on stream: x[m, k] (m ≤ GEMV_ROWS) times each of the parts.count weights [n, k]. */
static groma_status
launch_gemv(gemv_parts parts, const float *x, int64_t m, int64_t n, int64_t k, cudaStream_t stream)
{
	int64_t		groups = parts.swiglu ? n : (parts.count * n + GEMV_FEATURES - 1) / GEMV_FEATURES;

	gemv_kernel<<<groma_cuda_blocks(groups, GEMV_WARPS), GEMV_WARPS * 32, 0, stream>>>(parts, x, (int) m, n, k);
	return groma_cuda_launched("linear (few rows)");
}

/*
 * True when gemv_kernel takes x · wᵀ: bf16 or i8 w, at most GEMV_ROWS rows
 * (decode steps have one per answer), whole 16-byte vectors per row,
 * aligned operands.
 */
static bool
gemv_fits(const groma_tensor *x, const groma_tensor *w, int64_t m, int64_t k)
{
	bool		i8 = w->dtype == GROMA_I8;

	return (w->dtype == GROMA_BF16 || i8) && m <= GEMV_ROWS && k % (i8 ? 16 : 8) == 0 &&
		groma_cuda_aligned16(w->data) && groma_cuda_aligned16(x->data);
}

/*
 * Queues gemv_kernel on stream for x[m, k] times `count` weights [n, k]
 * (gemv_fits holds for each); with swiglu, the two weights gate and up
 * give y[0] = silu(gate) · up and y[1] is left alone.
 */
static groma_status
gemv(const groma_tensor *x, int count, const groma_tensor *const *w, const groma_tensor *const *b,
	 groma_tensor *const *y, int64_t m, int64_t n, int64_t k, bool swiglu, cudaStream_t stream)
{
	gemv_parts	parts = {};

	parts.count = count;
	parts.swiglu = swiglu;
	for (int p = 0; p < count; p++)
	{
		parts.w[p] = (const uint4 *) w[p]->data;
		parts.scale[p] = w[p]->dtype == GROMA_I8 ? w[p]->scale : NULL;
		parts.b[p] = b[p] ? (const float *) b[p]->data : NULL;
		parts.y[p] = (float *) y[p]->data;
	}
	return launch_gemv(parts, (const float *) x->data, m, n, k, stream);
}

/* Turns the few-rows kernels on or off (the tests turn them off to reach cuBLAS); see groma_cuda.h. */
extern "C" void
groma_cuda_linear_gemv(bool on)
{
	groma_cuda_ctx()->gemv = on;
	groma_cuda_ctx()->generation++;	/* recordings made with the other path are stale */
}

/*
 * Checks one linear's operands (x[..., K], w[N, K] in f32, bf16, f16 or
 * i8, y[..., N], b[N] or NULL) and gives its rows m, outputs n and depth k.
 */
static groma_status
check_linear(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b, const groma_tensor *y, int64_t *m,
			 int64_t *n, int64_t *k)
{
	GROMA_TRY(groma_cuda_check_f32("linear", "x", x));
	GROMA_TRY(w->dtype == GROMA_I8 ? groma_cuda_check_int8_weight("linear", w) : groma_cuda_check_weight("linear", w));
	GROMA_TRY(groma_cuda_check_f32("linear", "y", y));
	if (b)
		GROMA_TRY(groma_cuda_check_f32("linear", "b", b));
	*k = x->shape[x->ndim - 1];
	*n = w->shape[0];
	if (w->ndim != 2 || w->shape[1] != *k || y->shape[y->ndim - 1] != *n ||
		groma_tensor_numel(y) / (*n > 0 ? *n : 1) != groma_tensor_numel(x) / (*k > 0 ? *k : 1) ||
		(b && groma_tensor_numel(b) != *n))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "linear: shapes do not fit x[..., K] · w[N, K]ᵀ = y[..., N]");
	*m = *k > 0 ? groma_tensor_numel(x) / *k : 0;
	return groma_ok();
}

/*
 * y[m, n] = xh[m, k] · w[n, k]ᵀ + beta · y on tensor cores: xh already in
 * w's 16-bit type (bf16 or f16), f32 accumulation and output.
 */
static groma_status
gemm_16bit(const void *xh, const groma_tensor *w, float beta, float *y, int64_t m, int64_t n, int64_t k)
{
	const float one = 1.0f;
	cudaDataType_t type = w->dtype == GROMA_BF16 ? CUDA_R_16BF : CUDA_R_16F;
	groma_status st;

	/* the handle is pedantic for the f32 GEMMs' sake; 16-bit products may take any tensor-core kernel */
	cublasSetMathMode(groma_cuda_blas(), CUBLAS_DEFAULT_MATH);
	st = groma_cublas_status(cublasGemmEx(groma_cuda_blas(), CUBLAS_OP_T, CUBLAS_OP_N, (int) n, (int) m, (int) k,
										  &one, w->data, type, (int) k, xh, type, (int) k, &beta, y, CUDA_R_32F,
										  (int) n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
							 "linear: cublasGemmEx (16-bit weights)");
	cublasSetMathMode(groma_cuda_blas(), CUBLAS_PEDANTIC_MATH);
	return st;
}

/* y[..., N] = x[..., K] · w[N, K]ᵀ (+ b[N]); see ops.h. */
extern "C" groma_status
groma_cuda_linear(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b, groma_tensor *y)
{
	const float one = 1.0f;
	float		beta;
	int64_t		k,
				n,
				m;
	groma_tensor widened;

	GROMA_TRY(check_linear(x, w, b, y, &m, &n, &k));
	if (m == 0 || n == 0)
		return groma_ok();
	GROMA_TRY(groma_cuda_gemm_dims("linear", m, n, k));
	if (k > 0 && gemv_fits(x, w, m, k) && groma_cuda_ctx()->gemv)
		return gemv(x, 1, &w, &b, &y, m, n, k, false, groma_cuda_stream());
	if (w->dtype == GROMA_I8)
	{
		/* more rows multiply a bf16 copy of the int8 weight on tensor cores */
		GROMA_TRY(groma_cuda_int8_as_bf16(w, &widened));
		w = &widened;
	}
	beta = 0.0f;
	if (b || k == 0)
	{
		GROMA_TRY(launch_fill_rows((float *) y->data, b ? (const float *) b->data : NULL, m, n, groma_cuda_stream()));
		beta = 1.0f;
	}
	if (k == 0)
		return groma_ok();
	if (w->dtype != GROMA_F32)
	{
		groma_status st;
		const void *xh = narrow_input(x, w->dtype, &st, groma_cuda_stream());

		if (xh == NULL)
			return st;
		return gemm_16bit(xh, w, beta, (float *) y->data, m, n, k);
	}
	return groma_cublas_status(cublasSgemm(groma_cuda_blas(), CUBLAS_OP_T, CUBLAS_OP_N, (int) n, (int) m, (int) k,
										   &one, (const float *) w->data, (int) k, (const float *) x->data, (int) k,
										   &beta, (float *) y->data, (int) n), "linear: cublasSgemm");
}

/*
 * y[i] = x · w[i]ᵀ (+ b[i]), one linear each, except that with 16-bit (or i8)
 * weights of one type x is rounded to 16 bits once for all of them (a
 * prefill's q, k and v, or gate and up).
 */
static groma_status
linear_many_gemms(const groma_tensor *x, int count, const groma_tensor *const *w, const groma_tensor *const *b,
				  groma_tensor *const *y)
{
	int64_t		m,
				n,
				k;
	groma_dtype type = w[0]->dtype == GROMA_I8 ? GROMA_BF16 : w[0]->dtype;
	bool		shared = count > 1 && type != GROMA_F32;
	const void *xh;
	groma_status st;

	for (int i = 0; shared && i < count; i++)
	{
		shared = (w[i]->dtype == GROMA_I8 ? GROMA_BF16 : w[i]->dtype) == type;
		if (shared)
			GROMA_TRY(check_linear(x, w[i], b[i], y[i], &m, &n, &k));
		shared = shared && m > 0 && n > 0 && k > 0;
		if (shared)
			GROMA_TRY(groma_cuda_gemm_dims("linear", m, n, k));
	}
	if (!shared)
	{
		for (int i = 0; i < count; i++)
			GROMA_TRY(groma_cuda_linear(x, w[i], b[i], y[i]));
		return groma_ok();
	}
	xh = narrow_input(x, type, &st, groma_cuda_stream());
	if (xh == NULL)
		return st;
	for (int i = 0; i < count; i++)
	{
		groma_tensor widened;
		const groma_tensor *wi = w[i];

		if (wi->dtype == GROMA_I8)
		{
			/* the bf16 copy of the i8 weight on tensor cores, as groma_cuda_linear multiplies it */
			GROMA_TRY(groma_cuda_int8_as_bf16(wi, &widened));
			wi = &widened;
		}
		if (b[i])
			GROMA_TRY(launch_fill_rows((float *) y[i]->data, (const float *) b[i]->data, m, wi->shape[0],
									   groma_cuda_stream()));
		GROMA_TRY(gemm_16bit(xh, wi, b[i] ? 1.0f : 0.0f, (float *) y[i]->data, m, wi->shape[0], k));
	}
	return groma_ok();
}

/*
 * y[i] = x · w[i]ᵀ (+ b[i]) for count weights of one shape and dtype; see ops.h.
 * Few rows go to one GEMV launch for all; otherwise each is a linear.
 */
extern "C" groma_status
groma_cuda_linear_many(const groma_tensor *x, int count, const groma_tensor *const *w, const groma_tensor *const *b,
					   groma_tensor *const *y)
{
	const groma_tensor *none[GEMV_MAX_PARTS] = {NULL, NULL, NULL, NULL};
	int64_t		k = x->shape[x->ndim - 1],
				m = k > 0 ? groma_tensor_numel(x) / k : 0,
				n = 0;
	bool		one_launch = count >= 1 && count <= GEMV_MAX_PARTS && groma_cuda_ctx()->gemv && k > 0;

	for (int i = 0; i < count && one_launch; i++)
		one_launch = w[i]->dtype == w[0]->dtype && groma_tensor_same_shape(w[i], w[0]) &&
			groma_tensor_same_shape(y[i], y[0]) && gemv_fits(x, w[i], m, k);
	if (b == NULL)
		b = none;
	if (count > GEMV_MAX_PARTS)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "linear_many: %d weights, at most %d", count, GEMV_MAX_PARTS);
	if (!one_launch)
		return linear_many_gemms(x, count, w, b, y);
	for (int i = 0; i < count; i++)
		GROMA_TRY(check_linear(x, w[i], b[i], y[i], &m, &n, &k));
	if (m == 0 || n == 0)
		return groma_ok();
	return gemv(x, count, w, b, y, m, n, k, false, groma_cuda_stream());
}

/*
 * gate = silu(x · w_gateᵀ) ⊙ (x · w_upᵀ); see ops.h.  Few rows take one
 * GEMV launch writing gate directly (up untouched); otherwise linear_many
 * into gate and up, then silu_mul.
 */
extern "C" groma_status
groma_cuda_linear_swiglu(const groma_tensor *x, const groma_tensor *w_gate, const groma_tensor *w_up,
						 groma_tensor *gate, groma_tensor *up)
{
	const groma_tensor *w[2] = {w_gate, w_up},
			   *none[2] = {NULL, NULL};
	groma_tensor *y[2] = {gate, up};
	int64_t		m,
				n,
				k;

	GROMA_TRY(check_linear(x, w_gate, NULL, gate, &m, &n, &k));
	GROMA_TRY(check_linear(x, w_up, NULL, up, &m, &n, &k));
	if (w_gate->dtype != w_up->dtype || !groma_tensor_same_shape(w_gate, w_up) || !groma_tensor_same_shape(gate, up) ||
		!groma_cuda_ctx()->gemv || k == 0 || !gemv_fits(x, w_gate, m, k) || !gemv_fits(x, w_up, m, k))
	{
		GROMA_TRY(groma_cuda_linear_many(x, 2, w, none, y));
		return groma_cuda_silu_mul(gate, up, gate);
	}
	if (m == 0 || n == 0)
		return groma_ok();
	return gemv(x, 2, w, none, y, m, n, k, true, groma_cuda_stream());
}

/* dst[i] = the f32 value of src[i] (bf16 or f16), or src[i] narrowed (f32 to bf16/f16). */
__global__ static void
convert_kernel(const void *src, groma_dtype from, void *dst, groma_dtype to, int64_t n)
{
	int64_t		i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		groma_store_f32(dst, i, to, groma_load_f32(src, i, from));
}

/* Queues convert_kernel on stream: the n values of src (dtype from) into dst (dtype to). */
static groma_status
launch_convert(const void *src, groma_dtype from, void *dst, groma_dtype to, int64_t n, cudaStream_t stream)
{
	convert_kernel<<<groma_cuda_blocks(n, 256), 256, 0, stream>>>(src, from, dst, to, n);
	return groma_cuda_launched("convert");
}

/* Converts between f32 and bf16/f16 on the GPU; see ops.h. */
extern "C" groma_status
groma_cuda_convert(const groma_tensor *src, groma_tensor *dst)
{
	int64_t		n = groma_tensor_numel(src);
	bool		supported = (dst->dtype == GROMA_F32 &&
							 (src->dtype == GROMA_F32 || src->dtype == GROMA_BF16 || src->dtype == GROMA_F16)) ||
		(src->dtype == GROMA_F32 && (dst->dtype == GROMA_BF16 || dst->dtype == GROMA_F16 || dst->dtype == GROMA_I8)) ||
		(src->dtype == GROMA_I8 && dst->dtype == GROMA_F32);

	if (!supported || !groma_tensor_same_shape(src, dst) || !groma_tensor_is_contiguous(src) ||
		!groma_tensor_is_contiguous(dst) || src->device != GROMA_DEVICE_CUDA || dst->device != GROMA_DEVICE_CUDA)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "convert: %s to %s of one shape, contiguous, on the GPU",
						   groma_dtype_name(src->dtype), groma_dtype_name(dst->dtype));
	if (src->dtype == GROMA_I8 || dst->dtype == GROMA_I8)
		return groma_cuda_convert_int8(src, dst);
	if (n == 0)
		return groma_ok();
	return launch_convert(src->data, src->dtype, dst->data, dst->dtype, n, groma_cuda_stream());
}

/* Zeroes every [m, n] matrix of the (row-major, ld-strided) batch view c. */
static groma_status
groma_fill_matrices(const groma_matrix_view *c, int64_t m, int64_t n)
{
	for (int64_t i0 = 0; i0 < c->batch[0]; i0++)
		for (int64_t i1 = 0; i1 < c->batch[1]; i1++)
			GROMA_TRY(groma_cuda_status(cudaMemset2DAsync((float *) c->data + i0 * c->bstride[0] + i1 * c->bstride[1],
														  (size_t) c->ld * sizeof(float), 0, (size_t) n * sizeof(float),
														  (size_t) m, groma_cuda_stream()), "matmul: zero fill"));
	return groma_ok();
}

/* c = alpha · op(a) · op(b) over up to two batch dimensions; see ops.h. */
extern "C" groma_status
groma_cuda_matmul(const groma_tensor *a, bool trans_a, const groma_tensor *b, bool trans_b, float alpha,
				  groma_tensor *c)
{
	groma_matrix_view va,
				vb,
				vc;
	int64_t		m,
				k,
				n;
	const float zero = 0.0f;

	GROMA_TRY(groma_matrix_view_of("a", a, GROMA_DEVICE_CUDA, &va));
	GROMA_TRY(groma_matrix_view_of("b", b, GROMA_DEVICE_CUDA, &vb));
	GROMA_TRY(groma_matrix_view_of("c", c, GROMA_DEVICE_CUDA, &vc));
	GROMA_TRY(groma_matrix_product_dims(&va, trans_a, &vb, trans_b, &vc, &m, &k, &n));
	if (m == 0 || n == 0)
		return groma_ok();
	GROMA_TRY(groma_cuda_gemm_dims("matmul", m, n, k));
	if (k == 0)
		return groma_fill_matrices(&vc, m, n);	/* an empty sum: zeros, as on the CPU */
	for (int64_t i0 = 0; i0 < vc.batch[0]; i0++)
		for (int64_t i1 = 0; i1 < vc.batch[1]; i1++)
		{
			const float *pa = va.data + i0 * va.bstride[0] + i1 * va.bstride[1];
			const float *pb = vb.data + i0 * vb.bstride[0] + i1 * vb.bstride[1];
			float	   *pc = (float *) vc.data + i0 * vc.bstride[0] + i1 * vc.bstride[1];

			GROMA_TRY(groma_cublas_status(cublasSgemm(groma_cuda_blas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
													  trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, (int) n, (int) m, (int) k,
													  &alpha, pb, (int) vb.ld, pa, (int) va.ld, &zero, pc, (int) vc.ld),
										  "matmul: cublasSgemm"));
		}
	return groma_ok();
}
