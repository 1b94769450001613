/*
 * cli_bench.c - groma-server --bench --random-weights --config real|FILE:
 * the model's stages at the configured size with random weights, timed on
 * --device, one JSON line per figure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_json.h"
#include "cli.h"
#include "../model/generate.h"
#include "../model/kv_pool.h"
#include "../model/vision.h"
#include "../runtime/cpu_parallel.h"
#include "../runtime/device_ops.h"
#include "../runtime/ops.h"

#ifdef GROMA_WITH_CUDA
#include "../../kernels/groma_cuda.h"
#endif

#define BENCH_REGIONS 100
#define BENCH_NEW_TOKENS 64
#define BENCH_TEXT_TOKENS 40	/* system prompt and query around the placeholders */
#define BENCH_BATCH_STEPS 32	/* decode steps timed per batch size */

/* Everything one benchmark run holds. */
typedef struct bench
{
	groma_device device;
	groma_model *m;
	groma_arena act;			/* scratch, on the device */
	groma_arena keep;			/* tensors that outlive a stage, on the device */
	groma_arena host;			/* CPU memory for host-side outputs */
	/* figures the summary reads against each other (0 when not measured) */
	double		copy_gbps;		/* copy_bandwidth */
	double		vision_ms;		/* vision_ms_per_image_batch_1 */
	double		prefill_ms;		/* prefill_ms */
	double		decode_ms;		/* decode_step_ms_batch_1 (groma_llama_step, as groma-server decodes) */
	int64_t		positions;		/* the prompt length the decode steps attend over */
	int			max_batch;		/* --bench-max-batch: larger batches are not measured */
} bench;

