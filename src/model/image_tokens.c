/*
 * image_tokens.c - 2×2 neighbour merge and img_txt_bridge.
 */
#include "image_tokens.h"

#include <math.h>

#include "../runtime/op_check.h"
#include "../runtime/ops.h"

/* Binds img_txt_bridge.{0,2}. */
groma_status
groma_bridge_build(groma_bridge *b, int64_t c, int64_t d, const groma_weight_source *src,
				   groma_arena *weights)
{
	GROMA_TRY(groma_bind(src, weights, &b->fc1_w, 2, (int64_t[]) {d, 4 * c}, "img_txt_bridge.0.weight"));
	GROMA_TRY(groma_bind(src, weights, &b->fc1_b, 1, (int64_t[]) {d}, "img_txt_bridge.0.bias"));
	GROMA_TRY(groma_bind(src, weights, &b->fc2_w, 2, (int64_t[]) {d, d}, "img_txt_bridge.2.weight"));
	GROMA_TRY(groma_bind(src, weights, &b->fc2_b, 1, (int64_t[]) {d}, "img_txt_bridge.2.bias"));
	return groma_ok();
}

/* Concatenates 2×2 neighbours of the patch grid; see image_tokens.h. */
groma_status
groma_merge_neighbours(const groma_tensor *last, groma_tensor *merged)
{
	int64_t		batch,
				tokens,
				c,
				n,
				half;
	/* (row offset, column offset) of the four cells, in concatenation order */
	static const int cell_offset[4][2] = {{0, 0}, {1, 0}, {0, 1}, {1, 1}};

	GROMA_TRY(groma_check_f32_anywhere("merge_neighbours", "last", last));
	GROMA_TRY(groma_check_f32_anywhere("merge_neighbours", "merged", merged));
	GROMA_TRY(groma_check_ndim("merge_neighbours", "last", last, 3));
	batch = last->shape[0];
	tokens = last->shape[1] - 1;
	c = last->shape[2];
	n = (int64_t) llround(sqrt((double) tokens));
	if (n * n != tokens || n % 2 != 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "merge_neighbours: %lld patch tokens are not an even square grid",
						   (long long) tokens);
	half = n / 2;
	GROMA_TRY(groma_check_ndim("merge_neighbours", "merged", merged, 3));
	GROMA_TRY(groma_check_dim("merge_neighbours", "merged", merged, 0, batch));
	GROMA_TRY(groma_check_dim("merge_neighbours", "merged", merged, 1, half * half));
	GROMA_TRY(groma_check_dim("merge_neighbours", "merged", merged, 2, 4 * c));
	/* Each cell is a strided view of the grid [B, n, n, C] copied into its quarter of merged [B, half, half, 4C]. */
	for (int k = 0; k < 4; k++)
	{
		groma_tensor patches,
					cell,
					quarter;

		GROMA_TRY(groma_tensor_narrow(last, 1, 1, tokens, &patches));	/* drop CLS */
		cell = (groma_tensor) {
			.data = (float *) patches.data + ((int64_t) cell_offset[k][0] * n + cell_offset[k][1]) * c,
			.dtype = GROMA_F32, .device = last->device, .ndim = 4,
			.shape = {batch, half, half, c},
			.stride = {last->stride[0], 2 * n * c, 2 * c, 1},
		};
		GROMA_TRY(groma_tensor_reshape(merged, 4, (int64_t[]) {batch, half, half, 4 * c}, &quarter));
		GROMA_TRY(groma_tensor_narrow(&quarter, 3, k * c, c, &quarter));
		GROMA_TRY(groma_copy(&cell, &quarter));
	}
	return groma_ok();
}

/* Runs img_txt_bridge; see image_tokens.h. */
groma_status
groma_bridge_forward(const groma_bridge *b, const groma_tensor *merged, groma_arena *act,
					 groma_tensor *features)
{
	groma_tensor mid;
	size_t		mark = act->used;

	GROMA_TRY(groma_check_ndim("bridge", "merged", merged, 3));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3,
								 (int64_t[]) {merged->shape[0], merged->shape[1], b->fc1_w.shape[0]}, &mid));	/* [B, N, D] */
	GROMA_TRY(groma_linear(merged, &b->fc1_w, &b->fc1_b, &mid));
	GROMA_TRY(groma_gelu(&mid, &mid));
	GROMA_TRY(groma_linear(&mid, &b->fc2_w, &b->fc2_b, features));
	act->used = mark;
	return groma_ok();
}

typedef struct tokens_job
{
	const groma_bridge *b;
	const groma_tensor *hidden;	/* [L + 1, B, 1 + n², C] */
	groma_arena *act;
	groma_tensor *features;		/* [B, (n/2)², D] */
} tokens_job;

/* The merge and the bridge for a tokens_job; act is as it was on return, failed or not. */
static groma_status
tokens_work(void *ctx)
{
	tokens_job *j = ctx;
	int64_t		batch = j->hidden->shape[1],
				tokens = j->hidden->shape[2],
				c = j->hidden->shape[3],
				n = (int64_t) llround(sqrt((double) (tokens - 1)));
	groma_tensor last,
				merged;
	size_t		mark = j->act->used;
	groma_status st = groma_tensor_narrow(j->hidden, 0, j->hidden->shape[0] - 1, 1, &last);

	if (st.code == GROMA_OK)
		st = groma_tensor_reshape(&last, 3, (int64_t[]) {batch, tokens, c}, &last);	/* [B, 1 + n², C] */
	if (st.code == GROMA_OK)
		st = groma_arena_tensor(j->act, GROMA_F32, 3, (int64_t[]) {batch, (n / 2) * (n / 2), 4 * c}, &merged);
	if (st.code == GROMA_OK)
		st = groma_merge_neighbours(&last, &merged);
	if (st.code == GROMA_OK)
		st = groma_bridge_forward(j->b, &merged, j->act, j->features);
	j->act->used = mark;
	return st;
}

/* The image tokens of the last hidden state; see image_tokens.h. */
groma_status
groma_image_tokens(const groma_bridge *b, const groma_tensor *hidden, groma_arena *act, groma_tensor *features)
{
	tokens_job	job = {b, hidden, act, features};
	groma_stage_key key;

	GROMA_TRY(groma_check_ndim("image_tokens", "hidden", hidden, 4));
	if (b->graphs == NULL || !groma_tensor_is_contiguous(hidden) || !groma_tensor_is_contiguous(features))
		return tokens_work(&job);
	key = groma_stage_key_of(4, hidden->shape[1], hidden->shape[0], hidden->data, features->data, act);
	return groma_graph_cache_run(b->graphs, hidden->device, &key, sizeof(key), tokens_work, &job);
}
