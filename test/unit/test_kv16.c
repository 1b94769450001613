/*
 * test_kv16.c - 16-bit KV caches on the CPU: groma_copy's conversions,
 * attention over bf16/f16 keys and values (exactly the f32 attention over
 * the same values), the batched decode step writing rounded rows, and the
 * decoder keeping its cache in the layers' compute type.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "../../src/model/groma_model.h"
#include "../../src/model/llama.h"
#include "../../src/runtime/arena.h"
#include "../../src/runtime/cpu_parallel.h"
#include "../../src/runtime/ops.h"

/* The f32 value of a 16-bit element of type t. */
static float
widen(uint16_t bits, groma_dtype t)
{
	return t == GROMA_BF16 ? groma_bf16_to_f32(bits) : groma_f16_to_f32(bits);
}

/* The 16-bit element of type t nearest x (ties to even). */
static uint16_t
narrow(float x, groma_dtype t)
{
	return t == GROMA_BF16 ? groma_f32_to_bf16(x) : groma_f32_to_f16(x);
}

/*
 * groma_copy narrows a permuted f32 view into bf16 and f16 (each element
 * rounded as the scalar conversion rounds it), widens it back exactly,
 * and refuses an i8 side.
 */
UNIT_TEST(test_copy_converts_16bit)
{
	static const groma_dtype types[] = {GROMA_BF16, GROMA_F16};
	float		src[2 * 3 * 4 * 5],
				back[2 * 4 * 3 * 5];
	uint16_t	half[2 * 4 * 3 * 5];
	int8_t		bytes[2 * 4 * 3 * 5];
	groma_tensor s = groma_f32_4d(src, 2, 3, 4, 5),
				p,
				h,
				b = groma_f32_4d(back, 2, 4, 3, 5),
				i8 = groma_tensor_view(bytes, GROMA_I8, 4, (int64_t[]) {2, 4, 3, 5});

	unit_fill_random(src, 120, 7, 1.0f);
	src[3] = 65504.0f * 4;		/* past f16's range: the conversion's infinity, as the scalar one */
	CHECK(groma_tensor_permute(&s, (int[]) {0, 2, 1, 3}, &p).code == GROMA_OK);	/* [2, 4, 3, 5] */
	for (int t = 0; t < 2; t++)
	{
		int			wrong = 0;

		h = groma_tensor_view(half, types[t], 4, (int64_t[]) {2, 4, 3, 5});
		CHECK(groma_copy(&p, &h).code == GROMA_OK);
		CHECK(groma_copy(&h, &b).code == GROMA_OK);
		for (int a = 0; a < 2; a++)
			for (int c = 0; c < 4; c++)
				for (int r = 0; r < 3; r++)
					for (int e = 0; e < 5; e++)
					{
						int			di = ((a * 4 + c) * 3 + r) * 5 + e;
						float		x = src[((a * 3 + r) * 4 + c) * 5 + e];

						wrong += half[di] != narrow(x, types[t]);
						wrong += memcmp(&back[di], &(float) {widen(half[di], types[t])}, sizeof(float)) != 0;
					}
		CHECKF(wrong == 0, "%s: %d elements not rounded or widened as the scalar conversions", groma_dtype_name(types[t]),
			   wrong);
	}
	CHECK(groma_copy(&p, &i8).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_copy(&i8, &b).code == GROMA_ERR_INVALID_ARGUMENT);
}

/*
 * Attention over 16-bit keys and values (views of the first 29 of 40
 * cached positions, as a decoder passes them) gives exactly the bits of
 * the f32 attention over the same values, for a causal block of queries
 * and a decode query; k and v of different types are refused, and a
 * scratch with room for the scores but not for the widened head fails
 * cleanly, leaving the scratch as it was.
 */
