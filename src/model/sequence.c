/*
 * sequence.c - generations in flight: prefill of one request, then decode
 * steps shared by several (generate.h, groma_sequence).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "generate.h"
#include "kv_pool.h"
#include "prompt_embed.h"
#include "../runtime/cancel.h"
#include "../runtime/ops.h"
#include "../text/prompt.h"

/* Returns a monotonic clock reading in milliseconds. */
static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Records a greedy id: the end at </s> (when stopping there) or at the token limit, else the next input. */
static void
accept_id(groma_sequence *seq, int64_t id, int32_t eos)
{
	if (seq->stop_at_eos && id == eos)
	{
		seq->hit_eos = true;
		seq->done = true;
		return;
	}
	seq->ids[seq->n++] = (int32_t) id;
	seq->next = id;
	if (seq->n == (size_t) seq->max_new_tokens)
		seq->done = true;
}

/* Prompt, cache and prompt embeddings of one sequence; see generate.h. */
groma_status
groma_sequence_begin(const groma_model *m, const groma_tokenizer *tok, const groma_vision_result *vis,
					 const char *query, int max_new_tokens, int first_room, bool stop_at_eos, groma_kv_pool *pool,
					 groma_arena *act, groma_sequence *seq)
{
	int64_t		room = pool != NULL ? groma_sequence_first_room(max_new_tokens, first_room) : max_new_tokens;
	const groma_llama_config *c = &m->llm.cfg;
	groma_prompt_tokens pt;
	int32_t    *ids = NULL;
	size_t		n = 0;
	groma_status st;

	memset(seq, 0, sizeof(*seq));
	GROMA_TRY(groma_prompt_tokens_lookup(tok, &pt));
	GROMA_TRY(groma_prompt_ids(m, tok, vis, query, max_new_tokens, &ids, &n));
	seq->max_new_tokens = max_new_tokens;
	seq->stop_at_eos = stop_at_eos;
	seq->prompt_tokens = n;
	seq->failure = groma_ok();
	seq->ids = malloc((size_t) max_new_tokens * sizeof(int32_t));
	st = seq->ids ? groma_ok() : groma_error(GROMA_ERR_NO_MEMORY, "out of memory");
	if (st.code == GROMA_OK && pool != NULL)
		st = groma_kv_pool_take(pool, c, (int64_t) n + room, &seq->cache);
	else if (st.code == GROMA_OK)
		st = groma_kv_cache_init(&seq->cache, c, (int64_t) n + max_new_tokens, act);
	seq->pooled = st.code == GROMA_OK && pool != NULL;
	if (st.code == GROMA_OK)
		st = groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {(int64_t) n, c->hidden}, &seq->prompt);	/* [T, D] */
	if (st.code == GROMA_OK)
		st = groma_prompt_embed(&m->llm, &pt, ids, n, &vis->image_tokens, &vis->region_tokens,
								vis->refer_match, vis->n_refer, &seq->prompt);
	free(ids);
	if (st.code != GROMA_OK)
		groma_sequence_end(seq, pool);
	return st;
}

/* New positions of a sequence at its next step: its whole prompt until prefilled, then one token. */
static int64_t
step_rows(const groma_sequence *seq)
{
	return seq->prefilled ? 1 : (int64_t) seq->prompt_tokens;
}

/* New tokens a pooled cache holds at first; see generate.h. */
int
groma_sequence_first_room(int max_new_tokens, int first_room)
{
	return first_room > 0 && first_room < max_new_tokens ? first_room : max_new_tokens;
}

/* The capacity seq's cache needs for its next step; see generate.h. */
int64_t
groma_sequence_next_capacity(const groma_sequence *seq)
{
	int64_t		prompt = (int64_t) seq->prompt_tokens,
				most = prompt + seq->max_new_tokens,
				room = seq->cache.capacity - prompt,
				grown = prompt + 2 * (room > 0 ? room : 1);

	if (seq->done || seq->cache.length + step_rows(seq) <= seq->cache.capacity)
		return seq->cache.capacity;
	return grown < most ? grown : most;
}

/* Grows a pooled cache the next step would overflow; see generate.h. */
groma_status
groma_sequence_make_room(const groma_model *m, groma_sequence *seq, groma_kv_pool *pool)
{
	int64_t		capacity = groma_sequence_next_capacity(seq);

	if (capacity == seq->cache.capacity)
		return groma_ok();
	if (!seq->pooled || pool == NULL)
		return groma_error(GROMA_ERR_LIMIT, "a KV cache of %lld positions is full", (long long) seq->cache.capacity);
	return groma_kv_pool_grow(pool, &m->llm.cfg, capacity, &seq->cache);
}

/*
 * One groma_llama_step over live[n] (none done): the prompt of each
 * sequence not yet prefilled, the next token's embedding of the others;
 * each takes its greedy id.
 */
