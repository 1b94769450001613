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

/* Host floats of logits scratch for n sequences; see generate.h. */
size_t
groma_sequence_logits_floats(const groma_model *m, int n)
{
	return (size_t) (n > 0 ? n : 1) * ((size_t) m->llm.cfg.vocab + (size_t) m->llm.cfg.extra_vocab);
}

/* Prompt, cache and prefill of one sequence; see generate.h. */
groma_status
groma_sequence_begin(const groma_model *m, const groma_tokenizer *tok, const groma_vision_result *vis,
					 const char *query, int max_new_tokens, bool stop_at_eos, groma_kv_pool *pool,
					 groma_arena *act, groma_sequence *seq)
{
	const groma_llama_config *c = &m->llm.cfg;
	groma_prompt_tokens pt;
	int32_t    *ids = NULL;
	size_t		n = 0,
				mark;
	groma_tensor embeds;
	float	   *logits = NULL;
	int64_t		first;
	groma_status st;
	double		t0;

	memset(seq, 0, sizeof(*seq));
	GROMA_TRY(groma_prompt_tokens_lookup(tok, &pt));
	GROMA_TRY(groma_prompt_ids(m, tok, vis, query, max_new_tokens, &ids, &n));
	seq->max_new_tokens = max_new_tokens;
	seq->stop_at_eos = stop_at_eos;
	seq->prompt_tokens = n;
	seq->ids = malloc((size_t) max_new_tokens * sizeof(int32_t));
	logits = malloc(groma_sequence_logits_floats(m, 1) * sizeof(float));	/* [V + X] */
	st = seq->ids && logits ? groma_ok() : groma_error(GROMA_ERR_NO_MEMORY, "out of memory");
	if (st.code == GROMA_OK && pool != NULL)
		st = groma_kv_pool_take(pool, c, (int64_t) n + max_new_tokens, &seq->cache);
	else if (st.code == GROMA_OK)
		st = groma_kv_cache_init(&seq->cache, c, (int64_t) n + max_new_tokens, act);
	seq->pooled = st.code == GROMA_OK && pool != NULL;
	mark = act->used;			/* a cache from act stays below the mark */
	if (st.code == GROMA_OK)
		st = groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {(int64_t) n, c->hidden}, &embeds);	/* [T, D] */
	if (st.code == GROMA_OK)
		st = groma_prompt_embed(&m->llm, &pt, ids, n, &vis->image_tokens, &vis->region_tokens,
								vis->refer_match, vis->n_refer, &embeds);
	t0 = now_ms();
	if (st.code == GROMA_OK)
		st = groma_llama_forward(&m->llm, &seq->cache, &embeds, act, logits, NULL);
	seq->prefill_ms = now_ms() - t0;
	act->used = mark;
	if (st.code == GROMA_OK)
	{
		first = groma_argmax(logits, (int64_t) c->vocab + c->extra_vocab);
		accept_id(seq, first, groma_tokenizer_eos_id(tok));
	}
	free(ids);
	free(logits);
	if (st.code != GROMA_OK)
		groma_sequence_end(seq, pool);
	return st;
}

/* One batched decode step; see generate.h. */
groma_status
groma_sequence_step(const groma_model *m, const groma_tokenizer *tok, groma_sequence *const *seqs, int n,
					groma_arena *act, float *logits)
{
	groma_kv_cache *caches[GROMA_KV_POOL_MAX_BLOCKS];
	groma_sequence *live[GROMA_KV_POOL_MAX_BLOCKS];
	int64_t		next[GROMA_KV_POOL_MAX_BLOCKS];
	int			b = 0;
	size_t		mark = act->used;
	groma_tensor x;
	groma_status st;
	double		t0 = now_ms(),
				ms;

	if (n > GROMA_KV_POOL_MAX_BLOCKS)
		return groma_error(GROMA_ERR_LIMIT, "a decode step of %d sequences is over the limit of %d", n,
						   GROMA_KV_POOL_MAX_BLOCKS);
	for (int i = 0; i < n; i++)
		if (!seqs[i]->done)
		{
			live[b] = seqs[i];
			caches[b++] = &seqs[i]->cache;
		}
	if (b == 0)
		return groma_ok();
	st = groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {b, m->llm.cfg.hidden}, &x);	/* [B, D] */
	for (int i = 0; st.code == GROMA_OK && i < b; i++)
	{
		groma_tensor row;

		st = groma_tensor_narrow(&x, 0, i, 1, &row);	/* [1, D] */
		if (st.code == GROMA_OK)
			st = groma_llama_embed(&m->llm, &live[i]->next, 1, &row);
	}
	if (st.code == GROMA_OK)
		st = groma_llama_decode_batch(&m->llm, caches, &x, act, logits, next);
	act->used = mark;
	ms = now_ms() - t0;
	for (int i = 0; st.code == GROMA_OK && i < b; i++)
	{
		live[i]->decode_ms += ms;
		accept_id(live[i], next[i], groma_tokenizer_eos_id(tok));
	}
	return st;
}

/* Steps one sequence alone until done; see generate.h. */
groma_status
groma_sequence_run_alone(const groma_model *m, const groma_tokenizer *tok, groma_sequence *seq, groma_arena *act)
{
	float	   *logits = malloc(groma_sequence_logits_floats(m, 1) * sizeof(float));	/* [V + X] */
	groma_status st = logits ? groma_ok() : groma_error(GROMA_ERR_NO_MEMORY, "out of memory");

	while (st.code == GROMA_OK && !seq->done)
	{
		st = groma_cancel_check();	/* a cancelled request stops at the next step */
		if (st.code == GROMA_OK)
			st = groma_sequence_step(m, tok, &seq, 1, act, logits);
	}
	free(logits);
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
