/*
 * test_ops_spatial_deform.c - deformable attention sampling and the
 * Deformable-DETR geometry helpers against the PyTorch goldens (grid_sample,
 * sine position embedding, reference points, output proposals), plus
 * hand-checked properties of groma_ms_deform_attn.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "test_ops_spatial_golden.h"
#include "../../src/runtime/ops_spatial.h"

/* Point sampling of gridsample.value at gridsample.loc matches F.grid_sample within 1e-6, alone and via ms_deform_attn. */
UNIT_TEST(test_spatial_grid_sample_golden)
{
	groma_st_file *f = spatial_golden_open();
	float	   *value = spatial_golden_f32(f, "gridsample.value", 2 * 5 * 6);	/* [2,5,6] (C,H,W) */
	float	   *loc = spatial_golden_f32(f, "gridsample.loc", 8 * 2);	/* [8,2] */
	float	   *want = spatial_golden_f32(f, "gridsample.out", 8 * 2);	/* [8,2] */

	if (value && loc && want)
	{
		float		got[8 * 2];	/* [8,2] */
		float		v_shd[30 * 2];	/* [1,30,1,2] (B,S,H,Dh) */
		float		ones[8];	/* [1,8,1,1] */
		groma_tensor vt = groma_f32_3d(value, 2, 5, 6);
		groma_tensor lt = groma_f32_2d(loc, 8, 2);
		groma_tensor ot = groma_f32_2d(got, 8, 2);
		groma_status st = groma_grid_sample_points(&vt, &lt, &ot);
		int64_t		shapes[2] = {5, 6},
					start[1] = {0};

		CHECKF(st.code == GROMA_OK, "%s", st.message);
		spatial_expect_close("gridsample.out", got, want, 16, 1e-6, 0);

		/* the same samples through ms_deform_attn: one level, one head, one point per query */
		for (int s = 0; s < 30; s++)
			for (int c = 0; c < 2; c++)
				v_shd[s * 2 + c] = value[c * 30 + s];
		for (int q = 0; q < 8; q++)
			ones[q] = 1.0f;
		{
			groma_tensor v4 = groma_f32_4d(v_shd, 1, 30, 1, 2);
			groma_tensor l4 = groma_f32_4d(loc, 1, 8, 1, 2);
			groma_tensor w4 = groma_f32_4d(ones, 1, 8, 1, 1);
			groma_tensor o3 = groma_f32_3d(got, 1, 8, 2);

			st = groma_ms_deform_attn(&v4, shapes, start, 1, 1, &l4, &w4, &o3);
			CHECKF(st.code == GROMA_OK, "%s", st.message);
			spatial_expect_close("gridsample.out via ms_deform_attn", got, want, 16, 1e-6, 0);
		}
	}
	free(value);
	free(loc);
	free(want);
	groma_st_close(f);
}

/* The sine position embedding, reference points and output proposals of a 32x32 map match the goldens. */
UNIT_TEST(test_spatial_detr_geometry_golden)
{
	groma_st_file *f = spatial_golden_open();
	float	   *sine = spatial_golden_f32(f, "model.sine_pos_embed", 64 * 32 * 32);	/* [64,32,32] */
	float	   *refs = spatial_golden_f32(f, "model.enc_reference_points", 1024 * 2);	/* [1024,2] */
	float	   *props = spatial_golden_f32(f, "model.output_proposals", 1024 * 4);	/* [1024,4] */
	float	   *got = malloc(64 * 32 * 32 * sizeof(float));
	uint8_t		valid[1024];

	if (sine && refs && props)
	{
		groma_tensor t = groma_f32_3d(got, 64, 32, 32);
		groma_status st = groma_sine_position_embedding(32, 32, 64, &t);
		int			n_valid = 0;

		CHECKF(st.code == GROMA_OK, "%s", st.message);
		spatial_expect_close("model.sine_pos_embed", got, sine, 64 * 32 * 32, 1e-5, 0);
		t = groma_f32_2d(got, 1024, 2);
		st = groma_encoder_reference_points(32, 32, &t);
		CHECKF(st.code == GROMA_OK, "%s", st.message);
		spatial_expect_close("model.enc_reference_points", got, refs, 1024 * 2, 1e-6, 0);
		t = groma_f32_2d(got, 1024, 4);
		memset(valid, 7, sizeof(valid));
		st = groma_output_proposals(32, 32, 0, &t, valid);
		CHECKF(st.code == GROMA_OK, "%s", st.message);
		spatial_expect_close("model.output_proposals", got, props, 1024 * 4, 1e-6, 0);
		for (int i = 0; i < 1024; i++)
			n_valid += valid[i] == 1;
		CHECKF(n_valid == 1024, "%d of 1024 proposals valid, expected all", n_valid);
	}
	free(sine);
	free(refs);
	free(props);
	free(got);
	groma_st_close(f);
}

