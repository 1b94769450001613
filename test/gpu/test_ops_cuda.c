/*
 * test_ops_cuda.c - op parity, CUDA against the CPU twin: random inputs at
 * several shapes through both devices, compared by normalised mean squared
 * error (as llama.cpp's test-backend-ops does), one line per op and shape.
 * Skips with the CUDA runtime's reason where no GPU is present.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../kernels/groma_cuda.h"
#include "gpu_skip.h"
#include "../../src/runtime/device_ops.h"
#include "../../src/runtime/ops.h"
#include "../../src/model/image_tokens.h"
#include "../../src/runtime/ops_spatial.h"

static int	passed,
			failed;
static groma_arena host,
			dev,
			dev_scratch;				/* device scratch for attention's score matrices */
static uint32_t seed = 1;

/*
 * GROMA_OPS_SANITIZER_RUN=1 (a run under compute-sanitizer, which is 10 to
 * 100 times slower): no timings, the attention cases forced on the tiled
 * kernel only, and the two largest attention cases left out.
 */
static bool sanitizer_run;

/* A host tensor of random values in [-1, 1). */
static groma_tensor
rand_host(int ndim, const int64_t *shape)
{
	groma_tensor t;

	if (groma_arena_tensor(&host, GROMA_F32, ndim, shape, &t).code != GROMA_OK)
	{
		fprintf(stderr, "host arena full\n");
		exit(1);
	}
	for (int64_t i = 0; i < groma_tensor_numel(&t); i++)
	{
		seed = seed * 1664525u + 1013904223u;
		((float *) t.data)[i] = (float) ((seed >> 8) / 8388608.0 - 1.0);
	}
	return t;
}

/* An empty host tensor of the shape of t. */
static groma_tensor
like_host(const groma_tensor *t)
{
	groma_tensor o;

	groma_arena_tensor(&host, GROMA_F32, t->ndim, t->shape, &o);
	memset(o.data, 0, groma_tensor_nbytes(&o));
	return o;
}

/* A device copy of a contiguous host tensor. */
static groma_tensor
to_dev(const groma_tensor *t)
{
	groma_tensor d;

	groma_arena_tensor(&dev, GROMA_F32, t->ndim, t->shape, &d);
	groma_cuda_ops.to_device(d.data, t->data, groma_tensor_nbytes(t));
	return d;
}

/* Compares a device result with the CPU one and prints one line. */
static void
compare(const char *op, const char *shape, const groma_tensor *cpu, const groma_tensor *gpu, double tol,
		groma_status st_cpu, groma_status st_gpu)
{
	int64_t		n = groma_tensor_numel(cpu);
	float	   *back = malloc((size_t) (n > 0 ? n : 1) * sizeof(float));
	double		err = 0,
				ref = 0,
				nmse;
	groma_status sync = groma_cuda_ops.synchronize();

	if (st_cpu.code != GROMA_OK || st_gpu.code != GROMA_OK || sync.code != GROMA_OK)
	{
		printf("not ok - %-10s %-28s cpu: %s / gpu: %s %s\n", op, shape, st_cpu.message, st_gpu.message, sync.message);
		failed++;
		free(back);
		return;
	}
	groma_cuda_ops.to_host(back, gpu->data, (size_t) n * sizeof(float));
	for (int64_t i = 0; i < n; i++)
	{
		double		c = ((const float *) cpu->data)[i];

		err += (back[i] - c) * (back[i] - c);
		ref += c * c;
	}
	nmse = ref > 0 ? err / ref : err;
	printf("%s - %-10s %-28s nmse %.2e (tolerance %.0e)\n", nmse <= tol ? "ok" : "not ok", op, shape, nmse, tol);
	if (nmse <= tol)
		passed++;
	else
		failed++;
	free(back);
}

/* A contiguous copy of t as type, carved from arena (on t's device), by groma_copy; exits on failure. */
static groma_tensor
converted(const groma_tensor *t, groma_arena *arena, groma_dtype type)
{
	groma_tensor c;
	groma_status st = groma_arena_tensor(arena, type, t->ndim, t->shape, &c);

	if (st.code == GROMA_OK)
		st = groma_copy(t, &c);
	if (st.code != GROMA_OK)
	{
		fprintf(stderr, "converted: %s\n", st.message);
		exit(1);
	}
	return c;
}

/* compare() for tensors of any type groma_copy takes: both sides widened to f32 first. */
static void
compare_widened(const char *op, const char *shape, const groma_tensor *cpu, const groma_tensor *gpu, double tol,
				groma_status st_cpu, groma_status st_gpu)
{
	size_t		host_mark = host.used,
				dev_mark = dev.used;

	if (st_cpu.code == GROMA_OK && st_gpu.code == GROMA_OK)
	{
		groma_tensor c = converted(cpu, &host, GROMA_F32),
					g = converted(gpu, &dev, GROMA_F32);

		compare(op, shape, &c, &g, tol, st_cpu, st_gpu);
	}
	else
		compare(op, shape, cpu, gpu, tol, st_cpu, st_gpu);
	host.used = host_mark;
	dev.used = dev_mark;
}

/*
 * bf16 copies of w on the host and of dw on the device (same shape),
 * narrowed by each side's convert op; *a and *g get the two statuses.
 */
static void
to_bf16(const groma_tensor *w, const groma_tensor *dw, groma_tensor *w16, groma_tensor *dw16, groma_status *a,
		groma_status *g)
{
	*a = groma_arena_tensor(&host, GROMA_BF16, w->ndim, w->shape, w16);
	*g = groma_arena_tensor(&dev, GROMA_BF16, dw->ndim, dw->shape, dw16);
	if (a->code == GROMA_OK)
		*a = groma_convert(w, w16);
	if (g->code == GROMA_OK)
		*g = groma_convert(dw, dw16);
}

/*
 * w and dw (host and device copies of one f32 matrix) as dtype: themselves
 * for f32, else narrowed copies by each side's convert op; a failure goes
 * to *a (host) or *g (device), which later calls leave as they are.
 */
static void
as_dtype(const groma_tensor *w, const groma_tensor *dw, groma_dtype dtype, groma_tensor *wt, groma_tensor *dwt,
		 groma_status *a, groma_status *g)
{
	*wt = *w;
	*dwt = *dw;
	if (dtype == GROMA_F32)
		return;
	if (a->code == GROMA_OK)
		*a = groma_arena_tensor(&host, dtype, 2, w->shape, wt);
	if (g->code == GROMA_OK)
		*g = groma_arena_tensor(&dev, dtype, 2, dw->shape, dwt);
	if (a->code == GROMA_OK)
		*a = groma_convert(w, wt);
	if (g->code == GROMA_OK)
		*g = groma_convert(dw, dwt);
}

/* linear with and without bias at several shapes. */
static void
test_linear(void)
{
	static const int64_t shapes[][3] = {{21, 33, 17}, {256, 128, 512}, {1, 4096, 64}};

	for (size_t s = 0; s < 3; s++)
		for (int bias = 0; bias < 2; bias++)
		{
			int64_t		m = shapes[s][0],
						k = shapes[s][1],
						n = shapes[s][2];
			groma_tensor x = rand_host(2, (int64_t[]) {m, k}),
						w = rand_host(2, (int64_t[]) {n, k}),
						b = rand_host(1, (int64_t[]) {n}),
						y = like_host(&(groma_tensor) {.ndim = 2, .shape = {m, n}});
			groma_tensor dx = to_dev(&x),
						dw = to_dev(&w),
						db = to_dev(&b),
						dy = to_dev(&y);
			char		name[64];
			groma_status a = groma_linear(&x, &w, bias ? &b : NULL, &y);
			groma_status g = groma_linear(&dx, &dw, bias ? &db : NULL, &dy);

			snprintf(name, sizeof(name), "[%lld,%lld]x[%lld,%lld]%s", (long long) m, (long long) k, (long long) n,
					 (long long) k, bias ? "+b" : "");
			compare("linear", name, &y, &dy, 1e-10, a, g);
		}
}

/*
 * linear with bf16 and f16 weights (tensor cores; the GPU rounds x to the
 * weight type too) against the CPU's f32 product of the same rounded
 * weights, and the device conversion op against the CPU's.
 */
static void
test_linear_16bit(void)
{
	static const groma_dtype types[] = {GROMA_BF16, GROMA_F16};

	for (int t = 0; t < 2; t++)
	{
		int64_t		m = 77,
					k = 256,
					n = 96;
		groma_tensor x = rand_host(2, (int64_t[]) {m, k}),
					w = rand_host(2, (int64_t[]) {n, k}),
					b = rand_host(1, (int64_t[]) {n}),
					y = like_host(&(groma_tensor) {.ndim = 2, .shape = {m, n}}),
					w16,
					dw16,
					back = like_host(&w),
					dback;
		groma_tensor dx = to_dev(&x),
					dw = to_dev(&w),
					db = to_dev(&b),
					dy = to_dev(&y);
		groma_status a,
					g;

		groma_arena_tensor(&host, types[t], 2, (int64_t[]) {n, k}, &w16);
		groma_arena_tensor(&dev, types[t], 2, (int64_t[]) {n, k}, &dw16);
		dback = to_dev(&back);
		/* the device narrows w; the CPU narrows its copy: both must give the same bits */
		g = groma_convert(&dw, &dw16);
		a = groma_convert(&w, &w16);
		if (g.code == GROMA_OK)
			g = groma_convert(&dw16, &dback);
		if (a.code == GROMA_OK)
			a = groma_convert(&w16, &back);
		compare("convert", types[t] == GROMA_BF16 ? "f32->bf16->f32" : "f32->f16->f32", &back, &dback, 0.0, a, g);
		a = groma_linear(&x, &w16, &b, &y);
		g = groma_linear(&dx, &dw16, &db, &dy);
		compare("linear", types[t] == GROMA_BF16 ? "[77,256]x[96,256] bf16 w" : "[77,256]x[96,256] f16 w", &y, &dy,
				types[t] == GROMA_BF16 ? 1e-4 : 1e-6, a, g);
	}
}

/*
 * Linears of a few rows with bf16 weights (decode steps): the GPU's
 * bandwidth kernel keeps x in f32 as the CPU does, so it matches far
 * closer than cuBLAS's tensor cores (x rounded to bf16), which the same
 * cases also take with the kernel turned off.  Up to 8 rows (a decode
 * batch) take the kernel, with odd feature counts too.  K = 100 is no
 * multiple of 8: cuBLAS either way.
 */
static void
test_linear_few_rows(void)
{
	static const struct
	{
		int64_t		m,
					k,
					n;
		bool		bias;
	}			cases[] = {{1, 4096, 300, false}, {1, 512, 1000, true}, {3, 520, 77, true}, {1, 100, 33, true},
	{8, 1024, 77, true}, {5, 256, 33, false}};

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
	{
		int64_t		m = cases[c].m,
					k = cases[c].k,
					n = cases[c].n;
		groma_tensor x = rand_host(2, (int64_t[]) {m, k}),
					w = rand_host(2, (int64_t[]) {n, k}),
					b = rand_host(1, (int64_t[]) {n}),
					y = like_host(&(groma_tensor) {.ndim = 2, .shape = {m, n}}),
					w16;
		groma_tensor dx = to_dev(&x),
					dw = to_dev(&w),
					db = to_dev(&b),
					dy = to_dev(&y),
					dw16;
		const groma_tensor *bias = cases[c].bias ? &b : NULL,
				   *dbias = cases[c].bias ? &db : NULL;
		groma_status a,
					g;
		char		name[64];

		to_bf16(&w, &dw, &w16, &dw16, &a, &g);
		if (a.code == GROMA_OK)
			a = groma_linear(&x, &w16, bias, &y);
		if (g.code == GROMA_OK)
			g = groma_linear(&dx, &dw16, dbias, &dy);
		snprintf(name, sizeof(name), "[%lld,%lld]x[%lld,%lld]%s bf16 w", (long long) m, (long long) k, (long long) n,
				 (long long) k, cases[c].bias ? "+b" : "");
		compare("linear", name, &y, &dy, k % 8 == 0 ? 1e-10 : 1e-4, a, g);
		groma_cuda_linear_gemv(false);
		groma_fill(&dy, NAN);
		snprintf(name, sizeof(name), "[%lld,%lld]x[%lld,%lld] cuBLAS", (long long) m, (long long) k, (long long) n,
				 (long long) k);
		compare("linear", name, &y, &dy, 1e-4, a, groma_linear(&dx, &dw16, dbias, &dy));
		groma_cuda_linear_gemv(true);
	}
}

/*
 * Weight-only int8: the GPU quantizes the same rows to the same bytes and
 * scales as the CPU, dequantizes them back alike, and linear with i8
 * weights matches the CPU's within f32 rounding on the few-rows kernel
 * (m up to 8, K a multiple of 16) and within bf16 rounding on the bf16 copy
 * cuBLAS multiplies (more rows, K = 100, or the kernel turned off).
 */
static void
test_linear_int8(void)
{
	static const struct
	{
		int64_t		m,
					k,
					n;
		bool		bias;
	}			cases[] = {{1, 4096, 300, false}, {3, 512, 77, true}, {8, 64, 130, true}, {12, 256, 96, false},
	{1, 100, 33, true}};

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
	{
		int64_t		m = cases[c].m,
					k = cases[c].k,
					n = cases[c].n;
		groma_tensor x = rand_host(2, (int64_t[]) {m, k}),
					w = rand_host(2, (int64_t[]) {n, k}),
					b = rand_host(1, (int64_t[]) {n}),
					y = like_host(&(groma_tensor) {.ndim = 2, .shape = {m, n}}),
					back = like_host(&w),
					w8;
		groma_tensor dx = to_dev(&x),
					dw = to_dev(&w),
					db = to_dev(&b),
					dy = to_dev(&y),
					dback = to_dev(&back),
					dw8;
		const groma_tensor *bias = cases[c].bias ? &b : NULL,
				   *dbias = cases[c].bias ? &db : NULL;
		bool		few = m <= 8 && k % 16 == 0;
		groma_status a = groma_arena_tensor(&host, GROMA_I8, 2, w.shape, &w8),
					g = groma_arena_tensor(&dev, GROMA_I8, 2, dw.shape, &dw8);
		char		name[64];

		if (a.code == GROMA_OK)
			a = groma_convert(&w, &w8);
		if (g.code == GROMA_OK)
			g = groma_convert(&dw, &dw8);
		if (a.code == GROMA_OK && g.code == GROMA_OK && groma_cuda_ops.synchronize().code == GROMA_OK)
		{
			int8_t	   *q = malloc((size_t) (n * k));
			float	   *s = malloc((size_t) n * sizeof(float));
			bool		same;

			groma_cuda_ops.to_host(q, dw8.data, (size_t) (n * k));
			groma_cuda_ops.to_host(s, dw8.scale, (size_t) n * sizeof(float));
			same = memcmp(q, w8.data, (size_t) (n * k)) == 0 && memcmp(s, w8.scale, (size_t) n * sizeof(float)) == 0;
			printf("%s - %-10s [%lld,%lld] rows quantized to the CPU's bytes and scales\n", same ? "ok" : "not ok",
				   "quantize", (long long) n, (long long) k);
			same ? passed++ : failed++;
			free(q);
			free(s);
		}
		snprintf(name, sizeof(name), "[%lld,%lld] i8 to f32", (long long) n, (long long) k);
		compare("convert", name, &back, &dback, 0, a.code == GROMA_OK ? groma_convert(&w8, &back) : a,
				g.code == GROMA_OK ? groma_convert(&dw8, &dback) : g);
		if (a.code == GROMA_OK)
			a = groma_linear(&x, &w8, bias, &y);
		if (g.code == GROMA_OK)
			g = groma_linear(&dx, &dw8, dbias, &dy);
		snprintf(name, sizeof(name), "[%lld,%lld]x[%lld,%lld]%s i8 w", (long long) m, (long long) k, (long long) n,
				 (long long) k, cases[c].bias ? "+b" : "");
		compare("linear", name, &y, &dy, few ? 1e-10 : 1e-4, a, g);
		if (!few)
			continue;
		groma_cuda_linear_gemv(false);
		groma_fill(&dy, NAN);
		snprintf(name, sizeof(name), "[%lld,%lld]x[%lld,%lld] i8 as bf16", (long long) m, (long long) k, (long long) n,
				 (long long) k);
		compare("linear", name, &y, &dy, 1e-4, a, groma_linear(&dx, &dw8, dbias, &dy));
		groma_cuda_linear_gemv(true);
	}
}

