/*
 * request.c - one request on a loaded model: image checks, the regions the
 * model keeps, and grounded answers, with boxes in pixels of the original
 * image.  Shared by the command line and the socket server.
 */
#include "request.h"

#include <stdlib.h>
#include <string.h>

#include "../image/draw.h"
#include "../image/preprocess.h"
#include "../model/generate.h"
#include "../model/kv_pool.h"
#include "../runtime/ops.h"
#include "../model/vision.h"
#include "../text/grounded_output.h"
#include "../text/prompt.h"

/* Opens an engine; see request.h. */
groma_status
groma_engine_open(const groma_cli_options *opt, groma_engine *e)
{
	memset(e, 0, sizeof(*e));
	GROMA_TRY(groma_cli_session_open(opt, opt->act_mb > 0 ? (size_t) opt->act_mb << 20 : GROMA_CLI_ACT_BYTES,
									 &e->session));
	return groma_tokenizer_load(opt->model_dir, &e->tok);
}

/* Closes an engine; see request.h. */
void
groma_engine_close(groma_engine *e)
{
	groma_tokenizer_free(e->tok);
	groma_cli_session_close(&e->session);
	memset(e, 0, sizeof(*e));
}

/* Fills a failed reply; see request.h. */
void
groma_reply_set_error(groma_reply *reply, const groma_request *req, groma_status st)
{
	groma_reply_free(reply);
	reply->kind = req->kind;
	reply->id = req->id;
	reply->status = st;
}

/* The request's JPEG limits: the defaults with its pixel limit. */
static groma_jpeg_limits
request_limits(const groma_request *req)
{
	groma_jpeg_limits limits = groma_jpeg_default_limits();

	if (req->max_pixels > 0)
		limits.max_pixels = (long) req->max_pixels;
	return limits;
}

/* VALIDATE: decodes and preprocesses the image as the model would. */
static groma_status
run_validate(const groma_request *req, groma_reply *reply)
{
	groma_jpeg_limits limits = request_limits(req);
	uint8_t    *resized = malloc((size_t) GROMA_IMAGE_SIZE * GROMA_IMAGE_SIZE * 3);	/* [448][448][3] */
	float	   *pixels = malloc(sizeof(float) * 3 * GROMA_IMAGE_SIZE * GROMA_IMAGE_SIZE);	/* [3][448][448] */
	groma_status st = resized && pixels ? groma_ok() : groma_error(GROMA_ERR_NO_MEMORY, "out of memory");

	if (st.code == GROMA_OK)
		st = groma_preprocess_jpeg(req->image, req->image_len, &limits, resized, pixels, &reply->width,
								   &reply->height);
	free(resized);
	free(pixels);
	return st;
}

/* DRAW: the request's boxes and labels drawn on its image, re-encoded as a JPEG into reply->jpeg. */
static groma_status
run_draw(const groma_request *req, groma_reply *reply)
{
	groma_jpeg_limits limits = request_limits(req);
	const char *const *labels = (const char *const *) req->draw_labels;
	size_t		len = 0;
	groma_status st = groma_draw_jpeg(req->image, req->image_len, &limits, req->draw_boxes, req->n_draw, labels,
									  labels ? req->n_draw : 0, &reply->jpeg, &len, &reply->width,
									  &reply->height);

	if (st.code == GROMA_OK && len > GROMA_PROTO_MAX_IMAGE)
		st = groma_error(GROMA_ERR_LIMIT, "the drawn image of %zu bytes is over the protocol's limit of %u bytes",
						 len, (unsigned) GROMA_PROTO_MAX_IMAGE);
	reply->jpeg_len = (uint32_t) (st.code == GROMA_OK ? len : 0);
	return st;
}

