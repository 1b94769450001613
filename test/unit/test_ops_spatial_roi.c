/*
 * test_ops_spatial_roi.c - RoIAlign against torchvision goldens (three
 * Groma scales with sampling ratio 2, one adaptive; boxes that are
 * zero-width, reversed, outside and huge), hand-checked values and the
 * argument errors.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "test_ops_spatial_golden.h"
#include "../../src/runtime/ops_spatial.h"

/* roi.out_scale0..2 (14x14, ratio 2, aligned) and roi.out_adaptive (7x7, ratio 0) match within 1e-6. */
UNIT_TEST(test_spatial_roi_align_golden)
{
	static const struct
	{
		const char *name;
		float		scale;
		int			ratio;
		int			out;
	}			cases[] = {
		{"roi.out_scale0", 1.0f / 1.75f, 2, 14},
		{"roi.out_scale1", 1.0f / 3.5f, 2, 14},
		{"roi.out_scale2", 1.0f / 7.0f, 2, 14},
		{"roi.out_adaptive", 0.5f, 0, 7},
	};
	groma_st_file *f = spatial_golden_open();
	float	   *feat = spatial_golden_f32(f, "roi.feat", 3 * 10 * 12);	/* [1,3,10,12] */
	float	   *boxes = spatial_golden_f32(f, "roi.boxes", 9 * 5);	/* [9,5] */
	float	   *got = malloc(9 * 3 * 14 * 14 * sizeof(float));	/* [9,3,out,out] */

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]) && feat && boxes; i++)
	{
		int64_t		n = 9 * 3 * cases[i].out * cases[i].out;
		float	   *want = spatial_golden_f32(f, cases[i].name, n);
		groma_tensor ft = groma_f32_4d(feat, 1, 3, 10, 12);
		groma_tensor rt = groma_f32_2d(boxes, 9, 5);
		groma_tensor ot = groma_f32_4d(got, 9, 3, cases[i].out, cases[i].out);
		groma_status st = groma_roi_align(&ft, &rt, cases[i].scale, cases[i].ratio, true, &ot);

		CHECKF(st.code == GROMA_OK, "%s: %s", cases[i].name, st.message);
		if (want)
			spatial_expect_close(cases[i].name, got, want, n, 1e-6, 0);
		free(want);
	}
	free(feat);
	free(boxes);
	free(got);
	groma_st_close(f);
}

/* On a ramp f(y, x) = x the bins average to their centres; constants stay; aligned=False clamps sizes to 1. */
UNIT_TEST(test_spatial_roi_align_hand)
{
	float		feat[2 * 1 * 6 * 8];	/* [2,1,6,8]: batch 0 is x, batch 1 is 5 */
	float		rois[3 * 5] = {
		0, 2, 1, 6, 3,			/* aligned: x from 1.5 to 5.5, two bins centred 2.5 and 4.5 */
		1, 0, 0, 8, 6,			/* whole map of batch 1 */
		0, 3, 2, 3, 2,			/* a point box */
	};
	float		out[3 * 1 * 2 * 2];	/* [3,1,2,2] */
	groma_tensor ft = groma_f32_4d(feat, 2, 1, 6, 8);
	groma_tensor rt = groma_f32_2d(rois, 3, 5);
	groma_tensor ot = groma_f32_4d(out, 3, 1, 2, 2);

	for (int i = 0; i < 48; i++)
	{
		feat[i] = (float) (i % 8);
		feat[48 + i] = 5.0f;
	}
	CHECK(groma_roi_align(&ft, &rt, 1.0f, 2, true, &ot).code == GROMA_OK);
	CHECKF(fabsf(out[0] - 2.5f) < 1e-6f && fabsf(out[1] - 4.5f) < 1e-6f && fabsf(out[2] - 2.5f) < 1e-6f &&
		   fabsf(out[3] - 4.5f) < 1e-6f, "ramp bins %g %g %g %g", out[0], out[1], out[2], out[3]);
	for (int i = 4; i < 8; i++)
		CHECKF(fabsf(out[i] - 5.0f) < 1e-6f, "constant bin %d = %g", i, out[i]);
	/* aligned point box at x 3 - 0.5 = 2.5: every sample reads 2.5 */
	for (int i = 8; i < 12; i++)
		CHECKF(fabsf(out[i] - 2.5f) < 1e-6f, "point box bin %d = %g", i, out[i]);
	/* not aligned, the point box grows to 1x1 from x 3: bins centred 3.25 and 3.75 */
	CHECK(groma_roi_align(&ft, &rt, 1.0f, 2, false, &ot).code == GROMA_OK);
	CHECKF(fabsf(out[8] - 3.25f) < 1e-6f && fabsf(out[9] - 3.75f) < 1e-6f, "clamped box %g %g", out[8], out[9]);
	/* aligned=False with the first roi: x 2..6, bins centred 3 and 5 */
	CHECKF(fabsf(out[0] - 3.0f) < 1e-6f && fabsf(out[1] - 5.0f) < 1e-6f, "unaligned ramp %g %g", out[0], out[1]);
}

