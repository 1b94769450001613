/*
 * request.h - running one request (protocol.h) on a loaded model: the code
 * the command line (--regions, --image) and the socket server share.
 */
#ifndef GROMA_REQUEST_H
#define GROMA_REQUEST_H

#include "cli.h"
#include "protocol.h"
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

/* Fills a failed reply for req: status st and nothing else. */
void		groma_reply_set_error(groma_reply *reply, const groma_request *req, groma_status st);

/* Builds the request the command-line options describe, pointing at image bytes it does not own. */
groma_request groma_cli_request(const groma_cli_options *opt, groma_msg_kind kind, uint8_t *image, size_t len);

#endif							/* GROMA_REQUEST_H */