/* Copies the vision timings into the reply. */
static void
set_vision_timing(groma_reply *reply, const groma_vision_result *vis)
{
	const groma_vision_timing *t = &vis->timing;

	reply->width = vis->width;
	reply->height = vis->height;
	reply->stage_ms[0] = t->decode_ms;
	reply->stage_ms[1] = t->dinov2_ms;
	reply->stage_ms[2] = t->bridge_ms;
	reply->stage_ms[3] = t->proposer_ms;
	reply->stage_ms[4] = t->select_ms;
	reply->stage_ms[5] = t->region_ms;
	reply->vision_ms = t->decode_ms + t->dinov2_ms + t->bridge_ms + t->proposer_ms + t->select_ms + t->region_ms;
}

/*
 * Converts a normalised (cx, cy, w, h) box of the result to pixel corners
 * clipped to the image (0..width, 0..height): every box groma reports, to
 * the command line and to SQL alike, lies inside the image, so it can be
 * given back as a refer box.
 */
static void
pixel_box(const groma_vision_result *vis, const float *cxcywh, double *corners)
{
	groma_box_to_pixels(cxcywh, vis->width, vis->height, corners);
	for (int k = 0; k < 4; k++)
	{
		double		limit = k % 2 == 0 ? vis->width : vis->height;

		corners[k] = corners[k] < 0.0 ? 0.0 : corners[k] > limit ? limit : corners[k];
	}
}

/* Copies the kept regions' features (before the up-projection) into the reply's embeddings, in reply order. */
static groma_status
copy_embeddings(const groma_vision_result *vis, const int *new_index, groma_reply *reply)
{
	int64_t		dim = vis->region_features.shape[1];
	float	   *all = malloc(sizeof(float) * (size_t) (vis->n_regions * dim + 1));
	groma_status st;

	if (dim < 1 || dim > GROMA_PROTO_MAX_EMBED)
	{
		free(all);
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "region embeddings of %lld values are over the limit of %d",
						   (long long) dim, GROMA_PROTO_MAX_EMBED);
	}
	reply->embeddings = malloc(sizeof(float) * (size_t) (reply->n_regions * dim + 1));
	if (!all || !reply->embeddings)
	{
		free(all);
		return groma_error(GROMA_ERR_NO_MEMORY, "out of memory");
	}
	st = groma_download(&vis->region_features, all);
	if (st.code == GROMA_OK)
	{
		for (int i = 0; i < vis->n_regions; i++)
			if (new_index[i] >= 0)
				memcpy(reply->embeddings + (size_t) new_index[i] * dim, all + (size_t) i * dim,
					   sizeof(float) * (size_t) dim);
		reply->embed_dim = (int32_t) dim;
	}
	free(all);
	return st;
}

/* Refuses a REGIONS request asking for more regions than the model keeps. */
static groma_status
check_regions(const groma_engine *e, const groma_request *req)
{
	int			cap = e->session.model->select.max_regions;

	if (req->max_regions > cap)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "max_regions %d is over the model's limit of %d",
						   (int) req->max_regions, cap);
	return groma_ok();
}

/*
 * Fills a REGIONS reply from its image's vision result: the kept boxes in
 * score order.  Refer boxes always stay; the model's own boxes are further
 * cut to scores above min_score (strictly, as the model's own threshold)
 * and to max_regions when the request sets them, and refer matches are
 * renumbered to the boxes sent.
 */
static groma_status
fill_regions(const groma_engine *e, const groma_request *req, const groma_vision_result *vis, groma_reply *reply)
{
	int64_t		k = e->session.model->proposer.cfg.num_queries;
	int			kept_model = 0,
				n = 0;
	int		   *new_index;
	groma_status st;

	set_vision_timing(reply, vis);
	new_index = malloc(sizeof(int) * (size_t) (vis->n_regions + 1));
	reply->boxes = malloc(sizeof(double) * 4 * (size_t) (vis->n_regions + 1));
	reply->scores = malloc(sizeof(float) * (size_t) (vis->n_regions + 1));
	reply->is_refer = malloc((size_t) vis->n_regions + 1);
	if (!new_index || !reply->boxes || !reply->scores || !reply->is_refer)
	{
		free(new_index);
		return groma_error(GROMA_ERR_NO_MEMORY, "out of memory");
	}
	for (int i = 0; i < vis->n_regions; i++)
	{
		bool		refer = vis->kept[i] >= k;

		new_index[i] = -1;
		if (!refer && ((req->min_score >= 0 && vis->scores[i] <= req->min_score) ||
					   (req->max_regions > 0 && kept_model >= req->max_regions)))
			continue;
		kept_model += refer ? 0 : 1;
		pixel_box(vis, vis->boxes + 4 * i, reply->boxes + 4 * n);
		reply->scores[n] = vis->scores[i];
		reply->is_refer[n] = refer ? 1 : 0;
		new_index[i] = n++;
	}
	reply->n_regions = n;
	reply->n_refer_match = vis->n_refer;
	for (int i = 0; i < vis->n_refer; i++)
		reply->refer_match[i] = new_index[vis->refer_match[i]];
	st = req->want_embeddings ? copy_embeddings(vis, new_index, reply) : groma_ok();
	free(new_index);
	return st;
}