static groma_status
step_together(const groma_model *m, const groma_tokenizer *tok, groma_sequence *const *live, int n,
			  groma_arena *act)
{
	groma_kv_cache *caches[GROMA_KV_POOL_MAX_BLOCKS];
	int64_t		rows[GROMA_KV_POOL_MAX_BLOCKS],
				next[GROMA_KV_POOL_MAX_BLOCKS],
				total = 0,
				first = 0;
	size_t		mark = act->used;
	groma_tensor x;
	groma_status st;
	double		t0 = now_ms(),
				ms;

	for (int i = 0; i < n; i++)
	{
		caches[i] = &live[i]->cache;
		rows[i] = step_rows(live[i]);
		total += rows[i];
	}
	st = groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {total, m->llm.cfg.hidden}, &x);	/* [sum rows, D] */
	for (int i = 0; st.code == GROMA_OK && i < n; i++)
	{
		groma_tensor part;

		st = groma_tensor_narrow(&x, 0, first, rows[i], &part);	/* [rows[i], D] */
		if (st.code == GROMA_OK && live[i]->prefilled)
			st = groma_llama_embed(&m->llm, &live[i]->next, 1, &part);
		else if (st.code == GROMA_OK)
			st = groma_copy(&live[i]->prompt, &part);
		first += rows[i];
	}
	if (st.code == GROMA_OK)
		st = groma_llama_step(&m->llm, caches, rows, n, &x, act, next);
	act->used = mark;
	ms = now_ms() - t0;
	for (int i = 0; st.code == GROMA_OK && i < n; i++)
	{
		if (live[i]->prefilled)
			live[i]->decode_ms += ms;
		else
			live[i]->prefill_ms = ms;
		live[i]->prefilled = true;
		accept_id(live[i], next[i], groma_tokenizer_eos_id(tok));
	}
	return st;
}

/* One step of several sequences, prefills beside decode tokens; see generate.h. */
groma_status
groma_sequence_step(const groma_model *m, const groma_tokenizer *tok, groma_sequence *const *seqs, int n,
					groma_arena *act)
{
	groma_sequence *live[GROMA_KV_POOL_MAX_BLOCKS];
	int			b = 0,
				decoding = 0;
	groma_status st;

	if (n > GROMA_KV_POOL_MAX_BLOCKS)
		return groma_error(GROMA_ERR_LIMIT, "a decode step of %d sequences is over the limit of %d", n,
						   GROMA_KV_POOL_MAX_BLOCKS);
	/* the sequences decoding first, then those to prefill */
	for (int i = 0; i < n; i++)
		if (!seqs[i]->done && seqs[i]->prefilled)
			live[b++] = seqs[i];
	decoding = b;
	for (int i = 0; i < n; i++)
		if (!seqs[i]->done && !seqs[i]->prefilled)
			live[b++] = seqs[i];
	if (b == 0)
		return groma_ok();
	st = step_together(m, tok, live, b, act);
	if (st.code != GROMA_ERR_NO_MEMORY || b == decoding || b == 1)
		return st;
	/* the prefills did not fit beside the others: the decoding ones together, then each prefill alone */
	st = decoding > 0 ? step_together(m, tok, live, decoding, act) : groma_ok();
	for (int i = decoding; st.code == GROMA_OK && i < b; i++)
	{
		groma_status one;

		live[i]->prefill_alone = true;
		one = step_together(m, tok, &live[i], 1, act);
		if (one.code == GROMA_ERR_NO_MEMORY)
		{
			live[i]->failure = one;	/* this prompt alone does not fit: only its request fails */
			live[i]->done = true;
		}
		else
			st = one;
	}
	return st;
}

/* Steps one sequence alone until done; see generate.h. */
groma_status
groma_sequence_run_alone(const groma_model *m, const groma_tokenizer *tok, groma_sequence *seq, groma_arena *act)
{
	groma_status st = groma_ok();

	while (st.code == GROMA_OK && !seq->done)
	{
		st = groma_cancel_check();	/* a cancelled request stops at the next step */
		if (st.code == GROMA_OK)
			st = groma_sequence_step(m, tok, &seq, 1, act);
	}
	return st;
}

/* A generation viewing a sequence; see generate.h. */
groma_generation
groma_sequence_generation(const groma_sequence *seq)
{
	return (groma_generation) {.ids = seq->ids, .n = seq->n, .hit_eos = seq->hit_eos,
		.prompt_tokens = seq->prompt_tokens, .prefill_ms = seq->prefill_ms, .decode_ms = seq->decode_ms};
}

/* Gives the cache back and frees the ids; see generate.h. */
void
groma_sequence_end(groma_sequence *seq, groma_kv_pool *pool)
{
	if (seq->pooled && pool != NULL)
		groma_kv_pool_give(pool, &seq->cache);
	free(seq->ids);
	memset(seq, 0, sizeof(*seq));
}
