/*
 * ops_attention.cu - scaled dot-product attention on the GPU.  Several
 * queries go to cuBLAS GEMMs (ops_attention_gemm.cu) when the caller's
 * scratch holds one head's score matrix; otherwise two kernels with an
 * online softmax store no score matrix (long prompts cost O(Tk) memory per
 * query, not O(Tq·Tk)):
 *
 *   flash      (ops_attention_flash.cu) with a bf16 compute type: tensor
 *              cores, q, k, v and the probabilities rounded to bf16, head
 *              dimensions of 16 to 128 in steps of 16;
 *   tiled      one block per (batch, head, tile of 16 queries): tiles of 32
 *              keys and values are staged in shared memory with coalesced
 *              loads and reused by the 16 queries (prefill, DINOv2, proposer;
 *              head dimension up to 128);
 *   per-query  one block per (batch, head, query), keys in chunks of 128
 *              (head dimensions up to 256); when forced, a decode step's
 *              keys are split over blocks as below;
 *   warp per key (ops_attention_decode.cu) decode steps: the keys split
 *              over up to 64 blocks per head whose partial results a second
 *              kernel combines (flash-decoding).
 *
 * Each kernel has a launcher taking a stream; groma_cuda_attention_in
 * checks the operands, chooses the path and queues on the context's stream.
 */
#include "cuda_common.h"
#include "groma_cuda.h"

#define THREADS 128				/* keys per chunk, and threads per block */
#define MAX_DIM 256				/* head dimension limit: two output slots per thread */

/*
 * out[b, h, i, :] = softmax(scale · q kᵀ + mask) v for query i (blockIdx.x) of
 * (b, h) = blockIdx.y.  With part set, block z (blockIdx.z) covers only keys
 * [z·split_len, (z+1)·split_len) and writes its running max, sum and
 * unnormalised output to part[((bh·Tq + i)·splits + z)·(D + 2) ..] for
 * combine_kernel (split keys: decode steps fill the GPU with blocks).
 */
__global__ static void
attention_kernel(bhtd q, bhtd k, bhtd v, float *out, int64_t ob, int64_t oh, int64_t ot, int64_t heads,
				 int64_t tk, int64_t dim, float scale, bool causal, int64_t q_offset, int64_t split_len,
				 float *part)
{
	__shared__ float qs[MAX_DIM];
	__shared__ float p[THREADS];
	__shared__ float scratch[32];
	int64_t		i = blockIdx.x,
				bh = blockIdx.y,
				b = bh / heads,
				h = bh % heads;
	int64_t		kall = causal ? min(tk, q_offset + i + 1) : tk,
				kbeg = part ? (int64_t) blockIdx.z * split_len : 0,
				kend = part ? min(kall, kbeg + split_len) : kall;
	const float *qrow = (const float *) q.data + b * q.sb + h * q.sh + i * q.st;
	int64_t		kbase = b * k.sb + h * k.sh,	/* element offsets of this head's keys and values */
				vbase = b * v.sb + h * v.sh;
	float		m = -INFINITY,
				l = 0.0f,
				acc[2] = {0.0f, 0.0f};

	for (int64_t d = threadIdx.x; d < dim; d += blockDim.x)
		qs[d] = qrow[d];
	__syncthreads();
	for (int64_t j0 = kbeg; j0 < kend; j0 += THREADS)
	{
		int64_t		j = j0 + threadIdx.x;
		float		s = -INFINITY,
					chunk_max,
					new_m,
					corr,
					pj;

		if (j < kend)
		{
			int64_t		krow = kbase + j * k.st;

			s = 0.0f;
			for (int64_t d = 0; d < dim; d++)
				s += qs[d] * groma_load_f32(k.data, krow + d, k.type);
			s *= scale;
		}
		chunk_max = groma_block_max(s, scratch);
		new_m = fmaxf(m, chunk_max);
		/* a chunk of only -inf scores (masked out) keeps everything at zero, as the CPU does */
		pj = j < kend && new_m != -INFINITY ? expf(s - new_m) : 0.0f;
		p[threadIdx.x] = pj;
		corr = m == -INFINITY || new_m == -INFINITY ? 0.0f : expf(m - new_m);
		l = l * corr + groma_block_sum(pj, scratch);	/* also orders p[] writes before reads */
		for (int r = 0; r < 2; r++)
		{
			int64_t		d = threadIdx.x + r * THREADS;

			if (d < dim)
			{
				float		a = acc[r] * corr;

				for (int64_t t = 0; t < THREADS && j0 + t < kend; t++)
					a += p[t] * groma_load_f32(v.data, vbase + (j0 + t) * v.st + d, v.type);
				acc[r] = a;
			}
		}
		m = new_m;
		__syncthreads();		/* p[] is rewritten by the next chunk */
	}
	if (part)
	{
		float	   *mine = part + ((bh * gridDim.x + i) * gridDim.z + blockIdx.z) * (dim + 2);

		if (threadIdx.x == 0)
		{
			mine[0] = m;
			mine[1] = l;
		}
		for (int r = 0; r < 2; r++)
			if (threadIdx.x + r * THREADS < dim)
				mine[2 + threadIdx.x + r * THREADS] = acc[r];
		return;
	}
	for (int r = 0; r < 2; r++)
	{
		int64_t		d = threadIdx.x + r * THREADS;

		if (d < dim)
			out[b * ob + h * oh + i * ot + d] = l > 0.0f ? acc[r] / l : 0.0f;
	}
}

