/*
 * test_ops_spatial_resize.c - bilinear and bicubic resizing against the
 * PyTorch goldens (align_corners bilinear, DINOv2 position-embedding
 * interpolation by the 4.39 rule and the size rule, the tiny model's
 * interpolated embeddings) and hand-computed cases.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "test_ops_spatial_golden.h"
#include "../../src/runtime/ops_spatial.h"

#define DINO_GRID 37
#define DINO_OUT 32

/* Transposes src [n, c] (row-major grid of n positions) into dst [c, n]. */
static void
transpose(const float *src, int64_t n, int64_t c, float *dst)
{
	for (int64_t i = 0; i < n; i++)
		for (int64_t k = 0; k < c; k++)
			dst[k * n + i] = src[i * c + k];
}

/* Align-corners bilinear 32->128 and 64->32 match F.interpolate within 1e-6. */
UNIT_TEST(test_spatial_bilinear_golden)
{
	groma_st_file *f = spatial_golden_open();
	float	   *in32 = spatial_golden_f32(f, "bilinear.in32", 4 * 32 * 32);	/* [4,32,32] */
	float	   *in64 = spatial_golden_f32(f, "bilinear.in64", 4 * 64 * 64);	/* [4,64,64] */
	float	   *up = spatial_golden_f32(f, "bilinear.up32_128", 4 * 128 * 128);	/* [4,128,128] */
	float	   *down = spatial_golden_f32(f, "bilinear.down64_32", 4 * 32 * 32);	/* [4,32,32] */
	float	   *got_up = malloc(4 * 128 * 128 * sizeof(float));	/* [1,4,128,128] */
	float	   *got_down = malloc(4 * 32 * 32 * sizeof(float));	/* [1,4,32,32] */

	if (in32 && in64 && up && down)
	{
		groma_tensor x = groma_f32_4d(in32, 1, 4, 32, 32);
		groma_tensor y = groma_f32_4d(got_up, 1, 4, 128, 128);
		groma_status st = groma_resize_bilinear(&x, true, &y);

		CHECKF(st.code == GROMA_OK, "%s", st.message);
		spatial_expect_close("bilinear.up32_128", got_up, up, 4 * 128 * 128, 1e-6, 0);
		x = groma_f32_4d(in64, 1, 4, 64, 64);
		y = groma_f32_4d(got_down, 1, 4, 32, 32);
		st = groma_resize_bilinear(&x, true, &y);
		CHECKF(st.code == GROMA_OK, "%s", st.message);
		spatial_expect_close("bilinear.down64_32", got_down, down, 4 * 32 * 32, 1e-6, 0);
	}
	free(in32);
	free(in64);
	free(up);
	free(down);
	free(got_up);
	free(got_down);
	groma_st_close(f);
}

/* Bicubic 37->32 by scale 32.1/37 (transformers 4.39) and by size both match PyTorch within 1e-5. */
UNIT_TEST(test_spatial_bicubic_posinterp_golden)
{
	const int64_t n_in = DINO_GRID * DINO_GRID,
				n_out = DINO_OUT * DINO_OUT,
				c = 8;
	groma_st_file *f = spatial_golden_open();
	float	   *input = spatial_golden_f32(f, "posinterp.input", n_in * c);	/* [1369,8] */
	float	   *want439 = spatial_golden_f32(f, "posinterp.out_v439", n_out * c);	/* [1024,8] */
	float	   *want_size = spatial_golden_f32(f, "posinterp.out_size_rule", n_out * c);	/* [1024,8] */
	float	   *x = malloc((size_t) (n_in * c) * sizeof(float));	/* [1,8,37,37] */
	float	   *y = malloc((size_t) (n_out * c) * sizeof(float));	/* [1,8,32,32] */
	float	   *got = malloc((size_t) (n_out * c) * sizeof(float));	/* [1024,8] */

	if (input && want439 && want_size)
	{
		groma_tensor xt = groma_f32_4d(x, 1, c, DINO_GRID, DINO_GRID);
		groma_tensor yt = groma_f32_4d(y, 1, c, DINO_OUT, DINO_OUT);
		double		scale = (DINO_OUT + 0.1) / DINO_GRID;
		groma_status st;
		double		e439,
					esize;

		transpose(input, n_in, c, x);
		st = groma_resize_bicubic_scale(&xt, scale, scale, &yt);
		CHECKF(st.code == GROMA_OK, "%s", st.message);
		transpose(y, c, n_out, got);
		e439 = spatial_expect_close("posinterp.out_v439", got, want439, n_out * c, 1e-5, 0);
		st = groma_resize_bicubic_size(&xt, &yt);
		CHECKF(st.code == GROMA_OK, "%s", st.message);
		transpose(y, c, n_out, got);
		esize = spatial_expect_close("posinterp.out_size_rule", got, want_size, n_out * c, 1e-5, 0);
		/* the two rules really differ, so passing both means each rule is the right one */
		{
			double		apart = 0.0;

			for (int64_t i = 0; i < n_out * c; i++)
				apart = fmax(apart, fabs((double) want439[i] - want_size[i]));
			CHECKF(apart > 1e-3, "the two goldens differ by only %g", apart);
		}
		CHECK(e439 <= 1e-5 && esize <= 1e-5);
	}
	free(input);
	free(want439);
	free(want_size);
	free(x);
	free(y);
	free(got);
	groma_st_close(f);
}

