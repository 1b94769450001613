/*
 * test_draw.c - boxes and labels drawn on a JPEG (src/image/draw.h): pixels
 * at known positions after a decode, and refused inputs.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "../../src/image/draw.h"

/* JPEG error allowed on a flat area, per channel. */
#define FLAT_TOLERANCE 12
/* JPEG error allowed on a thin coloured line, per channel. */
#define LINE_TOLERANCE 60

/* Encodes a uniform grey width x height image; the caller frees *jpeg. */
static void
make_grey_jpeg(int width, int height, uint8_t **jpeg, size_t *len)
{
	groma_rgb_image img = {width, height, malloc((size_t) width * height * 3)};
	groma_status st;

	memset(img.pixels, 128, (size_t) width * height * 3);
	st = groma_jpeg_encode_rgb(&img, jpeg, len);
	CHECKF(st.code == GROMA_OK, "encode: %s", st.message);
	free(img.pixels);
}

/* Returns true when pixel x,y of image is within tol of colour on every channel. */
static bool
pixel_near(const groma_rgb_image *image, int x, int y, const uint8_t *colour, int tol)
{
	const uint8_t *p = image->pixels + ((size_t) y * image->width + x) * 3;

	for (int c = 0; c < 3; c++)
		if (abs((int) p[c] - (int) colour[c]) > tol)
		{
			unit_note("pixel %d,%d is %d,%d,%d, want %d,%d,%d +- %d", x, y, p[0], p[1], p[2], colour[0],
					  colour[1], colour[2], tol);
			return false;
		}
	return true;
}

/* Draws on a grey 320x240 JPEG and decodes the result into *out. */
static groma_status
draw_and_decode(const double *boxes, int n, const char *const *labels, groma_rgb_image *out)
{
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	uint8_t    *jpeg,
			   *drawn = NULL;
	size_t		len,
				drawn_len = 0;
	int			w = 0,
				h = 0;
	groma_status st;

	memset(out, 0, sizeof(*out));
	make_grey_jpeg(320, 240, &jpeg, &len);
	st = groma_draw_jpeg(jpeg, len, &limits, boxes, n, labels, labels ? n : 0, &drawn, &drawn_len, &w, &h);
	free(jpeg);
	if (st.code != GROMA_OK)
	{
		CHECK(drawn == NULL);
		return st;
	}
	CHECK(w == 320 && h == 240);
	st = groma_jpeg_decode_rgb(drawn, drawn_len, &limits, out);
	CHECKF(st.code == GROMA_OK, "decoding the drawn image: %s", st.message);
	free(drawn);
	return st;
}

/* Box edges take the palette colours, the inside and the outside stay grey. */
UNIT_TEST(test_draw_box_edges)
{
	static const uint8_t grey[3] = {128, 128, 128};
	/* box 1 is given with its corners swapped; box 2 reaches past the bottom-right; box 3 is outside */
	double		boxes[4][4] = {{40, 30, 200, 150}, {290, 120, 250, 60}, {300, 200, 400, 300}, {400, 10, 500, 20}};
	groma_rgb_image img;

	CHECK(groma_draw_thickness(320, 240) == 2);
	if (draw_and_decode(&boxes[0][0], 4, NULL, &img).code != GROMA_OK)
		return;
	CHECK(img.width == 320 && img.height == 240);
	CHECK(pixel_near(&img, 120, 30, groma_draw_palette(0), LINE_TOLERANCE));	/* top */
	CHECK(pixel_near(&img, 120, 31, groma_draw_palette(0), LINE_TOLERANCE));
	CHECK(pixel_near(&img, 120, 150, groma_draw_palette(0), LINE_TOLERANCE));	/* bottom */
	CHECK(pixel_near(&img, 40, 90, groma_draw_palette(0), LINE_TOLERANCE));	/* left */
	CHECK(pixel_near(&img, 200, 90, groma_draw_palette(0), LINE_TOLERANCE));	/* right */
	CHECK(pixel_near(&img, 120, 90, grey, FLAT_TOLERANCE));	/* inside */
	CHECK(pixel_near(&img, 20, 90, grey, FLAT_TOLERANCE));	/* outside */
	CHECK(pixel_near(&img, 270, 60, groma_draw_palette(1), LINE_TOLERANCE));
	CHECK(pixel_near(&img, 250, 90, groma_draw_palette(1), LINE_TOLERANCE));
	CHECK(pixel_near(&img, 270, 90, grey, FLAT_TOLERANCE));
	CHECK(pixel_near(&img, 310, 200, groma_draw_palette(2), LINE_TOLERANCE));	/* clipped: top edge */
	CHECK(pixel_near(&img, 300, 220, groma_draw_palette(2), LINE_TOLERANCE));	/* left edge */
	CHECK(pixel_near(&img, 315, 230, grey, FLAT_TOLERANCE));	/* no edge drawn at the image border */
	CHECK(memcmp(groma_draw_palette(0), groma_draw_palette(1), 3) != 0);
	CHECK(memcmp(groma_draw_palette(1), groma_draw_palette(2), 3) != 0);
	groma_rgb_image_free(&img);
}