/* Copies n floats of device memory at src into a new malloc'd host buffer (NULL on failure). */
static float *
device_floats(const void *src, int64_t n)
{
	float	   *h = malloc((size_t) n * sizeof(float));

	if (h && (groma_cuda_ops.synchronize().code != GROMA_OK ||
			  groma_cuda_ops.to_host(h, src, (size_t) n * sizeof(float)).code != GROMA_OK))
	{
		free(h);
		h = NULL;
	}
	return h;
}

/*
 * The few-rows kernel is batch-invariant: with bf16 and i8 weights, every
 * row of an 8-row product has exactly the bits of that row multiplied
 * alone, and each output of a three-weight linear_many (an odd feature
 * count, so a warp's features straddle two weights) has exactly the bits
 * of its own linear.  A decode step's ids then do not depend on which
 * other answers share the batch.
 */
static void
test_gemv_batch_invariance(void)
{
	static const groma_dtype types[] = {GROMA_BF16, GROMA_I8};
	int64_t		m = 8,
				k = 512,
				n = 77;

	for (int t = 0; t < 2; t++)
	{
		groma_tensor x = rand_host(2, (int64_t[]) {m, k}),
					dx = to_dev(&x),
					y = like_host(&(groma_tensor) {.ndim = 2, .shape = {m, n}}),
					b = rand_host(1, (int64_t[]) {n}),
					y1 = like_host(&(groma_tensor) {.ndim = 2, .shape = {1, n}}),
					dy = to_dev(&y),
					dw[3],
					db = to_dev(&b),
					dparts[3],
					done = to_dev(&y1);
		const groma_tensor *wp[3] = {&dw[0], &dw[1], &dw[2]},
				   *bp[3] = {&db, NULL, &db};
		groma_tensor *yp[3] = {&dparts[0], &dparts[1], &dparts[2]};
		groma_status st = groma_ok();
		float	   *all = NULL;
		int			rows_same = 0,
					parts_same = 0;

		for (int i = 0; i < 3 && st.code == GROMA_OK; i++)
		{
			groma_tensor wf = rand_host(2, (int64_t[]) {n, k}),
						dwf = to_dev(&wf);

			dparts[i] = to_dev(&y);
			st = groma_arena_tensor(&dev, types[t], 2, wf.shape, &dw[i]);
			if (st.code == GROMA_OK)
				st = groma_convert(&dwf, &dw[i]);
		}
		if (st.code == GROMA_OK)
			st = groma_linear(&dx, &dw[0], &db, &dy);
		if (st.code == GROMA_OK && (all = device_floats(dy.data, m * n)) == NULL)
			st = groma_error(GROMA_ERR_DEVICE, "reading the 8-row product back");
		for (int64_t r = 0; r < m && st.code == GROMA_OK; r++)
		{
			groma_tensor row;
			float	   *one;

			st = groma_tensor_narrow(&dx, 0, r, 1, &row);
			if (st.code == GROMA_OK)
				st = groma_linear(&row, &dw[0], &db, &done);
			if (st.code == GROMA_OK && (one = device_floats(done.data, n)) != NULL)
			{
				rows_same += memcmp(one, all + r * n, (size_t) n * sizeof(float)) == 0;
				free(one);
			}
		}
		if (st.code == GROMA_OK)
			st = groma_linear_many(&dx, 3, wp, bp, yp);
		for (int i = 0; i < 3 && st.code == GROMA_OK; i++)
		{
			float	   *many = device_floats(dparts[i].data, m * n),
					   *own;

			st = groma_linear(&dx, &dw[i], bp[i], &dy);
			own = st.code == GROMA_OK ? device_floats(dy.data, m * n) : NULL;
			parts_same += many && own && memcmp(many, own, (size_t) (m * n) * sizeof(float)) == 0;
			free(many);
			free(own);
		}
		printf("%s - %-10s [8,%lld]x[%lld,%lld] %s w: %d of 8 rows as alone, %d of 3 linear_many outputs "
			   "as their own linear%s%s\n", st.code == GROMA_OK && rows_same == 8 && parts_same == 3 ? "ok" : "not ok",
			   "gemv", (long long) k, (long long) n, (long long) k, groma_dtype_name(types[t]), rows_same, parts_same,
			   st.code == GROMA_OK ? "" : ": ", st.code == GROMA_OK ? "" : st.message);
		st.code == GROMA_OK && rows_same == 8 && parts_same == 3 ? passed++ : failed++;
		free(all);
	}
}

/*
 * LLaMA's MLP input, silu(x·gateᵀ) ⊙ (x·upᵀ) in one call: on the GPU it
 * gives exactly the bits of linear_many then silu_mul (one GEMV launch
 * that leaves the up buffer alone for a few rows of bf16 or i8 weights;
 * the two steps, which write it, otherwise), and the CPU's result within
 * f32 (or the fallback's bf16) rounding.
 */
static void
test_linear_swiglu(void)
{
	static const struct
	{
		int64_t		m,
					k;
		groma_dtype dtype;
	}			cases[] = {{1, 256, GROMA_BF16}, {3, 256, GROMA_I8}, {8, 256, GROMA_BF16}, {5, 1040, GROMA_BF16},
	{2, 4112, GROMA_I8}, {12, 256, GROMA_BF16}, {2, 256, GROMA_F32}};
	int64_t		n = 77;

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
	{
		int64_t		m = cases[c].m,
					k = cases[c].k;
		groma_tensor x = rand_host(2, (int64_t[]) {m, k}),
					dx = to_dev(&x),
					y = like_host(&(groma_tensor) {.ndim = 2, .shape = {m, n}}),
					w[2],
					dw[2],
					gate = like_host(&y),
					up = like_host(&y),
					dgate = to_dev(&y),
					dup = to_dev(&y),
					dg2 = to_dev(&y),
					du2 = to_dev(&y);
		groma_status a = groma_ok(),
					g = groma_ok();
		float	   *fused = NULL,
				   *apart = NULL;
		char		name[64];
		bool		same,
					untouched = false,
					one_launch = m <= 8 && cases[c].dtype != GROMA_F32;
		uint64_t	launches = 0;

		for (int i = 0; i < 2; i++)
		{
			groma_tensor wf = rand_host(2, (int64_t[]) {n, k}),
						dwf = to_dev(&wf);

			as_dtype(&wf, &dwf, cases[c].dtype, &w[i], &dw[i], &a, &g);
		}
		if (a.code == GROMA_OK)
			a = groma_linear_swiglu(&x, &w[0], &w[1], &gate, &up);
		groma_fill(&dup, NAN);	/* the one-launch path leaves up alone */
		launches = groma_cuda_launch_count();
		if (g.code == GROMA_OK)
			g = groma_linear_swiglu(&dx, &dw[0], &dw[1], &dgate, &dup);
		launches = groma_cuda_launch_count() - launches;
		snprintf(name, sizeof(name), "[%lld,%lld] x 2 [%lld,%lld] %s w", (long long) m, (long long) k, (long long) n,
				 (long long) k, groma_dtype_name(cases[c].dtype));
		compare("swiglu", name, &gate, &dgate, m > 8 && cases[c].dtype != GROMA_F32 ? 1e-4 : 1e-10, a, g);
		/* the same on the GPU in two steps: the same bits */
		if (g.code == GROMA_OK)
			g = groma_linear_many(&dx, 2, (const groma_tensor *[]) {&dw[0], &dw[1]}, NULL,
								  (groma_tensor *[]) {&dg2, &du2});
		if (g.code == GROMA_OK)
			g = groma_silu_mul(&dg2, &du2, &dg2);
		if (g.code == GROMA_OK)
		{
			float	   *u = device_floats(dup.data, m * n);

			fused = device_floats(dgate.data, m * n);
			apart = device_floats(dg2.data, m * n);
			untouched = u != NULL;
			for (int64_t i = 0; u && i < m * n; i++)
				untouched = untouched && isnan(u[i]);
			free(u);
		}
		same = fused && apart && memcmp(fused, apart, (size_t) (m * n) * sizeof(float)) == 0 &&
			(one_launch ? launches == 1 && untouched : !untouched);
		printf("%s - %-10s %s: the bits of linear_many then silu_mul, in %llu launch%s\n", same ? "ok" : "not ok",
			   "swiglu", name, (unsigned long long) launches, launches == 1 ? "" : "es");
		same ? passed++ : failed++;
		free(fused);
		free(apart);
	}
}

/*
 * Several weights on one input (q, k and v; gate and up): each output
 * equals its own linear's on the CPU, on the one-launch GEMV (bf16 and i8
 * weights, few rows), on the per-weight fallback (f32) and on the GEMMs
 * that share one 16-bit copy of x (bf16, f16 and i8 weights, more rows),
 * with and without biases (the second part's left out).
 */
static void
test_linear_many(void)
{
	static const struct
	{
		int64_t		m;
		int			count;
		groma_dtype dtype;
		bool		bias;
	}			cases[] = {{1, 3, GROMA_BF16, false}, {3, 2, GROMA_I8, true}, {2, 3, GROMA_F32, true},
				   {6, 2, GROMA_BF16, false}, {7, 3, GROMA_F16, true}, {12, 2, GROMA_I8, false}, {9, 3, GROMA_BF16, true}};
	int64_t		k = 256,
				n = 96;

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
	{
		int64_t		m = cases[c].m;
		int			count = cases[c].count;
		groma_tensor x = rand_host(2, (int64_t[]) {m, k}),
					dx = to_dev(&x),
					w[3],
					dw[3],
					b[3],
					db[3],
					y[3],
					dy[3];
		const groma_tensor *wp[3],
				   *dwp[3],
				   *bp[3],
				   *dbp[3];
		groma_tensor *yp[3],
				   *dyp[3];
		groma_status a = groma_ok(),
					g = groma_ok();
		char		name[64];

		for (int i = 0; i < count; i++)
		{
			groma_tensor wf = rand_host(2, (int64_t[]) {n, k}),
						dwf = to_dev(&wf);

			y[i] = like_host(&(groma_tensor) {.ndim = 2, .shape = {m, n}});
			dy[i] = to_dev(&y[i]);
			as_dtype(&wf, &dwf, cases[c].dtype, &w[i], &dw[i], &a, &g);
			b[i] = rand_host(1, (int64_t[]) {n});
			db[i] = to_dev(&b[i]);
			wp[i] = &w[i];
			dwp[i] = &dw[i];
			bp[i] = i == 1 ? NULL : &b[i];	/* one part without its bias */
			dbp[i] = i == 1 ? NULL : &db[i];
			yp[i] = &y[i];
			dyp[i] = &dy[i];
		}
		if (a.code == GROMA_OK)
			a = groma_linear_many(&x, count, wp, cases[c].bias ? bp : NULL, yp);
		if (g.code == GROMA_OK)
			g = groma_linear_many(&dx, count, dwp, cases[c].bias ? dbp : NULL, dyp);
		for (int i = 0; i < count; i++)
		{
			snprintf(name, sizeof(name), "[%lld,%lld] %d x %s w%s, out %d", (long long) m, (long long) k, count,
					 groma_dtype_name(cases[c].dtype), cases[c].bias ? " +b" : "", i);
			compare("lin_many", name, &y[i], &dy[i], m <= 3 || cases[c].dtype == GROMA_F32 ? 1e-10 : 1e-4, a, g);
		}
	}
}

/*
 * The proposer's query selection: top-k of every row gives the CPU's
 * indices exactly (values on a coarse grid, so ties are many, and a NaN),
 * and the reference boxes and sine inputs of the chosen proposals match.
 */
static void
test_proposal_queries(void)
{
	int64_t		batch = 3,
				n = 1024,
				k = 300,
				d = 64;
	groma_tensor x = rand_host(2, (int64_t[]) {batch, n}),
				coords = rand_host(3, (int64_t[]) {batch, n, 4}),
				ref = like_host(&(groma_tensor) {.ndim = 3, .shape = {batch, k, 4}}),
				pos = like_host(&(groma_tensor) {.ndim = 3, .shape = {batch, k, 2 * d}}),
				idx,
				didx;
	groma_tensor dcoords,
				dref,
				dpos,
				dx;
	groma_status a,
				g;

	for (int64_t i = 0; i < batch * n; i++)
		((float *) x.data)[i] = roundf(((float *) x.data)[i] * 20.0f);	/* 41 levels: ties everywhere */
	((float *) x.data)[n + 7] = NAN;
	dx = to_dev(&x);
	dcoords = to_dev(&coords);
	dref = to_dev(&ref);
	dpos = to_dev(&pos);
	a = groma_arena_tensor(&host, GROMA_I32, 2, (int64_t[]) {batch, k}, &idx);
	g = groma_arena_tensor(&dev, GROMA_I32, 2, (int64_t[]) {batch, k}, &didx);
	if (a.code == GROMA_OK)
		a = groma_topk_rows(&x, (int) k, &idx);
	if (g.code == GROMA_OK)
		g = groma_topk_rows(&dx, (int) k, &didx);
	if (a.code == GROMA_OK && g.code == GROMA_OK && groma_cuda_ops.synchronize().code == GROMA_OK)
	{
		int32_t    *back = malloc((size_t) (batch * k) * sizeof(int32_t));
		bool		same;

		groma_cuda_ops.to_host(back, didx.data, (size_t) (batch * k) * sizeof(int32_t));
		same = memcmp(back, idx.data, (size_t) (batch * k) * sizeof(int32_t)) == 0 && back[k] == 7;
		printf("%s - %-10s [3,1024] k 300, ties and a NaN: the CPU's indices\n", same ? "ok" : "not ok", "topk_rows");
		same ? passed++ : failed++;
		free(back);
	}
	else
	{
		printf("not ok - topk_rows: cpu %s / gpu %s\n", a.message, g.message);
		failed++;
		return;
	}
	compare("proposal", "queries ref [3,300,4]", &ref, &dref, 1e-12, groma_proposal_queries(&coords, &idx, &ref, &pos),
			groma_proposal_queries(&dcoords, &didx, &dref, &dpos));
	compare("proposal", "queries pos [3,300,128]", &pos, &dpos, 1e-12, groma_ok(), groma_ok());
}

/* matmul with transposes and a permuted head view. */
static void
test_matmul(void)
{
	for (int ta = 0; ta < 2; ta++)
		for (int tb = 0; tb < 2; tb++)
		{
			groma_tensor a = rand_host(3, ta ? (int64_t[]) {3, 40, 30} : (int64_t[]) {3, 30, 40}),
						b = rand_host(3, tb ? (int64_t[]) {3, 50, 40} : (int64_t[]) {3, 40, 50}),
						c = like_host(&(groma_tensor) {.ndim = 3, .shape = {3, 30, 50}});
			groma_tensor da = to_dev(&a),
						db = to_dev(&b),
						dc = to_dev(&c);
			char		name[64];
			groma_status x = groma_matmul(&a, ta, &b, tb, 0.5f, &c);
			groma_status y = groma_matmul(&da, ta, &db, tb, 0.5f, &dc);

			snprintf(name, sizeof(name), "3x30x40x50 ta%d tb%d", ta, tb);
			compare("matmul", name, &c, &dc, 1e-10, x, y);
		}
}