/* Reversed boxes give 0 with adaptive sampling; far-outside boxes read 0; the average divides by the full grid. */
UNIT_TEST(test_spatial_roi_align_edges)
{
	float		feat[1 * 1 * 4 * 4];	/* [1,1,4,4] all ones */
	float		rois[3 * 5] = {
		0, 3, 3, 1, 1,			/* reversed */
		0, 100, 100, 120, 120,	/* far outside */
		0, -3, 0.5f, 1, 3.5f,	/* half outside on the left (x < -1 reads 0) */
	};
	float		out[3 * 1 * 1 * 1];	/* [3,1,1,1] */
	groma_tensor ft = groma_f32_4d(feat, 1, 1, 4, 4);
	groma_tensor rt = groma_f32_2d(rois, 3, 5);
	groma_tensor ot = groma_f32_4d(out, 3, 1, 1, 1);

	for (int i = 0; i < 16; i++)
		feat[i] = 1.0f;
	CHECK(groma_roi_align(&ft, &rt, 1.0f, 0, true, &ot).code == GROMA_OK);
	CHECKF(out[0] == 0.0f && out[1] == 0.0f, "reversed %g, outside %g", out[0], out[1]);
	/* x from -3.5 to 0.5, 4 samples at -3, -2, -1, 0: -3 and -2 read 0, -1 and 0 read 1, so 0.5 */
	CHECKF(fabsf(out[2] - 0.5f) < 1e-6f, "half outside %g", out[2]);
	/* a reversed box with a fixed ratio samples backwards inside the map: still ones */
	CHECK(groma_roi_align(&ft, &rt, 1.0f, 2, true, &ot).code == GROMA_OK);
	CHECKF(fabsf(out[0] - 1.0f) < 1e-6f, "reversed with ratio 2: %g", out[0]);
}

/* Bad batch indices, non-finite coordinates, oversized grids and bad shapes are errors. */
UNIT_TEST(test_spatial_roi_align_rejects)
{
	float		feat[2 * 1 * 4 * 4] = {0};	/* [2,1,4,4] */
	float		roi[5];
	float		out[1 * 1 * 2 * 2];	/* [1,1,2,2] */
	groma_tensor ft = groma_f32_4d(feat, 2, 1, 4, 4);
	groma_tensor rt = groma_f32_2d(roi, 1, 5);
	groma_tensor ot = groma_f32_4d(out, 1, 1, 2, 2);
	groma_tensor bad_out = groma_f32_4d(out, 1, 2, 1, 2);
	static const float bad[][5] = {
		{2, 0, 0, 1, 1}, {-1, 0, 0, 1, 1}, {0.5f, 0, 0, 1, 1}, {0, NAN, 0, 1, 1}, {0, 0, 0, INFINITY, 1},
	};
	groma_status st;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		memcpy(roi, bad[i], sizeof(roi));
		st = groma_roi_align(&ft, &rt, 1.0f, 2, true, &ot);
		CHECKF(st.code == GROMA_ERR_INVALID_ARGUMENT, "roi %zu accepted (%s)", i, st.message);
	}
	memcpy(roi, (float[5]) {1, 0, 0, 3e30f, 1}, sizeof(roi));
	CHECK(groma_roi_align(&ft, &rt, 1.0f, 2, true, &ot).code == GROMA_OK);
	CHECK(groma_roi_align(&ft, &rt, 1.0f, 0, true, &ot).code == GROMA_ERR_LIMIT);
	CHECK(groma_roi_align(&ft, &rt, 1e10f, 2, true, &ot).code == GROMA_ERR_INVALID_ARGUMENT);
	st = groma_roi_align(&ft, &rt, 1.0f, 2, true, &bad_out);
	CHECKF(st.code == GROMA_ERR_INVALID_ARGUMENT && strstr(st.message, "[2,1,4,4]") && strstr(st.message, "[1,2,1,2]"),
		   "message: %s", st.message);
}
