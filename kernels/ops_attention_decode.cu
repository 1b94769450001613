/*
 * ops_attention_decode.cu - attention with a warp per key: the 32 lanes of
 * a warp split the head dimension, so each K and V row is read with
 * coalesced loads, and each warp takes four keys at a time (four rows in
 * flight).  Made for decode steps (one query against the KV cache, keys
 * split over blocks), it takes any number of queries.  ops_attention.cu
 * chooses it and sizes the splits of a single sequence's step; the batched
 * decode step (groma_cuda_attention_decode_rows) sizes its own, per cache.
 * Each kernel has a launcher taking a stream.
 */
#include "cuda_common.h"

#define WARPS 8					/* warps per block */
#define KEYS 4					/* keys a warp takes at once */
#define MAX_PER_LANE 8			/* head dimension up to 8 · 32 = 256 */

/* A key or value element as f32 (the cache's type chosen once per block, not per load). */
__device__ static inline float
to_f32(float x)
{
	return x;
}

__device__ static inline float
to_f32(__nv_bfloat16 x)
{
	return __bfloat162float(x);
}

__device__ static inline float
to_f32(__half x)
{
	return __half2float(x);
}

/* The shared memory of warp_per_key_rows: each warp's max, sum and outputs, for the block's combination. */
struct warp_shares
{
	float		m[WARPS];
	float		l[WARPS];
	float		acc[WARPS][MAX_PER_LANE * 32];
};

/*
 * One block's share of one query: keys [kbeg, kend) of krows/vrows (row
 * strides kt, vt; D contiguous; elements of type T) against qrow, a warp
 * per key, KEYS keys per warp at once.  With part_slot, writes the share's
 * max, sum and unnormalised output there (D + 2 floats) for the combining
 * kernel; without, writes the normalised output to out_row.
 */
template <typename T>
__device__ static void
warp_per_key_rows(const float *qrow, const T *krows, int64_t kt, const T *vrows, int64_t vt, int64_t kbeg,
				  int64_t kend, int dim, float scale, float *part_slot, float *out_row, warp_shares &sh)
{
	float	   *warp_m = sh.m,
			   *warp_l = sh.l;
	float		(*warp_acc)[MAX_PER_LANE * 32] = sh.acc;
	int			lane = threadIdx.x & 31,
				warp = threadIdx.x >> 5,
				per_lane = (dim + 31) / 32;
	float		qreg[MAX_PER_LANE],
				acc[MAX_PER_LANE];
	float		m = -INFINITY,
				l = 0.0f;

#pragma unroll
	for (int r = 0; r < MAX_PER_LANE; r++)
	{
		int			d = lane + 32 * r;

		qreg[r] = r < per_lane && d < dim ? qrow[d] : 0.0f;
		acc[r] = 0.0f;
	}
	for (int64_t j0 = kbeg + (int64_t) warp * KEYS; j0 < kend; j0 += (int64_t) WARPS * KEYS)
	{
		float		s[KEYS],
					p[KEYS],
					new_m = m,
					corr;

		/* four dot products at once: each lane its slice of the dimension */
#pragma unroll
		for (int u = 0; u < KEYS; u++)
		{
			s[u] = 0.0f;
			if (j0 + u < kend)
#pragma unroll
				for (int r = 0; r < MAX_PER_LANE; r++)
					if (r < per_lane && lane + 32 * r < dim)
						s[u] += qreg[r] * to_f32(krows[(j0 + u) * kt + lane + 32 * r]);
		}
#pragma unroll
		for (int o = 16; o > 0; o >>= 1)
#pragma unroll
			for (int u = 0; u < KEYS; u++)
				s[u] += __shfl_xor_sync(0xffffffffu, s[u], o);
#pragma unroll
		for (int u = 0; u < KEYS; u++)
		{
			s[u] = j0 + u < kend ? s[u] * scale : -INFINITY;
			new_m = fmaxf(new_m, s[u]);
		}
		/* j0 < kend: s[0] is a real score, so new_m is finite */
		corr = m == -INFINITY ? 0.0f : expf(m - new_m);
		l *= corr;
#pragma unroll
		for (int u = 0; u < KEYS; u++)
		{
			p[u] = j0 + u < kend ? expf(s[u] - new_m) : 0.0f;
			l += p[u];
		}
#pragma unroll
		for (int r = 0; r < MAX_PER_LANE; r++)
			if (r < per_lane && lane + 32 * r < dim)
			{
				float		a = acc[r] * corr;

#pragma unroll
				for (int u = 0; u < KEYS; u++)
					if (j0 + u < kend)
						a += p[u] * to_f32(vrows[(j0 + u) * vt + lane + 32 * r]);
				acc[r] = a;
			}
		m = new_m;
	}
	/* the block's warps combine through shared memory, rescaled to the largest max */
	if (lane == 0)
	{
		warp_m[warp] = m;
		warp_l[warp] = l;
	}
#pragma unroll
	for (int r = 0; r < MAX_PER_LANE; r++)
		warp_acc[warp][lane + 32 * r] = acc[r];
	__syncthreads();
	{
		float		big = -INFINITY,
					sum = 0.0f,
					weight[WARPS];

		for (int w = 0; w < WARPS; w++)
			big = fmaxf(big, warp_m[w]);
		for (int w = 0; w < WARPS; w++)
		{
			weight[w] = warp_m[w] == -INFINITY ? 0.0f : expf(warp_m[w] - big);
			sum += warp_l[w] * weight[w];
		}
		for (int d = threadIdx.x; d < dim; d += blockDim.x)
		{
			float		o = 0.0f;

			for (int w = 0; w < WARPS; w++)
				o += warp_acc[w][d] * weight[w];
			if (part_slot)
				part_slot[2 + d] = o;
			else
				out_row[d] = sum > 0.0f ? o / sum : 0.0f;
		}
		if (part_slot && threadIdx.x == 0)
		{
			part_slot[0] = big;
			part_slot[1] = sum;
		}
	}
}


