/*
 * deform_attention.c - one multi-scale deformable attention block.
 */
#include "deform_attention.h"

#include "../runtime/op_check.h"
#include "../runtime/ops.h"
#include "../runtime/ops_spatial.h"

/* Runs the block; see deform_attention.h. */
groma_status
groma_msda_forward(const groma_msda *a, const groma_tensor *query, const groma_tensor *input,
				   int64_t n_h, int64_t n_w, const groma_tensor *ref, groma_arena *act,
				   groma_tensor *out)
{
	int64_t		batch = query->shape[0],
				q = query->shape[1],
				d = query->shape[2],
				s = input->shape[1],
				heads = a->heads,
				points = a->points,
				rdim = ref->shape[2];
	groma_tensor value,
				value4,
				offsets,
				weights,
				weights_rows,
				sampled;
	int64_t		shapes[2] = {n_h, n_w},
				starts[1] = {0};
	size_t		mark = act->used;

	if (s != n_h * n_w || (rdim != 2 && rdim != 4))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "deformable attention: %lld values for a %lldx%lld map, %lld-d references",
						   (long long) s, (long long) n_h, (long long) n_w, (long long) rdim);
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, (int64_t[]) {batch, s, d}, &value));	/* [B, S, d] */
	GROMA_TRY(groma_linear(input, &a->value_w, &a->value_b, &value));
	GROMA_TRY(groma_tensor_reshape(&value, 4, (int64_t[]) {batch, s, heads, d / heads}, &value4));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 4, (int64_t[]) {batch, q, heads, points * 2}, &offsets));	/* [B, Q, H, P·2] */
	{
		groma_tensor flat;

		GROMA_TRY(groma_tensor_reshape(&offsets, 3, (int64_t[]) {batch, q, heads * points * 2}, &flat));
		GROMA_TRY(groma_linear(query, &a->offsets_w, &a->offsets_b, &flat));
	}
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 4, (int64_t[]) {batch, q, heads, points}, &weights));	/* [B, Q, H, P] */
	{
		groma_tensor flat;

		GROMA_TRY(groma_tensor_reshape(&weights, 3, (int64_t[]) {batch, q, heads * points}, &flat));
		GROMA_TRY(groma_linear(query, &a->weights_w, &a->weights_b, &flat));
	}
	/* softmax over the points of each head (one level) */
	GROMA_TRY(groma_tensor_reshape(&weights, 2, (int64_t[]) {batch * q * heads, points}, &weights_rows));
	GROMA_TRY(groma_softmax(&weights_rows, &weights_rows));

	/* sampling locations, in place of the offsets: [B, Q, H, P·2] */
	GROMA_TRY(groma_deform_locations(ref, n_h, n_w, (int) points, &offsets));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, (int64_t[]) {batch, q, d}, &sampled));	/* [B, Q, H·Dh] */
	GROMA_TRY(groma_ms_deform_attn(&value4, shapes, starts, 1, (int) points, &offsets, &weights, &sampled));
	GROMA_TRY(groma_linear(&sampled, &a->out_w, &a->out_b, out));
	act->used = mark;
	return groma_ok();
}
