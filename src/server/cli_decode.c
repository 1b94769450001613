/*
 * cli_decode.c - groma-server --decode and --info.
 *
 * --decode writes a safetensors file with two tensors:
 *   pixel_values  F32 [3,448,448]  the vision encoder's input (GROMA.md step 1)
 *   resized_rgb   U8  [448,448,3]  the PIL-bicubic resized image before normalising
 * and metadata original_width / original_height / device.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "../image/preprocess.h"
#include "../io/safetensors.h"
#ifdef GROMA_WITH_CUDA
#include "../../kernels/groma_cuda.h"
#endif

/* Images larger than this many bytes are refused when read from disk. */
#define MAX_FILE_BYTES (1024L * 1024L * 1024L)

/* Reads a whole file into *data (malloc) and *len. */
groma_status
groma_read_file(const char *path, uint8_t **data, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	long		size = 0;
	groma_status st = groma_ok();

	*data = NULL;
	*len = 0;
	if (f == NULL)
		return groma_error(GROMA_ERR_IO, "cannot open \"%s\": %s", path, strerror(errno));
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		st = groma_error(GROMA_ERR_IO, "cannot read \"%s\": %s", path, strerror(errno));
	else if (size > MAX_FILE_BYTES)
		st = groma_error(GROMA_ERR_LIMIT, "\"%s\" is larger than 1 GiB", path);
	else if ((*data = malloc(size > 0 ? (size_t) size : 1)) == NULL)
		st = groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate %ld bytes", size);
	else if (fread(*data, 1, (size_t) size, f) != (size_t) size)
		st = groma_error(GROMA_ERR_IO, "cannot read \"%s\"", path);
	fclose(f);
	if (st.code != GROMA_OK)
	{
		free(*data);
		*data = NULL;
		return st;
	}
	*len = (size_t) size;
	return st;
}

/* Runs resize + normalise on the requested device. */
static groma_status
preprocess_on(const char *device, const groma_rgb_image *image, uint8_t *resized, float *pixels)
{
	if (strcmp(device, "cpu") == 0)
		return groma_preprocess_rgb(image, resized, pixels);
#ifdef GROMA_WITH_CUDA
	return groma_cuda_preprocess_rgb(image->pixels, image->width, image->height, resized, pixels);
#else
	return groma_error(GROMA_ERR_UNSUPPORTED, "this groma-server was built without CUDA");
#endif
}

/* --decode IMG --out FILE; see cli.h. */
int
groma_cli_decode(const groma_cli_options *opt)
{
	static uint8_t resized[GROMA_IMAGE_SIZE * GROMA_IMAGE_SIZE * 3];	/* [448][448][3] */
	static float pixels[3 * GROMA_IMAGE_SIZE * GROMA_IMAGE_SIZE];	/* [3][448][448] */
	groma_rgb_image image;
	uint8_t    *data;
	size_t		len;
	char		w[16],
				h[16];
	groma_status st = groma_read_file(opt->image_path, &data, &len);

	if (st.code != GROMA_OK)
		return groma_cli_fail(st);
	st = groma_jpeg_decode_rgb(data, len, &opt->limits, &image);
	free(data);
	if (st.code != GROMA_OK)
		return groma_cli_fail(st);
	st = preprocess_on(opt->device, &image, resized, pixels);
	snprintf(w, sizeof(w), "%d", image.width);
	snprintf(h, sizeof(h), "%d", image.height);
	groma_rgb_image_free(&image);
	if (st.code != GROMA_OK)
		return groma_cli_fail(st);

	{
		groma_st_tensor tensors[2] = {
			{.name = "pixel_values", .dtype = GROMA_ST_F32, .ndim = 3,
			.shape = {3, GROMA_IMAGE_SIZE, GROMA_IMAGE_SIZE}, .data = pixels, .nbytes = sizeof(pixels)},
			{.name = "resized_rgb", .dtype = GROMA_ST_U8, .ndim = 3,
			.shape = {GROMA_IMAGE_SIZE, GROMA_IMAGE_SIZE, 3}, .data = resized, .nbytes = sizeof(resized)},
		};
		const char *meta[] = {"original_width", w, "original_height", h, "device", opt->device};

		st = groma_st_write(opt->out_path, tensors, 2, meta, 3);
	}
	if (st.code != GROMA_OK)
		return groma_cli_fail(st);
	return 0;
}

/* --info IMG; see cli.h. */
int
groma_cli_info(const groma_cli_options *opt)
{
	groma_jpeg_info info;
	uint8_t    *data;
	size_t		len;
	groma_status st = groma_read_file(opt->image_path, &data, &len);

	if (st.code != GROMA_OK)
		return groma_cli_fail(st);
	st = groma_jpeg_read_info(data, len, &opt->limits, &info);
	free(data);
	if (st.code != GROMA_OK)
		return groma_cli_fail(st);
	groma_cli_print_json(json_pack("{s:i, s:i, s:i, s:s, s:s, s:b}", "width", info.width, "height", info.height,
								   "components", info.components, "colorspace", info.colorspace,
								   "subsampling", info.subsampling, "progressive", info.progressive ? 1 : 0),
						 false);
	return 0;
}