/* Milliseconds of a monotonic clock, after the device has finished its queue. */
static double
now_ms(const bench *b)
{
	struct timespec ts;

	(void) groma_synchronize(b->device);	/* a failure resurfaces at the next call */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

#ifdef GROMA_WITH_CUDA
/*
 * Prints the per-op GPU times since the last take as one JSON line,
 * {"profile": stage, "gpu_ms": ..., "per": repetitions, "ops": [{"op",
 * "calls", "ms"}, ...]}, largest first and divided by repetitions; prints
 * nothing when profiling is off.
 */
static void
print_profile(const char *stage, int repetitions)
{
	groma_cuda_op_time ops[GROMA_CUDA_PROFILE_MAX_OPS];
	int			n = groma_cuda_profile_take(ops, GROMA_CUDA_PROFILE_MAX_OPS);
	json_t	   *list = json_array();
	double		sum = 0.0;

	if (n < 0)
	{
		json_decref(list);
		return;
	}
	if (repetitions < 1)
		repetitions = 1;
	for (int i = 0; i < n; i++)
	{
		sum += ops[i].ms;
		json_array_append_new(list, json_pack("{s:s, s:o, s:o}", "op", ops[i].op, "calls",
											  groma_json_rounded((double) ops[i].calls / repetitions, 1), "ms",
											  groma_json_rounded(ops[i].ms / repetitions, 3)));
	}
	groma_json_print_line(json_pack("{s:s, s:o, s:i, s:o}", "profile", stage, "gpu_ms",
									groma_json_rounded(sum / repetitions, 3), "per", repetitions, "ops", list));
}
#endif

/*
 * With GROMA_CUDA_PROFILE=1 on the GPU: prints the per-op GPU time since the
 * last call as one JSON line labelled stage (NULL: discards it).
 */
static void
profile(const bench *b, const char *stage, int repetitions)
{
#ifdef GROMA_WITH_CUDA
	if (b->device == GROMA_DEVICE_CUDA)
	{
		if (stage)
			print_profile(stage, repetitions);
		else
			groma_cuda_profile_reset();
	}
#endif
}

/* Names the device and measures its copy bandwidth (read + write of a 256 MB buffer). */
static groma_status
device_figures(bench *b)
{
	char		desc[512];
	int64_t		n = (int64_t) 64 << 20;	/* floats: 256 MB */
	groma_tensor src,
				dst;
	size_t		mark = b->act.used;
	double		best = 1e30;

#ifdef GROMA_WITH_CUDA
	if (b->device == GROMA_DEVICE_CUDA)
		GROMA_TRY(groma_cuda_describe_device(desc, sizeof(desc)));
	else
#endif
		snprintf(desc, sizeof(desc), "CPU, %d threads", groma_cpu_threads());
	groma_json_print_line(json_pack("{s:s, s:o}", "figure", "device", "name", groma_json_text(desc)));
	GROMA_TRY(groma_arena_tensor(&b->act, GROMA_F32, 1, &n, &src));
	GROMA_TRY(groma_arena_tensor(&b->act, GROMA_F32, 1, &n, &dst));
	GROMA_TRY(groma_fill(&src, 1.0f));
	for (int r = 0; r < 5; r++)
	{
		double		t0 = now_ms(b);

		GROMA_TRY(groma_copy(&src, &dst));
		t0 = now_ms(b) - t0;
		if (t0 < best)
			best = t0;
	}
	b->copy_gbps = 2.0 * (double) n * sizeof(float) / (best / 1e3) / 1e9;
	groma_bench_figure("copy_bandwidth", b->copy_gbps, "GB/s", "device-to-device copy, bytes read + written");
	b->act.used = mark;
	b->act.high_water = mark;	/* activation_peak_mb counts the model's use, not this buffer */
	return groma_ok();
}

/* Fills 100 boxes spread over the image, normalised (cx, cy, w, h). */
static void
spread_boxes(float boxes[BENCH_REGIONS][4])
{
	for (int i = 0; i < BENCH_REGIONS; i++)
	{
		boxes[i][0] = 0.1f + 0.8f * (float) (i % 10) / 9.0f;
		boxes[i][1] = 0.1f + 0.8f * (float) (i / 10) / 9.0f;
		boxes[i][2] = 0.05f + 0.015f * (float) (i % 7);
		boxes[i][3] = 0.05f + 0.015f * (float) (i % 5);
	}
}

#ifdef GROMA_WITH_CUDA
/* True on a GPU that is not the CPU emulator (where the figures of other methods would only cost time). */
static bool
on_real_gpu(const bench *b)
{
	char		desc[512];

	return b->device == GROMA_DEVICE_CUDA && groma_cuda_describe_device(desc, sizeof(desc)).code == GROMA_OK &&
		strstr(desc, "emulator") == NULL;
}

/*
 * Best of three runs of DINOv2 (region is false) or of the region
 * encoder's fuse and tokens for 100 regions, in ms, as the default
 * method's figures are taken (after a switch of method the first run is
 * eager, the second records its stages, the third replays them).
 */
static groma_status
time_stage(bench *b, bool region, const groma_tensor *pixels, groma_tensor *hidden, const float *boxes,
		   groma_tensor *region_tokens, double *best)
{
	groma_status st = groma_ok();

	*best = 1e30;
	for (int r = 0; r < 3 && st.code == GROMA_OK; r++)
	{
		size_t		mark = b->act.used;
		double		t0 = now_ms(b);
		groma_region_maps maps;

		if (region)
		{
			st = groma_region_fuse(&b->m->region, hidden, &b->act, &b->act, &maps);
			if (st.code == GROMA_OK)
				st = groma_region_tokens(&b->m->region, &maps, 0, boxes, BENCH_REGIONS, &b->act, region_tokens,
										 NULL, NULL, NULL, NULL);
		}
		else
			st = groma_dinov2_forward(&b->m->vision, pixels, &b->act, hidden, NULL);
		t0 = now_ms(b) - t0;
		*best = t0 < *best ? t0 : *best;
		b->act.used = mark;
	}
	return st;
}

/*
 * On a GPU (not the emulator): the stages again with the methods that are
 * not the default yet, so one run shows which should be: the region
 * encoder with its convolutions by im2col and by the implicit GEMM, DINOv2
 * with the flash attention (bf16 weights).
 */
static groma_status
method_figures(bench *b, const groma_tensor *pixels, groma_tensor *hidden, const float *boxes,
			   groma_tensor *region_tokens)
{
	double		t;
	groma_status st = groma_ok();

	if (!on_real_gpu(b))
		return groma_ok();
	groma_cuda_conv_kernel(GROMA_CONV_IM2COL);
	st = time_stage(b, true, pixels, hidden, boxes, region_tokens, &t);
	if (st.code == GROMA_OK)
		groma_bench_figure("region_encoder_ms_im2col", t, "ms", "region_encoder_ms with every convolution by im2col");
	groma_cuda_conv_kernel(GROMA_CONV_IMPLICIT);
	if (st.code == GROMA_OK)
		st = time_stage(b, true, pixels, hidden, boxes, region_tokens, &t);
	if (st.code == GROMA_OK)
		groma_bench_figure("region_encoder_ms_implicit_conv", t, "ms",
						   "region_encoder_ms with bf16 convolutions by the implicit GEMM");
	groma_cuda_conv_kernel(GROMA_CONV_AUTO);
	groma_cuda_attention_kernel(GROMA_ATTENTION_FLASH);
	if (st.code == GROMA_OK && groma_cuda_attention_flash_fits(b->m->vision.cfg.hidden / b->m->vision.cfg.heads))
	{
		st = time_stage(b, false, pixels, hidden, boxes, region_tokens, &t);
		if (st.code == GROMA_OK)
			groma_bench_figure("dinov2_ms_flash_attention", t, "ms", "dinov2_ms with the flash attention kernel");
	}
	groma_cuda_attention_kernel(GROMA_ATTENTION_AUTO);
	return st;
}
#endif

/* The vision stages on a random image; leaves image and region tokens in b->keep. */
static groma_status
vision_figures(bench *b, groma_tensor *image_tokens, groma_tensor *region_tokens)
{
	const groma_dinov2_config *vc = &b->m->vision.cfg;
	int64_t		tokens = groma_dinov2_tokens(vc),
				half = (vc->image / vc->patch) / 2,
				d = b->m->llm.cfg.hidden;
	groma_tensor pixels,
				hidden,
				features;
	groma_proposer_outputs prop;
	groma_region_maps maps;
	float		boxes[BENCH_REGIONS][4];
	double		t0,
				t_dino = 1e30,
				t_prop = 1e30,
				t_region = 1e30;

	spread_boxes(boxes);
	GROMA_TRY(groma_arena_tensor(&b->keep, GROMA_F32, 4, (int64_t[]) {1, 3, 448, 448}, &pixels));
	GROMA_TRY(groma_fill_random(&pixels, 7, 2.0f));
	GROMA_TRY(groma_arena_tensor(&b->keep, GROMA_F32, 4, (int64_t[]) {vc->layers + 1, 1, tokens, vc->hidden}, &hidden));
	GROMA_TRY(groma_arena_tensor(&b->keep, GROMA_F32, 2, (int64_t[]) {half * half, d}, image_tokens));
	GROMA_TRY(groma_arena_tensor(&b->keep, GROMA_F32, 2, (int64_t[]) {BENCH_REGIONS, d}, region_tokens));
	/* three rounds: the first warms up (allocations, cuBLAS heuristics), the best is reported */
	for (int r = 0; r < 3; r++)
	{
		size_t		mark = b->act.used,
					host_mark = b->host.used;

		t0 = now_ms(b);
		profile(b, NULL, 1);
		GROMA_TRY(groma_dinov2_forward(&b->m->vision, &pixels, &b->act, &hidden, NULL));
		t0 = now_ms(b) - t0;
		t_dino = t0 < t_dino ? t0 : t_dino;
		profile(b, r == 2 ? "dinov2" : NULL, 1);

		GROMA_TRY(groma_tensor_reshape(image_tokens, 3, (int64_t[]) {1, half * half, d}, &features));
		GROMA_TRY(groma_image_tokens(&b->m->bridge, &hidden, &b->act, &features));

		t0 = now_ms(b);
		profile(b, NULL, 1);
		GROMA_TRY(groma_proposer_forward(&b->m->proposer, &hidden, &b->act, &b->act, &b->host, &prop));
		t0 = now_ms(b) - t0;
		t_prop = t0 < t_prop ? t0 : t_prop;
		profile(b, r == 2 ? "proposer" : NULL, 1);

		t0 = now_ms(b);
		GROMA_TRY(groma_region_fuse(&b->m->region, &hidden, &b->act, &b->act, &maps));
		GROMA_TRY(groma_region_tokens(&b->m->region, &maps, 0, &boxes[0][0], BENCH_REGIONS, &b->act, region_tokens,
									  NULL, NULL, NULL, NULL));
		t0 = now_ms(b) - t0;
		t_region = t0 < t_region ? t0 : t_region;
		profile(b, r == 2 ? "region_encoder" : NULL, 1);
		b->act.used = mark;
		b->host.used = host_mark;
	}
	groma_bench_figure("dinov2_ms", t_dino, "ms", "best of 3, batch 1");
	groma_bench_figure("proposer_ms", t_prop, "ms", "best of 3, batch 1");
	groma_bench_figure("region_encoder_ms", t_region, "ms", "fuse + tokens for 100 regions, best of 3");
#ifdef GROMA_WITH_CUDA
	GROMA_TRY(method_figures(b, &pixels, &hidden, &boxes[0][0], region_tokens));
#endif
	return groma_ok();
}

/* One pass of every vision stage over b images of random pixels (100 regions each); scratch from act. */
static groma_status
vision_pass(bench *b, int n, const float *boxes)
{
	const groma_dinov2_config *vc = &b->m->vision.cfg;
	int64_t		tokens = groma_dinov2_tokens(vc),
				half = (vc->image / vc->patch) / 2,
				d = b->m->llm.cfg.hidden;
	groma_tensor pixels,
				hidden,
				features,
				region_tokens;
	groma_proposer_outputs prop;
	groma_region_maps maps;

	GROMA_TRY(groma_arena_tensor(&b->act, GROMA_F32, 4, (int64_t[]) {n, 3, 448, 448}, &pixels));
	GROMA_TRY(groma_fill_random(&pixels, 7, 2.0f));
	GROMA_TRY(groma_arena_tensor(&b->act, GROMA_F32, 4, (int64_t[]) {vc->layers + 1, n, tokens, vc->hidden}, &hidden));
	GROMA_TRY(groma_arena_tensor(&b->act, GROMA_F32, 3, (int64_t[]) {n, half * half, d}, &features));
	GROMA_TRY(groma_arena_tensor(&b->act, GROMA_F32, 2, (int64_t[]) {BENCH_REGIONS, d}, &region_tokens));
	GROMA_TRY(groma_dinov2_forward(&b->m->vision, &pixels, &b->act, &hidden, NULL));
	GROMA_TRY(groma_image_tokens(&b->m->bridge, &hidden, &b->act, &features));
	GROMA_TRY(groma_proposer_forward(&b->m->proposer, &hidden, &b->act, &b->act, &b->host, &prop));
	GROMA_TRY(groma_region_fuse(&b->m->region, &hidden, &b->act, &b->act, &maps));
	for (int i = 0; i < n; i++)
		GROMA_TRY(groma_region_tokens(&b->m->region, &maps, i, boxes, BENCH_REGIONS, &b->act, &region_tokens, NULL,
									  NULL, NULL, NULL));
	return groma_ok();
}

/* Kernel launches queued so far (0 without CUDA): a decode step's count is a difference. */
static uint64_t
launches_so_far(void)
{
#ifdef GROMA_WITH_CUDA
	return groma_cuda_launch_count();
#else
	return 0;
#endif
}

/* Vision stages recorded and replayed so far (the model's four caches together). */
static long
vision_graph_uses(const bench *b, bool replays)
{
	long		sum = 0;

	for (int i = 0; i < GROMA_VISION_GRAPH_STAGES; i++)
		sum += replays ? b->m->vision_graphs[i].replayed : b->m->vision_graphs[i].recorded;
	return sum;
}

/*
 * The best time of vision passes of n images (rewinding the arenas after
 * each): 2, or 3 when the second recorded stages (so the third replays
 * them), or `rounds` when fewer; *launches gets what the last one queued.
 */
static groma_status
best_vision_pass(bench *b, int n, const float *boxes, int rounds, double *best, double *launches)
{
	groma_status st = groma_ok();

	*best = 1e30;
	for (int r = 0; r < rounds && st.code == GROMA_OK; r++)
	{
		size_t		mark = b->act.used,
					host_mark = b->host.used;
		uint64_t	before = launches_so_far();
		long		recorded = vision_graph_uses(b, false);
		double		t0 = now_ms(b);

		st = vision_pass(b, n, boxes);
		t0 = now_ms(b) - t0;
		*best = t0 < *best ? t0 : *best;
		*launches = (double) (launches_so_far() - before);
		b->act.used = mark;
		b->host.used = host_mark;
		if (r == 1 && vision_graph_uses(b, false) == recorded)
			break;				/* nothing recorded (graphs off, or a profiling device): no replay to time */
	}
	return st;
}

/* Turns the recording of vision stages on or off (GROMA_VISION_GRAPHS=0 stays off when on asks to restore). */
static void
vision_graphs_enabled(bench *b, const bool *was_on, bool on)
{
	for (int i = 0; i < GROMA_VISION_GRAPH_STAGES; i++)
		groma_graph_cache_set_enabled(&b->m->vision_graphs[i], on && was_on[i]);
}

/*
 * Vision of 1, 4 and 16 images (those up to --bench-max-batch) as one
 * batch (DINOv2, bridge, proposer, region maps and 100 region tokens per
 * image): milliseconds per image,
 * best of 2, or of 3 on a GPU that records the stages (the first eager,
 * the second recording, the third replaying).  A batch the activation
 * arena cannot hold is reported as skipped.  When batch 1 replayed stages
 * it is timed again with the recordings off, and both print their launches.
 */
static groma_status
vision_batch_figures(bench *b)
{
	static const int sizes[] = {1, 4, 16};
	float		boxes[BENCH_REGIONS][4];

	spread_boxes(boxes);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]) && sizes[k] <= b->max_batch; k++)
	{
		int			n = sizes[k];
		double		best,
					launches = 0;
		char		name[64],
					note[384];
		long		replayed = vision_graph_uses(b, true);
		groma_status st = best_vision_pass(b, n, &boxes[0][0], 3, &best, &launches);

		if (st.code == GROMA_ERR_NO_MEMORY)
		{
			snprintf(note, sizeof(note), "skipped: %s", st.message);
			groma_bench_figure("vision_batch_skipped", n, "images", note);
			return groma_ok();
		}
		GROMA_TRY(st);
		snprintf(name, sizeof(name), "vision_ms_per_image_batch_%d", n);
		snprintf(note, sizeof(note), "%d images in one pass: DINOv2, bridge, proposer, region maps, 100 regions each; best of 2 (3 when stages are recorded)",
				 n);
		groma_bench_figure(name, best / n, "ms", note);
		if (n == 1)
			b->vision_ms = best;
		if (n == 1 && b->device == GROMA_DEVICE_CUDA && vision_graph_uses(b, true) > replayed)
		{
			bool		was_on[GROMA_VISION_GRAPH_STAGES];
			double		eager_launches = 0;

			for (int i = 0; i < GROMA_VISION_GRAPH_STAGES; i++)
				was_on[i] = !b->m->vision_graphs[i].off;
			groma_bench_figure("vision_launches_per_image_batch_1", launches, "launches",
							   "kernels and graphs queued by the last pass (a replayed stage counts once)");
			vision_graphs_enabled(b, was_on, false);
			st = best_vision_pass(b, n, &boxes[0][0], 2, &best, &eager_launches);
			vision_graphs_enabled(b, was_on, true);
			GROMA_TRY(st);
			groma_bench_figure("vision_ms_per_image_batch_1_eager", best, "ms",
							   "as vision_ms_per_image_batch_1, stage recordings off: every kernel launched from the host");
			groma_bench_figure("vision_launches_per_image_batch_1_eager", eager_launches, "launches",
							   "kernels queued per pass, recordings off");
		}
	}
	return groma_ok();
}

