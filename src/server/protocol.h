/*
 * protocol.h - the frames PostgreSQL backends and groma-server exchange
 * over groma-server's UNIX socket.  Shared by both sides: groma.so links
 * protocol.c the way it links status.c.  No PostgreSQL headers here.
 *
 * A frame is a 16-byte header followed by a payload:
 *
 *   u32 magic "GRMA"   u16 version   u16 kind   u32 request id   u32 payload bytes
 *
 * all little-endian.  The payload is a sequence of fields in a fixed order
 * per kind (u8/u32/i32/f32/f64, and byte strings as u32 length + bytes).
 * Every length is checked against the limits below before anything is
 * allocated; a frame that does not parse is a protocol error, after which
 * the reader closes that connection (never the server).
 *
 * One connection carries one request at a time: the client sends a request
 * and reads frames until the reply with the same id arrives.  A client may
 * send CANCEL (naming the id) or close the connection while it waits; either
 * makes the server drop the request at the next stage boundary or decode step.
 */
#ifndef GROMA_PROTOCOL_H
#define GROMA_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../runtime/status.h"

#define GROMA_PROTO_MAGIC 0x414d5247u	/* "GRMA" as little-endian bytes */
#define GROMA_PROTO_VERSION 6
#define GROMA_PROTO_HEADER_BYTES 16

/*
 * groma-server --serve's exit status when its watchdog found the scheduler
 * hung (a model call or the server's lock held longer than --watchdog-s):
 * the launcher restarts it and backends name the hang.
 */
#define GROMA_SERVER_EXIT_HUNG 5

/* The most requests one model call of groma-server works for (a decode step of the whole batch). */
#define GROMA_BEACON_MAX_IN_CALL 256

/* A request as its client knows it: the client's process (SO_PEERCRED) and the request's id. */
typedef struct groma_beacon_request
{
	int32_t		client_pid;
	uint32_t	request_id;
} groma_beacon_request;

/*
 * The memory groma-server --serve shares with the launcher that started it
 * (a memfd passed as --beacon-fd): its state, when its model call in
 * progress began, the requests that call works for, its watchdog's limit,
 * and whether its watchdog is ending it.  The launcher copies it every
 * tick for backends: new calls avoid a server in a call that lasts (a hung
 * GPU) or whose lock stays held (a deadlock), and once the call has
 * lasted a tenth of the watchdog's limit the requests queued there move to
 * a server with its model loaded (those in the call stay: they may be what
 * hangs it).  A seqlock: the server makes seq odd while it writes, and a
 * reader that sees seq odd or changed reads again; state,
 * lock_stuck_since_ms and hung are single atomic stores outside it.
 */
typedef struct groma_server_beacon
{
	uint32_t	seq;			/* odd while the server writes (__atomic) */
	int32_t		watchdog_ms;	/* --watchdog-s as resolved, in milliseconds; 0: no watchdog */
	int64_t		call_since_ms;	/* CLOCK_MONOTONIC milliseconds at the call's start; 0: none */
	int32_t		n_in_call;		/* entries of in_call */
	groma_beacon_request in_call[GROMA_BEACON_MAX_IN_CALL];	/* the requests the call works for */
	int32_t		state;			/* its groma_server_state (__atomic; 0, starting, until it says more):
								 * hung requests move only to a server that is ready */
	int64_t		lock_stuck_since_ms;	/* CLOCK_MONOTONIC milliseconds since when the watchdog has found the
										 * server's lock held (__atomic); 0: it took the lock at its last look */
	int32_t		hung;			/* 1 (__atomic) once the watchdog has found the server hung and ends it: its
								 * connections are closed, and its exit may still take a while */
} groma_server_beacon;

/* Hard limits, checked before any allocation. */
#define GROMA_PROTO_MAX_PAYLOAD ((uint32_t) 300 << 20)	/* any frame */
#define GROMA_PROTO_MAX_IMAGE ((uint32_t) 256 << 20)	/* image bytes in a request */
#define GROMA_PROTO_MAX_TEXT 65536	/* prompt, phrase, answer text, paths, messages */
#define GROMA_PROTO_MAX_REFER 16	/* refer boxes in one request */
#define GROMA_PROTO_MAX_REGIONS 4096	/* regions in one reply */
#define GROMA_PROTO_MAX_EMBED 16384 /* floats in one region embedding */
#define GROMA_PROTO_MAX_GROUNDINGS 4096 /* groundings in one answer */
#define GROMA_PROTO_MAX_TOKENS 8192 /* generated ids in one answer */

