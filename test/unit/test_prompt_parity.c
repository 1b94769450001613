/*
 * test_prompt_parity.c - prompt text, token ids, placeholder expansion and
 * the input embedding matrix equal the golden ones for every golden prompt
 * (GROMA.md steps 7-8), using the golden image and region features.
 */
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "golden_case.h"
#include "../../src/model/groma_model.h"
#include "../../src/model/prompt_embed.h"

/* Checks one prompt of one case end to end through the embedding matrix. */
static void
check_prompt(const golden_case *gc, const groma_model *m, const groma_tokenizer *tok, const char *p)
{
	char		key[128];
	const char *query,
			   *want_text;
	char	   *text = NULL;
	int32_t		ids[4096];
	int64_t		ids64[4096];
	size_t		n = 0,
				n_exp = 0;
	int32_t    *expanded = NULL;
	bool		with_refer = strcmp(p, "regcap") == 0;
	int64_t		n_reg,
				n_img,
				n_match = 0;
	float	   *regions,
			   *image;
	int64_t    *match = NULL;
	groma_prompt_tokens pt;
	groma_status st;

	snprintf(key, sizeof(key), "prompt.%s.query", p);
	query = groma_st_metadata(gc->compact, key);
	snprintf(key, sizeof(key), "prompt.%s.prompt", p);
	want_text = groma_st_metadata(gc->compact, key);
	CHECKF(query && want_text, "%s: prompt %s has no text in the metadata", gc->name, p);
	if (!query || !want_text)
		return;

	/* the conversation text */
	st = groma_prompt_text(query, &text);
	CHECKF(st.code == GROMA_OK && strcmp(text, want_text) == 0, "%s %s: prompt text differs:\n%s\n%s", gc->name, p,
		   text ? text : st.message, want_text);

	/* token ids */
	st = groma_tokenizer_encode(tok, text, true, ids, 4096, &n);
	CHECKF(st.code == GROMA_OK, "%s", st.message);
	for (size_t i = 0; i < n; i++)
		ids64[i] = ids[i];
	snprintf(key, sizeof(key), "prompt.%s.input_ids", p);
	golden_compare_ids(gc, key, ids64, (int64_t) n);

	/* expansion with the golden selection */
	regions = golden_f32(gc, with_refer ? "region.ref.features" : "region.noref.features", &n_reg);
	image = golden_f32(gc, "bridge.image_features", &n_img);
	if (with_refer)
		match = golden_i64(gc, "sel.ref.refer_match", &n_match);
	n_reg /= m->llm.cfg.hidden;
	n_img /= m->llm.cfg.hidden;
	CHECK(groma_prompt_tokens_lookup(tok, &pt).code == GROMA_OK);
	st = groma_prompt_expand(&pt, ids, n, (int) n_img, (int) n_reg, match, (int) n_match, &expanded, &n_exp);
	CHECKF(st.code == GROMA_OK, "%s", st.message);
	if (st.code == GROMA_OK)
	{
		int64_t    *exp64 = malloc(n_exp * sizeof(int64_t));
		float	   *emb = malloc(n_exp * (size_t) m->llm.cfg.hidden * sizeof(float));
		groma_tensor te = groma_f32_2d(emb, (int64_t) n_exp, m->llm.cfg.hidden),
					ti = groma_f32_2d(image, n_img, m->llm.cfg.hidden),
					tr = groma_f32_2d(regions, n_reg, m->llm.cfg.hidden);

		for (size_t i = 0; i < n_exp; i++)
			exp64[i] = expanded[i];
		snprintf(key, sizeof(key), "prompt.%s.expanded_ids", p);
		golden_compare_ids(gc, key, exp64, (int64_t) n_exp);
		st = groma_prompt_embed(&m->llm, &pt, expanded, n_exp, &ti, &tr, match, (int) n_match, &te);
		CHECKF(st.code == GROMA_OK, "%s", st.message);
		snprintf(key, sizeof(key), "prompt.%s.inputs_embeds", p);
		golden_compare(gc, key, emb, (int64_t) n_exp * m->llm.cfg.hidden);
		free(exp64);
		free(emb);
	}
	free(expanded);
	free(regions);
	free(image);
	free(match);
	free(text);
}

