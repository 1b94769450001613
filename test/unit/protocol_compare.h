/*
 * protocol_compare.h - field-by-field comparison of decoded protocol
 * messages (src/server/protocol.h), shared by test_protocol.c and the
 * fuzz_protocol target.  Floats and doubles are compared bit for bit, so
 * NaN payloads and negative zeros must survive a round trip too.  Only the
 * fields that the message's kind carries on the wire are compared.
 */
#ifndef GROMA_PROTOCOL_COMPARE_H
#define GROMA_PROTOCOL_COMPARE_H

#include <string.h>

#include "../../src/server/protocol.h"

/* Returns true when two strings are equal, a NULL string counting as "". */
static bool
proto_same_str(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Returns true when n bytes at a and b are equal (either may be NULL when n is 0). */
static bool
proto_same_bytes(const void *a, const void *b, size_t n)
{
	return n == 0 || (a != NULL && b != NULL && memcmp(a, b, n) == 0);
}

/* Returns the name of the first field in which two requests differ, or NULL when they are equal. */
static const char *
proto_request_difference(const groma_request *a, const groma_request *b)
{
	bool		has_image = a->kind == GROMA_MSG_VALIDATE || a->kind == GROMA_MSG_REGIONS ||
		a->kind == GROMA_MSG_GENERATE || a->kind == GROMA_MSG_DRAW;

	if (a->kind != b->kind || a->id != b->id)
		return "kind or id";
	if (has_image)
	{
		if (a->image_len != b->image_len || !proto_same_bytes(a->image, b->image, a->image_len))
			return "image";
		if (a->max_pixels != b->max_pixels)
			return "max_pixels";
		if (a->n_refer != b->n_refer ||
			!proto_same_bytes(a->refer, b->refer, (size_t) a->n_refer * sizeof(a->refer[0])))
			return "refer boxes";
	}
	if (a->kind == GROMA_MSG_REGIONS &&
		(a->max_regions != b->max_regions || !proto_same_bytes(&a->min_score, &b->min_score, sizeof(float)) ||
		 a->want_embeddings != b->want_embeddings))
		return "regions fields";
	if (a->kind == GROMA_MSG_GENERATE &&
		(a->task != b->task || !proto_same_str(a->text, b->text) || a->max_new_tokens != b->max_new_tokens ||
		 a->alone != b->alone))
		return "generate fields";
	if (a->kind == GROMA_MSG_CANCEL && a->cancel_id != b->cancel_id)
		return "cancel_id";
	if (a->kind == GROMA_MSG_DRAW)
	{
		if (a->n_draw != b->n_draw ||
			!proto_same_bytes(a->draw_boxes, b->draw_boxes, 4 * (size_t) a->n_draw * sizeof(double)))
			return "draw boxes";
		for (int i = 0; i < a->n_draw; i++)
			if (!proto_same_str(a->draw_labels ? a->draw_labels[i] : NULL, b->draw_labels ? b->draw_labels[i] : NULL))
				return "labels";
	}
	return NULL;
}

/* Returns the name of the first STATUS field in which two replies differ, or NULL. */
static const char *
proto_status_difference(const groma_reply *a, const groma_reply *b)
{
	if (a->state != b->state || !proto_same_str(a->model_path, b->model_path) ||
		!proto_same_str(a->device, b->device) || !proto_same_str(a->weights, b->weights))
		return "state, model_path, device or weights";
	if (a->load_done != b->load_done || a->load_total != b->load_total || a->queue_depth != b->queue_depth ||
		a->running != b->running || a->served != b->served || a->failed != b->failed || a->batch != b->batch ||
		a->max_batch != b->max_batch || a->kv_used != b->kv_used || a->kv_total != b->kv_total ||
		a->cancelled != b->cancelled || a->busy != b->busy)
		return "status counters";
	return NULL;
}

/* Returns the name of the first REGIONS field in which two replies differ, or NULL. */
static const char *
proto_regions_difference(const groma_reply *a, const groma_reply *b)
{
	size_t		n = (size_t) a->n_regions;

	if (a->n_regions != b->n_regions || a->embed_dim != b->embed_dim)
		return "region count or embedding size";
	if (!proto_same_bytes(a->boxes, b->boxes, 4 * n * sizeof(double)) ||
		!proto_same_bytes(a->scores, b->scores, n * sizeof(float)) ||
		!proto_same_bytes(a->is_refer, b->is_refer, n))
		return "regions";
	if (!proto_same_bytes(a->embeddings, b->embeddings, n * (size_t) a->embed_dim * sizeof(float)))
		return "embeddings";
	if (a->n_refer_match != b->n_refer_match ||
		!proto_same_bytes(a->refer_match, b->refer_match, (size_t) a->n_refer_match * sizeof(int32_t)))
		return "refer matches";
	return NULL;
}

/* Returns the name of the first GENERATE field in which two replies differ, or NULL. */
static const char *
proto_generate_difference(const groma_reply *a, const groma_reply *b)
{
	if (a->n_regions != b->n_regions || !proto_same_str(a->text, b->text))
		return "region count or text";
	if (a->n_groundings != b->n_groundings)
		return "grounding count";
	for (int i = 0; i < a->n_groundings; i++)
	{
		const groma_reply_grounding *g = &a->groundings[i],
				   *h = &b->groundings[i];

		if (!proto_same_str(g->phrase, h->phrase) || g->start != h->start || g->stop != h->stop ||
			g->n_boxes != h->n_boxes || !proto_same_bytes(g->boxes, h->boxes, 4 * (size_t) g->n_boxes * sizeof(double)))
			return "grounding";
	}
	if (a->n_ids != b->n_ids || !proto_same_bytes(a->ids, b->ids, (size_t) a->n_ids * sizeof(int32_t)))
		return "ids";
	if (a->hit_eos != b->hit_eos || a->prompt_tokens != b->prompt_tokens ||
		!proto_same_bytes(&a->prefill_ms, &b->prefill_ms, sizeof(double)) ||
		!proto_same_bytes(&a->decode_ms, &b->decode_ms, sizeof(double)))
		return "generation facts";
	return NULL;
}

/* Returns the name of the first field in which two replies differ, or NULL when they are equal. */
static const char *
proto_reply_difference(const groma_reply *a, const groma_reply *b)
{
	const char *d = NULL;

	if (a->kind != b->kind || a->id != b->id)
		return "kind or id";
	if (a->status.code != b->status.code || strcmp(a->status.message, b->status.message) != 0)
		return "status";
	if (a->status.code != GROMA_OK)
		return NULL;
	if (a->kind == GROMA_MSG_STATUS)
		d = proto_status_difference(a, b);
	if (d == NULL && (a->kind == GROMA_MSG_VALIDATE || a->kind == GROMA_MSG_REGIONS || a->kind == GROMA_MSG_GENERATE ||
					  a->kind == GROMA_MSG_DRAW) &&
		(a->width != b->width || a->height != b->height))
		d = "image size";
	if (d == NULL && a->kind == GROMA_MSG_REGIONS)
		d = proto_regions_difference(a, b);
	if (d == NULL && a->kind == GROMA_MSG_GENERATE)
		d = proto_generate_difference(a, b);
	if (d == NULL && a->kind == GROMA_MSG_DRAW &&
		(a->jpeg_len != b->jpeg_len || !proto_same_bytes(a->jpeg, b->jpeg, a->jpeg_len)))
		d = "drawn image";
	if (d == NULL && (a->kind == GROMA_MSG_REGIONS || a->kind == GROMA_MSG_GENERATE) &&
		(!proto_same_bytes(&a->queue_ms, &b->queue_ms, sizeof(double)) ||
		 !proto_same_bytes(&a->vision_ms, &b->vision_ms, sizeof(double)) ||
		 !proto_same_bytes(a->stage_ms, b->stage_ms, sizeof(a->stage_ms))))
		d = "timings";
	return d;
}

#endif							/* GROMA_PROTOCOL_COMPARE_H */