/*
 * warp_per_key_rows over the rows at element offsets koff of k and voff of
 * v, whose type (f32, bf16 or f16) is kvt: the type is chosen here, once.
 */
__device__ static void
warp_per_key_block(const float *qrow, const void *k, int64_t koff, int64_t kt, const void *v, int64_t voff, int64_t vt,
				   groma_dtype kvt, int64_t kbeg, int64_t kend, int dim, float scale, float *part_slot,
				   float *out_row)
{
	__shared__ warp_shares sh;

	if (kvt == GROMA_BF16)
		warp_per_key_rows(qrow, (const __nv_bfloat16 *) k + koff, kt, (const __nv_bfloat16 *) v + voff, vt, kbeg,
						  kend, dim, scale, part_slot, out_row, sh);
	else if (kvt == GROMA_F16)
		warp_per_key_rows(qrow, (const __half *) k + koff, kt, (const __half *) v + voff, vt, kbeg, kend, dim, scale,
						  part_slot, out_row, sh);
	else
		warp_per_key_rows(qrow, (const float *) k + koff, kt, (const float *) v + voff, vt, kbeg, kend, dim, scale,
						  part_slot, out_row, sh);
}

/*
 * For query i = blockIdx.z of (b, h) = blockIdx.y, keys [z·split_len,
 * (z+1)·split_len) of split z = blockIdx.x (all keys when part is NULL):
 * with part, writes the split's max, sum and unnormalised output to
 * part[((bh·Tq + i)·splits + z)·(D + 2) ..] for the combining kernel;
 * without, writes out[b, h, i, :].  Strides in elements, D contiguous.
 */
__global__ static void
attention_decode_kernel(const float *q, int64_t qb, int64_t qh, int64_t qt, const void *k, int64_t kb, int64_t kh,
						int64_t kt, const void *v, int64_t vb, int64_t vh, int64_t vt, groma_dtype kvt, float *out,
						int64_t ob,
						int64_t oh, int64_t ot, int64_t heads, int64_t tq, int64_t tk, int dim, float scale,
						bool causal, int64_t q_offset, int64_t split_len, float *part)
{
	int64_t		i = blockIdx.z,
				bh = blockIdx.y,
				b = bh / heads,
				h = bh % heads;
	int64_t		kall = causal ? min(tk, q_offset + i + 1) : tk,
				kbeg = part ? (int64_t) blockIdx.x * split_len : 0,
				kend = part ? min(kall, kbeg + split_len) : kall;

	warp_per_key_block(q + b * qb + h * qh + i * qt, k, b * kb + h * kh, kt, v, b * vb + h * vh, vt, kvt, kbeg, kend,
					   dim, scale, part ? part + ((bh * tq + i) * gridDim.x + blockIdx.x) * (dim + 2) : NULL,
					   out + b * ob + h * oh + i * ot);
}

