/*
 * ops_attention_gemm.cu - attention as two cuBLAS strided-batched SGEMMs
 * around a masked row softmax, for prompts whose score matrices fit the
 * caller's device scratch arena: S = scale · q kᵀ, P = softmax(S + mask),
 * out = P v.  A chunk of heads at a time holds [heads, Tq, Tk] scores in
 * the scratch arena (at most GEMM_SCORE_BUDGET bytes), which goes back
 * after the call.  When not even one head's scores fit, the caller uses
 * the fused kernels of ops_attention.cu, which store no score matrix.
 * With a 16-bit compute type the two products run on tensor cores: q, k, v
 * and the probabilities are rounded to it, scores, softmax and outputs
 * stay f32.  Each kernel has a launcher taking a stream.
 */
#include "cuda_common.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#define SOFTMAX_THREADS 128		/* four warps: a warp per row */
#define GEMM_SCORE_BUDGET ((size_t) 256 << 20)	/* scratch bytes the scores of one head chunk may take */

/*
 * s[r, :] = softmax(s[r, :]) over the keys row r may see, 0 past them, for
 * the rows r of one head chunk, [rows, tk]; row r is query r % tq, at
 * absolute position q_offset + r % tq, which sees keys j <= that position
 * when causal.
 */
__global__ static void
masked_softmax_kernel(float *s, int64_t rows, int64_t tq, int64_t tk, bool causal, int64_t q_offset)
{
	int64_t		r = (int64_t) blockIdx.x * (SOFTMAX_THREADS / 32) + (threadIdx.x >> 5);
	int			lane = threadIdx.x & 31;
	float	   *row = s + r * tk;
	int64_t		limit;
	float		m = -INFINITY,
				sum = 0.0f,
				inv;

	if (r >= rows)
		return;
	limit = causal ? min(tk, q_offset + r % tq + 1) : tk;
	for (int64_t j = lane; j < limit; j += 32)
		m = fmaxf(m, row[j]);
	for (int o = 16; o > 0; o >>= 1)
		m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
	for (int64_t j = lane; j < limit; j += 32)
	{
		float		e = expf(row[j] - m);

		row[j] = e;
		sum += e;
	}
	for (int o = 16; o > 0; o >>= 1)
		sum += __shfl_xor_sync(0xffffffffu, sum, o);
	inv = 1.0f / sum;
	for (int64_t j = lane; j < tk; j += 32)
		row[j] = j < limit ? row[j] * inv : 0.0f;
}

/* Queues masked_softmax_kernel on stream over the rows of s[rows, tk] (a warp per row). */
static groma_status
launch_masked_softmax(float *s, int64_t rows, int64_t tq, int64_t tk, bool causal, int64_t q_offset,
					  cudaStream_t stream)
{
	masked_softmax_kernel<<<groma_cuda_blocks(rows, SOFTMAX_THREADS / 32), SOFTMAX_THREADS, 0, stream>>>(
		s, rows, tq, tk, causal, q_offset);
	return groma_cuda_launched("attention: masked softmax");
}

/*
 * Returns the chunk of heads whose [Tq, Tk] scores (and, with staged, a
 * [Tq, D] output each; with half, 16-bit copies of q and the probabilities,
 * and of k and v unless kv_native: already 16-bit) fit scratch (0: not even
 * one).
 */
static int64_t
heads_per_chunk(groma_arena_ref scratch, int64_t heads, int64_t tq, int64_t tk, int64_t dim, bool staged, bool half,
				bool kv_native)
{
	size_t		per_head = (size_t) tq * (size_t) (tk + (staged ? dim : 0)) * sizeof(float) + 6 * GROMA_ARENA_ALIGN +
		(half ? 2 * ((size_t) tq * (size_t) (dim + tk) + (kv_native ? 0 : 2 * (size_t) tk * (size_t) dim)) : 0),
				room;

	if (scratch == NULL || scratch->device != GROMA_DEVICE_CUDA || scratch->used >= scratch->size)
		return 0;
	room = scratch->size - scratch->used;
	if (room > GEMM_SCORE_BUDGET)
		room = GEMM_SCORE_BUDGET;
	return (int64_t) (room / per_head) < heads ? (int64_t) (room / per_head) : heads;
}

/*
 * dst[h, i, :] = src[h·sh + i·st + (0..cols)] rounded to bf16 (f16 when
 * half_f16) for the rows of hc heads of t rows each: a grid row per source
 * row (strided over gridDim.y), threads over its cols contiguous values.
 */
