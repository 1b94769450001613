/*
 * op_attention_cpu.c - scaled dot-product attention, a block of queries at a
 * time, so a long prompt never holds its whole [Tq, Tk] score matrix.
 */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "cpu_parallel.h"
#include "device_ops.h"
#include "op_check.h"
#include "ops.h"

#define QUERY_BLOCK 64

/* Checks one attention operand: CPU, 4 dims, contiguous last dimension, f32 (or, for keys and values, 16-bit). */
static groma_status
check_operand(const char *what, const groma_tensor *t, bool may_be_16bit)
{
	char		buf[64];
	bool		typed = t->dtype == GROMA_F32 ||
		(may_be_16bit && (t->dtype == GROMA_BF16 || t->dtype == GROMA_F16));

	if (!typed || t->device != GROMA_DEVICE_CPU || t->data == NULL || t->ndim != 4 ||
		(t->stride[3] != 1 && t->shape[3] > 1))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT,
						   "attention: %s %s must be %s [B,H,T,D] with a contiguous last dimension",
						   what, groma_tensor_shape_str(t, buf, sizeof(buf)), may_be_16bit ? "f32, bf16 or f16" : "f32");
	return groma_ok();
}

typedef struct attention_job
{
	const groma_tensor *q,
			   *k,
			   *v,
			   *out;
	float		scale;
	bool		causal;
	int64_t		q_offset,
				blocks;			/* query blocks per (batch, head) */
	float	   *scores;			/* [parts][QUERY_BLOCK, Tk] */
	float	   *wide;			/* [parts][2, Tk, D]: one head's 16-bit keys and values widened (NULL for f32) */
} attention_job;

/* dst[Tk, D] = head (b, h) of t, a 16-bit [B, H, Tk, D] tensor, widened to f32 (exact). */
static void
widen_head(const groma_tensor *t, int64_t b, int64_t h, float *dst)
{
	int64_t		tk = t->shape[2],
				dim = t->shape[3];
	const uint16_t *src = (const uint16_t *) t->data + b * t->stride[0] + h * t->stride[1];

	for (int64_t j = 0; j < tk; j++)
		for (int64_t d = 0; d < dim; d++)
			dst[j * dim + d] = groma_element_f32(src, j * t->stride[2] + d, t->dtype);
}

/* Items [begin, end) of (batch, head, query block), with this part's score rows. */
static void
attention_part(void *ctx, int64_t begin, int64_t end, int part)
{
	const attention_job *j = ctx;
	const groma_tensor *q = j->q,
			   *k = j->k,
			   *v = j->v,
			   *out = j->out;
	int64_t		heads = q->shape[1],
				tq = q->shape[2],
				dim = q->shape[3],
				tk = k->shape[2];
	float	   *scores = j->scores + (int64_t) part * QUERY_BLOCK * tk,
			   *wide_k = j->wide ? j->wide + (int64_t) part * 2 * tk * dim : NULL,	/* [Tk, D] */
			   *wide_v = wide_k ? wide_k + tk * dim : NULL;	/* [Tk, D] */
	int64_t		widened = -1;	/* the (batch, head) whose keys and values are in wide_k, wide_v */

	for (int64_t item = begin; item < end; item++)
	{
		int64_t		b = item / (heads * j->blocks),
					h = item / j->blocks % heads,
					q0 = item % j->blocks * QUERY_BLOCK,
					rows = tq - q0 < QUERY_BLOCK ? tq - q0 : QUERY_BLOCK,
					k_rows = k->stride[2],
					v_rows = v->stride[2];
		const float *qh = (const float *) q->data + b * q->stride[0] + h * q->stride[1];
		const float *kh,
				   *vh;
		float	   *oh = (float *) out->data + b * out->stride[0] + h * out->stride[1];

		if (wide_k)
		{
			/* a 16-bit KV cache: this head's keys and values widened once for its query blocks */
			if (widened != item / j->blocks)
			{
				widen_head(k, b, h, wide_k);
				widen_head(v, b, h, wide_v);
				widened = item / j->blocks;
			}
			kh = wide_k;
			vh = wide_v;
			k_rows = v_rows = dim;
		}
		else
		{
			kh = (const float *) k->data + b * k->stride[0] + h * k->stride[1];
			vh = (const float *) v->data + b * v->stride[0] + h * v->stride[1];
		}
		/* scores[rows, Tk] = scale · q[q0:q0+rows] · kᵀ */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int) rows, (int) tk, (int) dim, j->scale,
					qh + q0 * q->stride[2], (int) q->stride[2], kh, (int) k_rows, 0.0f, scores, (int) tk);
		for (int64_t r = 0; r < rows; r++)
		{
			float	   *row = scores + r * tk;

			if (j->causal)
				for (int64_t c = j->q_offset + q0 + r + 1; c < tk; c++)
					row[c] = -INFINITY;
			groma_softmax_row(row, tk);
		}
		/* out[q0:q0+rows] = scores · v */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int) rows, (int) dim, (int) tk, 1.0f, scores,
					(int) tk, vh, (int) v_rows, 0.0f, oh + q0 * out->stride[2], (int) out->stride[2]);
	}
}