/* Hand-checked geometry: the first sine channels, proposals outside (0.01, 0.99) and bad sizes. */
UNIT_TEST(test_spatial_detr_geometry_hand)
{
	float		emb[4 * 2 * 3];	/* [4,2,3] */
	float		props[1 * 120 * 4];	/* [120,4] */
	uint8_t		valid[120];
	groma_tensor t = groma_f32_3d(emb, 4, 2, 3);
	float		two_pi = (float) (2.0 * M_PI);

	CHECK(groma_sine_position_embedding(2, 3, 4, &t).code == GROMA_OK);
	/* channel 0: sin of y embed (row 1: (2 - 0.5) / 2 · 2π); channel 1: cos (dim_t 1); channel 2: sin of x */
	CHECK(fabsf(emb[0 * 6 + 1 * 3 + 2] - sinf(1.5f / 2.0f * two_pi)) < 1e-6f);
	CHECK(fabsf(emb[1 * 6 + 0 * 3 + 0] - cosf(0.5f / 2.0f * two_pi)) < 1e-6f);
	CHECK(fabsf(emb[2 * 6 + 1 * 3 + 2] - sinf(2.5f / 3.0f * two_pi)) < 1e-6f);
	CHECK(fabsf(emb[3 * 6 + 0 * 3 + 1] - cosf(1.5f / 3.0f * two_pi / powf(10000.0f, 0.0f))) < 1e-6f);
	CHECK(groma_sine_position_embedding(2, 3, 5, &t).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_sine_position_embedding(3, 3, 4, &t).code == GROMA_ERR_INVALID_ARGUMENT);

	/* width 120: x centre 0.5/120 < 0.01 and 119.5/120 > 0.99 are invalid, 1.5/120 is valid */
	t = groma_f32_2d(props, 120, 4);
	CHECK(groma_output_proposals(1, 120, 0, &t, valid).code == GROMA_OK);
	CHECK(valid[0] == 0 && isinf(props[0]) && props[0] > 0 && isinf(props[3]));
	CHECK(valid[1] == 1 && fabsf(props[4] - logf((1.5f / 120) / (1 - 1.5f / 120))) < 1e-6f);
	CHECK(valid[119] == 0 && valid[118] == 1);
	CHECK(fabsf(props[7] - logf(0.05f / 0.95f)) < 1e-6f);
	/* level 5: size 1.6 is outside the range, so nothing is valid */
	CHECK(groma_output_proposals(1, 120, 5, &t, NULL).code == GROMA_OK);
	CHECK(isinf(props[4 * 60]));
	CHECK(groma_output_proposals(2, 120, 0, &t, valid).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_encoder_reference_points(0, 4, &t).code == GROMA_ERR_INVALID_ARGUMENT);
}

/* Runs ms_deform_attn for one head-dim layout, failing the test on an error status. */
static void
run_deform(float *value, int64_t B, int64_t S, int64_t H, int64_t Dh, const int64_t *shapes,
		   const int64_t *starts, int L, int P, float *loc, float *aw, int64_t Q, float *out)
{
	groma_tensor v = groma_f32_4d(value, B, S, H, Dh);
	groma_tensor l = groma_f32_4d(loc, B, Q, H, (int64_t) L * P * 2);
	groma_tensor w = groma_f32_4d(aw, B, Q, H, (int64_t) L * P);
	groma_tensor o = groma_f32_3d(out, B, Q, H * Dh);
	groma_status st = groma_ms_deform_attn(&v, shapes, starts, L, P, &l, &w, &o);

	CHECKF(st.code == GROMA_OK, "%s", st.message);
}