/* activations, add/mul with broadcast, scale and a permuted copy. */
static void
test_elementwise(void)
{
	static const char *names[] = {"relu", "gelu", "silu", "sigmoid"};
	groma_status (*fns[]) (const groma_tensor *, groma_tensor *) = {groma_relu, groma_gelu, groma_silu, groma_sigmoid};

	for (int f = 0; f < 4; f++)
	{
		groma_tensor x = rand_host(2, (int64_t[]) {37, 1001}),
					y = like_host(&x);
		groma_tensor dx = to_dev(&x),
					dy = to_dev(&y);
		groma_status a = fns[f] (&x, &y);
		groma_status g = fns[f] (&dx, &dy);

		compare(names[f], "[37,1001]", &y, &dy, 1e-12, a, g);
	}
	{
		groma_tensor a = rand_host(3, (int64_t[]) {5, 7, 9}),
					b1 = rand_host(1, (int64_t[]) {9}),
					b2 = rand_host(2, (int64_t[]) {7, 1}),
					y = like_host(&a);
		groma_tensor da = to_dev(&a),
					db1 = to_dev(&b1),
					db2 = to_dev(&b2),
					dy = to_dev(&y);

		compare("add", "[5,7,9]+[9]", &y, &dy, 0, groma_add(&a, &b1, &y), groma_add(&da, &db1, &dy));
		compare("mul", "[5,7,9]*[7,1]", &y, &dy, 0, groma_mul(&a, &b2, &y), groma_mul(&da, &db2, &dy));
		compare("scale", "[5,7,9]*0.5+2", &y, &dy, 0, groma_scale(&a, 0.5f, 2.0f, &y), groma_scale(&da, 0.5f, 2.0f, &dy));
	}
	{
		/* four values a thread: a bias, a same-shape b, a trailing [3,16] block; then a view 4 bytes off alignment */
		groma_tensor a = rand_host(3, (int64_t[]) {6, 3, 16}),
					bias = rand_host(1, (int64_t[]) {16}),
					same = rand_host(3, (int64_t[]) {6, 3, 16}),
					block = rand_host(2, (int64_t[]) {3, 16}),
					y = like_host(&a),
					flat = rand_host(1, (int64_t[]) {13}),
					b4 = rand_host(1, (int64_t[]) {4}),
					y4 = like_host(&(groma_tensor) {.ndim = 2, .shape = {3, 4}});
		groma_tensor da = to_dev(&a),
					dbias = to_dev(&bias),
					dsame = to_dev(&same),
					dblock = to_dev(&block),
					dy = to_dev(&y),
					dflat = to_dev(&flat),
					db4 = to_dev(&b4),
					dy4 = to_dev(&y4),
					off,
					doff;

		compare("add", "[6,3,16]+[16] by 4", &y, &dy, 0, groma_add(&a, &bias, &y), groma_add(&da, &dbias, &dy));
		compare("add", "[6,3,16]+[6,3,16] by 4", &y, &dy, 0, groma_add(&a, &same, &y), groma_add(&da, &dsame, &dy));
		compare("mul", "[6,3,16]*[3,16] by 4", &y, &dy, 0, groma_mul(&a, &block, &y), groma_mul(&da, &dblock, &dy));
		groma_tensor_narrow(&flat, 0, 1, 12, &off);
		groma_tensor_reshape(&off, 2, (int64_t[]) {3, 4}, &off);
		groma_tensor_narrow(&dflat, 0, 1, 12, &doff);
		groma_tensor_reshape(&doff, 2, (int64_t[]) {3, 4}, &doff);
		compare("add", "[3,4]+[4] misaligned", &y4, &dy4, 0, groma_add(&off, &b4, &y4), groma_add(&doff, &db4, &dy4));
	}
	{
		groma_tensor a = rand_host(3, (int64_t[]) {6, 5, 4}),
					y = like_host(&(groma_tensor) {.ndim = 3, .shape = {4, 5, 6}});
		groma_tensor da = to_dev(&a),
					dy = to_dev(&y),
					pa,
					pda;

		groma_tensor_permute(&a, (int[]) {2, 1, 0}, &pa);
		groma_tensor_permute(&da, (int[]) {2, 1, 0}, &pda);
		compare("copy", "permute(2,1,0) [6,5,4]", &y, &dy, 0, groma_copy(&pa, &y), groma_copy(&pda, &dy));
	}
	{
		/* the last dimension contiguous on both sides: four values a thread; then 4 bytes off alignment */
		groma_tensor a = rand_host(3, (int64_t[]) {4, 6, 8}),
					y = like_host(&(groma_tensor) {.ndim = 3, .shape = {6, 4, 8}}),
					y7 = like_host(&(groma_tensor) {.ndim = 3, .shape = {6, 4, 4}});
		groma_tensor da = to_dev(&a),
					dy = to_dev(&y),
					dy7 = to_dev(&y7),
					pa,
					pda;

		groma_tensor_permute(&a, (int[]) {1, 0, 2}, &pa);
		groma_tensor_permute(&da, (int[]) {1, 0, 2}, &pda);
		compare("copy", "permute(1,0,2) [4,6,8] by 4", &y, &dy, 0, groma_copy(&pa, &y), groma_copy(&pda, &dy));
		groma_tensor_narrow(&pa, 2, 1, 4, &pa);
		groma_tensor_narrow(&pda, 2, 1, 4, &pda);
		compare("copy", "[6,4,4] view misaligned", &y7, &dy7, 0, groma_copy(&pa, &y7), groma_copy(&pda, &dy7));
	}
	for (int half = 0; half < 2; half++)
	{
		/*
		 * 16-bit views of the same type (a KV cache moving into a larger
		 * block): eight values a thread when the last dimension allows, else
		 * element by element (narrowed by one: 2 bytes off alignment)
		 */
		groma_dtype type = half ? GROMA_F16 : GROMA_BF16;
		const char *name = half ? "f16" : "bf16";
		groma_tensor a = rand_host(3, (int64_t[]) {4, 6, 16});
		groma_tensor da = to_dev(&a),
					h = converted(&a, &host, type),
					dh = converted(&da, &dev, type),
					y,
					dy,
					y15,
					dy15,
					ph,
					pdh;
		char		label[64];

		groma_arena_tensor(&host, type, 3, (int64_t[]) {6, 4, 16}, &y);
		groma_arena_tensor(&dev, type, 3, (int64_t[]) {6, 4, 16}, &dy);
		groma_arena_tensor(&host, type, 3, (int64_t[]) {6, 4, 15}, &y15);
		groma_arena_tensor(&dev, type, 3, (int64_t[]) {6, 4, 15}, &dy15);
		groma_tensor_permute(&h, (int[]) {1, 0, 2}, &ph);
		groma_tensor_permute(&dh, (int[]) {1, 0, 2}, &pdh);
		snprintf(label, sizeof(label), "%s permute(1,0,2) by 8", name);
		compare_widened("copy", label, &y, &dy, 0, groma_copy(&ph, &y), groma_copy(&pdh, &dy));
		groma_tensor_narrow(&ph, 2, 1, 15, &ph);
		groma_tensor_narrow(&pdh, 2, 1, 15, &pdh);
		snprintf(label, sizeof(label), "%s [6,4,15] view misaligned", name);
		compare_widened("copy", label, &y15, &dy15, 0, groma_copy(&ph, &y15), groma_copy(&pdh, &dy15));
	}
	{
		/* contiguous to contiguous: one device-to-device copy */
		groma_tensor a = rand_host(2, (int64_t[]) {1000, 33}),
					y = like_host(&a);
		groma_tensor da = to_dev(&a),
					dy = to_dev(&y);

		compare("copy", "contiguous [1000,33]", &y, &dy, 0, groma_copy(&a, &y), groma_copy(&da, &dy));
	}
}

/*
 * Runs row r of a decode_rows batch alone on the GPU (its q as before RoPE,
 * its new k and v, its position) over the caches kc and vc; true when its
 * ctx has the bits it got in the batch (batched [n, width], on the host).
 */
static bool
row_alone_same(int64_t r, const groma_tensor *q_before, const groma_tensor *dk, const groma_tensor *dv,
			   const groma_tensor *dpos, int64_t heads, groma_tensor *kc, groma_tensor *vc, const float *batched)
{
	int64_t		width = q_before->shape[1];
	groma_tensor qr,
				dq1,
				dk1,
				dv1,
				dpos1,
				ctx1 = like_host(&(groma_tensor) {.ndim = 2, .shape = {1, width}}),
				dctx1 = to_dev(&ctx1);
	float	   *alone;
	bool		same;

	groma_tensor_narrow(q_before, 0, r, 1, &qr);
	dq1 = to_dev(&qr);
	groma_tensor_narrow(dk, 0, r, 1, &dk1);
	groma_tensor_narrow(dv, 0, r, 1, &dv1);
	groma_tensor_narrow(dpos, 0, r, 1, &dpos1);
	if (groma_attention_decode_rows(&dq1, &dk1, &dv1, heads, &kc, &vc, &dpos1, 10000.0f, 0.125f, &dev_scratch,
									&dctx1).code != GROMA_OK)
		return false;
	alone = device_floats(dctx1.data, width);
	same = alone && memcmp(alone, batched + r * width, (size_t) width * sizeof(float)) == 0;
	free(alone);
	return same;
}

/*
 * attention_decode_rows on the GPU equals the CPU's per-row RoPE, cache
 * writes and attention: n sequences with caches of different sizes and
 * positions (the first and the last position of a cache among them), 70
 * rows crossing the kernel's 64 per launch; compares ctx, the rotated q and
 * every cache.  With a 16-bit type the caches hold it (each side converts
 * the same random values; the new rows are rounded where they are
 * written), compared widened; 1e-6 allows a rounding of the rotated key to
 * land on the other side of a 16-bit step.
 */
static void
decode_rows_case(int64_t n, int64_t heads, int64_t dh, groma_dtype type)
{
	int64_t		width = heads * dh;
	int32_t		positions[80];
	groma_tensor q = rand_host(2, (int64_t[]) {n, width}),
				k = rand_host(2, (int64_t[]) {n, width}),
				v = rand_host(2, (int64_t[]) {n, width}),
				ctx = like_host(&q);
	groma_tensor dq = to_dev(&q),
				dk = to_dev(&k),
				dv = to_dev(&v),
				dctx = to_dev(&ctx),
				q_before = like_host(&q);	/* q as it was before RoPE rotated it in place */
	groma_tensor kc[80],
				vc[80],
				dkc[80],
				dvc[80];
	groma_tensor *kp[80],
			   *vp[80],
			   *dkp[80],
			   *dvp[80];
	groma_status a,
				g;
	groma_arena cpu_scratch;
	groma_tensor pos,
				dpos;
	char		name[48];

	double		tol = type == GROMA_F32 ? 1e-11 : 1e-6;

	groma_arena_init(&cpu_scratch, (size_t) 16 << 20);
	for (int64_t b = 0; b < n; b++)
	{
		/* row 1 over 2048 positions (33 key splits of 64, as many as its cache needs) */
		int64_t		cap = b == 1 ? 2100 : 3 + (b * 37) % 290;

		kc[b] = rand_host(4, (int64_t[]) {1, heads, cap, dh});
		vc[b] = rand_host(4, (int64_t[]) {1, heads, cap, dh});
		dkc[b] = to_dev(&kc[b]);
		dvc[b] = to_dev(&vc[b]);
		if (type != GROMA_F32)
		{
			kc[b] = converted(&kc[b], &host, type);
			vc[b] = converted(&vc[b], &host, type);
			dkc[b] = converted(&dkc[b], &dev, type);
			dvc[b] = converted(&dvc[b], &dev, type);
		}
		kp[b] = &kc[b];
		vp[b] = &vc[b];
		dkp[b] = &dkc[b];
		dvp[b] = &dvc[b];
		positions[b] = (int32_t) (b % 3 == 0 ? 0 : b % 3 == 1 ? cap - 1 : cap / 2);
	}
	pos = (groma_tensor) {.data = positions, .dtype = GROMA_I32, .ndim = 1, .shape = {n}, .stride = {1}};
	dpos = pos;
	dpos.device = GROMA_DEVICE_CUDA;
	dpos.data = groma_cuda_ops.alloc(sizeof(positions));
	groma_upload((const float *) positions, &dpos);
	memcpy(q_before.data, q.data, groma_tensor_nbytes(&q));
	a = groma_attention_decode_rows(&q, &k, &v, heads, kp, vp, &pos, 10000.0f, 0.125f, &cpu_scratch, &ctx);
	g = groma_attention_decode_rows(&dq, &dk, &dv, heads, dkp, dvp, &dpos, 10000.0f, 0.125f, &dev_scratch,
									&dctx);
	snprintf(name, sizeof(name), "%lld rows of %lldx%lld, %s", (long long) n, (long long) heads, (long long) dh,
			 groma_dtype_name(type));
	compare("decode_rows ctx", name, &ctx, &dctx, tol, a, g);
	compare("decode_rows q", name, &q, &dq, 1e-11, a, g);
	for (int64_t b = 0; b < n; b += n / 4 + 1)
	{
		compare_widened("decode_rows k cache", name, &kc[b], &dkc[b], tol, a, g);
		compare_widened("decode_rows v cache", name, &vc[b], &dvc[b], tol, a, g);
	}
	{
		/* the first and the last row alone give the bits they got among the others (the key splits are per cache) */
		float	   *batched = device_floats(dctx.data, n * width);
		int			same = 0;

		for (int64_t r = 0; r < n && batched; r += n - 1 > 0 ? n - 1 : 1)
			same += row_alone_same(r, &q_before, &dk, &dv, &dpos, heads, dkp[r], dvp[r], batched);
		printf("%s - decode_rows %-28s rows alone give the bits they got in the batch (%d of %d)\n",
			   same == (n > 1 ? 2 : 1) ? "ok" : "not ok", name, same, n > 1 ? 2 : 1);
		same == (n > 1 ? 2 : 1) ? passed++ : failed++;
		if (batched)
		{
			/*
			 * the last row's cache copied into a block 2100 positions larger
			 * (a KV cache grown by the server) gives the bits it got in place
			 */
			int64_t		r = n - 1,
						cap = dkc[r].shape[2];
			groma_tensor bk,
						bv,
						head_k,
						head_v;
			bool		same_bits;
			groma_status st;

			st = groma_arena_tensor(&dev, type, 4, (int64_t[]) {1, heads, cap + 2100, dh}, &bk);
			if (st.code == GROMA_OK)
				st = groma_arena_tensor(&dev, type, 4, (int64_t[]) {1, heads, cap + 2100, dh}, &bv);
			if (st.code == GROMA_OK)
				st = groma_tensor_narrow(&bk, 2, 0, cap, &head_k);
			if (st.code == GROMA_OK)
				st = groma_tensor_narrow(&bv, 2, 0, cap, &head_v);
			if (st.code == GROMA_OK)
				st = groma_copy(&dkc[r], &head_k);
			if (st.code == GROMA_OK)
				st = groma_copy(&dvc[r], &head_v);
			same_bits = st.code == GROMA_OK && row_alone_same(r, &q_before, &dk, &dv, &dpos, heads, &bk, &bv, batched);
			printf("%s - decode_rows %-28s a row's cache in a larger block gives the same bits (cap %lld + 2100)\n",
				   same_bits ? "ok" : "not ok", name, (long long) cap);
			same_bits ? passed++ : failed++;
		}
		if (batched)
		{
			/* scratch for one row's partial results only (row 1's 33 splits): launches of fewer rows, the same bits */
			groma_arena tight = dev_scratch;
			groma_tensor dq2 = to_dev(&q_before);
			float	   *again = NULL;
			groma_status st;

			tight.size = tight.used + (size_t) (heads * 33 * (dh + 2)) * sizeof(float) + GROMA_ARENA_ALIGN;
			st = groma_attention_decode_rows(&dq2, &dk, &dv, heads, dkp, dvp, &dpos, 10000.0f, 0.125f, &tight,
											 &dctx);
			if (st.code == GROMA_OK)
				again = device_floats(dctx.data, n * width);
			printf("%s - decode_rows %-28s room for one row's splits: the batch's bits, a row a launch\n",
				   again && memcmp(again, batched, (size_t) (n * width) * sizeof(float)) == 0 ? "ok" : "not ok", name);
			again && memcmp(again, batched, (size_t) (n * width) * sizeof(float)) == 0 ? passed++ : failed++;
			free(again);
		}
		free(batched);
	}
	{
		/* no scratch left for the key splits' partial results: one block per head, the same answer */
		groma_arena full = dev_scratch;
		groma_tensor dq2 = to_dev(&q_before);
		char		label[96];

		full.size = full.used;
		groma_fill(&dctx, NAN);
		snprintf(label, sizeof(label), "%s, no room to split", name);
		compare("decode_rows ctx", label, &ctx, &dctx, tol, a,
				groma_attention_decode_rows(&dq2, &dk, &dv, heads, dkp, dvp, &dpos, 10000.0f, 0.125f, &full, &dctx));
	}
	{
		/*
		 * a position at its cache's end: the CPU refuses it, the GPU (which
		 * cannot read the positions on the host) leaves that row's caches
		 * alone instead of writing past them; the other rows run as before
		 */
		positions[0] = (int32_t) kc[0].shape[2];
		groma_upload((const float *) positions, &dpos);
		a = groma_attention_decode_rows(&q, &k, &v, heads, kp, vp, &pos, 10000.0f, 0.125f, &cpu_scratch, &ctx);
		g = groma_attention_decode_rows(&dq, &dk, &dv, heads, dkp, dvp, &dpos, 10000.0f, 0.125f, &dev_scratch,
										&dctx);
		if (g.code == GROMA_OK)
			g = groma_synchronize(GROMA_DEVICE_CUDA);
		printf("%s - %-10s %-28s a position outside its cache: CPU %s, GPU runs and leaves the cache\n",
			   a.code == GROMA_ERR_LIMIT && g.code == GROMA_OK ? "ok" : "not ok", "decode_rows", name,
			   a.code == GROMA_ERR_LIMIT ? "refuses" : "accepts");
		a.code == GROMA_ERR_LIMIT && g.code == GROMA_OK ? passed++ : failed++;
		compare_widened("decode_rows k cache untouched", name, &kc[0], &dkc[0], tol, groma_ok(), g);
		{
			/* and that row's ctx is zeros, split or not (no scratch room) */
			groma_arena full = dev_scratch;
			int			zero_rows = 0;

			full.size = full.used;
			for (int room = 0; room < 2 && g.code == GROMA_OK; room++)
			{
				float	   *row0;

				groma_fill(&dctx, NAN);
				g = groma_attention_decode_rows(&dq, &dk, &dv, heads, dkp, dvp, &dpos, 10000.0f, 0.125f,
												room ? &dev_scratch : &full, &dctx);
				row0 = g.code == GROMA_OK ? device_floats(dctx.data, width) : NULL;
				for (int64_t i = 0; row0 && i < width && row0[i] == 0.0f; i++)
					zero_rows += i == width - 1;
				free(row0);
			}
			printf("%s - decode_rows %-28s that row's ctx is zeros, with key splits and without (%d of 2)\n",
				   zero_rows == 2 ? "ok" : "not ok", name, zero_rows);
			zero_rows == 2 ? passed++ : failed++;
		}
	}
	groma_cuda_ops.free(dpos.data);
	groma_arena_free(&cpu_scratch);
}

