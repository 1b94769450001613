/*
 * test_ops_dense.c - the dense CPU ops against naive double-precision
 * references, hand-checked values and properties.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "../../src/runtime/ops.h"
#include "../../src/runtime/ops_spatial.h"
#include "../../src/model/llama.h"

/* Returns the max absolute difference of two float arrays. */
static double
max_abs_diff(const float *a, const float *b, int64_t n)
{
	double		m = 0;

	for (int64_t i = 0; i < n; i++)
		if (fabs((double) a[i] - b[i]) > m || isnan(a[i]) != isnan(b[i]))
			m = isnan(a[i]) != isnan(b[i]) ? INFINITY : fabs((double) a[i] - b[i]);
	return m;
}

/* linear with and without bias equals a naive triple loop; bad shapes are refused. */
UNIT_TEST(test_op_linear)
{
	float		x[3 * 5 * 7],
				w[4 * 7],
				b[4],
				y[3 * 5 * 4],
				ref[3 * 5 * 4];
	groma_tensor tx = groma_f32_3d(x, 3, 5, 7),
				tw = groma_f32_2d(w, 4, 7),
				tb = groma_f32_1d(b, 4),
				ty = groma_f32_3d(y, 3, 5, 4);
	groma_tensor bad = groma_f32_3d(y, 3, 4, 5);

	unit_fill_random(x, 105, 1, 1.0f);
	unit_fill_random(w, 28, 2, 1.0f);
	unit_fill_random(b, 4, 3, 1.0f);
	for (int bias = 0; bias < 2; bias++)
	{
		for (int r = 0; r < 15; r++)
			for (int o = 0; o < 4; o++)
			{
				double		s = bias ? b[o] : 0;

				for (int i = 0; i < 7; i++)
					s += (double) x[r * 7 + i] * w[o * 7 + i];
				ref[r * 4 + o] = (float) s;
			}
		CHECK(groma_linear(&tx, &tw, bias ? &tb : NULL, &ty).code == GROMA_OK);
		CHECKF(max_abs_diff(y, ref, 60) < 1e-5, "linear bias=%d differs by %g", bias, max_abs_diff(y, ref, 60));
	}
	CHECK(groma_linear(&tx, &tw, &tb, &bad).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_linear(&tx, &tb, NULL, &ty).code == GROMA_ERR_INVALID_ARGUMENT);
}

/* matmul with every transpose combination, batch broadcast and 4-d head views. */
UNIT_TEST(test_op_matmul)
{
	float		a[2 * 3 * 4],
				b[2 * 4 * 5],
				c[2 * 3 * 5],
				ref[2 * 3 * 5];

	unit_fill_random(a, 24, 4, 1.0f);
	unit_fill_random(b, 40, 5, 1.0f);
	for (int ta = 0; ta < 2; ta++)
		for (int tb = 0; tb < 2; tb++)
		{
			/* a is [2,3,4] or [2,4,3]; b is [2,4,5] or [2,5,4]; the same numbers, read transposed. */
			groma_tensor A = ta ? groma_f32_3d(a, 2, 4, 3) : groma_f32_3d(a, 2, 3, 4);
			groma_tensor B = tb ? groma_f32_3d(b, 2, 5, 4) : groma_f32_3d(b, 2, 4, 5);
			groma_tensor C = groma_f32_3d(c, 2, 3, 5);

			for (int n = 0; n < 2; n++)
				for (int i = 0; i < 3; i++)
					for (int j = 0; j < 5; j++)
					{
						double		s = 0;

						for (int k = 0; k < 4; k++)
							s += (double) (ta ? a[n * 12 + k * 3 + i] : a[n * 12 + i * 4 + k]) *
								(tb ? b[n * 20 + j * 4 + k] : b[n * 20 + k * 5 + j]);
						ref[(n * 3 + i) * 5 + j] = (float) (0.5 * s);
					}
			CHECK(groma_matmul(&A, ta, &B, tb, 0.5f, &C).code == GROMA_OK);
			CHECKF(max_abs_diff(c, ref, 30) < 1e-5, "matmul ta=%d tb=%d", ta, tb);
		}

	/* A [B=1,H=2,T=3,D=4] head view of a [1,3,2·4] buffer times its transpose. */
	{
		float		buf[3 * 8],
					out[2 * 3 * 3];
		groma_tensor flat = groma_f32_4d(buf, 1, 3, 2, 4),
					heads,
					o = groma_f32_4d(out, 1, 2, 3, 3);

		unit_fill_random(buf, 24, 6, 1.0f);
		CHECK(groma_tensor_permute(&flat, (int[]) {0, 2, 1, 3}, &heads).code == GROMA_OK);
		CHECK(groma_matmul(&heads, false, &heads, true, 1.0f, &o).code == GROMA_OK);
		for (int h = 0; h < 2; h++)
			for (int i = 0; i < 3; i++)
				for (int j = 0; j < 3; j++)
				{
					double		s = 0;

					for (int k = 0; k < 4; k++)
						s += (double) buf[i * 8 + h * 4 + k] * buf[j * 8 + h * 4 + k];
					CHECKF(fabs(out[(h * 3 + i) * 3 + j] - s) < 1e-5, "head view matmul h%d %d,%d", h, i, j);
				}
	}
	{
		groma_tensor A = groma_f32_3d(a, 2, 3, 4),
					B = groma_f32_3d(b, 2, 5, 4),
					C = groma_f32_3d(c, 2, 3, 5);

		CHECK(groma_matmul(&A, false, &B, false, 1.0f, &C).code == GROMA_ERR_INVALID_ARGUMENT);
	}
}

