/*
 * jpeg_decode.c - JPEG bytes to RGB pixels through TurboJPEG, with limits.
 */
#include "jpeg_decode.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "jpeg_markers.h"

/* Returns the default limits (50 million pixels, GROMA_MAX_JPEG_SCANS scans). */
groma_jpeg_limits
groma_jpeg_default_limits(void)
{
	groma_jpeg_limits limits;

	limits.max_pixels = GROMA_DEFAULT_MAX_IMAGE_PIXELS;
	limits.max_scans = GROMA_MAX_JPEG_SCANS;
	return limits;
}

/* Returns the name of a TurboJPEG colorspace. */
static const char *
colorspace_name(int cs)
{
	switch (cs)
	{
		case TJCS_GRAY:
			return "gray";
		case TJCS_YCbCr:
			return "ycbcr";
		case TJCS_RGB:
			return "rgb";
		case TJCS_CMYK:
			return "cmyk";
		case TJCS_YCCK:
			return "ycck";
	}
	return "unknown";
}

/* Returns the name of a TurboJPEG subsampling code. */
static const char *
subsampling_name(int ss)
{
	switch (ss)
	{
		case TJSAMP_444:
			return "4:4:4";
		case TJSAMP_422:
			return "4:2:2";
		case TJSAMP_420:
			return "4:2:0";
		case TJSAMP_GRAY:
			return "gray";
		case TJSAMP_440:
			return "4:4:0";
		case TJSAMP_411:
			return "4:1:1";
	}
	return "other";
}

/* Checks the frame facts from the marker walk that groma refuses. */
static groma_status
check_layout(const groma_jpeg_layout *layout, const groma_jpeg_limits *limits)
{
	long long	pixels;

	if (layout->lossless)
		return groma_error(GROMA_ERR_UNSUPPORTED, "lossless JPEG is not supported");
	if (layout->precision != 8)
		return groma_error(GROMA_ERR_UNSUPPORTED,
						   "%d-bit JPEG is not supported, only 8-bit samples are", layout->precision);
	if (layout->width == 0 || layout->height == 0)
		return groma_error(GROMA_ERR_CORRUPT, "JPEG image has zero size (%dx%d)",
						   layout->width, layout->height);
	pixels = (long long) layout->width * layout->height;
	if (pixels > limits->max_pixels)
		return groma_error(GROMA_ERR_LIMIT,
						   "JPEG image of %dx%d (%lld pixels) is over the limit of %ld pixels",
						   layout->width, layout->height, pixels, limits->max_pixels);
	return groma_ok();
}

/* Refuses a stream whose scans x pixels exceed GROMA_JPEG_SCAN_PASSES full scans at the pixel limit. */
static groma_status
check_scan_work(const groma_jpeg_layout *layout, const groma_jpeg_limits *limits)
{
	long long	pixels = (long long) layout->width * layout->height;
	long long	budget = limits->max_pixels > LLONG_MAX / GROMA_JPEG_SCAN_PASSES ? LLONG_MAX :
		(long long) GROMA_JPEG_SCAN_PASSES * limits->max_pixels;

	/* divided, not multiplied: scans and pixels both come from the file */
	if (pixels > 0 && layout->scans > budget / pixels)
		return groma_error(GROMA_ERR_LIMIT,
						   "JPEG image of %dx%d with %d scans asks for %.0f scan-pixels of decoding, over the "
						   "limit of %lld (%d scans at the %ld-pixel limit)",
						   layout->width, layout->height, layout->scans, (double) layout->scans * (double) pixels,
						   budget, GROMA_JPEG_SCAN_PASSES, limits->max_pixels);
	return groma_ok();
}

/* Reads colorspace and subsampling with TurboJPEG into *info. */
static groma_status
read_turbojpeg_header(tjhandle tj, const uint8_t *data, size_t len, groma_jpeg_info *info)
{
	int			w,
				h,
				ss,
				cs;

	if (len > (size_t) (unsigned long) -1)
		return groma_error(GROMA_ERR_LIMIT, "JPEG data is too large");
	if (tjDecompressHeader3(tj, data, (unsigned long) len, &w, &h, &ss, &cs) != 0)
		return groma_error(GROMA_ERR_CORRUPT, "JPEG header is invalid: %s", tjGetErrorStr2(tj));
	info->width = w;
	info->height = h;
	info->colorspace = colorspace_name(cs);
	info->subsampling = subsampling_name(ss);
	return groma_ok();
}

