/*
 * protocol_samples.c - sample messages, a payload writer and copying
 * decoders for the protocol tests; see protocol_samples.h.
 */
#include "protocol_samples.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Bytes that stand in for a JPEG: the protocol does not look inside. */
static uint8_t sample_image[] = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0x00, 0xFF, 0xD9};

/* Boxes and labels of the sample DRAW request (a label may be empty, and need not be ASCII). */
static double sample_draw_boxes[3 * 4] = {10, 20, 110, 120, 300, 200, 250, 150, -5, 1e6, 7.5, NAN};
static char *sample_draw_labels[3] = {"dog", "", "caf\xC3\xA9"};

/* Fills out with one request of each kind; see protocol_samples.h. */
void
proto_sample_requests(groma_request *out)
{
	groma_request *q;

	memset(out, 0, PROTO_SAMPLE_REQUESTS * sizeof(*out));
	out[0] = (groma_request) {.kind = GROMA_MSG_PING, .id = 1, .task = -1, .min_score = -1};
	out[1] = (groma_request) {.kind = GROMA_MSG_STATUS, .id = 2, .task = -1, .min_score = -1};

	q = &out[2];
	*q = (groma_request) {.kind = GROMA_MSG_VALIDATE, .id = 3, .image = sample_image,
		.image_len = sizeof(sample_image), .max_pixels = 178956970, .task = -1, .min_score = -1};

	q = &out[3];
	*q = (groma_request) {.kind = GROMA_MSG_REGIONS, .id = 0xFFFFFFFEu, .image = sample_image,
		.image_len = sizeof(sample_image), .max_pixels = (int64_t) 1 << 40, .n_refer = 3, .max_regions = 25,
		.min_score = 0.125f, .want_embeddings = true, .task = -1};
	for (int i = 0; i < 3; i++)
	{
		q->refer[i][0] = 10.5 * i;
		q->refer[i][1] = -0.0;
		q->refer[i][2] = 100.25 + i;
		q->refer[i][3] = 1e300;
	}

	q = &out[4];
	*q = (groma_request) {.kind = GROMA_MSG_GENERATE, .id = 5, .image = sample_image,
		.image_len = sizeof(sample_image), .max_pixels = 1000000, .n_refer = 1, .task = 2,
		.text = "the red ball \xE2\x96\x81 <refer_box>", .max_new_tokens = 128, .min_score = -1};
	q->refer[0][0] = 1;
	q->refer[0][1] = 2;
	q->refer[0][2] = 3;
	q->refer[0][3] = 4;

	out[5] = (groma_request) {.kind = GROMA_MSG_CANCEL, .id = 6, .cancel_id = 5, .task = -1, .min_score = -1};

	/* corners in either order, one past the image, a NaN (refused by the drawing, not by the protocol) */
	out[6] = (groma_request) {.kind = GROMA_MSG_DRAW, .id = 7, .image = sample_image, .image_len = sizeof(sample_image),
		.max_pixels = 1000000, .n_draw = 3, .draw_boxes = sample_draw_boxes, .draw_labels = sample_draw_labels,
		.task = -1, .min_score = -1};
}

/* Region data of the sample REGIONS reply: 3 regions, 5-float embeddings. */
static double sample_boxes[3 * 4] = {0, 0, 333, 251, 10.5, 20.25, 30, 40, -0.0, 1, 2, 3};
static float sample_scores[3] = {0.9f, 0.5f, 0.0f};
static uint8_t sample_is_refer[3] = {0, 1, 0};
static float sample_embeddings[3 * 5] = {1, 2, 3, 4, 5, -1, -2, -3, -4, -5, 0.5f, 0.25f, 1e-30f, 3e38f, -0.0f};

/* Grounding data of the sample GENERATE reply. */
static double dog_boxes[2 * 4] = {1, 2, 3, 4, 5, 6, 7, 8};
static double ball_boxes[1 * 4] = {100, 110, 120, 130};
static groma_reply_grounding sample_groundings[3] = {
	{.phrase = "A dog", .start = 0, .stop = 5, .n_boxes = 2, .boxes = dog_boxes},
	{.phrase = "a red ball", .start = 14, .stop = 24, .n_boxes = 1, .boxes = ball_boxes},
	{.phrase = "", .start = 24, .stop = 24, .n_boxes = 0, .boxes = NULL},
};
static int32_t sample_ids[5] = {1, 319, 11203, 32000, 2};