/*
 * argmax_rows on the GPU picks what the CPU op picks: random rows at a
 * decode step's widths (the LM head's 32000 and more, the extra head's
 * few), plus rows with ties and NaNs placed late, where a reduction that
 * lost the lowest index or skipped NaN would differ; each shape alone and
 * with a second matrix of 17 columns beside it (the two heads of a step).
 */
static void
argmax_cases(void)
{
	static const int64_t shapes[][2] = {{1, 32000}, {8, 32000}, {64, 32017}, {5, 7}, {3, 1}};
	char		name[48];

	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
		for (int pair = 0; pair < 2; pair++)
		{
			int64_t		r = shapes[s][0],
						n = shapes[s][1];
			groma_tensor x = rand_host(2, (int64_t[]) {r, n}),
						extra = rand_host(2, (int64_t[]) {r, 17}),
						ci,
						gi;
			float	   *h = x.data;
			int32_t    *back = malloc(sizeof(int32_t) * (size_t) r);
			groma_tensor dx,
						dextra;
			groma_status a,
						g;
			bool		same = true;

			if (n > 4 && r > 2)
			{
				h[n - 1] = h[n - 3] = 50.0f;	/* row 0: a tie late in the row */
				h[n + n - 2] = NAN;		/* row 1: NaNs, the first one wins */
				h[n + n - 1] = NAN;
				h[2 * n + 1] = INFINITY;	/* row 2: +inf */
				((float *) extra.data)[3] = 50.0f;	/* row 0: ties a's 50, a's wins */
				((float *) extra.data)[17 + 2] = NAN;	/* row 1: after a's NaNs */
			}
			if (r > 3)
				((float *) extra.data)[3 * 17 + 16] = 1e30f;	/* row 3: b's largest wins */
			dx = to_dev(&x);
			dextra = to_dev(&extra);
			a = groma_arena_tensor(&host, GROMA_I32, 1, (int64_t[]) {r}, &ci);
			g = groma_arena_tensor(&dev, GROMA_I32, 1, (int64_t[]) {r}, &gi);
			if (a.code == GROMA_OK)
				a = groma_argmax_rows(&x, pair ? &extra : NULL, &ci);
			if (g.code == GROMA_OK)
				g = groma_argmax_rows(&dx, pair ? &dextra : NULL, &gi);
			if (g.code == GROMA_OK)
				g = groma_download(&gi, (float *) back);
			same = a.code == GROMA_OK && g.code == GROMA_OK &&
				memcmp(back, ci.data, sizeof(int32_t) * (size_t) r) == 0;
			snprintf(name, sizeof(name), "[%lld,%lld]%s", (long long) r, (long long) n, pair ? " + [.,17]" : "");
			printf("%s - %-10s %-28s same index in every row%s%s\n", same ? "ok" : "not ok", "argmax_rows", name,
				   g.code == GROMA_OK ? "" : ": ", g.code == GROMA_OK ? "" : g.message);
			if (same)
				passed++;
			else
				failed++;
			free(back);
		}
}

/* softmax, LayerNorm, RMSNorm and RoPE. */
static void
test_rowwise(void)
{
	static const int64_t rows[][2] = {{7, 1000}, {129, 33}, {3, 4096}};

	for (size_t s = 0; s < 3; s++)
	{
		int64_t		r = rows[s][0],
					d = rows[s][1];
		groma_tensor x = rand_host(2, (int64_t[]) {r, d}),
					w = rand_host(1, (int64_t[]) {d}),
					b = rand_host(1, (int64_t[]) {d}),
					y = like_host(&x);
		groma_tensor dx = to_dev(&x),
					dw = to_dev(&w),
					db = to_dev(&b),
					dy = to_dev(&y);
		char		name[32];

		snprintf(name, sizeof(name), "[%lld,%lld]", (long long) r, (long long) d);
		compare("softmax", name, &y, &dy, 1e-11, groma_softmax(&x, &y), groma_softmax(&dx, &dy));
		compare("layer_norm", name, &y, &dy, 1e-11, groma_layer_norm(&x, &w, &b, 1e-5f, &y),
				groma_layer_norm(&dx, &dw, &db, 1e-5f, &dy));
		compare("rms_norm", name, &y, &dy, 1e-11, groma_rms_norm(&x, &w, 1e-5f, &y), groma_rms_norm(&dx, &dw, 1e-5f, &dy));
		{
			/* the fused residual add and norm: both outputs (the sum in x, the norm in y) */
			groma_tensor delta = rand_host(2, (int64_t[]) {r, d});
			groma_tensor ddelta = to_dev(&delta);

			compare("add_rms_norm", name, &y, &dy, 1e-11, groma_add_rms_norm(&x, &delta, &w, 1e-5f, &y),
					groma_add_rms_norm(&dx, &ddelta, &dw, 1e-5f, &dy));
			compare("add_rms_norm sum", name, &x, &dx, 1e-11, groma_ok(), groma_ok());
			compare("silu_mul", name, &y, &dy, 1e-11, groma_silu_mul(&x, &delta, &y), groma_silu_mul(&dx, &ddelta, &dy));
		}
	}
	argmax_cases();
	decode_rows_case(5, 4, 64, GROMA_F32);
	decode_rows_case(70, 2, 128, GROMA_F32);
	decode_rows_case(5, 4, 64, GROMA_BF16);
	decode_rows_case(70, 2, 128, GROMA_BF16);
	decode_rows_case(9, 2, 32, GROMA_F16);
	{
		groma_tensor x = rand_host(4, (int64_t[]) {2, 9, 4, 64});
		groma_tensor dx = to_dev(&x);

		compare("rope", "[2,9,4,64] from 17", &x, &dx, 1e-11, groma_rope(&x, NULL, 17, 10000.0f),
				groma_rope(&dx, NULL, 17, 10000.0f));
	}
	{
		/* LLaMA's geometry late in a long prompt: large angles */
		groma_tensor x = rand_host(4, (int64_t[]) {1, 3, 32, 128});
		groma_tensor dx = to_dev(&x);

		compare("rope", "[1,3,32,128] from 3000", &x, &dx, 1e-11, groma_rope(&x, NULL, 3000, 10000.0f),
				groma_rope(&dx, NULL, 3000, 10000.0f));
	}
	{
		/* the KV-cache store: [T, H·Dh] rows, viewed [1, H, T, Dh], into layer 1, positions 10..14 of [L, H, cap, Dh] */
		groma_tensor cache = like_host(&(groma_tensor) {.ndim = 4, .shape = {2, 4, 64, 32}}),
					src = rand_host(2, (int64_t[]) {5, 4 * 32});
		groma_tensor dcache = to_dev(&cache),
					dsrc = to_dev(&src);
		groma_tensor dst,
					ddst,
					view,
					dview;

		groma_tensor_narrow(&cache, 0, 1, 1, &dst);
		groma_tensor_narrow(&dst, 2, 10, 5, &dst);
		groma_tensor_narrow(&dcache, 0, 1, 1, &ddst);
		groma_tensor_narrow(&ddst, 2, 10, 5, &ddst);
		groma_tensor_reshape(&src, 4, (int64_t[]) {1, 5, 4, 32}, &view);
		groma_tensor_permute(&view, (int[]) {0, 2, 1, 3}, &view);
		groma_tensor_reshape(&dsrc, 4, (int64_t[]) {1, 5, 4, 32}, &dview);
		groma_tensor_permute(&dview, (int[]) {0, 2, 1, 3}, &dview);
		compare("copy", "KV-cache store at 10", &cache, &dcache, 0.0, groma_copy(&view, &dst), groma_copy(&dview, &ddst));
	}
}

/* The attention kernel under test, as printed: "attention" (chosen), "attn/query", "attn/tiled" or "attn/whole" (forced). */
static const char *attention_label = "attention";

/* attention: full, causal, and a KV-cache step, with head views. */
static void
test_attention(groma_arena *scratch)
{
	static const int64_t shapes[][4] = {{1, 4, 130, 32}, {2, 3, 17, 128}, {1, 2, 300, 64}};

	for (size_t s = 0; s < 3; s++)
		for (int causal = 0; causal < 2; causal++)
		{
			groma_tensor q = rand_host(4, shapes[s]),
						k = rand_host(4, shapes[s]),
						v = rand_host(4, shapes[s]),
						o = like_host(&q);
			groma_tensor dq = to_dev(&q),
						dk = to_dev(&k),
						dv = to_dev(&v),
						dout = to_dev(&o);
			float		scale = 1.0f / sqrtf((float) shapes[s][3]);
			char		name[64];

			snprintf(name, sizeof(name), "[%lld,%lld,%lld,%lld]%s", (long long) shapes[s][0], (long long) shapes[s][1],
					 (long long) shapes[s][2], (long long) shapes[s][3], causal ? " causal" : "");
			compare(attention_label, name, &o, &dout, 1e-10, groma_attention(&q, &k, &v, scale, causal, 0, scratch, &o),
					groma_attention(&dq, &dk, &dv, scale, causal, 0, &dev_scratch, &dout));
		}
	/*
	 * decode steps (one query): against a 300-position cache, 2000 keys, 9000
	 * keys with head dimension 128 (36 splits of 256), a query at 700 of 2000
	 * cached keys (the causal limit, not the cache, sizes the splits), and a
	 * head dimension that is not a multiple of 32 (lanes without a slice)
	 */
	static const struct
	{
		int64_t		keys,
					dim,
					at;
		const char *name;
	}			steps[] = {
		{300, 64, 299, "decode step at 299"}, {2000, 64, 1999, "decode step at 1999"},
		{9000, 128, 8999, "decode step at 8999, D 128"}, {2000, 64, 700, "decode at 700 of 2000"},
		{300, 40, 299, "decode step at 299, D 40"},
	};

	for (size_t c = 0; c < sizeof(steps) / sizeof(steps[0]); c++)
	{
		if (sanitizer_run && steps[c].keys > 2000)
			continue;
		groma_tensor q = rand_host(4, (int64_t[]) {1, 4, 1, steps[c].dim}),
					k = rand_host(4, (int64_t[]) {1, 4, steps[c].keys, steps[c].dim}),
					v = rand_host(4, (int64_t[]) {1, 4, steps[c].keys, steps[c].dim}),
					o = like_host(&q);
		groma_tensor dq = to_dev(&q),
					dk = to_dev(&k),
					dv = to_dev(&v),
					dout = to_dev(&o);

		compare(attention_label, steps[c].name, &o, &dout, 1e-10,
				groma_attention(&q, &k, &v, 0.125f, true, steps[c].at, scratch, &o),
				groma_attention(&dq, &dk, &dv, 0.125f, true, steps[c].at, &dev_scratch, &dout));
	}
}

/* q, k, v and out as [B, H, T, D] views of random [B, T, H, D] buffers, on the host and on the device. */
typedef struct head_views
{
	groma_tensor q,
				k,
				v,
				o,
				dq,
				dk,
				dv,
				dout;
	groma_tensor ob,
				dob;			/* the out buffers, [B, T, H, D] */
} head_views;

/* Random head views of a [B, T, H, D] shape; see head_views. */
static head_views
make_head_views(const int64_t *shape)
{
	const int	perm[4] = {0, 2, 1, 3};
	groma_tensor qb = rand_host(4, shape),
				kb = rand_host(4, shape),
				vb = rand_host(4, shape);
	groma_tensor dqb = to_dev(&qb),
				dkb = to_dev(&kb),
				dvb = to_dev(&vb);
	head_views	h;

	h.ob = like_host(&qb);
	h.dob = to_dev(&h.ob);
	groma_tensor_permute(&qb, perm, &h.q);
	groma_tensor_permute(&kb, perm, &h.k);
	groma_tensor_permute(&vb, perm, &h.v);
	groma_tensor_permute(&h.ob, perm, &h.o);
	groma_tensor_permute(&dqb, perm, &h.dq);
	groma_tensor_permute(&dkb, perm, &h.dk);
	groma_tensor_permute(&dvb, perm, &h.dv);
	groma_tensor_permute(&h.dob, perm, &h.dout);
	return h;
}

