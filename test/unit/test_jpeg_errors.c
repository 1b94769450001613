/*
 * test_jpeg_errors.c - every malformed input fails with the right code and
 * never crashes (the binary runs under ASan/UBSan).
 */
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "../../src/image/draw.h"
#include "../../src/image/jpeg_decode.h"
#include "../../src/image/jpeg_markers.h"

/* Decodes bytes and checks the failure code (and header-only info's code). */
static void
expect_codes(const char *what, const uint8_t *data, size_t len,
			 groma_status_code decode_code, groma_status_code info_code)
{
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	groma_rgb_image img;
	groma_jpeg_info info;
	groma_status st = groma_jpeg_decode_rgb(data, len, &limits, &img);

	CHECKF(st.code == decode_code, "%s: decode gave %s (%s), want %s", what,
		   groma_status_code_name(st.code), st.message, groma_status_code_name(decode_code));
	CHECKF(st.code != GROMA_OK || img.pixels == NULL, "%s: failed decode left pixels", what);
	if (st.code == GROMA_OK)
		groma_rgb_image_free(&img);
	st = groma_jpeg_read_info(data, len, &limits, &info);
	CHECKF(st.code == info_code, "%s: info gave %s (%s), want %s", what,
		   groma_status_code_name(st.code), st.message, groma_status_code_name(info_code));
	/* the header's colour space check refuses exactly the colour spaces the decoder does */
	if (st.code == GROMA_OK)
	{
		groma_status cs = groma_jpeg_check_colorspace(&info);

		CHECKF(cs.code == (decode_code == GROMA_ERR_UNSUPPORTED ? GROMA_ERR_UNSUPPORTED : GROMA_OK),
			   "%s: the colour space check gave %s (%s) for a %s decode", what, groma_status_code_name(cs.code),
			   cs.message, groma_status_code_name(decode_code));
	}
}

/* Reads a fixture and checks its codes. */
static void
expect_fixture(const char *name, groma_status_code decode_code, groma_status_code info_code)
{
	char		path[4096];
	size_t		len;
	uint8_t    *data;

	snprintf(path, sizeof(path), "%s%s", unit_path("test/fixtures/"), name);
	data = unit_read_file(path, &len);
	if (data)
		expect_codes(name, data, len, decode_code, info_code);
	free(data);
}

/* Empty, 1-3 bytes, PNG, GIF, random bytes after FF D8. */
UNIT_TEST(test_not_jpeg_inputs)
{
	static const uint8_t b[] = {0xFF, 0xD8, 0xFF};

	expect_codes("empty", b, 0, GROMA_ERR_NOT_JPEG, GROMA_ERR_NOT_JPEG);
	expect_codes("1 byte", b, 1, GROMA_ERR_NOT_JPEG, GROMA_ERR_NOT_JPEG);
	expect_codes("2 bytes (SOI only)", b, 2, GROMA_ERR_TRUNCATED, GROMA_ERR_TRUNCATED);
	expect_codes("3 bytes", b, 3, GROMA_ERR_TRUNCATED, GROMA_ERR_TRUNCATED);
	expect_codes("3 bytes of text", (const uint8_t *) "abc", 3, GROMA_ERR_NOT_JPEG, GROMA_ERR_NOT_JPEG);
	expect_fixture("not_jpeg.png", GROMA_ERR_NOT_JPEG, GROMA_ERR_NOT_JPEG);
	expect_fixture("not_jpeg.gif", GROMA_ERR_NOT_JPEG, GROMA_ERR_NOT_JPEG);
	expect_fixture("random_ffd8.bin", GROMA_ERR_CORRUPT, GROMA_ERR_CORRUPT);
}

/* Cuts at 10/50/99 %: decode fails as truncated; a header read succeeds once the header is whole. */
UNIT_TEST(test_truncated_jpeg)
{
	static const int percents[] = {10, 50, 99};
	size_t		len;
	uint8_t    *data = unit_read_file(unit_path("test/golden/images/extreme_ironing.jpg"), &len);

	if (data == NULL)
		return;
	for (size_t i = 0; i < sizeof(percents) / sizeof(percents[0]); i++)
	{
		char		what[64];

		snprintf(what, sizeof(what), "cut at %d%%", percents[i]);
		expect_codes(what, data, len * percents[i] / 100, GROMA_ERR_TRUNCATED, GROMA_OK);
	}
	/* Every cut through the first 700 bytes (the headers) fails cleanly too. */
	for (size_t cut = 0; cut < 700 && cut < len; cut++)
	{
		groma_jpeg_limits limits = groma_jpeg_default_limits();
		groma_rgb_image img;
		groma_status st = groma_jpeg_decode_rgb(data, cut, &limits, &img);

		CHECKF(st.code != GROMA_OK && img.pixels == NULL, "cut at byte %zu decoded", cut);
	}
	free(data);
}

