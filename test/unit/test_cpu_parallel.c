/*
 * test_cpu_parallel.c - the CPU thread pool, the split GEMM and the
 * vectorisable exp.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "../../src/runtime/cpu_math.h"
#include "../../src/runtime/cpu_parallel.h"

typedef struct count_job
{
	atomic_int *hits;			/* [n] times each item was visited */
	atomic_int	bad_parts;		/* calls with a part index out of range */
	atomic_int	nested_parts;	/* parts the nested loop reported */
	bool		nest;
} count_job;

/* Counts the items of this part; optionally runs a nested loop inside it. */
static void
count_part(void *ctx, int64_t begin, int64_t end, int part)
{
	count_job  *j = ctx;

	if (part < 0 || part >= groma_cpu_threads())
		atomic_fetch_add(&j->bad_parts, 1);
	for (int64_t i = begin; i < end; i++)
		atomic_fetch_add(&j->hits[i], 1);
	if (j->nest)
	{
		count_job	inner = {calloc(100, sizeof(atomic_int)), 0, 0, false};

		/* inside a part the pool is taken: the nested loop runs as one part here */
		atomic_fetch_add(&j->nested_parts, groma_parallel_for(100, 1, count_part, &inner));
		for (int i = 0; i < 100; i++)
			if (atomic_load(&inner.hits[i]) != 1)
				atomic_fetch_add(&j->bad_parts, 1);
		free(inner.hits);
	}
}

/* Runs one counting loop over n items and checks each item was visited once. */
static void
check_counts(int64_t n, int64_t min_chunk, bool nest)
{
	count_job	j = {calloc((size_t) (n > 0 ? n : 1), sizeof(atomic_int)), 0, 0, nest};
	int			parts = groma_parallel_for(n, min_chunk, count_part, &j);
	int64_t		wrong = 0;

	for (int64_t i = 0; i < n; i++)
		wrong += atomic_load(&j.hits[i]) != 1;
	CHECKF(wrong == 0, "n %lld: %lld items not visited exactly once", (long long) n, (long long) wrong);
	CHECK(atomic_load(&j.bad_parts) == 0);
	CHECK(n <= 0 ? parts == 0 : parts >= 1 && parts <= groma_cpu_threads() && parts <= (n + min_chunk - 1) / min_chunk + 1);
	if (nest)
		CHECK(atomic_load(&j.nested_parts) == parts);
	free(j.hits);
}

/* Every item is visited once, whatever the size, chunk and nesting. */
UNIT_TEST(test_parallel_for_visits_each_item_once)
{
	unit_note("CPU pool: %d threads", groma_cpu_threads());
	CHECK(groma_cpu_threads() >= 1);
	check_counts(0, 1, false);
	check_counts(1, 1, false);
	check_counts(7, 1, false);
	check_counts(1000, 1, false);
	check_counts(1000, 999, false);
	check_counts(100000, 16, false);
	check_counts(64, 1, true);
}

/* Runs check_counts from a second thread while the first also uses the pool. */
static void *
concurrent_counts(void *arg)
{
	for (int r = 0; r < 200; r++)
		check_counts(5000, 1, false);
	return arg;
}

/* Two threads using the pool at once both get every item exactly once. */
UNIT_TEST(test_parallel_for_from_two_threads)
{
	pthread_t	other;

	CHECK(pthread_create(&other, NULL, concurrent_counts, NULL) == 0);
	concurrent_counts(NULL);
	pthread_join(other, NULL);
}