__global__ static void
rows_to_16bit_kernel(const float *src, int64_t sh, int64_t st, int64_t t, int64_t rows, int64_t cols, void *dst,
					 bool half_f16)
{
	for (int64_t r = blockIdx.y; r < rows; r += gridDim.y)
	{
		const float *from = src + (r / t) * sh + (r % t) * st;

		for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
			groma_store_f32(dst, r * cols + c, half_f16 ? GROMA_F16 : GROMA_BF16, from[c]);
	}
}

/*
 * Queues rows_to_16bit_kernel on stream: hc heads of t rows of cols values
 * from src (head stride sh, row stride st) into dst[hc, t, cols].
 */
static groma_status
launch_rows_to_16bit(const float *src, int64_t sh, int64_t st, int64_t hc, int64_t t, int64_t cols, void *dst,
					 groma_dtype compute, cudaStream_t stream)
{
	int64_t		rows = hc * t;

	rows_to_16bit_kernel<<<dim3(1, (unsigned) (rows < 65535 ? rows : 65535)), 128, 0, stream>>>(
		src, sh, st, t, rows, cols, dst, compute == GROMA_F16);
	return groma_cuda_launched("attention: rounding to 16 bits");
}

/*
 * One strided-batched GEMM of 16-bit a and b with f32 c on tensor cores
 * (column-major, as cublasGemmStridedBatchedEx takes it).
 */
static groma_status
gemm_16bit(cublasOperation_t ta, int64_t m, int64_t n, int64_t k, float alpha, const void *a, int64_t lda,
		   int64_t sa, const void *b, int64_t ldb, int64_t sb, float *c, int64_t ldc, int64_t sc, int64_t count,
		   groma_dtype compute, const char *what)
{
	const float zero = 0.0f;
	cudaDataType_t type = compute == GROMA_F16 ? CUDA_R_16F : CUDA_R_16BF;
	groma_status st;

	/* the handle is pedantic for the f32 GEMMs' sake; 16-bit products may take any tensor-core kernel */
	cublasSetMathMode(groma_cuda_blas(), CUBLAS_DEFAULT_MATH);
	st = groma_cublas_status(cublasGemmStridedBatchedEx(groma_cuda_blas(), ta, CUBLAS_OP_N, (int) m, (int) n, (int) k,
														&alpha, a, type, (int) lda, (long long) sa, b, type, (int) ldb,
														(long long) sb, &zero, c, CUDA_R_32F, (int) ldc,
														(long long) sc, (int) count, CUBLAS_COMPUTE_32F,
														CUBLAS_GEMM_DEFAULT), what);
	cublasSetMathMode(groma_cuda_blas(), CUBLAS_PEDANTIC_MATH);
	return st;
}

/*
 * The 16-bit copies of one head chunk's operands (NULL when computing in
 * f32); k and v stay NULL when the operands are already of the compute
 * type (a 16-bit KV cache), and the GEMMs read them where they are.
 */
typedef struct half_operands
{
	groma_dtype compute;		/* GROMA_BF16 or GROMA_F16 */
	void	   *q,				/* [hc, Tq, D] */
			   *k,				/* [hc, Tk, D] */
			   *v,				/* [hc, Tk, D] */
			   *p;				/* [hc, Tq, Tk] probabilities */
} half_operands;

/* The 16-bit rows of head h0 of batch b of t, a [B, H, T, D] tensor already of the compute type. */
static const void *
native_rows(const groma_tensor *t, int64_t b, int64_t h0)
{
	return (const char *) t->data + (b * t->stride[0] + h0 * t->stride[1]) * (int64_t) groma_dtype_size(t->dtype);
}

/*
 * S[h, Tq, Tk] = scale · q_h k_hᵀ for the heads of one chunk (row-major,
 * as column-major Sᵀ = k_h q_hᵀ), the 16-bit roundings queued on stream.
 */