/* Prefill of a prompt of the assembled length, then 64 greedy steps at batch 1. */
static groma_status
language_figures(bench *b, const groma_tensor *image_tokens)
{
	const groma_llama_config *c = &b->m->llm.cfg;
	int64_t		t = image_tokens->shape[0] + 2 * BENCH_REGIONS + BENCH_TEXT_TOKENS,
				vocab = (int64_t) c->vocab + c->extra_vocab;
	groma_arena cache_arena = {0};
	groma_kv_cache cache;
	groma_tensor embeds,
				step;
	float	   *logits = malloc((size_t) vocab * sizeof(float));
	double		t0,
				prefill = 1e30,
				decode;
	groma_status st;
	char		note[96];

	if (logits == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "bench: no memory for the logits");
	st = groma_arena_init_on(&cache_arena, b->device, groma_kv_cache_bytes(c, t + BENCH_NEW_TOKENS));
	if (st.code == GROMA_OK)
		st = groma_kv_cache_init(&cache, c, t + BENCH_NEW_TOKENS, &cache_arena);
	if (st.code == GROMA_OK)
		st = groma_arena_tensor(&b->keep, GROMA_F32, 2, (int64_t[]) {t, c->hidden}, &embeds);
	if (st.code == GROMA_OK)
		st = groma_arena_tensor(&b->keep, GROMA_F32, 2, (int64_t[]) {1, c->hidden}, &step);
	if (st.code == GROMA_OK)
		st = groma_fill_random(&embeds, 11, 0.5f);
	/* three prefills of an empty cache: the first warms up (cuBLAS heuristics), the best is reported */
	for (int r = 0; r < 3 && st.code == GROMA_OK; r++)
	{
		cache.length = 0;
		t0 = now_ms(b);
		profile(b, NULL, 1);
		st = groma_llama_forward(&b->m->llm, &cache, &embeds, &b->act, logits, NULL);
		t0 = now_ms(b) - t0;
		prefill = t0 < prefill ? t0 : prefill;
		profile(b, r == 2 ? "prefill" : NULL, 1);
	}
	t0 = now_ms(b);
	profile(b, NULL, 1);
	for (int s = 0; s < BENCH_NEW_TOKENS && st.code == GROMA_OK; s++)
	{
		int64_t		next = groma_argmax(logits, vocab);

		st = groma_llama_embed(&b->m->llm, &next, 1, &step);
		if (st.code == GROMA_OK)
			st = groma_llama_forward(&b->m->llm, &cache, &step, &b->act, logits, NULL);
	}
	decode = now_ms(b) - t0;
	profile(b, "decode_step", BENCH_NEW_TOKENS);
	if (st.code == GROMA_OK)
	{
		snprintf(note, sizeof(note), "%lld prompt tokens (%lld image, 2 per region, %d text)", (long long) t,
				 (long long) image_tokens->shape[0], BENCH_TEXT_TOKENS);
		strncat(note, ", best of 3", sizeof(note) - strlen(note) - 1);
		groma_bench_figure("prefill_ms", prefill, "ms", note);
		b->prefill_ms = prefill;
		groma_bench_figure("decode_step_ms", decode / BENCH_NEW_TOKENS, "ms", "batch 1, KV cache, greedy");
		groma_bench_figure("decode_tokens_per_s", BENCH_NEW_TOKENS / (decode / 1e3), "tokens/s",
						   "64 tokens at batch 1");
	}
#ifdef GROMA_WITH_CUDA
	if (st.code == GROMA_OK && on_real_gpu(b) && groma_cuda_attention_flash_fits(c->hidden / c->heads))
	{
		/* the prefill again with the flash attention (not the default yet), best of 2 */
		prefill = 1e30;
		groma_cuda_attention_kernel(GROMA_ATTENTION_FLASH);
		for (int r = 0; r < 2 && st.code == GROMA_OK; r++)
		{
			cache.length = 0;
			t0 = now_ms(b);
			st = groma_llama_forward(&b->m->llm, &cache, &embeds, &b->act, logits, NULL);
			t0 = now_ms(b) - t0;
			prefill = t0 < prefill ? t0 : prefill;
		}
		groma_cuda_attention_kernel(GROMA_ATTENTION_AUTO);
		if (st.code == GROMA_OK)
			groma_bench_figure("prefill_ms_flash_attention", prefill, "ms", "prefill_ms with the flash attention kernel");
	}
#endif
	groma_arena_free(&cache_arena);
	free(logits);
	return st;
}

