/*
 * deform_attention.c - one multi-scale deformable attention block.
 */
#include "deform_attention.h"

#include <stdlib.h>

#include "../runtime/op_check.h"
#include "../runtime/ops.h"
#include "../runtime/ops_spatial.h"

typedef struct locations_job
{
	const groma_tensor *ref;	/* [B, Q, 2 or 4] */
	int64_t		n_h,
				n_w,
				samples,		/* heads · points per query */
				points;
} locations_job;

/* loc[B, Q, H, P·2] = reference + offset, scaled by the map size (2-d refs) or the box size (4-d). */
static groma_status
sampling_locations(void *ctx, groma_tensor *loc_t)
{
	const locations_job *j = ctx;
	int64_t		rows = loc_t->shape[0] * loc_t->shape[1],
				rdim = j->ref->shape[2];
	groma_tensor ref;
	float	   *owned;

	GROMA_TRY(groma_host_image(j->ref, &ref, &owned));
	for (int64_t i = 0; i < rows; i++)
	{
		const float *r = (const float *) ref.data + i * rdim;
		float	   *loc = (float *) loc_t->data + i * j->samples * 2;

		for (int64_t k = 0; k < j->samples; k++)
		{
			if (rdim == 2)
			{
				loc[2 * k] = r[0] + loc[2 * k] / (float) j->n_w;
				loc[2 * k + 1] = r[1] + loc[2 * k + 1] / (float) j->n_h;
			}
			else
			{
				loc[2 * k] = r[0] + loc[2 * k] / (float) j->points * r[2] * 0.5f;
				loc[2 * k + 1] = r[1] + loc[2 * k + 1] / (float) j->points * r[3] * 0.5f;
			}
		}
	}
	free(owned);
	return groma_ok();
}

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
	{
		locations_job j = {ref, n_h, n_w, heads * points, points};

		GROMA_TRY(groma_edit_on_host(&offsets, sampling_locations, &j));
	}
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, (int64_t[]) {batch, q, d}, &sampled));	/* [B, Q, H·Dh] */
	GROMA_TRY(groma_ms_deform_attn(&value4, shapes, starts, 1, (int) points, &offsets, &weights, &sampled));
	GROMA_TRY(groma_linear(&sampled, &a->out_w, &a->out_b, out));
	act->used = mark;
	return groma_ok();
}
