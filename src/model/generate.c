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

/* Tokenizes the conversation for query, placeholders unexpanded, into *raw (malloc). */
static groma_status
prompt_raw_ids(const groma_tokenizer *tok, const char *query, int32_t **raw, size_t *n_raw)
{
	char	   *text = NULL;
	size_t		cap;
	groma_status st = groma_prompt_text(query, &text);

	*raw = NULL;
	*n_raw = 0;
	if (st.code != GROMA_OK)
		return st;
	cap = strlen(text) + 8;		/* never more ids than bytes, plus <s> */
	*raw = malloc(cap * sizeof(int32_t));
	if (*raw == NULL)
		st = groma_error(GROMA_ERR_NO_MEMORY, "out of memory");
	if (st.code == GROMA_OK)
		st = groma_tokenizer_encode(tok, text, true, *raw, cap, n_raw);
	free(text);
	return st;
}

/* Tokenizes and expands the conversation for query into *ids (malloc). */
static groma_status
prompt_ids(const groma_tokenizer *tok, const groma_prompt_tokens *pt, const groma_vision_result *vis,
		   const char *query, int32_t **ids, size_t *n)
{
	int32_t    *raw = NULL;
	size_t		n_raw = 0;
	groma_status st = prompt_raw_ids(tok, query, &raw, &n_raw);

	*ids = NULL;
	if (st.code == GROMA_OK)
		st = groma_prompt_expand(pt, raw, n_raw, (int) vis->image_tokens.shape[0], vis->n_regions,
								 vis->refer_match, vis->n_refer, ids, n);
	free(raw);
	return st;
}

/* GROMA_ERR_LIMIT when prompt positions plus max_new_tokens exceed the model's context, naming both. */
static groma_status
check_context(const groma_model *m, size_t prompt, int max_new_tokens, const char *qualifier)
{
	int			context = m->cfg.llm.max_position_embeddings;

	if (prompt + (size_t) max_new_tokens <= (size_t) context)
		return groma_ok();
	return groma_error(GROMA_ERR_LIMIT,
					   "prompt of %zu tokens%s plus %d new tokens exceeds the model's context of %d "
					   "(max_position_embeddings)", prompt, qualifier, max_new_tokens, context);
}

/* Checks the prompt's length against the context before vision; see generate.h. */
groma_status
groma_generate_check_length(const groma_model *m, const groma_tokenizer *tok, const char *query,
							int max_new_tokens)
{
	const groma_dinov2_config *vc = &m->vision.cfg;
	int64_t		half = (vc->image / vc->patch) / 2;
	int64_t		regions = m->select.max_regions > 1 ? m->select.max_regions : 1;
	groma_prompt_tokens pt;
	int32_t    *raw = NULL;
	size_t		n_raw = 0,
				bound;
	groma_status st;

	if (max_new_tokens < 1 || max_new_tokens > 4096)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "max_new_tokens must be in 1..4096, got %d", max_new_tokens);
	GROMA_TRY(groma_prompt_tokens_lookup(tok, &pt));
	st = prompt_raw_ids(tok, query, &raw, &n_raw);
	bound = n_raw;
	/* <image> becomes (grid/2)^2 image tokens; <region> becomes <rK> <region> per region (at most max_regions) */
	for (size_t i = 0; st.code == GROMA_OK && i < n_raw; i++)
	{
		if (raw[i] == pt.image)
			bound += (size_t) (half * half) - 1;
		else if (raw[i] == pt.region)
			bound += (size_t) (2 * regions) - 1;
	}
	free(raw);
	if (st.code == GROMA_OK)
		st = check_context(m, bound, max_new_tokens, " (with every region the model may find)");
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
	st = check_context(m, n, max_new_tokens, "");
	if (st.code != GROMA_OK)
	{
		free(ids);
		return st;
	}
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