/* Queues attention_kernel on stream: a block per query of out[B, H, Tq, D] over all its keys. */
static groma_status
launch_attention(bhtd q, bhtd k, bhtd v, float *out, int64_t ob, int64_t oh, int64_t ot, int64_t batch,
				 int64_t heads, int64_t tq, int64_t tk, int64_t dim, float scale, bool causal, int64_t q_offset,
				 cudaStream_t stream)
{
	dim3		grid((unsigned) tq, (unsigned) (batch * heads));

	attention_kernel<<<grid, THREADS, 0, stream>>>(q, k, v, out, ob, oh, ot, heads, tk, dim, scale, causal, q_offset,
												   0, NULL);
	return groma_cuda_launched("attention");
}

/*
 * Queues attention_kernel on stream for a decode step (one query per
 * (b, h)): `splits` blocks of split_len keys each, writing their partial
 * results to part[B·H, splits, D + 2] for combine_kernel.
 */
static groma_status
launch_attention_split(bhtd q, bhtd k, bhtd v, float *out, int64_t ob, int64_t oh, int64_t ot, int64_t batch,
					   int64_t heads, int64_t tk, int64_t dim, float scale, bool causal, int64_t q_offset,
					   int64_t splits, int64_t split_len, float *part, cudaStream_t stream)
{
	dim3		grid(1, (unsigned) (batch * heads), (unsigned) splits);

	attention_kernel<<<grid, THREADS, 0, stream>>>(q, k, v, out, ob, oh, ot, heads, tk, dim, scale, causal, q_offset,
												   split_len, part);
	return groma_cuda_launched("attention (key splits)");
}

/*
 * out[b, h, i, d] from the partial results of the key splits of attention_kernel:
 * each split's sum and output rescaled to the largest max (empty splits weigh 0).
 */
__global__ static void
combine_kernel(const float *part, int64_t splits, float *out, int64_t ob, int64_t oh, int64_t ot, int64_t heads,
			   int64_t tq, int64_t dim)
{
	int64_t		row = blockIdx.x,	/* bh · Tq + i */
				bh = row / tq,
				i = row % tq,
				b = bh / heads,
				h = bh % heads;
	const float *rows = part + row * splits * (dim + 2);
	float		big = -INFINITY,
				l = 0.0f;

	for (int64_t z = 0; z < splits; z++)
		big = fmaxf(big, rows[z * (dim + 2)]);
	for (int64_t z = 0; z < splits; z++)
	{
		float		mz = rows[z * (dim + 2)];

		if (mz != -INFINITY)
			l += rows[z * (dim + 2) + 1] * expf(mz - big);
	}
	for (int64_t d = threadIdx.x; d < dim; d += blockDim.x)
	{
		float		a = 0.0f;

		for (int64_t z = 0; z < splits; z++)
		{
			float		mz = rows[z * (dim + 2)];

			if (mz != -INFINITY)
				a += rows[z * (dim + 2) + 2 + d] * expf(mz - big);
		}
		out[b * ob + h * oh + i * ot + d] = l > 0.0f ? a / l : 0.0f;
	}
}

