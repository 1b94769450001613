/*
 * test_vision_batch.c - batch is the leading dimension everywhere: two
 * golden images through DINOv2, the bridge, the proposer and the region
 * encoder as one batch give the same results as each image alone.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "golden_case.h"
#include "../../src/model/vision.h"

/* Max abs difference of n floats. */
static double
max_diff(const float *a, const float *b, int64_t n)
{
	double		m = 0;

	for (int64_t i = 0; i < n; i++)
		if (fabs((double) a[i] - b[i]) > m)
			m = fabs((double) a[i] - b[i]);
	return m;
}

/* A batch of two equals two runs of one, stage by stage. */
UNIT_TEST(test_vision_batch_of_two)
{
	static const char *images[2] = {"waterview.jpg", "synthetic_333x251.jpg"};
	groma_model *m = golden_tiny_model();
	groma_arena act;
	const int64_t plane = 3 * 448 * 448;
	groma_tensor pix2,
				hid2,
				pix1,
				hid1;
	groma_proposer_outputs p2,
				p1;
	groma_region_maps maps2,
				maps1;
	int64_t		t,
				c,
				layers,
				k;

	if (m == NULL)
		return;
	CHECK(groma_arena_init(&act, (size_t) 2 << 30).code == GROMA_OK);
	t = groma_dinov2_tokens(&m->vision.cfg);
	c = m->vision.cfg.hidden;
	layers = m->vision.cfg.layers + 1;
	k = m->proposer.cfg.num_queries;
	CHECK(groma_arena_tensor(&act, GROMA_F32, 4, (int64_t[]) {2, 3, 448, 448}, &pix2).code == GROMA_OK);
	CHECK(groma_arena_tensor(&act, GROMA_F32, 4, (int64_t[]) {layers, 2, t, c}, &hid2).code == GROMA_OK);
	CHECK(groma_arena_tensor(&act, GROMA_F32, 4, (int64_t[]) {layers, 1, t, c}, &hid1).code == GROMA_OK);
	if (!golden_image_pixels(images[0], pix2.data) || !golden_image_pixels(images[1], (float *) pix2.data + plane))
		return;
	CHECK(groma_dinov2_forward(&m->vision, &pix2, &act, &hid2, NULL).code == GROMA_OK);
	CHECK(groma_proposer_forward(&m->proposer, &hid2, &act, &act, &act, &p2).code == GROMA_OK);
	CHECK(groma_region_fuse(&m->region, &hid2, &act, &act, &maps2).code == GROMA_OK);

	for (int b = 0; b < 2; b++)
	{
		double		d_hidden = 0,
					d_maps = 0;

		CHECK(groma_tensor_narrow(&pix2, 0, b, 1, &pix1).code == GROMA_OK);
		CHECK(groma_dinov2_forward(&m->vision, &pix1, &act, &hid1, NULL).code == GROMA_OK);
		for (int64_t l = 0; l < layers; l++)
		{
			double		d = max_diff((float *) hid1.data + l * t * c, (float *) hid2.data + (l * 2 + b) * t * c, t * c);

			d_hidden = d > d_hidden ? d : d_hidden;
		}
		CHECK(groma_proposer_forward(&m->proposer, &hid1, &act, &act, &act, &p1).code == GROMA_OK);
		CHECK(groma_region_fuse(&m->region, &hid1, &act, &act, &maps1).code == GROMA_OK);
		for (int l = 0; l < GROMA_REGION_LEVELS; l++)
		{
			int64_t		n = groma_tensor_numel(&maps1.level[l]);
			double		d = max_diff(maps1.level[l].data, (float *) maps2.level[l].data + b * n, n);

			d_maps = d > d_maps ? d : d_maps;
		}
		CHECKF(d_hidden < 1e-4, "image %d: batched DINOv2 differs by %g", b, d_hidden);
		CHECKF(memcmp(p1.topk, p2.topk + b * k, (size_t) k * sizeof(int64_t)) == 0, "image %d: top-k differs", b);
		CHECKF(max_diff(p1.scores.data, (float *) p2.scores.data + b * k, k) < 1e-5, "image %d: scores differ", b);
		CHECKF(d_maps < 1e-4, "image %d: batched region maps differ by %g", b, d_maps);
		unit_note("image %d of the batch: DINOv2 max |diff| %.2g, region maps %.2g, top-k identical", b, d_hidden, d_maps);
	}
	groma_arena_free(&act);
}

/* Max abs difference of two f32 tensors of the same size on the CPU (1e30 when the sizes differ). */
static double
tensor_diff(const groma_tensor *a, const groma_tensor *b)
{
	int64_t		n = groma_tensor_numel(a);

	if (n != groma_tensor_numel(b))
		return 1e30;
	return max_diff(a->data, b->data, n);
}

