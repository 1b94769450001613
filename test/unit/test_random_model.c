/*
 * test_random_model.c - the built-in real configuration, random fills and
 * models built with random weights (what --bench runs at full size).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "device_emulation.h"
#include "../../src/model/vision.h"
#include "../../src/runtime/ops.h"

/* The built-in real configuration is the one the tests use (test/golden/real_config.json). */
UNIT_TEST(test_builtin_real_config_matches_the_file)
{
	groma_model_config a,
				b;

	CHECK(groma_model_config_real(&a).code == GROMA_OK);
	CHECK(groma_model_config_load(unit_path("test/golden/real_config.json"), &b).code == GROMA_OK);
	CHECK(a.llm.hidden_size == b.llm.hidden_size && a.llm.hidden_size == 4096);
	CHECK(a.llm.num_layers == b.llm.num_layers && a.llm.intermediate_size == b.llm.intermediate_size);
	CHECK(a.vision.hidden_size == b.vision.hidden_size && a.vision.num_layers == b.vision.num_layers);
	CHECK(a.vision.patch_size == b.vision.patch_size && a.vision.num_heads == b.vision.num_heads);
	CHECK(a.ddetr.d_model == b.ddetr.d_model && a.ddetr.two_stage_num_proposals == b.ddetr.two_stage_num_proposals);
	CHECK(a.num_new_token == b.num_new_token && a.max_region_num == b.max_region_num);
	CHECK(a.nms_thres == b.nms_thres && a.box_score_thres == b.box_score_thres);
}

/* Random fills: in range, not constant, the same on the CPU and the (emulated) device. */
UNIT_TEST(test_fill_random_same_everywhere)
{
	static float cpu_vals[100000],
				dev_vals[100000];
	groma_tensor t = groma_f32_1d(cpu_vals, 100000);
	groma_arena a;
	double		sum = 0;
	bool		in_range = true;

	CHECK(groma_fill_random(&t, 42, 0.5f).code == GROMA_OK);
	for (int i = 0; i < 100000; i++)
	{
		in_range &= cpu_vals[i] >= -0.5f && cpu_vals[i] < 0.5f;
		sum += cpu_vals[i];
	}
	CHECK(in_range);
	CHECKF(fabs(sum / 100000) < 0.01, "mean %g is not near 0", sum / 100000);
	CHECK(cpu_vals[0] != cpu_vals[1]);
	device_emulation_install();
	CHECK(groma_device_arena_init(&a, sizeof(dev_vals)).code == GROMA_OK);
	CHECK(groma_arena_tensor(&a, GROMA_F32, 1, (int64_t[]) {100000}, &t).code == GROMA_OK);
	CHECK(groma_fill_random(&t, 42, 0.5f).code == GROMA_OK);
	CHECK(groma_download(&t, dev_vals).code == GROMA_OK);
	CHECK(memcmp(cpu_vals, dev_vals, sizeof(cpu_vals)) == 0);
	groma_arena_free(&a);
	device_emulation_remove();
}

/* A model of the tiny configuration with random weights builds on both devices and runs the vision side. */
UNIT_TEST(test_random_model_builds_and_runs)
{
	groma_model_config cfg;
	groma_model *m = NULL;
	groma_arena act,
				out;
	groma_vision_result res;
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	size_t		len;
	uint8_t    *jpeg = unit_read_file(unit_path("test/golden/images/waterview.jpg"), &len);
	groma_status st;

	CHECK(groma_model_config_load(unit_path("test/golden/tiny-groma/config.json"), &cfg).code == GROMA_OK);
	/* the tiny files' region widths, which config.json leaves to the weights */
	cfg.region.pos_width = 32;
	cfg.region.region_width = 32;
	st = groma_model_random(&cfg, GROMA_DEVICE_CPU, GROMA_F32, &m);
	CHECKF(st.code == GROMA_OK, "random model on the CPU: %s", st.message);
	CHECK(groma_arena_init(&act, (size_t) 1 << 30).code == GROMA_OK);
	CHECK(groma_arena_init(&out, (size_t) 64 << 20).code == GROMA_OK);
	if (m && jpeg)
	{
		st = groma_vision_run(m, jpeg, len, &limits, NULL, 0, &act, &out, &out, &res);
		CHECKF(st.code == GROMA_OK, "vision with random weights: %s", st.message);
		if (st.code == GROMA_OK)
		{
			bool		finite = true;

			for (int64_t i = 0; i < groma_tensor_numel(&res.image_tokens); i++)
				finite &= isfinite(((float *) res.image_tokens.data)[i]);
			CHECK(finite);
		}
	}
	groma_model_free(m);
	groma_arena_free(&act);
	groma_arena_free(&out);
	/* and with the weights generated in (emulated) device memory */
	device_emulation_install();
	m = NULL;
	st = groma_model_random(&cfg, GROMA_DEVICE_CUDA, GROMA_BF16, &m);
	CHECKF(st.code == GROMA_OK, "random model on the device: %s", st.message);
	CHECK(m == NULL || m->llm.embed.device == GROMA_DEVICE_CUDA);
	groma_model_free(m);
	device_emulation_remove();
	free(jpeg);
}
