/*
 * test_preprocess_cuda.c - GPU parity for resize + normalise: the CUDA
 * kernel must give the same bytes and floats as the CPU twin.  Skips with the
 * CUDA runtime's reason where no GPU is present.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/groma_cuda.h"
#include "gpu_skip.h"
#include "../../src/image/preprocess.h"

#define PLANE (GROMA_IMAGE_SIZE * GROMA_IMAGE_SIZE)

static int	passed,
			failed;

/* Runs both devices on one RGB image and reports the differences. */
static void
compare(const char *what, const groma_rgb_image *img)
{
	static uint8_t cpu_rgb[PLANE * 3],
				gpu_rgb[PLANE * 3];
	static float cpu_px[3 * PLANE],
				gpu_px[3 * PLANE];
	groma_status a = groma_preprocess_rgb(img, cpu_rgb, cpu_px);
	groma_status b = groma_cuda_preprocess_rgb(img->pixels, img->width, img->height, gpu_rgb, gpu_px);
	size_t		byte_diffs = 0;
	float		max_err = 0;

	if (a.code != GROMA_OK || b.code != GROMA_OK)
	{
		printf("not ok - %s: cpu: %s / cuda: %s\n", what, a.message, b.message);
		failed++;
		return;
	}
	for (size_t i = 0; i < sizeof(cpu_rgb); i++)
		byte_diffs += cpu_rgb[i] != gpu_rgb[i];
	for (size_t i = 0; i < 3 * PLANE; i++)
		if (fabsf(cpu_px[i] - gpu_px[i]) > max_err)
			max_err = fabsf(cpu_px[i] - gpu_px[i]);
	if (byte_diffs == 0 && max_err == 0.0f)
	{
		printf("ok - %s (%dx%d): resized bytes identical, pixel_values identical\n", what,
			   img->width, img->height);
		passed++;
	}
	else
	{
		printf("not ok - %s (%dx%d): %zu resized bytes differ, pixel_values max |diff| %g\n", what,
			   img->width, img->height, byte_diffs, max_err);
		failed++;
	}
}

/* Decodes a JPEG file and compares the devices on it. */
static void
compare_file(const char *path)
{
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	groma_rgb_image img;
	FILE	   *f = fopen(path, "rb");
	uint8_t    *data;
	long		n;
	groma_status st;

	if (f == NULL)
	{
		printf("not ok - %s: cannot open\n", path);
		failed++;
		return;
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	data = malloc((size_t) n);
	if (fread(data, 1, (size_t) n, f) != (size_t) n)
		n = 0;
	fclose(f);
	st = groma_jpeg_decode_rgb(data, (size_t) n, &limits, &img);
	free(data);
	if (st.code != GROMA_OK)
	{
		printf("not ok - %s: %s\n", path, st.message);
		failed++;
		return;
	}
	compare(path, &img);
	groma_rgb_image_free(&img);
}

/* Compares the devices on a pseudo-random image of the given size. */
static void
compare_random(int w, int h, uint32_t seed)
{
	groma_rgb_image img = {w, h, malloc((size_t) w * h * 3)};
	char		what[64];

	for (size_t i = 0; i < (size_t) w * h * 3; i++)
	{
		seed = seed * 1664525u + 1013904223u;
		img.pixels[i] = (uint8_t) (seed >> 24);
	}
	snprintf(what, sizeof(what), "random %dx%d", w, h);
	compare(what, &img);
	free(img.pixels);
}

/* Runs every case; arguments are JPEG files to compare in addition to random images. */
int
main(int argc, char **argv)
{
	static const int sizes[][2] = {{1, 1}, {448, 448}, {449, 1}, {7, 3000}, {2000, 1333}, {4000, 3000}};

	if (gpu_test_skipped("CUDA preprocess parity"))
		return 0;
	{
		char		desc[256];
		groma_status st = groma_cuda_describe_device(desc, sizeof(desc));

		printf("# device: %s\n", st.code == GROMA_OK ? desc : st.message);
	}
	for (int i = 1; i < argc; i++)
		compare_file(argv[i]);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		compare_random(sizes[i][0], sizes[i][1], (uint32_t) (i + 1));
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
