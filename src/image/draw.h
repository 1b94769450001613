/*
 * draw.h - boxes and labels drawn on a JPEG, re-encoded as a JPEG ("look,
 * not read": groma_draw, groma-server --draw and the DRAW frame).
 *
 * The image is decoded with the ordinary decoder and its limits, each box is
 * drawn as a rectangle outline in a colour of a fixed palette (box i takes
 * colour i modulo the palette size), an optional label per box is written in
 * a built-in 5x7 bitmap font on a filled background at the box's top-left
 * corner (inside the image; each non-ASCII UTF-8 character shows as one
 * '?'), and the result is encoded with TurboJPEG at
 * quality 90 with 4:4:4 chroma so that the colours survive.
 * Boxes are pixel corners x1,y1,x2,y2 in either order; a box partly outside
 * the image is clipped, one entirely outside is skipped.
 */
#ifndef GROMA_DRAW_H
#define GROMA_DRAW_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/status.h"
#include "jpeg_decode.h"

/* Most boxes one drawing takes. */
#define GROMA_DRAW_MAX_BOXES 1000
/* Colours in the palette. */
#define GROMA_DRAW_PALETTE_SIZE 10
/* JPEG quality of the drawn image. */
#define GROMA_DRAW_JPEG_QUALITY 90
/* Glyph cell of the built-in font, before scaling. */
#define GROMA_FONT_WIDTH 5
#define GROMA_FONT_HEIGHT 7

/* The RGB colour box i is drawn in. */
const uint8_t *groma_draw_palette(int i);

/* The outline thickness (1 to 3 pixels) used for an image of this size. */
int			groma_draw_thickness(int width, int height);

/* The scale of the label font (1 or 2) used for an image of this size. */
int			groma_draw_font_scale(int width, int height);

/*
 * Checks boxes and labels: GROMA_ERR_LIMIT for more than
 * GROMA_DRAW_MAX_BOXES boxes, GROMA_ERR_INVALID_ARGUMENT for a negative
 * count, a NaN or infinite coordinate, or labels whose count is not
 * n_boxes (labels NULL means no labels; a NULL label is an empty one).
 */
groma_status groma_draw_check(const double *boxes, int n_boxes, const char *const *labels, int n_labels);

/* Draws the checked boxes and labels onto image in place. */
void		groma_draw_on_rgb(groma_rgb_image *image, const double *boxes, int n_boxes,
							  const char *const *labels);

/*
 * Encodes an RGB image as a JPEG (quality GROMA_DRAW_JPEG_QUALITY, 4:4:4)
 * into *out (malloc'd, *out_len bytes).
 */
groma_status groma_jpeg_encode_rgb(const groma_rgb_image *image, uint8_t **out, size_t *out_len);

/*
 * Decodes jpeg (under limits), draws boxes ([n_boxes][4]) and labels
 * (NULL, or n_labels == n_boxes strings) and encodes the result into *out
 * (malloc'd, *out_len bytes); *width and *height (may be NULL) receive the
 * image size.  Decoding failures keep the decoder's codes; *out is NULL on
 * failure.
 */
groma_status groma_draw_jpeg(const uint8_t *jpeg, size_t len, const groma_jpeg_limits *limits,
							 const double *boxes, int n_boxes, const char *const *labels, int n_labels,
							 uint8_t **out, size_t *out_len, int *width, int *height);

/* Draws one character (ASCII; anything else as '?') at x,y in colour, scaled, clipped to the image. */
void		groma_font_draw_char(groma_rgb_image *image, int x, int y, unsigned char c, int scale,
								 const uint8_t colour[3]);

#endif							/* GROMA_DRAW_H */
