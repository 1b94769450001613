/*
 * refer_box.c - a user's box in pixels as the model's normalised box, with
 * the checks it must pass; linked into groma.so too, so the backend refuses
 * a box the model cannot take before sending it.
 */
#include "refer_box.h"

#include <math.h>

/* Writes the corners of a (cx, cy, w, h) box; see refer_box.h. */
void
groma_box_corners(const float *b, float *c)
{
	c[0] = b[0] - 0.5f * b[2];
	c[1] = b[1] - 0.5f * b[3];
	c[2] = b[0] + 0.5f * b[2];
	c[3] = b[1] + 0.5f * b[3];
}

/* Converts a pixel box to normalised (cx, cy, w, h); see refer_box.h. */
groma_status
groma_refer_box_from_pixels(double x1, double y1, double x2, double y2, int width, int height,
							float *cxcywh)
{
	float		corners[4];

	if (!isfinite(x1) || !isfinite(y1) || !isfinite(x2) || !isfinite(y2))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "refer box has a coordinate that is not a finite number");
	if (width <= 0 || height <= 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "refer box needs a positive image size");
	if (x2 <= x1 || y2 <= y1)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT,
						   "refer box (%g,%g),(%g,%g) has zero or negative width or height", x1, y1, x2, y2);
	if (x1 < 0 || y1 < 0 || x2 > width || y2 > height)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "refer box (%g,%g),(%g,%g) is not inside the %dx%d image",
						   x1, y1, x2, y2, width, height);
	cxcywh[0] = (float) ((x1 + x2) / 2.0 / width);
	cxcywh[1] = (float) ((y1 + y2) / 2.0 / height);
	cxcywh[2] = (float) ((x2 - x1) / width);
	cxcywh[3] = (float) ((y2 - y1) / height);
	/* a box thinner than float's precision at its position has no area to the model: it would match another box */
	groma_box_corners(cxcywh, corners);
	if (!(corners[2] > corners[0]) || !(corners[3] > corners[1]) ||
		!((corners[2] - corners[0]) * (corners[3] - corners[1]) > 0))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT,
						   "refer box (%.15g,%.15g),(%.15g,%.15g) is too small: in the model's 32-bit coordinates "
						   "(fractions of the image's size) it has no area",
						   x1, y1, x2, y2);
	return groma_ok();
}