/* One batch's decode steps: the caches, each sequence's next id, and the input rows they are embedded into. */
typedef struct bench_batch
{
	int			n;
	groma_kv_cache *ptrs[64];
	int64_t		next[64],
				rows[64];
	groma_tensor x;				/* [n, D] */
} bench_batch;

/* Runs `steps` decode steps of the batch; *ms and *launches get the mean per step. */
static groma_status
time_steps(bench *b, bench_batch *bb, int steps, double *ms, double *launches)
{
	uint64_t	before = launches_so_far();
	double		t0 = now_ms(b);
	groma_status st = groma_ok();

	for (int s = 0; s < steps && st.code == GROMA_OK; s++)
	{
		for (int i = 0; i < bb->n && st.code == GROMA_OK; i++)
		{
			groma_tensor row;

			st = groma_tensor_narrow(&bb->x, 0, i, 1, &row);
			if (st.code == GROMA_OK)
				st = groma_llama_embed(&b->m->llm, &bb->next[i], 1, &row);
		}
		if (st.code == GROMA_OK)
			st = groma_llama_step(&b->m->llm, bb->ptrs, bb->rows, bb->n, &bb->x, &b->act, bb->next);
	}
	*ms = (now_ms(b) - t0) / steps;
	*launches = (double) (launches_so_far() - before) / steps;
	return st;
}