/* Fills *info from a completed marker walk plus TurboJPEG's header read. */
static groma_status
fill_info(tjhandle tj, const uint8_t *data, size_t len, const groma_jpeg_layout *layout,
		  const groma_jpeg_limits *limits, groma_jpeg_info *info)
{
	groma_status st = check_layout(layout, limits);

	if (st.code != GROMA_OK)
		return st;
	memset(info, 0, sizeof(*info));
	info->components = layout->components;
	info->progressive = layout->progressive;
	info->precision = layout->precision;
	return read_turbojpeg_header(tj, data, len, info);
}

/* Reads the header only; see jpeg_decode.h. */
groma_status
groma_jpeg_read_info(const uint8_t *data, size_t len,
					 const groma_jpeg_limits *limits, groma_jpeg_info *info)
{
	groma_jpeg_layout layout;
	groma_status st;
	tjhandle	tj;

	st = groma_jpeg_walk(data, len, true, limits->max_scans, &layout);
	if (st.code != GROMA_OK)
		return st;
	tj = tjInitDecompress();
	if (tj == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot create a JPEG decompressor");
	st = fill_info(tj, data, len, &layout, limits, info);
	tjDestroy(tj);
	return st;
}

/* Runs TurboJPEG's decode into out->pixels, mapping its errors and warnings. */
static groma_status
decompress_rgb(tjhandle tj, const uint8_t *data, size_t len, groma_rgb_image *out)
{
	if (tjDecompress2(tj, data, (unsigned long) len, out->pixels, out->width, 0,
					  out->height, TJPF_RGB, 0) == 0)
		return groma_ok();
	if (tjGetErrorCode(tj) == TJERR_WARNING)
	{
		const char *msg = tjGetErrorStr2(tj);

		/* PIL raises on truncated data and ignores the decoder's other warnings. */
		if (strstr(msg, "Premature end") != NULL)
			return groma_error(GROMA_ERR_TRUNCATED, "JPEG data is truncated: %s", msg);
		return groma_ok();
	}
	return groma_error(GROMA_ERR_CORRUPT, "JPEG data cannot be decoded: %s", tjGetErrorStr2(tj));
}

/* Decodes a whole stream to RGB; see jpeg_decode.h. */
groma_status
groma_jpeg_decode_rgb(const uint8_t *data, size_t len,
					  const groma_jpeg_limits *limits, groma_rgb_image *out)
{
	groma_jpeg_layout layout;
	groma_jpeg_info info;
	groma_status st;
	tjhandle	tj;

	memset(out, 0, sizeof(*out));
	/* Header facts and limits first, so an oversized image fails before anything else. */
	st = groma_jpeg_walk(data, len, true, limits->max_scans, &layout);
	if (st.code == GROMA_OK)
		st = check_layout(&layout, limits);
	if (st.code == GROMA_OK)
		st = groma_jpeg_walk(data, len, false, limits->max_scans, &layout);
	if (st.code == GROMA_OK)
		st = check_scan_work(&layout, limits);
	if (st.code != GROMA_OK)
		return st;
	tj = tjInitDecompress();
	if (tj == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot create a JPEG decompressor");
	st = fill_info(tj, data, len, &layout, limits, &info);
	if (st.code == GROMA_OK && (strcmp(info.colorspace, "cmyk") == 0 ||
								strcmp(info.colorspace, "ycck") == 0))
		st = groma_error(GROMA_ERR_UNSUPPORTED,
						 "%s JPEG is not supported, only grayscale, YCbCr and RGB are",
						 strcmp(info.colorspace, "cmyk") == 0 ? "CMYK" : "YCCK");
	if (st.code == GROMA_OK)
	{
		out->width = info.width;
		out->height = info.height;
		out->pixels = malloc((size_t) info.width * (size_t) info.height * 3);
		if (out->pixels == NULL)
			st = groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate %dx%d RGB pixels",
							 info.width, info.height);
	}
	if (st.code == GROMA_OK)
		st = decompress_rgb(tj, data, len, out);
	tjDestroy(tj);
	if (st.code != GROMA_OK)
		groma_rgb_image_free(out);
	return st;
}

/* Frees the pixels of a decoded image; safe on a zeroed image. */
void
groma_rgb_image_free(groma_rgb_image *image)
{
	free(image->pixels);
	image->pixels = NULL;
	image->width = 0;
	image->height = 0;
}
