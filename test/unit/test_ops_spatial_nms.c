/*
 * test_ops_spatial_nms.c - NMS against the goldens (ties, a score exactly
 * at the threshold, duplicates, zero-area and reversed boxes), the
 * single-best fallback, top-k and inverse sigmoid, plus hand cases for the
 * IoU rule and edge cases.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "test_ops_spatial_golden.h"
#include "../../src/runtime/ops_spatial.h"

/* Compares kept indices with golden name (exactly); notes them. */
static void
check_keep(const groma_st_file *f, const char *name, const int64_t *keep, int n_keep)
{
	int64_t		n = 0;
	int64_t    *want = spatial_golden_i64(f, name, &n);
	char		buf[128] = "";

	if (want == NULL && n != 0)
		return;
	for (int i = 0; i < n_keep && strlen(buf) < sizeof(buf) - 8; i++)
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%lld", i ? "," : "", (long long) keep[i]);
	unit_note("%s: kept [%s]", name, buf);
	CHECKF(n == n_keep, "%s: kept %d boxes, golden %lld", name, n_keep, (long long) n);
	for (int i = 0; i < n_keep && i < n; i++)
		CHECKF(keep[i] == want[i], "%s[%d] = %lld, golden %lld", name, i, (long long) keep[i], (long long) want[i]);
	free(want);
}

/*
 * nms.keep_a..d: mmcv's IoU (offset 0, areas not clamped), strict score
 * threshold in float, ties by lower index, max_num.  An offset of 1 (the
 * "+1" convention) would merge boxes 0 and 2 of these normalised boxes, and
 * a clamped area would change the reversed box 8; the goldens rule both out.
 */
UNIT_TEST(test_spatial_nms_golden)
{
	static const struct
	{
		const char *name;
		float		iou,
					score;
		int			max_num;
	}			cases[] = {
		{"nms.keep_a", 0.6f, 0.15f, 100},
		{"nms.keep_b", 0.6f, 0.15f, 3},
		{"nms.keep_c", 0.3f, 0.0f, -1},
		{"nms.keep_d", 0.6f, 0.95f, 100},
	};
	groma_st_file *f = spatial_golden_open();
	float	   *boxes = spatial_golden_f32(f, "nms.boxes", 12 * 4);	/* [12,4] */
	float	   *scores = spatial_golden_f32(f, "nms.scores", 12);	/* [12] */

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]) && boxes && scores; i++)
	{
		groma_tensor bt = groma_f32_2d(boxes, 12, 4);
		groma_tensor st_ = groma_f32_1d(scores, 12);
		int64_t		keep[12];
		int			n_keep = -1;
		groma_status st = groma_nms(&bt, &st_, cases[i].iou, cases[i].score, cases[i].max_num, keep, &n_keep);

		CHECKF(st.code == GROMA_OK, "%s: %s", cases[i].name, st.message);
		check_keep(f, cases[i].name, keep, n_keep);
	}
	free(boxes);
	free(scores);
	groma_st_close(f);
}

/*
 * The fallback when nothing survives: keep the single best box (torch.max:
 * first maximum).  ops.safetensors stores only the selected box, not its
 * inputs; these candidates (cx, cy, w, h) rebuild the documented case: the
 * max score 0.9 at index 1, nothing above 0.95.
 */
UNIT_TEST(test_spatial_nms_fallback_golden)
{
	float		cxcywh[3 * 4] = {0.5f, 0.5f, 0.2f, 0.2f, 0.3f, 0.3f, 0.1f, 0.1f, 0.7f, 0.6f, 0.3f, 0.2f};	/* [3,4] */
	float		corners[3 * 4];	/* [3,4] */
	float		scores[3] = {0.5f, 0.9f, 0.9f};
	int64_t		keep[3],
				best;
	float		best_score;
	int			n_keep = -1;
	groma_st_file *f = spatial_golden_open();
	float	   *want = spatial_golden_f32(f, "nms.fallback_selected", 4);	/* [1,4] */
	groma_tensor bt = groma_f32_2d(corners, 3, 4);
	groma_tensor sc = groma_f32_1d(scores, 3);

	for (int i = 0; i < 3; i++)
	{
		const float *b = cxcywh + 4 * i;

		corners[4 * i + 0] = b[0] - 0.5f * b[2];
		corners[4 * i + 1] = b[1] - 0.5f * b[3];
		corners[4 * i + 2] = b[0] + 0.5f * b[2];
		corners[4 * i + 3] = b[1] + 0.5f * b[3];
	}
	CHECK(groma_nms(&bt, &sc, 0.6f, 0.95f, 100, keep, &n_keep).code == GROMA_OK && n_keep == 0);
	CHECK(groma_topk(&sc, 1, &best, &best_score).code == GROMA_OK);
	CHECKF(best == 1 && best_score == 0.9f, "fallback picked %lld (%g)", (long long) best, best_score);
	if (want)
		CHECK(memcmp(want, cxcywh + 4 * best, 4 * sizeof(float)) == 0);
	free(want);
	groma_st_close(f);
}