/*
 * Decode steps for B sequences at once (B = 1, 8, 32, 64, up to --bench-max-batch), each with its
 * own KV cache holding the assembled prompt (one prefill, copied to every
 * cache): milliseconds per step and tokens per second for the batch, after
 * two untimed steps (the second records the step's graph on a GPU).  At
 * batch 1 the steps are timed again with graphs off, and both runs' kernel
 * launches per step are printed.  A batch whose caches do not fit in
 * memory is reported as skipped.
 */
static groma_status
batch_figures(bench *b, const groma_tensor *image_tokens)
{
	static const int sizes[] = {1, 8, 32, 64};
	const groma_llama_config *c = &b->m->llm.cfg;
	int64_t		t = image_tokens->shape[0] + 2 * BENCH_REGIONS + BENCH_TEXT_TOKENS,
				capacity = t + 2 * BENCH_BATCH_STEPS + 3;
	float	   *logits = malloc((size_t) (c->vocab + c->extra_vocab) * sizeof(float));	/* [V + X] of the prefill */
	groma_status st = logits ? groma_ok() : groma_error(GROMA_ERR_NO_MEMORY, "bench: no memory for the logits");

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]) && sizes[k] <= b->max_batch && st.code == GROMA_OK; k++)
	{
		int			n = sizes[k];
		groma_kv_pool pool;
		groma_kv_cache caches[64];
		bench_batch bb = {.n = n};
		groma_tensor embeds;
		size_t		mark = b->keep.used;
		char		name[64],
					note[384];
		double		ms,
					launches;

		st = groma_kv_pool_init(&pool, b->device, (size_t) n * (groma_kv_cache_bytes(c, capacity) + 64));
		if (st.code != GROMA_OK)
		{
			snprintf(note, sizeof(note), "skipped: %d KV caches of %lld positions do not fit (%s)", n,
					 (long long) capacity, st.message);
			groma_bench_figure("decode_batch_skipped", n, "sequences", note);
			st = groma_ok();
			break;
		}
		for (int i = 0; i < n && st.code == GROMA_OK; i++)
		{
			st = groma_kv_pool_take(&pool, c, capacity, &caches[i]);
			bb.ptrs[i] = &caches[i];
			bb.next[i] = i;		/* distinct first tokens */
			bb.rows[i] = 1;
		}
		if (st.code == GROMA_OK)
			st = groma_arena_tensor(&b->keep, GROMA_F32, 2, (int64_t[]) {t, c->hidden}, &embeds);	/* [T, D] */
		if (st.code == GROMA_OK)
			st = groma_arena_tensor(&b->keep, GROMA_F32, 2, (int64_t[]) {n, c->hidden}, &bb.x);	/* [B, D] */
		if (st.code == GROMA_OK)
			st = groma_fill_random(&embeds, 11, 0.5f);
		if (st.code == GROMA_OK)
			st = groma_llama_forward(&b->m->llm, &caches[0], &embeds, &b->act, logits, NULL);
		for (int i = 1; i < n && st.code == GROMA_OK; i++)
		{
			st = groma_copy(&caches[0].k, &caches[i].k);
			if (st.code == GROMA_OK)
				st = groma_copy(&caches[0].v, &caches[i].v);
			caches[i].length = caches[0].length;
		}
		if (st.code == GROMA_OK)
			st = time_steps(b, &bb, 2, &ms, &launches);	/* warm-up: the first eager, the second recorded */
		if (st.code == GROMA_OK)
			st = time_steps(b, &bb, BENCH_BATCH_STEPS, &ms, &launches);
		if (st.code == GROMA_OK)
		{
			snprintf(note, sizeof(note), "%d sequences at %lld positions, one step for all, mean of %d steps", n,
					 (long long) t, BENCH_BATCH_STEPS);
			snprintf(name, sizeof(name), "decode_step_ms_batch_%d", n);
			groma_bench_figure(name, ms, "ms", note);
			if (n == 1)
			{
				b->decode_ms = ms;
				b->positions = t;
			}
			snprintf(name, sizeof(name), "decode_tokens_per_s_batch_%d", n);
			groma_bench_figure(name, n / (ms / 1e3), "tokens/s", "tokens of all sequences together");
		}
		if (st.code == GROMA_OK && n == 1 && b->device == GROMA_DEVICE_CUDA)
		{
			double		eager_ms,
						eager_launches;
			bool		was_on = !b->m->llm.graphs->off;

			groma_bench_figure("decode_launches_per_step_batch_1", launches, "launches",
							   "kernels and graphs queued per step (a replayed graph counts once)");
			groma_graph_cache_set_enabled(b->m->llm.graphs, false);
			st = time_steps(b, &bb, BENCH_BATCH_STEPS, &eager_ms, &eager_launches);
			groma_graph_cache_set_enabled(b->m->llm.graphs, was_on);	/* GROMA_DECODE_GRAPHS=0 stays off */
			if (st.code == GROMA_OK)
			{
				groma_bench_figure("decode_step_ms_batch_1_eager", eager_ms, "ms",
								   "as decode_step_ms_batch_1, graphs off: every kernel launched from the host");
				groma_bench_figure("decode_launches_per_step_batch_1_eager", eager_launches, "launches",
								   "kernels queued per step, graphs off");
			}
		}
		b->keep.used = mark;
		groma_kv_pool_free(&pool);
	}
	free(logits);
	return st;
}