/*
 * Queues attention_decode_kernel on stream over [B, H, T, D] operands given
 * by pointer and strides (elements): `splits` blocks of split_len keys per
 * query writing to part, or one block per query writing out when part is
 * NULL.
 */
static groma_status
launch_attention_decode(const float *q, int64_t qb, int64_t qh, int64_t qt, const void *k, int64_t kb, int64_t kh,
						int64_t kt, const void *v, int64_t vb, int64_t vh, int64_t vt, groma_dtype kvt, float *out,
						int64_t ob,
						int64_t oh, int64_t ot, int64_t batch, int64_t heads, int64_t tq, int64_t tk, int dim,
						float scale, bool causal, int64_t q_offset, int64_t splits, int64_t split_len, float *part,
						cudaStream_t stream)
{
	dim3		grid((unsigned) (part ? splits : 1), (unsigned) (batch * heads), (unsigned) tq);

	attention_decode_kernel<<<grid, WARPS * 32, 0, stream>>>(q, qb, qh, qt, k, kb, kh, kt, v, vb, vh, vt, kvt, out, ob, oh,
															 ot, heads, tq, tk, dim, scale, causal, q_offset,
															 split_len, part);
	return groma_cuda_launched(part ? "attention (warp per key, key splits)" : "attention (warp per key)");
}

/*
 * Queues attention_decode_kernel on the context's stream over the checked
 * [B, H, T, D] operands: `splits` blocks of split_len keys per query
 * writing to part, or one block per query writing out when part is NULL.
 */
extern "C" groma_status
groma_cuda_attention_decode(const groma_tensor *q, const groma_tensor *k, const groma_tensor *v, float scale,
							bool causal, int64_t q_offset, int64_t splits, int64_t split_len, float *part,
							groma_tensor *out)
{
	int64_t		heads = q->shape[1],
				tq = q->shape[2];

	if (q->shape[3] > MAX_PER_LANE * 32)
		return groma_error(GROMA_ERR_UNSUPPORTED, "attention: head dimension %lld over %d", (long long) q->shape[3],
						   MAX_PER_LANE * 32);
	if (tq > 65535)
		return groma_error(GROMA_ERR_LIMIT, "attention: %lld queries in one launch of the warp-per-key kernel",
						   (long long) tq);
	return launch_attention_decode((const float *) q->data, q->stride[0], q->stride[1], q->stride[2],
								   k->data, k->stride[0], k->stride[1], k->stride[2],
								   v->data, v->stride[0], v->stride[1], v->stride[2], k->dtype,
								   (float *) out->data, out->stride[0], out->stride[1], out->stride[2], q->shape[0],
								   heads, tq, k->shape[2], (int) q->shape[3], scale, causal, q_offset, splits,
								   split_len, part, groma_cuda_stream());
}

/* Sequences one launch of the batched decode-step kernels takes (their cache pointers travel as a kernel argument). */
#define DECODE_ROWS_MAX 64
#define ROWS_SPLIT_KEYS 64		/* keys per block of a batched decode step's attention, whatever the cache's size */

/* Per sequence of a batched decode step: its layer's K and V caches [H, cap, D] (passed by value). */
struct decode_rows
{
	void	   *k[DECODE_ROWS_MAX];
	void	   *v[DECODE_ROWS_MAX];
	groma_dtype type;			/* every cache's element type: f32, bf16 or f16 */
	int64_t		head_stride[DECODE_ROWS_MAX];	/* elements between heads: cap · D */
	int64_t		cap[DECODE_ROWS_MAX];	/* positions the caches hold */
};