/*
 * attention with 16-bit products (groma_attention_in, the GEMM path): bf16
 * and f16 against the CPU's f32 within their rounding, on contiguous
 * operands (causal with an offset) and on head views of [B, T, H, D]
 * buffers whose outputs interleave (staged, then copied).
 */
static void
test_attention_16bit(groma_arena *scratch)
{
	static const groma_dtype types[] = {GROMA_BF16, GROMA_F16};
	int64_t		shape[4] = {1, 3, 70, 64},
				q_shape[4] = {1, 3, 60, 64},
				view_shape[4] = {1, 65, 4, 32};	/* [B, T, H, D] */

	for (int t = 0; t < 2; t++)
	{
		groma_tensor q = rand_host(4, q_shape),
					k = rand_host(4, shape),
					v = rand_host(4, shape),
					o = like_host(&q);
		groma_tensor dq = to_dev(&q),
					dk = to_dev(&k),
					dv = to_dev(&v),
					dout = to_dev(&o);
		char		name[64];

		snprintf(name, sizeof(name), "60 queries at 10 of 70 keys, %s", groma_dtype_name(types[t]));
		groma_fill(&dout, NAN);
		compare("attn/16bit", name, &o, &dout, 1e-4,
				groma_attention_in(types[t], &q, &k, &v, 0.125f, true, 10, scratch, &o),
				groma_attention_in(types[t], &dq, &dk, &dv, 0.125f, true, 10, &dev_scratch, &dout));
	}
	{
		head_views	h = make_head_views(view_shape);

		groma_fill(&h.dob, NAN);
		compare("attn/16bit", "head views of [1,65,4,32], bf16", &h.ob, &h.dob, 1e-4,
				groma_attention_in(GROMA_BF16, &h.q, &h.k, &h.v, 0.17f, false, 0, scratch, &h.o),
				groma_attention_in(GROMA_BF16, &h.dq, &h.dk, &h.dv, 0.17f, false, 0, &dev_scratch, &h.dout));
	}
}

/* Views the first len positions of a [1, H, cap, D] cache as [1, H, len, D] (exits on failure). */
static groma_tensor
cache_prefix(const groma_tensor *cache, int64_t len)
{
	groma_tensor t;

	if (groma_tensor_narrow(cache, 2, 0, len, &t).code != GROMA_OK)
		exit(1);
	return t;
}

/*
 * Attention over a 16-bit KV cache (keys and values bf16 or f16, viewed
 * with the cache's capacity as stride) on every kernel, forced one by one,
 * against the CPU (which widens them): the f32 kernels within f32
 * rounding, the tensor-core ones within bf16's; the GEMM path with keys
 * already of its compute type multiplies them where they are and gives
 * the bits it gives for f32 copies holding the same values (which it
 * rounds, exactly); a decode query on the warp-per-key kernel; k and v of
 * different types are refused.
 */
static void
test_attention_kv16(groma_arena *scratch)
{
	static const struct
	{
		groma_cuda_attention_path path;
		const char *name;
		groma_dtype compute;
		double		tol;
	}			paths[] = {{GROMA_ATTENTION_AUTO, "auto", GROMA_BF16, 1e-4}, {GROMA_ATTENTION_GEMM, "gemm", GROMA_BF16, 1e-4},
	{GROMA_ATTENTION_FLASH, "flash", GROMA_BF16, 1e-4}, {GROMA_ATTENTION_TILED, "tiled", GROMA_BF16, 1e-10},
	{GROMA_ATTENTION_PER_QUERY, "per query", GROMA_BF16, 1e-10},
	{GROMA_ATTENTION_WARP_PER_KEY, "warp per key", GROMA_BF16, 1e-10}, {GROMA_ATTENTION_AUTO, "auto, f32", GROMA_F32, 1e-10}};
	groma_tensor q = rand_host(4, (int64_t[]) {1, 3, 60, 64}),
				kf = rand_host(4, (int64_t[]) {1, 3, 90, 64}),	/* a cache of 90 positions, 70 filled */
				vf = rand_host(4, (int64_t[]) {1, 3, 90, 64}),
				o = like_host(&q);
	groma_tensor dq = to_dev(&q),
				dkf = to_dev(&kf),
				dvf = to_dev(&vf),
				dout = to_dev(&o);
	groma_tensor k16 = converted(&kf, &host, GROMA_BF16),
				v16 = converted(&vf, &host, GROMA_BF16),
				dk16 = converted(&dkf, &dev, GROMA_BF16),
				dv16 = converted(&dvf, &dev, GROMA_BF16);
	groma_tensor k = cache_prefix(&k16, 70),
				v = cache_prefix(&v16, 70),
				dk = cache_prefix(&dk16, 70),
				dv = cache_prefix(&dv16, 70);
	groma_status a = groma_attention(&q, &k, &v, 0.125f, true, 10, scratch, &o),
				g;
	int64_t		n = groma_tensor_numel(&o);

	for (size_t p = 0; p < sizeof(paths) / sizeof(paths[0]); p++)
	{
		char		name[64];

		snprintf(name, sizeof(name), "bf16 cache, %s", paths[p].name);
		groma_cuda_attention_kernel(paths[p].path);
		groma_fill(&dout, NAN);
		g = groma_attention_in(paths[p].compute, &dq, &dk, &dv, 0.125f, true, 10, &dev_scratch, &dout);
		groma_cuda_attention_kernel(GROMA_ATTENTION_AUTO);
		compare("attn/kv16", name, &o, &dout, paths[p].tol, a, g);
	}
	{
		/* a full cache of 70 positions: both GEMMs see the same strides (cuBLAS may choose by them) */
		groma_tensor dk70 = converted(&dk, &dev, GROMA_BF16),
					dv70 = converted(&dv, &dev, GROMA_BF16),
					dkrv = converted(&dk70, &dev, GROMA_F32),
					dvrv = converted(&dv70, &dev, GROMA_F32);
		float	   *native = NULL,
				   *rounded = NULL;

		groma_cuda_attention_kernel(GROMA_ATTENTION_GEMM);
		groma_fill(&dout, NAN);
		g = groma_attention_in(GROMA_BF16, &dq, &dk70, &dv70, 0.125f, true, 10, &dev_scratch, &dout);
		if (g.code == GROMA_OK)
			native = device_floats(dout.data, n);
		groma_fill(&dout, NAN);
		if (g.code == GROMA_OK)
			g = groma_attention_in(GROMA_BF16, &dq, &dkrv, &dvrv, 0.125f, true, 10, &dev_scratch, &dout);
		if (g.code == GROMA_OK)
			rounded = device_floats(dout.data, n);
		groma_cuda_attention_kernel(GROMA_ATTENTION_AUTO);
		printf("%s - attn/kv16 the GEMM path reads a bf16 cache where it is: the bits of its f32 copy%s%s\n",
			   native && rounded && memcmp(native, rounded, (size_t) n * sizeof(float)) == 0 ? "ok" : "not ok",
			   g.code == GROMA_OK ? "" : ": ", g.code == GROMA_OK ? "" : g.message);
		native && rounded && memcmp(native, rounded, (size_t) n * sizeof(float)) == 0 ? passed++ : failed++;
		free(native);
		free(rounded);
	}
	{
		/* one decode query at position 69 (auto: the warp-per-key kernel) */
		groma_tensor q1 = rand_host(4, (int64_t[]) {1, 3, 1, 64}),
					o1 = like_host(&q1);
		groma_tensor dq1 = to_dev(&q1),
					do1 = to_dev(&o1);

		groma_fill(&do1, NAN);
		compare("attn/kv16", "bf16 cache, one query at 69", &o1, &do1, 1e-10,
				groma_attention_in(GROMA_BF16, &q1, &k, &v, 0.125f, true, 69, scratch, &o1),
				groma_attention_in(GROMA_BF16, &dq1, &dk, &dv, 0.125f, true, 69, &dev_scratch, &do1));
	}
	{
		groma_tensor kh = converted(&kf, &host, GROMA_F16),
					dkh = converted(&dkf, &dev, GROMA_F16),
					vh = converted(&vf, &host, GROMA_F16),
					dvh = converted(&dvf, &dev, GROMA_F16),
					mixed_cpu = cache_prefix(&kh, 70),
					mixed_gpu = cache_prefix(&dkh, 70),
					khv = cache_prefix(&kh, 70),
					vhv = cache_prefix(&vh, 70),
					dkhv = cache_prefix(&dkh, 70),
					dvhv = cache_prefix(&dvh, 70);

		/* an f16 cache under bf16 compute: the GEMM path steps aside and the flash kernel reads it (as bf16) */
		groma_fill(&dout, NAN);
		compare("attn/kv16", "f16 cache, bf16 compute", &o, &dout, 1e-4,
				groma_attention(&q, &khv, &vhv, 0.125f, true, 10, scratch, &o),
				groma_attention_in(GROMA_BF16, &dq, &dkhv, &dvhv, 0.125f, true, 10, &dev_scratch, &dout));
		a = groma_attention(&q, &mixed_cpu, &v, 0.125f, true, 10, scratch, &o);
		g = groma_attention_in(GROMA_BF16, &dq, &mixed_gpu, &dv, 0.125f, true, 10, &dev_scratch, &dout);
		printf("%s - attn/kv16 f16 keys with bf16 values are refused (CPU: %s; GPU: %s)\n",
			   a.code == GROMA_ERR_INVALID_ARGUMENT && g.code == GROMA_ERR_INVALID_ARGUMENT ? "ok" : "not ok",
			   a.message, g.message);
		a.code == GROMA_ERR_INVALID_ARGUMENT && g.code == GROMA_ERR_INVALID_ARGUMENT ? passed++ : failed++;
	}
}

/* One attention case on the CPU (f32) and forced onto the flash kernel, compared within bf16 rounding. */
static void
flash_case(const char *name, const groma_tensor *q, const groma_tensor *k, const groma_tensor *v, groma_tensor *o,
		   const groma_tensor *dq, const groma_tensor *dk, const groma_tensor *dv, groma_tensor *dout, float scale,
		   bool causal, int64_t q_offset, groma_arena *scratch)
{
	groma_status a = groma_attention(q, k, v, scale, causal, q_offset, scratch, o);
	groma_status g;

	groma_cuda_attention_kernel(GROMA_ATTENTION_FLASH);
	groma_fill(dout, NAN);
	g = groma_attention_in(GROMA_BF16, dq, dk, dv, scale, causal, q_offset, &dev_scratch, dout);
	groma_cuda_attention_kernel(GROMA_ATTENTION_AUTO);
	compare("attn/flash", name, o, dout, 1e-4, a, g);
}

/*
 * The tensor-core flash kernel (forced) against the CPU's f32 within bf16
 * rounding: causal with an offset, several blocks and a last partial one,
 * head dimensions 16, 32, 64 and 128, head views of [2, T, H, D] buffers;
 * a head dimension it does not take is refused; and with bf16 compute and
 * a scratch too small for the GEMM path's scores, the automatic choice is
 * this kernel (its bits).
 */
static void
test_attention_flash(groma_arena *scratch)
{
	static const struct
	{
		int64_t		heads,
					tq,
					tk,
					dim,
					offset;
		bool		causal;
	}			cases[] = {{3, 60, 70, 64, 10, true}, {2, 130, 33, 16, 0, false}, {2, 5, 40, 128, 35, true},
	{1, 64, 64, 32, 0, true}};

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
	{
		groma_tensor q = rand_host(4, (int64_t[]) {1, cases[c].heads, cases[c].tq, cases[c].dim}),
					k = rand_host(4, (int64_t[]) {1, cases[c].heads, cases[c].tk, cases[c].dim}),
					v = rand_host(4, (int64_t[]) {1, cases[c].heads, cases[c].tk, cases[c].dim}),
					o = like_host(&q);
		groma_tensor dq = to_dev(&q),
					dk = to_dev(&k),
					dv = to_dev(&v),
					dout = to_dev(&o);
		char		name[64];

		snprintf(name, sizeof(name), "[1,%lld,%lld,%lld] of %lld keys%s", (long long) cases[c].heads,
				 (long long) cases[c].tq, (long long) cases[c].dim, (long long) cases[c].tk,
				 cases[c].causal ? ", causal" : "");
		flash_case(name, &q, &k, &v, &o, &dq, &dk, &dv, &dout, 0.125f, cases[c].causal, cases[c].offset, scratch);
	}
	{
		head_views	h = make_head_views((int64_t[]) {2, 65, 4, 32});
		int64_t		n = groma_tensor_numel(&h.ob);
		groma_arena tiny = dev_scratch;
		float	   *forced,
				   *chosen = NULL;
		groma_status st;

		flash_case("head views of [2,65,4,32]", &h.q, &h.k, &h.v, &h.o, &h.dq, &h.dk, &h.dv, &h.dout, 0.17f, false, 0,
				   scratch);
		/* the automatic choice when the scores do not fit (a scratch of 4 KB) is this kernel: the same bits */
		forced = device_floats(h.dob.data, n);
		tiny.size = dev_scratch.used + 4096;
		groma_fill(&h.dob, NAN);
		st = groma_attention_in(GROMA_BF16, &h.dq, &h.dk, &h.dv, 0.17f, false, 0, &tiny, &h.dout);
		if (st.code == GROMA_OK)
			chosen = device_floats(h.dob.data, n);
		printf("%s - attn/flash auto, bf16, scores don't fit: the forced kernel's bits%s%s\n",
			   forced && chosen && memcmp(forced, chosen, (size_t) n * sizeof(float)) == 0 ? "ok" : "not ok",
			   st.code == GROMA_OK ? "" : ": ", st.code == GROMA_OK ? "" : st.message);
		forced && chosen && memcmp(forced, chosen, (size_t) n * sizeof(float)) == 0 ? passed++ : failed++;
		free(forced);
		free(chosen);
	}
	{
		groma_tensor q = rand_host(4, (int64_t[]) {1, 1, 8, 40}),
					dq = to_dev(&q),
					dout = to_dev(&q);
		groma_status st;

		groma_cuda_attention_kernel(GROMA_ATTENTION_FLASH);
		st = groma_attention_in(GROMA_BF16, &dq, &dq, &dq, 1.0f, false, 0, &dev_scratch, &dout);
		groma_cuda_attention_kernel(GROMA_ATTENTION_AUTO);
		printf("%s - attn/flash head dimension 40 is refused (%s)\n", st.code == GROMA_ERR_UNSUPPORTED ? "ok" : "not ok",
			   st.message);
		st.code == GROMA_ERR_UNSUPPORTED ? passed++ : failed++;
	}
}

/*
 * attention on the views the model passes: q/k/v/out as [B, H, T, D]
 * permutations of [B, T, H, D] buffers (DINOv2, proposer, LLaMA prefill),
 * and a causal chunk of 5 queries at offset 35 against 40 keys.
 */
