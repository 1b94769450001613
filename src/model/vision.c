/*
 * vision.c - the vision side of one request as a script.
 */
#include "vision.h"

#include <string.h>
#include <time.h>

#include "../image/preprocess.h"
#include "../runtime/cancel.h"
#include "../runtime/device_ops.h"
#include "../runtime/op_check.h"
#include "../runtime/ops.h"

/* Returns a monotonic clock reading in milliseconds, once the work queued on act's device has finished. */
static double
now_ms(const groma_arena *act)
{
	struct timespec ts;

	if (act->device == GROMA_DEVICE_CUDA && groma_cuda_ops.synchronize)
		(void) groma_cuda_ops.synchronize();	/* a failure resurfaces at the next call */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Allocates n elements of size bytes from the output arena. */
static void *
carve(groma_arena *out, size_t n, size_t size, groma_status *st)
{
	void	   *p = groma_arena_alloc(out, n * size > 0 ? n * size : 1);

	if (p == NULL)
		*st = groma_error(GROMA_ERR_NO_MEMORY, "vision: output arena full");
	return p;
}

typedef struct decode_job
{
	const uint8_t *jpeg;
	size_t		len;
	const groma_jpeg_limits *limits;
	groma_vision_result *res;	/* gets the original size */
} decode_job;

/* Decodes and preprocesses the JPEG into host pixels[1, 3, 448, 448]. */
static groma_status
decode_host(void *ctx, groma_tensor *pixels)
{
	decode_job *j = ctx;

	return groma_preprocess_jpeg(j->jpeg, j->len, j->limits, NULL, pixels->data, &j->res->width, &j->res->height);
}

/* Runs the vision steps; on failure the caller rewinds the arenas. */
static groma_status
vision_steps(const groma_model *m, const uint8_t *jpeg, size_t len, const groma_jpeg_limits *limits,
			 const double *refer_px, int n_refer, groma_arena *act, groma_arena *out, groma_arena *host,
			 groma_vision_result *res)
{
	const groma_dinov2_config *vc = &m->vision.cfg;
	int64_t		layers = vc->layers,
				tokens = groma_dinov2_tokens(vc),
				c = vc->hidden,
				d = m->llm.cfg.hidden,
				k = m->proposer.cfg.num_queries,
				half = (vc->image / vc->patch) / 2;
	float		refer[GROMA_MAX_REFER_BOXES][4];
	groma_tensor pixels,
				hidden;
	groma_proposer_outputs prop;
	groma_region_maps maps;
	groma_status st = groma_ok();
	size_t		mark = act->used,
				host_mark;
	float	   *boxes;
	double		t0;

	memset(res, 0, sizeof(*res));
	if (n_refer < 0 || n_refer > GROMA_MAX_REFER_BOXES)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "at most %d refer boxes, got %d", GROMA_MAX_REFER_BOXES, n_refer);

	/* 1. decode and preprocess: pixels [1, 3, 448, 448] */
	t0 = now_ms(act);
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 4, (int64_t[]) {1, 3, GROMA_IMAGE_SIZE, GROMA_IMAGE_SIZE}, &pixels));
	{
		decode_job	j = {jpeg, len, limits, res};

		GROMA_TRY(groma_fill_from_host(&pixels, decode_host, &j));
	}
	for (int i = 0; i < n_refer; i++)
		GROMA_TRY(groma_refer_box_from_pixels(refer_px[4 * i], refer_px[4 * i + 1], refer_px[4 * i + 2],
											  refer_px[4 * i + 3], res->width, res->height, refer[i]));
	res->timing.decode_ms = now_ms(act) - t0;

	/* 2. DINOv2: hidden [L + 1, 1, T, C] */
	t0 = now_ms(act);
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 4, (int64_t[]) {layers + 1, 1, tokens, c}, &hidden));
	GROMA_TRY(groma_dinov2_forward(&m->vision, &pixels, act, &hidden, NULL));
	res->timing.dinov2_ms = now_ms(act) - t0;
	GROMA_TRY(groma_cancel_check());	/* a stage boundary: stop here when cancelled */

	/* 3. image tokens: merged [1, (n/2)², 4C] → bridge [1, (n/2)², D] */
	t0 = now_ms(act);
	GROMA_TRY(groma_arena_tensor(out, GROMA_F32, 2, (int64_t[]) {half * half, d}, &res->image_tokens));
	{
		groma_tensor features;

		GROMA_TRY(groma_tensor_reshape(&res->image_tokens, 3, (int64_t[]) {1, half * half, d}, &features));
		GROMA_TRY(groma_image_tokens(&m->bridge, &hidden, act, &features));
	}
	res->timing.bridge_ms = now_ms(act) - t0;
	GROMA_TRY(groma_cancel_check());

	/* 4. proposer; the result arrays come first in host, its host-side data after them */
	res->kept = carve(host, (size_t) (k + n_refer), sizeof(int64_t), &st);
	res->boxes = st.code == GROMA_OK ? carve(host, (size_t) (k + n_refer) * 4, sizeof(float), &st) : NULL;
	res->scores = st.code == GROMA_OK ? carve(host, (size_t) (k + n_refer), sizeof(float), &st) : NULL;
	GROMA_TRY(st);
	host_mark = host->used;
	t0 = now_ms(act);
	GROMA_TRY(groma_proposer_forward(&m->proposer, &hidden, act, act, host, &prop));
	res->timing.proposer_ms = now_ms(act) - t0;
	GROMA_TRY(groma_cancel_check());

	/* 5. selection: proposals of the last decoder layer plus refer boxes */
	t0 = now_ms(act);
	boxes = carve(host, (size_t) k * 4, sizeof(float), &st);	/* [K, 4] last layer */
	GROMA_TRY(st);
	{
		groma_tensor last_boxes;

		GROMA_TRY(groma_tensor_narrow(&prop.boxes, 0, m->proposer.cfg.decoder_layers - 1, 1, &last_boxes));
		GROMA_TRY(groma_download(&last_boxes, boxes));
		GROMA_TRY(groma_select_regions(boxes, prop.scores.data, (int) k, &refer[0][0], n_refer, &m->select,
									   res->kept, res->boxes, &res->n_regions));
		for (int i = 0; i < res->n_regions; i++)
			res->scores[i] = res->kept[i] < k ? ((const float *) prop.scores.data)[res->kept[i]] : 1.0f;
	}
	host->used = host_mark;		/* the proposer's top-k, scores and box copies are not part of the result */
	res->n_refer = n_refer;
	if (n_refer > 0)
		GROMA_TRY(groma_match_refer_boxes(&refer[0][0], n_refer, res->boxes, res->n_regions, res->refer_match, NULL));
	res->timing.select_ms = now_ms(act) - t0;
	GROMA_TRY(groma_cancel_check());

	/* 6. region tokens [N, D] */
	t0 = now_ms(act);
	GROMA_TRY(groma_region_fuse(&m->region, &hidden, act, act, &maps));
	res->timing.fuse_ms = now_ms(act) - t0;
	GROMA_TRY(groma_cancel_check());
	GROMA_TRY(groma_arena_tensor(out, GROMA_F32, 2, (int64_t[]) {res->n_regions, d}, &res->region_tokens));
	GROMA_TRY(groma_arena_tensor(out, GROMA_F32, 2, (int64_t[]) {res->n_regions, m->region.mid},
								 &res->region_features));
	GROMA_TRY(groma_region_tokens(&m->region, &maps, 0, res->boxes, res->n_regions, act, &res->region_tokens,
								  NULL, NULL, NULL, &res->region_features));
	res->timing.region_ms = now_ms(act) - t0;
	act->used = mark;
	return groma_ok();
}

/* Runs the vision side; see vision.h.  Nothing stays carved from any arena on failure. */
groma_status
groma_vision_run(const groma_model *m, const uint8_t *jpeg, size_t len,
				 const groma_jpeg_limits *limits, const double *refer_px, int n_refer,
				 groma_arena *act, groma_arena *out, groma_arena *host, groma_vision_result *res)
{
	size_t		act_mark = act->used,
				out_mark = out->used,
				host_mark = host->used;
	groma_status st;

	if (host == act || host->device != GROMA_DEVICE_CPU)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "vision: the host arena must be CPU memory other than act");
	st = vision_steps(m, jpeg, len, limits, refer_px, n_refer, act, out, host, res);
	if (st.code != GROMA_OK)
	{
		act->used = act_mark;
		out->used = out_mark;
		host->used = host_mark;
	}
	return st;
}