/* Row b's position, read where the caller left it (so a replayed graph sees each step's); -1 when outside its cache. */
__device__ static inline int64_t
row_position(const decode_rows &rows, const int32_t *positions, int64_t b)
{
	int64_t		pos = positions[b];

	return pos >= 0 && pos < rows.cap[b] ? pos : -1;
}

/*
 * For sequence b = blockIdx.x, head h = blockIdx.y, pair i = threadIdx.x
 * (blockDim.x = D/2): rotates q's pair in place and k's into the K cache at
 * the token's position, and copies v's pair into the V cache (rows of q, k,
 * v [n, H·D] are row_stride apart; inv_freq[D/2] from groma_cuda_rope_table),
 * rounded to nearest even when the caches are 16-bit.
 */
__global__ static void
rope_store_rows_kernel(decode_rows rows, const int32_t *positions, const float *inv_freq, float *q, const float *k,
					   const float *v, int64_t row_stride, int dim)
{
	int64_t		b = blockIdx.x,
				h = blockIdx.y,
				i = threadIdx.x,
				half = dim / 2,
				pos = row_position(rows, positions, b);
	float		angle,
				c,
				s,
				x1,
				x2;
	float	   *qr;
	int64_t		cache_row;		/* element offset of the position's row of head h in both caches */
	const float *kr,
			   *vr;

	if (pos < 0)
		return;					/* the caller checked: never write outside a cache */
	angle = (float) pos * inv_freq[i];
	c = cosf(angle);
	s = sinf(angle);
	qr = q + b * row_stride + h * dim;
	cache_row = h * rows.head_stride[b] + pos * dim;
	kr = k + b * row_stride + h * dim;
	vr = v + b * row_stride + h * dim;
	x1 = qr[i];
	x2 = qr[i + half];
	qr[i] = x1 * c - x2 * s;
	qr[i + half] = x2 * c + x1 * s;
	x1 = kr[i];
	x2 = kr[i + half];
	groma_store_f32(rows.k[b], cache_row + i, rows.type, x1 * c - x2 * s);
	groma_store_f32(rows.k[b], cache_row + i + half, rows.type, x2 * c + x1 * s);
	groma_store_f32(rows.v[b], cache_row + i, rows.type, vr[i]);
	groma_store_f32(rows.v[b], cache_row + i + half, rows.type, vr[i + half]);
}

/*
 * Queues rope_store_rows_kernel on stream for count sequences of heads
 * heads each (rows of q, k, v [count, H·D] row_stride apart).
 */
static groma_status
launch_rope_store_rows(decode_rows rows, const int32_t *positions, const float *inv_freq, float *q, const float *k,
					   const float *v, int64_t row_stride, int dim, int64_t count, int64_t heads, cudaStream_t stream)
{
	dim3		grid((unsigned) count, (unsigned) heads);

	rope_store_rows_kernel<<<grid, (unsigned) (dim / 2), 0, stream>>>(rows, positions, inv_freq, q, k, v, row_stride,
																	  dim);
	return groma_cuda_launched("attention_decode_rows (RoPE and cache writes)");
}

/*
 * ctx row b, head h (blockIdx.x, blockIdx.y) = attention of q's row over
 * positions [0, pos] of b's caches.  With part, block z (blockIdx.z) takes
 * keys [z, z + 1) · ROWS_SPLIT_KEYS of them and writes its max, sum and
 * unnormalised output to part[(b·H + h)·splits + z] (D + 2 floats; max
 * -inf for no keys) for the combining kernel.
 */
