/*
 * vision.h - the whole vision side of one request (GROMA.md steps 1-6):
 * JPEG → pixels → DINOv2 → image tokens, proposals, selected boxes and one
 * region token per selected box.
 */
#ifndef GROMA_VISION_H
#define GROMA_VISION_H

#include "../image/jpeg_decode.h"
#include "groma_model.h"

/* Refer boxes one request may carry. */
#define GROMA_MAX_REFER_BOXES 16

/* Milliseconds spent in each stage of the last run. */
typedef struct groma_vision_timing
{
	double		decode_ms;
	double		dinov2_ms;
	double		proposer_ms;
	double		select_ms;
	double		region_ms;		/* fuse + tokens */
	double		fuse_ms;		/* multi-level maps (part of region_ms) */
	double		bridge_ms;
} groma_vision_timing;

typedef struct groma_vision_result
{
	int			width;			/* original image size */
	int			height;
	groma_tensor image_tokens;	/* [(n/2)², D] bridge output */
	int			n_regions;
	int64_t    *kept;			/* [n_regions] candidate indices (>= K: refer boxes) */
	float	   *boxes;			/* [n_regions][4] normalised (cx, cy, w, h), score order */
	float	   *scores;			/* [n_regions] (1.0 for refer boxes) */
	groma_tensor region_tokens;	/* [n_regions, D] */
	groma_tensor region_features;	/* [n_regions, mid]: before the up-projection to D (embeddings) */
	int			n_refer;
	int64_t		refer_match[GROMA_MAX_REFER_BOXES];	/* refer box → index into boxes */
	groma_vision_timing timing;
} groma_vision_result;

/* Images one vision batch may hold. */
#define GROMA_VISION_MAX_BATCH 64

/* One image of a vision batch: JPEG bytes, limits and optional refer boxes [n_refer][4] in pixels. */
typedef struct groma_vision_input
{
	const uint8_t *jpeg;
	size_t		len;
	const groma_jpeg_limits *limits;
	const double *refer_px;
	int			n_refer;
} groma_vision_input;

/*
 * groma_vision_run for n images (1..GROMA_VISION_MAX_BATCH) as one batch
 * through every stage: DINOv2, the bridge, the proposer and the region
 * maps run once for all; selection and region tokens per image (their
 * region counts differ).  res[i] equals what groma_vision_run gives for
 * image i alone (its timings are the batch's).  An image that does not
 * decode, or whose refer boxes are bad, gets its error in each[i] and is
 * left out; the others go on.  A failure of the whole batch (memory, the
 * device, a cancel) is returned, copied to every each[i], and rewinds the
 * arenas.
 */
groma_status groma_vision_run_batch(const groma_model *m, int n, const groma_vision_input *in, groma_arena *act,
									groma_arena *out, groma_arena *host, groma_vision_result *res,
									groma_status *each);

/*
 * Runs the vision side on JPEG bytes with optional refer boxes refer_px
 * [n_refer][4] as pixel corners of the original image.  The result's
 * tensors are carved from out and its arrays (kept, boxes, scores) from
 * host, valid until those are reset; act holds scratch.  act and out live
 * where the model does; host is CPU memory other than act (out itself for a
 * CPU model).  Bad refer boxes (non-finite, empty, outside the image) fail
 * with GROMA_ERR_INVALID_ARGUMENT before any model work.
 */
groma_status groma_vision_run(const groma_model *m, const uint8_t *jpeg, size_t len,
							  const groma_jpeg_limits *limits, const double *refer_px, int n_refer,
							  groma_arena *act, groma_arena *out, groma_arena *host, groma_vision_result *res);

#endif							/* GROMA_VISION_H */