/*
 * The tiny model's 37x37 DINOv2 position embeddings (storage 2 of the
 * vendored checkpoint, [1, 1 + 1369, 128]) interpolated by the 4.39 rule
 * give model.dino_pos_embed; CLS is passed through.
 */
UNIT_TEST(test_spatial_dino_pos_embed_golden)
{
	const int64_t n_in = DINO_GRID * DINO_GRID,
				n_out = DINO_OUT * DINO_OUT,
				c = 128;
	size_t		size = 0;
	uint8_t    *raw = spatial_zip_entry(unit_path("test/golden/tiny-groma/pytorch_model.bin"),
										"pytorch_model/data/2", &size);
	groma_st_file *f = spatial_golden_open();
	float	   *want = spatial_golden_f32(f, "model.dino_pos_embed", (1 + n_out) * c);	/* [1025,128] */
	float	   *table = malloc((size_t) ((1 + n_in) * c) * sizeof(float));	/* [1370,128] */
	float	   *x = malloc((size_t) (n_in * c) * sizeof(float));	/* [1,128,37,37] */
	float	   *y = malloc((size_t) (n_out * c) * sizeof(float));	/* [1,128,32,32] */
	float	   *got = malloc((size_t) ((1 + n_out) * c) * sizeof(float));	/* [1025,128] */

	CHECKF(size == (size_t) ((1 + n_in) * c) * sizeof(float), "position table has %zu bytes", size);
	if (raw && want && size == (size_t) ((1 + n_in) * c) * sizeof(float))
	{
		groma_tensor xt = groma_f32_4d(x, 1, c, DINO_GRID, DINO_GRID);
		groma_tensor yt = groma_f32_4d(y, 1, c, DINO_OUT, DINO_OUT);
		double		scale = (DINO_OUT + 0.1) / DINO_GRID;
		groma_status st;

		memcpy(table, raw, size);
		CHECKF(memcmp(table, want, (size_t) c * sizeof(float)) == 0, "CLS row differs: wrong storage?");
		transpose(table + c, n_in, c, x);
		st = groma_resize_bicubic_scale(&xt, scale, scale, &yt);
		CHECKF(st.code == GROMA_OK, "%s", st.message);
		memcpy(got, table, (size_t) c * sizeof(float));
		transpose(y, c, n_out, got + c);
		spatial_expect_close("model.dino_pos_embed", got, want, (1 + n_out) * c, 1e-5, 0);
	}
	free(raw);
	free(want);
	free(table);
	free(x);
	free(y);
	free(got);
	groma_st_close(f);
}

/* Hand-computed bilinear values for both align_corners settings, and same-size copies. */
UNIT_TEST(test_spatial_bilinear_hand)
{
	float		in[2] = {0.0f, 1.0f};	/* [1,1,1,2] */
	float		out[4];			/* [1,1,1,4] */
	float		img[6] = {1, 2, 3, 4, 5, 6};	/* [1,1,2,3] */
	float		same[6];
	static const float half[4] = {0.0f, 0.25f, 0.75f, 1.0f};
	groma_tensor x = groma_f32_4d(in, 1, 1, 1, 2);
	groma_tensor y = groma_f32_4d(out, 1, 1, 1, 4);

	CHECK(groma_resize_bilinear(&x, false, &y).code == GROMA_OK);
	for (int i = 0; i < 4; i++)
		CHECKF(out[i] == half[i], "align_corners=False out[%d] = %g, want %g", i, out[i], half[i]);
	CHECK(groma_resize_bilinear(&x, true, &y).code == GROMA_OK);
	for (int i = 0; i < 4; i++)
		CHECKF(fabsf(out[i] - i / 3.0f) < 1e-7f, "align_corners=True out[%d] = %g", i, out[i]);

	x = groma_f32_4d(img, 1, 1, 2, 3);
	y = groma_f32_4d(same, 1, 1, 2, 3);
	for (int ac = 0; ac < 2; ac++)
	{
		CHECK(groma_resize_bilinear(&x, ac, &y).code == GROMA_OK);
		CHECK(memcmp(img, same, sizeof(img)) == 0);
	}
}

