/*
 * ops_attention.cu - scaled dot-product attention on the GPU with an
 * online softmax: one thread block per (batch, head, query) walks the keys
 * in chunks, keeping a running max, sum and output, so no score matrix is
 * ever stored (long prompts cost O(Tk) memory per query, not O(Tq·Tk)).
 */
#include "cuda_common.h"

#define THREADS 128				/* keys per chunk, and threads per block */
#define MAX_DIM 256				/* head dimension limit: two output slots per thread */

/* Strides of one [B, H, T, D] operand (elements; D contiguous). */
struct bhtd
{
	const float *data;
	int64_t		sb,
				sh,
				st;
};

/* out[b, h, i, :] = softmax(scale · q kᵀ + mask) v for query i of (b, h) = blockIdx.y/z. */
__global__ static void
attention_kernel(bhtd q, bhtd k, bhtd v, float *out, int64_t ob, int64_t oh, int64_t ot, int64_t heads,
				 int64_t tk, int64_t dim, float scale, bool causal, int64_t q_offset)
{
	__shared__ float qs[MAX_DIM];
	__shared__ float p[THREADS];
	__shared__ float scratch[32];
	int64_t		i = blockIdx.x,
				bh = blockIdx.y,
				b = bh / heads,
				h = bh % heads;
	int64_t		kend = causal ? min(tk, q_offset + i + 1) : tk;
	const float *qrow = q.data + b * q.sb + h * q.sh + i * q.st;
	const float *kbase = k.data + b * k.sb + h * k.sh;
	const float *vbase = v.data + b * v.sb + h * v.sh;
	float		m = -INFINITY,
				l = 0.0f,
				acc[2] = {0.0f, 0.0f};

	for (int64_t d = threadIdx.x; d < dim; d += blockDim.x)
		qs[d] = qrow[d];
	__syncthreads();
	for (int64_t j0 = 0; j0 < kend; j0 += THREADS)
	{
		int64_t		j = j0 + threadIdx.x;
		float		s = -INFINITY,
					chunk_max,
					new_m,
					corr,
					pj;

		if (j < kend)
		{
			const float *krow = kbase + j * k.st;

			s = 0.0f;
			for (int64_t d = 0; d < dim; d++)
				s += qs[d] * krow[d];
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
					a += p[t] * vbase[(j0 + t) * v.st + d];
				acc[r] = a;
			}
		}
		m = new_m;
		__syncthreads();		/* p[] is rewritten by the next chunk */
	}
	for (int r = 0; r < 2; r++)
	{
		int64_t		d = threadIdx.x + r * THREADS;

		if (d < dim)
			out[b * ob + h * oh + i * ot + d] = l > 0.0f ? acc[r] / l : 0.0f;
	}
}

/* Returns the strides of a [B, H, T, D] CUDA operand with contiguous D. */
static groma_status
operand(const char *what, const groma_tensor *t, bhtd *o)
{
	if (t->data == NULL || t->dtype != GROMA_F32 || t->device != GROMA_DEVICE_CUDA || t->ndim != 4 ||
		(t->stride[3] != 1 && t->shape[3] > 1))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "attention: %s must be an f32 CUDA [B,H,T,D] tensor, D contiguous", what);
	o->data = (const float *) t->data;
	o->sb = t->stride[0];
	o->sh = t->stride[1];
	o->st = t->stride[2];
	return groma_ok();
}

/* out = softmax(scale · q kᵀ + causal mask) v; see ops.h. */
extern "C" groma_status
groma_cuda_attention(const groma_tensor *q, const groma_tensor *k, const groma_tensor *v, float scale, bool causal,
					 int64_t q_offset, groma_tensor *out)
{
	bhtd		bq,
				bk,
				bv,
				bo;
	int64_t		batch = q->shape[0],
				heads = q->shape[1],
				tq = q->shape[2],
				tk = k->shape[2],
				dim = q->shape[3];
	dim3		grid;

	GROMA_TRY(operand("q", q, &bq));
	GROMA_TRY(operand("k", k, &bk));
	GROMA_TRY(operand("v", v, &bv));
	GROMA_TRY(operand("out", out, &bo));
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
	grid = dim3((unsigned) tq, (unsigned) (batch * heads));
	attention_kernel<<<grid, THREADS, 0, groma_cuda_stream()>>>(bq, bk, bv, (float *) out->data, out->stride[0],
																out->stride[1], out->stride[2], heads, tk, dim, scale,
																causal, q_offset);
	return groma_cuda_launched("attention");
}
