/*
 * test_vision_batch.c - batch is the leading dimension everywhere: two
 * golden images through DINOv2, the bridge, the proposer and the region
 * encoder as one batch give the same results as each image alone.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "golden_case.h"

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