/* A point at a pixel centre returns that pixel; edges halve; outside and NaN locations give 0. */
UNIT_TEST(test_spatial_deform_attn_points)
{
	/* one level 4x4, 2 heads of Dh 3: value[s, h, d] = 100·h + 10·s + d */
	float		value[16 * 2 * 3];	/* [1,16,2,3] */
	float		loc[6 * 2 * 2];	/* [1,6,2,1*1*2] */
	float		aw[6 * 2];		/* [1,6,2,1] */
	float		out[6 * 2 * 3];	/* [1,6,6] */
	int64_t		shapes[2] = {4, 4},
				starts[1] = {0};

	for (int s = 0; s < 16; s++)
		for (int h = 0; h < 2; h++)
			for (int d = 0; d < 3; d++)
				value[(s * 2 + h) * 3 + d] = (float) (100 * h + 10 * s + d);
	for (int i = 0; i < 12; i++)
		aw[i] = 1.0f;
	for (int h = 0; h < 2; h++)
	{
		float	   *lq = loc + h * 2;

		/* q0: centre of pixel (x 2, y 1) = s 6; q1: centre of (0, 0) (all exact in binary) */
		lq[0 * 4 + 0] = 2.5f / 4;
		lq[0 * 4 + 1] = 1.5f / 4;
		lq[1 * 4 + 0] = 0.5f / 4;
		lq[1 * 4 + 1] = 0.5f / 4;
		/* q2: x on the left border of the map (pixel -0.5), y at row 2's centre: half of s 8 */
		lq[2 * 4 + 0] = 0.0f;
		lq[2 * 4 + 1] = 2.5f / 4;
		/* q3: outside on the right; q4: above; q5: NaN */
		lq[3 * 4 + 0] = 1.3f;
		lq[3 * 4 + 1] = 0.5f;
		lq[4 * 4 + 0] = 0.5f;
		lq[4 * 4 + 1] = -0.5f;
		lq[5 * 4 + 0] = NAN;
		lq[5 * 4 + 1] = 0.5f;
	}
	run_deform(value, 1, 16, 2, 3, shapes, starts, 1, 1, loc, aw, 6, out);
	for (int h = 0; h < 2; h++)
		for (int d = 0; d < 3; d++)
		{
			float		base = (float) (100 * h + d);

			CHECKF(out[0 * 6 + h * 3 + d] == base + 60, "centre sample %g", out[0 * 6 + h * 3 + d]);
			CHECKF(out[1 * 6 + h * 3 + d] == base, "corner pixel sample %g", out[1 * 6 + h * 3 + d]);
			CHECKF(out[2 * 6 + h * 3 + d] == 0.5f * (base + 80), "border sample %g", out[2 * 6 + h * 3 + d]);
			CHECK(out[3 * 6 + h * 3 + d] == 0.0f && out[4 * 6 + h * 3 + d] == 0.0f && out[5 * 6 + h * 3 + d] == 0.0f);
		}
}

