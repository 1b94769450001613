/*
 * generate.c - prompt, prefill and greedy decoding.
 */
#include "generate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../runtime/cancel.h"
#include "../text/prompt.h"
#include "prompt_embed.h"

/* Returns a monotonic clock reading in milliseconds. */
static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Tokenizes and expands the conversation for query into *ids (malloc). */
static groma_status
prompt_ids(const groma_tokenizer *tok, const groma_prompt_tokens *pt, const groma_vision_result *vis,
		   const char *query, int32_t **ids, size_t *n)
{
	char	   *text = NULL;
	int32_t    *raw = NULL;
	size_t		n_raw = 0,
				cap;
	groma_status st = groma_prompt_text(query, &text);

	*ids = NULL;
	if (st.code != GROMA_OK)
		return st;
	cap = strlen(text) + 8;		/* never more ids than bytes, plus <s> */
	raw = malloc(cap * sizeof(int32_t));
	if (raw == NULL)
		st = groma_error(GROMA_ERR_NO_MEMORY, "out of memory");
	if (st.code == GROMA_OK)
		st = groma_tokenizer_encode(tok, text, true, raw, cap, &n_raw);
	if (st.code == GROMA_OK)
		st = groma_prompt_expand(pt, raw, n_raw, (int) vis->image_tokens.shape[0], vis->n_regions,
								 vis->refer_match, vis->n_refer, ids, n);
	free(raw);
	free(text);
	return st;
}

/* Generates an answer; see generate.h. */
groma_status
groma_generate(const groma_model *m, const groma_tokenizer *tok, const groma_vision_result *vis,
			   const char *query, int max_new_tokens, bool stop_at_eos, groma_arena *act,
			   groma_generation *out)
{
	const groma_llama_config *c = &m->llm.cfg;
	int64_t		vocab = (int64_t) c->vocab + c->extra_vocab;
	groma_prompt_tokens pt;
	int32_t    *ids = NULL;
	size_t		n = 0,
				mark = act->used;
	groma_kv_cache cache;
	groma_tensor embeds,
				step_embed;
	float	   *logits = NULL;
	int32_t		eos = groma_tokenizer_eos_id(tok);
	groma_status st;
	double		t0;

	memset(out, 0, sizeof(*out));
	if (max_new_tokens < 1 || max_new_tokens > 4096)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "max_new_tokens must be in 1..4096, got %d", max_new_tokens);
	GROMA_TRY(groma_prompt_tokens_lookup(tok, &pt));
	GROMA_TRY(prompt_ids(tok, &pt, vis, query, &ids, &n));
	out->prompt_tokens = n;
	out->ids = malloc((size_t) max_new_tokens * sizeof(int32_t));
	logits = malloc((size_t) vocab * sizeof(float));	/* [V + X] */
	st = out->ids && logits ? groma_ok() : groma_error(GROMA_ERR_NO_MEMORY, "out of memory");
	/* the cache comes from the activation arena, like all scratch: no allocation per request */
	if (st.code == GROMA_OK)
		st = groma_kv_cache_init(&cache, c, (int64_t) n + max_new_tokens, act);
	if (st.code == GROMA_OK)
		st = groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {1, c->hidden}, &step_embed);	/* [1, D] */
	if (st.code == GROMA_OK)
		st = groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {(int64_t) n, c->hidden}, &embeds);	/* [T, D] */
	if (st.code == GROMA_OK)
		st = groma_prompt_embed(&m->llm, &pt, ids, n, &vis->image_tokens, &vis->region_tokens,
								vis->refer_match, vis->n_refer, &embeds);
	if (st.code == GROMA_OK)
		st = groma_cancel_check();
	t0 = now_ms();
	if (st.code == GROMA_OK)
		st = groma_llama_forward(&m->llm, &cache, &embeds, act, logits, NULL);
	out->prefill_ms = now_ms() - t0;

	t0 = now_ms();
	for (int s = 0; st.code == GROMA_OK && s < max_new_tokens; s++)
	{
		int64_t		next = groma_argmax(logits, vocab);

		if (stop_at_eos && next == eos)
		{
			out->hit_eos = true;
			break;
		}
		out->ids[out->n++] = (int32_t) next;
		if (s + 1 == max_new_tokens)
			break;
		st = groma_cancel_check();	/* a cancelled request stops at the next step */
		if (st.code == GROMA_OK)
			st = groma_llama_embed(&m->llm, &next, 1, &step_embed);
		if (st.code == GROMA_OK)
			st = groma_llama_forward(&m->llm, &cache, &step_embed, act, logits, NULL);
	}
	out->decode_ms = now_ms() - t0;
	free(ids);
	free(logits);
	act->used = mark;
	if (st.code != GROMA_OK)
		groma_generation_free(out);
	return st;
}

/* Frees the generated ids. */
void
groma_generation_free(groma_generation *g)
{
	free(g->ids);
	memset(g, 0, sizeof(*g));
}