/* Fills out with one reply of each kind; see protocol_samples.h. */
void
proto_sample_replies(groma_reply *out)
{
	groma_reply *r;

	memset(out, 0, PROTO_SAMPLE_REPLIES * sizeof(*out));
	out[0] = (groma_reply) {.kind = GROMA_MSG_PING, .id = 1, .status = groma_ok()};

	r = &out[1];
	*r = (groma_reply) {.kind = GROMA_MSG_STATUS, .id = 2,
		.status = groma_error(GROMA_OK, "model loaded in %d s", 12), .state = GROMA_SERVER_READY,
		.model_path = "/models/groma-7b-finetune", .device = "cuda:0", .load_done = 13476839424ull,
		.load_total = 13476839424ull, .queue_depth = 3, .running = 1, .served = (uint64_t) 1 << 33, .failed = 7,
		.batch = 5, .max_batch = 16, .kv_used = (uint64_t) 3 << 30, .kv_total = (uint64_t) 1 << 32, .weights = "int8",
		.cancelled = 11, .busy = 13};

	out[2] = (groma_reply) {.kind = GROMA_MSG_VALIDATE, .id = 3, .status = groma_ok(), .width = 333, .height = 251};

	r = &out[3];
	*r = (groma_reply) {.kind = GROMA_MSG_REGIONS, .id = 0xFFFFFFFEu, .status = groma_ok(), .width = 640,
		.height = 480, .n_regions = 3, .boxes = sample_boxes, .scores = sample_scores, .is_refer = sample_is_refer,
		.embed_dim = 5, .embeddings = sample_embeddings, .n_refer_match = 2, .queue_ms = 0.5,
		.vision_ms = 120.75, .stage_ms = {1, 2, 3, 4, 5, 6}};
	r->refer_match[0] = 1;
	r->refer_match[1] = 2;
	r->embeddings[4] = nanf("");

	r = &out[4];
	*r = (groma_reply) {.kind = GROMA_MSG_GENERATE, .id = 5, .status = groma_ok(), .width = 333, .height = 251,
		.n_regions = 42, .text = "A dog next to a red ball.", .n_groundings = 3, .groundings = sample_groundings,
		.n_ids = 5, .ids = sample_ids, .hit_eos = true, .prompt_tokens = 517, .queue_ms = 3, .vision_ms = 250,
		.prefill_ms = 12.5, .decode_ms = 34.25, .stage_ms = {6, 5, 4, 3, 2, 1}};

	/* an error carries its status and message only: the fields set here must not travel */
	out[5] = (groma_reply) {.kind = GROMA_MSG_GENERATE, .id = 9,
		.status = groma_error(GROMA_ERR_BUSY, "queue is full (%d requests waiting)", 64), .width = 5,
		.height = 6, .n_ids = 5, .ids = sample_ids};

	out[6] = (groma_reply) {.kind = GROMA_MSG_DRAW, .id = 7, .status = groma_ok(), .width = 333, .height = 251,
		.jpeg = sample_image, .jpeg_len = sizeof(sample_image)};
}

/* Makes room for n more bytes in b (aborts when out of memory: test code). */
static void
reserve(groma_wbuf *b, size_t n)
{
	if (b->len + n <= b->cap)
		return;
	b->cap = (b->len + n) * 2;
	b->data = realloc(b->data, b->cap);
	if (b->data == NULL)
		abort();
}

/* Appends n raw bytes; see protocol_samples.h. */
void
proto_put_bytes(groma_wbuf *b, const void *p, size_t n)
{
	reserve(b, n);
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
}

/* Appends an integer little-endian; see protocol_samples.h. */
void
proto_put(groma_wbuf *b, uint64_t v, int bytes)
{
	uint8_t		le[8];

	for (int i = 0; i < bytes; i++)
		le[i] = (uint8_t) (v >> (8 * i));
	proto_put_bytes(b, le, (size_t) bytes);
}

/* Appends a double's bits; see protocol_samples.h. */
void
proto_put_f64(groma_wbuf *b, double v)
{
	uint64_t	u;

	memcpy(&u, &v, 8);
	proto_put(b, u, 8);
}

/* Appends a byte string; see protocol_samples.h. */
void
proto_put_blob(groma_wbuf *b, const void *p, uint32_t n)
{
	proto_put(b, n, 4);
	proto_put_bytes(b, p, n);
}

/* Appends the start of a reply payload; see protocol_samples.h. */
void
proto_put_reply_start(groma_wbuf *b, groma_msg_kind kind, groma_status_code code, const char *message)
{
	proto_put(b, (uint64_t) kind, 2);
	proto_put(b, (uint64_t) code, 4);
	proto_put_blob(b, message, (uint32_t) strlen(message));
}

/* Appends the eight timings; see protocol_samples.h. */
void
proto_put_timings(groma_wbuf *b)
{
	for (int k = 0; k < 8; k++)
		proto_put_f64(b, k + 0.5);
}

/* Returns a malloc'd copy of exactly len bytes (at least one byte is allocated). */
static uint8_t *
exact_copy(const uint8_t *payload, size_t len)
{
	uint8_t    *copy = malloc(len ? len : 1);

	if (copy == NULL)
		abort();
	if (len > 0)
		memcpy(copy, payload, len);
	return copy;
}

/* Returns a header for a payload of len bytes; see protocol_samples.h. */
groma_frame_header
proto_header(groma_msg_kind kind, size_t len)
{
	return (groma_frame_header) {.version = GROMA_PROTO_VERSION, .kind = kind, .id = 77, .payload_len = (uint32_t) len,
	.magic_ok = true};
}

/* Decodes a request from an exact-size copy; see protocol_samples.h. */
groma_status
proto_decode_request_copy(const groma_frame_header *h, const uint8_t *payload, size_t len, groma_request *q)
{
	uint8_t    *copy = exact_copy(payload, len);
	groma_status st = groma_proto_decode_request(h, copy, len, q);

	free(copy);
	return st;
}

/* Decodes a reply from an exact-size copy; see protocol_samples.h. */
groma_status
proto_decode_reply_copy(const groma_frame_header *h, const uint8_t *payload, size_t len, groma_reply *r)
{
	uint8_t    *copy = exact_copy(payload, len);
	groma_status st = groma_proto_decode_reply(h, copy, len, r);

	free(copy);
	return st;
}
