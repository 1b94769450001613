/*
 * test_model_cuda.c - the tiny golden model end to end on the GPU (f32
 * weights and compute): for every golden image the kept regions equal the
 * golden run's, boxes/scores and image/region tokens stay within tolerance
 * of the CPU model in the same process, and 12 greedy steps of the grounded
 * caption prompt give the golden ids.  Decode steps recorded as a graph
 * and replayed give the ids of eager steps, in far fewer launches, across
 * requests, after a recording goes stale and when more batches come than
 * recordings are kept.  Then, with bf16 matrices,
 * and with the language model's in int8, the errors and id agreement are
 * reported.  Skips with the CUDA runtime's reason where no GPU is present.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../kernels/groma_cuda.h"
#include "gpu_skip.h"
#include "../../src/io/safetensors.h"
#include "../../src/model/generate.h"
#include "../../src/runtime/ops.h"

#define MODEL_DIR "test/golden/tiny-groma"

static int	passed,
			failed;

/* Prints one TAP line (fmt takes the string what, then optionally the number value) and counts it. */
static void
report(bool ok, const char *fmt, const char *what, double value)
{
	printf("%s - ", ok ? "ok" : "not ok");
	printf(fmt, what, value);
	printf("\n");
	if (ok)
		passed++;
	else
		failed++;
}

/* Milliseconds of a monotonic clock. */
static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

/* Max |a - b| over n floats (NaN counts as infinite). */
static double
max_diff(const float *a, const float *b, int64_t n)
{
	double		m = 0;

	for (int64_t i = 0; i < n; i++)
	{
		double		d = fabs((double) a[i] - b[i]);

		if (!(d <= m))
			m = isnan(d) ? INFINITY : d;
	}
	return m;
}

/* Max difference between a device tensor and a CPU tensor of the same shape. */
static double
tensor_diff(const groma_tensor *dev, const groma_tensor *cpu)
{
	float	   *h = malloc(groma_tensor_nbytes(dev) + 1);
	double		d = INFINITY;

	if (h && groma_download(dev, h).code == GROMA_OK && groma_tensor_numel(dev) == groma_tensor_numel(cpu))
		d = max_diff(h, cpu->data, groma_tensor_numel(cpu));
	free(h);
	return d;
}

/* Reads an I64 golden tensor into ids; returns its length (-1 when absent). */
static int64_t
golden_ids(const groma_st_file *f, const char *name, int64_t *ids, int64_t cap)
{
	groma_st_tensor t;
	int64_t		n;

	if (groma_st_get(f, name, &t).code != GROMA_OK || t.dtype != GROMA_ST_I64)
		return -1;
	n = (int64_t) (t.nbytes / sizeof(int64_t));
	if (n > cap)
		return -1;
	memcpy(ids, t.data, t.nbytes);
	return n;
}

/* Reads golden image `image` (malloc'd, *len bytes) and opens its compact case; NULL when either is missing. */
static uint8_t *
open_case(const char *image, const char *case_name, size_t *len, groma_st_file **gold)
{
	char		path[512];
	uint8_t    *jpeg = NULL;
	FILE	   *f;

	*len = 0;
	*gold = NULL;
	snprintf(path, sizeof(path), "test/golden/images/%s", image);
	f = fopen(path, "rb");
	if (f)
	{
		fseek(f, 0, SEEK_END);
		*len = (size_t) ftell(f);
		fseek(f, 0, SEEK_SET);
		jpeg = malloc(*len + 1);
		if (jpeg && fread(jpeg, 1, *len, f) != *len)
			*len = 0;
		fclose(f);
	}
	snprintf(path, sizeof(path), "test/golden/compact/case_%s.safetensors", case_name);
	if (jpeg == NULL || *len == 0 || groma_st_open(path, gold).code != GROMA_OK)
	{
		free(jpeg);
		return NULL;
	}
	return jpeg;
}

/* What every image of a run shares: the CPU reference model, the tokenizer and the arenas. */
typedef struct run_ctx
{
	const groma_model *cpu_model;
	const groma_tokenizer *tok;
	groma_arena cpu_act,
				cpu_out,		/* CPU model: scratch, results */
				act,
				out,			/* GPU model: scratch, results (device) */
				host;			/* GPU model: result arrays */
} run_ctx;