/* conv2d (3x3 pad 1, 3x3 stride 2, 1x1) equals a naive loop. */
UNIT_TEST(test_op_conv2d)
{
	static const int cases[][4] = {{3, 1, 1, 0}, {3, 2, 1, 0}, {1, 1, 0, 1}, {3, 1, 0, 0}};
	float		x[2 * 3 * 7 * 6],
				w[5 * 3 * 3 * 3],
				b[5];
	groma_arena scratch;

	CHECK(groma_arena_init(&scratch, 1 << 20).code == GROMA_OK);
	unit_fill_random(x, 2 * 3 * 7 * 6, 7, 1.0f);
	unit_fill_random(w, 5 * 27, 8, 1.0f);
	unit_fill_random(b, 5, 9, 1.0f);
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
	{
		int			k = cases[c][0],
					stride = cases[c][1],
					pad = cases[c][2],
					ho = (7 + 2 * pad - k) / stride + 1,
					wo = (6 + 2 * pad - k) / stride + 1;
		float	   *y = calloc((size_t) 2 * 5 * ho * wo, sizeof(float));
		float	   *ref = calloc((size_t) 2 * 5 * ho * wo, sizeof(float));
		groma_tensor tx = groma_f32_4d(x, 2, 3, 7, 6),
					tw = groma_f32_4d(w, 5, 3, k, k),
					tb = groma_f32_1d(b, 5),
					ty = groma_f32_4d(y, 2, 5, ho, wo);

		for (int n = 0; n < 2; n++)
			for (int o = 0; o < 5; o++)
				for (int oy = 0; oy < ho; oy++)
					for (int ox = 0; ox < wo; ox++)
					{
						double		s = b[o];

						for (int ci = 0; ci < 3; ci++)
							for (int i = 0; i < k; i++)
								for (int j = 0; j < k; j++)
								{
									int			iy = oy * stride - pad + i,
												ix = ox * stride - pad + j;

									if (iy >= 0 && iy < 7 && ix >= 0 && ix < 6)
										s += (double) x[((n * 3 + ci) * 7 + iy) * 6 + ix] * w[((o * 3 + ci) * k + i) * k + j];
								}
						ref[((n * 5 + o) * ho + oy) * wo + ox] = (float) s;
					}
		CHECK(groma_conv2d(&tx, &tw, &tb, stride, pad, &scratch, &ty).code == GROMA_OK);
		CHECKF(max_abs_diff(y, ref, 2 * 5 * ho * wo) < 1e-5, "conv k%d s%d p%d", k, stride, pad);
		CHECK(scratch.used == 0);
		free(y);
		free(ref);
	}
	groma_arena_free(&scratch);
}