/* Bytes of a weight as stored: its values, and an i8 weight's row scales. */
static double
stored_bytes(const groma_tensor *t)
{
	return (double) groma_tensor_nbytes(t) + (t->scale ? (double) t->shape[0] * sizeof(float) : 0.0);
}

/*
 * Bytes one decode step of one sequence at `positions` reads at the least:
 * every decoder weight but the embedding tables (one row each), and the
 * keys and values of every layer.
 */
static double
decode_bytes(const groma_llama *m, int64_t positions)
{
	double		total = stored_bytes(&m->norm) + stored_bytes(&m->lm_head) + stored_bytes(&m->extra_head);

	for (int i = 0; i < m->cfg.layers; i++)
	{
		const groma_llama_layer *l = &m->layer[i];

		total += stored_bytes(&l->attn_norm) + stored_bytes(&l->q) + stored_bytes(&l->k) + stored_bytes(&l->v) +
			stored_bytes(&l->o) + stored_bytes(&l->mlp_norm) + stored_bytes(&l->gate) + stored_bytes(&l->up) +
			stored_bytes(&l->down);
	}
	return total + 2.0 * m->cfg.layers * (double) positions * m->cfg.hidden * (double) groma_dtype_size(m->cfg.kv_dtype);
}

/*
 * The figures the targets are read by: the bytes a batch-1 decode step
 * reads against its time and the measured copy bandwidth, and a grounded
 * caption of 64 new tokens end to end as the sum of its measured stages.
 */