static void
test_attention_views(groma_arena *scratch)
{
	static const int64_t shapes[][4] = {{1, 1025, 4, 64}, {1, 40, 4, 128}};	/* [B, T, H, D] */

	for (size_t s = sanitizer_run ? 1 : 0; s < 2; s++)
	{
		head_views	h = make_head_views(shapes[s]);
		bool		causal = s == 1;
		int64_t		offset = causal ? 35 : 0;

		if (causal)
		{
			/* the last 5 queries (positions 35..39) see keys 0..their own position */
			groma_tensor_narrow(&h.q, 2, 35, 5, &h.q);
			groma_tensor_narrow(&h.o, 2, 35, 5, &h.o);
			groma_tensor_narrow(&h.dq, 2, 35, 5, &h.dq);
			groma_tensor_narrow(&h.dout, 2, 35, 5, &h.dout);
		}
		compare(attention_label, causal ? "head views, causal chunk at 35" : "head views [1,1025,4,64]", &h.ob, &h.dob,
				1e-10, groma_attention(&h.q, &h.k, &h.v, 0.125f, causal, offset, scratch, &h.o),
				groma_attention(&h.dq, &h.dk, &h.dv, 0.125f, causal, offset, &dev_scratch, &h.dout));
	}
}

/*
 * The GEMM path's scratch: several queries with too little device scratch
 * for one head's scores fall back to the fused kernels (same result), the
 * forced GEMM path without scratch fails cleanly, and the scores go back
 * to the arena after the call.
 */
static void
test_attention_scratch(groma_arena *scratch)
{
	int64_t		shape[4] = {1, 4, 130, 32};
	groma_tensor q = rand_host(4, shape),
				k = rand_host(4, shape),
				v = rand_host(4, shape),
				o = like_host(&q);
	groma_tensor dq = to_dev(&q),
				dk = to_dev(&k),
				dv = to_dev(&v),
				dout = to_dev(&o);
	groma_arena small = dev_scratch;
	size_t		mark = dev_scratch.used;
	groma_status st;
	bool		ok;

	small.size = small.used + 130 * 130 * sizeof(float) / 2;	/* half of one head's scores */
	compare("attention", "[1,4,130,32] scratch under one head", &o, &dout, 1e-10,
			groma_attention(&q, &k, &v, 0.125f, true, 0, scratch, &o),
			groma_attention(&dq, &dk, &dv, 0.125f, true, 0, &small, &dout));
	groma_cuda_attention_kernel(GROMA_ATTENTION_GEMM);
	st = groma_attention(&dq, &dk, &dv, 0.125f, true, 0, NULL, &dout);
	groma_cuda_attention_kernel(GROMA_ATTENTION_AUTO);
	ok = st.code == GROMA_ERR_UNSUPPORTED;
	printf("%s - attn/gemm  without device scratch fails cleanly (%s)\n", ok ? "ok" : "not ok", st.message);
	ok ? passed++ : failed++;
	small.size = small.used + 130 * 130 * sizeof(float) * 2 + 2 * GROMA_ARENA_ALIGN;	/* two heads per chunk */
	groma_fill(&dout, NAN);		/* the result must be computed again, not left over */
	compare("attention", "[1,4,130,32] two heads per chunk", &o, &dout, 1e-10, groma_ok(),
			groma_attention(&dq, &dk, &dv, 0.125f, true, 0, &small, &dout));
	ok = small.used == mark && dev_scratch.used == mark;
	printf("%s - attention  the scores go back to the scratch arena\n", ok ? "ok" : "not ok");
	ok ? passed++ : failed++;
}

/*
 * The remaining model shapes: the 2x2 neighbour merge (strided cell views
 * copied into a narrowed last dimension), LayerNorm without weight and bias,
 * softmax over 4-wide rows (deformable attention weights) and a 16-bit
 * linear with 3-D input and a single output (the class heads).
 */
static void
test_model_shapes(void)
{
	{
		groma_tensor last = rand_host(3, (int64_t[]) {1, 1 + 32 * 32, 16}),
					merged = like_host(&(groma_tensor) {.ndim = 3, .shape = {1, 16 * 16, 64}});
		groma_tensor dlast = to_dev(&last),
					dmerged = to_dev(&merged);

		compare("merge", "[1,1025,16] -> [1,256,64]", &merged, &dmerged, 0.0, groma_merge_neighbours(&last, &merged),
				groma_merge_neighbours(&dlast, &dmerged));
	}
	{
		groma_tensor x = rand_host(2, (int64_t[]) {37, 96}),
					y = like_host(&x),
					p = rand_host(2, (int64_t[]) {200, 4}),
					q = like_host(&p);
		groma_tensor dx = to_dev(&x),
					dy = to_dev(&y),
					dp = to_dev(&p),
					dq = to_dev(&q);

		compare("layer_norm", "[37,96] no w, b", &y, &dy, 1e-11, groma_layer_norm(&x, NULL, NULL, 1e-6f, &y),
				groma_layer_norm(&dx, NULL, NULL, 1e-6f, &dy));
		compare("softmax", "[200,4]", &q, &dq, 1e-11, groma_softmax(&p, &q), groma_softmax(&dp, &dq));
	}
	{
		groma_tensor x = rand_host(3, (int64_t[]) {2, 50, 64}),
					w = rand_host(2, (int64_t[]) {1, 64}),
					b = rand_host(1, (int64_t[]) {1}),
					y = like_host(&(groma_tensor) {.ndim = 3, .shape = {2, 50, 1}}),
					w16;
		groma_tensor dx = to_dev(&x),
					dw = to_dev(&w),
					db = to_dev(&b),
					dy = to_dev(&y),
					dw16;
		groma_status a,
					g;

		to_bf16(&w, &dw, &w16, &dw16, &a, &g);
		if (a.code == GROMA_OK)
			a = groma_linear(&x, &w16, &b, &y);
		if (g.code == GROMA_OK)
			g = groma_linear(&dx, &dw16, &db, &dy);
		compare("linear", "[2,50,64]x[1,64] bf16 w", &y, &dy, 1e-4, a, g);
	}
}

/* fill on narrowed rows, fill_random (bit-identical to the CPU) and inverse_sigmoid. */
static void
test_fills(void)
{
	groma_tensor t = rand_host(2, (int64_t[]) {50, 64}),
				dt = to_dev(&t),
				rows,
				drows,
				r = like_host(&t),
				dr = to_dev(&r),
				x = rand_host(2, (int64_t[]) {7, 33}),
				y = like_host(&x),
				dx,
				dy;

	groma_tensor_narrow(&t, 0, 10, 5, &rows);
	groma_tensor_narrow(&dt, 0, 10, 5, &drows);
	compare("fill", "rows 10..14 of [50,64]", &t, &dt, 0.0, groma_fill(&rows, 0.0f), groma_fill(&drows, 0.0f));
	compare("fill_random", "[50,64] seed 9", &r, &dr, 0.0, groma_fill_random(&r, 9, 0.3f),
			groma_fill_random(&dr, 9, 0.3f));
	/* values outside [0, 1] and at the ends exercise the clamps */
	((float *) x.data)[0] = 0.0f;
	((float *) x.data)[1] = 1.0f;
	((float *) x.data)[2] = 2.5f;
	for (int64_t i = 3; i < 7 * 33; i++)
		((float *) x.data)[i] = 0.5f + 0.5f * ((float *) x.data)[i];
	dx = to_dev(&x);
	dy = to_dev(&y);
	compare("inv_sigmoid", "[7,33] with 0, 1, 2.5", &y, &dy, 1e-12, groma_inverse_sigmoid(&x, 1e-5f, &y),
			groma_inverse_sigmoid(&dx, 1e-5f, &dy));
}

/*
 * conv2d of x on the CPU and on the GPU, with f32 and with bf16 weights
 * (tensor cores, x rounded to bf16 as linear does), by kernel rows, by
 * im2col and (bf16 weights) by the implicit GEMM; the GPU's scratch must be
 * as it was after each.
 */
static void
conv_case(const char *label, const groma_tensor *x, const groma_tensor *w, const groma_tensor *b, int stride, int pad,
		  groma_tensor *y, groma_arena *scratch, groma_arena *dscratch)
{
	groma_tensor dx = to_dev(x),
				dw = to_dev(w),
				db = to_dev(b),
				dy = to_dev(y),
				w16,
				dw16;
	groma_status a,
				g;
	char		name[80];

	to_bf16(w, &dw, &w16, &dw16, &a, &g);
	for (int t = 0; t < 2; t++)
	{
		const groma_tensor *cw = t == 0 ? w : &w16,
				   *gw = t == 0 ? &dw : &dw16;
		groma_status sa = t == 0 ? groma_ok() : a;

		if (sa.code == GROMA_OK)
			sa = groma_conv2d(x, cw, b, stride, pad, scratch, y);
		for (int path = GROMA_CONV_AUTO; path <= GROMA_CONV_IMPLICIT; path++)
		{
			size_t		mark = dscratch->used;
			groma_status sg = t == 0 ? groma_ok() : g;
			bool		by_rows = stride == 1 && w->shape[2] * w->shape[3] > 1;

			if ((path == GROMA_CONV_IM2COL && !by_rows) || (path == GROMA_CONV_IMPLICIT && t == 0))
				continue;		/* im2col either way; the implicit GEMM takes bf16 weights */
			groma_cuda_conv_kernel((groma_cuda_conv_path) path);
			groma_fill(&dy, NAN);	/* the result must be computed, not left over */
			if (sg.code == GROMA_OK)
				sg = groma_conv2d(&dx, gw, &db, stride, pad, dscratch, &dy);
			snprintf(name, sizeof(name), "%s%s%s", label, t ? " bf16 w" : "",
					 path == GROMA_CONV_IMPLICIT ? " implicit" : !by_rows ? "" :
					 path == GROMA_CONV_AUTO ? " rows" : " im2col");
			compare("conv2d", name, y, &dy, t ? 1e-4 : 1e-10, sa, sg);
			if (dscratch->used != mark)
			{
				printf("not ok - conv2d     %s left its buffers in the scratch\n", name);
				failed++;
			}
		}
		groma_cuda_conv_kernel(GROMA_CONV_AUTO);
	}
}

/*
 * conv2d at several kernels, strides and paddings (non-square kernels too),
 * by kernel rows, by im2col and by the implicit GEMM (partial tiles of
 * channels, pixels and k), in chunks of images and in bands of rows
 * when the scratch is small, and a clean failure when not one output row's
 * im2col fits; then GroupNorm and channel LayerNorm.
 */
static void
test_conv_norm(groma_arena *scratch)
{
	static const int cases[][5] = {{3, 3, 1, 1}, {3, 3, 2, 1}, {1, 1, 1, 0}, {14, 14, 14, 0}, {5, 5, 1, 2},
	{3, 3, 1, 0}, {3, 5, 1, 1}, {1, 3, 1, 1}};
	groma_arena dscratch;

	if (groma_device_arena_init(&dscratch, (size_t) 256 << 20).code != GROMA_OK)
	{
		printf("not ok - conv2d: no device scratch arena\n");
		failed++;
		return;
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		int			kh = cases[i][0],
					kw = cases[i][1],
					stride = cases[i][2],
					pad = cases[i][3];
		int64_t		h = kh == 14 ? 56 : 33,
					wd = kh == 14 ? 56 : 29,
					c = kh == 14 ? 3 : 40,
					ho = (h + 2 * pad - kh) / stride + 1,
					wo = (wd + 2 * pad - kw) / stride + 1;
		groma_tensor x = rand_host(4, (int64_t[]) {2, c, h, wd}),
					w = rand_host(4, (int64_t[]) {24, c, kh, kw}),
					b = rand_host(1, (int64_t[]) {24}),
					y = like_host(&(groma_tensor) {.ndim = 4, .shape = {2, 24, ho, wo}});
		char		name[64];

		snprintf(name, sizeof(name), "[2,%lld,%lld,%lld] k%dx%d s%d p%d", (long long) c, (long long) h, (long long) wd,
				 kh, kw, stride, pad);
		conv_case(name, &x, &w, &b, stride, pad, &y, scratch, &dscratch);
	}
	{
		/* 130 output channels: three of the implicit GEMM's 64-channel tiles, the last partial */
		groma_tensor x = rand_host(4, (int64_t[]) {3, 16, 9, 11}),
					w = rand_host(4, (int64_t[]) {130, 16, 3, 3}),
					b = rand_host(1, (int64_t[]) {130}),
					y = like_host(&(groma_tensor) {.ndim = 4, .shape = {3, 130, 9, 11}});

		conv_case("[3,16,9,11] to 130 channels k3", &x, &w, &b, 1, 1, &y, scratch, &dscratch);
	}
	{
		/* 8000 · 3 · 3 = 72000 im2col rows: more than one launch's grid rows (65535) */
		groma_tensor x = rand_host(4, (int64_t[]) {1, 8000, 4, 4}),
					w = rand_host(4, (int64_t[]) {2, 8000, 3, 3}),
					b = rand_host(1, (int64_t[]) {2}),
					y = like_host(&(groma_tensor) {.ndim = 4, .shape = {1, 2, 4, 4}});

		conv_case("[1,8000,4,4] k3 (72000 rows)", &x, &w, &b, 1, 1, &y, scratch, &dscratch);
	}
	{
		/* the region encoder's per-level conv: 100 regions of [E, 14, 14], 3x3, padding 1 */
		groma_tensor x = rand_host(4, (int64_t[]) {100, 32, 14, 14}),
					w = rand_host(4, (int64_t[]) {32, 32, 3, 3}),
					b = rand_host(1, (int64_t[]) {32}),
					y = like_host(&x);
		groma_tensor dx = to_dev(&x),
					dw = to_dev(&w),
					db = to_dev(&b),
					dy = to_dev(&y);
		size_t		per_image = (size_t) 32 * 9 * 196 * sizeof(float),	/* im2col */
					per_rows = (size_t) 32 * 3 * 16 * 16 * sizeof(float) + (size_t) 32 * 14 * 16 * sizeof(float),
					packed = (size_t) 3 * 32 * 96 * sizeof(float) + 3 * 64,	/* and the arena's rounding */
					mark = dscratch.used;
		groma_arena small = dscratch;
		groma_tensor w16,
					dw16;
		groma_status a,
					g;

		conv_case("[100,32,14,14] k3 s1 p1", &x, &w, &b, 1, 1, &y, scratch, &dscratch);
		/* by rows: room for 7 images' shifted copies and sums, chunks of 7, the last one of 2 */
		a = groma_conv2d(&x, &w, &b, 1, 1, scratch, &y);	/* conv_case left the bf16 result in y */
		small.size = dscratch.used + packed + 7 * per_rows + per_rows / 2;
		groma_fill(&dy, NAN);
		compare("conv2d", "[100,...] rows, chunks of 7", &y, &dy, 1e-10, a,
				groma_conv2d(&dx, &dw, &db, 1, 1, &small, &dy));
		/* room for less than one image's copies: im2col in bands of 7 output rows */
		small.size = dscratch.used + per_rows - 64;
		groma_fill(&dy, NAN);
		compare("conv2d", "[100,...] rows don't fit, bands", &y, &dy, 1e-10, groma_ok(),
				groma_conv2d(&dx, &dw, &db, 1, 1, &small, &dy));
		groma_cuda_conv_kernel(GROMA_CONV_IM2COL);
		/* by im2col: room for 7 images' im2col: chunks of 7, the last one of 2 */
		small.size = dscratch.used + 7 * per_image + per_image / 2;
		groma_fill(&dy, NAN);
		compare("conv2d", "[100,...] im2col, chunks of 7", &y, &dy, 1e-10, groma_ok(),
				groma_conv2d(&dx, &dw, &db, 1, 1, &small, &dy));
		/* room for half an image's im2col: each image in bands of 3 output rows (the last of 2) */
		small.size = dscratch.used + per_image / 2 + 64;
		groma_fill(&dy, NAN);
		compare("conv2d", "[100,...] im2col, bands of rows", &y, &dy, 1e-10, groma_ok(),
				groma_conv2d(&dx, &dw, &db, 1, 1, &small, &dy));
		groma_cuda_conv_kernel(GROMA_CONV_AUTO);
		small.size = dscratch.used + (size_t) 32 * 9 * 14 * sizeof(float) / 2;
		{
			groma_status st = groma_conv2d(&dx, &dw, &db, 1, 1, &small, &dy);
			bool		ok = st.code == GROMA_ERR_NO_MEMORY && small.used == mark;

			printf("%s - conv2d     a scratch smaller than one output row's im2col fails cleanly (%s)\n",
				   ok ? "ok" : "not ok", st.message);
			ok ? passed++ : failed++;
		}
		/* bf16 weights: the room of 7 f32 images holds 12 images' 16-bit copies by rows, the last chunk of 4 */
		to_bf16(&w, &dw, &w16, &dw16, &a, &g);
		if (a.code == GROMA_OK)
			a = groma_conv2d(&x, &w16, &b, 1, 1, scratch, &y);
		small.size = dscratch.used + packed + 7 * per_rows + per_rows / 2;
		groma_fill(&dy, NAN);
		if (g.code == GROMA_OK)
			g = groma_conv2d(&dx, &dw16, &db, 1, 1, &small, &dy);
		compare("conv2d", "[100,...] bf16 w, rows, chunks", &y, &dy, 1e-4, a, g);
		/* and by im2col: the same room holds 15 images' 16-bit im2col, the last chunk of 10 */
		groma_cuda_conv_kernel(GROMA_CONV_IM2COL);
		small.size = dscratch.used + 7 * per_image + per_image / 2;
		groma_fill(&dy, NAN);
		g = g.code == GROMA_OK ? groma_conv2d(&dx, &dw16, &db, 1, 1, &small, &dy) : g;
		compare("conv2d", "[100,...] bf16 w, im2col, chunks of 15", &y, &dy, 1e-4, a, g);
		groma_cuda_conv_kernel(GROMA_CONV_AUTO);
	}
	{
		groma_tensor x = rand_host(4, (int64_t[]) {2, 128, 16, 16}),
					w = rand_host(1, (int64_t[]) {128}),
					b = rand_host(1, (int64_t[]) {128}),
					y = like_host(&x);
		groma_tensor dx = to_dev(&x),
					dw = to_dev(&w),
					db = to_dev(&b),
					dy = to_dev(&y);

		compare("group_norm", "[2,128,16,16] g64", &y, &dy, 1e-11, groma_group_norm(&x, 64, &w, &b, 1e-5f, &y),
				groma_group_norm(&dx, 64, &dw, &db, 1e-5f, &dy));
		compare("group_norm_relu", "[2,128,16,16] g64", &y, &dy, 1e-11,
				groma_group_norm_relu(&x, 64, &w, &b, 1e-5f, &y), groma_group_norm_relu(&dx, 64, &dw, &db, 1e-5f, &dy));
		compare("ln_chan", "[2,128,16,16]", &y, &dy, 1e-11, groma_layer_norm_channels(&x, &w, &b, 1e-6f, &y),
				groma_layer_norm_channels(&dx, &dw, &db, 1e-6f, &dy));
	}
	{
		/*
		 * groups large enough to split over blocks: the region encoder's level-0
		 * shape in miniature (16 channels of 128x128 per group: 32 splits), and
		 * 23100-value groups in 3 splits, the last one short, without w and b
		 */
		static const int64_t shapes[][4] = {{1, 64, 128, 128}, {2, 6, 100, 77}};
		static const int group_counts[] = {4, 2};

		for (int c = 0; c < 2; c++)
		{
			groma_tensor x = rand_host(4, shapes[c]),
						w = rand_host(1, &shapes[c][1]),
						b = rand_host(1, &shapes[c][1]),
						y = like_host(&x);
			groma_tensor dx = to_dev(&x),
						dw = to_dev(&w),
						db = to_dev(&b),
						dy = to_dev(&y);
			char		name[64];

			snprintf(name, sizeof(name), "[%lld,%lld,%lld,%lld] g%d split%s", (long long) shapes[c][0],
					 (long long) shapes[c][1], (long long) shapes[c][2], (long long) shapes[c][3], group_counts[c],
					 c ? ", no w, b" : "");
			compare("group_norm", name, &y, &dy, 1e-11,
					groma_group_norm(&x, group_counts[c], c ? NULL : &w, c ? NULL : &b, 1e-5f, &y),
					groma_group_norm(&dx, group_counts[c], c ? NULL : &dw, c ? NULL : &db, 1e-5f, &dy));
			compare("group_norm_relu", name, &y, &dy, 1e-11,
					groma_group_norm_relu(&x, group_counts[c], c ? NULL : &w, c ? NULL : &b, 1e-5f, &y),
					groma_group_norm_relu(&dx, group_counts[c], c ? NULL : &dw, c ? NULL : &db, 1e-5f, &dy));
		}
	}
	{
		int64_t		ids[6] = {3, 0, 99, 3, 42, 7};
		groma_tensor tid = groma_tensor_view(ids, GROMA_I64, 1, (int64_t[]) {6}),
					table = rand_host(2, (int64_t[]) {100, 48}),
					y = like_host(&(groma_tensor) {.ndim = 2, .shape = {6, 48}});
		groma_tensor dt = to_dev(&table),
					dy = to_dev(&y);

		compare("embedding", "6 of [100,48]", &y, &dy, 0, groma_embedding(&tid, &table, &y), groma_embedding(&tid, &dt, &dy));
	}
	groma_arena_free(&dscratch);
}

