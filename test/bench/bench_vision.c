/*
 * bench_vision.c - milliseconds per stage of the vision pipeline on the
 * bundled tiny model, for each golden image (a benchmark, not a test).
 *
 *   build/bench/bench_vision [MODEL_DIR] [RUNS]
 */
#include <stdio.h>
#include <stdlib.h>

#include "../../src/model/vision.h"

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

/* Runs each golden image RUNS times and prints the best time of each stage. */
int
main(int argc, char **argv)
{
	static const char *images[] = {"extreme_ironing.jpg", "waterview.jpg", "synthetic_333x251.jpg"};
	const char *dir = argc > 1 ? argv[1] : "test/golden/tiny-groma";
	int			runs = argc > 2 ? atoi(argv[2]) : 3;
	groma_model *m;
	groma_arena act,
				out;
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	groma_status st = groma_model_load(dir, &m);

	if (st.code != GROMA_OK)
	{
		fprintf(stderr, "bench_vision: %s\n", st.message);
		return 1;
	}
	groma_arena_init(&act, (size_t) 2 << 30);
	groma_arena_init(&out, (size_t) 64 << 20);
	printf("%-24s %8s %8s %8s %8s %8s %8s %8s %8s %8s\n", "image", "decode", "dinov2", "bridge", "propose", "select",
		   "fuse", "tokens", "total", "regions");
	for (int i = 0; i < 3; i++)
	{
		char		path[512];
		size_t		len;
		uint8_t    *data;
		groma_vision_timing best = {1e9, 1e9, 1e9, 1e9, 1e9, 1e9, 1e9};
		double		best_total = 1e9;
		int			n_regions = 0;

		snprintf(path, sizeof(path), "test/golden/images/%s", images[i]);
		data = read_file(path, &len);
		for (int r = 0; r < runs && data; r++)
		{
			groma_vision_result res;
			const groma_vision_timing *t = &res.timing;
			double		total;

			groma_arena_reset(&act);
			groma_arena_reset(&out);
			st = groma_vision_run(m, data, len, &limits, NULL, 0, &act, &out, &res);
			if (st.code != GROMA_OK)
			{
				fprintf(stderr, "bench_vision: %s\n", st.message);
				return 1;
			}
			total = t->decode_ms + t->dinov2_ms + t->bridge_ms + t->proposer_ms + t->select_ms + t->region_ms;
			if (total < best_total)
			{
				best_total = total;
				best = *t;
				n_regions = res.n_regions;
			}
		}
		printf("%-24s %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %8d\n", images[i], best.decode_ms, best.dinov2_ms,
			   best.bridge_ms, best.proposer_ms, best.select_ms, best.fuse_ms, best.region_ms - best.fuse_ms, best_total,
			   n_regions);
		free(data);
	}
	printf("(ms, best of %d runs, tiny model, CPU)\n", runs);
	groma_model_free(m);
	return 0;
}
