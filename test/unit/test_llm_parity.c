/*
 * test_llm_parity.c - the LLaMA decoder on the tiny checkpoint equals the
 * golden run: from the golden input embeddings of every prompt, the final
 * hidden states, the first-step logits, and 12 greedy steps with the KV
 * cache (ids identical, top-5 logits within tolerance).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "golden_case.h"
#include "../../src/model/groma_model.h"

/* Returns the k largest logits' ids and values (descending, first index on ties). */
static void
top5(const float *logits, int64_t n, int64_t *ids, float *vals)
{
	for (int r = 0; r < 5; r++)
	{
		int64_t		best = -1;

		for (int64_t i = 0; i < n; i++)
		{
			bool		taken = false;

			for (int q = 0; q < r; q++)
				taken |= ids[q] == i;
			if (!taken && (best < 0 || logits[i] > logits[best]))
				best = i;
		}
		ids[r] = best;
		vals[r] = logits[best];
	}
}

/* Checks one prompt of one case (m and act on the CPU or a device). */
static void
check_prompt(const golden_case *gc, const groma_model *m, const char *prompt, groma_arena *act)
{
	const groma_llama_config *c = &m->llm.cfg;
	int64_t		vocab = (int64_t) c->vocab + c->extra_vocab,
				n,
				steps = 12;
	char		name[128];
	float	   *embeds;
	float	   *logits = malloc(sizeof(float) * (size_t) vocab);
	int64_t		ids[12],
				top_ids[12 * 5];
	float		top_vals[12 * 5];
	groma_kv_cache cache;
	groma_tensor x,
				hidden,
				step;
	size_t		mark = act->used;
	double		margin;

	snprintf(name, sizeof(name), "prompt.%s.inputs_embeds", prompt);
	embeds = golden_f32(gc, name, &n);
	if (embeds == NULL || n % c->hidden != 0)
	{
		unit_fail(__FILE__, __LINE__, "%s: %s missing", gc->name, name);
		free(logits);
		free(embeds);
		return;
	}
	n /= c->hidden;
	CHECK(groma_kv_cache_init(&cache, c, n + steps, act).code == GROMA_OK);
	CHECK(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {n, c->hidden}, &x).code == GROMA_OK);
	CHECK(golden_fill_tensor(embeds, &x));
	CHECK(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {n, c->hidden}, &hidden).code == GROMA_OK);
	CHECK(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {1, c->hidden}, &step).code == GROMA_OK);
	CHECK(groma_llama_forward(&m->llm, &cache, &x, act, logits, &hidden).code == GROMA_OK);
	snprintf(name, sizeof(name), "prompt.%s.final_hidden", prompt);
	golden_compare_tensor(gc, name, &hidden);
	snprintf(name, sizeof(name), "prompt.%s.first_logits", prompt);
	golden_compare(gc, name, logits, vocab);

	for (int s = 0; s < steps; s++)
	{
		top5(logits, vocab, top_ids + 5 * s, top_vals + 5 * s);
		ids[s] = groma_argmax(logits, vocab);
		CHECK(groma_llama_embed(&m->llm, &ids[s], 1, &step).code == GROMA_OK);
		CHECK(groma_llama_forward(&m->llm, &cache, &step, act, logits, NULL).code == GROMA_OK);
	}
	snprintf(name, sizeof(name), "prompt.%s.generated_ids", prompt);
	golden_compare_ids(gc, name, ids, steps);
	snprintf(name, sizeof(name), "prompt.%s.step_top5_ids", prompt);
	golden_compare_ids(gc, name, top_ids, steps * 5);
	snprintf(name, sizeof(name), "prompt.%s.step_top5_vals", prompt);
	{
		double		err = golden_compare(gc, name, top_vals, steps * 5);

		snprintf(name, sizeof(name), "prompt.%s.min_top1_top2_margin", prompt);
		margin = golden_fragility(gc->name, name);
		CHECKF(margin < 0 || 2 * err < margin, "%s %s: logit error %g leaves no room in the top-1/top-2 margin %g",
			   gc->name, prompt, err, margin);
	}
	free(embeds);
	free(logits);
	act->used = mark;
}

/* Every prompt of every golden case through the decoder of m; see golden_case.h. */
void
golden_llm_parity(const groma_model *m, groma_arena *act)
{
	static const char *prompts[] = {"gcap", "rec", "regcap"};

	for (int i = 0; i < 3; i++)
	{
		golden_case gc;

		if (!golden_case_open(golden_cases[i].name, &gc))
			continue;
		for (int p = 0; p < 3; p++)
			check_prompt(&gc, m, prompts[p], act);
		golden_case_close(&gc);
	}
}

/* Every prompt of every golden case through the decoder with a KV cache. */
UNIT_TEST(test_llm_parity_golden)
{
	groma_model *m = golden_tiny_model();
	groma_arena act;

	if (m == NULL)
		return;
	CHECK(groma_arena_init(&act, (size_t) 256 << 20).code == GROMA_OK);
	golden_llm_parity(m, &act);
	groma_arena_free(&act);
}

/* argmax: the first of equal maxima, and the first NaN over any number (torch.argmax). */
UNIT_TEST(test_argmax_ties_and_nan)
{
	float		ties[5] = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f},
				nans[5] = {1.0f, 9.0f, NAN, 2.0f, NAN},
				inf[3] = {-INFINITY, INFINITY, INFINITY};

	CHECK(groma_argmax(ties, 5) == 1);
	CHECK(groma_argmax(nans, 5) == 2);
	CHECK(groma_argmax(inf, 3) == 1);
	CHECK(groma_argmax(ties, 1) == 0);
}
