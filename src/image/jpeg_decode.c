/*
 * jpeg_decode.c - JPEG bytes to RGB pixels, with limits: TurboJPEG reads
 * headers, libjpeg's own API decodes (for its progress monitor, which lets
 * the calling thread's cancel flag stop a long decode).
 */
#include "jpeg_decode.h"

#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <turbojpeg.h>

#include "jpeg_markers.h"
#include "../runtime/cancel.h"

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
	{
		/* legal sampling factors outside TurboJPEG's named layouts (all 2x2, luma 3x1 or 4x4) */
		if (strstr(tjGetErrorStr2(tj), "subsampling") != NULL)
			return groma_error(GROMA_ERR_UNSUPPORTED,
							   "JPEG chroma subsampling of this image is not supported (groma decodes 4:4:4, 4:2:2, "
							   "4:2:0, 4:4:0, 4:1:1 and grayscale): %s", tjGetErrorStr2(tj));
		return groma_error(GROMA_ERR_CORRUPT, "JPEG header is invalid: %s", tjGetErrorStr2(tj));
	}
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

/* Refuses the colour spaces the model cannot take; see jpeg_decode.h. */
groma_status
groma_jpeg_check_colorspace(const groma_jpeg_info *info)
{
	if (strcmp(info->colorspace, "cmyk") == 0 || strcmp(info->colorspace, "ycck") == 0)
		return groma_error(GROMA_ERR_UNSUPPORTED, "%s JPEG is not supported, only grayscale, YCbCr and RGB are",
						   strcmp(info->colorspace, "cmyk") == 0 ? "CMYK" : "YCCK");
	return groma_ok();
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

/*
 * libjpeg error manager of one decode: errors and a cancel request jump
 * back to jump; the first warning's text is kept (TurboJPEG's
 * tjDecompress2 reports the first one too).
 */
typedef struct decode_errors
{
	struct jpeg_error_mgr pub;
	jmp_buf		jump;
	bool		cancelled;
	bool		warned;
	char		message[JMSG_LENGTH_MAX];
	char		warning[JMSG_LENGTH_MAX];
} decode_errors;

/* error_exit: keeps the message and jumps back to decompress_rgb. */
static void
on_error(j_common_ptr cinfo)
{
	decode_errors *e = (decode_errors *) cinfo->err;

	(*cinfo->err->format_message) (cinfo, e->message);
	longjmp(e->jump, 1);
}

/* emit_message: keeps the first warning (msg_level -1); trace messages are dropped. */
static void
on_message(j_common_ptr cinfo, int msg_level)
{
	decode_errors *e = (decode_errors *) cinfo->err;

	if (msg_level < 0 && !e->warned)
	{
		(*cinfo->err->format_message) (cinfo, e->warning);
		e->warned = true;
	}
}

/* progress_monitor: libjpeg calls it every few block rows of every pass; stops a cancelled decode. */
static void
on_progress(j_common_ptr cinfo)
{
	decode_errors *e = (decode_errors *) cinfo->err;

	if (groma_cancel_requested())
	{
		e->cancelled = true;
		longjmp(e->jump, 1);
	}
}

/*
 * Decodes into out->pixels with libjpeg (the settings tjDecompress2 uses:
 * RGB output, accurate integer IDCT, fancy upsampling), polling the calling
 * thread's cancel flag from the progress monitor; maps errors and warnings
 * as PIL does.
 */
static groma_status
decompress_rgb(const uint8_t *data, size_t len, groma_rgb_image *out)
{
	struct jpeg_decompress_struct cinfo;
	struct jpeg_progress_mgr progress = {.progress_monitor = on_progress};
	decode_errors errors;
	groma_status st = groma_ok();

	memset(&errors, 0, sizeof(errors));
	cinfo.err = jpeg_std_error(&errors.pub);
	errors.pub.error_exit = on_error;
	errors.pub.emit_message = on_message;
	if (setjmp(errors.jump) != 0)
	{
		jpeg_destroy_decompress(&cinfo);
		if (errors.cancelled)
			return groma_error(GROMA_ERR_CANCELLED, "the request was cancelled while decoding the JPEG");
		return groma_error(GROMA_ERR_CORRUPT, "JPEG data cannot be decoded: %s", errors.message);
	}
	jpeg_create_decompress(&cinfo);
	cinfo.progress = &progress;
	jpeg_mem_src(&cinfo, data, (unsigned long) len);
	jpeg_read_header(&cinfo, TRUE);
	cinfo.out_color_space = JCS_RGB;
	cinfo.dct_method = JDCT_ISLOW;
	cinfo.do_fancy_upsampling = TRUE;
	jpeg_start_decompress(&cinfo);
	if ((int) cinfo.output_width != out->width || (int) cinfo.output_height != out->height ||
		cinfo.output_components != 3)
		st = groma_error(GROMA_ERR_CORRUPT, "JPEG decoder output is %ux%u with %d components, not %dx%d RGB",
						 cinfo.output_width, cinfo.output_height, cinfo.output_components, out->width, out->height);
	while (st.code == GROMA_OK && cinfo.output_scanline < cinfo.output_height)
	{
		JSAMPROW	row = out->pixels + (size_t) cinfo.output_scanline * (size_t) out->width * 3;

		jpeg_read_scanlines(&cinfo, &row, 1);
	}
	if (st.code == GROMA_OK)
		jpeg_finish_decompress(&cinfo);
	jpeg_destroy_decompress(&cinfo);
	/* PIL raises on truncated data and ignores the decoder's other warnings. */
	if (st.code == GROMA_OK && errors.warned && strstr(errors.warning, "Premature end") != NULL)
		st = groma_error(GROMA_ERR_TRUNCATED, "JPEG data is truncated: %s", errors.warning);
	return st;
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
	if (st.code == GROMA_OK)
		st = groma_jpeg_check_colorspace(&info);
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
		st = decompress_rgb(data, len, out);
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