/* LayerNorm (both layouts), GroupNorm and RMSNorm against direct formulas. */
UNIT_TEST(test_op_norms)
{
	float		x[2 * 8 * 3 * 2],
				w[8],
				b[8],
				y[96],
				y2[96],
				t[96];
	groma_tensor tx = groma_f32_4d(x, 2, 8, 3, 2),
				ty = groma_f32_4d(y, 2, 8, 3, 2),
				tw = groma_f32_1d(w, 8),
				tb = groma_f32_1d(b, 8);

	unit_fill_random(x, 96, 10, 1.0f);
	unit_fill_random(w, 8, 11, 1.0f);
	unit_fill_random(b, 8, 12, 1.0f);

	/* Channel-first LayerNorm equals last-dim LayerNorm of the channels-last copy. */
	CHECK(groma_layer_norm_channels(&tx, &tw, &tb, 1e-6f, &ty).code == GROMA_OK);
	for (int n = 0; n < 2; n++)
		for (int p = 0; p < 6; p++)
			for (int c = 0; c < 8; c++)
				t[(n * 6 + p) * 8 + c] = x[(n * 8 + c) * 6 + p];
	{
		groma_tensor tt = groma_f32_2d(t, 12, 8),
					t2 = groma_f32_2d(y2, 12, 8);

		CHECK(groma_layer_norm(&tt, &tw, &tb, 1e-6f, &t2).code == GROMA_OK);
		for (int n = 0; n < 2; n++)
			for (int p = 0; p < 6; p++)
				for (int c = 0; c < 8; c++)
					CHECK(fabsf(y2[(n * 6 + p) * 8 + c] - y[(n * 8 + c) * 6 + p]) < 1e-6f);
		/* Without affine parameters each row has mean 0 and variance 1. */
		CHECK(groma_layer_norm(&tt, NULL, NULL, 0.0f, &t2).code == GROMA_OK);
		for (int r = 0; r < 12; r++)
		{
			double		m = 0,
						v = 0;

			for (int c = 0; c < 8; c++)
				m += y2[r * 8 + c] / 8.0;
			for (int c = 0; c < 8; c++)
				v += (y2[r * 8 + c] - m) * (y2[r * 8 + c] - m) / 8.0;
			CHECKF(fabs(m) < 1e-6 && fabs(v - 1) < 1e-5, "row %d mean %g var %g", r, m, v);
		}
	}

	/* GroupNorm with 4 groups of 2 channels against the formula. */
	CHECK(groma_group_norm(&tx, 4, &tw, &tb, 1e-5f, &ty).code == GROMA_OK);
	for (int n = 0; n < 2; n++)
		for (int g = 0; g < 4; g++)
		{
			double		m = 0,
						v = 0;

			for (int i = 0; i < 12; i++)
				m += x[(n * 8 + g * 2) * 6 + i] / 12.0;
			for (int i = 0; i < 12; i++)
				v += (x[(n * 8 + g * 2) * 6 + i] - m) * (x[(n * 8 + g * 2) * 6 + i] - m) / 12.0;
			for (int i = 0; i < 12; i++)
			{
				int			c = g * 2 + i / 6;
				double		want = (x[(n * 8 + g * 2) * 6 + i] - m) / sqrt(v + 1e-5) * w[c] + b[c];

				CHECKF(fabs(y[(n * 8 + g * 2) * 6 + i] - want) < 1e-5, "group_norm n%d g%d i%d", n, g, i);
			}
		}
	CHECK(groma_group_norm(&tx, 3, &tw, &tb, 1e-5f, &ty).code == GROMA_ERR_INVALID_ARGUMENT);

	/* RMSNorm: x / sqrt(mean(x²) + eps) · w, in place. */
	{
		groma_tensor tt = groma_f32_2d(t, 12, 8);

		memcpy(y2, t, sizeof(y2));
		CHECK(groma_rms_norm(&tt, &tw, 1e-5f, &tt).code == GROMA_OK);
		for (int r = 0; r < 12; r++)
		{
			double		ms = 0;

			for (int c = 0; c < 8; c++)
				ms += (double) y2[r * 8 + c] * y2[r * 8 + c] / 8.0;
			for (int c = 0; c < 8; c++)
				CHECK(fabs(t[r * 8 + c] - y2[r * 8 + c] / sqrt(ms + 1e-5) * w[c]) < 1e-5);
		}
	}
}

/* Activations at hand-checked points; softmax rows sum to one and ignore shifts. */
UNIT_TEST(test_op_activations_softmax)
{
	float		x[5] = {-1.0f, 0.0f, 1.0f, 3.0f, -20.0f},
				y[5];
	groma_tensor tx = groma_f32_1d(x, 5),
				ty = groma_f32_1d(y, 5);
	float		s[2 * 3] = {1, 2, 3, 1001, 1002, 1003};
	groma_tensor ts = groma_f32_2d(s, 2, 3);

	CHECK(groma_gelu(&tx, &ty).code == GROMA_OK);
	CHECK(fabsf(y[0] + 0.15865525f) < 1e-6f && y[1] == 0.0f && fabsf(y[2] - 0.84134475f) < 1e-6f &&
		  fabsf(y[3] - 2.9959502f) < 1e-6f);
	CHECK(groma_relu(&tx, &ty).code == GROMA_OK);
	CHECK(y[0] == 0.0f && y[2] == 1.0f && y[4] == 0.0f);
	CHECK(groma_silu(&tx, &ty).code == GROMA_OK);
	CHECK(fabsf(y[2] - 0.7310586f) < 1e-6f && fabsf(y[0] + 0.26894142f) < 1e-6f);
	CHECK(groma_sigmoid(&tx, &ty).code == GROMA_OK);
	CHECK(y[1] == 0.5f && fabsf(y[3] - 0.95257413f) < 1e-6f && y[4] > 0.0f);
	CHECK(groma_softmax(&ts, &ts).code == GROMA_OK);
	CHECK(fabsf(s[0] - 0.09003057f) < 1e-6f && fabsf(s[1] - 0.24472847f) < 1e-6f &&
		  fabsf(s[2] - 0.66524096f) < 1e-6f);
	CHECK(max_abs_diff(s, s + 3, 3) < 1e-6);
}