UNIT_TEST(test_attention_reads_16bit_kv)
{
	enum
	{
		H = 2, CAP = 40, LEN = 29, D = 8, TQ = 5
	};
	static const groma_dtype types[] = {GROMA_BF16, GROMA_F16};
	float		q[H * TQ * D],
				kf[H * CAP * D],
				vf[H * CAP * D],
				out[H * TQ * D],
				ref[H * TQ * D];
	uint16_t	k16[H * CAP * D],
				v16[H * CAP * D];
	groma_arena scratch;
	groma_tensor tq = groma_f32_4d(q, 1, H, TQ, D),
				to = groma_f32_4d(out, 1, H, TQ, D),
				tr = groma_f32_4d(ref, 1, H, TQ, D),
				kfv,
				vfv;

	CHECK(groma_arena_init(&scratch, 1 << 20).code == GROMA_OK);
	unit_fill_random(q, H * TQ * D, 31, 1.0f);
	for (int t = 0; t < 2; t++)
	{
		groma_tensor kc = groma_tensor_view(k16, types[t], 4, (int64_t[]) {1, H, CAP, D}),
					vc = groma_tensor_view(v16, types[t], 4, (int64_t[]) {1, H, CAP, D}),
					kfc = groma_f32_4d(kf, 1, H, CAP, D),
					vfc = groma_f32_4d(vf, 1, H, CAP, D),
					kv,
					vv;

		unit_fill_random(kf, H * CAP * D, 32, 1.0f);
		unit_fill_random(vf, H * CAP * D, 33, 1.0f);
		for (int i = 0; i < H * CAP * D; i++)
		{
			k16[i] = narrow(kf[i], types[t]);
			v16[i] = narrow(vf[i], types[t]);
			kf[i] = widen(k16[i], types[t]);
			vf[i] = widen(v16[i], types[t]);
		}
		CHECK(groma_tensor_narrow(&kc, 2, 0, LEN, &kv).code == GROMA_OK);	/* [1, H, LEN, D], row stride D, head stride CAP·D */
		CHECK(groma_tensor_narrow(&vc, 2, 0, LEN, &vv).code == GROMA_OK);
		CHECK(groma_tensor_narrow(&kfc, 2, 0, LEN, &kfv).code == GROMA_OK);
		CHECK(groma_tensor_narrow(&vfc, 2, 0, LEN, &vfv).code == GROMA_OK);
		CHECK(groma_attention(&tq, &kv, &vv, 0.3f, true, LEN - TQ, &scratch, &to).code == GROMA_OK);
		CHECK(groma_attention(&tq, &kfv, &vfv, 0.3f, true, LEN - TQ, &scratch, &tr).code == GROMA_OK);
		CHECKF(memcmp(out, ref, sizeof(out)) == 0, "%s keys and values: not the f32 attention's bits",
			   groma_dtype_name(types[t]));
		{
			groma_tensor q1,
						o1,
						r1;

			CHECK(groma_tensor_narrow(&tq, 2, TQ - 1, 1, &q1).code == GROMA_OK);
			o1 = groma_f32_4d(out, 1, H, 1, D);
			r1 = groma_f32_4d(ref, 1, H, 1, D);
			CHECK(groma_attention(&q1, &kv, &vv, 0.3f, true, LEN - 1, &scratch, &o1).code == GROMA_OK);
			CHECK(groma_attention(&q1, &kfv, &vfv, 0.3f, true, LEN - 1, &scratch, &r1).code == GROMA_OK);
			CHECKF(memcmp(out, ref, H * D * sizeof(float)) == 0, "%s: a decode query differs",
				   groma_dtype_name(types[t]));
		}
		CHECK(groma_attention(&tq, &kv, &vfv, 0.3f, true, LEN - TQ, &scratch, &to).code == GROMA_ERR_INVALID_ARGUMENT);
		{
			groma_arena small;
			size_t		used,
						scores = groma_arena_round((size_t) groma_cpu_threads() * 64 * LEN * sizeof(float));

			CHECK(groma_arena_init(&small, 64 + scores + 64).code == GROMA_OK);
			small.used = 64;	/* a caller's own tensor below */
			used = small.used;
			CHECK(groma_attention(&tq, &kfv, &vfv, 0.3f, true, LEN - TQ, &small, &tr).code == GROMA_OK);	/* f32: fits */
			CHECK(groma_attention(&tq, &kv, &vv, 0.3f, true, LEN - TQ, &small, &to).code == GROMA_ERR_NO_MEMORY);
			CHECK(small.used == used);
			groma_arena_free(&small);
		}
	}
	CHECK(scratch.used == 0);
	groma_arena_free(&scratch);
}

/*
 * The batched decode step with bf16 caches writes the rotated key and the
 * value rounded to bf16 at each row's position (the rows an f32 cache
 * receives from the same call, rounded) and attends over the rounded
 * cache: within bf16's rounding of the f32 cache's answer.
 */