/* The compute type for attention next to weight w; see ops.h. */
groma_dtype
groma_compute_dtype(const groma_tensor *w)
{
	if (w->dtype == GROMA_BF16 || w->dtype == GROMA_F16)
		return w->dtype;
	return w->dtype == GROMA_I8 ? GROMA_BF16 : GROMA_F32;
}

/* Attention with 16-bit products on the GPU; see ops.h. */
groma_status
groma_attention_in(groma_dtype compute, const groma_tensor *q, const groma_tensor *k, const groma_tensor *v,
				   float scale, bool causal, int64_t q_offset, groma_arena *scratch, groma_tensor *out)
{
	if (groma_on_device(q) && compute != GROMA_F32)
		return GROMA_DEVICE_CALL("attention", attention_in, compute, q, k, v, scale, causal, q_offset, scratch, out);
	return groma_attention(q, k, v, scale, causal, q_offset, scratch, out);
}

/* out = softmax(scale · q kᵀ + mask) v; see ops.h. */
groma_status
groma_attention(const groma_tensor *q, const groma_tensor *k, const groma_tensor *v, float scale,
				bool causal, int64_t q_offset, groma_arena *scratch, groma_tensor *out)
{
	int64_t		batch,
				heads,
				tq,
				tk,
				dim;
	size_t		mark;
	int			parts = groma_cpu_threads();
	attention_job job;

	if (groma_on_device(q))
		return GROMA_DEVICE_CALL("attention", attention, q, k, v, scale, causal, q_offset, scratch, out);
	GROMA_TRY(check_operand("q", q, false));
	GROMA_TRY(check_operand("k", k, true));
	GROMA_TRY(check_operand("v", v, true));
	GROMA_TRY(check_operand("out", out, false));
	if (k->dtype != v->dtype)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "attention: k and v differ in type");
	batch = q->shape[0];
	heads = q->shape[1];
	tq = q->shape[2];
	dim = q->shape[3];
	tk = k->shape[2];
	GROMA_TRY(groma_check_same_shape("attention", k, v));
	GROMA_TRY(groma_check_same_shape("attention", q, out));
	if (k->shape[0] != batch || k->shape[1] != heads || k->shape[3] != dim)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "attention: q and k disagree on batch, heads or depth");
	if (causal && (q_offset < 0 || q_offset + tq > tk))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT,
						   "attention: causal queries at %lld..%lld need that many keys, have %lld",
						   (long long) q_offset, (long long) (q_offset + tq), (long long) tk);
	if (scratch == NULL)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "attention: a scratch arena is needed");
	if (tk == 0)
	{
		/* no keys: no weight anywhere */
		for (int64_t b = 0; b < batch; b++)
			for (int64_t h = 0; h < heads; h++)
				for (int64_t r = 0; r < tq; r++)
					memset((float *) out->data + b * out->stride[0] + h * out->stride[1] + r * out->stride[2], 0,
						   (size_t) dim * sizeof(float));
		return groma_ok();
	}
	mark = scratch->used;
	job = (attention_job) {q, k, v, out, scale, causal, q_offset, (tq + QUERY_BLOCK - 1) / QUERY_BLOCK, NULL, NULL};
	job.scores = groma_arena_alloc(scratch, (size_t) parts * QUERY_BLOCK * (size_t) tk * sizeof(float));
	if (job.scores != NULL && k->dtype != GROMA_F32)
	{
		/* a 16-bit KV cache: the same f32 attention over its values, widened a head at a time (exact) */
		job.wide = groma_arena_alloc(scratch, (size_t) parts * 2 * (size_t) (tk * dim) * sizeof(float));
		if (job.wide == NULL)
		{
			scratch->used = mark;
			return groma_error(GROMA_ERR_NO_MEMORY, "attention: scratch arena too small for %d heads' %lld 16-bit keys "
							   "and values widened", parts, (long long) tk);
		}
	}
	if (job.scores == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "attention: scratch arena too small for %d x %d x %lld scores",
						   parts, QUERY_BLOCK, (long long) tk);
	/* one item per (batch, head, query block); a block is ~QUERY_BLOCK·Tk·D multiply-adds twice */
	groma_parallel_for(batch * heads * job.blocks, 1 + (1 << 18) / (QUERY_BLOCK * tk * (dim > 0 ? dim : 1)),
					   attention_part, &job);
	scratch->used = mark;
	return groma_ok();
}
