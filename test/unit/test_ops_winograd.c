/*
 * test_ops_winograd.c - the Winograd F(4x4, 3x3) convolution against a
 * double-precision direct convolution, at odd and model-like shapes, and its
 * argument checks.
 */
#include <math.h>
#include <stdlib.h>

#include "unit.h"
#include "../../src/runtime/ops.h"

/* ref[B, O, H, W] = conv2d(x, w, b, stride 1, pad 1) in double precision; returns max |ref|. */
static double
direct_conv(const float *x, const float *w, const float *b, int64_t batch, int64_t c_n, int64_t o_n,
			int64_t h, int64_t wd, double *ref)
{
	double		peak = 0;

	for (int64_t n = 0; n < batch; n++)
		for (int64_t o = 0; o < o_n; o++)
			for (int64_t oy = 0; oy < h; oy++)
				for (int64_t ox = 0; ox < wd; ox++)
				{
					double		s = b ? b[o] : 0.0;

					for (int64_t c = 0; c < c_n; c++)
						for (int i = 0; i < 3; i++)
							for (int j = 0; j < 3; j++)
							{
								int64_t		iy = oy - 1 + i,
											ix = ox - 1 + j;

								if (iy >= 0 && iy < h && ix >= 0 && ix < wd)
									s += (double) x[((n * c_n + c) * h + iy) * wd + ix] * w[((o * c_n + c) * 3 + i) * 3 + j];
							}
					ref[((n * o_n + o) * h + oy) * wd + ox] = s;
					if (fabs(s) > peak)
						peak = fabs(s);
				}
	return peak;
}

/* Winograd equals the direct convolution within 2e-5 of the output scale (F(4x4) in f32: ~1e-5 at 128 channels). */
UNIT_TEST(test_op_conv3x3_winograd)
{
	/* batch, in, out, height, width: tails in both directions, 1-pixel maps, model-like widths */
	static const int64_t cases[][5] = {
		{2, 3, 5, 7, 6}, {1, 4, 2, 1, 1}, {1, 2, 3, 5, 9}, {3, 16, 8, 14, 14}, {1, 128, 128, 32, 32},
	};
	groma_arena scratch;

	CHECK(groma_arena_init(&scratch, (size_t) 64 << 20).code == GROMA_OK);
	for (size_t t = 0; t < sizeof(cases) / sizeof(cases[0]); t++)
	{
		int64_t		batch = cases[t][0],
					c_n = cases[t][1],
					o_n = cases[t][2],
					h = cases[t][3],
					wd = cases[t][4],
					nx = batch * c_n * h * wd,
					ny = batch * o_n * h * wd;
		float	   *x = malloc((size_t) nx * sizeof(float));
		float	   *w = malloc((size_t) (o_n * c_n * 9) * sizeof(float));
		float	   *u = malloc((size_t) (36 * o_n * c_n) * sizeof(float));
		float	   *b = malloc((size_t) o_n * sizeof(float));
		float	   *y = malloc((size_t) ny * sizeof(float));
		double	   *ref = malloc((size_t) ny * sizeof(double));
		double		peak,
					err = 0;
		groma_tensor tx,
					tw,
					tu,
					tb,
					ty;

		unit_fill_random(x, nx, 11 + (uint32_t) t, 2.0f);
		unit_fill_random(w, o_n * c_n * 9, 21 + (uint32_t) t, 1.0f / sqrtf((float) (c_n * 9)));
		unit_fill_random(b, o_n, 31 + (uint32_t) t, 0.5f);
		tx = groma_f32_4d(x, batch, c_n, h, wd);
		tw = groma_f32_4d(w, o_n, c_n, 3, 3);
		tu = groma_f32_3d(u, 36, o_n, c_n);
		tb = groma_f32_1d(b, o_n);
		ty = groma_f32_4d(y, batch, o_n, h, wd);
		CHECK(groma_winograd_weights(&tw, &tu).code == GROMA_OK);
		CHECK(groma_conv3x3_winograd(&tx, &tu, t % 2 ? NULL : &tb, &scratch, &ty).code == GROMA_OK);
		CHECK(scratch.used == 0);
		peak = direct_conv(x, w, t % 2 ? NULL : b, batch, c_n, o_n, h, wd, ref);
		for (int64_t i = 0; i < ny; i++)
			if (!(fabs(y[i] - ref[i]) <= err))
				err = fabs(y[i] - ref[i]);
		unit_note("winograd %lldx%lldx%lldx%lld -> %lld: max abs error %.3g, output peak %.3g",
				  (long long) batch, (long long) c_n, (long long) h, (long long) wd, (long long) o_n, err, peak);
		CHECKF(err <= 2e-5 * (peak > 1 ? peak : 1), "case %zu: max error %g for peak %g", t, err, peak);
		free(x);
		free(w);
		free(u);
		free(b);
		free(y);
		free(ref);
	}
	groma_arena_free(&scratch);
}

/* Bad shapes, a missing scratch arena and a too-small one are refused; zero input channels give the bias. */
UNIT_TEST(test_op_conv3x3_winograd_errors)
{
	float		x[1 * 2 * 4 * 4] = {0},
				w[3 * 2 * 9] = {0},
				u[36 * 3 * 2] = {0},
				y[1 * 3 * 4 * 4];
	groma_tensor tx = groma_f32_4d(x, 1, 2, 4, 4),
				tw = groma_f32_4d(w, 3, 2, 3, 3),
				tu = groma_f32_3d(u, 36, 3, 2),
				ty = groma_f32_4d(y, 1, 3, 4, 4),
				bad_u = groma_f32_3d(u, 36, 2, 3),
				bad_w = groma_f32_4d(w, 3, 2, 1, 9),
				bad_y = groma_f32_4d(y, 1, 3, 4, 3);
	groma_arena scratch,
				tiny;

	CHECK(groma_arena_init(&scratch, 1 << 20).code == GROMA_OK);
	CHECK(groma_arena_init(&tiny, 64).code == GROMA_OK);
	CHECK(groma_winograd_weights(&bad_w, &tu).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_winograd_weights(&tw, &bad_u).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_conv3x3_winograd(&tx, &bad_u, NULL, &scratch, &ty).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_conv3x3_winograd(&tx, &tu, NULL, &scratch, &bad_y).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_conv3x3_winograd(&tx, &tu, NULL, NULL, &ty).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_conv3x3_winograd(&tx, &tu, NULL, &tiny, &ty).code == GROMA_ERR_NO_MEMORY);
	CHECK(tiny.used == 0);
	{
		groma_tensor bias = groma_f32_1d(w, 2);	/* 2 values for 3 outputs */

		CHECK(groma_conv3x3_winograd(&tx, &tu, &bias, &scratch, &ty).code == GROMA_ERR_INVALID_ARGUMENT);
	}
	{
		/* no input channels: every output is its bias */
		float		bias[3] = {0.5f, -1.0f, 2.0f};
		groma_tensor x0 = groma_f32_4d(x, 1, 0, 4, 4),
					u0 = groma_f32_3d(u, 36, 3, 0),
					tb = groma_f32_1d(bias, 3);
		bool		all_bias = true;

		CHECK(groma_conv3x3_winograd(&x0, &u0, &tb, &scratch, &ty).code == GROMA_OK);
		for (int i = 0; i < 3 * 16; i++)
			all_bias &= y[i] == bias[i / 16];
		CHECK(all_bias);
	}
	groma_arena_free(&scratch);
	groma_arena_free(&tiny);
}