__global__ static void
attention_rows_kernel(decode_rows rows, const int32_t *positions, const float *q, float *ctx, int64_t row_stride,
					  int dim, float scale, float *part)
{
	int64_t		b = blockIdx.x,
				h = blockIdx.y,
				pos = row_position(rows, positions, b),
				kbeg = part ? (int64_t) blockIdx.z * ROWS_SPLIT_KEYS : 0,
				kend = part ? min(pos + 1, kbeg + ROWS_SPLIT_KEYS) : pos + 1;
	float	   *slot = part ? part + ((b * gridDim.y + h) * gridDim.z + blockIdx.z) * (dim + 2) : NULL;

	if (kbeg >= kend)
	{
		/*
		 * outside its cache (the caller checked: its ctx row is zeros) or past
		 * its position: nothing to weigh (a whole block returns)
		 */
		if (slot && threadIdx.x == 0)
		{
			slot[0] = -INFINITY;
			slot[1] = 0.0f;
		}
		if (!slot)
			for (int d = threadIdx.x; d < dim; d += blockDim.x)
				ctx[b * row_stride + h * dim + d] = 0.0f;
		return;
	}
	warp_per_key_block(q + b * row_stride + h * dim, rows.k[b], h * rows.head_stride[b], dim, rows.v[b],
					   h * rows.head_stride[b], dim, rows.type, kbeg, kend, dim, scale, slot,
					   ctx + b * row_stride + h * dim);
}

/*
 * Queues attention_rows_kernel on stream for count sequences of heads heads
 * each, into ctx[count, H·D]: splits blocks per head writing to part, then
 * the combining kernel, or (part NULL) one block per head.
 */
static groma_status
launch_attention_rows(decode_rows rows, const int32_t *positions, const float *q, float *ctx, int64_t row_stride,
					  int dim, float scale, int64_t count, int64_t heads, int64_t splits, float *part,
					  cudaStream_t stream)
{
	dim3		grid((unsigned) count, (unsigned) heads, (unsigned) (part ? splits : 1));

	attention_rows_kernel<<<grid, WARPS * 32, 0, stream>>>(rows, positions, q, ctx, row_stride, dim, scale, part);
	GROMA_TRY(groma_cuda_launched(part ? "attention_decode_rows (attention, key splits)"
								  : "attention_decode_rows (attention)"));
	return part ? groma_cuda_attention_combine(part, splits, ctx, row_stride, dim, count, heads, dim)
		: groma_ok();
}

/* A cache view [1, H, cap, D] the kernels can address: one layer's block on the device, of the first cache's type. */
static groma_status
check_rows_cache(const groma_tensor *c, int64_t dim, groma_dtype type)
{
	if (c->device != GROMA_DEVICE_CUDA || c->data == NULL || c->dtype != type ||
		(type != GROMA_F32 && type != GROMA_BF16 && type != GROMA_F16))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "attention_decode_rows: every cache must be an f32, bf16 or "
						   "f16 CUDA tensor of one type");
	if (c->stride[2] != dim || c->stride[3] != 1)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "attention_decode_rows: a cache's rows must be %lld values",
						   (long long) dim);
	if (c->shape[2] > (int64_t) 65535 * ROWS_SPLIT_KEYS)
		return groma_error(GROMA_ERR_LIMIT, "attention_decode_rows: a cache of %lld positions (at most %lld)",
						   (long long) c->shape[2], (long long) 65535 * ROWS_SPLIT_KEYS);
	return groma_ok();
}

/*
 * The most key splits of ROWS_SPLIT_KEYS any of count caches needs.  The
 * split length is the same for every cache, so a row's bits depend on its
 * position alone: not on the rows beside it, nor on its cache's capacity
 * (a cache grown into a larger block gives the same answer).
 */
static int64_t
rows_splits(groma_tensor *const *k_cache, int64_t count)
{
	int64_t		splits = 1;

	for (int64_t b = 0; b < count; b++)
	{
		int64_t		need = (k_cache[b]->shape[2] + ROWS_SPLIT_KEYS - 1) / ROWS_SPLIT_KEYS;

		splits = need > splits ? need : splits;
	}
	return splits;
}

/*
 * Rows one launch takes from count waiting: at most DECODE_ROWS_MAX, and
 * fewer when scratch cannot hold their key splits' partial results (so a
 * row still splits as it would alone); *splits is their most splits, and
 * *part their partial results' buffer (NULL when not even one row's fit).
 * A cache of one split still goes through the partial results, so a row
 * gets the same bits whatever its cache's capacity.
 */
