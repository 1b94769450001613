/*
 * request.h - running one request (protocol.h) on a loaded model: the code
 * the command line (--regions, --image) and the socket server share.
 */
#ifndef GROMA_REQUEST_H
#define GROMA_REQUEST_H

#include "cli.h"
#include "protocol.h"
#include "../model/generate.h"
#include "../text/tokenizer.h"

/* A loaded model with its tokenizer and working memory: what requests run on. */
typedef struct groma_engine
{
	groma_cli_session session;	/* model + arenas; model NULL when there is none */
	groma_tokenizer *tok;
} groma_engine;

/* Loads the model of opt (--model, --device, --weights) and its tokenizer; close it even after a failure. */
groma_status groma_engine_open(const groma_cli_options *opt, groma_engine *e);

/* Frees the engine; safe on a zeroed or half-opened one. */
void		groma_engine_close(groma_engine *e);

/*
 * Runs req and fills reply (kind, id, status and the kind's fields, owned
 * by the reply: free it with groma_reply_free).  VALIDATE and DRAW need no
 * engine (e may be NULL); REGIONS and GENERATE need a loaded one.  Model work
 * stops at the next stage boundary or decode step when the calling thread's
 * cancel flag (runtime/cancel.h) is set.  Returns reply->status.
 */
groma_status groma_request_run(groma_engine *e, const groma_request *req, groma_reply *reply);

/*
 * A GENERATE request between its prefill and its answer, for decoding
 * several at once: its sequence, and what the answer needs of its vision
 * (the image size and the kept boxes).
 */
typedef struct groma_pending_generate
{
	groma_sequence seq;
	int			width;
	int			height;
	int			n_regions;
	float	   *boxes;			/* [n_regions][4] normalised (cx, cy, w, h), score order (malloc) */
} groma_pending_generate;

/*
 * Runs n REGIONS requests (1..GROMA_VISION_MAX_BATCH), their images
 * through the vision stages as one batch, and fills replies[i] (owned by
 * the reply) as groma_request_run would for request i alone.  Each
 * request's outcome is in replies[i]->status (a bad image or a max_regions
 * over the model's limit fails only its own request); the return value is a
 * failure of the whole batch (memory, the device, a cancel), also in every
 * failed reply.  A vision batch the activation arena cannot hold runs one
 * image at a time instead (*one_by_one set, when not NULL).
 */
groma_status groma_request_regions_batch(groma_engine *e, int n, const groma_request *const *reqs,
										 groma_reply *const *replies, bool *one_by_one);

/*
 * Checks a GENERATE request's query as groma_request_run does (before any
 * model work) and gives the most KV positions it can need: the prompt with
 * every region the model may keep, plus its new tokens.
 */
groma_status groma_request_kv_bound(groma_engine *e, const groma_request *req, int64_t *positions);

/*
 * Vision and prompt of a GENERATE request, its KV cache from pool (NULL:
 * from the engine's activation arena) and its prompt's embeddings in the
 * activation arena (its prefill is its sequence's first step): reply gets
 * its kind, id and vision timings.  On failure reply holds the error and p
 * is empty.
 */
groma_status groma_request_generate_begin(groma_engine *e, const groma_request *req, struct groma_kv_pool *pool,
										  groma_reply *reply, groma_pending_generate *p);

/*
 * groma_request_generate_begin for n requests, their images through the
 * vision stages as one batch (groma_vision_run_batch), then each prompt
 * (the prompts stay in the activation arena until the next step).
 * Each request's outcome is in replies[i]->status (a bad query or image
 * fails only its own request); the return value is a failure of the whole
 * batch (memory, the device, a cancel), also in every failed reply.  A
 * vision batch the activation arena cannot hold runs one image at a time
 * instead (*one_by_one set, when not NULL).  first_room[i] is the new
 * tokens request i's cache holds at first (groma_sequence_begin; NULL: all
 * of them).
 */
groma_status groma_request_generate_begin_batch(groma_engine *e, int n, const groma_request *const *reqs,
												struct groma_kv_pool *pool, const int *first_room,
												groma_reply *const *replies, groma_pending_generate *const *p,
												bool *one_by_one);

/* Parses p's finished sequence into the reply (text, groundings, ids, timings) and frees p. */
groma_status groma_request_generate_finish(groma_engine *e, const groma_request *req, struct groma_kv_pool *pool,
										   groma_reply *reply, groma_pending_generate *p);

/* Frees p, its cache back to pool; safe on a zeroed one. */
void		groma_pending_generate_free(groma_pending_generate *p, struct groma_kv_pool *pool);

/* Fills a failed reply for req: status st and nothing else. */
void		groma_reply_set_error(groma_reply *reply, const groma_request *req, groma_status st);

/* Builds the request the command-line options describe, pointing at image bytes it does not own. */
groma_request groma_cli_request(const groma_cli_options *opt, groma_msg_kind kind, uint8_t *image, size_t len);

#endif							/* GROMA_REQUEST_H */
