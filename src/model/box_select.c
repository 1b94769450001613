/*
 * box_select.c - region selection, refer-box matching and box conversions.
 */
#include "box_select.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/ops_spatial.h"

/* Selects regions; see box_select.h. */
groma_status
groma_select_regions(const float *boxes, const float *scores, int k, const float *refer, int r,
					 const groma_selection_params *params, int64_t *kept, float *selected, int *count)
{
	int			n = k + r;
	float	   *corners,
			   *all_scores;
	int			n_keep = 0;
	groma_status st;

	*count = 0;
	if (k < 0 || r < 0 || n < 1 || n > GROMA_MAX_CANDIDATES)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "region selection: %d proposals and %d refer boxes", k, r);
	corners = malloc(sizeof(float) * 4 * (size_t) n);	/* [N, 4] */
	all_scores = malloc(sizeof(float) * (size_t) n);	/* [N] */
	if (corners == NULL || all_scores == NULL)
	{
		free(corners);
		free(all_scores);
		return groma_error(GROMA_ERR_NO_MEMORY, "region selection: out of memory");
	}
	for (int i = 0; i < n; i++)
	{
		groma_box_corners(i < k ? boxes + 4 * i : refer + 4 * (i - k), corners + 4 * i);
		all_scores[i] = i < k ? scores[i] : 1.0f;
	}
	{
		groma_tensor tb = groma_f32_2d(corners, n, 4),
					ts = groma_f32_1d(all_scores, n);

		st = groma_nms(&tb, &ts, params->nms_threshold, params->score_threshold, params->max_regions,
					   kept, &n_keep);
	}
	if (st.code == GROMA_OK && n_keep == 0)
	{
		/* Nothing survived: keep the single best candidate (first on ties, as torch.max). */
		int			best = 0;

		for (int i = 1; i < n; i++)
			if (all_scores[i] > all_scores[best])
				best = i;
		kept[0] = best;
		n_keep = 1;
	}
	if (st.code == GROMA_OK)
	{
		for (int i = 0; i < n_keep; i++)
			memcpy(selected + 4 * i, kept[i] < k ? boxes + 4 * kept[i] : refer + 4 * (kept[i] - k),
				   4 * sizeof(float));
		*count = n_keep;
	}
	free(corners);
	free(all_scores);
	return st;
}

/* Returns torchvision's box_iou of two corner boxes (areas not clamped). */
static float
corner_iou(const float *a, const float *b)
{
	float		area_a = (a[2] - a[0]) * (a[3] - a[1]);
	float		area_b = (b[2] - b[0]) * (b[3] - b[1]);
	float		w = fminf(a[2], b[2]) - fmaxf(a[0], b[0]);
	float		h = fminf(a[3], b[3]) - fmaxf(a[1], b[1]);
	float		inter = (w > 0 ? w : 0) * (h > 0 ? h : 0);

	return inter / (area_a + area_b - inter);
}

/* Matches refer boxes to selected boxes by IoU; see box_select.h. */
groma_status
groma_match_refer_boxes(const float *refer, int r, const float *selected, int n, int64_t *match,
						float *ious)
{
	if (n < 1)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "refer matching: no selected boxes");
	for (int i = 0; i < r; i++)
	{
		float		ra[4],
					best = -INFINITY;

		groma_box_corners(refer + 4 * i, ra);
		match[i] = 0;
		for (int j = 0; j < n; j++)
		{
			float		sb[4],
						iou;

			groma_box_corners(selected + 4 * j, sb);
			iou = corner_iou(ra, sb);
			if (ious)
				ious[(size_t) i * n + j] = iou;
			if (iou > best)
			{
				best = iou;
				match[i] = j;
			}
		}
	}
	return groma_ok();
}

/* Converts normalised (cx, cy, w, h) to pixel corners. */
void
groma_box_to_pixels(const float *b, int width, int height, double *c)
{
	c[0] = ((double) b[0] - 0.5 * b[2]) * width;
	c[1] = ((double) b[1] - 0.5 * b[3]) * height;
	c[2] = ((double) b[0] + 0.5 * b[2]) * width;
	c[3] = ((double) b[1] + 0.5 * b[3]) * height;
}