/* Queues combine_kernel on stream: out[B, H, 1, D] from the splits partial results in part per (b, h). */
static groma_status
launch_combine(const float *part, int64_t splits, float *out, int64_t ob, int64_t oh, int64_t ot, int64_t batch,
			   int64_t heads, int64_t dim, cudaStream_t stream)
{
	combine_kernel<<<(unsigned) (batch * heads), THREADS, 0, stream>>>(part, splits, out, ob, oh, ot, heads, 1, dim);
	return groma_cuda_launched("attention (combining key splits)");
}

/* Combines key splits for the batched decode step (ops_attention_decode.cu); see cuda_common.h. */
extern "C" groma_status
groma_cuda_attention_combine(const float *part, int64_t splits, float *out, int64_t ob, int64_t oh, int64_t batch,
							 int64_t heads, int64_t dim)
{
	return launch_combine(part, splits, out, ob, oh, 0, batch, heads, dim, groma_cuda_stream());
}

#define TILE_Q 16				/* queries per tiled block */
#define TILE_K 32				/* keys per shared-memory tile */
#define TILED_THREADS 256
#define TILED_MAX_DIM 128
#define TILED_SLOTS (TILE_Q * TILED_MAX_DIM / TILED_THREADS)	/* outputs per thread */
static_assert(TILE_K == 32, "the row softmax gives each key of a tile one lane of a warp");
static_assert(TILE_Q % (TILED_THREADS / 32) == 0, "the row softmax gives each warp whole rows");

/*
 * out[b, h, q0 + r, :] for the TILE_Q queries r of tile blockIdx.x of
 * (b, h) = blockIdx.y: per key tile, scores s[r][c] = scale · q·k (or -inf
 * when masked), an online-softmax update of each row (a warp per two rows),
 * then the rescaled outputs accumulate p·v (each thread owns TILED_SLOTS of
 * [TILE_Q, D]).
 */