/* Hand-computed bicubic values (A = -0.75, taps clamped) and constants preserved. */
UNIT_TEST(test_spatial_bicubic_hand)
{
	float		ramp[4 * 4];	/* [1,1,4,4], value = column */
	float		out[2 * 2];		/* [1,1,2,2] */
	float		flat[3 * 5 * 7];	/* [1,3,5,7] */
	float		big[3 * 9 * 11];	/* [1,3,9,11] */
	groma_tensor x = groma_f32_4d(ramp, 1, 1, 4, 4);
	groma_tensor y = groma_f32_4d(out, 1, 1, 2, 2);

	for (int i = 0; i < 16; i++)
		ramp[i] = (float) (i % 4);
	/* scale 2: source 0.5 and 2.5, weights (-0.09375, 0.59375, 0.59375, -0.09375) */
	CHECK(groma_resize_bicubic_size(&x, &y).code == GROMA_OK);
	CHECKF(fabsf(out[0] - 0.40625f) < 1e-6f && fabsf(out[1] - 2.59375f) < 1e-6f &&
		   fabsf(out[2] - 0.40625f) < 1e-6f && fabsf(out[3] - 2.59375f) < 1e-6f,
		   "bicubic ramp gives %g %g %g %g", out[0], out[1], out[2], out[3]);
	CHECK(groma_resize_bicubic_scale(&x, 0.5, 0.5, &y).code == GROMA_OK);
	CHECKF(fabsf(out[0] - 0.40625f) < 1e-6f && fabsf(out[1] - 2.59375f) < 1e-6f, "scale 0.5 gives %g %g",
		   out[0], out[1]);

	for (int i = 0; i < 3 * 5 * 7; i++)
		flat[i] = (float) (i / 35) - 0.5f;
	x = groma_f32_4d(flat, 1, 3, 5, 7);
	y = groma_f32_4d(big, 1, 3, 9, 11);
	CHECK(groma_resize_bicubic_size(&x, &y).code == GROMA_OK);
	for (int i = 0; i < 3 * 9 * 11; i++)
		CHECKF(fabsf(big[i] - ((float) (i / 99) - 0.5f)) < 1e-6f, "constant plane changed at %d: %.9g", i, (double) big[i]);
}

/* Bad shapes, scales and output sizes are refused with INVALID_ARGUMENT. */
UNIT_TEST(test_spatial_resize_rejects)
{
	float		a[64],
				b[64];
	groma_tensor x = groma_f32_4d(a, 1, 2, 4, 4);
	groma_tensor y3 = groma_f32_3d(b, 2, 4, 4);
	groma_tensor y_chan = groma_f32_4d(b, 1, 3, 2, 2);
	groma_tensor y2 = groma_f32_4d(b, 1, 2, 2, 2);
	groma_tensor y3x3 = groma_f32_4d(b, 1, 2, 3, 3);
	groma_status st;

	memset(a, 0, sizeof(a));
	CHECK(groma_resize_bilinear(&x, true, &y3).code == GROMA_ERR_INVALID_ARGUMENT);
	st = groma_resize_bilinear(&x, true, &y_chan);
	CHECKF(st.code == GROMA_ERR_INVALID_ARGUMENT && strstr(st.message, "[1,2,4,4]") &&
		   strstr(st.message, "[1,3,2,2]"), "message: %s", st.message);
	CHECK(groma_resize_bicubic_scale(&x, 0.0, 0.5, &y2).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_resize_bicubic_scale(&x, NAN, 0.5, &y2).code == GROMA_ERR_INVALID_ARGUMENT);
	/* floor(4 · 0.8) = 3, so a 2x2 output is the wrong size for scale 0.8 */
	CHECK(groma_resize_bicubic_scale(&x, 0.8, 0.8, &y2).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_resize_bicubic_scale(&x, 0.8, 0.8, &y3x3).code == GROMA_OK);
	CHECK(groma_resize_bicubic_scale(&x, 1e300, 0.8, &y3x3).code == GROMA_ERR_INVALID_ARGUMENT);
	x.dtype = GROMA_I32;
	CHECK(groma_resize_bicubic_size(&x, &y2).code == GROMA_ERR_INVALID_ARGUMENT);
}
