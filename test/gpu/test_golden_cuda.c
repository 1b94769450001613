/*
 * test_golden_cuda.c - the tiny golden model on the GPU with f32 weights,
 * stage by stage against the golden PyTorch run under the manifest's
 * tolerances: the same comparisons as the CPU unit tests (DINOv2 to region
 * tokens, decisions included, and every prompt's hidden states, logits
 * and 12 greedy ids), run on a model whose weights and activations live in
 * GPU memory.  Skips with the CUDA runtime's reason where no GPU is present.
 */
#include <stdio.h>

#include "../../kernels/groma_cuda.h"
#include "../../src/model/groma_model.h"
#include "../unit/golden_case.h"
#include "../unit/unit.h"

#define MODEL_DIR "test/golden/tiny-groma"

/* The CPU parity tests linked in register themselves; this program runs the GPU comparisons only. */
void
unit_register(const char *name, void (*fn) (void))
{
	(void) name;
	(void) fn;
}

/* Prints one TAP line for a part that made `failures` failed checks. */
static void
report(bool ok, const char *what, int *passed, int *failed)
{
	printf("%s - %s\n", ok ? "ok" : "not ok", what);
	ok ? (*passed)++ : (*failed)++;
}

/* Runs the golden comparisons on the GPU, or skips with the reason there is no GPU. */
int
main(void)
{
	char		why[256] = "";
	groma_model *m = NULL;
	groma_arena act = {0},
				host = {0};
	groma_status st;
	int			passed = 0,
				failed = 0,
				before;

	if (groma_cuda_device_count(why, sizeof(why)) == 0)
	{
		printf("# SKIP golden stages on the GPU: no usable GPU (%s)\n", why);
		printf("0 passed, 0 failed, 1 skipped\n");
		return 0;
	}
	st = groma_cuda_register();
	if (st.code == GROMA_OK)
		st = groma_model_load_on(MODEL_DIR, GROMA_DEVICE_CUDA, GROMA_F32, &m);
	if (st.code == GROMA_OK)
		st = groma_device_arena_init(&act, (size_t) 1 << 30);
	if (st.code == GROMA_OK)
		st = groma_arena_init(&host, (size_t) 64 << 20);
	if (st.code != GROMA_OK)
	{
		printf("not ok - the tiny model on the GPU: %s\n0 passed, 1 failed\n", st.message);
		return 1;
	}
	before = unit_failures;
	golden_vision_parity(m, &act, &host);
	report(unit_failures == before, "GPU (f32): every vision stage of the 3 golden cases within the manifest's "
		   "tolerances, decisions identical", &passed, &failed);
	before = unit_failures;
	golden_llm_parity(m, &act);
	report(unit_failures == before, "GPU (f32): every prompt's hidden states, logits and 12 greedy ids as golden",
		   &passed, &failed);
	printf("%d passed, %d failed\n", passed, failed);
	groma_arena_free(&act);
	groma_arena_free(&host);
	groma_model_free(m);
	return failed ? 1 : 0;
}