/* Rewinds every arena of a run. */
static void
reset_all(run_ctx *r)
{
	groma_arena_reset(&r->cpu_act);
	groma_arena_reset(&r->cpu_out);
	groma_arena_reset(&r->act);
	groma_arena_reset(&r->out);
	groma_arena_reset(&r->host);
}

/* One golden image through both models; see the file comment. */
static void
check_image(const char *image, const char *case_name, const groma_model *gpu_model, run_ctx *r)
{
	groma_st_file *gold = NULL;
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	groma_vision_result cpu,
				gpu;
	groma_generation gen = {0};
	int64_t		want[128];
	int64_t		n_want;
	uint8_t    *jpeg = NULL;
	size_t		len = 0;
	double		t0,
				vision_ms,
				gen_ms;
	groma_status st;

	jpeg = open_case(image, case_name, &len, &gold);
	if (jpeg == NULL)
	{
		report(false, "%s: image or golden case missing", case_name, 0);
		return;
	}
	reset_all(r);
	st = groma_vision_run(r->cpu_model, jpeg, len, &limits, NULL, 0, &r->cpu_act, &r->cpu_out, &r->cpu_out, &cpu);
	t0 = now_ms();
	if (st.code == GROMA_OK)
		st = groma_vision_run(gpu_model, jpeg, len, &limits, NULL, 0, &r->act, &r->out, &r->host, &gpu);
	vision_ms = now_ms() - t0;
	if (st.code != GROMA_OK)
	{
		printf("# %s\n", st.message);
		report(false, "%s: vision on CPU and GPU", case_name, 0);
		goto done;
	}
	n_want = golden_ids(gold, "sel.noref.kept_indices", want, 128);
	report(n_want == gpu.n_regions && memcmp(want, gpu.kept, (size_t) gpu.n_regions * sizeof(int64_t)) == 0,
		   "%s: GPU kept regions equal the golden run's (%.0f)", case_name, gpu.n_regions);
	if (gpu.n_regions == cpu.n_regions)
	{
		double		d_box = max_diff(gpu.boxes, cpu.boxes, 4 * (int64_t) gpu.n_regions),
					d_score = max_diff(gpu.scores, cpu.scores, gpu.n_regions);

		report(d_box <= 1e-4 && d_score <= 1e-4, "%s: boxes and scores within 1e-4 of the CPU (max %.2g)", case_name,
			   d_box > d_score ? d_box : d_score);
		report(tensor_diff(&gpu.image_tokens, &cpu.image_tokens) <= 1e-3,
			   "%s: image tokens within 1e-3 of the CPU (max %.2g)", case_name,
			   tensor_diff(&gpu.image_tokens, &cpu.image_tokens));
		report(tensor_diff(&gpu.region_tokens, &cpu.region_tokens) <= 1e-3,
			   "%s: region tokens within 1e-3 of the CPU (max %.2g)", case_name,
			   tensor_diff(&gpu.region_tokens, &cpu.region_tokens));
	}
	t0 = now_ms();
	{
		const char *query = groma_st_metadata(gold, "prompt.gcap.query");

		st = groma_generate(gpu_model, r->tok, &gpu, query ? query : "", 12, false, &r->act, &gen);
	}
	gen_ms = now_ms() - t0;
	n_want = golden_ids(gold, "prompt.gcap.generated_ids", want, 128);
	{
		bool		same = st.code == GROMA_OK && n_want == (int64_t) gen.n;

		for (size_t i = 0; same && i < gen.n; i++)
			same = want[i] == gen.ids[i];
		if (st.code != GROMA_OK)
			printf("# %s\n", st.message);
		report(same, "%s: 12 greedy ids on the GPU equal the golden ids", case_name, 0);
	}
	printf("# %s: GPU vision %.1f ms, prefill + 12 steps %.1f ms (first calls include warm-up)\n", case_name,
		   vision_ms, gen_ms);
	groma_generation_free(&gen);
done:
	groma_st_close(gold);
	free(jpeg);
}

/*
 * The same image with narrower matrices (label: bf16, or int8 for the
 * language model in i8 and the rest bf16): reported, not required to match
 * (the GPU rounds weights and activations): kept regions shared with the
 * f32 CPU run, token errors, and how many greedy ids agree with the golden
 * and with ids, the 12 of another narrow run (NULL: none); the run's own
 * ids are left in ids_out (NULL: not kept).
 */
