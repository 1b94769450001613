/*
 * ops_attention_decode.cu - attention with a warp per key: the 32 lanes of
 * a warp split the head dimension, so each K and V row is read with
 * coalesced loads, and each warp takes four keys at a time (four rows in
 * flight).  Made for decode steps (one query against the KV cache, keys
 * split over blocks), it takes any number of queries.  ops_attention.cu
 * chooses it and sizes the splits.
 */
#include "cuda_common.h"

#define WARPS 8					/* warps per block */
#define KEYS 4					/* keys a warp takes at once */
#define MAX_PER_LANE 8			/* head dimension up to 8 · 32 = 256 */

/*
 * For query i = blockIdx.z of (b, h) = blockIdx.y, keys [z·split_len,
 * (z+1)·split_len) of split z = blockIdx.x (all keys when part is NULL):
 * with part, writes the split's max, sum and unnormalised output to
 * part[((bh·Tq + i)·splits + z)·(D + 2) ..] for the combining kernel;
 * without, writes out[b, h, i, :].  Strides in elements, D contiguous.
 */
__global__ static void
attention_decode_kernel(const float *q, int64_t qb, int64_t qh, int64_t qt, const float *k, int64_t kb, int64_t kh,
						int64_t kt, const float *v, int64_t vb, int64_t vh, int64_t vt, float *out, int64_t ob,
						int64_t oh, int64_t ot, int64_t heads, int64_t tq, int64_t tk, int dim, float scale,
						bool causal, int64_t q_offset, int64_t split_len, float *part)
{
	__shared__ float warp_m[WARPS],
				warp_l[WARPS];
	__shared__ float warp_acc[WARPS][MAX_PER_LANE * 32];
	int			lane = threadIdx.x & 31,
				warp = threadIdx.x >> 5,
				per_lane = (dim + 31) / 32;
	int64_t		i = blockIdx.z,
				bh = blockIdx.y,
				b = bh / heads,
				h = bh % heads;
	int64_t		kall = causal ? min(tk, q_offset + i + 1) : tk,
				kbeg = part ? (int64_t) blockIdx.x * split_len : 0,
				kend = part ? min(kall, kbeg + split_len) : kall;
	const float *krows = k + b * kb + h * kh;
	const float *vrows = v + b * vb + h * vh;
	float		qreg[MAX_PER_LANE],
				acc[MAX_PER_LANE];
	float		m = -INFINITY,
				l = 0.0f;

#pragma unroll
	for (int r = 0; r < MAX_PER_LANE; r++)
	{
		int			d = lane + 32 * r;

		qreg[r] = r < per_lane && d < dim ? q[b * qb + h * qh + i * qt + d] : 0.0f;
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
						s[u] += qreg[r] * krows[(j0 + u) * kt + lane + 32 * r];
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
						a += p[u] * vrows[(j0 + u) * vt + lane + 32 * r];
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
			if (part)
				part[((bh * tq + i) * gridDim.x + blockIdx.x) * (dim + 2) + 2 + d] = o;
			else
				out[b * ob + h * oh + i * ot + d] = sum > 0.0f ? o / sum : 0.0f;
		}
		if (part && threadIdx.x == 0)
		{
			part[((bh * tq + i) * gridDim.x + blockIdx.x) * (dim + 2)] = big;
			part[((bh * tq + i) * gridDim.x + blockIdx.x) * (dim + 2) + 1] = sum;
		}
	}
}

/*
 * Queues attention_decode_kernel over the checked [B, H, T, D] operands:
 * `splits` blocks of split_len keys per query writing to part, or one
 * block per query writing out when part is NULL.
 */
extern "C" groma_status
groma_cuda_attention_decode(const groma_tensor *q, const groma_tensor *k, const groma_tensor *v, float scale,
							bool causal, int64_t q_offset, int64_t splits, int64_t split_len, float *part,
							groma_tensor *out)
{
	int64_t		heads = q->shape[1],
				tq = q->shape[2];
	dim3		grid((unsigned) (part ? splits : 1), (unsigned) (q->shape[0] * heads), (unsigned) tq);

	if (q->shape[3] > MAX_PER_LANE * 32)
		return groma_error(GROMA_ERR_UNSUPPORTED, "attention: head dimension %lld over %d", (long long) q->shape[3],
						   MAX_PER_LANE * 32);
	if (tq > 65535)
		return groma_error(GROMA_ERR_LIMIT, "attention: %lld queries in one launch of the warp-per-key kernel",
						   (long long) tq);
	attention_decode_kernel<<<grid, WARPS * 32, 0, groma_cuda_stream()>>>(
		(const float *) q->data, q->stride[0], q->stride[1], q->stride[2], (const float *) k->data, k->stride[0],
		k->stride[1], k->stride[2], (const float *) v->data, v->stride[0], v->stride[1], v->stride[2],
		(float *) out->data, out->stride[0], out->stride[1], out->stride[2], heads, tq, k->shape[2],
		(int) q->shape[3], scale, causal, q_offset, split_len, part);
	return groma_cuda_launched(part ? "attention (warp per key, key splits)" : "attention (warp per key)");
}
