/*
 * jpeg_encode.c - RGB pixels to JPEG bytes through TurboJPEG (draw.h).
 */
#include "draw.h"

#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

/* Encodes an image; see draw.h. */
groma_status
groma_jpeg_encode_rgb(const groma_rgb_image *image, uint8_t **out, size_t *out_len)
{
	tjhandle	tj;
	unsigned char *buf = NULL;
	unsigned long size = 0;
	groma_status st = groma_ok();

	*out = NULL;
	*out_len = 0;
	if (image->pixels == NULL || image->width <= 0 || image->height <= 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "no image to encode");
	tj = tjInitCompress();
	if (tj == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot start the JPEG encoder: %s", tjGetErrorStr2(NULL));
	if (tjCompress2(tj, image->pixels, image->width, 0, image->height, TJPF_RGB, &buf, &size, TJSAMP_444,
					GROMA_DRAW_JPEG_QUALITY, TJFLAG_ACCURATEDCT) != 0)
		st = groma_error(GROMA_ERR_NO_MEMORY, "JPEG encoding failed: %s", tjGetErrorStr2(tj));
	else if ((*out = malloc(size ? size : 1)) == NULL)
		st = groma_error(GROMA_ERR_NO_MEMORY, "out of memory for a %lu-byte JPEG", size);
	else
	{
		memcpy(*out, buf, size);
		*out_len = size;
	}
	tjFree(buf);
	tjDestroy(tj);
	return st;
}
