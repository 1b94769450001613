/*
 * generate.c - prompt, prefill and greedy decoding.
 */
#include "generate.h"

#include <stdlib.h>
#include <string.h>

#include "../text/prompt.h"

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

/* Tokenizes and expands the conversation for query, checking the context; see generate.h. */
groma_status
groma_prompt_ids(const groma_model *m, const groma_tokenizer *tok, const groma_vision_result *vis,
				 const char *query, int max_new_tokens, int32_t **ids, size_t *n)
{
	groma_prompt_tokens pt;
	int32_t    *raw = NULL;
	size_t		n_raw = 0;
	groma_status st;

	*ids = NULL;
	*n = 0;
	if (max_new_tokens < 1 || max_new_tokens > 4096)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "max_new_tokens must be in 1..4096, got %d", max_new_tokens);
	GROMA_TRY(groma_prompt_tokens_lookup(tok, &pt));
	st = prompt_raw_ids(tok, query, &raw, &n_raw);
	if (st.code == GROMA_OK)
		st = groma_prompt_expand(&pt, raw, n_raw, (int) vis->image_tokens.shape[0], vis->n_regions,
								 vis->refer_match, vis->n_refer, ids, n);
	free(raw);
	if (st.code == GROMA_OK)
		st = check_context(m, *n, max_new_tokens, "");
	if (st.code != GROMA_OK)
	{
		free(*ids);
		*ids = NULL;
		*n = 0;
	}
	return st;
}

/* Bounds the positions of query's generation and checks them against the context; see generate.h. */
groma_status
groma_generate_bound(const groma_model *m, const groma_tokenizer *tok, const char *query, int max_new_tokens,
					 int64_t *positions)
{
	const groma_dinov2_config *vc = &m->vision.cfg;
	int64_t		half = (vc->image / vc->patch) / 2;
	int64_t		regions = m->select.max_regions > 1 ? m->select.max_regions : 1;
	groma_prompt_tokens pt;
	int32_t    *raw = NULL;
	size_t		n_raw = 0,
				bound;
	groma_status st;

	*positions = 0;
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
	if (st.code == GROMA_OK)
		*positions = (int64_t) bound + max_new_tokens;
	return st;
}

/* Checks the prompt's length against the context before vision; see generate.h. */
groma_status
groma_generate_check_length(const groma_model *m, const groma_tokenizer *tok, const char *query,
							int max_new_tokens)
{
	int64_t		positions;

	return groma_generate_bound(m, tok, query, max_new_tokens, &positions);
}

/* Generates an answer: a sequence of its own, decoded step by step; see generate.h. */
groma_status
groma_generate(const groma_model *m, const groma_tokenizer *tok, const groma_vision_result *vis,
			   const char *query, int max_new_tokens, bool stop_at_eos, groma_arena *act,
			   groma_generation *out)
{
	groma_sequence seq = {0};
	size_t		mark = act->used;
	groma_status st = groma_sequence_begin(m, tok, vis, query, max_new_tokens, 0, stop_at_eos, NULL, act, &seq);

	memset(out, 0, sizeof(*out));
	if (st.code == GROMA_OK)
		st = groma_sequence_run_alone(m, tok, &seq, act);
	if (st.code == GROMA_OK)
	{
		*out = groma_sequence_generation(&seq);
		seq.ids = NULL;			/* now the generation's */
	}
	groma_sequence_end(&seq, NULL);
	act->used = mark;
	return st;
}

/* Frees the generated ids. */
void
groma_generation_free(groma_generation *g)
{
	free(g->ids);
	memset(g, 0, sizeof(*g));
}
