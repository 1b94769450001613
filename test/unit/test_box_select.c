/*
 * test_box_select.c - region selection rules, refer-box matching and the
 * refusal of bad refer boxes (hand-checked cases).
 */
#include <math.h>
#include <string.h>

#include "unit.h"
#include "../../src/model/box_select.h"

static const groma_selection_params params = {0.6f, 0.15f, 100};

/* Bad refer boxes are refused before any model work; good ones normalise. */
UNIT_TEST(test_refer_box_validation)
{
	float		b[4];

	CHECK(groma_refer_box_from_pixels(NAN, 0, 10, 10, 100, 50, b).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_refer_box_from_pixels(0, 0, INFINITY, 10, 100, 50, b).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_refer_box_from_pixels(10, 10, 10, 20, 100, 50, b).code == GROMA_ERR_INVALID_ARGUMENT);	/* zero width */
	CHECK(groma_refer_box_from_pixels(10, 10, 20, 10, 100, 50, b).code == GROMA_ERR_INVALID_ARGUMENT);	/* zero height */
	CHECK(groma_refer_box_from_pixels(20, 10, 10, 20, 100, 50, b).code == GROMA_ERR_INVALID_ARGUMENT);	/* negative */
	CHECK(groma_refer_box_from_pixels(-1, 0, 10, 10, 100, 50, b).code == GROMA_ERR_INVALID_ARGUMENT);	/* outside */
	CHECK(groma_refer_box_from_pixels(0, 0, 10, 51, 100, 50, b).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_refer_box_from_pixels(0, 0, 100, 50, 100, 50, b).code == GROMA_OK);	/* the whole image */
	CHECK(b[0] == 0.5f && b[1] == 0.5f && b[2] == 1.0f && b[3] == 1.0f);
	CHECK(groma_refer_box_from_pixels(10, 5, 30, 25, 100, 50, b).code == GROMA_OK);
	CHECK(fabsf(b[0] - 0.2f) < 1e-7f && fabsf(b[1] - 0.3f) < 1e-7f && fabsf(b[2] - 0.2f) < 1e-7f &&
		  fabsf(b[3] - 0.4f) < 1e-7f);
	{
		double		px[4];

		groma_box_to_pixels(b, 100, 50, px);
		CHECK(fabs(px[0] - 10) < 1e-4 && fabs(px[1] - 5) < 1e-4 && fabs(px[2] - 30) < 1e-4 && fabs(px[3] - 25) < 1e-4);
	}
	/* thinner than float's precision at its position: no area to the model, refused (it matched another box) */
	CHECK(groma_refer_box_from_pixels(300, 200, 300.00001, 200.00001, 333, 251, b).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_refer_box_from_pixels(0, 0, 1e-300, 1e-300, 333, 251, b).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_refer_box_from_pixels(300, 200, 300.001, 200.001, 333, 251, b).code == GROMA_OK);
}

/* Score order, strict threshold, NMS suppression, the cap, refer boxes first, and the fallback. */
UNIT_TEST(test_select_regions_rules)
{
	/* (cx, cy, w, h): 0 and 1 overlap heavily, 2 is apart, 3 is below the threshold */
	const float boxes[4][4] = {{0.5f, 0.5f, 0.2f, 0.2f}, {0.51f, 0.5f, 0.2f, 0.2f},
	{0.1f, 0.1f, 0.1f, 0.1f}, {0.9f, 0.9f, 0.1f, 0.1f}};
	const float scores[4] = {0.5f, 0.9f, 0.3f, 0.15f};
	const float refer[1][4] = {{0.8f, 0.2f, 0.1f, 0.1f}};
	int64_t		kept[8],
				match;
	float		sel[8][4];
	int			n;

	CHECK(groma_select_regions(&boxes[0][0], scores, 4, NULL, 0, &params, kept, &sel[0][0], &n).code == GROMA_OK);
	CHECKF(n == 2 && kept[0] == 1 && kept[1] == 2, "kept %d: %lld %lld", n, (long long) kept[0], (long long) kept[1]);
	CHECK(memcmp(sel[0], boxes[1], sizeof(sel[0])) == 0);

	CHECK(groma_select_regions(&boxes[0][0], scores, 4, &refer[0][0], 1, &params, kept, &sel[0][0], &n).code == GROMA_OK);
	CHECKF(n == 3 && kept[0] == 4 && kept[1] == 1 && kept[2] == 2, "with refer: %d kept", n);
	CHECK(groma_match_refer_boxes(&refer[0][0], 1, &sel[0][0], n, &match, NULL).code == GROMA_OK && match == 0);

	{
		groma_selection_params one = params;

		one.max_regions = 1;
		CHECK(groma_select_regions(&boxes[0][0], scores, 4, NULL, 0, &one, kept, &sel[0][0], &n).code == GROMA_OK);
		CHECK(n == 1 && kept[0] == 1);
	}
	/* Nothing above the threshold: the single best box is kept. */
	{
		const float low[3] = {0.1f, 0.12f, 0.12f};

		CHECK(groma_select_regions(&boxes[0][0], low, 3, NULL, 0, &params, kept, &sel[0][0], &n).code == GROMA_OK);
		CHECKF(n == 1 && kept[0] == 1, "fallback kept %d boxes, first %lld", n, (long long) kept[0]);
	}
	CHECK(groma_select_regions(&boxes[0][0], scores, 0, NULL, 0, &params, kept, &sel[0][0], &n).code == GROMA_ERR_INVALID_ARGUMENT);
}