__global__ static void
attention_tiled_kernel(bhtd q, bhtd k, bhtd v, float *out, int64_t ob, int64_t oh, int64_t ot, int64_t heads,
					   int64_t tq, int64_t tk, int64_t dim, float scale, bool causal, int64_t q_offset)
{
	__shared__ float qs[TILE_Q][TILED_MAX_DIM];
	__shared__ float ks[TILE_K][TILED_MAX_DIM + 1];	/* +1: the 32 keys of a warp sit in 32 banks */
	__shared__ float vs[TILE_K][TILED_MAX_DIM];
	__shared__ float s[TILE_Q][TILE_K + 1];	/* +1: the 16 row threads of the softmax sit in 16 banks */
	__shared__ float row_m[TILE_Q],
				row_l[TILE_Q],
				row_corr[TILE_Q];
	int64_t		bh = blockIdx.y,
				b = bh / heads,
				h = bh % heads,
				q0 = (int64_t) blockIdx.x * TILE_Q,
				rows = min((int64_t) TILE_Q, tq - q0);
	/* the last key any query of the tile may see */
	int64_t		kend = causal ? min(tk, q_offset + q0 + rows) : tk;
	const float *qbase = (const float *) q.data + b * q.sb + h * q.sh;
	int64_t		kbase = b * k.sb + h * k.sh,	/* element offsets of this head's keys and values */
				vbase = b * v.sb + h * v.sh;
	int			tid = threadIdx.x;
	float		acc[TILED_SLOTS];

	for (int r = 0; r < TILED_SLOTS; r++)
		acc[r] = 0.0f;
	for (int64_t i = tid; i < TILE_Q * dim; i += TILED_THREADS)
	{
		int64_t		r = i / dim,
					d = i % dim;

		qs[r][d] = r < rows ? qbase[(q0 + r) * q.st + d] : 0.0f;
	}
	if (tid < TILE_Q)
	{
		row_m[tid] = -INFINITY;
		row_l[tid] = 0.0f;
	}
	__syncthreads();
	for (int64_t j0 = 0; j0 < kend; j0 += TILE_K)
	{
		int64_t		cols = min((int64_t) TILE_K, kend - j0);

		for (int64_t i = tid; i < TILE_K * dim; i += TILED_THREADS)
		{
			int64_t		c = i / dim,
						d = i % dim;

			ks[c][d] = c < cols ? groma_load_f32(k.data, kbase + (j0 + c) * k.st + d, k.type) : 0.0f;
			vs[c][d] = c < cols ? groma_load_f32(v.data, vbase + (j0 + c) * v.st + d, v.type) : 0.0f;
		}
		__syncthreads();
		for (int i = tid; i < TILE_Q * TILE_K; i += TILED_THREADS)
		{
			int			r = i / TILE_K,
						c = i % TILE_K;
			float		sc = -INFINITY;

			if (r < rows && c < cols && (!causal || j0 + c <= q_offset + q0 + r))
			{
				float		a = 0.0f;

				for (int64_t d = 0; d < dim; d++)
					a += qs[r][d] * ks[c][d];
				sc = a * scale;
			}
			s[r][c] = sc;
		}
		__syncthreads();
		/* one warp per two rows, a lane per key: the row max and sum by shuffles */
		for (int rr = 0; rr < TILE_Q / (TILED_THREADS / 32); rr++)
		{
			int			r = (tid >> 5) * (TILE_Q / (TILED_THREADS / 32)) + rr,
						lane = tid & 31;
			float		m = row_m[r],
						sc = s[r][lane],
						mx = sc,
						new_m,
						p,
						sum;

			for (int o = 16; o > 0; o >>= 1)
				mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
			new_m = fmaxf(m, mx);
			/* a row with only -inf scores so far (masked out) keeps everything at zero, as the CPU does */
			p = new_m != -INFINITY && sc != -INFINITY ? expf(sc - new_m) : 0.0f;
			s[r][lane] = p;
			sum = p;
			for (int o = 16; o > 0; o >>= 1)
				sum += __shfl_xor_sync(0xffffffffu, sum, o);
			__syncwarp();		/* every lane has read row_m[r] before lane 0 rewrites it */
			if (lane == 0)
			{
				row_corr[r] = m == -INFINITY || new_m == -INFINITY ? 0.0f : expf(m - new_m);
				row_l[r] = row_l[r] * row_corr[r] + sum;
				row_m[r] = new_m;
			}
		}
		__syncthreads();
		for (int slot = 0; slot < TILED_SLOTS; slot++)
		{
			int64_t		i = tid + (int64_t) slot * TILED_THREADS;

			if (i < TILE_Q * dim)
			{
				int64_t		r = i / dim,
							d = i % dim;
				float		a = acc[slot] * row_corr[r];

				for (int c = 0; c < TILE_K; c++)
					a += s[r][c] * vs[c][d];
				acc[slot] = a;
			}
		}
		__syncthreads();		/* ks, vs and s are rewritten by the next tile */
	}
	for (int slot = 0; slot < TILED_SLOTS; slot++)
	{
		int64_t		i = tid + (int64_t) slot * TILED_THREADS;

		if (i < rows * dim)
		{
			int64_t		r = i / dim,
						d = i % dim;

			out[b * ob + h * oh + (q0 + r) * ot + d] = row_l[r] > 0.0f ? acc[slot] / row_l[r] : 0.0f;
		}
	}
}

/* Queues attention_tiled_kernel on stream: a block per tile of TILE_Q queries of out[B, H, Tq, D]. */
static groma_status
launch_attention_tiled(bhtd q, bhtd k, bhtd v, float *out, int64_t ob, int64_t oh, int64_t ot, int64_t batch,
					   int64_t heads, int64_t tq, int64_t tk, int64_t dim, float scale, bool causal, int64_t q_offset,
					   cudaStream_t stream)
{
	dim3		grid((unsigned) ((tq + TILE_Q - 1) / TILE_Q), (unsigned) (batch * heads));

	attention_tiled_kernel<<<grid, TILED_THREADS, 0, stream>>>(q, k, v, out, ob, oh, ot, heads, tq, tk, dim, scale,
																causal, q_offset);
	return groma_cuda_launched("attention (tiled)");
}