/* Weights summing to 1 over a constant map return the constant across levels and points; batches are independent. */
UNIT_TEST(test_spatial_deform_attn_weights_and_batches)
{
	enum
	{
		B = 2, H = 2, Dh = 4, L = 2, P = 3, Q = 5, S = 4 * 5 + 2 * 3
	};
	int64_t		shapes[4] = {4, 5, 2, 3},
				starts[2] = {0, 20};
	float	   *value = malloc(B * S * H * Dh * sizeof(float));	/* [B,S,H,Dh] */
	float	   *loc = malloc(B * Q * H * L * P * 2 * sizeof(float));	/* [B,Q,H,L*P*2] */
	float	   *aw = malloc(B * Q * H * L * P * sizeof(float));	/* [B,Q,H,L*P] */
	float	   *out = malloc(B * Q * H * Dh * sizeof(float));	/* [B,Q,H*Dh] */
	float	   *one = malloc(Q * H * Dh * sizeof(float));	/* [1,Q,H*Dh] */
	uint32_t	seed = 12345;

	for (int i = 0; i < B * S * H * Dh; i++)
	{
		int			d = i % Dh,
					h = (i / Dh) % H,
					b = i / (S * H * Dh);

		value[i] = (float) (b * 10 + h * 3 + d) * 0.25f;	/* constant over positions */
	}
	for (int i = 0; i < B * Q * H * L * P * 2; i++)
	{
		seed = seed * 1664525u + 1013904223u;
		loc[i] = 0.3f + 0.4f * (float) (seed >> 8) / 16777216.0f;	/* inside, away from the borders */
	}
	for (int r = 0; r < B * Q * H; r++)
	{
		float		sum = 0.0f;

		for (int k = 0; k < L * P; k++)
		{
			seed = seed * 1664525u + 1013904223u;
			aw[r * L * P + k] = 0.05f + (float) (seed >> 8) / 16777216.0f;
			sum += aw[r * L * P + k];
		}
		for (int k = 0; k < L * P; k++)
			aw[r * L * P + k] /= sum;
	}
	run_deform(value, B, S, H, Dh, shapes, starts, L, P, loc, aw, Q, out);
	for (int b = 0; b < B; b++)
		for (int q = 0; q < Q; q++)
			for (int h = 0; h < H; h++)
				for (int d = 0; d < Dh; d++)
				{
					float		want = (float) (b * 10 + h * 3 + d) * 0.25f;
					float		got = out[((b * Q + q) * H + h) * Dh + d];

					CHECKF(fabsf(got - want) <= 1e-5f * (1 + fabsf(want)), "b %d q %d h %d d %d: %g vs %g", b, q,
						   h, d, got, want);
				}

	/* batch 1 alone (with batch 0's data changed) gives the same rows */
	for (int i = 0; i < S * H * Dh; i++)
		value[S * H * Dh + i] = (float) ((i * 7) % 13) - 6.0f;
	run_deform(value, B, S, H, Dh, shapes, starts, L, P, loc, aw, Q, out);
	for (int i = 0; i < S * H * Dh; i++)
		value[i] = -99.0f;
	run_deform(value + S * H * Dh, 1, S, H, Dh, shapes, starts, L, P, loc + Q * H * L * P * 2, aw + Q * H * L * P,
			   Q, one);
	CHECK(memcmp(one, out + Q * H * Dh, Q * H * Dh * sizeof(float)) == 0);
	free(value);
	free(loc);
	free(aw);
	free(out);
	free(one);
}

/* Level tables that do not fit value and mismatched shapes are refused, naming the shapes. */
UNIT_TEST(test_spatial_deform_attn_rejects)
{
	float		value[1 * 6 * 1 * 2] = {0},
				loc[1 * 2 * 1 * 2] = {0},
				aw[1 * 2 * 1 * 1] = {0},
				out[1 * 2 * 2] = {0};
	groma_tensor v = groma_f32_4d(value, 1, 6, 1, 2);
	groma_tensor l = groma_f32_4d(loc, 1, 2, 1, 2);
	groma_tensor w = groma_f32_4d(aw, 1, 2, 1, 1);
	groma_tensor o = groma_f32_3d(out, 1, 2, 2);
	groma_tensor o_bad = groma_f32_3d(out, 1, 2, 1);
	int64_t		fits[2] = {2, 3},
				too_big[2] = {3, 3},
				start0[1] = {0},
				start1[1] = {1};
	groma_status st;

	CHECK(groma_ms_deform_attn(&v, fits, start0, 1, 1, &l, &w, &o).code == GROMA_OK);
	CHECK(groma_ms_deform_attn(&v, too_big, start0, 1, 1, &l, &w, &o).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_ms_deform_attn(&v, fits, start1, 1, 1, &l, &w, &o).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_ms_deform_attn(&v, fits, start0, 1, 2, &l, &w, &o).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_ms_deform_attn(&v, fits, start0, 0, 1, &l, &w, &o).code == GROMA_ERR_INVALID_ARGUMENT);
	st = groma_ms_deform_attn(&v, fits, start0, 1, 1, &l, &w, &o_bad);
	CHECKF(st.code == GROMA_ERR_INVALID_ARGUMENT && strstr(st.message, "[1,6,1,2]") && strstr(st.message, "[1,2,1]"),
		   "message: %s", st.message);
	{
		groma_tensor v3 = groma_f32_3d(value, 2, 2, 3);
		groma_tensor loc_bad = groma_f32_2d(loc, 2, 3);
		groma_tensor o2 = groma_f32_2d(out, 2, 2);

		CHECK(groma_grid_sample_points(&v3, &loc_bad, &o2).code == GROMA_ERR_INVALID_ARGUMENT);
	}
}