/* bilinear resize, deformable attention sampling and RoIAlign. */
static void
test_spatial(void)
{
	static const int64_t sizes[][4] = {{32, 32, 128, 128}, {64, 64, 32, 32}, {7, 5, 11, 3}};

	for (size_t s = 0; s < 3; s++)
		for (int ac = 0; ac < 2; ac++)
		{
			groma_tensor x = rand_host(4, (int64_t[]) {2, 3, sizes[s][0], sizes[s][1]}),
						y = like_host(&(groma_tensor) {.ndim = 4, .shape = {2, 3, sizes[s][2], sizes[s][3]}});
			groma_tensor dx = to_dev(&x),
						dy = to_dev(&y);
			char		name[64];

			snprintf(name, sizeof(name), "%lldx%lld->%lldx%lld ac%d", (long long) sizes[s][0], (long long) sizes[s][1],
					 (long long) sizes[s][2], (long long) sizes[s][3], ac);
			compare("bilinear", name, &y, &dy, 1e-11, groma_resize_bilinear(&x, ac, &y), groma_resize_bilinear(&dx, ac, &dy));
		}
	{
		/* one level of 20x24, 8 heads of 32, 4 points; locations spill outside [0, 1] */
		int64_t		shapes[2] = {20, 24},
					starts[1] = {0};
		groma_tensor value = rand_host(4, (int64_t[]) {2, 480, 8, 32}),
					loc = rand_host(4, (int64_t[]) {2, 50, 8, 8}),
					attn = rand_host(4, (int64_t[]) {2, 50, 8, 4}),
					out = like_host(&(groma_tensor) {.ndim = 3, .shape = {2, 50, 256}});

		for (int64_t i = 0; i < groma_tensor_numel(&loc); i++)
			((float *) loc.data)[i] = ((float *) loc.data)[i] * 0.6f + 0.5f;
		{
			groma_tensor dv = to_dev(&value),
						dl = to_dev(&loc),
						da = to_dev(&attn),
						dout = to_dev(&out);

			compare("deform_attn", "[2,480,8,32] q50 p4", &out, &dout, 1e-11,
					groma_ms_deform_attn(&value, shapes, starts, 1, 4, &loc, &attn, &out),
					groma_ms_deform_attn(&dv, shapes, starts, 1, 4, &dl, &da, &dout));
		}
	}
	/*
	 * sampling locations from 2-d points on a 20x24 map and from 4-d boxes
	 * (read through a strided view of [2, 50, 6], as the decoder narrows
	 * its boxes): the same bits on both devices
	 */
	for (int rdim = 2; rdim <= 4; rdim += 2)
	{
		groma_tensor base = rand_host(3, (int64_t[]) {2, 50, 6}),
					off = rand_host(4, (int64_t[]) {2, 50, 8, 8}),
					ref;
		groma_tensor dbase = to_dev(&base),
					doff = to_dev(&off),
					dref;

		groma_tensor_narrow(&base, 2, 1, rdim, &ref);
		groma_tensor_narrow(&dbase, 2, 1, rdim, &dref);
		compare("deform_loc", rdim == 2 ? "[2,50,8,8] from points" : "[2,50,8,8] from boxes", &off, &doff, 0.0,
				groma_deform_locations(&ref, 20, 24, 4, &off), groma_deform_locations(&dref, 20, 24, 4, &doff));
	}
	for (int aligned = 0; aligned < 2; aligned++)
	{
		groma_tensor feat = rand_host(4, (int64_t[]) {2, 16, 40, 48}),
					rois = rand_host(2, (int64_t[]) {20, 5}),
					out = like_host(&(groma_tensor) {.ndim = 4, .shape = {20, 16, 14, 14}});

		/* batch index 0/1; corners anywhere from -10 to 110 pixels, some reversed */
		for (int m = 0; m < 20; m++)
		{
			float	   *r = (float *) rois.data + m * 5;

			r[0] = (float) (m % 2);
			for (int k = 1; k < 5; k++)
				r[k] = r[k] * 60.0f + 50.0f;
		}
		{
			groma_tensor df = to_dev(&feat),
						dr = to_dev(&rois),
						dout = to_dev(&out);

			compare("roi_align", aligned ? "[20,16,14,14] aligned" : "[20,16,14,14]", &out, &dout, 1e-11,
					groma_roi_align(&feat, &rois, 0.5f, 2, aligned, &out),
					groma_roi_align(&df, &dr, 0.5f, 2, aligned, &dout));
		}
	}
	/* the region encoder's geometry: bilinear n -> n, 2n, 4n with align_corners, RoIAlign of
	 * (cx, cy, w, h)·448 boxes read as corners at scales 8/14, 4/14, 2/14 */
	for (int l = 0; l < 3; l++)
	{
		int64_t		side = 32 << (2 - l);
		groma_tensor x = rand_host(4, (int64_t[]) {1, 8, 32, 32}),
					y = like_host(&(groma_tensor) {.ndim = 4, .shape = {1, 8, side, side}}),
					rois = rand_host(2, (int64_t[]) {25, 5}),
					out = like_host(&(groma_tensor) {.ndim = 4, .shape = {25, 8, 14, 14}});
		groma_tensor dx = to_dev(&x),
					dy = to_dev(&y),
					dr,
					dout = to_dev(&out);
		char		name[64];

		snprintf(name, sizeof(name), "32x32->%lldx%lld ac1 (level %d)", (long long) side, (long long) side, l);
		compare("bilinear", name, &y, &dy, 1e-11, groma_resize_bilinear(&x, true, &y),
				groma_resize_bilinear(&dx, true, &dy));
		for (int m = 0; m < 25; m++)
		{
			float	   *r = (float *) rois.data + m * 5;

			r[0] = 0.0f;
			for (int k = 1; k < 5; k++)
				r[k] = (0.5f + 0.5f * r[k]) * (k < 3 ? 1.0f : 0.5f) * 448.0f;
		}
		dr = to_dev(&rois);
		snprintf(name, sizeof(name), "level %d, scale %d/14", l, 8 >> l);
		compare("roi_align", name, &out, &dout, 1e-11,
				groma_roi_align(&y, &rois, (float) (1.0 / (14.0 / (double) (8 >> l))), 2, true, &out),
				groma_roi_align(&dy, &dr, (float) (1.0 / (14.0 / (double) (8 >> l))), 2, true, &dout));
	}
}

