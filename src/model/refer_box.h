/*
 * refer_box.h - a user's box in pixels as the model's normalised box.
 */
#ifndef GROMA_REFER_BOX_H
#define GROMA_REFER_BOX_H

#include "../runtime/status.h"

/* Writes the corners (x1, y1, x2, y2) of a (cx, cy, w, h) box, as transformers' center_to_corners_format does. */
void		groma_box_corners(const float *cxcywh, float *corners);

/*
 * Converts a user box in pixels of a width × height image, corners (x1, y1)
 * top-left and (x2, y2) bottom-right, to normalised (cx, cy, w, h).
 * Refuses non-finite coordinates, zero or negative width or height, boxes
 * not inside the image (edges on the border are inside), and boxes too
 * small to have an area in the model's 32-bit coordinates.
 */
groma_status groma_refer_box_from_pixels(double x1, double y1, double x2, double y2,
										 int width, int height, float *cxcywh);

#endif							/* GROMA_REFER_BOX_H */
