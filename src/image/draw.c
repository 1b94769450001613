/*
 * draw.c - rectangles and labels drawn on a decoded image (draw.h).
 */
#include "draw.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Saturated colours that stay apart from each other after JPEG compression. */
static const uint8_t palette[GROMA_DRAW_PALETTE_SIZE][3] = {
	{255, 0, 0},
	{0, 200, 0},
	{0, 64, 255},
	{255, 200, 0},
	{255, 0, 255},
	{0, 220, 220},
	{255, 128, 0},
	{128, 0, 255},
	{0, 120, 60},
	{255, 255, 255},
};

/* Returns box i's colour; see draw.h. */
const uint8_t *
groma_draw_palette(int i)
{
	if (i < 0)
		i = -i;
	return palette[i % GROMA_DRAW_PALETTE_SIZE];
}

/* Returns the outline thickness; see draw.h. */
int
groma_draw_thickness(int width, int height)
{
	int			side = width < height ? width : height;

	return side < 200 ? 1 : side < 800 ? 2 : 3;
}

/* Returns the font scale; see draw.h. */
int
groma_draw_font_scale(int width, int height)
{
	int			side = width < height ? width : height;

	return side < 400 ? 1 : 2;
}

/* Checks boxes and labels; see draw.h. */
groma_status
groma_draw_check(const double *boxes, int n_boxes, const char *const *labels, int n_labels)
{
	if (n_boxes < 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "negative box count %d", n_boxes);
	if (n_boxes > GROMA_DRAW_MAX_BOXES)
		return groma_error(GROMA_ERR_LIMIT, "%d boxes, at most %d can be drawn", n_boxes, GROMA_DRAW_MAX_BOXES);
	if (n_boxes > 0 && boxes == NULL)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "no box coordinates");
	if (labels != NULL && n_labels != n_boxes)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%d labels for %d boxes: give one label per box",
						   n_labels, n_boxes);
	for (int i = 0; i < 4 * n_boxes; i++)
		if (!isfinite(boxes[i]))
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "box %d has a NaN or infinite coordinate",
							   i / 4 + 1);	/* counted from 1, as the other messages about boxes and labels */
	return groma_ok();
}

/* Fills the rectangle [x0, x1) x [y0, y1), clipped to the image. */
static void
fill_rect(groma_rgb_image *image, long x0, long y0, long x1, long y1, const uint8_t colour[3])
{
	x0 = x0 < 0 ? 0 : x0;
	y0 = y0 < 0 ? 0 : y0;
	x1 = x1 > image->width ? image->width : x1;
	y1 = y1 > image->height ? image->height : y1;
	for (long y = y0; y < y1; y++)
		for (long x = x0; x < x1; x++)
			memcpy(image->pixels + ((size_t) y * image->width + (size_t) x) * 3, colour, 3);
}

/* Converts a finite coordinate to a pixel index, bounded far outside any image. */
static long
to_pixel(double v)
{
	v = floor(v);
	if (v < -1e9)
		return -1000000000L;
	if (v > 1e9)
		return 1000000000L;
	return (long) v;
}

/* Returns a colour readable on background: black on light colours, white on dark. */
static const uint8_t *
ink_for(const uint8_t *background)
{
	static const uint8_t black[3] = {0, 0, 0};
	static const uint8_t white[3] = {255, 255, 255};
	int			luma = (299 * background[0] + 587 * background[1] + 114 * background[2]) / 1000;

	return luma > 140 ? black : white;
}

/* Returns true for a UTF-8 continuation byte (drawn as part of the '?' of its character). */
static bool
is_continuation(unsigned char c)
{
	return (c & 0xC0) == 0x80;
}

/* Writes a label on a filled background at the top-left corner x,y, moved inside the image. */
static void
draw_label(groma_rgb_image *image, long x, long y, const char *label, const uint8_t *colour)
{
	int			scale = groma_draw_font_scale(image->width, image->height);
	long		n = 0;
	long		cell = (GROMA_FONT_WIDTH + 1) * scale;
	long		w,
				h = (GROMA_FONT_HEIGHT + 2) * scale;
	long		i = 0;

	for (const char *p = label; *p && n <= image->width; p++)
		n += !is_continuation((unsigned char) *p);
	if (n == 0)
		return;
	w = n * cell + scale;
	x = x + w > image->width ? image->width - w : x;
	y = y + h > image->height ? image->height - h : y;
	x = x < 0 ? 0 : x;
	y = y < 0 ? 0 : y;
	fill_rect(image, x, y, x + w, y + h, colour);
	for (const char *p = label; *p && i < n; p++)
	{
		if (is_continuation((unsigned char) *p))
			continue;
		groma_font_draw_char(image, (int) (x + scale + i * cell), (int) (y + scale), (unsigned char) *p, scale,
							 ink_for(colour));
		i++;
	}
}

/* Draws the boxes and labels; see draw.h. */
void
groma_draw_on_rgb(groma_rgb_image *image, const double *boxes, int n_boxes, const char *const *labels)
{
	int			t = groma_draw_thickness(image->width, image->height);

	for (int i = 0; i < n_boxes; i++)
	{
		const double *b = boxes + 4 * i;
		long		x0 = to_pixel(fmin(b[0], b[2]));
		long		y0 = to_pixel(fmin(b[1], b[3]));
		long		x1 = to_pixel(fmax(b[0], b[2]));	/* last column of the box */
		long		y1 = to_pixel(fmax(b[1], b[3]));
		const uint8_t *c = groma_draw_palette(i);

		if (x1 < 0 || y1 < 0 || x0 >= image->width || y0 >= image->height)
			continue;			/* entirely outside */
		fill_rect(image, x0, y0, x1 + 1, y0 + t, c);	/* top */
		fill_rect(image, x0, y1 + 1 - t, x1 + 1, y1 + 1, c);	/* bottom */
		fill_rect(image, x0, y0, x0 + t, y1 + 1, c);	/* left */
		fill_rect(image, x1 + 1 - t, y0, x1 + 1, y1 + 1, c);	/* right */
	}
	/* labels last, so that no outline covers a label */
	for (int i = 0; labels != NULL && i < n_boxes; i++)
	{
		const double *b = boxes + 4 * i;
		long		x0 = to_pixel(fmin(b[0], b[2]));
		long		y0 = to_pixel(fmin(b[1], b[3]));

		if (labels[i] == NULL || to_pixel(fmax(b[0], b[2])) < 0 || to_pixel(fmax(b[1], b[3])) < 0 ||
			x0 >= image->width || y0 >= image->height)
			continue;
		draw_label(image, x0 < 0 ? 0 : x0, y0 < 0 ? 0 : y0, labels[i], groma_draw_palette(i));
	}
}

/* Decodes, draws and encodes; see draw.h. */
groma_status
groma_draw_jpeg(const uint8_t *jpeg, size_t len, const groma_jpeg_limits *limits, const double *boxes,
				int n_boxes, const char *const *labels, int n_labels, uint8_t **out, size_t *out_len,
				int *width, int *height)
{
	groma_rgb_image image;
	groma_status st;

	*out = NULL;
	*out_len = 0;
	GROMA_TRY(groma_draw_check(boxes, n_boxes, labels, n_labels));
	GROMA_TRY(groma_jpeg_decode_rgb(jpeg, len, limits, &image));
	if (width)
		*width = image.width;
	if (height)
		*height = image.height;
	groma_draw_on_rgb(&image, boxes, n_boxes, labels);
	st = groma_jpeg_encode_rgb(&image, out, out_len);
	groma_rgb_image_free(&image);
	return st;
}