/* Frame kinds. */
typedef enum groma_msg_kind
{
	GROMA_MSG_PING = 1,			/* empty; answered at once, also while loading */
	GROMA_MSG_STATUS = 2,		/* empty; the server's state and counters */
	GROMA_MSG_VALIDATE = 3,		/* decode + preprocess an image; needs no model */
	GROMA_MSG_REGIONS = 4,		/* the boxes the model keeps */
	GROMA_MSG_GENERATE = 5,		/* a grounded answer to a prompt or task */
	GROMA_MSG_CANCEL = 6,		/* drop the request named by cancel_id; no reply */
	GROMA_MSG_DRAW = 7,			/* boxes and labels drawn on the image, a JPEG back; needs no model */
	GROMA_MSG_REPLY = 100		/* the answer to a request, same id */
} groma_msg_kind;

/* What the server is doing, as STATUS reports it. */
typedef enum groma_server_state
{
	GROMA_SERVER_STARTING = 0,	/* up, model load not begun */
	GROMA_SERVER_LOADING = 1,	/* loading the model (bytes loaded of total) */
	GROMA_SERVER_READY = 2,		/* model loaded, serving */
	GROMA_SERVER_NO_MODEL = 3,	/* started without --model: image checks only */
	GROMA_SERVER_FAILED = 4,	/* the model failed to load (message says why) */
	GROMA_SERVER_STOPPING = 5	/* SIGTERM received: nothing new is started */
} groma_server_state;

/* Returns a lower-case name for a state ("ready", ...). */
const char *groma_server_state_name(groma_server_state s);

/* A request: the fields its kind uses, the others zero. */
typedef struct groma_request
{
	groma_msg_kind kind;
	uint32_t	id;
	/* VALIDATE, REGIONS, GENERATE, DRAW */
	uint8_t    *image;			/* malloc'd JPEG bytes */
	uint32_t	image_len;
	int64_t		max_pixels;		/* refuse larger images (groma.max_image_pixels) */
	int			n_refer;		/* refer boxes, pixel corners x1,y1,x2,y2 */
	double		refer[GROMA_PROTO_MAX_REFER][4];
	/* REGIONS */
	int32_t		max_regions;	/* 0: the model's own cap */
	float		min_score;		/* < 0: the model's own threshold */
	bool		want_embeddings;
	/* GENERATE */
	int32_t		task;			/* -1: text is a free prompt; else a groma_task and text its phrase (may be empty) */
	char	   *text;			/* malloc'd, NUL-terminated UTF-8 */
	int32_t		max_new_tokens;
	bool		alone;			/* run in model calls that work for no other request (a suspect image told apart) */
	/* CANCEL */
	uint32_t	cancel_id;
	/* DRAW: n_draw boxes and as many labels ("" or NULL: no label; draw_labels NULL: none at all) */
	int32_t		n_draw;
	double	   *draw_boxes;		/* malloc'd [n_draw][4] pixel corners */
	char	  **draw_labels;	/* malloc'd [n_draw] malloc'd strings */
} groma_request;

/* One grounded phrase of an answer: character offsets into text and pixel boxes. */
typedef struct groma_reply_grounding
{
	char	   *phrase;
	int32_t		start;
	int32_t		stop;
	int32_t		n_boxes;
	double	   *boxes;			/* [n_boxes][4] pixel corners */
} groma_reply_grounding;