/* Milliseconds of one attention call on the GPU in compute (after one warm-up call), or -1 on failure. */
static double
attention_ms(const groma_tensor *q, const groma_tensor *k, const groma_tensor *v, bool causal, groma_dtype compute)
{
	groma_tensor out = *q;
	struct timespec t0,
				t1;
	groma_status st;

	out.data = NULL;
	st = groma_arena_tensor(&dev, GROMA_F32, 4, q->shape, &out);
	if (st.code == GROMA_OK)
		st = groma_attention_in(compute, q, k, v, 0.125f, causal, 0, &dev_scratch, &out);
	if (st.code == GROMA_OK)
		st = groma_cuda_ops.synchronize();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (st.code == GROMA_OK)
		st = groma_attention_in(compute, q, k, v, 0.125f, causal, 0, &dev_scratch, &out);
	if (st.code == GROMA_OK)
		st = groma_cuda_ops.synchronize();
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return st.code == GROMA_OK ? (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6 : -1;
}

/*
 * Figures, not checks: the attention kernels at the real model's shapes
 * (DINOv2-L: 16 heads of 64 over 1025 tokens; LLaMA prefill: 32 heads of
 * 128 over 496 tokens, causal), in the same run.
 */
static void
time_attention(void)
{
	static const int64_t shapes[][4] = {{1, 16, 1025, 64}, {1, 32, 496, 128}};
	char		device[256] = "";

	groma_cuda_describe_device(device, sizeof(device));
	if (strstr(device, "emulator"))
	{
		printf("# figures: attention timings skipped on %s (its times say nothing about a GPU)\n", device);
		return;
	}
	if (sanitizer_run)
	{
		printf("# figures: attention timings skipped: GROMA_OPS_SANITIZER_RUN is set\n");
		return;
	}
	for (int s = 0; s < 2; s++)
	{
		groma_tensor q = rand_host(4, shapes[s]);
		groma_tensor dq = to_dev(&q),
					dk = to_dev(&q),
					dv = to_dev(&q);
		static const groma_cuda_attention_path kernels[5] = {GROMA_ATTENTION_PER_QUERY, GROMA_ATTENTION_TILED,
			GROMA_ATTENTION_GEMM, GROMA_ATTENTION_GEMM, GROMA_ATTENTION_FLASH};
		double		ms[5];

		for (int which = 0; which < 5; which++)
		{
			groma_cuda_attention_kernel(kernels[which]);
			ms[which] = attention_ms(&dq, &dk, &dv, s == 1, which >= 3 ? GROMA_BF16 : GROMA_F32);
		}
		groma_cuda_attention_kernel(GROMA_ATTENTION_AUTO);
		printf("# figure: attention [%lld,%lld,%lld,%lld]%s on %s: per-query %.3f ms, tiled %.3f ms, "
			   "cuBLAS GEMMs %.3f ms, bf16 GEMMs %.3f ms, flash (tensor cores) %.3f ms\n", (long long) shapes[s][0],
			   (long long) shapes[s][1], (long long) shapes[s][2], (long long) shapes[s][3], s == 1 ? " causal" : "",
			   device, ms[0], ms[1], ms[2], ms[3], ms[4]);
	}
	/* a LLaMA decode step against 600 cached positions: keys split over blocks, and not */
	{
		groma_tensor q = rand_host(4, (int64_t[]) {1, 32, 1, 128}),
					kv = rand_host(4, (int64_t[]) {1, 32, 600, 128});
		groma_tensor dq = to_dev(&q),
					dk = to_dev(&kv),
					dv = to_dev(&kv);
		double		warp,
					split,
					whole;

		groma_cuda_attention_kernel(GROMA_ATTENTION_WARP_PER_KEY);
		warp = attention_ms(&dq, &dk, &dv, false, GROMA_F32);
		groma_cuda_attention_kernel(GROMA_ATTENTION_PER_QUERY);
		split = attention_ms(&dq, &dk, &dv, false, GROMA_F32);
		groma_cuda_attention_kernel(GROMA_ATTENTION_PER_QUERY_WHOLE);
		whole = attention_ms(&dq, &dk, &dv, false, GROMA_F32);
		groma_cuda_attention_kernel(GROMA_ATTENTION_AUTO);
		printf("# figure: attention decode step [1,32,1,128] over 600 keys on %s: warp per key with key splits "
			   "%.3f ms, per-query with key splits %.3f ms, one block per head %.3f ms\n", device, warp, split, whole);
	}
}

/* Milliseconds of op(ctx) on the GPU, the best of `rounds` after one warm-up call, or -1 on failure. */
static double
best_gpu_ms(groma_status (*op) (void *ctx), void *ctx, int rounds)
{
	double		best = 1e30;
	groma_status st = op(ctx);

	for (int r = 0; r < rounds && st.code == GROMA_OK; r++)
	{
		struct timespec t0,
					t1;
		double		ms;

		st = groma_cuda_ops.synchronize();
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (st.code == GROMA_OK)
			st = op(ctx);
		if (st.code == GROMA_OK)
			st = groma_cuda_ops.synchronize();
		clock_gettime(CLOCK_MONOTONIC, &t1);
		ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
		best = ms < best ? ms : best;
	}
	return st.code == GROMA_OK ? best : -1;
}

/* One timed batched decode attention: groma_attention_decode_rows' operands (32 heads). */
typedef struct timed_rows
{
	groma_tensor *q,
			   *k,
			   *v,
			   *ctx,
			   *positions;
	groma_tensor **k_cache,
			  **v_cache;
	groma_arena *scratch;
} timed_rows;

/* Runs a timed_rows (q is rotated again each time: the timing does not mind). */
static groma_status
run_rows(void *ctx)
{
	timed_rows *t = ctx;

	return groma_attention_decode_rows(t->q, t->k, t->v, 32, t->k_cache, t->v_cache, t->positions, 10000.0f,
									   0.088f, t->scratch, t->ctx);
}

/*
 * Figures, not checks: a batched decode step's attention (RoPE, the cache
 * writes, attention) for 1 and 8 sequences of LLaMA-7B's 32 heads of 128
 * over 560 bf16 cached positions, with the keys split over blocks and with
 * one block per head (a scratch with no room for the splits).
 */
static void
time_decode_rows(void)
{
	char		device[256] = "";
	size_t		mark = dev.used;

	groma_cuda_describe_device(device, sizeof(device));
	if (strstr(device, "emulator") || sanitizer_run)
	{
		printf("# figures: decode_rows timings skipped on %s%s\n", device, sanitizer_run ? " (sanitizer run)" : "");
		return;
	}
	for (int n = 1; n <= 8; n += 7)
	{
		groma_tensor q,
					k,
					v,
					ctx,
					positions,
					kc[8],
					vc[8];
		groma_tensor *kp[8],
				   *vp[8];
		int32_t		pos[8];
		groma_arena full = dev_scratch;
		timed_rows	t = {&q, &k, &v, &ctx, &positions, kp, vp, &dev_scratch};
		groma_status st = groma_ok();
		double		split,
					whole;

		for (int b = 0; b < n && st.code == GROMA_OK; b++)
		{
			st = groma_arena_tensor(&dev, GROMA_BF16, 4, (int64_t[]) {1, 32, 560, 128}, &kc[b]);
			if (st.code == GROMA_OK)
				st = groma_arena_tensor(&dev, GROMA_BF16, 4, (int64_t[]) {1, 32, 560, 128}, &vc[b]);
			kp[b] = &kc[b];
			vp[b] = &vc[b];
			pos[b] = 559;
		}
		for (int i = 0; i < 4 && st.code == GROMA_OK; i++)
			st = groma_arena_tensor(&dev, GROMA_F32, 2, (int64_t[]) {n, 4096}, (groma_tensor *[]) {&q, &k, &v, &ctx}[i]);
		if (st.code == GROMA_OK)
			st = groma_arena_tensor(&dev, GROMA_I32, 1, (int64_t[]) {n}, &positions);
		if (st.code == GROMA_OK)
			st = groma_fill_random(&q, 3, 1.0f);
		if (st.code == GROMA_OK)
			st = groma_fill_random(&k, 4, 1.0f);
		if (st.code == GROMA_OK)
			st = groma_fill_random(&v, 5, 1.0f);
		if (st.code == GROMA_OK)
			st = groma_cuda_ops.to_device(positions.data, pos, (size_t) n * sizeof(int32_t));
		if (st.code != GROMA_OK)
		{
			printf("# figures: decode_rows timings skipped: %s\n", st.message);
			break;
		}
		split = best_gpu_ms(run_rows, &t, 5);
		full.size = full.used;
		t.scratch = &full;
		whole = best_gpu_ms(run_rows, &t, 5);
		printf("# figure: decode_rows attention, %d sequence%s of [32,128] over 560 bf16 positions on %s: "
			   "keys split over blocks %.3f ms, one block per head %.3f ms\n", n, n > 1 ? "s" : "", device, split,
			   whole);
		dev.used = mark;
	}
	dev.used = mark;
}

/* One timed op's operands: y = x · wᵀ, or y = conv2d(x, w) + b (stride 1, padding 1). */
typedef struct timed_op
{
	const groma_tensor *x,
			   *w,
			   *b;
	groma_tensor *y;
} timed_op;

/* The linear of a timed_op. */
static groma_status
timed_linear(void *ctx)
{
	timed_op   *t = ctx;

	return groma_linear(t->x, t->w, NULL, t->y);
}

/* Milliseconds of one linear on the GPU (best of 5 after one warm-up call), or -1 on failure. */
static double
linear_ms(const groma_tensor *x, const groma_tensor *w, groma_tensor *y)
{
	timed_op	t = {x, w, NULL, y};

	return best_gpu_ms(timed_linear, &t, 5);
}

/*
 * Figures, not checks: a decode step's largest linear (LLaMA-7B's MLP) in
 * bf16 on the bandwidth kernel and cuBLAS, in i8, and at a batch of 8.
 */
static void
time_linear(void)
{
	int64_t		k = 4096,
				n = 11008;
	char		device[256] = "";
	groma_tensor x,
				w,
				w16,
				w8,
				y;
	double		gemv,
				blas,
				gemv8,
				bytes = (double) n * (double) k * 2.0;
	size_t		mark = dev.used;

	groma_cuda_describe_device(device, sizeof(device));
	if (strstr(device, "emulator") || sanitizer_run)
	{
		printf("# figures: linear timings skipped on %s%s\n", device, sanitizer_run ? " (sanitizer run)" : "");
		return;
	}
	if (groma_arena_tensor(&dev, GROMA_F32, 2, (int64_t[]) {1, k}, &x).code != GROMA_OK ||
		groma_arena_tensor(&dev, GROMA_F32, 2, (int64_t[]) {n, k}, &w).code != GROMA_OK ||
		groma_arena_tensor(&dev, GROMA_BF16, 2, (int64_t[]) {n, k}, &w16).code != GROMA_OK ||
		groma_arena_tensor(&dev, GROMA_I8, 2, (int64_t[]) {n, k}, &w8).code != GROMA_OK ||
		groma_arena_tensor(&dev, GROMA_F32, 2, (int64_t[]) {1, n}, &y).code != GROMA_OK ||
		groma_fill_random(&x, 3, 1.0f).code != GROMA_OK || groma_fill_random(&w, 4, 0.02f).code != GROMA_OK ||
		groma_convert(&w, &w16).code != GROMA_OK || groma_convert(&w, &w8).code != GROMA_OK)
	{
		printf("# figures: linear timings skipped: no room for the operands\n");
		dev.used = mark;
		return;
	}
	gemv = linear_ms(&x, &w16, &y);
	groma_cuda_linear_gemv(false);
	blas = linear_ms(&x, &w16, &y);
	groma_cuda_linear_gemv(true);
	gemv8 = linear_ms(&x, &w8, &y);
	printf("# figure: linear [1,4096]x[11008,4096] bf16 on %s: bandwidth kernel %.3f ms (%.0f GB/s of weights), "
		   "cuBLAS %.3f ms (%.0f GB/s)\n", device, gemv, bytes / gemv / 1e6, blas, bytes / blas / 1e6);
	printf("# figure: linear [1,4096]x[11008,4096] i8 on %s: int8 kernel %.3f ms (%.0f GB/s of weights and scales), "
		   "%.2fx the bf16 kernel's time\n", device, gemv8, (bytes / 2 + n * 4.0) / gemv8 / 1e6, gemv8 / gemv);
	/* a decode batch of 8: the kernel reads each weight once for the 8 rows */
	if (groma_arena_tensor(&dev, GROMA_F32, 2, (int64_t[]) {8, k}, &x).code == GROMA_OK &&
		groma_arena_tensor(&dev, GROMA_F32, 2, (int64_t[]) {8, n}, &y).code == GROMA_OK &&
		groma_fill_random(&x, 5, 1.0f).code == GROMA_OK)
	{
		gemv = linear_ms(&x, &w16, &y);
		groma_cuda_linear_gemv(false);
		blas = linear_ms(&x, &w16, &y);
		groma_cuda_linear_gemv(true);
		printf("# figure: linear [8,4096]x[11008,4096] bf16 on %s: bandwidth kernel %.3f ms (%.0f GB/s of weights), "
			   "cuBLAS %.3f ms\n", device, gemv, bytes / gemv / 1e6, blas);
	}
	dev.used = mark;
}

/* The convolution of a timed_op (scratch from dev_scratch). */
static groma_status
timed_conv(void *ctx)
{
	timed_op   *t = ctx;

	return groma_conv2d(t->x, t->w, t->b, 1, 1, &dev_scratch, t->y);
}

/* Milliseconds of one conv2d (stride 1, padding 1) on the GPU (best of 3 after one warm-up call), or -1 on failure. */
static double
conv_ms(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b, groma_tensor *y)
{
	timed_op	t = {x, w, b, y};

	return best_gpu_ms(timed_conv, &t, 3);
}

/*
 * Figures, not checks: the region encoder's 3x3 convolutions at the real
 * width (256 channels, bf16 weights): 100 regions of 14 x 14 and one 128 x
 * 128 fusion map, by kernel rows and by im2col.
 */
static void
time_conv(void)
{
	static const int64_t shapes[][4] = {{100, 256, 14, 14}, {1, 256, 128, 128}};
	char		device[256] = "";
	size_t		mark = dev.used;

	groma_cuda_describe_device(device, sizeof(device));
	if (strstr(device, "emulator") || sanitizer_run)
	{
		printf("# figures: convolution timings skipped on %s%s\n", device, sanitizer_run ? " (sanitizer run)" : "");
		return;
	}
	for (int s = 0; s < 2; s++)
	{
		groma_tensor x,
					w,
					w16,
					b,
					y;
		double		rows,
					im2col,
					implicit,
					flops = 2.0 * (double) (shapes[s][0] * shapes[s][2] * shapes[s][3]) * 256.0 * 256.0 * 9.0;

		if (groma_arena_tensor(&dev, GROMA_F32, 4, shapes[s], &x).code != GROMA_OK ||
			groma_arena_tensor(&dev, GROMA_F32, 4, shapes[s], &y).code != GROMA_OK ||
			groma_arena_tensor(&dev, GROMA_F32, 4, (int64_t[]) {256, 256, 3, 3}, &w).code != GROMA_OK ||
			groma_arena_tensor(&dev, GROMA_BF16, 4, (int64_t[]) {256, 256, 3, 3}, &w16).code != GROMA_OK ||
			groma_arena_tensor(&dev, GROMA_F32, 1, (int64_t[]) {256}, &b).code != GROMA_OK ||
			groma_fill_random(&x, 6, 1.0f).code != GROMA_OK || groma_fill_random(&w, 7, 0.05f).code != GROMA_OK ||
			groma_fill_random(&b, 8, 0.1f).code != GROMA_OK || groma_convert(&w, &w16).code != GROMA_OK)
		{
			printf("# figures: convolution timings skipped: no room for the operands\n");
			break;
		}
		rows = conv_ms(&x, &w16, &b, &y);
		groma_cuda_conv_kernel(GROMA_CONV_IM2COL);
		im2col = conv_ms(&x, &w16, &b, &y);
		groma_cuda_conv_kernel(GROMA_CONV_IMPLICIT);
		implicit = conv_ms(&x, &w16, &b, &y);
		groma_cuda_conv_kernel(GROMA_CONV_AUTO);
		printf("# figure: conv2d [%lld,256,%lld,%lld] 3x3 bf16 w on %s: by kernel rows %.3f ms (%.0f TFLOPS), "
			   "im2col %.3f ms (%.0f TFLOPS), implicit GEMM %.3f ms (%.0f TFLOPS)\n", (long long) shapes[s][0],
			   (long long) shapes[s][2], (long long) shapes[s][3], device, rows, flops / rows / 1e9, im2col,
			   flops / im2col / 1e9, implicit, flops / implicit / 1e9);
		dev.used = mark;
	}
	dev.used = mark;
}

/* Runs every op comparison, or skips with the reason there is no GPU. */
int
main(void)
{
	groma_arena scratch;
	groma_status st;

	sanitizer_run = getenv("GROMA_OPS_SANITIZER_RUN") && strcmp(getenv("GROMA_OPS_SANITIZER_RUN"), "1") == 0;
	if (sanitizer_run)
		printf("# GROMA_OPS_SANITIZER_RUN=1: no timings, forced attention cases on the tiled kernel only, "
			   "the two largest attention cases left out\n");
	if (gpu_test_skipped("CUDA op parity"))
		return 0;
	st = groma_cuda_register();
	if (st.code != GROMA_OK)
	{
		printf("not ok - registering the CUDA backend: %s\n0 passed, 1 failed\n", st.message);
		return 1;
	}
	groma_arena_init(&host, (size_t) 512 << 20);
	groma_arena_init(&scratch, (size_t) 64 << 20);
	st = groma_device_arena_init(&dev, (size_t) 1 << 30);
	if (st.code == GROMA_OK)
		st = groma_device_arena_init(&dev_scratch, (size_t) 256 << 20);
	if (st.code != GROMA_OK)
	{
		printf("not ok - device arena: %s\n0 passed, 1 failed\n", st.message);
		return 1;
	}
	test_linear();
	test_linear_16bit();
	test_linear_few_rows();
	test_linear_int8();
	test_gemv_batch_invariance();
	test_linear_swiglu();
	test_linear_many();
	test_proposal_queries();
	test_matmul();
	test_elementwise();
	test_rowwise();
	test_attention(&scratch);
	test_attention_views(&scratch);
	/* the same cases on each kernel forced (the tiled one takes head dimensions up to 128) */
	for (int which = GROMA_ATTENTION_PER_QUERY; which <= GROMA_ATTENTION_WARP_PER_KEY; which++)
	{
		static const char *const labels[] = {"", "attn/query", "attn/tiled", "attn/whole", "attn/gemm", "attn/warp"};

		if (sanitizer_run && which != GROMA_ATTENTION_TILED)
			continue;
		groma_cuda_attention_kernel((groma_cuda_attention_path) which);
		attention_label = labels[which];
		test_attention(&scratch);
		test_attention_views(&scratch);
	}
	groma_cuda_attention_kernel(GROMA_ATTENTION_AUTO);
	attention_label = "attention";
	test_attention_scratch(&scratch);
	test_attention_16bit(&scratch);
	test_attention_flash(&scratch);
	test_attention_kv16(&scratch);
	time_attention();
	time_decode_rows();
	time_linear();
	time_conv();
	test_fills();
	test_model_shapes();
	test_conv_norm(&scratch);
	test_spatial();
	printf("%d passed, %d failed\n", passed, failed);
	groma_arena_free(&dev);
	groma_arena_free(&dev_scratch);
	groma_arena_free(&host);
	groma_arena_free(&scratch);
	return failed ? 1 : 0;
}