/* Empties the engine's arenas before a vision pass. */
static void
reset_arenas(groma_engine *e)
{
	groma_arena_reset(&e->session.act);
	groma_arena_reset(&e->session.out);
	groma_arena_reset(&e->session.host);
}

/* The vision pass of a batch of requests: which images it took, and each one's result. */
typedef struct vision_batch
{
	groma_vision_input in[GROMA_VISION_MAX_BATCH];
	groma_jpeg_limits limits[GROMA_VISION_MAX_BATCH];
	groma_vision_result vis[GROMA_VISION_MAX_BATCH];
	groma_status each[GROMA_VISION_MAX_BATCH];
	int			slot[GROMA_VISION_MAX_BATCH];	/* request i's place in the pass, -1: none */
	int			n_vis;
	bool		alone;			/* too large for the activation arena: each image runs when its reply is made */
	groma_status whole;			/* a failure of the whole pass (memory, the device, a cancel) */
} vision_batch;

/* Empties reply for req: its kind and id, status OK. */
static void
start_reply(groma_reply *reply, const groma_request *req)
{
	memset(reply, 0, sizeof(*reply));
	reply->kind = req->kind;
	reply->id = req->id;
}

/* Starts request i's reply with the outcome of its checks, and adds its image to the pass when they passed. */
static void
vision_batch_offer(vision_batch *b, int i, const groma_request *req, groma_reply *reply, groma_status checked)
{
	start_reply(reply, req);
	reply->status = checked;
	b->slot[i] = -1;
	if (checked.code != GROMA_OK)
		return;
	b->limits[b->n_vis] = request_limits(req);
	b->in[b->n_vis] = (groma_vision_input) {req->image, req->image_len, &b->limits[b->n_vis], &req->refer[0][0],
	req->n_refer};
	b->slot[i] = b->n_vis++;
}

/*
 * Runs the pass over the images added, as one batch; a batch the
 * activation arena cannot hold is left for vision_batch_result, one image
 * at a time (*one_by_one says so, when not NULL).  Returns a failure of
 * the whole pass.
 */
static groma_status
vision_batch_run(groma_engine *e, vision_batch *b, bool *one_by_one)
{
	groma_cli_session *s = &e->session;

	b->whole = groma_ok();
	if (b->n_vis > 0)
	{
		reset_arenas(e);
		b->whole = groma_vision_run_batch(s->model, b->n_vis, b->in, &s->act, &s->out, &s->host, b->vis, b->each);
	}
	b->alone = b->whole.code == GROMA_ERR_NO_MEMORY && b->n_vis > 1;
	if (b->alone)
		b->whole = groma_ok();
	if (one_by_one)
		*one_by_one = b->alone;
	return b->whole;
}

/*
 * The vision result of request i (in the pass): run now, alone, when the
 * pass was too large (the out and host arenas emptied first, and act
 * unless keep_act: it holds earlier requests' prompts), unless an earlier
 * image stopped them all.  Returns the image's status.
 */