static void
report_narrow(const char *image, const char *case_name, const char *label, const groma_model *narrow_model,
			  const int64_t *ids, int64_t *ids_out, run_ctx *r)
{
	groma_st_file *gold = NULL;
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	groma_vision_result cpu,
				gpu;
	groma_generation gen = {0};
	int64_t		want[128];
	int64_t		n_want;
	uint8_t    *jpeg = NULL;
	size_t		len = 0;
	int			same_kept = 0,
				same_ids = 0,
				same_other = 0;
	groma_status st;

	jpeg = open_case(image, case_name, &len, &gold);
	if (jpeg == NULL)
	{
		printf("# %s\n", label);
		report(false, "%s: image or golden case missing", case_name, 0);
		return;
	}
	reset_all(r);
	st = groma_vision_run(r->cpu_model, jpeg, len, &limits, NULL, 0, &r->cpu_act, &r->cpu_out, &r->cpu_out, &cpu);
	if (st.code == GROMA_OK)
		st = groma_vision_run(narrow_model, jpeg, len, &limits, NULL, 0, &r->act, &r->out, &r->host, &gpu);
	if (st.code == GROMA_OK)
	{
		const char *query = groma_st_metadata(gold, "prompt.gcap.query");
		char		regions[64] = "not compared (another count of kept regions)";

		for (int i = 0; i < gpu.n_regions && i < cpu.n_regions; i++)
			same_kept += gpu.kept[i] == cpu.kept[i];

		if (gpu.n_regions == cpu.n_regions)
			snprintf(regions, sizeof(regions), "within %.3g of f32",
					 tensor_diff(&gpu.region_tokens, &cpu.region_tokens));
		printf("# %s %s: %d of %d kept regions in the f32 order (f32 keeps %d); image tokens within %.3g of f32, "
			   "region tokens %s\n", case_name, label, same_kept, gpu.n_regions, cpu.n_regions,
			   tensor_diff(&gpu.image_tokens, &cpu.image_tokens), regions);
		st = groma_generate(narrow_model, r->tok, &gpu, query ? query : "", 12, false, &r->act, &gen);
	}
	n_want = golden_ids(gold, "prompt.gcap.generated_ids", want, 128);
	for (size_t i = 0; st.code == GROMA_OK && i < gen.n && (int64_t) i < n_want && want[i] == gen.ids[i]; i++)
		same_ids++;
	for (size_t i = 0; st.code == GROMA_OK && ids && i < gen.n && i < 12 && ids[i] == gen.ids[i]; i++)
		same_other++;
	for (size_t i = 0; st.code == GROMA_OK && ids_out && i < 12; i++)
		ids_out[i] = i < gen.n ? gen.ids[i] : -1;
	if (st.code != GROMA_OK)
		printf("# %s\n", st.message);
	else if (ids)
		printf("# %s %s: the first %d of 12 greedy ids equal the golden (f32) ids, the first %d bf16's\n", case_name,
			   label, same_ids, same_other);
	else
		printf("# %s %s: the first %d of 12 greedy ids equal the golden (f32) ids\n", case_name, label, same_ids);
	report(st.code == GROMA_OK, "%s: the model with narrow matrices runs on the GPU", case_name, 0);
	groma_generation_free(&gen);
	groma_st_close(gold);
	free(jpeg);
}

/*
 * A request after the warm-up (vision, then 12 greedy steps, on an image
 * already seen) makes no device allocation: weights, activations, the KV
 * cache and the 16-bit scratch all live in memory allocated before.
 */
static void
check_steady_state(const char *image, const char *case_name, const char *label, const groma_model *gpu_model,
				   run_ctx *r)
{
	groma_st_file *gold = NULL;
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	groma_vision_result gpu;
	groma_generation gen = {0};
	uint8_t    *jpeg = NULL;
	size_t		len = 0;
	uint64_t	before;
	groma_status st;

	jpeg = open_case(image, case_name, &len, &gold);
	if (jpeg == NULL)
	{
		report(false, "%s: image missing", label, 0);
		return;
	}
	reset_all(r);
	before = groma_cuda_allocations();
	st = groma_vision_run(gpu_model, jpeg, len, &limits, NULL, 0, &r->act, &r->out, &r->host, &gpu);
	if (st.code == GROMA_OK)
		st = groma_generate(gpu_model, r->tok, &gpu, "What is in the image?", 12, false, &r->act, &gen);
	if (st.code != GROMA_OK)
		printf("# %s\n", st.message);
	report(st.code == GROMA_OK && groma_cuda_allocations() == before,
		   "%s: a request after the warm-up allocates no GPU memory (%.0f allocations)", label,
		   (double) (groma_cuda_allocations() - before));
	groma_generation_free(&gen);
	groma_st_close(gold);
	free(jpeg);
}