/* A label is written on a filled background at the box's top-left, moved inside the image. */
UNIT_TEST(test_draw_labels)
{
	static const uint8_t grey[3] = {128, 128, 128};
	/* the second label starts past the right border and is moved left to fit */
	double		boxes[2][4] = {{60, 80, 200, 200}, {300, 10, 319, 40}};
	const char *labels[2] = {"   X", "caf\xc3\xa9 ok"};	/* 7 characters */
	groma_rgb_image img;
	int			label_w = 7 * (GROMA_FONT_WIDTH + 1) + 1;

	CHECK(groma_draw_font_scale(320, 240) == 1);
	if (draw_and_decode(&boxes[0][0], 2, labels, &img).code != GROMA_OK)
		return;
	/* the blank cells of the first label: background in box 0's colour, just below the outline */
	CHECK(pixel_near(&img, 60 + 8, 80 + 4, groma_draw_palette(0), LINE_TOLERANCE));
	CHECK(pixel_near(&img, 60 + 14, 80 + 5, groma_draw_palette(0), LINE_TOLERANCE));
	CHECK(pixel_near(&img, 120, 150, grey, FLAT_TOLERANCE));	/* inside, away from the label */
	/* the second label ends at the right border */
	CHECK(pixel_near(&img, 319, 18, groma_draw_palette(1), LINE_TOLERANCE));
	CHECK(pixel_near(&img, 320 - label_w, 18, groma_draw_palette(1), LINE_TOLERANCE));
	CHECK(pixel_near(&img, 320 - label_w - 4, 18, grey, FLAT_TOLERANCE));
	groma_rgb_image_free(&img);
}

/* No boxes: the image comes back re-encoded, same size, same pixels within JPEG error. */
UNIT_TEST(test_draw_no_boxes)
{
	static const uint8_t grey[3] = {128, 128, 128};
	groma_rgb_image img;

	if (draw_and_decode(NULL, 0, NULL, &img).code != GROMA_OK)
		return;
	CHECK(img.width == 320 && img.height == 240);
	CHECK(pixel_near(&img, 0, 0, grey, FLAT_TOLERANCE));
	CHECK(pixel_near(&img, 160, 120, grey, FLAT_TOLERANCE));
	groma_rgb_image_free(&img);
}