#define MAX_SPLITS 64			/* key splits per decode query */
#define WARP_KERNEL_MIN_SPLIT 64	/* keys per split of the warp-per-key kernel, at least: 8 warps of 4 keys, twice */

/* Forces one attention kernel for tests and benchmarks; see groma_cuda.h. */
extern "C" void
groma_cuda_attention_kernel(groma_cuda_attention_path which)
{
	groma_cuda_ctx()->attention_path = which;
	groma_cuda_ctx()->generation++;	/* recordings made with another kernel are stale */
}

/* Returns the strides of a [B, H, T, D] CUDA operand with contiguous D (f32; keys and values may be 16-bit). */
static groma_status
operand(const char *what, const groma_tensor *t, bool may_be_16bit, bhtd *o)
{
	bool		typed = t->dtype == GROMA_F32 ||
		(may_be_16bit && (t->dtype == GROMA_BF16 || t->dtype == GROMA_F16));

	if (t->data == NULL || !typed || t->device != GROMA_DEVICE_CUDA || t->ndim != 4 ||
		(t->stride[3] != 1 && t->shape[3] > 1))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "attention: %s must be an %s CUDA [B,H,T,D] tensor, "
						   "D contiguous", what, may_be_16bit ? "f32, bf16 or f16" : "f32");
	o->data = t->data;
	o->type = t->dtype;
	o->sb = t->stride[0];
	o->sh = t->stride[1];
	o->st = t->stride[2];
	return groma_ok();
}

/* out = softmax(scale · q kᵀ + causal mask) v; see ops.h. */
extern "C" groma_status
groma_cuda_attention(const groma_tensor *q, const groma_tensor *k, const groma_tensor *v, float scale, bool causal,
					 int64_t q_offset, groma_arena_ref scratch, groma_tensor *out)
{
	return groma_cuda_attention_in(GROMA_F32, q, k, v, scale, causal, q_offset, scratch, out);
}