/* What one vision run gave: its region count and boxes, and its image and region tokens copied to the host. */
typedef struct vision_copy
{
	int			n_regions;
	float		boxes[100][4];
	float	   *image_tokens;
	float	   *region_tokens;
	int64_t		image_count,
				region_count;
} vision_copy;

/* Fills the whole of a rewound device arena with NaN, so that work left undone shows. */
static void
poison_arena(groma_arena *a)
{
	groma_tensor all;

	groma_arena_reset(a);
	if (groma_arena_tensor(a, GROMA_F32, 1, (int64_t[]) {(int64_t) (a->size / sizeof(float)) - 64}, &all).code ==
		GROMA_OK)
		(void) groma_fill(&all, NAN);
	groma_arena_reset(a);
}

/*
 * Runs vision on jpeg from rewound arenas filled with NaN into *c, counting
 * its launches; false when it failed.
 */
static bool
vision_copied(const groma_model *m, const uint8_t *jpeg, size_t len, run_ctx *r, vision_copy *c,
			  uint64_t *launches)
{
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	groma_vision_result res;
	uint64_t	before;
	groma_status st;

	memset(c, 0, sizeof(*c));
	reset_all(r);
	poison_arena(&r->act);
	poison_arena(&r->out);
	before = groma_cuda_launch_count();
	st = groma_vision_run(m, jpeg, len, &limits, NULL, 0, &r->act, &r->out, &r->host, &res);
	*launches = groma_cuda_launch_count() - before;
	if (st.code != GROMA_OK)
	{
		printf("# %s\n", st.message);
		return false;
	}
	c->n_regions = res.n_regions < 100 ? res.n_regions : 100;
	memcpy(c->boxes, res.boxes, (size_t) c->n_regions * 4 * sizeof(float));
	c->image_count = groma_tensor_numel(&res.image_tokens);
	c->region_count = groma_tensor_numel(&res.region_tokens);
	c->image_tokens = malloc((size_t) c->image_count * sizeof(float));
	c->region_tokens = malloc((size_t) (c->region_count > 0 ? c->region_count : 1) * sizeof(float));
	return c->image_tokens && c->region_tokens && groma_download(&res.image_tokens, c->image_tokens).code == GROMA_OK &&
		(c->region_count == 0 || groma_download(&res.region_tokens, c->region_tokens).code == GROMA_OK);
}

/* True when two vision runs gave the same bits. */
static bool
same_vision(const vision_copy *a, const vision_copy *b)
{
	return a->n_regions == b->n_regions && a->image_count == b->image_count && a->region_count == b->region_count &&
		memcmp(a->boxes, b->boxes, sizeof(a->boxes)) == 0 &&
		memcmp(a->image_tokens, b->image_tokens, (size_t) a->image_count * sizeof(float)) == 0 &&
		memcmp(a->region_tokens, b->region_tokens, (size_t) a->region_count * sizeof(float)) == 0;
}

/*
 * Vision stages recorded once and replayed (DINOv2, the bridge, the
 * proposer's device work, the region fusion) give the bits of eager runs: one run with the
 * recordings off, then three with them on from rewound arenas filled with
 * NaN (each stage eager, then recorded and replayed, then replayed).
 * Prints the launches.
 */