static int64_t
rows_in_launch(groma_tensor *const *k_cache, int64_t count, int64_t heads, int64_t dim, groma_arena_ref scratch,
			   int64_t *splits, float **part)
{
	count = count < DECODE_ROWS_MAX ? count : DECODE_ROWS_MAX;
	*part = NULL;
	for (;;)
	{
		*splits = rows_splits(k_cache, count);
		if (scratch == NULL || scratch->device != GROMA_DEVICE_CUDA)
			return count;
		*part = (float *) groma_arena_alloc(scratch, (size_t) (count * heads * *splits * (dim + 2)) * sizeof(float));
		if (*part != NULL || count == 1)
			return count;
		count = (count + 1) / 2;
	}
}

/* One decode token of each sequence: RoPE and cache writes, attention, and combining its key splits; see ops.h. */
extern "C" groma_status
groma_cuda_attention_decode_rows(groma_tensor *q, groma_tensor *k, const groma_tensor *v, int64_t heads,
								 groma_tensor *const *k_cache, groma_tensor *const *v_cache,
								 const groma_tensor *positions, float theta, float scale, groma_arena_ref scratch,
								 groma_tensor *ctx)
{
	int64_t		n = q->shape[0],
				dim = q->shape[1] / heads;
	const float *inv_freq;
	groma_status st;

	GROMA_TRY(groma_cuda_check_f32("attention_decode_rows", "q", q));
	GROMA_TRY(groma_cuda_check_f32("attention_decode_rows", "k", k));
	GROMA_TRY(groma_cuda_check_f32("attention_decode_rows", "v", v));
	GROMA_TRY(groma_cuda_check_f32("attention_decode_rows", "ctx", ctx));
	if (dim % 2 != 0 || dim > MAX_PER_LANE * 32 || heads > 65535)
		return groma_error(GROMA_ERR_UNSUPPORTED, "attention_decode_rows: %lld heads of %lld (even, at most %d)",
						   (long long) heads, (long long) dim, MAX_PER_LANE * 32);
	inv_freq = groma_cuda_rope_table(theta, dim, &st);
	if (inv_freq == NULL)
		return st;
	for (int64_t first = 0, count; first < n; first += count)
	{
		int64_t		offset = first * q->shape[1],
					splits;
		const int32_t *pos = (const int32_t *) positions->data + first;
		decode_rows rows;
		float	   *part;		/* [count, H, splits, D + 2] key splits' partial results, in scratch */
		size_t		mark = scratch ? scratch->used : 0;

		count = rows_in_launch(k_cache + first, n - first, heads, dim, scratch, &splits, &part);
		rows.type = k_cache[first]->dtype;
		st = groma_ok();
		for (int64_t b = 0; b < count && st.code == GROMA_OK; b++)
		{
			st = check_rows_cache(k_cache[first + b], dim, rows.type);
			if (st.code == GROMA_OK)
				st = check_rows_cache(v_cache[first + b], dim, rows.type);
			rows.k[b] = k_cache[first + b]->data;
			rows.v[b] = v_cache[first + b]->data;
			rows.head_stride[b] = k_cache[first + b]->stride[1];
			rows.cap[b] = k_cache[first + b]->shape[2];
			if (v_cache[first + b]->stride[1] != rows.head_stride[b] ||
				v_cache[first + b]->shape[2] != rows.cap[b])
				st = groma_error(GROMA_ERR_INVALID_ARGUMENT, "attention_decode_rows: K and V caches differ");
		}
		if (st.code == GROMA_OK)
			st = launch_rope_store_rows(rows, pos, inv_freq, (float *) q->data + offset,
										(const float *) k->data + offset, (const float *) v->data + offset,
										q->shape[1], (int) dim, count, heads, groma_cuda_stream());
		/*
		 * key splits fill the GPU when the rows are few (one sequence: H
		 * blocks); without room for even one row's partial results, one
		 * block per head
		 */
		if (st.code == GROMA_OK)
			st = launch_attention_rows(rows, pos, (const float *) q->data + offset, (float *) ctx->data + offset,
									   q->shape[1], (int) dim, scale, count, heads, splits, part,
									   groma_cuda_stream());
		if (scratch)
			scratch->used = mark;	/* the partial results go back, after a failure too */
		GROMA_TRY(st);
	}
	return groma_ok();
}