static groma_status
vision_batch_result(groma_engine *e, vision_batch *b, int i, bool keep_act, const groma_vision_result **vis)
{
	groma_cli_session *s = &e->session;
	int			k = b->slot[i];

	if (b->alone && b->whole.code != GROMA_OK)
		b->each[k] = b->whole;	/* an image before this one stopped them all (a cancel, the device) */
	else if (b->alone)
	{
		if (!keep_act)
			groma_arena_reset(&s->act);
		groma_arena_reset(&s->out);
		groma_arena_reset(&s->host);
		b->whole = groma_vision_run_batch(s->model, 1, &b->in[k], &s->act, &s->out, &s->host, &b->vis[k],
										  &b->each[k]);
	}
	*vis = &b->vis[k];
	return b->each[k];
}

/* REGIONS for n requests, their images through the vision stages as one batch; see request.h. */
groma_status
groma_request_regions_batch(groma_engine *e, int n, const groma_request *const *reqs, groma_reply *const *replies,
							bool *one_by_one)
{
	vision_batch b = {.n_vis = 0};
	groma_status st;

	if (n < 1 || n > GROMA_VISION_MAX_BATCH)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "a batch of %d requests (1..%d)", n, GROMA_VISION_MAX_BATCH);
	for (int i = 0; i < n; i++)
		vision_batch_offer(&b, i, reqs[i], replies[i], check_regions(e, reqs[i]));
	st = vision_batch_run(e, &b, one_by_one);
	for (int i = 0; i < n; i++)
	{
		groma_status one = replies[i]->status;
		const groma_vision_result *vis;

		if (one.code == GROMA_OK)
			one = vision_batch_result(e, &b, i, false, &vis);
		if (one.code == GROMA_OK)
			one = fill_regions(e, reqs[i], vis, replies[i]);
		if (one.code != GROMA_OK)
			groma_reply_set_error(replies[i], reqs[i], one);
		replies[i]->status = one;
	}
	return st.code != GROMA_OK ? st : b.whole;
}

/* REGIONS on its own: a batch of one. */
static groma_status
run_regions(groma_engine *e, const groma_request *req, groma_reply *reply)
{
	groma_status st = groma_request_regions_batch(e, 1, &req, &reply, NULL);

	return st.code != GROMA_OK ? st : reply->status;
}

/* Builds the query text of a GENERATE request: its prompt, or its task's prompt around its phrase. */
static groma_status
request_query(const groma_request *req, char **query)
{
	const char *text = req->text ? req->text : "";

	*query = NULL;
	if (req->task < 0)
	{
		if (text[0] == '\0')
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "the prompt is empty");
		*query = strdup(text);
		return *query ? groma_ok() : groma_error(GROMA_ERR_NO_MEMORY, "out of memory");
	}
	if (req->task == GROMA_TASK_DESCRIBE && req->n_refer != 1)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "describing a region needs exactly one refer box, got %d",
						   req->n_refer);
	if (req->task != GROMA_TASK_DESCRIBE && req->n_refer != 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "refer boxes need a query that refers to them");
	return groma_task_query((groma_task) req->task, req->task == GROMA_TASK_GROUND ? text : NULL, query);
}

/* Copies a parsed answer into the reply: text, groundings with pixel boxes, ids. */
static groma_status
fill_answer(groma_reply *reply, const groma_vision_result *vis, const groma_generation *gen,
			const groma_grounded_answer *a)
{
	reply->text = strdup(a->text);
	reply->groundings = calloc((size_t) a->n_groundings + 1, sizeof(groma_reply_grounding));
	reply->ids = malloc(sizeof(int32_t) * (gen->n + 1));
	if (!reply->text || !reply->groundings || !reply->ids)
		return groma_error(GROMA_ERR_NO_MEMORY, "out of memory");
	reply->n_groundings = a->n_groundings;
	for (int i = 0; i < a->n_groundings; i++)
	{
		const groma_grounding *g = &a->groundings[i];
		groma_reply_grounding *r = &reply->groundings[i];

		r->phrase = strdup(g->phrase);
		r->boxes = malloc(sizeof(double) * 4 * (size_t) (g->n_boxes + 1));
		if (!r->phrase || !r->boxes)
			return groma_error(GROMA_ERR_NO_MEMORY, "out of memory");
		r->start = g->start;
		r->stop = g->stop;
		r->n_boxes = g->n_boxes;
		for (int k = 0; k < g->n_boxes; k++)
			pixel_box(vis, vis->boxes + 4 * g->boxes[k], r->boxes + 4 * k);
	}
	for (size_t i = 0; i < gen->n; i++)
		reply->ids[i] = gen->ids[i];
	reply->n_ids = (int32_t) gen->n;
	reply->hit_eos = gen->hit_eos;
	reply->prompt_tokens = (int32_t) gen->prompt_tokens;
	reply->prefill_ms = gen->prefill_ms;
	reply->decode_ms = gen->decode_ms;
	reply->n_regions = vis->n_regions;
	return groma_ok();
}