static void
check_vision_graphs(const char *image, const char *case_name, const char *label, groma_model *m, run_ctx *r)
{
	groma_st_file *gold = NULL;
	vision_copy eager,
				graphed[3];
	uint64_t	eager_launches = 0,
				launches[3] = {0};
	long		recorded = 0,
				replayed = 0;
	size_t		len = 0;
	uint8_t    *jpeg = open_case(image, case_name, &len, &gold);
	bool		ok;

	if (jpeg == NULL)
	{
		report(false, "%s: image missing", label, 0);
		return;
	}
	for (int i = 0; i < GROMA_VISION_GRAPH_STAGES; i++)
	{
		groma_graph_cache_set_enabled(&m->vision_graphs[i], false);
		groma_graph_cache_set_enabled(&m->vision_graphs[i], true);	/* empty: every key new */
		recorded -= m->vision_graphs[i].recorded;
		replayed -= m->vision_graphs[i].replayed;
	}
	for (int i = 0; i < GROMA_VISION_GRAPH_STAGES; i++)
		groma_graph_cache_set_enabled(&m->vision_graphs[i], false);
	ok = vision_copied(m, jpeg, len, r, &eager, &eager_launches);
	for (int i = 0; i < GROMA_VISION_GRAPH_STAGES; i++)
		groma_graph_cache_set_enabled(&m->vision_graphs[i], true);
	for (int run = 0; run < 3; run++)
		ok = vision_copied(m, jpeg, len, r, &graphed[run], &launches[run]) && ok;
	for (int i = 0; i < GROMA_VISION_GRAPH_STAGES; i++)
	{
		recorded += m->vision_graphs[i].recorded;
		replayed += m->vision_graphs[i].replayed;
	}
	for (int run = 0; run < 3; run++)
		ok = ok && same_vision(&eager, &graphed[run]);
	report(ok && recorded == 4 && replayed == 8,
		   "%s: vision stages recorded (4) and replayed (8): the bits of an eager run", label, 0);
	printf("# %s: recorded %ld, replayed %ld; launches per vision run: %llu eager, %llu, %llu, %llu with graphs\n",
		   label, recorded, replayed, (unsigned long long) eager_launches, (unsigned long long) launches[0],
		   (unsigned long long) launches[1], (unsigned long long) launches[2]);
	free(eager.image_tokens);
	free(eager.region_tokens);
	for (int run = 0; run < 3; run++)
	{
		free(graphed[run].image_tokens);
		free(graphed[run].region_tokens);
	}
	groma_st_close(gold);
	free(jpeg);
}

/* 12 greedy ids of query on gpu's image tokens, and the kernels (and graphs) that took; false when it failed. */
static bool
ids_and_launches(const groma_model *gpu_model, const groma_vision_result *gpu, run_ctx *r, int64_t *ids,
				 uint64_t *launches)
{
	groma_generation gen = {0};
	uint64_t	before = groma_cuda_launch_count();
	groma_status st = groma_generate(gpu_model, r->tok, gpu, "What is in the image?", 12, false, &r->act, &gen);

	*launches = groma_cuda_launch_count() - before;
	for (int i = 0; i < 12; i++)
		ids[i] = st.code == GROMA_OK && (size_t) i < gen.n ? gen.ids[i] : -1;
	if (st.code != GROMA_OK)
		printf("# %s\n", st.message);
	groma_generation_free(&gen);
	return st.code == GROMA_OK;
}

/*
 * Decode steps recorded once and replayed (graph_cache.h) give the ids of
 * eager steps: a request with graphs off, then with graphs on (the first
 * decode step eager, the second recorded, the rest replayed), then a second
 * request that replays from its first decode step with its own positions,
 * then one after a RoPE table of another theta moved the table's contents
 * (the recording is stale: dropped and made again).  Prints the launches.
 */