/* NaN and infinite corners, too many boxes, a label count that is not the box count, bad bytes. */
UNIT_TEST(test_draw_refuses_bad_input)
{
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	double		nan_box[4] = {0, 0, NAN, 10};
	double		inf_box[4] = {0, -INFINITY, 5, 10};
	double	   *many = calloc(4 * (GROMA_DRAW_MAX_BOXES + 1), sizeof(double));
	const char *labels[1] = {"a"};
	groma_rgb_image img;
	uint8_t    *out = (uint8_t *) "x";
	size_t		out_len = 1;

	CHECK(draw_and_decode(nan_box, 1, NULL, &img).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(draw_and_decode(inf_box, 1, NULL, &img).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(draw_and_decode(many, GROMA_DRAW_MAX_BOXES + 1, NULL, &img).code == GROMA_ERR_LIMIT);
	CHECK(groma_draw_check(many, GROMA_DRAW_MAX_BOXES, NULL, 0).code == GROMA_OK);
	CHECK(groma_draw_check(many, 2, labels, 1).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_draw_check(many, 0, labels, 1).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_draw_check(many, -1, NULL, 0).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_draw_jpeg((const uint8_t *) "abc", 3, &limits, NULL, 0, NULL, 0, &out, &out_len, NULL,
						  NULL).code == GROMA_ERR_NOT_JPEG);
	CHECK(out == NULL && out_len == 0);
	free(many);
}

/* Lower case uses the upper-case shapes; a byte outside ASCII shows as '?'. */
UNIT_TEST(test_draw_font_fallbacks)
{
	static const uint8_t white[3] = {255, 255, 255};
	groma_rgb_image a = {8, 8, calloc(8 * 8, 3)};
	groma_rgb_image b = {8, 8, calloc(8 * 8, 3)};

	groma_font_draw_char(&a, 1, 1, 'g', 1, white);
	groma_font_draw_char(&b, 1, 1, 'G', 1, white);
	CHECK(memcmp(a.pixels, b.pixels, 8 * 8 * 3) == 0);
	memset(a.pixels, 0, 8 * 8 * 3);
	memset(b.pixels, 0, 8 * 8 * 3);
	groma_font_draw_char(&a, 1, 1, 0xc3, 1, white);
	groma_font_draw_char(&b, 1, 1, '?', 1, white);
	CHECK(memcmp(a.pixels, b.pixels, 8 * 8 * 3) == 0);
	CHECK(a.pixels[(1 * 8 + 2) * 3] == 255);	/* the '?' has ink at its top */
	groma_font_draw_char(&a, -3, 5, 'W', 2, white);	/* clipped, no overrun */
	free(a.pixels);
	free(b.pixels);
}

/* Extreme and odd boxes and labels on tiny and odd-sized images stay inside the pixels (ASan checks). */
UNIT_TEST(test_draw_extreme_boxes)
{
	static const double edges[] = {-1e300, -1e10, -3.5, -1, -0.5, 0, 0.25, 1, 2.9, 3, 7, 1e9, 2e9, 1e300, -0.0};
	static const int sizes[][2] = {{1, 1}, {3, 2}, {2, 5}, {17, 9}, {400, 3}};
	const char *labels[64];
	double		boxes[64][4];
	char		long_label[600];
	unsigned	seed = 12345;
	int			n_edges = (int) (sizeof(edges) / sizeof(edges[0]));

	memset(long_label, 'W', sizeof(long_label) - 1);
	long_label[sizeof(long_label) - 1] = '\0';
	long_label[10] = (char) 0xE2;	/* a cut UTF-8 sequence */
	for (int i = 0; i < 64; i++)
	{
		for (int k = 0; k < 4; k++)
		{
			seed = seed * 1103515245u + 12345u;
			boxes[i][k] = edges[(seed >> 8) % (unsigned) n_edges];
		}
		labels[i] = i % 3 == 0 ? long_label : i % 3 == 1 ? "" : "\xC3\xA9t\xC3\xA9";
	}
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
	{
		groma_rgb_image img = {sizes[s][0], sizes[s][1], calloc((size_t) sizes[s][0] * sizes[s][1], 3)};
		uint8_t    *jpeg = NULL;
		size_t		len = 0;

		CHECK(groma_draw_check(&boxes[0][0], 64, labels, 64).code == GROMA_OK);
		groma_draw_on_rgb(&img, &boxes[0][0], 64, labels);
		CHECK(groma_jpeg_encode_rgb(&img, &jpeg, &len).code == GROMA_OK && len > 0);
		free(jpeg);
		free(img.pixels);
	}
}