/* Builds and checks a GENERATE request's query before any model work (markup, refer boxes, context). */
static groma_status
checked_query(groma_engine *e, const groma_request *req, char **query, int64_t *positions)
{
	char	   *checked = NULL;
	groma_status st = request_query(req, query);

	/* a bad query, or one too long for the model's context, is refused before any model work */
	if (st.code == GROMA_OK)
		st = groma_prompt_text(*query, &checked);
	free(checked);
	if (st.code == GROMA_OK)
		st = groma_prompt_check_refer(*query, req->n_refer);
	if (st.code == GROMA_OK)
		st = groma_generate_bound(e->session.model, e->tok, *query, req->max_new_tokens, positions);
	if (st.code != GROMA_OK)
	{
		free(*query);
		*query = NULL;
	}
	return st;
}

/* The most KV positions a GENERATE request can need; see request.h. */
groma_status
groma_request_kv_bound(groma_engine *e, const groma_request *req, int64_t *positions)
{
	char	   *query = NULL;
	groma_status st = checked_query(e, req, &query, positions);

	free(query);
	return st;
}

/* Frees a pending GENERATE; see request.h. */
void
groma_pending_generate_free(groma_pending_generate *p, groma_kv_pool *pool)
{
	groma_sequence_end(&p->seq, pool);
	free(p->boxes);
	memset(p, 0, sizeof(*p));
}

/* Takes a vision result into a pending GENERATE: the reply's timings, a copy of the boxes, then the prompt. */
static groma_status
begin_after_vision(groma_engine *e, const groma_request *req, const char *query, const groma_vision_result *vis,
				   groma_kv_pool *pool, int first_room, groma_reply *reply, groma_pending_generate *p)
{
	set_vision_timing(reply, vis);
	p->width = vis->width;
	p->height = vis->height;
	p->n_regions = vis->n_regions;
	p->boxes = malloc(sizeof(float) * 4 * (size_t) (vis->n_regions + 1));
	if (p->boxes == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "out of memory");
	memcpy(p->boxes, vis->boxes, sizeof(float) * 4 * (size_t) vis->n_regions);
	return groma_sequence_begin(e->session.model, e->tok, vis, query, req->max_new_tokens, first_room, true, pool,
								&e->session.act, &p->seq);
}

/* Vision (as one batch) and prompts of n GENERATE requests; see request.h. */
groma_status
groma_request_generate_begin_batch(groma_engine *e, int n, const groma_request *const *reqs, groma_kv_pool *pool,
								   const int *first_room, groma_reply *const *replies, groma_pending_generate *const *p,
								   bool *one_by_one)
{
	vision_batch b = {.n_vis = 0};
	char	   *query[GROMA_VISION_MAX_BATCH];
	groma_status st;

	if (n < 1 || n > GROMA_VISION_MAX_BATCH)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "a batch of %d requests (1..%d)", n, GROMA_VISION_MAX_BATCH);
	for (int i = 0; i < n; i++)
	{
		int64_t		positions;

		memset(p[i], 0, sizeof(*p[i]));
		query[i] = NULL;
		vision_batch_offer(&b, i, reqs[i], replies[i], checked_query(e, reqs[i], &query[i], &positions));
	}
	st = vision_batch_run(e, &b, one_by_one);
	for (int i = 0; i < n; i++)
	{
		groma_status one = replies[i]->status;
		const groma_vision_result *vis;

		/* run alone, an image keeps act: it holds the prompts of the requests before it, for their prefills */
		if (one.code == GROMA_OK)
			one = vision_batch_result(e, &b, i, true, &vis);
		if (one.code == GROMA_OK)
			one = begin_after_vision(e, reqs[i], query[i], vis, pool, first_room ? first_room[i] : 0, replies[i],
									 p[i]);
		free(query[i]);
		if (one.code != GROMA_OK)
		{
			groma_pending_generate_free(p[i], pool);
			groma_reply_set_error(replies[i], reqs[i], one);
		}
		replies[i]->status = one;
	}
	return st.code != GROMA_OK ? st : b.whole;
}

