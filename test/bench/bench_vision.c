/*
 * bench_vision.c - milliseconds per stage of the vision pipeline on the
 * bundled tiny model, for each golden image (a benchmark, not a test).
 *
 *   build/bench/bench_vision [MODEL_DIR] [RUNS]
 */
#include <stdio.h>
#include <stdlib.h>

#include "../../src/model/vision.h"
#include "../../src/runtime/cpu_parallel.h"

/* Reads a whole file; NULL on failure. */
static uint8_t *
read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	uint8_t    *data;
	long		n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	data = malloc((size_t) n);
	*len = fread(data, 1, (size_t) n, f);
	fclose(f);
	return data;
}

/* Runs one image RUNS times and prints the best time of each stage under label; false on failure. */
static bool
bench_image(groma_model *m, const char *path, const char *label, int runs, groma_arena *act, groma_arena *out)
{
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	groma_vision_timing best = {1e9, 1e9, 1e9, 1e9, 1e9, 1e9, 1e9};
	double		best_total = 1e9;
	int			n_regions = 0;
	size_t		len;
	uint8_t    *data = read_file(path, &len);

	if (data == NULL)
	{
		fprintf(stderr, "bench_vision: cannot read %s\n", path);
		return false;
	}
	for (int r = 0; r < runs; r++)
	{
		groma_vision_result res;
		const groma_vision_timing *t = &res.timing;
		double		total;
		groma_status st;

		groma_arena_reset(act);
		groma_arena_reset(out);
		st = groma_vision_run(m, data, len, &limits, NULL, 0, act, out, out, &res);
		if (st.code != GROMA_OK)
		{
			fprintf(stderr, "bench_vision: %s\n", st.message);
			free(data);
			return false;
		}
		total = t->decode_ms + t->dinov2_ms + t->bridge_ms + t->proposer_ms + t->select_ms + t->region_ms;
		if (total < best_total)
		{
			best_total = total;
			best = *t;
			n_regions = res.n_regions;
		}
	}
	printf("%-24s %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %8d\n", label, best.decode_ms, best.dinov2_ms,
		   best.bridge_ms, best.proposer_ms, best.select_ms, best.fuse_ms, best.region_ms - best.fuse_ms, best_total,
		   n_regions);
	free(data);
	return true;
}

/*
 * Runs each golden image RUNS times and prints the best time of each stage,
 * then the first image again with every proposal kept (the most regions the
 * model can produce: the region encoder's worst case), and that once more
 * with im2col convolutions instead of Winograd, as the baseline.
 */
int
main(int argc, char **argv)
{
	static const char *images[] = {"extreme_ironing.jpg", "waterview.jpg", "synthetic_333x251.jpg"};
	const char *dir = argc > 1 ? argv[1] : "test/golden/tiny-groma";
	int			runs = argc > 2 ? atoi(argv[2]) : 3;
	groma_model *m;
	groma_arena act,
				out;
	char		path[512];
	bool		ok = true;
	groma_status st = groma_model_load(dir, &m);

	if (st.code != GROMA_OK)
	{
		fprintf(stderr, "bench_vision: %s\n", st.message);
		return 1;
	}
	groma_arena_init(&act, (size_t) 2 << 30);
	groma_arena_init(&out, (size_t) 64 << 20);
	printf("CPU threads: %d (GROMA_THREADS overrides)\n", groma_cpu_threads());
	printf("%-24s %8s %8s %8s %8s %8s %8s %8s %8s %8s\n", "image", "decode", "dinov2", "bridge", "propose", "select",
		   "fuse", "tokens", "total", "regions");
	for (int i = 0; i < 3 && ok; i++)
	{
		snprintf(path, sizeof(path), "test/golden/images/%s", images[i]);
		ok = bench_image(m, path, images[i], runs, &act, &out);
	}
	/* no score threshold and no suppression: every proposal becomes a region */
	m->select.score_threshold = 0.0f;
	m->select.nms_threshold = 1.0f;
	snprintf(path, sizeof(path), "test/golden/images/%s", images[0]);
	ok = ok && bench_image(m, path, "all proposals kept", runs, &act, &out);
	/* baseline in the same run: the region encoder's 3x3 convolutions as im2col + GEMM */
	for (int r = 0; r < GROMA_REGION_FUSE_ROUNDS; r++)
		m->region.fuse_u[r].data = NULL;
	for (int l = 0; l < GROMA_REGION_LEVELS; l++)
		m->region.pconv_u[l].data = NULL;
	ok = ok && bench_image(m, path, "same, im2col convs", runs, &act, &out);
	printf("(ms, best of %d runs, tiny model, CPU)\n", runs);
	groma_arena_free(&act);
	groma_arena_free(&out);
	groma_model_free(m);
	return ok ? 0 : 1;
}
