/*
 * test_context_limit.c - issue 17 item 4: a prompt whose tokens plus
 * max_new_tokens exceed the model's context (max_position_embeddings, 4096
 * for the tiny model) is refused with GROMA_ERR_LIMIT naming both numbers,
 * before vision (groma_generate_check_length) and again before prefill
 * (groma_generate).
 */
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "golden_case.h"
#include "../../src/model/generate.h"

/* Returns a malloc'd query of count copies of "word ". */
static char *
long_query(int count)
{
	char	   *q = malloc((size_t) count * 5 + 1);

	for (int i = 0; q && i < count; i++)
		memcpy(q + 5 * i, "word ", 5);
	if (q)
		q[(size_t) count * 5] = '\0';
	return q;
}

/* The check before vision: short prompts pass, long ones and oversized max_new_tokens are refused by number. */
UNIT_TEST(test_context_limit_before_vision)
{
	groma_model *m = golden_tiny_model();
	groma_tokenizer *tok = golden_tiny_tokenizer();
	char	   *q = long_query(5000);
	groma_status st;

	if (m == NULL || tok == NULL || q == NULL)
	{
		free(q);
		return;
	}
	CHECK(m->cfg.llm.max_position_embeddings == 4096);
	st = groma_generate_check_length(m, tok, "What is in the image?", 256);
	CHECKF(st.code == GROMA_OK, "%s", st.message);
	st = groma_generate_check_length(m, tok, q, 256);
	CHECKF(st.code == GROMA_ERR_LIMIT && strstr(st.message, "prompt of ") != NULL &&
		   strstr(st.message, "plus 256 new tokens exceeds the model's context of 4096") != NULL, "%s", st.message);
	st = groma_generate_check_length(m, tok, "What is in the image?", 4000);
	CHECKF(st.code == GROMA_ERR_LIMIT && strstr(st.message, "plus 4000 new tokens") != NULL, "%s", st.message);
	free(q);
}

/* groma_generate itself refuses a prompt past the context before prefill (the exact expanded length). */
UNIT_TEST(test_context_limit_generate)
{
	groma_model *m = golden_tiny_model();
	groma_tokenizer *tok = golden_tiny_tokenizer();
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	groma_arena act = {0},
				out = {0};
	groma_vision_result vis;
	groma_generation gen = {0};
	char	   *q = long_query(5000);
	size_t		len = 0;
	uint8_t    *jpeg = unit_read_file(unit_path("test/golden/images/extreme_ironing.jpg"), &len);
	groma_status st;

	if (m && tok && q && jpeg && groma_arena_init(&act, (size_t) 1 << 30).code == GROMA_OK &&
		groma_arena_init(&out, (size_t) 64 << 20).code == GROMA_OK)
	{
		st = groma_vision_run(m, jpeg, len, &limits, NULL, 0, &act, &out, &out, &vis);
		CHECKF(st.code == GROMA_OK, "%s", st.message);
		if (st.code == GROMA_OK)
			st = groma_generate(m, tok, &vis, q, 12, false, &act, &gen);
		CHECKF(st.code == GROMA_ERR_LIMIT && strstr(st.message, "plus 12 new tokens exceeds the model's context of 4096"),
			   "%s", st.message);
		CHECK(gen.ids == NULL && gen.n == 0);
		groma_generation_free(&gen);
	}
	groma_arena_free(&act);
	groma_arena_free(&out);
	free(jpeg);
	free(q);
}