/* Header limits: huge, zero-sized, 12-bit, CMYK, thousands of scans, a lowered pixel limit. */
UNIT_TEST(test_header_limits)
{
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	groma_rgb_image img;
	groma_status st;
	size_t		len;
	uint8_t    *data;

	expect_fixture("huge_65500.jpg", GROMA_ERR_LIMIT, GROMA_ERR_LIMIT);
	expect_fixture("zero_height.jpg", GROMA_ERR_CORRUPT, GROMA_ERR_CORRUPT);
	expect_fixture("twelve_bit.jpg", GROMA_ERR_UNSUPPORTED, GROMA_ERR_UNSUPPORTED);
	expect_fixture("cmyk.jpg", GROMA_ERR_UNSUPPORTED, GROMA_OK);
	expect_fixture("many_scans.jpg", GROMA_ERR_LIMIT, GROMA_OK);

	data = unit_read_file(unit_path("test/golden/images/extreme_ironing.jpg"), &len);
	if (data == NULL)
		return;
	limits.max_pixels = 570L * 380L - 1;
	st = groma_jpeg_decode_rgb(data, len, &limits, &img);
	CHECKF(st.code == GROMA_ERR_LIMIT, "one pixel over the limit gave %s", st.message);
	limits.max_pixels = 570L * 380L;
	st = groma_jpeg_decode_rgb(data, len, &limits, &img);
	CHECKF(st.code == GROMA_OK, "exactly at the limit gave %s", st.message);
	groma_rgb_image_free(&img);
	free(data);
}

/* The marker walk counts scans: 1 for baseline, several for progressive, stops at EOI. */
UNIT_TEST(test_marker_walk_counts_scans)
{
	groma_jpeg_layout layout;
	groma_status st;
	size_t		len;
	uint8_t    *data = unit_read_file(unit_path("test/golden/images/extreme_ironing.jpg"), &len);

	if (data == NULL)
		return;
	st = groma_jpeg_walk(data, len, false, 500, &layout);
	CHECKF(st.code == GROMA_OK && layout.scans == 1 && !layout.progressive && layout.has_eoi,
		   "baseline: %s scans %d", st.message, layout.scans);
	CHECK(layout.width == 570 && layout.height == 380 && layout.precision == 8);
	free(data);

	data = unit_read_file(unit_path("test/golden/images/synthetic_333x251.jpg"), &len);
	if (data == NULL)
		return;
	st = groma_jpeg_walk(data, len, false, 500, &layout);
	CHECKF(st.code == GROMA_OK && layout.scans > 1 && layout.progressive,
		   "progressive: %s scans %d", st.message, layout.scans);
	st = groma_jpeg_walk(data, len, false, layout.scans - 1, &layout);
	CHECKF(st.code == GROMA_ERR_LIMIT, "scan limit not enforced: %s", st.message);
	free(data);
}

/* Random corruption of a real JPEG never crashes and never leaves pixels behind on failure. */
UNIT_TEST(test_bit_flips_never_crash)
{
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	size_t		len;
	uint8_t    *data = unit_read_file(unit_path("test/fixtures/variant_420_progressive.jpg"), &len);
	uint32_t	seed = 12345;
	int			failures = 0;

	if (data == NULL)
		return;
	for (int round = 0; round < 300; round++)
	{
		uint8_t    *copy = malloc(len);
		groma_rgb_image img;
		groma_status st;

		memcpy(copy, data, len);
		for (int k = 0; k < 4; k++)
		{
			seed = seed * 1103515245u + 12345u;
			copy[(seed >> 8) % len] ^= (uint8_t) (1u << (seed % 8));
		}
		st = groma_jpeg_decode_rgb(copy, len, &limits, &img);
		if (st.code != GROMA_OK)
		{
			failures++;
			CHECK(img.pixels == NULL);
		}
		groma_rgb_image_free(&img);
		free(copy);
	}
	unit_note("300 corrupted copies: %d refused, %d decoded", failures, 300 - failures);
	free(data);
}

/*
 * Sampling factors that are legal JPEG but outside the layouts TurboJPEG
 * names (all components 2x2, luma 3x1) are refused as unsupported, from the
 * header alone (they were reported as an invalid header, 22P03).
 */
UNIT_TEST(test_unnamed_subsampling_unsupported)
{
	static const uint8_t factors[][3] = {{0x22, 0x22, 0x22}, {0x31, 0x11, 0x11}};
	uint8_t		pixels[16 * 16 * 3];
	groma_rgb_image image = {16, 16, pixels};
	uint8_t    *jpeg;
	size_t		len;
	size_t		sof = 0;

	for (size_t i = 0; i < sizeof(pixels); i++)
		pixels[i] = (uint8_t) (i * 7);
	CHECK(groma_jpeg_encode_rgb(&image, &jpeg, &len).code == GROMA_OK);
	while (sof + 18 < len && !(jpeg[sof] == 0xFF && jpeg[sof + 1] == 0xC0))
		sof++;
	CHECKF(sof + 18 < len && jpeg[sof + 9] == 3, "the encoder wrote a baseline frame of 3 components");
	for (size_t k = 0; sof + 18 < len && k < sizeof(factors) / sizeof(factors[0]); k++)
	{
		char		what[64];
		groma_jpeg_limits limits = groma_jpeg_default_limits();
		groma_jpeg_info info;
		groma_status st;

		for (int c = 0; c < 3; c++)
			jpeg[sof + 11 + 3 * c] = factors[k][c];
		snprintf(what, sizeof(what), "sampling %02x %02x %02x", factors[k][0], factors[k][1], factors[k][2]);
		expect_codes(what, jpeg, len, GROMA_ERR_UNSUPPORTED, GROMA_ERR_UNSUPPORTED);
		st = groma_jpeg_read_info(jpeg, len, &limits, &info);
		CHECKF(strstr(st.message, "subsampling") != NULL, "%s: the message names the subsampling: %s", what,
			   st.message);
	}
	free(jpeg);
}
