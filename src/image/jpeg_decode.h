/*
 * jpeg_decode.h - JPEG bytes to RGB pixels, as PIL's convert('RGB') gives them.
 *
 * Headers are read through libjpeg-turbo's TurboJPEG API; pixels are
 * decoded through its libjpeg API with TurboJPEG's defaults (accurate
 * integer IDCT, fancy upsampling), which is what PIL uses, and a progress
 * monitor that stops the decode when the calling thread's cancel flag
 * (src/runtime/cancel.h) is set.
 * Grayscale is replicated to RGB; CMYK and YCCK are refused.  EXIF
 * orientation is ignored, as in Groma.  Limits are checked from the header
 * before anything image-sized is allocated.
 */
#ifndef GROMA_JPEG_DECODE_H
#define GROMA_JPEG_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../runtime/status.h"

/* Default for groma.max_image_pixels. */
#define GROMA_DEFAULT_MAX_IMAGE_PIXELS 50000000L
/* Streams with more scans than this are refused (ordinary progressive files have about 10). */
#define GROMA_MAX_JPEG_SCANS 500

/*
 * Decoding work is bounded from the markers too: scans x pixels may reach
 * this many full scans over an image of limits->max_pixels (ordinary
 * progressive files have about 10 scans; each scan walks every block of the
 * image, so 500 tiny scans over a large frame took seconds to minutes).
 */
#define GROMA_JPEG_SCAN_PASSES 32

/* Limits applied before decoding. */
typedef struct groma_jpeg_limits
{
	long		max_pixels;		/* width * height must not exceed this */
	int			max_scans;		/* SOS markers allowed in one stream */
} groma_jpeg_limits;

/* What the header says about an image. */
typedef struct groma_jpeg_info
{
	int			width;
	int			height;
	int			components;
	const char *colorspace;		/* "gray", "ycbcr", "rgb", "cmyk", "ycck" */
	const char *subsampling;	/* "4:4:4", "4:2:2", "4:2:0", "4:4:0", "4:1:1", "4:4:1", "gray", "other" */
	bool		progressive;
	int			precision;		/* bits per sample (always 8 on success) */
} groma_jpeg_info;

/* An RGB image owned by the caller: pixels is height x width x 3 bytes from malloc. */
typedef struct groma_rgb_image
{
	int			width;
	int			height;
	uint8_t    *pixels;			/* [height][width][3] */
} groma_rgb_image;

/* Returns the default limits (50 million pixels, GROMA_MAX_JPEG_SCANS scans). */
groma_jpeg_limits groma_jpeg_default_limits(void);

/*
 * Reads the header only (up to the first scan) and fills *info.  Fails on
 * non-JPEG bytes, data that ends before the first scan, 12-bit or lossless
 * streams, zero width or height, and images over limits->max_pixels.
 */
groma_status groma_jpeg_read_info(const uint8_t *data, size_t len,
								  const groma_jpeg_limits *limits, groma_jpeg_info *info);

/*
 * Refuses a header whose colour space groma cannot decode (CMYK, YCCK:
 * GROMA_ERR_UNSUPPORTED), as groma_jpeg_decode does; so a caller can refuse
 * the image before sending it anywhere.
 */
groma_status groma_jpeg_check_colorspace(const groma_jpeg_info *info);

/*
 * Decodes the whole stream to RGB into *out (out->pixels from malloc; free
 * with groma_rgb_image_free).  Everything groma_jpeg_read_info refuses is
 * refused here too, plus CMYK/YCCK, streams with more than
 * limits->max_scans scans or whose scans x pixels exceed
 * GROMA_JPEG_SCAN_PASSES x limits->max_pixels (GROMA_ERR_LIMIT, counted
 * from the markers before decoding), and truncated data (PIL raises on
 * those too).
 * Decoder warnings about corrupt entropy data are tolerated, as PIL does.
 * GROMA_ERR_CANCELLED when the calling thread's cancel flag is set before
 * or during the decode (checked every few block rows of every pass).
 * On failure out->pixels is NULL.
 */
groma_status groma_jpeg_decode_rgb(const uint8_t *data, size_t len,
								   const groma_jpeg_limits *limits, groma_rgb_image *out);

/* Frees the pixels of an image from groma_jpeg_decode_rgb; safe on a zeroed image. */
void		groma_rgb_image_free(groma_rgb_image *image);

#endif							/* GROMA_JPEG_DECODE_H */
