/*
 * op_argmax_cpu.c - the greedy pick of each row of scores (the first
 * largest value; a NaN counts as the largest, the first NaN wins, as
 * torch.argmax), over one score matrix or two side by side, written where
 * the scores live so a decode step downloads ids instead of every score.
 */
#include <math.h>

#include "device_ops.h"
#include "op_check.h"
#include "ops.h"

/* Fails unless a[R, Na] (and b[R, Nb]) are contiguous f32 and idx a contiguous i32 [R], all on one device. */
groma_status
groma_argmax_rows_check(const groma_tensor *a, const groma_tensor *b, const groma_tensor *idx)
{
	char		sa[64],
				sb[64],
				si[64];

	if (a == NULL || idx == NULL || a->data == NULL || idx->data == NULL || a->dtype != GROMA_F32 ||
		a->ndim != 2 || a->shape[1] < 1 || !groma_tensor_is_contiguous(a) || idx->dtype != GROMA_I32 ||
		idx->ndim != 1 || idx->shape[0] != a->shape[0] || !groma_tensor_is_contiguous(idx) ||
		idx->device != a->device || a->shape[1] > INT32_MAX ||
		(b && (b->data == NULL || b->dtype != GROMA_F32 || b->ndim != 2 || b->shape[0] != a->shape[0] ||
			   b->shape[1] < 1 || !groma_tensor_is_contiguous(b) || b->device != a->device ||
			   a->shape[1] + b->shape[1] > INT32_MAX)))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT,
						   "argmax_rows: a %s and b %s (contiguous f32 [R, N], N >= 1) and idx %s (contiguous i32 "
						   "[R]) on one device do not fit", a ? groma_tensor_shape_str(a, sa, sizeof(sa)) : "(missing)",
						   b ? groma_tensor_shape_str(b, sb, sizeof(sb)) : "(none)",
						   idx ? groma_tensor_shape_str(idx, si, sizeof(si)) : "(missing)");
	return groma_ok();
}

/* The first largest of each row of a (then b) into idx; see ops.h. */
groma_status
groma_argmax_rows(const groma_tensor *a, const groma_tensor *b, groma_tensor *idx)
{
	int64_t		na,
				nb;

	GROMA_TRY(groma_argmax_rows_check(a, b, idx));
	if (groma_on_device(a))
		return GROMA_DEVICE_CALL("argmax_rows", argmax_rows, a, b, idx);
	na = a->shape[1];
	nb = b ? b->shape[1] : 0;
	for (int64_t r = 0; r < a->shape[0]; r++)
	{
		const float *ra = (const float *) a->data + r * na,
				   *rb = b ? (const float *) b->data + r * nb : NULL;
		int64_t		best = 0;
		float		top = ra[0];

		for (int64_t i = 0; i < na + nb; i++)
		{
			float		v = i < na ? ra[i] : rb[i - na];

			if (isnan(v))
			{
				best = i;
				break;
			}
			if (v > top)
			{
				best = i;
				top = v;
			}
		}
		((int32_t *) idx->data)[r] = (int32_t) best;
	}
	return groma_ok();
}