static groma_status
scores(const groma_tensor *q, const groma_tensor *k, int64_t b, int64_t h0, int64_t hc, float scale,
	   const half_operands *half, float *s, cudaStream_t stream)
{
	int64_t		tq = q->shape[2],
				tk = k->shape[2],
				dim = q->shape[3];
	const float zero = 0.0f;
	const float *qh = (const float *) q->data + b * q->stride[0] + h0 * q->stride[1];
	const float *kh = k->dtype == GROMA_F32 ? (const float *) k->data + b * k->stride[0] + h0 * k->stride[1] : NULL;

	if (half)
	{
		GROMA_TRY(launch_rows_to_16bit(qh, q->stride[1], q->stride[2], hc, tq, dim, half->q, half->compute, stream));
		if (half->k == NULL)
			return gemm_16bit(CUBLAS_OP_T, tk, tq, dim, scale, native_rows(k, b, h0), k->stride[2], k->stride[1],
							  half->q, dim, tq * dim, s, tk, tq * tk, hc, half->compute,
							  "attention: cublasGemmStridedBatchedEx (scores)");
		GROMA_TRY(launch_rows_to_16bit(kh, k->stride[1], k->stride[2], hc, tk, dim, half->k, half->compute, stream));
		return gemm_16bit(CUBLAS_OP_T, tk, tq, dim, scale, half->k, dim, tk * dim, half->q, dim, tq * dim, s, tk,
						  tq * tk, hc, half->compute, "attention: cublasGemmStridedBatchedEx (scores)");
	}
	return groma_cublas_status(cublasSgemmStridedBatched(groma_cuda_blas(), CUBLAS_OP_T, CUBLAS_OP_N, (int) tk,
														 (int) tq, (int) dim, &scale, kh, (int) k->stride[2],
														 (long long) k->stride[1], qh, (int) q->stride[2],
														 (long long) q->stride[1], &zero, s, (int) tk,
														 (long long) (tq * tk), (int) hc),
							   "attention: cublasSgemmStridedBatched (scores)");
}

/*
 * out_h[Tq, D] = P_h[Tq, Tk] · v_h[Tk, D] for the heads of one chunk
 * (column-major: out_hᵀ = v_hᵀ P_hᵀ).  With staged (hc · Tq · D floats of
 * device scratch), the GEMM writes separate [Tq, D] blocks there and a copy puts
 * them into out: a head view of a [B, T, H, D] buffer interleaves the heads'
 * rows (ldc = H·D, strideC = D), and cuBLAS does not promise anything for
 * batch entries whose spans interleave, only for disjoint ones.  The
 * 16-bit roundings are queued on stream.
 */
static groma_status
weighted_values(const float *p, const groma_tensor *v, int64_t b, int64_t h0, int64_t hc, const half_operands *half,
				float *staged, groma_tensor *out, cudaStream_t stream)
{
	int64_t		tq = out->shape[2],
				tk = v->shape[2],
				dim = v->shape[3];
	const float one = 1.0f,
				zero = 0.0f;
	const float *vh = v->dtype == GROMA_F32 ? (const float *) v->data + b * v->stride[0] + h0 * v->stride[1] : NULL;
	float	   *oh = staged ? staged : (float *) out->data + b * out->stride[0] + h0 * out->stride[1];
	const int64_t shape[4] = {1, hc, tq, dim};
	groma_tensor src,
				dst;

	if (half)
	{
		const void *v16 = half->v ? half->v : native_rows(v, b, h0);

		if (half->v)
			GROMA_TRY(launch_rows_to_16bit(vh, v->stride[1], v->stride[2], hc, tk, dim, half->v, half->compute,
										   stream));
		GROMA_TRY(launch_rows_to_16bit(p, tq * tk, tk, hc, tq, tk, half->p, half->compute, stream));
		GROMA_TRY(gemm_16bit(CUBLAS_OP_N, dim, tq, tk, one, v16, half->v ? dim : v->stride[2],
							 half->v ? tk * dim : v->stride[1], half->p, tk, tq * tk, oh,
							 staged ? dim : out->stride[2], staged ? tq * dim : out->stride[1], hc, half->compute,
							 "attention: cublasGemmStridedBatchedEx (weighted values)"));
	}
	else
		GROMA_TRY(groma_cublas_status(cublasSgemmStridedBatched(groma_cuda_blas(), CUBLAS_OP_N, CUBLAS_OP_N, (int) dim,
															(int) tq, (int) tk, &one, vh, (int) v->stride[2],
															(long long) v->stride[1], p, (int) tk,
															(long long) (tq * tk), &zero, oh,
															(int) (staged ? dim : out->stride[2]),
															(long long) (staged ? tq * dim : out->stride[1]),
															(int) hc),
								  "attention: cublasSgemmStridedBatched (weighted values)"));
	if (!staged)
		return groma_ok();
	src = groma_tensor_view(staged, GROMA_F32, 4, shape);	/* [1, hc, Tq, D] */
	src.device = GROMA_DEVICE_CUDA;
	GROMA_TRY(groma_tensor_narrow(out, 0, b, 1, &dst));
	GROMA_TRY(groma_tensor_narrow(&dst, 1, h0, hc, &dst));
	return groma_cuda_ops.copy(&src, &dst);
}

