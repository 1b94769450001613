/*
 * box_select.h - choosing the regions the language model sees (GROMA.md
 * step 5) and matching user boxes to them.
 *
 * Candidates are the proposer's K boxes followed by the user's refer boxes
 * with score 1.0; class-agnostic NMS on corner boxes keeps scores strictly
 * above the threshold, in descending score order (ties: lower candidate
 * index), at most max_regions; when nothing survives, the single best
 * candidate is kept.  Deviation: the original shuffles the kept boxes; groma
 * keeps score order so results are deterministic.
 */
#ifndef GROMA_BOX_SELECT_H
#define GROMA_BOX_SELECT_H

#include <stdint.h>

#include "../runtime/status.h"
#include "refer_box.h"

/* Largest number of candidates (proposals + refer boxes) one selection takes. */
#define GROMA_MAX_CANDIDATES 4096

typedef struct groma_selection_params
{
	float		nms_threshold;	/* IoU above this suppresses (0.6) */
	float		score_threshold;	/* scores must be above this (0.15) */
	int			max_regions;	/* at most this many (100) */
} groma_selection_params;

/*
 * Selects regions from boxes[K][4] and scores[K] (normalised cx, cy, w, h)
 * plus refer[R][4] (normalised cx, cy, w, h, score 1.0).  Writes the kept
 * candidate indices to kept[] (capacity K + R; indices >= K are refer
 * boxes), their boxes to selected[][4] (same capacity) and the count.
 */
groma_status groma_select_regions(const float *boxes, const float *scores, int k,
								  const float *refer, int r, const groma_selection_params *params,
								  int64_t *kept, float *selected, int *count);

/*
 * For each refer box (normalised cx, cy, w, h), the index of the selected box
 * with the highest IoU (first on ties), as torchvision's box_iou + max
 * compute it; ious[R][N] receives every IoU when not NULL.
 */
groma_status groma_match_refer_boxes(const float *refer, int r, const float *selected, int n,
									 int64_t *match, float *ious);

/* Converts a normalised (cx, cy, w, h) box to pixel corners of a width × height image. */
void		groma_box_to_pixels(const float *cxcywh, int width, int height, double *corners);

#endif							/* GROMA_BOX_SELECT_H */