UNIT_TEST(test_decode_rows_bf16_cache)
{
	enum
	{
		N = 3, H = 2, D = 8, CAP = 12
	};
	float		q[N * H * D],
				k[N * H * D],
				v[N * H * D],
				ctx[N * H * D],
				q32[N * H * D],
				k32[N * H * D],
				ctx32[N * H * D],
				cf[2][N][H * CAP * D];
	uint16_t	c16[2][N][H * CAP * D];
	int32_t		pos[N] = {0, 5, CAP - 1};
	groma_tensor kc[N],
				vc[N],
				kf[N],
				vf[N];
	groma_tensor *kp[N],
			   *vp[N],
			   *kfp[N],
			   *vfp[N];
	groma_tensor tpos = groma_tensor_view(pos, GROMA_I32, 1, (int64_t[]) {N});
	groma_arena scratch;
	int			wrong = 0;
	double		worst = 0;

	CHECK(groma_arena_init(&scratch, 1 << 20).code == GROMA_OK);
	unit_fill_random(q, N * H * D, 41, 1.0f);
	unit_fill_random(k, N * H * D, 42, 1.0f);
	unit_fill_random(v, N * H * D, 43, 1.0f);
	memcpy(q32, q, sizeof(q));
	memcpy(k32, k, sizeof(k));
	for (int b = 0; b < N; b++)
	{
		unit_fill_random(cf[0][b], H * CAP * D, 50 + b, 1.0f);
		unit_fill_random(cf[1][b], H * CAP * D, 60 + b, 1.0f);
		for (int i = 0; i < H * CAP * D; i++)
			for (int s = 0; s < 2; s++)
			{
				c16[s][b][i] = groma_f32_to_bf16(cf[s][b][i]);
				cf[s][b][i] = groma_bf16_to_f32(c16[s][b][i]);	/* the same earlier rows on both sides */
			}
		kc[b] = groma_tensor_view(c16[0][b], GROMA_BF16, 4, (int64_t[]) {1, H, CAP, D});
		vc[b] = groma_tensor_view(c16[1][b], GROMA_BF16, 4, (int64_t[]) {1, H, CAP, D});
		kf[b] = groma_f32_4d(cf[0][b], 1, H, CAP, D);
		vf[b] = groma_f32_4d(cf[1][b], 1, H, CAP, D);
		kp[b] = &kc[b];
		vp[b] = &vc[b];
		kfp[b] = &kf[b];
		vfp[b] = &vf[b];
	}
	{
		groma_tensor tq = groma_f32_2d(q, N, H * D),
					tk = groma_f32_2d(k, N, H * D),
					tv = groma_f32_2d(v, N, H * D),
					tc = groma_f32_2d(ctx, N, H * D),
					tq32 = groma_f32_2d(q32, N, H * D),
					tk32 = groma_f32_2d(k32, N, H * D),
					tc32 = groma_f32_2d(ctx32, N, H * D);

		CHECK(groma_attention_decode_rows(&tq, &tk, &tv, H, kp, vp, &tpos, 10000.0f, 0.35f, &scratch, &tc).code ==
			  GROMA_OK);
		CHECK(groma_attention_decode_rows(&tq32, &tk32, &tv, H, kfp, vfp, &tpos, 10000.0f, 0.35f, &scratch,
										  &tc32).code == GROMA_OK);
	}
	for (int b = 0; b < N; b++)
		for (int i = 0; i < H * CAP * D; i++)
			for (int s = 0; s < 2; s++)
				wrong += c16[s][b][i] != groma_f32_to_bf16(cf[s][b][i]);
	for (int i = 0; i < N * H * D; i++)
		worst = fmax(worst, fabs((double) ctx[i] - ctx32[i]));
	CHECKF(wrong == 0, "%d cache values are not the f32 cache's, rounded", wrong);
	CHECKF(worst < 1e-2, "attention over the bf16 cache differs from the f32 one by %g", worst);
	CHECK(memcmp(q, q32, sizeof(q)) == 0);	/* q rotated alike */
	groma_arena_free(&scratch);
}

/* The largest |a - b| over n floats, and the range of b. */
static double
max_diff(const float *a, const float *b, int64_t n, double *range)
{
	double		m = 0,
				lo = INFINITY,
				hi = -INFINITY;

	for (int64_t i = 0; i < n; i++)
	{
		m = fmax(m, fabs((double) a[i] - b[i]));
		lo = fmin(lo, b[i]);
		hi = fmax(hi, b[i]);
	}
	*range = hi - lo;
	return m;
}

/*
 * The tiny model's decoder keeps its KV cache in the layers' compute type
 * (f32 for f32 matrices, bf16 for int8 ones, whose products run in bf16 on
 * a GPU, as PyTorch's cache holds the model's dtype), in half the bytes;
 * on the CPU (which takes f32 and int8 matrices) with int8 the first
 * layer's cached keys and values are exactly the f32 cache's rounded, and
 * a 20-position prefill's logits stay within 2 % of their range of the f32
 * cache's (and are not identical: the cache really holds bf16).
 */