static void
check_decode_graphs(const char *image, const char *case_name, const groma_model *gpu_model, run_ctx *r)
{
	groma_st_file *gold = NULL;
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	groma_vision_result gpu;
	groma_graph_cache *g = gpu_model->llm.graphs;
	int64_t		eager[12],
				ids[12];
	uint64_t	eager_launches = 0,
				launches = 0;
	long		recorded,
				replayed;
	uint8_t    *jpeg;
	size_t		len = 0;
	groma_tensor other;
	bool		ok;
	groma_status st;

	jpeg = open_case(image, case_name, &len, &gold);
	if (jpeg == NULL)
	{
		report(false, "%s: image missing", case_name, 0);
		return;
	}
	reset_all(r);
	st = groma_vision_run(gpu_model, jpeg, len, &limits, NULL, 0, &r->act, &r->out, &r->host, &gpu);
	if (st.code != GROMA_OK)
	{
		printf("# %s\n", st.message);
		report(false, "%s: vision for the graph checks", case_name, 0);
		goto done;
	}
	groma_graph_cache_set_enabled(g, false);
	ok = ids_and_launches(gpu_model, &gpu, r, eager, &eager_launches);
	groma_graph_cache_set_enabled(g, true);
	recorded = g->recorded;
	replayed = g->replayed;
	ok = ok && ids_and_launches(gpu_model, &gpu, r, ids, &launches);
	report(ok && memcmp(ids, eager, sizeof(ids)) == 0 && g->recorded == recorded + 1 && g->replayed == replayed + 10,
		   "%s: one recording, 10 replayed steps: the ids of eager steps", case_name, 0);
	printf("# %s: 12 ids took %llu launches eagerly, %llu with decode graphs\n", case_name,
		   (unsigned long long) eager_launches, (unsigned long long) launches);
	report(launches * 2 < eager_launches, "%s: decode graphs at least halve the launches of 12 ids", case_name, 0);
	recorded = g->recorded;
	replayed = g->replayed;
	ok = ok && ids_and_launches(gpu_model, &gpu, r, ids, &launches);
	report(ok && memcmp(ids, eager, sizeof(ids)) == 0 && g->recorded == recorded && g->replayed == replayed + 11,
		   "%s: a second request replays every decode step with its own positions", case_name, 0);
	/* another theta refills the RoPE table under the same pointer: the recording is stale */
	st = groma_arena_tensor(&r->out, GROMA_F32, 4, (int64_t[]) {1, 2, 1, 8}, &other);
	if (st.code == GROMA_OK)
		st = groma_fill(&other, 1.0f);
	if (st.code == GROMA_OK)
		st = groma_rope(&other, NULL, 3, 500.0f);
	recorded = g->recorded;
	ok = ok && st.code == GROMA_OK && ids_and_launches(gpu_model, &gpu, r, ids, &launches);
	report(ok && memcmp(ids, eager, sizeof(ids)) == 0 && g->recorded == recorded + 1,
		   "%s: a stale recording is dropped and made again; the ids of eager steps", case_name, 0);
done:
	groma_st_close(gold);
	free(jpeg);
}

/* Number of sequences check_graph_eviction runs one after another: more keys than a set keeps. */
#define EVICTION_SEQUENCES (GROMA_GRAPH_CACHE_SLOTS + 3)

/*
 * One groma_llama_step of n sequences whose new positions (rows[b] each)
 * hold the embeddings of ids (all rows in order); next[n] gets their picks
 * (it may be ids itself).  Scratch from r->act, rewound.
 */
static groma_status
step_ids(const groma_llama *llm, groma_kv_cache *const *caches, const int64_t *rows, int64_t n, const int64_t *ids,
		 run_ctx *r, int64_t *next)
{
	int64_t		total = 0;
	groma_tensor x;
	size_t		mark = r->act.used;
	groma_status st;

	for (int64_t b = 0; b < n; b++)
		total += rows[b];
	st = groma_arena_tensor(&r->act, GROMA_F32, 2, (int64_t[]) {total, llm->cfg.hidden}, &x);	/* [total, D] */
	if (st.code == GROMA_OK)
		st = groma_llama_embed(llm, ids, total, &x);
	if (st.code == GROMA_OK)
		st = groma_llama_step(llm, caches, rows, n, &x, &r->act, next);
	r->act.used = mark;
	return st;
}

/*
 * The greedy ids of EVICTION_SEQUENCES sequences, each in its own KV cache
 * (so each is its own key), prefilled with 3 tokens and decoded 4 steps
 * alone, then the first again; ids[s][4] per sequence.  False on failure.
 */
static bool
eviction_ids(const groma_model *m, run_ctx *r, int64_t ids[][4])
{
	const groma_llama *llm = &m->llm;
	groma_arena caches_arena = {0};
	groma_kv_cache caches[EVICTION_SEQUENCES + 1];
	groma_status st = groma_device_arena_init(&caches_arena, EVICTION_SEQUENCES *
											  (groma_kv_cache_bytes(&llm->cfg, 16) + 256));

	for (int s = 0; s < EVICTION_SEQUENCES && st.code == GROMA_OK; s++)
		st = groma_kv_cache_init(&caches[s], &llm->cfg, 16, &caches_arena);
	caches[EVICTION_SEQUENCES] = caches[0];
	for (int s = 0; s <= EVICTION_SEQUENCES && st.code == GROMA_OK; s++)
	{
		groma_kv_cache *c = &caches[s];
		int64_t		prompt[3] = {1, 100 + s, 7},
					three = 3,
					one = 1,
					next = 0;

		c->length = 0;			/* the last run reuses the first cache from the start */
		st = step_ids(llm, &c, &three, 1, prompt, r, &next);
		for (int t = 0; t < 4 && st.code == GROMA_OK; t++)
		{
			st = step_ids(llm, &c, &one, 1, &next, r, &next);
			ids[s][t] = next;
		}
	}
	if (st.code != GROMA_OK)
		printf("# %s\n", st.message);
	groma_arena_free(&caches_arena);
	return st.code == GROMA_OK;
}