/* Vision and prompt of one GENERATE request: a batch of one; see request.h. */
groma_status
groma_request_generate_begin(groma_engine *e, const groma_request *req, groma_kv_pool *pool, groma_reply *reply,
							 groma_pending_generate *p)
{
	groma_status st = groma_request_generate_begin_batch(e, 1, &req, pool, NULL, &reply, &p, NULL);

	return st.code != GROMA_OK ? st : reply->status;
}

/* Parses a finished sequence into the reply and frees it; see request.h. */
groma_status
groma_request_generate_finish(groma_engine *e, const groma_request *req, groma_kv_pool *pool, groma_reply *reply,
							  groma_pending_generate *p)
{
	groma_vision_result vis = {.width = p->width, .height = p->height, .n_regions = p->n_regions,
	.boxes = p->boxes};
	groma_generation gen = groma_sequence_generation(&p->seq);
	groma_grounded_answer answer = {0};
	groma_status st = groma_parse_grounded(e->tok, gen.ids, gen.n, p->n_regions, &answer);

	if (st.code == GROMA_OK)
		st = fill_answer(reply, &vis, &gen, &answer);
	groma_grounded_answer_free(&answer);
	groma_pending_generate_free(p, pool);
	if (st.code != GROMA_OK)
		groma_reply_set_error(reply, req, st);
	reply->status = st;
	return st;
}

/* GENERATE on its own: vision, prompt, then its steps alone (prefill first; cancel checked before each), parsed. */
static groma_status
run_generate(groma_engine *e, const groma_request *req, groma_reply *reply)
{
	groma_pending_generate p;
	groma_status st = groma_request_generate_begin(e, req, NULL, reply, &p);

	if (st.code == GROMA_OK)
		st = groma_sequence_run_alone(e->session.model, e->tok, &p.seq, &e->session.act);
	if (st.code == GROMA_OK)
		st = groma_request_generate_finish(e, req, NULL, reply, &p);
	groma_pending_generate_free(&p, NULL);
	return st;
}

/* Runs one request; see request.h. */
groma_status
groma_request_run(groma_engine *e, const groma_request *req, groma_reply *reply)
{
	groma_status st;

	memset(reply, 0, sizeof(*reply));
	reply->kind = req->kind;
	reply->id = req->id;
	if (req->kind == GROMA_MSG_VALIDATE)
		st = run_validate(req, reply);
	else if (req->kind == GROMA_MSG_DRAW)
		st = run_draw(req, reply);
	else if (req->kind != GROMA_MSG_REGIONS && req->kind != GROMA_MSG_GENERATE)
		st = groma_error(GROMA_ERR_INVALID_ARGUMENT, "request kind %d does not run on the model", (int) req->kind);
	else if (e == NULL || e->session.model == NULL)
		st = groma_error(GROMA_ERR_UNAVAILABLE, "no model is loaded");
	else if (req->kind == GROMA_MSG_REGIONS)
		st = run_regions(e, req, reply);
	else
		st = run_generate(e, req, reply);
	if (st.code != GROMA_OK)
		groma_reply_set_error(reply, req, st);
	reply->status = st;
	return st;
}