UNIT_TEST(test_kv_cache_follows_compute_type)
{
	static const groma_dtype weights[] = {GROMA_F32, GROMA_I8};
	static const groma_dtype expect[] = {GROMA_F32, GROMA_BF16};

	for (int w = 0; w < 2; w++)
	{
		groma_model *m = NULL;
		groma_status st = groma_model_load_on(unit_path("test/golden/tiny-groma"), GROMA_DEVICE_CPU, weights[w], &m);

		CHECKF(st.code == GROMA_OK, "loading the tiny model (%s): %s", groma_dtype_name(weights[w]), st.message);
		if (m == NULL)
			continue;
		CHECKF(m->llm.cfg.kv_dtype == expect[w], "%s matrices: a %s cache", groma_dtype_name(weights[w]),
			   groma_dtype_name(m->llm.cfg.kv_dtype));
		if (weights[w] == GROMA_I8)
		{
			enum
			{
				T = 20
			};
			groma_llama_config f32_cfg = m->llm.cfg;
			groma_llama *llm = &m->llm;
			int64_t		d = llm->cfg.hidden,
						vocab = (int64_t) llm->cfg.vocab + llm->cfg.extra_vocab;
			float	   *x = malloc(sizeof(float) * (size_t) (T * d)),
					   *logits16 = malloc(sizeof(float) * (size_t) vocab),
					   *logits32 = malloc(sizeof(float) * (size_t) vocab);
			groma_arena act;
			groma_kv_cache c16,
						c32;
			groma_tensor tx = groma_f32_2d(x, T, d),
						k0_16,
						k0_32,
						v0_16,
						v0_32;
			double		range,
						drift;
			int			wrong = 0;

			f32_cfg.kv_dtype = GROMA_F32;
			CHECK(2 * (groma_kv_cache_bytes(&llm->cfg, 64) - 4 * GROMA_ARENA_ALIGN) ==
				  groma_kv_cache_bytes(&f32_cfg, 64) - 4 * GROMA_ARENA_ALIGN);
			CHECK(groma_arena_init(&act, (size_t) 64 << 20).code == GROMA_OK);
			unit_fill_random(x, T * d, 71, 1.0f);
			CHECK(groma_kv_cache_init(&c16, &llm->cfg, T, &act).code == GROMA_OK);
			CHECK(c16.k.dtype == GROMA_BF16 && c16.v.dtype == GROMA_BF16);
			CHECK(groma_llama_forward(llm, &c16, &tx, &act, logits16, NULL).code == GROMA_OK);
			llm->cfg.kv_dtype = GROMA_F32;	/* the same model with an f32 cache */
			CHECK(groma_kv_cache_init(&c32, &llm->cfg, T, &act).code == GROMA_OK);
			CHECK(groma_llama_forward(llm, &c32, &tx, &act, logits32, NULL).code == GROMA_OK);
			llm->cfg.kv_dtype = GROMA_BF16;
			CHECK(groma_tensor_narrow(&c16.k, 0, 0, 1, &k0_16).code == GROMA_OK);	/* layer 0 */
			CHECK(groma_tensor_narrow(&c32.k, 0, 0, 1, &k0_32).code == GROMA_OK);
			CHECK(groma_tensor_narrow(&c16.v, 0, 0, 1, &v0_16).code == GROMA_OK);
			CHECK(groma_tensor_narrow(&c32.v, 0, 0, 1, &v0_32).code == GROMA_OK);
			for (int64_t i = 0; i < groma_tensor_numel(&k0_16); i++)
			{
				wrong += ((const uint16_t *) k0_16.data)[i] != groma_f32_to_bf16(((const float *) k0_32.data)[i]);
				wrong += ((const uint16_t *) v0_16.data)[i] != groma_f32_to_bf16(((const float *) v0_32.data)[i]);
			}
			drift = max_diff(logits16, logits32, vocab, &range);
			unit_note("int8 matrices: a bf16 KV cache moves the prefill's logits by %.3g (range %.3g)", drift, range);
			CHECKF(wrong == 0, "%d of layer 0's cached values are not the f32 cache's rounded", wrong);
			CHECKF(drift > 0 && drift < 0.02 * range, "logits with a bf16 cache differ by %g of a range of %g", drift,
				   range);
			groma_arena_free(&act);
			free(x);
			free(logits16);
			free(logits32);
		}
		groma_model_free(m);
	}
}