/* Every golden prompt: text, ids, expanded ids and input embeddings. */
UNIT_TEST(test_prompt_parity_golden)
{
	static const char *prompts[] = {"gcap", "rec", "regcap"};
	groma_model *m = golden_tiny_model();
	groma_tokenizer *tok = golden_tiny_tokenizer();

	for (int i = 0; m && tok && i < 3; i++)
	{
		golden_case gc;

		if (!golden_case_open(golden_cases[i].name, &gc))
			continue;
		for (int p = 0; p < 3; p++)
			check_prompt(&gc, m, tok, prompts[p]);
		golden_case_close(&gc);
	}
}

/* Queries may not smuggle in placeholders the prompt owns; the standard tasks build the training forms. */
UNIT_TEST(test_prompt_query_rules)
{
	char	   *out = NULL;

	CHECK(groma_prompt_text("What is <image>?", &out).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_prompt_text("Show <region> here", &out).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_prompt_text("Is <r3> a cat?", &out).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_prompt_text("bad \xff utf8", &out).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_prompt_text("end</s>", &out).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_task_query(GROMA_TASK_GROUND, "the <p>man</p>", &out).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_task_query(GROMA_TASK_GROUND, "", &out).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_task_query(GROMA_TASK_GROUND, "the man ironing clothes", &out).code == GROMA_OK &&
		  strcmp(out, "Locate <p>the man ironing clothes</p> in the image.") == 0);
	free(out);
	CHECK(groma_task_query(GROMA_TASK_DESCRIBE, NULL, &out).code == GROMA_OK &&
		  strcmp(out, "What is <roi><refer_box></roi><refer_feat>?") == 0);
	free(out);
	CHECK(groma_prompt_text("Hi <r>, café <roi><refer_box></roi><refer_feat>", &out).code == GROMA_OK);
	free(out);
	CHECK(groma_prompt_text("see <r100> and <r7x>", &out).code == GROMA_OK);	/* not region tokens */
	free(out);
	CHECK(groma_prompt_text("<r<r<r<r<r9>", &out).code == GROMA_ERR_INVALID_ARGUMENT);
	/* a long query of "<r" is refused by size, in linear time */
	{
		char	   *big = malloc(4u << 20);

		for (size_t i = 0; i + 2 < (4u << 20); i += 2)
			memcpy(big + i, "<r", 2);
		big[(4u << 20) - 1] = '\0';
		big[(4u << 20) - 2] = 'x';
		CHECK(groma_prompt_text(big, &out).code == GROMA_ERR_LIMIT);
		big[60000] = '\0';
		CHECK(groma_prompt_text(big, &out).code == GROMA_OK);
		free(out);
		free(big);
	}
	/* a phrase to ground is at most as long as leaves its query within the limit, and is refused by its own name */
	{
		char	   *phrase = malloc(GROMA_MAX_PHRASE_BYTES + 2);

		memset(phrase, 'a', GROMA_MAX_PHRASE_BYTES + 1);
		phrase[GROMA_MAX_PHRASE_BYTES + 1] = '\0';
		CHECK(GROMA_MAX_PHRASE_BYTES == 65508);
		groma_status st = groma_task_query(GROMA_TASK_GROUND, phrase, &out);

		CHECK(st.code == GROMA_ERR_LIMIT && strstr(st.message, "the phrase is 65509 bytes") != NULL);
		phrase[GROMA_MAX_PHRASE_BYTES] = '\0';
		CHECK(groma_task_query(GROMA_TASK_GROUND, phrase, &out).code == GROMA_OK && strlen(out) == GROMA_MAX_QUERY_BYTES);
		{
			char	   *wrapped = NULL;

			/* the longest phrase's query is still taken as a query */
			CHECK(groma_prompt_text(out, &wrapped).code == GROMA_OK);
			free(wrapped);
		}
		free(out);
		free(phrase);
	}
}
