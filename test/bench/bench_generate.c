/*
 * bench_generate.c - language-side speed on this machine: tokens/s for the
 * prefill of a whole prompt and for greedy decode steps, plus tokenizer
 * encode speed (a benchmark, not a test).
 *
 *   build/bench/bench_generate [MODEL_DIR] [NEW_TOKENS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../../src/model/generate.h"
#include "../../src/text/prompt.h"

/* Returns a monotonic clock reading in milliseconds. */
static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Runs vision once, then generation, and prints the language-side rates. */
int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "test/golden/tiny-groma";
	int			new_tokens = argc > 2 ? atoi(argv[2]) : 64;
	groma_model *m = NULL;
	groma_tokenizer *tok = NULL;
	groma_arena act,
				out;
	groma_vision_result vis;
	groma_generation gen;
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	FILE	   *f = fopen("test/golden/images/extreme_ironing.jpg", "rb");
	static uint8_t jpeg[1 << 20];
	size_t		len = f ? fread(jpeg, 1, sizeof(jpeg), f) : 0;
	groma_status st;
	char	   *prompt = NULL;
	int32_t		ids[4096];
	size_t		n_ids = 0;
	double		t0,
				encode_ms;

	if (f)
		fclose(f);
	st = groma_model_load(dir, &m);
	if (st.code == GROMA_OK)
		st = groma_tokenizer_load(dir, &tok);
	if (st.code == GROMA_OK)
		st = groma_arena_init(&act, (size_t) 2 << 30);
	if (st.code == GROMA_OK)
		st = groma_arena_init(&out, (size_t) 64 << 20);
	if (st.code == GROMA_OK)
		st = groma_vision_run(m, jpeg, len, &limits, NULL, 0, &act, &out, &out, &vis);
	if (st.code == GROMA_OK)
		st = groma_prompt_text("[grounding]Please briefly summarize the content of this image.", &prompt);
	if (st.code != GROMA_OK)
	{
		fprintf(stderr, "bench_generate: %s\n", st.message);
		return 1;
	}
	t0 = now_ms();
	for (int i = 0; i < 1000; i++)
		groma_tokenizer_encode(tok, prompt, true, ids, 4096, &n_ids);
	encode_ms = (now_ms() - t0) / 1000;

	/* generate without stopping at </s>, so every run decodes new_tokens steps */
	st = groma_generate(m, tok, &vis, "[grounding]Please briefly summarize the content of this image.",
						new_tokens, false, &act, &gen);
	if (st.code != GROMA_OK)
	{
		fprintf(stderr, "bench_generate: %s\n", st.message);
		return 1;
	}
	printf("tokenizer: %zu prompt ids in %.3f ms (%.0f ids/s)\n", n_ids, encode_ms, n_ids / encode_ms * 1e3);
	printf("prefill:   %zu positions in %.1f ms (%.0f tokens/s)\n", gen.prompt_tokens, gen.prefill_ms,
		   gen.prompt_tokens / gen.prefill_ms * 1e3);
	printf("decode:    %zu tokens in %.1f ms (%.1f tokens/s, %.2f ms/token)\n", gen.n, gen.decode_ms,
		   gen.n > 1 ? (gen.n - 1) / gen.decode_ms * 1e3 : 0.0, gen.n > 1 ? gen.decode_ms / (gen.n - 1) : 0.0);
	printf("(tiny model, CPU, batch 1)\n");
	groma_generation_free(&gen);
	free(prompt);
	groma_tokenizer_free(tok);
	groma_model_free(m);
	return 0;
}
