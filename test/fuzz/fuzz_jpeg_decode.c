/*
 * fuzz_jpeg_decode.c - libFuzzer target for the JPEG ingestion path:
 * header read, full decode with limits, then resize + normalise.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "../../src/image/preprocess.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One input: every stage must return a status and never crash or leak. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static float pixels[3 * GROMA_IMAGE_SIZE * GROMA_IMAGE_SIZE];
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	groma_jpeg_info info;
	groma_rgb_image img;

	limits.max_pixels = 1000L * 1000;	/* keep each run fast and small */
	(void) groma_jpeg_read_info(data, size, &limits, &info);
	if (groma_jpeg_decode_rgb(data, size, &limits, &img).code == GROMA_OK)
	{
		if ((long) img.width * img.height <= 512L * 512)
			(void) groma_preprocess_rgb(&img, NULL, pixels);
		groma_rgb_image_free(&img);
	}
	return 0;
}