/* Naive attention in double for one [T, D] head. */
static void
naive_attention(const float *q, const float *k, const float *v, int tq, int tk, int d, float scale,
				bool causal, int offset, float *out)
{
	for (int i = 0; i < tq; i++)
	{
		double		w[256],
					max = -INFINITY,
					sum = 0;

		for (int j = 0; j < tk; j++)
		{
			double		s = 0;

			for (int c = 0; c < d; c++)
				s += (double) q[i * d + c] * k[j * d + c];
			w[j] = causal && j > offset + i ? -INFINITY : s * scale;
			if (w[j] > max)
				max = w[j];
		}
		for (int j = 0; j < tk; j++)
			sum += (w[j] = exp(w[j] - max));
		for (int c = 0; c < d; c++)
		{
			double		acc = 0;

			for (int j = 0; j < tk; j++)
				acc += w[j] / sum * v[j * d + c];
			out[i * d + c] = (float) acc;
		}
	}
}

/* Attention: naive parity across query blocks, causal masking, KV-cache steps and a one-hot query. */
UNIT_TEST(test_op_attention)
{
	enum
	{
		T = 150, D = 8
	};
	static float q[T * D],
				k[T * D],
				v[T * D],
				out[T * D],
				ref[T * D];
	groma_arena scratch;
	groma_tensor tq = groma_f32_4d(q, 1, 1, T, D),
				tk = groma_f32_4d(k, 1, 1, T, D),
				tv = groma_f32_4d(v, 1, 1, T, D),
				to = groma_f32_4d(out, 1, 1, T, D);

	CHECK(groma_arena_init(&scratch, 1 << 20).code == GROMA_OK);
	unit_fill_random(q, T * D, 20, 1.0f);
	unit_fill_random(k, T * D, 21, 1.0f);
	unit_fill_random(v, T * D, 22, 1.0f);
	for (int causal = 0; causal < 2; causal++)
	{
		naive_attention(q, k, v, T, T, D, 0.35f, causal, 0, ref);
		CHECK(groma_attention(&tq, &tk, &tv, 0.35f, causal, 0, &scratch, &to).code == GROMA_OK);
		CHECKF(max_abs_diff(out, ref, T * D) < 1e-5, "attention causal=%d differs by %g", causal,
			   max_abs_diff(out, ref, T * D));
	}
	/* Decoding one token at a time against a growing cache equals the causal prefill. */
	for (int t = 0; t < T; t += 37)
	{
		groma_tensor q1,
					kc,
					vc,
					o1;
		float		step[D];

		groma_tensor_narrow(&tq, 2, t, 1, &q1);
		groma_tensor_narrow(&tk, 2, 0, t + 1, &kc);
		groma_tensor_narrow(&tv, 2, 0, t + 1, &vc);
		o1 = groma_f32_4d(step, 1, 1, 1, D);
		CHECK(groma_attention(&q1, &kc, &vc, 0.35f, true, t, &scratch, &o1).code == GROMA_OK);
		CHECKF(max_abs_diff(step, out + t * D, D) < 1e-5, "cached step %d differs", t);
	}
	/* A query aligned with key 3 and a large scale returns v[3]. */
	{
		float		oq[D] = {0},
					ok[4 * D] = {0},
					ov[4 * D],
					oo[D];
		groma_tensor a = groma_f32_4d(oq, 1, 1, 1, D),
					b = groma_f32_4d(ok, 1, 1, 4, D),
					c = groma_f32_4d(ov, 1, 1, 4, D),
					o = groma_f32_4d(oo, 1, 1, 1, D);

		unit_fill_random(ov, 4 * D, 23, 1.0f);
		for (int j = 0; j < 4; j++)
			ok[j * D + j] = 1.0f;
		oq[3] = 1.0f;
		CHECK(groma_attention(&a, &b, &c, 100.0f, false, 0, &scratch, &o).code == GROMA_OK);
		CHECK(max_abs_diff(oo, ov + 3 * D, D) < 1e-6);
	}
	CHECK(groma_attention(&tq, &tk, &tv, 1.0f, true, 5, &scratch, &to).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(scratch.used == 0);
	groma_arena_free(&scratch);
}

/* RoPE: identity at position 0, norm-preserving, relative (q·k depends on m - n only). */
UNIT_TEST(test_op_rope)
{
	float		a[1 * 1 * 2 * 16],
				b[32],
				orig[32];
	groma_tensor ta = groma_f32_4d(a, 1, 1, 2, 16),
				tb = groma_f32_4d(b, 1, 1, 2, 16);
	double		dots[2];

	unit_fill_random(a, 32, 30, 1.0f);
	memcpy(orig, a, sizeof(a));
	CHECK(groma_rope(&ta, NULL, 0, 10000.0f).code == GROMA_OK);
	CHECK(max_abs_diff(a, orig, 32) == 0);
	CHECK(groma_rope(&ta, NULL, 7, 10000.0f).code == GROMA_OK);
	for (int i = 0; i < 8; i++)
	{
		double		n0 = orig[i] * orig[i] + orig[i + 8] * orig[i + 8];
		double		n1 = a[i] * a[i] + a[i + 8] * a[i + 8];

		CHECK(fabs(n0 - n1) < 1e-5);
	}
	/* Dimension pair 0 has frequency 1: position 7 rotates it by 7 radians. */
	CHECK(fabsf(a[0] - (orig[0] * cosf(7) - orig[8] * sinf(7))) < 1e-5f);
	for (int shift = 0; shift < 2; shift++)
	{
		int64_t		pa = 3 + shift * 10,
					pb = 11 + shift * 10;

		memcpy(a, orig, sizeof(a));
		memcpy(b, orig + 16, 16 * sizeof(float));
		memcpy(b + 16, orig, 16 * sizeof(float));
		CHECK(groma_rope(&ta, &pa, 0, 10000.0f).code == GROMA_OK);
		CHECK(groma_rope(&tb, &pb, 0, 10000.0f).code == GROMA_OK);
		dots[shift] = 0;
		for (int i = 0; i < 16; i++)
			dots[shift] += (double) a[i] * b[i];
	}
	CHECKF(fabs(dots[0] - dots[1]) < 1e-5, "rope is not relative: %g vs %g", dots[0], dots[1]);
}

/* Embedding rows by id (f32 and bf16 tables); ids out of range are refused. */
UNIT_TEST(test_op_embedding)
{
	float		table[5 * 3],
				y[3 * 3];
	uint16_t	table16[15];
	int64_t		ids[3] = {4, 0, 4};
	groma_tensor tt = groma_f32_2d(table, 5, 3),
				ty = groma_f32_2d(y, 3, 3),
				ti = groma_tensor_view(ids, GROMA_I64, 1, (int64_t[]) {3}),
				tt16 = groma_tensor_view(table16, GROMA_BF16, 2, (int64_t[]) {5, 3});

	for (int i = 0; i < 15; i++)
	{
		table[i] = (float) i * 0.5f;
		table16[i] = groma_f32_to_bf16(table[i]);
	}
	CHECK(groma_embedding(&ti, &tt, &ty).code == GROMA_OK);
	CHECK(y[0] == 6.0f && y[3] == 0.0f && y[8] == 7.0f);
	memset(y, 0, sizeof(y));
	CHECK(groma_embedding(&ti, &tt16, &ty).code == GROMA_OK);
	CHECK(y[0] == 6.0f && y[8] == 7.0f);
	ids[1] = 5;
	CHECK(groma_embedding(&ti, &tt, &ty).code == GROMA_ERR_INVALID_ARGUMENT);
	ids[1] = -1;
	CHECK(groma_embedding(&ti, &tt, &ty).code == GROMA_ERR_INVALID_ARGUMENT);
}

/* add/mul broadcast, scale, strided copy, concat and dtype conversion. */
UNIT_TEST(test_op_elementwise)
{
	float		a[2 * 3 * 4],
				b4[4],
				b31[3],
				y[24],
				c[24];
	groma_tensor ta = groma_f32_3d(a, 2, 3, 4),
				ty = groma_f32_3d(y, 2, 3, 4),
				tb4 = groma_f32_1d(b4, 4),
				tb31 = groma_f32_2d(b31, 3, 1);

	unit_fill_random(a, 24, 40, 1.0f);
	unit_fill_random(b4, 4, 41, 1.0f);
	unit_fill_random(b31, 3, 42, 1.0f);
	CHECK(groma_add(&ta, &tb4, &ty).code == GROMA_OK);
	for (int i = 0; i < 24; i++)
		CHECK(y[i] == a[i] + b4[i % 4]);
	CHECK(groma_mul(&ta, &tb31, &ty).code == GROMA_OK);
	for (int i = 0; i < 24; i++)
		CHECK(y[i] == a[i] * b31[(i / 4) % 3]);
	CHECK(groma_add(&ta, &ta, &ty).code == GROMA_OK && y[5] == 2 * a[5]);
	CHECK(groma_add(&ta, &tb31, &ta).code == GROMA_OK);	/* in place */
	{
		groma_tensor bad = groma_f32_1d(b31, 3);

		CHECK(groma_add(&ta, &bad, &ty).code == GROMA_ERR_INVALID_ARGUMENT);
	}
	CHECK(groma_scale(&ty, 2.0f, 1.0f, &ty).code == GROMA_OK);

	/* A permuted view copied out is the transpose. */
	{
		groma_tensor perm,
					tc = groma_f32_3d(c, 4, 3, 2);

		CHECK(groma_tensor_permute(&ta, (int[]) {2, 1, 0}, &perm).code == GROMA_OK);
		CHECK(!groma_tensor_is_contiguous(&perm));
		CHECK(groma_copy(&perm, &tc).code == GROMA_OK);
		for (int i = 0; i < 2; i++)
			for (int j = 0; j < 3; j++)
				for (int k = 0; k < 4; k++)
					CHECK(c[(k * 3 + j) * 2 + i] == a[(i * 3 + j) * 4 + k]);
	}
	/* concat along the middle dimension. */
	{
		float		p1[2 * 1 * 2] = {1, 2, 3, 4},
					p2[2 * 2 * 2] = {5, 6, 7, 8, 9, 10, 11, 12},
					out[12];
		groma_tensor parts[2] = {groma_f32_3d(p1, 2, 1, 2), groma_f32_3d(p2, 2, 2, 2)};
		groma_tensor to = groma_f32_3d(out, 2, 3, 2);
		float		want[12] = {1, 2, 5, 6, 7, 8, 3, 4, 9, 10, 11, 12};

		CHECK(groma_concat(parts, 2, 1, &to).code == GROMA_OK);
		CHECK(memcmp(out, want, sizeof(want)) == 0);
		CHECK(groma_concat(parts, 1, 1, &to).code == GROMA_ERR_INVALID_ARGUMENT);
	}
	/* dtype conversions: bf16 rounds to nearest even; f16 specials decode. */
	{
		uint16_t	h[4] = {0x3C00, 0xC000, 0x7BFF, 0x0001};
		float		f[4];
		groma_tensor th = groma_tensor_view(h, GROMA_F16, 1, (int64_t[]) {4}),
					tf = groma_f32_1d(f, 4);

		CHECK(groma_convert(&th, &tf).code == GROMA_OK);
		CHECK(f[0] == 1.0f && f[1] == -2.0f && f[2] == 65504.0f && f[3] == ldexpf(1, -24));
		CHECK(groma_f32_to_bf16(1.0f) == 0x3F80 && groma_f32_to_bf16(1.00390625f) == 0x3F80 &&
			  groma_f32_to_bf16(1.01171875f) == 0x3F82 && groma_bf16_to_f32(0xC0A8) == -5.25f);
		CHECK(isnan(groma_bf16_to_f32(groma_f32_to_bf16(NAN))));
	}
}

/* Arenas align, fail cleanly when full, reset, and track their high water mark. */
UNIT_TEST(test_arena_and_views)
{
	groma_arena arena;
	groma_tensor t,
				v;
	char		buf[64];

	CHECK(groma_arena_init(&arena, 1000).code == GROMA_OK);
	CHECK(groma_arena_tensor(&arena, GROMA_F32, 2, (int64_t[]) {3, 5}, &t).code == GROMA_OK);
	CHECK(((uintptr_t) t.data % GROMA_ARENA_ALIGN) == 0 && groma_tensor_nbytes(&t) == 60);
	CHECK(groma_arena_tensor(&arena, GROMA_F32, 1, (int64_t[]) {1000}, &v).code == GROMA_ERR_NO_MEMORY);
	CHECK(groma_arena_tensor(&arena, GROMA_F32, 1, (int64_t[]) {-1}, &v).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_arena_tensor(&arena, GROMA_F32, 3, (int64_t[]) {INT64_MAX / 2, 4, 4}, &v).code == GROMA_ERR_INVALID_ARGUMENT);
	groma_arena_reset(&arena);
	CHECK(arena.used == 0 && arena.high_water == 64);

	CHECK(groma_tensor_reshape(&t, 3, (int64_t[]) {5, 1, 3}, &v).code == GROMA_OK && v.stride[0] == 3);
	CHECK(groma_tensor_reshape(&t, 2, (int64_t[]) {4, 4}, &v).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_tensor_narrow(&t, 1, 2, 3, &v).code == GROMA_OK && v.data == (float *) t.data + 2);
	CHECK(groma_tensor_narrow(&t, 1, 3, 3, &v).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_tensor_permute(&t, (int[]) {0, 0}, &v).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(strcmp(groma_tensor_shape_str(&t, buf, sizeof(buf)), "[3,5]") == 0);
	groma_arena_free(&arena);
}

/* Without a registered backend, ops on device tensors fail clearly instead of touching the memory. */
UNIT_TEST(test_device_dispatch_without_backend)
{
	float		dummy[4] = {0};
	groma_tensor d = groma_f32_2d(dummy, 2, 2),
				h = groma_f32_2d(dummy, 2, 2);
	groma_status st;
	groma_arena arena;

	d.device = GROMA_DEVICE_CUDA;
	st = groma_linear(&d, &h, NULL, &h);
	CHECKF(st.code == GROMA_ERR_UNSUPPORTED && strstr(st.message, "no CUDA backend") != NULL, "%s", st.message);
	CHECK(groma_softmax(&d, &d).code == GROMA_ERR_UNSUPPORTED);
	CHECK(groma_copy(&h, &d).code == GROMA_ERR_UNSUPPORTED);
	CHECK(groma_attention(&d, &d, &d, 1.0f, false, 0, NULL, &d).code == GROMA_ERR_UNSUPPORTED);
	CHECK(groma_device_arena_init(&arena, 1024).code == GROMA_ERR_UNSUPPORTED);
	CHECK(groma_group_norm(&d, 1, NULL, NULL, 1e-5f, &d).code == GROMA_ERR_UNSUPPORTED);
	CHECK(groma_convert(&d, &d).code == GROMA_ERR_UNSUPPORTED);
	CHECK(groma_convert(&d, &h).code == GROMA_ERR_INVALID_ARGUMENT);	/* one device each */
	CHECK(groma_inverse_sigmoid(&d, 1e-5f, &d).code == GROMA_ERR_UNSUPPORTED);
	CHECK(groma_fill(&d, 0.0f).code == GROMA_ERR_UNSUPPORTED);
	{
		float		host[64] = {0};

		CHECK(groma_upload(host, &d).code == GROMA_ERR_UNSUPPORTED);
		CHECK(groma_download(&d, host).code == GROMA_ERR_UNSUPPORTED);
	}
	/* CPU-only ops refuse device tensors */
	CHECK(groma_conv3x3_winograd(&d, &d, NULL, NULL, &d).code == GROMA_ERR_INVALID_ARGUMENT);
}

/* GroupNorm with its ReLU in one pass equals GroupNorm then ReLU, to the bit. */
UNIT_TEST(test_op_group_norm_relu)
{
	float		x[2 * 8 * 5 * 3],
				w[8],
				b[8],
				y[2 * 8 * 5 * 3],
				y2[2 * 8 * 5 * 3];
	groma_tensor tx = groma_f32_4d(x, 2, 8, 5, 3),
				tw = groma_f32_1d(w, 8),
				tb = groma_f32_1d(b, 8),
				ty = groma_f32_4d(y, 2, 8, 5, 3),
				ty2 = groma_f32_4d(y2, 2, 8, 5, 3);
	int			negative = 0;

	unit_fill_random(x, 240, 60, 1.0f);
	unit_fill_random(w, 8, 61, 1.0f);
	unit_fill_random(b, 8, 62, 1.0f);
	CHECK(groma_group_norm_relu(&tx, 4, &tw, &tb, 1e-5f, &ty).code == GROMA_OK);
	CHECK(groma_group_norm(&tx, 4, &tw, &tb, 1e-5f, &ty2).code == GROMA_OK);
	for (int i = 0; i < 240; i++)
		negative += y2[i] < 0;
	CHECK(groma_relu(&ty2, &ty2).code == GROMA_OK);
	CHECK(negative > 20 && memcmp(y, y2, sizeof(y)) == 0);
	CHECK(groma_group_norm_relu(&tx, 3, &tw, &tb, 1e-5f, &ty).code == GROMA_ERR_INVALID_ARGUMENT);
}

/* The fused decoder ops equal the ops they replace, to the bit: add then RMSNorm, SiLU then multiply. */
UNIT_TEST(test_op_fused_decoder_ops)
{
	enum { R = 3, D = 70 };
	float		x[R * D],
				delta[R * D],
				w[D],
				x2[R * D],
				y[R * D],
				y2[R * D],
				gate[R * D],
				up[R * D];
	groma_tensor tx = groma_f32_2d(x, R, D),
				tdelta = groma_f32_2d(delta, R, D),
				tw = groma_f32_1d(w, D),
				tx2 = groma_f32_2d(x2, R, D),
				ty = groma_f32_2d(y, R, D),
				ty2 = groma_f32_2d(y2, R, D),
				tgate = groma_f32_2d(gate, R, D),
				tup = groma_f32_2d(up, R, D);

	unit_fill_random(x, R * D, 50, 1.0f);
	unit_fill_random(delta, R * D, 51, 1.0f);
	unit_fill_random(w, D, 52, 1.0f);
	memcpy(x2, x, sizeof(x));
	CHECK(groma_add_rms_norm(&tx, &tdelta, &tw, 1e-6f, &ty).code == GROMA_OK);
	CHECK(groma_add(&tx2, &tdelta, &tx2).code == GROMA_OK);
	CHECK(groma_rms_norm(&tx2, &tw, 1e-6f, &ty2).code == GROMA_OK);
	CHECK(memcmp(x, x2, sizeof(x)) == 0 && memcmp(y, y2, sizeof(y)) == 0);
	CHECK(groma_add_rms_norm(&tx, &tdelta, &tw, 1e-6f, &tx).code == GROMA_ERR_INVALID_ARGUMENT);	/* y = x */
	{
		groma_tensor short_delta = groma_f32_2d(delta, R - 1, D);

		CHECK(groma_add_rms_norm(&tx, &short_delta, &tw, 1e-6f, &ty).code == GROMA_ERR_INVALID_ARGUMENT);
	}

	unit_fill_random(gate, R * D, 53, 1.0f);
	unit_fill_random(up, R * D, 54, 1.0f);
	for (int i = 0; i < R * D; i++)
		gate[i] *= 8.0f;		/* SiLU's tails too */
	CHECK(groma_silu_mul(&tgate, &tup, &ty).code == GROMA_OK);
	CHECK(groma_silu(&tgate, &ty2).code == GROMA_OK);
	CHECK(groma_mul(&ty2, &tup, &ty2).code == GROMA_OK);
	CHECK(memcmp(y, y2, sizeof(y)) == 0);
	CHECK(groma_silu_mul(&tgate, &tup, &tgate).code == GROMA_OK && memcmp(gate, y2, sizeof(y)) == 0);	/* in place */
	CHECK(groma_silu_mul(&tgate, &tdelta, &tx2).code == GROMA_OK);
	{
		groma_tensor short_up = groma_f32_2d(up, R - 1, D);

		CHECK(groma_silu_mul(&tgate, &short_up, &ty).code == GROMA_ERR_INVALID_ARGUMENT);
	}
}

/*
 * argmax_rows: the first largest of each row, a NaN counts as the largest
 * (the first NaN), as torch.argmax; with a second matrix, of the
 * concatenated row.
 */
UNIT_TEST(test_op_argmax_rows)
{
	float		x[4 * 5] = {
		1, 3, 3, 2, 0,			/* a tie: the first */
		-5, -4, -9, -4, -8,
		1, NAN, 7, NAN, 2,		/* the first NaN */
		0, 0, 0, 0, 9,
	};
	float		y[4 * 2] = {
		3, 4,					/* b's 4 beats a's 3: index 6 */
		-4, -1,					/* b's -1 beats -4 */
		NAN, 99,				/* a's NaN comes first */
		9, 9,					/* a tie across the two: a's */
	};
	float		both[4 * 7];
	int32_t		idx[4],
				cat[4];
	groma_tensor t = groma_f32_2d(x, 4, 5),
				u = groma_f32_2d(y, 4, 2),
				empty = groma_f32_2d(x, 4, 0),
				ti = {.data = idx, .dtype = GROMA_I32, .ndim = 1, .shape = {4}, .stride = {1}},
				ci = ti,
				short_i = ti;

	ci.data = cat;
	short_i.shape[0] = 3;
	CHECK(groma_argmax_rows(&t, NULL, &ti).code == GROMA_OK);
	CHECK(idx[0] == 1 && idx[1] == 1 && idx[2] == 1 && idx[3] == 4);
	for (int r = 0; r < 4; r++)
		CHECK(groma_argmax(x + 5 * r, 5) == idx[r]);	/* the decoder's own pick agrees */
	CHECK(groma_argmax_rows(&t, &u, &ci).code == GROMA_OK);
	CHECK(cat[0] == 6 && cat[1] == 6 && cat[2] == 1 && cat[3] == 4);
	for (int r = 0; r < 4; r++)
	{
		memcpy(both + 7 * r, x + 5 * r, 5 * sizeof(float));
		memcpy(both + 7 * r + 5, y + 2 * r, 2 * sizeof(float));
		CHECK(groma_argmax(both + 7 * r, 7) == cat[r]);
	}
	CHECK(groma_argmax_rows(&empty, NULL, &ti).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_argmax_rows(&t, NULL, &short_i).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_argmax_rows(&t, NULL, NULL).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_argmax_rows(&t, &u, &t).code == GROMA_ERR_INVALID_ARGUMENT);	/* idx must be i32 */
}
