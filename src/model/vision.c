/*
 * vision.c - the vision side of one request as a script.
 */
#include "vision.h"

#include <string.h>
#include <time.h>

#include "../image/preprocess.h"
#include "../runtime/cancel.h"
#include "../runtime/op_check.h"
#include "../runtime/ops.h"

/* Returns a monotonic clock reading in milliseconds, once the work queued on act's device has finished. */
static double
now_ms(const groma_arena *act)
{
	struct timespec ts;

	(void) groma_synchronize(act->device);	/* a failure resurfaces at the next call */
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

/*
 * Decodes image i into pixels slice [1, 3, 448, 448] and converts its refer
 * boxes (the image's own failures: they fail only this image).
 */
static groma_status
decode_one(const uint8_t *jpeg, size_t len, const groma_jpeg_limits *limits, const double *refer_px, int n_refer,
		   groma_tensor *slice, float (*refer)[4], groma_vision_result *res)
{
	decode_job	j = {jpeg, len, limits, res};

	memset(res, 0, sizeof(*res));
	if (n_refer < 0 || n_refer > GROMA_MAX_REFER_BOXES)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "at most %d refer boxes, got %d", GROMA_MAX_REFER_BOXES, n_refer);
	GROMA_TRY(groma_fill_from_host(slice, decode_host, &j));
	for (int i = 0; i < n_refer; i++)
		GROMA_TRY(groma_refer_box_from_pixels(refer_px[4 * i], refer_px[4 * i + 1], refer_px[4 * i + 2],
											  refer_px[4 * i + 3], res->width, res->height, refer[i]));
	res->n_refer = n_refer;
	return groma_ok();
}

/* Selection for batch image b: its proposals of the last decoder layer plus its refer boxes, into res. */
static groma_status
select_one(const groma_model *m, const groma_proposer_outputs *prop, int64_t b, const float (*refer)[4],
		   groma_arena *host, groma_vision_result *res)
{
	int64_t		k = m->proposer.cfg.num_queries;
	int			n_refer = res->n_refer;
	const float *scores = (const float *) prop->scores.data + b * k;	/* [K] of image b */
	groma_status st = groma_ok();
	size_t		host_mark;
	float	   *boxes;
	groma_tensor last;

	res->kept = carve(host, (size_t) (k + n_refer), sizeof(int64_t), &st);
	res->boxes = st.code == GROMA_OK ? carve(host, (size_t) (k + n_refer) * 4, sizeof(float), &st) : NULL;
	res->scores = st.code == GROMA_OK ? carve(host, (size_t) (k + n_refer), sizeof(float), &st) : NULL;
	GROMA_TRY(st);
	host_mark = host->used;
	boxes = carve(host, (size_t) k * 4, sizeof(float), &st);	/* [K, 4] last layer */
	GROMA_TRY(st);
	GROMA_TRY(groma_tensor_narrow(&prop->boxes, 0, m->proposer.cfg.decoder_layers - 1, 1, &last));
	GROMA_TRY(groma_tensor_narrow(&last, 1, b, 1, &last));	/* [1, 1, K, 4] */
	GROMA_TRY(groma_download(&last, boxes));
	GROMA_TRY(groma_select_regions(boxes, scores, (int) k, &refer[0][0], n_refer, &m->select, res->kept, res->boxes,
								   &res->n_regions));
	for (int i = 0; i < res->n_regions; i++)
		res->scores[i] = res->kept[i] < k ? scores[res->kept[i]] : 1.0f;
	host->used = host_mark;		/* the box copies are not part of the result */
	if (n_refer > 0)
		GROMA_TRY(groma_match_refer_boxes(&refer[0][0], n_refer, res->boxes, res->n_regions, res->refer_match, NULL));
	return groma_ok();
}

/*
 * Runs the vision steps for n images as one batch; image i's decoding or
 * refer-box failure goes to each[i] and leaves it out.  On a failure of the
 * whole batch the caller rewinds the arenas.
 */