/* The split GEMM equals a double-precision product for all transpose forms and split directions. */
UNIT_TEST(test_split_sgemm)
{
	/* m, n, k: rows split, columns split, too small to split, empty k */
	static const int64_t shapes[][3] = {{600, 40, 200}, {40, 700, 150}, {3, 5, 7}, {64, 64, 0}};

	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
		for (int form = 0; form < 4; form++)
		{
			int64_t		m = shapes[s][0],
						n = shapes[s][1],
						k = shapes[s][2];
			bool		ta = form & 1,
						tb = form & 2;
			float	   *a = malloc((size_t) (m * k + 1) * sizeof(float));
			float	   *b = malloc((size_t) (k * n + 1) * sizeof(float));
			float	   *c = malloc((size_t) (m * n) * sizeof(float));
			double		err = 0;

			for (int64_t i = 0; i < m * k; i++)
				a[i] = (float) ((i * 37 % 101) - 50) / 50.0f;
			for (int64_t i = 0; i < k * n; i++)
				b[i] = (float) ((i * 53 % 97) - 48) / 48.0f;
			for (int64_t i = 0; i < m * n; i++)
				c[i] = 1.0f;
			/* C = 0.5·op(A)·op(B) + 2·C */
			groma_sgemm(ta, tb, m, n, k, 0.5f, a, ta ? m : k, b, tb ? k : n, 2.0f, c, n);
			for (int64_t r = 0; r < m; r++)
				for (int64_t col = 0; col < n; col++)
				{
					double		want = 2.0;

					for (int64_t i = 0; i < k; i++)
						want += 0.5 * (double) (ta ? a[i * m + r] : a[r * k + i]) *
							(double) (tb ? b[col * k + i] : b[i * n + col]);
					if (fabs(want - c[r * n + col]) > err)
						err = fabs(want - c[r * n + col]);
				}
			CHECKF(err < 1e-3, "sgemm %lldx%lldx%lld form %d: max error %g", (long long) m, (long long) n,
				   (long long) k, form, err);
			free(a);
			free(b);
			free(c);
		}
}

/* groma_exp_lanes is within 2 ulp of exp over its whole range and exact where it must be. */
UNIT_TEST(test_exp_lanes_accuracy)
{
	double		worst = 0,
				at = 0;

	for (double x = -87.0; x <= 88.0; x += 1.0 / 4096)
	{
		double		want = exp((double) (float) x);
		double		got = groma_exp_lanes((float) x);
		double		ulps = fabs(got - want) / (ldexp(1.0, ilogb(want) - 23));

		if (ulps > worst)
		{
			worst = ulps;
			at = x;
		}
	}
	unit_note("exp lanes: worst %.2f ulp at %.6f", worst, at);
	CHECKF(worst <= 2.0, "exp lanes: %.2f ulp at %g", worst, at);
	CHECK(groma_exp_lanes(0.0f) == 1.0f);
	CHECK(groma_exp_lanes(-INFINITY) == 0.0f);
	CHECK(groma_exp_lanes(-100.0f) == 0.0f);
	CHECK(isnan(groma_exp_lanes(NAN)));
}

typedef struct gemm_args
{
	int64_t		m,
				n,
				k;
	const float *a,
			   *b;
	float	   *c;
} gemm_args;

/* Runs groma_sgemm (A·Bᵀ) for items [begin, end) into their own outputs, from inside pool parts. */
static void
nested_gemm(void *ctx, int64_t begin, int64_t end, int part)
{
	const gemm_args *g = ctx;

	for (int64_t i = begin; i < end; i++)
		groma_sgemm(false, true, g->m, g->n, g->k, 1.0f, g->a, g->k, g->b, g->k, 0.0f, g->c + i * g->m * g->n, g->n);
}

/*
 * The split GEMM gives the same bits on the whole pool and on one thread
 * (its chunks depend on the shape only): two products computed inside pool
 * parts, where nested calls cannot use the pool, equal the pooled one.
 */
UNIT_TEST(test_split_sgemm_independent_of_threads)
{
	static const int64_t shapes[][3] = {{1025, 512, 256}, {64, 2048, 300}, {300, 256, 256}};

	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
	{
		int64_t		m = shapes[s][0],
					n = shapes[s][1],
					k = shapes[s][2];
		float	   *a = malloc((size_t) (m * k) * sizeof(float));
		float	   *b = malloc((size_t) (n * k) * sizeof(float));
		float	   *pooled = malloc((size_t) (m * n) * sizeof(float));
		float	   *single = malloc((size_t) (2 * m * n) * sizeof(float));
		gemm_args	g = {m, n, k, a, b, single};

		for (int64_t i = 0; i < m * k; i++)
			a[i] = (float) ((i * 2654435761u) % 2000) / 1000.0f - 1.0f;
		for (int64_t i = 0; i < n * k; i++)
			b[i] = (float) ((i * 40503u) % 2000) / 1000.0f - 1.0f;
		groma_sgemm(false, true, m, n, k, 1.0f, a, k, b, k, 0.0f, pooled, n);
		groma_parallel_for(2, 1, nested_gemm, &g);
		CHECKF(memcmp(pooled, single, (size_t) (m * n) * sizeof(float)) == 0 &&
			   memcmp(pooled, single + m * n, (size_t) (m * n) * sizeof(float)) == 0,
			   "%lldx%lldx%lld: pooled and single-thread products differ", (long long) m, (long long) n, (long long) k);
		free(a);
		free(b);
		free(pooled);
		free(single);
	}
}