/* Attention whose GEMM path multiplies in compute (bf16/f16 on tensor cores); see ops.h (groma_attention_in). */
extern "C" groma_status
groma_cuda_attention_in(groma_dtype compute, const groma_tensor *q, const groma_tensor *k, const groma_tensor *v,
						float scale, bool causal, int64_t q_offset, groma_arena_ref scratch, groma_tensor *out)
{
	bhtd		bq,
				bk,
				bv,
				bo;
	int64_t		batch = q->shape[0],
				heads = q->shape[1],
				tq = q->shape[2],
				tk = k->shape[2],
				dim = q->shape[3],
				min_split;
	bool		warp_kernel;
	groma_cuda_attention_path forced_kernel = groma_cuda_ctx()->attention_path;

	GROMA_TRY(operand("q", q, false, &bq));
	GROMA_TRY(operand("k", k, true, &bk));
	GROMA_TRY(operand("v", v, true, &bv));
	GROMA_TRY(operand("out", out, false, &bo));
	if (k->dtype != v->dtype)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "attention: k and v differ in type");
	if (!groma_tensor_same_shape(k, v) || !groma_tensor_same_shape(q, out) || k->shape[0] != batch ||
		k->shape[1] != heads || k->shape[3] != dim)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "attention: q, k, v and out do not fit");
	if (dim > MAX_DIM)
		return groma_error(GROMA_ERR_UNSUPPORTED, "attention: head dimension %lld over %d", (long long) dim, MAX_DIM);
	if (causal && (q_offset < 0 || q_offset + tq > tk))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "attention: causal queries need q_offset + Tq <= Tk");
	if (tq == 0 || batch * heads == 0)
		return groma_ok();
	if (tq > 0x7fffffff || batch * heads > 65535)
		return groma_error(GROMA_ERR_LIMIT, "attention: grid too large");
	if (forced_kernel == GROMA_ATTENTION_GEMM || (forced_kernel == GROMA_ATTENTION_AUTO && tq > 1))
	{
		bool		done;

		GROMA_TRY(groma_cuda_attention_gemm(q, k, v, scale, causal, q_offset, compute, scratch, out, &done));
		if (done)
			return groma_ok();
		if (forced_kernel == GROMA_ATTENTION_GEMM)
			return groma_error(GROMA_ERR_UNSUPPORTED, "attention: the GEMM path needs a device scratch arena with "
							   "room for one head's [%lld, %lld] scores, and 16-bit keys and values of the compute "
							   "type", (long long) tq, (long long) tk);
	}
	/*
	 * forced, or on auto for a 16-bit compute type when the scores did not
	 * fit: tensor cores with no score matrix (q, k, v and the probabilities
	 * rounded to bf16)
	 */
	if (forced_kernel == GROMA_ATTENTION_FLASH ||
		(forced_kernel == GROMA_ATTENTION_AUTO && tq > 1 && compute == GROMA_BF16 &&
		 groma_cuda_attention_flash_fits(dim)))
		return groma_cuda_attention_flash(bq, bk, bv, out, tk, scale, causal, q_offset);
	if (forced_kernel == GROMA_ATTENTION_TILED && dim > TILED_MAX_DIM)
		return groma_error(GROMA_ERR_UNSUPPORTED, "attention: the tiled kernel takes head dimensions up to %d",
						   TILED_MAX_DIM);
	if (forced_kernel == GROMA_ATTENTION_TILED ||
		(forced_kernel == GROMA_ATTENTION_AUTO && tq > 1 && dim <= TILED_MAX_DIM))
		return launch_attention_tiled(bq, bk, bv, (float *) out->data, out->stride[0], out->stride[1], out->stride[2],
									  batch, heads, tq, tk, dim, scale, causal, q_offset, groma_cuda_stream());
	/* auto: a decode step goes to the warp-per-key kernel (ops_attention_decode.cu) */
	warp_kernel = forced_kernel == GROMA_ATTENTION_WARP_PER_KEY || (forced_kernel == GROMA_ATTENTION_AUTO && tq == 1);
	min_split = warp_kernel ? WARP_KERNEL_MIN_SPLIT : THREADS;
	if (tq == 1 && (causal ? q_offset + 1 : tk) > min_split && forced_kernel != GROMA_ATTENTION_PER_QUERY_WHOLE)
	{
		/* a decode step: split the keys so that B·H·splits blocks fill the GPU (flash-decoding) */
		int64_t		keys = causal ? q_offset + 1 : tk,
					split_len = (keys + MAX_SPLITS - 1) / MAX_SPLITS,
					splits;
		size_t		need;
		bool		have = true;
		float	   *split_buf = NULL;

		split_len = split_len < min_split ? min_split : (split_len + min_split - 1) / min_split * min_split;
		splits = (keys + split_len - 1) / split_len;
		/* sized for MAX_SPLITS whatever the context, so a longer prompt later allocates nothing */
		need = (size_t) (batch * heads * MAX_SPLITS * (dim + 2)) * sizeof(float);
		{
			groma_status st;

			/* [B·H, MAX_SPLITS, D + 2]; out of memory: the unsplit kernels below need no buffer */
			split_buf = (float *) groma_cuda_buffer_reserve(&groma_cuda_ctx()->splits, need,
															"attention: key-split buffer", &st);
			if (st.code == GROMA_ERR_NO_MEMORY)
				have = false;
			else if (st.code != GROMA_OK)
				return st;
		}
		if (have)
		{
			if (warp_kernel)
				GROMA_TRY(groma_cuda_attention_decode(q, k, v, scale, causal, q_offset, splits, split_len, split_buf,
													  out));
			else
				GROMA_TRY(launch_attention_split(bq, bk, bv, (float *) out->data, out->stride[0], out->stride[1],
												 out->stride[2], batch, heads, tk, dim, scale, causal, q_offset,
												 splits, split_len, split_buf, groma_cuda_stream()));
			return launch_combine(split_buf, splits, (float *) out->data, out->stride[0], out->stride[1],
								  out->stride[2], batch, heads, dim, groma_cuda_stream());
		}
	}
	if (warp_kernel)
		return groma_cuda_attention_decode(q, k, v, scale, causal, q_offset, 1, 0, NULL, out);
	return launch_attention(bq, bk, bv, (float *) out->data, out->stride[0], out->stride[1], out->stride[2], batch,
							heads, tq, tk, dim, scale, causal, q_offset, groma_cuda_stream());
}