/* The reply to any request: a status, then the fields of the request's kind. */
typedef struct groma_reply
{
	groma_msg_kind kind;		/* the kind of request answered */
	uint32_t	id;
	groma_status status;		/* code + message; on failure nothing else is sent */
	/* STATUS */
	groma_server_state state;
	char	   *model_path;		/* malloc'd, "" when none */
	char	   *device;			/* malloc'd: "cpu", "cuda:0", ... */
	uint64_t	load_done;		/* bytes of weights loaded */
	uint64_t	load_total;		/* bytes of weights to load (0: unknown) */
	uint32_t	queue_depth;	/* requests waiting */
	uint32_t	running;		/* requests being computed */
	uint64_t	served;			/* requests answered successfully */
	uint64_t	failed;			/* requests answered with an error other than a cancel or a full queue */
	uint32_t	batch;			/* answers being decoded together now */
	uint32_t	max_batch;		/* --max-batch */
	uint64_t	kv_used;		/* bytes of the KV cache pool in use */
	uint64_t	kv_total;		/* bytes of the KV cache pool (0 without a model) */
	char	   *weights;		/* malloc'd: the matrices' type, "f32", "bf16", "f16" or "int8" ("" without a model) */
	uint64_t	cancelled;		/* requests ended by a cancel (the client's, or its going away) */
	uint64_t	busy;			/* requests refused because the queue was full */
	/* VALIDATE, REGIONS, GENERATE, DRAW */
	int32_t		width;			/* original image size */
	int32_t		height;
	/* REGIONS (and GENERATE: n_regions only) */
	int32_t		n_regions;
	double	   *boxes;			/* [n_regions][4] pixel corners, score order */
	float	   *scores;			/* [n_regions] */
	uint8_t    *is_refer;		/* [n_regions] 1 for a refer box */
	int32_t		embed_dim;		/* 0 when no embeddings were asked for */
	float	   *embeddings;		/* [n_regions][embed_dim] */
	int32_t		n_refer_match;
	int32_t		refer_match[GROMA_PROTO_MAX_REFER];	/* refer box -> region index, 0 .. n_regions - 1 */
	/* GENERATE */
	char	   *text;			/* the answer without markup */
	int32_t		n_groundings;
	groma_reply_grounding *groundings;
	int32_t		n_ids;
	int32_t    *ids;			/* generated token ids */
	bool		hit_eos;
	int32_t		prompt_tokens;
	/* DRAW */
	uint8_t    *jpeg;			/* malloc'd JPEG bytes of the drawn image */
	uint32_t	jpeg_len;
	/* timings of REGIONS and GENERATE, milliseconds */
	double		queue_ms;
	double		vision_ms;
	double		prefill_ms;
	double		decode_ms;
	double		stage_ms[6];	/* decode, dinov2, bridge, proposer, select, region */
} groma_reply;

/* The header's fields. */
typedef struct groma_frame_header
{
	uint16_t	version;
	groma_msg_kind kind;
	uint32_t	id;
	uint32_t	payload_len;
	bool		magic_ok;		/* the frame starts with "GRMA" (then version is what its sender speaks) */
} groma_frame_header;

/* A growable byte buffer (malloc). */
typedef struct groma_wbuf
{
	uint8_t    *data;
	size_t		len;
	size_t		cap;
	bool		failed;			/* an allocation failed: the contents are incomplete */
} groma_wbuf;

/* Frees a buffer's bytes; safe on a zeroed one. */
void		groma_wbuf_free(groma_wbuf *b);

/*
 * Parses a 16-byte header.  Fails with GROMA_ERR_PROTOCOL on a wrong magic,
 * another protocol version (h->version says which), an unknown kind or a
 * payload over GROMA_PROTO_MAX_PAYLOAD.
 */
groma_status groma_proto_parse_header(const uint8_t *bytes, groma_frame_header *h);

/*
 * Appends a whole request frame (header + payload) to out.  A request the
 * decoder would refuse is refused here, with nothing appended:
 * GROMA_ERR_LIMIT for sizes and counts over the limits,
 * GROMA_ERR_INVALID_ARGUMENT for values out of range (kind, max_pixels,
 * max_regions, min_score, task).
 */
groma_status groma_proto_encode_request(const groma_request *r, groma_wbuf *out);

/*
 * Appends a whole reply frame to out; refuses, with nothing appended, a
 * reply the decoder would refuse (as groma_proto_encode_request does).
 * Only the fields that travel are checked: an error reply sends its kind,
 * status code and message.
 */
groma_status groma_proto_encode_reply(const groma_reply *r, groma_wbuf *out);

/*
 * Decodes a request payload of len bytes for header h into r (owned copies;
 * free with groma_request_free, also after a failure).  Any field past its
 * limit, a length past the payload, trailing bytes, a NUL inside a text,
 * or an unknown task is GROMA_ERR_PROTOCOL.
 */
groma_status groma_proto_decode_request(const groma_frame_header *h, const uint8_t *payload, size_t len,
										groma_request *r);

/*
 * Decodes a reply payload the same way; free with groma_reply_free.  Also
 * refused: a refer match that names no region sent, and phrase offsets
 * past the end of the answer's text.
 */
groma_status groma_proto_decode_reply(const groma_frame_header *h, const uint8_t *payload, size_t len,
									  groma_reply *r);

/* Frees what a request owns and zeroes it. */
void		groma_request_free(groma_request *r);

/* Frees what a reply owns and zeroes it. */
void		groma_reply_free(groma_reply *r);

/* Extra status codes a reply may carry are ordinary groma_status_code values: see status.h. */

#endif							/* GROMA_PROTOCOL_H */