/*
 * More keys than a set keeps: each sequence in its own cache records its
 * own graph and the least recently used ones are freed; every sequence's
 * ids equal those of eager steps, the first one's too when it comes back
 * after its recording was evicted.
 */
static void
check_graph_eviction(const groma_model *m, run_ctx *r)
{
	groma_graph_cache *g = m->llm.graphs;
	int64_t		eager[EVICTION_SEQUENCES + 1][4],
				graphed[EVICTION_SEQUENCES + 1][4];
	long		recorded;
	bool		ok;

	reset_all(r);
	groma_graph_cache_set_enabled(g, false);
	ok = eviction_ids(m, r, eager);
	groma_graph_cache_set_enabled(g, true);
	recorded = g->recorded;
	ok = ok && eviction_ids(m, r, graphed);
	report(ok && memcmp(eager, graphed, sizeof(eager)) == 0 && g->recorded - recorded == EVICTION_SEQUENCES + 1 &&
		   g->used == GROMA_GRAPH_CACHE_SLOTS,
		   "%s: more keys than slots: each recorded, the oldest evicted, every id that of eager steps", "f32", 0);
}

/* Sequences check_graph_batch decodes together: over the 4 rows a bf16 GEMV takes, so cuBLAS runs in the graph. */
#define BATCH_SEQUENCES 6

/* 4 greedy ids of BATCH_SEQUENCES sequences decoded together after a prefill each; false on failure. */
static bool
batch_ids(const groma_model *m, run_ctx *r, int64_t ids[][4])
{
	const groma_llama *llm = &m->llm;
	groma_arena caches_arena = {0};
	groma_kv_cache caches[BATCH_SEQUENCES];
	groma_kv_cache *ptrs[BATCH_SEQUENCES];
	int64_t		rows[BATCH_SEQUENCES],
				next[BATCH_SEQUENCES];
	groma_status st = groma_device_arena_init(&caches_arena, BATCH_SEQUENCES *
											  (groma_kv_cache_bytes(&llm->cfg, 16) + 256));

	for (int s = 0; s < BATCH_SEQUENCES && st.code == GROMA_OK; s++)
	{
		int64_t		prompt[3] = {1, 200 + 3 * s, 9},
					three = 3;

		ptrs[s] = &caches[s];
		rows[s] = 1;
		st = groma_kv_cache_init(&caches[s], &llm->cfg, 16, &caches_arena);
		if (st.code == GROMA_OK)
			st = step_ids(llm, &ptrs[s], &three, 1, prompt, r, &next[s]);
	}
	for (int t = 0; t < 4 && st.code == GROMA_OK; t++)
	{
		st = step_ids(llm, ptrs, rows, BATCH_SEQUENCES, next, r, next);
		for (int s = 0; s < BATCH_SEQUENCES; s++)
			ids[s][t] = next[s];
	}
	if (st.code != GROMA_OK)
		printf("# %s\n", st.message);
	groma_arena_free(&caches_arena);
	return st.code == GROMA_OK;
}

/*
 * A decode step of BATCH_SEQUENCES sequences together, recorded and
 * replayed (with bf16 weights its linears run on cuBLAS inside the graph),
 * gives the ids of eager steps.
 */
static void
check_graph_batch(const char *label, const groma_model *m, run_ctx *r)
{
	groma_graph_cache *g = m->llm.graphs;
	int64_t		eager[BATCH_SEQUENCES][4],
				graphed[BATCH_SEQUENCES][4];
	long		replayed;
	bool		ok;

	reset_all(r);
	groma_graph_cache_set_enabled(g, false);
	ok = batch_ids(m, r, eager);
	groma_graph_cache_set_enabled(g, true);
	replayed = g->replayed;
	ok = ok && batch_ids(m, r, graphed);
	report(ok && memcmp(eager, graphed, sizeof(eager)) == 0 && g->replayed - replayed == 3,
		   "%s: 6 sequences decoded together, recorded and replayed: the ids of eager steps", label, 0);
}