/* IoU equal to the threshold does not suppress; reversed boxes have positive area and no overlap; empty input. */
UNIT_TEST(test_spatial_nms_hand)
{
	float		boxes[5 * 4] = {
		0, 0, 2, 1,				/* area 2 */
		1, 0, 3, 1,				/* IoU with box 0: 1 / 3 */
		5, 5, 4, 4,				/* reversed: area (+1), overlaps nothing, itself included */
		5, 5, 4, 4,
		0, 0, 2, 1,				/* duplicate of box 0, score below 0 */
	};
	float		scores[5] = {0.9f, 0.8f, 0.7f, 0.7f, -1.0f};
	int64_t		keep[5];
	int			n = -1;
	groma_tensor bt = groma_f32_2d(boxes, 5, 4);
	groma_tensor st_ = groma_f32_1d(scores, 5);
	groma_tensor empty_b = groma_f32_2d(NULL, 0, 4);
	groma_tensor empty_s = groma_f32_1d(NULL, 0);
	groma_tensor wrong = groma_f32_1d(scores, 4);

	CHECK(groma_nms(&bt, &st_, 1.0f / 3.0f, 0.5f, -1, keep, &n).code == GROMA_OK);
	CHECKF(n == 4 && keep[0] == 0 && keep[1] == 1 && keep[2] == 2 && keep[3] == 3, "kept %d", n);
	CHECK(groma_nms(&bt, &st_, 0.33f, 0.5f, -1, keep, &n).code == GROMA_OK);
	CHECKF(n == 3 && keep[0] == 0 && keep[1] == 2 && keep[2] == 3, "kept %d", n);
	/* a threshold <= 0 filters nothing (mmcv): the negative-score duplicate is a candidate, then suppressed */
	CHECK(groma_nms(&bt, &st_, 0.99f, 0.0f, 0, keep, &n).code == GROMA_OK);
	CHECKF(n == 4 && keep[3] == 3, "kept %d", n);
	CHECK(groma_nms(&bt, &st_, 1.0f, -5.0f, 0, keep, &n).code == GROMA_OK);
	CHECKF(n == 5 && keep[4] == 4, "kept %d", n);
	scores[1] = NAN;
	CHECK(groma_nms(&bt, &st_, 0.5f, 0.0f, 2, keep, &n).code == GROMA_OK);
	CHECKF(n == 2 && keep[0] == 0 && keep[1] == 2, "NaN score kept? %d", n);
	scores[1] = 0.8f;

	n = -1;
	CHECK(groma_nms(&empty_b, &empty_s, 0.5f, 0.1f, 10, keep, &n).code == GROMA_OK && n == 0);
	CHECK(groma_nms(&bt, &wrong, 0.5f, 0.1f, 10, keep, &n).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_nms(&bt, &st_, 0.5f, 0.1f, 10, NULL, &n).code == GROMA_ERR_INVALID_ARGUMENT);
}

/* Top-k is descending with ties by lower index, NaN first; k outside [0, N] is an error. */
UNIT_TEST(test_spatial_topk)
{
	float		x[7] = {0.5f, 2.0f, -1.0f, 2.0f, 0.5f, INFINITY, -INFINITY};
	int64_t		idx[7];
	float		val[7];
	static const int64_t want[7] = {5, 1, 3, 0, 4, 2, 6};
	groma_tensor t = groma_f32_1d(x, 7);
	groma_tensor t2 = groma_f32_2d(x, 7, 1);

	CHECK(groma_topk(&t, 7, idx, val).code == GROMA_OK);
	for (int i = 0; i < 7; i++)
		CHECKF(idx[i] == want[i] && val[i] == x[want[i]], "rank %d: index %lld", i, (long long) idx[i]);
	CHECK(groma_topk(&t, 3, idx, NULL).code == GROMA_OK && idx[0] == 5 && idx[1] == 1 && idx[2] == 3);
	CHECK(groma_topk(&t, 0, NULL, NULL).code == GROMA_OK);
	x[4] = NAN;
	CHECK(groma_topk(&t, 2, idx, NULL).code == GROMA_OK && idx[0] == 4 && idx[1] == 5);
	CHECK(groma_topk(&t, 8, idx, NULL).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_topk(&t, -1, idx, NULL).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_topk(&t2, 1, idx, NULL).code == GROMA_ERR_INVALID_ARGUMENT);
}

/* inverse_sigmoid with eps 1e-5 matches invsig.y within 1e-6, also in place. */
UNIT_TEST(test_spatial_inverse_sigmoid_golden)
{
	groma_st_file *f = spatial_golden_open();
	float	   *x = spatial_golden_f32(f, "invsig.x", 8);	/* [8] */
	float	   *want = spatial_golden_f32(f, "invsig.y", 8);	/* [8] */

	if (x && want)
	{
		float		got[8];
		groma_tensor xt = groma_f32_1d(x, 8);
		groma_tensor yt = groma_f32_1d(got, 8);
		groma_tensor bad = groma_f32_1d(got, 7);
		float		nan_in = NAN,
					nan_out = 0.0f;
		groma_tensor nt = groma_f32_1d(&nan_in, 1);
		groma_tensor no = groma_f32_1d(&nan_out, 1);

		CHECK(groma_inverse_sigmoid(&xt, 1e-5f, &yt).code == GROMA_OK);
		spatial_expect_close("invsig.y", got, want, 8, 1e-6, 0);
		CHECK(groma_inverse_sigmoid(&xt, 1e-5f, &xt).code == GROMA_OK);
		CHECK(memcmp(x, got, sizeof(got)) == 0);
		CHECK(groma_inverse_sigmoid(&nt, 1e-5f, &no).code == GROMA_OK && isnan(nan_out));
		CHECK(groma_inverse_sigmoid(&xt, 1e-5f, &bad).code == GROMA_ERR_INVALID_ARGUMENT);
	}
	free(x);
	free(want);
	groma_st_close(f);
}