static groma_status
vision_steps(const groma_model *m, int n, const groma_vision_input *in, groma_arena *act, groma_arena *out,
			 groma_arena *host, groma_vision_result *res, groma_status *each)
{
	const groma_dinov2_config *vc = &m->vision.cfg;
	int64_t		layers = vc->layers,
				tokens = groma_dinov2_tokens(vc),
				c = vc->hidden,
				d = m->llm.cfg.hidden,
				half = (vc->image / vc->patch) / 2;
	float		(*refer)[GROMA_MAX_REFER_BOXES][4] = NULL;
	int			good[GROMA_VISION_MAX_BATCH];
	int			g = 0;
	groma_tensor pixels,
				hidden,
				tokens_all;
	groma_proposer_outputs prop;
	groma_region_maps maps;
	groma_status st = groma_ok();
	size_t		mark = act->used;
	groma_vision_timing t = {0};
	double		t0;

	if (n < 1 || n > GROMA_VISION_MAX_BATCH)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "vision: a batch of %d images (1..%d)", n, GROMA_VISION_MAX_BATCH);
	refer = carve(host, (size_t) n, sizeof(*refer), &st);	/* [n][16][4] */
	GROMA_TRY(st);

	/* 1. decode and preprocess: pixels [n, 3, 448, 448]; the images that decode are packed first */
	t0 = now_ms(act);
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 4, (int64_t[]) {n, 3, GROMA_IMAGE_SIZE, GROMA_IMAGE_SIZE}, &pixels));
	for (int i = 0; i < n; i++)
	{
		groma_tensor slice;

		GROMA_TRY(groma_tensor_narrow(&pixels, 0, g, 1, &slice));
		each[i] = decode_one(in[i].jpeg, in[i].len, in[i].limits, in[i].refer_px, in[i].n_refer, &slice, refer[g],
							 &res[i]);
		if (each[i].code == GROMA_ERR_NO_MEMORY || each[i].code == GROMA_ERR_DEVICE ||
			each[i].code == GROMA_ERR_DEVICE_LOST || each[i].code == GROMA_ERR_CANCELLED)
			return each[i];		/* not the image's fault: the whole batch fails */
		if (each[i].code == GROMA_OK)
			good[g++] = i;
	}
	if (g == 0)
		return groma_ok();
	GROMA_TRY(groma_tensor_narrow(&pixels, 0, 0, g, &pixels));	/* [G, 3, 448, 448] */
	t.decode_ms = now_ms(act) - t0;

	/* 2. DINOv2: hidden [L + 1, G, T, C] */
	t0 = now_ms(act);
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 4, (int64_t[]) {layers + 1, g, tokens, c}, &hidden));
	GROMA_TRY(groma_dinov2_forward(&m->vision, &pixels, act, &hidden, NULL));
	t.dinov2_ms = now_ms(act) - t0;
	GROMA_TRY(groma_cancel_check());	/* a stage boundary: stop here when cancelled */

	/* 3. image tokens: merged [G, (n/2)², 4C] → bridge [G, (n/2)², D]; image j's rows are its tokens */
	t0 = now_ms(act);
	GROMA_TRY(groma_arena_tensor(out, GROMA_F32, 3, (int64_t[]) {g, half * half, d}, &tokens_all));
	GROMA_TRY(groma_image_tokens(&m->bridge, &hidden, act, &tokens_all));
	for (int j = 0; j < g; j++)
	{
		groma_tensor one;

		GROMA_TRY(groma_tensor_narrow(&tokens_all, 0, j, 1, &one));
		GROMA_TRY(groma_tensor_reshape(&one, 2, (int64_t[]) {half * half, d}, &res[good[j]].image_tokens));
	}
	t.bridge_ms = now_ms(act) - t0;
	GROMA_TRY(groma_cancel_check());

	/* 4. proposer for the whole batch (its host-side top-k and scores stay until host is reset) */
	t0 = now_ms(act);
	GROMA_TRY(groma_proposer_forward(&m->proposer, &hidden, act, act, host, &prop));
	t.proposer_ms = now_ms(act) - t0;
	GROMA_TRY(groma_cancel_check());

	/* 5. selection per image */
	t0 = now_ms(act);
	for (int j = 0; j < g; j++)
		GROMA_TRY(select_one(m, &prop, j, refer[j], host, &res[good[j]]));
	t.select_ms = now_ms(act) - t0;
	GROMA_TRY(groma_cancel_check());

	/* 6. region tokens [N, D] per image from the batch's fused maps */
	t0 = now_ms(act);
	GROMA_TRY(groma_region_fuse(&m->region, &hidden, act, act, &maps));
	t.fuse_ms = now_ms(act) - t0;
	GROMA_TRY(groma_cancel_check());
	for (int j = 0; j < g; j++)
	{
		groma_vision_result *r = &res[good[j]];

		GROMA_TRY(groma_arena_tensor(out, GROMA_F32, 2, (int64_t[]) {r->n_regions, d}, &r->region_tokens));
		GROMA_TRY(groma_arena_tensor(out, GROMA_F32, 2, (int64_t[]) {r->n_regions, m->region.mid},
									 &r->region_features));
		GROMA_TRY(groma_region_tokens(&m->region, &maps, j, r->boxes, r->n_regions, act, &r->region_tokens,
									  NULL, NULL, NULL, &r->region_features));
	}
	t.region_ms = now_ms(act) - t0;
	for (int j = 0; j < g; j++)
		res[good[j]].timing = t;
	act->used = mark;
	return groma_ok();
}

/* Runs the vision side of a batch; see vision.h.  Nothing stays carved from any arena on a batch failure. */
groma_status
groma_vision_run_batch(const groma_model *m, int n, const groma_vision_input *in, groma_arena *act,
					   groma_arena *out, groma_arena *host, groma_vision_result *res, groma_status *each)
{
	size_t		act_mark = act->used,
				out_mark = out->used,
				host_mark = host->used;
	groma_status st;

	if (host == act || host->device != GROMA_DEVICE_CPU)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "vision: the host arena must be CPU memory other than act");
	st = vision_steps(m, n, in, act, out, host, res, each);
	if (st.code != GROMA_OK)
	{
		act->used = act_mark;
		out->used = out_mark;
		host->used = host_mark;
		for (int i = 0; i < n; i++)
			each[i] = st;
	}
	return st;
}

/* Runs the vision side of one image: a batch of one; see vision.h. */
groma_status
groma_vision_run(const groma_model *m, const uint8_t *jpeg, size_t len,
				 const groma_jpeg_limits *limits, const double *refer_px, int n_refer,
				 groma_arena *act, groma_arena *out, groma_arena *host, groma_vision_result *res)
{
	groma_vision_input in = {jpeg, len, limits, refer_px, n_refer};
	size_t		act_mark = act->used,
				out_mark = out->used,
				host_mark = host->used;
	groma_status each;
	groma_status st = groma_vision_run_batch(m, 1, &in, act, out, host, res, &each);

	if (st.code == GROMA_OK && each.code != GROMA_OK)
	{
		act->used = act_mark;
		out->used = out_mark;
		host->used = host_mark;
		return each;
	}
	return st;
}