/*
 * groma_vision_run_batch on the three golden images, one with a refer box,
 * and a broken JPEG among them: the broken one fails alone, and each other
 * image's result (kept boxes, scores, image and region tokens, region
 * features, refer match) equals groma_vision_run of that image alone.
 */
UNIT_TEST(test_vision_run_batch_equals_single)
{
	static const char *names[3] = {"waterview.jpg", "synthetic_333x251.jpg", "extreme_ironing.jpg"};
	groma_model *m = golden_tiny_model();
	groma_arena act = {0},
				out = {0},
				host = {0},
				out1 = {0},
				host1 = {0};
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	uint8_t    *jpeg[3];
	size_t		len[3];
	static const uint8_t broken[] = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0};
	double		refer[4] = {10, 20, 120, 90};
	groma_vision_input in[4];
	groma_vision_result res[4];
	groma_status each[4];

	if (m == NULL)
		return;
	CHECK(groma_arena_init(&act, (size_t) 2 << 30).code == GROMA_OK);
	CHECK(groma_arena_init(&out, (size_t) 64 << 20).code == GROMA_OK);
	CHECK(groma_arena_init(&host, (size_t) 16 << 20).code == GROMA_OK);
	CHECK(groma_arena_init(&out1, (size_t) 32 << 20).code == GROMA_OK);
	CHECK(groma_arena_init(&host1, (size_t) 8 << 20).code == GROMA_OK);
	for (int i = 0; i < 3; i++)
	{
		char		path[4096];

		snprintf(path, sizeof(path), "%s%s", unit_path("test/golden/images/"), names[i]);
		jpeg[i] = unit_read_file(path, &len[i]);
		if (jpeg[i] == NULL)
			return;
	}
	/* image 0, the broken JPEG, image 1 with a refer box, image 2 */
	in[0] = (groma_vision_input) {jpeg[0], len[0], &limits, NULL, 0};
	in[1] = (groma_vision_input) {broken, sizeof(broken), &limits, NULL, 0};
	in[2] = (groma_vision_input) {jpeg[1], len[1], &limits, refer, 1};
	in[3] = (groma_vision_input) {jpeg[2], len[2], &limits, NULL, 0};
	CHECK(groma_vision_run_batch(m, 4, in, &act, &out, &host, res, each).code == GROMA_OK);
	CHECKF(each[1].code == GROMA_ERR_TRUNCATED || each[1].code == GROMA_ERR_CORRUPT,
		   "the broken JPEG fails alone: %s", each[1].message);
	for (int i = 0; i < 4; i++)
	{
		groma_vision_result one;
		bool		same;

		if (i == 1)
			continue;
		CHECKF(each[i].code == GROMA_OK, "image %d of the batch: %s", i, each[i].message);
		groma_arena_reset(&out1);
		groma_arena_reset(&host1);
		CHECK(groma_vision_run(m, in[i].jpeg, in[i].len, &limits, in[i].refer_px, in[i].n_refer, &act, &out1, &host1,
							   &one).code == GROMA_OK);
		same = one.n_regions == res[i].n_regions && one.width == res[i].width && one.n_refer == res[i].n_refer &&
			memcmp(one.kept, res[i].kept, sizeof(int64_t) * (size_t) one.n_regions) == 0 &&
			(one.n_refer == 0 || one.refer_match[0] == res[i].refer_match[0]);
		CHECKF(same, "image %d: the batch kept other regions (%d against %d alone)", i, res[i].n_regions, one.n_regions);
		if (!same)
			continue;
		CHECKF(max_diff(one.boxes, res[i].boxes, 4 * (int64_t) one.n_regions) < 1e-5 &&
			   max_diff(one.scores, res[i].scores, one.n_regions) < 1e-5, "image %d: boxes or scores differ", i);
		CHECKF(tensor_diff(&one.image_tokens, &res[i].image_tokens) < 1e-4, "image %d: image tokens differ by %g", i,
			   tensor_diff(&one.image_tokens, &res[i].image_tokens));
		CHECKF(tensor_diff(&one.region_tokens, &res[i].region_tokens) < 1e-4, "image %d: region tokens differ by %g",
			   i, tensor_diff(&one.region_tokens, &res[i].region_tokens));
		CHECKF(tensor_diff(&one.region_features, &res[i].region_features) < 1e-4,
			   "image %d: region features differ by %g", i, tensor_diff(&one.region_features, &res[i].region_features));
		unit_note("image %d in a batch of 4: %d regions as alone, image tokens max |diff| %.2g, region tokens %.2g", i,
				  one.n_regions, tensor_diff(&one.image_tokens, &res[i].image_tokens),
				  tensor_diff(&one.region_tokens, &res[i].region_tokens));
	}
	for (int i = 0; i < 3; i++)
		free(jpeg[i]);
	groma_arena_free(&act);
	groma_arena_free(&out);
	groma_arena_free(&host);
	groma_arena_free(&out1);
	groma_arena_free(&host1);
}