int
main(void)
{
	static const char *images[][2] = {
		{"extreme_ironing.jpg", "extreme_ironing"}, {"waterview.jpg", "waterview"},
		{"synthetic_333x251.jpg", "synthetic"},
	};
	groma_model *cpu_model = NULL,
			   *gpu_model = NULL;
	groma_tokenizer *tok = NULL;
	run_ctx		r = {0};
	int64_t		bf16_ids[3][12];
	groma_status st;

	memset(bf16_ids, 0xff, sizeof(bf16_ids));
	if (gpu_test_skipped("tiny model on the GPU"))
		return 0;
	st = groma_cuda_register();
	if (st.code == GROMA_OK)
		st = groma_model_load(MODEL_DIR, &cpu_model);
	if (st.code == GROMA_OK)
		st = groma_model_load_on(MODEL_DIR, GROMA_DEVICE_CUDA, GROMA_F32, &gpu_model);
	if (st.code == GROMA_OK)
		st = groma_tokenizer_load(MODEL_DIR, &tok);
	if (st.code == GROMA_OK)
		st = groma_arena_init(&r.cpu_act, (size_t) 2 << 30);
	if (st.code == GROMA_OK)
		st = groma_arena_init(&r.cpu_out, (size_t) 64 << 20);
	if (st.code == GROMA_OK)
		st = groma_device_arena_init(&r.act, (size_t) 2 << 30);
	if (st.code == GROMA_OK)
		st = groma_device_arena_init(&r.out, (size_t) 64 << 20);
	if (st.code == GROMA_OK)
		st = groma_arena_init(&r.host, (size_t) 16 << 20);
	if (st.code != GROMA_OK)
	{
		printf("not ok - setting up: %s\n0 passed, 1 failed\n", st.message);
		return 1;
	}
	r.cpu_model = cpu_model;
	r.tok = tok;
	for (int i = 0; i < 3; i++)
		check_image(images[i][0], images[i][1], gpu_model, &r);
	check_steady_state(images[0][0], images[0][1], "f32", gpu_model, &r);
	check_decode_graphs(images[1][0], images[1][1], gpu_model, &r);
	check_vision_graphs(images[2][0], images[2][1], "f32", gpu_model, &r);
	check_graph_eviction(gpu_model, &r);
	check_graph_batch("f32", gpu_model, &r);
	groma_model_free(gpu_model);
	gpu_model = NULL;
	st = groma_model_load_on(MODEL_DIR, GROMA_DEVICE_CUDA, GROMA_BF16, &gpu_model);
	if (st.code != GROMA_OK)
		printf("# %s\n", st.message);
	report(st.code == GROMA_OK, "%sloading bf16 matrices onto the GPU", "", 0);
	for (int i = 0; gpu_model && i < 3; i++)
		report_narrow(images[i][0], images[i][1], "bf16", gpu_model, NULL, bf16_ids[i], &r);
	if (gpu_model)
		check_steady_state(images[0][0], images[0][1], "bf16", gpu_model, &r);
	if (gpu_model)
		check_decode_graphs(images[1][0], images[1][1], gpu_model, &r);
	if (gpu_model)
		check_graph_batch("bf16", gpu_model, &r);
	if (gpu_model)
		check_vision_graphs(images[2][0], images[2][1], "bf16", gpu_model, &r);
	groma_model_free(gpu_model);
	/* weight-only int8: the language model's matrices in i8, the rest bf16; drift against bf16 */
	st = groma_model_load_on(MODEL_DIR, GROMA_DEVICE_CUDA, GROMA_I8, &gpu_model);
	if (st.code != GROMA_OK)
		printf("# %s\n", st.message);
	report(st.code == GROMA_OK, "%sloading int8 language-model matrices onto the GPU", "", 0);
	for (int i = 0; gpu_model && i < 3; i++)
		report_narrow(images[i][0], images[i][1], "int8", gpu_model, bf16_ids[i], NULL, &r);
	if (gpu_model)
		check_steady_state(images[0][0], images[0][1], "int8", gpu_model, &r);
	if (gpu_model)
		check_decode_graphs(images[1][0], images[1][1], gpu_model, &r);
	if (gpu_model)
		check_graph_batch("int8", gpu_model, &r);
	printf("%d passed, %d failed\n", passed, failed);
	groma_arena_free(&r.cpu_act);
	groma_arena_free(&r.cpu_out);
	groma_arena_free(&r.act);
	groma_arena_free(&r.out);
	groma_arena_free(&r.host);
	groma_tokenizer_free(tok);
	groma_model_free(gpu_model);
	groma_model_free(cpu_model);
	return failed ? 1 : 0;
}
