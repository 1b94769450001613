/*
 * proposer_tables.c - the proposer's tables that depend only on the
 * feature map's side: the position embedding its encoder adds, the encoder
 * reference points and the two-stage proposals.  The model builds them
 * once with its weights, so a forward pass uploads nothing.
 */
#include "proposer.h"

#include "../runtime/ops.h"
#include "../runtime/ops_spatial.h"

/* host[d, n, n] = the sine position embedding of an n x n map; ctx points at {n, d}. */
static groma_status
sine_host(void *ctx, groma_tensor *host)
{
	const int  *nd = ctx;

	return groma_sine_position_embedding(nd[0], nd[0], nd[1], host);
}

/* host[n², 2] = the encoder reference points of an n x n map; ctx points at n. */
static groma_status
reference_points_host(void *ctx, groma_tensor *host)
{
	const int  *n = ctx;

	return groma_encoder_reference_points(*n, *n, host);
}

/* host[n², 4] = the proposal logits of every pixel of an n x n map; ctx points at n. */
static groma_status
proposals_host(void *ctx, groma_tensor *host)
{
	const int  *n = ctx;

	return groma_output_proposals(*n, *n, 0, host, NULL);
}

/* Builds the tables for an n x n map in arena; see proposer.h. */
groma_status
groma_proposer_make_tables(const groma_proposer *p, int64_t n, groma_arena *arena, groma_proposer_tables *t)
{
	int64_t		d = p->cfg.d_model;
	int			nd[2] = {(int) n, (int) d};
	groma_tensor sine,
				sine_t;
	size_t		mark;

	if (n <= 0 || n > 4096)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "proposer: a feature map of side %lld", (long long) n);
	t->n = 0;
	GROMA_TRY(groma_arena_tensor(arena, GROMA_F32, 2, (int64_t[]) {n * n, d}, &t->pos));
	GROMA_TRY(groma_arena_tensor(arena, GROMA_F32, 2, (int64_t[]) {n * n, 2}, &t->ref));
	GROMA_TRY(groma_arena_tensor(arena, GROMA_F32, 2, (int64_t[]) {n * n, 4}, &t->proposals));
	GROMA_TRY(groma_fill_from_host(&t->ref, reference_points_host, &nd[0]));
	GROMA_TRY(groma_fill_from_host(&t->proposals, proposals_host, &nd[0]));
	/* pos = sine[d, n, n] laid out as [n², d], plus the level embedding */
	mark = arena->used;
	GROMA_TRY(groma_arena_tensor(arena, GROMA_F32, 3, (int64_t[]) {d, n, n}, &sine));
	GROMA_TRY(groma_fill_from_host(&sine, sine_host, nd));
	GROMA_TRY(groma_tensor_reshape(&sine, 2, (int64_t[]) {d, n * n}, &sine_t));
	GROMA_TRY(groma_tensor_permute(&sine_t, (int[]) {1, 0}, &sine_t));
	GROMA_TRY(groma_copy(&sine_t, &t->pos));
	GROMA_TRY(groma_add(&t->pos, &p->level_embed, &t->pos));
	arena->used = mark;
	t->n = n;
	return groma_ok();
}
