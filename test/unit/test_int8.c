/*
 * test_int8.c - weight-only int8 on the CPU: the quantization's exact
 * rounding, views of i8 tensors, linear with i8 weights against the f32
 * linear of the same values, and the tiny golden model with its language
 * model in int8: which weights are quantized, and how far its logits and
 * greedy ids drift from the golden (f32) run.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "golden_case.h"
#include "../../src/model/groma_model.h"
#include "../../src/runtime/ops.h"

/* Rows quantize to v / (max |v| / 127) rounded to nearest even; a zero row has scale 0. */
UNIT_TEST(test_int8_quantize_rows)
{
	float		v[3][4] = {{127.0f, -2.5f, 3.5f, 0.4f}, {0, 0, 0, 0}, {-254.0f, 1.0f, 1.5f, 100.0f}};
	int8_t		want[3][4] = {{127, -2, 4, 0}, {0, 0, 0, 0}, {-127, 0, 1, 50}};
	float		want_scale[3] = {1.0f, 0.0f, 2.0f},
				back[12];
	groma_arena a;
	groma_tensor src = groma_f32_2d(&v[0][0], 3, 4),
				q,
				narrowed,
				permuted;

	CHECK(groma_arena_init(&a, 1 << 16).code == GROMA_OK);
	CHECK(groma_arena_tensor(&a, GROMA_I8, 2, (int64_t[]) {3, 4}, &q).code == GROMA_OK);
	CHECK(q.scale != NULL && q.dtype == GROMA_I8 && groma_dtype_size(GROMA_I8) == 1);
	CHECK(strcmp(groma_dtype_name(GROMA_I8), "i8") == 0);
	CHECK(groma_convert(&src, &q).code == GROMA_OK);
	CHECK(memcmp(q.data, want, sizeof(want)) == 0);
	CHECK(memcmp(q.scale, want_scale, sizeof(want_scale)) == 0);
	CHECK(groma_convert(&q, &(groma_tensor) {0}).code != GROMA_OK);
	{
		groma_tensor f = groma_f32_2d(back, 3, 4);

		CHECK(groma_convert(&q, &f).code == GROMA_OK);
		CHECK(back[1] == -2.0f && back[3] == 0.0f && back[8] == -254.0f && back[10] == 2.0f && back[11] == 100.0f);
	}
	/* a view of rows keeps its rows' scales; a view that moves the rows is refused */
	CHECK(groma_tensor_narrow(&q, 0, 2, 1, &narrowed).code == GROMA_OK);
	CHECK(narrowed.scale == q.scale + 2 && groma_tensor_get_f32(&narrowed, (int64_t[]) {0, 3}) == 100.0f);
	CHECK(groma_tensor_permute(&q, (int[]) {1, 0}, &permuted).code != GROMA_OK);
	CHECK(groma_tensor_reshape(&q, 1, (int64_t[]) {12}, &permuted).code != GROMA_OK);
	/* an i8 tensor without scales cannot be converted */
	q.scale = NULL;
	CHECK(groma_convert(&src, &q).code != GROMA_OK);
	groma_arena_free(&a);
}

/* linear with i8 weights equals the f32 linear with the dequantized weights (blocks of 64 rows, bias, m 1 and 5). */
UNIT_TEST(test_int8_linear_matches_dequantized)
{
	enum
	{
		N = 130, K = 96
	};
	static float w[N * K],
				wd[N * K],
				x[5 * K],
				b[N],
				y[5 * N],
				ref[5 * N];
	groma_arena a;
	groma_tensor q,
				wt = groma_f32_2d(w, N, K),
				wdt = groma_f32_2d(wd, N, K),
				bt = groma_f32_1d(b, N);

	unit_fill_random(w, N * K, 7, 0.05f);
	unit_fill_random(x, 5 * K, 8, 1.0f);
	unit_fill_random(b, N, 9, 0.1f);
	CHECK(groma_arena_init(&a, 1 << 20).code == GROMA_OK);
	CHECK(groma_arena_tensor(&a, GROMA_I8, 2, (int64_t[]) {N, K}, &q).code == GROMA_OK);
	CHECK(groma_convert(&wt, &q).code == GROMA_OK);
	CHECK(groma_convert(&q, &wdt).code == GROMA_OK);
	for (int m = 1; m <= 5; m += 4)
	{
		double		worst = 0,
					drift = 0;
		groma_tensor xt = groma_f32_2d(x, m, K),
					yt = groma_f32_2d(y, m, N),
					rt = groma_f32_2d(ref, m, N);

		CHECK(groma_linear(&xt, &q, &bt, &yt).code == GROMA_OK);
		CHECK(groma_linear(&xt, &wdt, &bt, &rt).code == GROMA_OK);
		for (int i = 0; i < m * N; i++)
			worst = fmax(worst, fabs(y[i] - ref[i]));
		CHECKF(worst <= 1e-5, "m %d: int8 linear differs from the dequantized f32 one by %g", m, worst);
		/* and it is a quantization: close to the unquantized weights, not equal */
		CHECK(groma_linear(&xt, &wt, &bt, &rt).code == GROMA_OK);
		for (int i = 0; i < m * N; i++)
			drift = fmax(drift, fabs(y[i] - ref[i]));
		CHECKF(drift > 0 && drift < 0.02, "m %d: int8 against f32 weights %g", m, drift);
	}
	groma_arena_free(&a);
}