static void
summary_figures(const bench *b)
{
	char		note[256];

	if (b->decode_ms > 0 && b->copy_gbps > 0)
	{
		double		bytes = decode_bytes(&b->m->llm, b->positions),
					gbps = bytes / (b->decode_ms / 1e3) / 1e9;

		snprintf(note, sizeof(note), "weights and KV cache at %lld positions, each read once", (long long) b->positions);
		groma_bench_figure("decode_bytes_per_step_mb", bytes / 1e6, "MB", note);
		snprintf(note, sizeof(note), "%.0f GB/s of those bytes at decode_step_ms_batch_1, against copy_bandwidth",
				 gbps);
		groma_bench_figure("decode_bandwidth_fraction", gbps / b->copy_gbps, "ratio", note);
	}
	if (b->vision_ms > 0 && b->prefill_ms > 0 && b->decode_ms > 0)
		groma_bench_figure("caption_end_to_end_ms", b->vision_ms + b->prefill_ms + BENCH_NEW_TOKENS * b->decode_ms,
						   "ms", "vision of 1 image + prefill + 64 decode steps at batch 1, the sum of those figures");
}

/*
 * Bytes for the activation arena: 3 GiB on the CPU; on the GPU what is free
 * after the weights, less 1 GiB for the kept tensors and 1 GiB for the KV
 * cache and cuBLAS, at most 12 GiB (the full-size model fits on a GPU that
 * holds its weights plus a few GiB; activation_peak_mb says what it used).
 */