/*
 * out = softmax(scale · q kᵀ + causal mask) v through cuBLAS, with the
 * checked [B, H, T, D] operands of groma_cuda_attention; compute bf16 or
 * f16 multiplies on tensor cores, f32 in f32.  Sets *done to
 * false (and does nothing) when scratch cannot hold one head's scores.
 */
extern "C" groma_status
groma_cuda_attention_gemm(const groma_tensor *q, const groma_tensor *k, const groma_tensor *v, float scale,
						  bool causal, int64_t q_offset, groma_dtype compute, groma_arena_ref scratch,
						  groma_tensor *out, bool *done)
{
	int64_t		batch = q->shape[0],
				heads = q->shape[1],
				tq = q->shape[2],
				tk = k->shape[2],
				dim = q->shape[3];
	/* heads whose [Tq, D] outputs interleave in out (a head view of [B, T, H, D]) are staged, then copied */
	bool		staged = heads > 1 && tq > 1 && out->stride[1] < out->stride[2] * tq;
	bool		half = compute == GROMA_BF16 || compute == GROMA_F16;
	bool		kv_native = half && k->dtype == compute;	/* a 16-bit KV cache of the compute type */
	int64_t		chunk = heads_per_chunk(scratch, heads, tq, tk, dim, staged, half, kv_native);
	half_operands h16 = {compute, NULL, NULL, NULL, NULL};
	size_t		mark;
	float	   *s,				/* [chunk, Tq, Tk] scores, then probabilities */
			   *o = NULL;		/* [chunk, Tq, D] outputs, when staged */
	groma_status st = groma_ok();

	*done = false;
	if (chunk == 0 || tk == 0 || (k->dtype != GROMA_F32 && !kv_native))
		return groma_ok();		/* 16-bit keys of another type: the fused kernels read them */
	/*
	 * cuBLAS takes int sizes and leading dimensions of at least D (a view of
	 * one position may carry a smaller row stride): otherwise the fused
	 * kernels take the call
	 */
	if (tk > 2147483647 || tq > 2147483647 || dim > 2147483647)
		return groma_ok();
	for (const groma_tensor *t : {q, k, v, (const groma_tensor *) out})
		if (t->stride[2] > 2147483647 || t->stride[2] < dim)
			return groma_ok();
	mark = scratch->used;
	s = (float *) groma_arena_alloc(scratch, (size_t) chunk * (size_t) (tq * tk) * sizeof(float));
	if (s != NULL && staged)
		o = (float *) groma_arena_alloc(scratch, (size_t) chunk * (size_t) (tq * dim) * sizeof(float));
	if (s != NULL && half)
	{
		h16.q = groma_arena_alloc(scratch, (size_t) chunk * (size_t) (tq * dim) * 2);
		if (!kv_native)
		{
			h16.k = groma_arena_alloc(scratch, (size_t) chunk * (size_t) (tk * dim) * 2);
			h16.v = groma_arena_alloc(scratch, (size_t) chunk * (size_t) (tk * dim) * 2);
		}
		h16.p = groma_arena_alloc(scratch, (size_t) chunk * (size_t) (tq * tk) * 2);
	}
	if (s == NULL || (staged && o == NULL) ||
		(half && (!h16.q || !h16.p || (!kv_native && (!h16.k || !h16.v)))))
	{
		scratch->used = mark;
		return groma_ok();
	}
	*done = true;
	for (int64_t b = 0; b < batch && st.code == GROMA_OK; b++)
		for (int64_t h0 = 0; h0 < heads && st.code == GROMA_OK; h0 += chunk)
		{
			int64_t		hc = heads - h0 < chunk ? heads - h0 : chunk,
						rows = hc * tq;

			st = scores(q, k, b, h0, hc, scale, half ? &h16 : NULL, s, groma_cuda_stream());
			if (st.code != GROMA_OK)
				break;
			st = launch_masked_softmax(s, rows, tq, tk, causal, q_offset, groma_cuda_stream());
			if (st.code == GROMA_OK)
				st = weighted_values(s, v, b, h0, hc, half ? &h16 : NULL, o, out, groma_cuda_stream());
		}
	scratch->used = mark;		/* the scores go back, after a failure too */
	return st;
}
