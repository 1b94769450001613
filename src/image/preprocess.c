/*
 * preprocess.c - resize to 448x448 and normalise (GROMA.md step 1).
 */
#include "preprocess.h"

#include <stdlib.h>

#include "resize_bicubic.h"

const float groma_image_mean[3] = {0.485f, 0.456f, 0.406f};
const float groma_image_std[3] = {0.229f, 0.224f, 0.225f};

/*
 * Returns the normalised value of one sample: HF rescales in double and
 * casts to float32, then subtracts and divides in float32.
 */
float
groma_normalize_sample(uint8_t value, int c)
{
	float		scaled = (float) ((double) value * (1.0 / 255.0));

	return (scaled - groma_image_mean[c]) / groma_image_std[c];
}

/* Normalises [size][size][3] RGB into [3][size][size] float32. */
void
groma_normalize_rgb(const uint8_t *rgb, int size, float *pixel_values)
{
	float		table[3][256];
	size_t		plane = (size_t) size * size;

	for (int c = 0; c < 3; c++)
		for (int v = 0; v < 256; v++)
			table[c][v] = groma_normalize_sample((uint8_t) v, c);
	for (size_t i = 0; i < plane; i++)
		for (int c = 0; c < 3; c++)
			pixel_values[c * plane + i] = table[c][rgb[i * 3 + c]];
}

/* Resizes to 448x448 and normalises; see preprocess.h. */
groma_status
groma_preprocess_rgb(const groma_rgb_image *image, uint8_t *resized, float *pixel_values)
{
	uint8_t    *buf = resized;
	groma_status st;

	if (buf == NULL)
	{
		buf = malloc((size_t) GROMA_IMAGE_SIZE * GROMA_IMAGE_SIZE * 3);	/* [448][448][3] */
		if (buf == NULL)
			return groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate the resized image");
	}
	st = groma_resize_bicubic_rgb(image->pixels, image->width, image->height,
								  buf, GROMA_IMAGE_SIZE, GROMA_IMAGE_SIZE);
	if (st.code == GROMA_OK)
		groma_normalize_rgb(buf, GROMA_IMAGE_SIZE, pixel_values);
	if (buf != resized)
		free(buf);
	return st;
}

/* Decodes then preprocesses; see preprocess.h. */
groma_status
groma_preprocess_jpeg(const uint8_t *data, size_t len, const groma_jpeg_limits *limits,
					  uint8_t *resized, float *pixel_values, int *width, int *height)
{
	groma_rgb_image image;
	groma_status st = groma_jpeg_decode_rgb(data, len, limits, &image);

	if (st.code != GROMA_OK)
		return st;
	*width = image.width;
	*height = image.height;
	st = groma_preprocess_rgb(&image, resized, pixel_values);
	groma_rgb_image_free(&image);
	return st;
}