/* Greedy ids and first logits of one golden prompt through m's decoder; returns false when the case lacks it. */
static bool
run_prompt(const golden_case *gc, const groma_model *m, const char *prompt, groma_arena *act, float *logits,
		   int64_t *ids, int steps)
{
	const groma_llama_config *c = &m->llm.cfg;
	char		name[128];
	int64_t		n;
	float	   *embeds;
	groma_kv_cache cache;
	groma_tensor x,
				step;
	size_t		mark = act->used;
	int64_t		vocab = (int64_t) c->vocab + c->extra_vocab;
	float	   *next = malloc(sizeof(float) * (size_t) vocab);

	snprintf(name, sizeof(name), "prompt.%s.inputs_embeds", prompt);
	embeds = golden_f32(gc, name, &n);
	if (embeds == NULL || next == NULL)
	{
		free(embeds);
		free(next);
		return false;
	}
	n /= c->hidden;
	CHECK(groma_kv_cache_init(&cache, c, n + steps, act).code == GROMA_OK);
	CHECK(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {n, c->hidden}, &x).code == GROMA_OK);
	CHECK(golden_fill_tensor(embeds, &x));
	CHECK(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {1, c->hidden}, &step).code == GROMA_OK);
	CHECK(groma_llama_forward(&m->llm, &cache, &x, act, logits, NULL).code == GROMA_OK);
	memcpy(next, logits, sizeof(float) * (size_t) vocab);
	for (int s = 0; s < steps; s++)
	{
		ids[s] = groma_argmax(next, vocab);
		CHECK(groma_llama_embed(&m->llm, &ids[s], 1, &step).code == GROMA_OK);
		CHECK(groma_llama_forward(&m->llm, &cache, &step, act, next, NULL).code == GROMA_OK);
	}
	free(embeds);
	free(next);
	act->used = mark;
	return true;
}

/*
 * The tiny model with --weights int8 on the CPU: the language model's layer
 * matrices are i8, everything else f32; over every golden prompt the first
 * logits stay within 3 % of the golden logits' range and the first greedy
 * id equals the golden one in at least 8 of the 9 prompts (bounds with room
 * over what was measured when this was written: 1.0 %, and all 12 ids of
 * all 9 prompts equal; the notes print each prompt's figures).
 */
UNIT_TEST(test_int8_tiny_model_drift)
{
	static const char *prompts[] = {"gcap", "rec", "regcap"};
	groma_model *m = NULL;
	groma_arena act;
	groma_status st = groma_model_load_on(unit_path("test/golden/tiny-groma"), GROMA_DEVICE_CPU, GROMA_I8, &m);
	double		worst_rel = 0;
	int			first_same = 0,
				all_same = 0,
				prompts_run = 0,
				steps = 12;

	CHECKF(st.code == GROMA_OK, "loading the tiny model with int8 weights: %s", st.message);
	if (m == NULL)
		return;
	CHECK(m->llm.layer[0].q.dtype == GROMA_I8 && m->llm.layer[0].down.dtype == GROMA_I8 &&
		  m->llm.layer[m->llm.cfg.layers - 1].gate.dtype == GROMA_I8);
	CHECK(m->llm.lm_head.dtype == GROMA_F32 && m->llm.embed.dtype == GROMA_F32 &&
		  m->llm.layer[0].attn_norm.dtype == GROMA_F32);
	CHECK(groma_arena_init(&act, (size_t) 256 << 20).code == GROMA_OK);
	for (int i = 0; i < 3; i++)
	{
		golden_case gc;

		if (!golden_case_open(golden_cases[i].name, &gc))
			continue;
		for (int p = 0; p < 3; p++)
		{
			int64_t		vocab = (int64_t) m->llm.cfg.vocab + m->llm.cfg.extra_vocab,
						ids[12],
						n_want = 0,
						n_gold = 0,
						*want;
			float	   *logits = malloc(sizeof(float) * (size_t) vocab),
					   *gold;
			char		name[128];
			double		err = 0,
						range = 0;
			int			same = 0;

			snprintf(name, sizeof(name), "prompt.%s.first_logits", prompts[p]);
			gold = golden_f32(&gc, name, &n_gold);
			snprintf(name, sizeof(name), "prompt.%s.generated_ids", prompts[p]);
			want = golden_i64(&gc, name, &n_want);
			if (gold != NULL && want != NULL && n_gold == vocab &&
				run_prompt(&gc, m, prompts[p], &act, logits, ids, steps))
			{
				for (int64_t v = 0; v < vocab; v++)
				{
					err = fmax(err, fabs(logits[v] - gold[v]));
					range = fmax(range, fabs(gold[v]));
				}
				while (same < steps && same < n_want && ids[same] == want[same])
					same++;
				worst_rel = fmax(worst_rel, range > 0 ? err / range : err);
				first_same += same > 0;
				all_same += same == steps;
				prompts_run++;
				unit_note("int8 %s %s: first logits within %.3g of the golden (%.2f %% of their range), "
						  "%d of %d greedy ids equal before the first difference", gc.name, prompts[p], err,
						  100 * (range > 0 ? err / range : err), same, steps);
			}
			free(gold);
			free(want);
			free(logits);
		}
		golden_case_close(&gc);
	}
	unit_note("int8 drift over %d golden prompts: worst first-logit error %.2f %% of the range; first id equal in %d, "
			  "all %d ids equal in %d", prompts_run, 100 * worst_rel, first_same, steps, all_same);
	CHECK(prompts_run == 9);
	CHECKF(worst_rel < 0.03, "int8 first logits drift %.3g of their range", worst_rel);
	CHECKF(first_same >= 8, "int8: the first greedy id differs from the golden one in %d of 9 prompts",
		   9 - first_same);
	groma_arena_free(&act);
	groma_model_free(m);
}
