/*
 * test_image_parity.c - decode + resize + normalise equal PIL on every golden
 * image and every fixture variant.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "unit.h"
#include "../../src/image/preprocess.h"
#include "../../src/io/safetensors.h"

/* Golden images and the case names their reference tensors use. */
static const struct
{
	const char *image;
	const char *kase;
}			golden[] = {
	{"extreme_ironing.jpg", "extreme_ironing"},
	{"synthetic_333x251.jpg", "synthetic"},
	{"waterview.jpg", "waterview"},
};

/* Compares n bytes exactly; reports the first difference and the count. */
static void
check_bytes_equal(const char *what, const uint8_t *got, const uint8_t *want, size_t n)
{
	size_t		diffs = 0,
				first = 0;

	for (size_t i = 0; i < n; i++)
		if (got[i] != want[i] && diffs++ == 0)
			first = i;
	CHECKF(diffs == 0, "%s: %zu of %zu bytes differ, first at %zu (%d vs %d)",
		   what, diffs, n, first, diffs ? got[first] : 0, diffs ? want[first] : 0);
}

/* Loads a U8 tensor of exactly n bytes from an opened safetensors file. */
static const uint8_t *
get_u8(groma_st_file *f, const char *name, size_t n)
{
	groma_st_tensor t;
	groma_status st = groma_st_get(f, name, &t);

	CHECKF(st.code == GROMA_OK, "%s", st.message);
	if (st.code != GROMA_OK)
		return NULL;
	CHECKF(t.dtype == GROMA_ST_U8 && t.nbytes == n, "%s: dtype %s, %zu bytes, want U8 %zu",
		   name, groma_st_dtype_name(t.dtype), t.nbytes, n);
	return t.nbytes == n ? t.data : NULL;
}

/* Decodes path and checks rgb, resized (and pixel_values when given) against references. */
static void
check_image(const char *path, groma_st_file *ref, const char *rgb_name, const char *resized_name,
			const float *want_pixels)
{
	static uint8_t resized[GROMA_IMAGE_SIZE * GROMA_IMAGE_SIZE * 3];
	static float pixels[3 * GROMA_IMAGE_SIZE * GROMA_IMAGE_SIZE];
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	groma_rgb_image img;
	size_t		len;
	uint8_t    *data = unit_read_file(path, &len);
	groma_status st;
	const uint8_t *want;
	float		max_err = 0;

	if (data == NULL)
		return;
	st = groma_jpeg_decode_rgb(data, len, &limits, &img);
	free(data);
	CHECKF(st.code == GROMA_OK, "%s: %s", path, st.message);
	if (st.code != GROMA_OK)
		return;
	want = get_u8(ref, rgb_name, (size_t) img.width * img.height * 3);
	if (want)
		check_bytes_equal("decoded rgb", img.pixels, want, (size_t) img.width * img.height * 3);
	st = groma_preprocess_rgb(&img, resized, pixels);
	CHECKF(st.code == GROMA_OK, "%s", st.message);
	want = get_u8(ref, resized_name, sizeof(resized));
	if (want)
		check_bytes_equal("resized 448x448", resized, want, sizeof(resized));

	/* pixel_values: against the golden tensor when available, else against the golden resized image. */
	for (size_t i = 0; i < (size_t) 3 * GROMA_IMAGE_SIZE * GROMA_IMAGE_SIZE; i++)
	{
		float		w;

		if (want_pixels)
			w = want_pixels[i];
		else
		{
			size_t		plane = (size_t) GROMA_IMAGE_SIZE * GROMA_IMAGE_SIZE;
			int			c = (int) (i / plane);

			w = want ? ((float) want[(i % plane) * 3 + c] / 255.0f - groma_image_mean[c]) / groma_image_std[c] : pixels[i];
		}
		if (fabsf(pixels[i] - w) > max_err)
			max_err = fabsf(pixels[i] - w);
	}
	CHECKF(max_err <= 1e-6f, "pixel_values max abs error %g > 1e-6", max_err);
	unit_note("%s: %dx%d rgb exact, resized exact, pixel_values max |err| %.3g (%s)", path,
			  img.width, img.height, max_err, want_pixels ? "vs golden pixel_values" : "vs normalised reference resized");
	groma_rgb_image_free(&img);
}

/* Every golden image matches PIL's decode, resize and normalisation. */
UNIT_TEST(test_golden_preprocess_parity)
{
	const char *env = getenv("GROMA_SHARED_GOLDEN");
	char		shared[4096];
	char		full[8192];
	struct stat sb;

	snprintf(shared, sizeof(shared), "%s", env && *env ? env : unit_path("../shared/golden"));
	for (size_t i = 0; i < sizeof(golden) / sizeof(golden[0]); i++)
	{
		char		img_path[4096],
					ref_path[4096];
		groma_st_file *ref = NULL,
				   *cases = NULL;
		groma_st_tensor pv;
		groma_status st;

		snprintf(img_path, sizeof(img_path), "%s", unit_path("test/golden/images/"));
		strncat(img_path, golden[i].image, sizeof(img_path) - strlen(img_path) - 1);
		snprintf(ref_path, sizeof(ref_path), "%s", unit_path("test/golden/compact/case_"));
		strncat(ref_path, golden[i].kase, sizeof(ref_path) - strlen(ref_path) - 1);
		strncat(ref_path, ".safetensors", sizeof(ref_path) - strlen(ref_path) - 1);
		st = groma_st_open(ref_path, &ref);
		CHECKF(st.code == GROMA_OK, "%s", st.message);
		if (st.code != GROMA_OK)
			continue;

		/* The full per-layer case (outside the repository) also has image.pixel_values. */
		snprintf(full, sizeof(full), "%s/cases/case_%s.safetensors", shared, golden[i].kase);
		if (stat(full, &sb) == 0 && groma_st_open(full, &cases).code == GROMA_OK &&
			groma_st_get(cases, "image.pixel_values", &pv).code == GROMA_OK &&
			pv.nbytes == sizeof(float) * 3 * GROMA_IMAGE_SIZE * GROMA_IMAGE_SIZE)
		{
			/* Tensor data in a safetensors file need not be 4-byte aligned: copy it. */
			float	   *want = malloc(pv.nbytes);

			memcpy(want, pv.data, pv.nbytes);
			check_image(img_path, ref, "image.rgb", "image.resized_rgb", want);
			free(want);
		}
		else
		{
			unit_note("%s absent: pixel_values checked against the golden resized image instead", full);
			check_image(img_path, ref, "image.rgb", "image.resized_rgb", NULL);
		}
		groma_st_close(cases);
		groma_st_close(ref);
	}
}

/* Fixture variants (gray, 4:4:4, 4:2:2, progressive, odd size, RGB) match PIL. */
UNIT_TEST(test_variant_preprocess_parity)
{
	static const char *variants[] = {
		"variant_gray", "variant_444", "variant_422", "variant_420_progressive",
		"variant_odd_37x23", "variant_rgb_colorspace",
	};

	for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++)
	{
		char		img_path[4096],
					ref_path[4096];
		groma_st_file *ref = NULL;
		groma_status st;

		snprintf(img_path, sizeof(img_path), "%s%s.jpg", unit_path("test/fixtures/"), variants[i]);
		snprintf(ref_path, sizeof(ref_path), "%s%s.ref.safetensors", unit_path("test/fixtures/"), variants[i]);
		st = groma_st_open(ref_path, &ref);
		CHECKF(st.code == GROMA_OK, "%s", st.message);
		if (st.code != GROMA_OK)
			continue;
		check_image(img_path, ref, "rgb", "resized", NULL);
		groma_st_close(ref);
	}
}
