/*
 * op_proposal_queries_cpu.c - the two-stage proposer's query selection as
 * ops, so it runs where its tensors live: the top-k proposals of every
 * image, and their reference boxes and sine position inputs (the CPU twins
 * of kernels/ops_proposal.cu).
 */
#include <math.h>

#include "device_ops.h"
#include "op_check.h"
#include "ops_spatial.h"

/* Fails unless x[B, N] is contiguous f32 and indices[B, K] contiguous i32 on x's device, K at most min(N, 4096). */
groma_status
groma_topk_rows_check(const groma_tensor *x, int k, const groma_tensor *indices)
{
	char		a[64],
				b[64];

	if (x == NULL || indices == NULL || x->data == NULL || indices->data == NULL || x->dtype != GROMA_F32 ||
		indices->dtype != GROMA_I32 || x->device != indices->device || x->ndim != 2 ||
		!groma_tensor_is_contiguous(x) || !groma_tensor_is_contiguous(indices) || indices->ndim != 2 ||
		indices->shape[0] != x->shape[0] || indices->shape[1] != k || k < 0 || k > x->shape[1] || k > 4096)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT,
						   "topk_rows: x %s (contiguous f32 [B, N]) and indices %s (contiguous i32 [B, %d], "
						   "K at most N and 4096) do not fit", x ? groma_tensor_shape_str(x, a, sizeof(a)) : "(missing)",
						   indices ? groma_tensor_shape_str(indices, b, sizeof(b)) : "(missing)", k);
	return groma_ok();
}

/* The top-k of every row of x[B, N] into indices[B, K] (i32); see ops_spatial.h. */
groma_status
groma_topk_rows(const groma_tensor *x, int k, groma_tensor *indices)
{
	int64_t		n,
				picked[4096];

	GROMA_TRY(groma_topk_rows_check(x, k, indices));
	if (groma_on_device(x))
		return GROMA_DEVICE_CALL("topk_rows", topk_rows, x, k, indices);
	n = x->shape[1];
	for (int64_t b = 0; b < x->shape[0]; b++)
	{
		groma_tensor row = groma_f32_1d((float *) x->data + b * n, n);

		GROMA_TRY(groma_topk(&row, k, picked, NULL));
		for (int i = 0; i < k; i++)
			((int32_t *) indices->data)[b * k + i] = (int32_t) picked[i];
	}
	return groma_ok();
}

/* The sine embedding of one proposal's 4 logits into pos[4 · feats] (sin/cos interleaved per coordinate). */
static void
proposal_pos_row(const float *logits, int64_t feats, float *pos)
{
	const float two_pi = 2.0f * (float) M_PI;

	for (int c = 0; c < 4; c++)
	{
		float		v = 1.0f / (1.0f + expf(-logits[c])) * two_pi;
		float	   *dst = pos + c * feats;

		for (int64_t i = 0; i < feats; i += 2)
		{
			float		dim_t = powf(10000.0f, (float) (2 * (i / 2)) / (float) feats);

			dst[i] = sinf(v / dim_t);
			if (i + 1 < feats)
				dst[i + 1] = cosf(v / dim_t);
		}
	}
}

/* Fails unless t is a contiguous f32 tensor of shape [B, K, last] on device. */
static groma_status
check_rows(const char *what, const groma_tensor *t, groma_device device, int64_t batch, int64_t k, int64_t last)
{
	char		a[64];

	if (t == NULL || t->data == NULL || t->dtype != GROMA_F32 || t->device != device || !groma_tensor_is_contiguous(t) ||
		t->ndim != 3 || t->shape[0] != batch || t->shape[1] != k || t->shape[2] != last)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT,
						   "proposal_queries: %s %s must be contiguous f32 [%lld, %lld, %lld] on the coords' device", what,
						   t ? groma_tensor_shape_str(t, a, sizeof(a)) : "(missing)", (long long) batch, (long long) k,
						   (long long) last);
	return groma_ok();
}

/* Fails unless coords[B, N, 4], indices[B, K] (i32), ref[B, K, 4] and pos[B, K, 4F] fit, all on one device. */
groma_status
groma_proposal_queries_check(const groma_tensor *coords, const groma_tensor *indices, const groma_tensor *ref,
							 const groma_tensor *pos)
{
	int64_t		batch,
				k,
				width;

	if (coords == NULL || indices == NULL || pos == NULL || coords->ndim != 3 || pos->ndim != 3)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "proposal_queries: coords [B, N, 4] and pos [B, K, 4F] needed");
	batch = coords->shape[0];
	GROMA_TRY(check_rows("coords", coords, coords->device, batch, coords->shape[1], 4));
	if (indices->data == NULL || indices->dtype != GROMA_I32 || indices->device != coords->device ||
		!groma_tensor_is_contiguous(indices) || indices->ndim != 2 || indices->shape[0] != batch)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "proposal_queries: indices must be contiguous i32 [B, K]");
	k = indices->shape[1];
	width = pos->shape[2];
	GROMA_TRY(check_rows("ref", ref, coords->device, batch, k, 4));
	GROMA_TRY(check_rows("pos", pos, coords->device, batch, k, width));
	if (width % 4 != 0 || width == 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "proposal_queries: pos width %lld is not 4 · features",
						   (long long) width);
	return groma_ok();
}

/* ref and pos of the proposals indices picks from coords; see ops_spatial.h. */
groma_status
groma_proposal_queries(const groma_tensor *coords, const groma_tensor *indices, groma_tensor *ref, groma_tensor *pos)
{
	int64_t		n,
				k,
				width;

	GROMA_TRY(groma_proposal_queries_check(coords, indices, ref, pos));
	if (groma_on_device(coords))
		return GROMA_DEVICE_CALL("proposal_queries", proposal_queries, coords, indices, ref, pos);
	n = coords->shape[1];
	k = indices->shape[1];
	width = pos->shape[2];
	for (int64_t b = 0; b < coords->shape[0]; b++)
		for (int64_t q = 0; q < k; q++)
		{
			int32_t		i = ((const int32_t *) indices->data)[b * k + q];
			const float *src = (const float *) coords->data + (b * n + i) * 4;
			float	   *r = (float *) ref->data + (b * k + q) * 4;

			if (i < 0 || i >= n)
				return groma_error(GROMA_ERR_INVALID_ARGUMENT, "proposal_queries: index %d outside [0, %lld)", i,
								   (long long) n);
			for (int c = 0; c < 4; c++)
				r[c] = 1.0f / (1.0f + expf(-src[c]));
			proposal_pos_row(src, width / 4, (float *) pos->data + (b * k + q) * width);
		}
	return groma_ok();
}
