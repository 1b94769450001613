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
#include "gpu_skip.h"
#include "tap_check.h"
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

/* Runs the golden comparisons on the GPU, or skips with the reason there is no GPU. */
int
main(void)
{
	groma_model *m = NULL;
	groma_arena act = {0},
				host = {0};
	groma_status st;
	int			before;

	if (gpu_test_skipped("golden stages on the GPU"))
		return 0;
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
	check(unit_failures == before, "GPU (f32): every vision stage of the 3 golden cases within the manifest's "
		  "tolerances, decisions identical");
	before = unit_failures;
	golden_llm_parity(m, &act);
	check(unit_failures == before, "GPU (f32): every prompt's hidden states, logits and 12 greedy ids as golden");
	before = unit_failures;
	golden_decode_batch_parity(m, &act);
	check(unit_failures == before, "GPU (f32): the nine golden requests decoded together (batches of 1, 3 and 8, "
		  "newcomers mid-flight, a small KV pool) get their golden ids");
	printf("%d passed, %d failed\n", passed, failed);
	groma_arena_free(&act);
	groma_arena_free(&host);
	groma_model_free(m);
	return failed ? 1 : 0;
}
