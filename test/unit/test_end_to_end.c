/*
 * test_end_to_end.c - JPEG bytes to generated ids through the public
 * pipeline (groma_vision_run + groma_generate) on the tiny checkpoint: for
 * every golden image and prompt the 12 greedy ids equal the golden ones, and
 * the answer parses without error.
 */
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "golden_case.h"
#include "../../src/model/generate.h"
#include "../../src/text/grounded_output.h"

/* Runs one case: vision with and without its refer box, then each prompt. */
static void
check_case(const golden_case_name *cn, const groma_model *m, const groma_tokenizer *tok,
		   groma_arena *act, groma_arena *out)
{
	static const char *prompts[] = {"gcap", "rec", "regcap"};
	golden_case gc;
	char		path[4096];
	size_t		len;
	uint8_t    *jpeg;
	groma_jpeg_limits limits = groma_jpeg_default_limits();

	if (!golden_case_open(cn->name, &gc))
		return;
	snprintf(path, sizeof(path), "%s%s", unit_path("test/golden/images/"), cn->image);
	jpeg = unit_read_file(path, &len);
	for (int p = 0; jpeg && p < 3; p++)
	{
		bool		with_refer = strcmp(prompts[p], "regcap") == 0;
		int64_t		nb = 0;
		float	   *rb = with_refer ? golden_f32(&gc, "sel.ref.refer_box", &nb) : NULL;
		double		px[4] = {0};
		groma_vision_result vis;
		groma_generation gen;
		groma_grounded_answer answer;
		char		key[128];
		const char *query;
		groma_status st;

		groma_arena_reset(act);
		groma_arena_reset(out);
		if (rb)
		{
			int			w = 0,
						h = 0;
			groma_jpeg_info info;

			CHECK(groma_jpeg_read_info(jpeg, len, &limits, &info).code == GROMA_OK);
			w = info.width;
			h = info.height;
			px[0] = ((double) rb[0] - rb[2] / 2.0) * w;
			px[1] = ((double) rb[1] - rb[3] / 2.0) * h;
			px[2] = ((double) rb[0] + rb[2] / 2.0) * w;
			px[3] = ((double) rb[1] + rb[3] / 2.0) * h;
		}
		st = groma_vision_run(m, jpeg, len, &limits, px, with_refer ? 1 : 0, act, out, out, &vis);
		CHECKF(st.code == GROMA_OK, "%s: %s", cn->name, st.message);
		free(rb);
		if (st.code != GROMA_OK)
			continue;
		snprintf(key, sizeof(key), "sel.%s.kept_indices", with_refer ? "ref" : "noref");
		golden_compare_ids(&gc, key, vis.kept, vis.n_regions);

		snprintf(key, sizeof(key), "prompt.%s.query", prompts[p]);
		query = groma_st_metadata(gc.compact, key);
		st = groma_generate(m, tok, &vis, query ? query : "", 12, false, act, &gen);
		CHECKF(st.code == GROMA_OK, "%s %s: %s", cn->name, prompts[p], st.message);
		if (st.code != GROMA_OK)
			continue;
		{
			int64_t		ids[12];

			for (size_t i = 0; i < gen.n && i < 12; i++)
				ids[i] = gen.ids[i];
			snprintf(key, sizeof(key), "prompt.%s.generated_ids", prompts[p]);
			golden_compare_ids(&gc, key, ids, (int64_t) gen.n);
		}
		st = groma_parse_grounded(tok, gen.ids, gen.n, vis.n_regions, &answer);
		CHECKF(st.code == GROMA_OK, "%s", st.message);
		if (st.code == GROMA_OK)
		{
			unit_note("%-16s %-7s answer \"%s\" (%d groundings)", cn->name, prompts[p], answer.text, answer.n_groundings);
			groma_grounded_answer_free(&answer);
		}
		groma_generation_free(&gen);
	}
	free(jpeg);
	golden_case_close(&gc);
}

/* Every golden image and prompt from JPEG bytes to the golden greedy ids. */
UNIT_TEST(test_end_to_end_golden)
{
	groma_model *m = golden_tiny_model();
	groma_tokenizer *tok = golden_tiny_tokenizer();
	groma_arena act = {0},
				out = {0};

	CHECK(groma_arena_init(&act, (size_t) 1 << 30).code == GROMA_OK);
	CHECK(groma_arena_init(&out, (size_t) 64 << 20).code == GROMA_OK);
	for (int i = 0; m && tok && i < 3; i++)
		check_case(&golden_cases[i], m, tok, &act, &out);
	groma_arena_free(&act);
	groma_arena_free(&out);
}