static groma_status
activation_bytes(groma_device device, size_t *bytes)
{
	*bytes = (size_t) 3 << 30;
#ifdef GROMA_WITH_CUDA
	if (device == GROMA_DEVICE_CUDA)
	{
		size_t		free_bytes,
					total;

		GROMA_TRY(groma_cuda_memory(&free_bytes, &total));
		if (free_bytes < ((size_t) 5 << 29))
			return groma_error(GROMA_ERR_NO_MEMORY, "bench: %.2f GiB of GPU memory left after the weights, 2.5 needed",
							   free_bytes / 1073741824.0);
		*bytes = free_bytes - ((size_t) 2 << 30);
		if (*bytes > ((size_t) 12 << 30))
			*bytes = (size_t) 12 << 30;
	}
#endif
	return groma_ok();
}

/* Runs every part in order; the caller frees b. */
static groma_status
bench_run(const groma_cli_options *opt, bench *b)
{
	groma_model_config cfg;
	groma_tensor image_tokens,
				region_tokens;
	groma_dtype matrices;
	char		note[128];
	double		t0;
	struct timespec ts;
	size_t		act_bytes;

	b->max_batch = opt->bench_max_batch;
	if (strcmp(opt->config, "real") == 0)
		GROMA_TRY(groma_model_config_real(&cfg));
	else
		GROMA_TRY(groma_model_config_load(opt->config, &cfg));
	GROMA_TRY(groma_cli_use_device(opt->device, &b->device));
	GROMA_TRY(groma_cli_weight_dtype(opt, b->device, &matrices));
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t0 = (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
	GROMA_TRY(groma_model_random(&cfg, b->device, matrices, &b->m));
	if (matrices == GROMA_I8)
		snprintf(note, sizeof(note), "random weights generated where they live: i8 language-model matrices, %s",
				 b->device == GROMA_DEVICE_CPU ? "f32 the rest" : "bf16 the other matrices, f32 the rest");
	else
		snprintf(note, sizeof(note), "random weights generated where they live: %s matrices, f32 the rest",
				 groma_dtype_name(matrices));
	groma_bench_figure("build_ms", now_ms(b) - t0, "ms", note);
	GROMA_TRY(activation_bytes(b->device, &act_bytes));
	GROMA_TRY(groma_arena_init_on(&b->act, b->device, act_bytes));
	GROMA_TRY(groma_arena_init_on(&b->keep, b->device, (size_t) 1 << 30));
	GROMA_TRY(groma_arena_init(&b->host, (size_t) 64 << 20));
	GROMA_TRY(device_figures(b));
	GROMA_TRY(vision_figures(b, &image_tokens, &region_tokens));
	GROMA_TRY(vision_batch_figures(b));
	GROMA_TRY(language_figures(b, &image_tokens));
	GROMA_TRY(batch_figures(b, &image_tokens));
	summary_figures(b);
	snprintf(note, sizeof(note), "activation arena high-water mark, of %.0f MB reserved", act_bytes / 1048576.0);
	groma_bench_figure("activation_peak_mb", b->act.high_water / 1048576.0, "MB", note);
	return groma_ok();
}

/* --bench; see cli.h. */
int
groma_cli_bench(const groma_cli_options *opt)
{
	bench		b = {0};
	groma_status st = bench_run(opt, &b);

	groma_arena_free(&b.act);
	groma_arena_free(&b.keep);
	groma_arena_free(&b.host);
	groma_model_free(b.m);
	return st.code == GROMA_OK ? 0 : groma_cli_fail(st);
}
