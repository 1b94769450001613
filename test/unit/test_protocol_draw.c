/*
 * test_protocol_draw.c - the DRAW frame (protocol.h): round trips at the
 * edges, the encoder's refusals and hostile payloads.  The sample DRAW
 * request and reply also go through test_protocol.c's round-trip and
 * truncation tests.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "protocol_compare.h"
#include "protocol_samples.h"

/* Encodes q, decodes it back and checks it is unchanged. */
static void
draw_round_trip(const groma_request *q, const char *what)
{
	groma_wbuf	b = {0};
	groma_frame_header h;
	groma_request back;
	groma_status st = groma_proto_encode_request(q, &b);
	const char *diff;

	CHECKF(st.code == GROMA_OK, "%s: %s", what, st.message);
	if (st.code != GROMA_OK)
		return;
	CHECK(groma_proto_parse_header(b.data, &h).code == GROMA_OK && h.kind == GROMA_MSG_DRAW);
	st = proto_decode_request_copy(&h, b.data + 16, h.payload_len, &back);
	CHECKF(st.code == GROMA_OK, "%s: decode: %s", what, st.message);
	diff = proto_request_difference(q, &back);
	CHECKF(diff == NULL, "%s: %s differ", what, diff);
	groma_request_free(&back);
	groma_wbuf_free(&b);
}

/* No boxes, no labels at all, and the most boxes the protocol carries. */
UNIT_TEST(test_protocol_draw_round_trip_edges)
{
	groma_request q[PROTO_SAMPLE_REQUESTS],
				r;
	double	   *many = calloc(4 * GROMA_PROTO_MAX_REGIONS, sizeof(double));

	proto_sample_requests(q);
	r = q[6];
	r.draw_labels = NULL;
	draw_round_trip(&r, "labels NULL (sent as empty labels)");
	r.n_draw = 0;
	r.draw_boxes = NULL;
	draw_round_trip(&r, "no boxes");
	for (int i = 0; i < 4 * GROMA_PROTO_MAX_REGIONS; i++)
		many[i] = i * 0.5;
	r.n_draw = GROMA_PROTO_MAX_REGIONS;
	r.draw_boxes = many;
	draw_round_trip(&r, "4,096 boxes");
	free(many);
}

/* The encoder refuses too many boxes, a missing box array and an over-long label, writing nothing. */
UNIT_TEST(test_protocol_draw_encode_refusals)
{
	groma_request q[PROTO_SAMPLE_REQUESTS],
				bad;
	char	   *text = malloc(GROMA_PROTO_MAX_TEXT + 2);
	char	   *labels[3] = {"a", "b", text};
	groma_wbuf	b = {0};

	proto_sample_requests(q);
	bad = q[6];
	bad.n_draw = GROMA_PROTO_MAX_REGIONS + 1;
	CHECK(groma_proto_encode_request(&bad, &b).code == GROMA_ERR_LIMIT && b.len == 0);
	bad.n_draw = -1;
	CHECK(groma_proto_encode_request(&bad, &b).code == GROMA_ERR_LIMIT && b.len == 0);
	bad = q[6];
	bad.draw_boxes = NULL;
	CHECK(groma_proto_encode_request(&bad, &b).code == GROMA_ERR_INVALID_ARGUMENT && b.len == 0);
	memset(text, 'a', GROMA_PROTO_MAX_TEXT + 1);
	text[GROMA_PROTO_MAX_TEXT + 1] = '\0';
	bad = q[6];
	bad.draw_labels = labels;
	CHECK(groma_proto_encode_request(&bad, &b).code == GROMA_ERR_LIMIT && b.len == 0);
	groma_wbuf_free(&b);
	free(text);
}

/* Returns the decode status of a DRAW request claiming n boxes, with `written` boxes and labels of label. */
static groma_status
draw_request(uint32_t n, uint32_t written, const char *label, uint32_t label_len)
{
	static const uint8_t jpeg[3] = {0xFF, 0xD8, 0xFF};
	groma_wbuf	b = {0};
	groma_request q;
	groma_frame_header h;
	groma_status st;

	proto_put_blob(&b, jpeg, sizeof(jpeg));
	proto_put(&b, 1000, 8);		/* max_pixels */
	proto_put(&b, 0, 4);		/* refer boxes */
	proto_put(&b, n, 4);
	for (uint32_t i = 0; i < 4 * written; i++)
		proto_put_f64(&b, i);
	for (uint32_t i = 0; i < written; i++)
		proto_put_blob(&b, label, label_len);
	h = proto_header(GROMA_MSG_DRAW, b.len);
	st = proto_decode_request_copy(&h, b.data, b.len, &q);
	if (st.code == GROMA_OK)
		CHECK(q.n_draw == (int32_t) n && (n == 0 || strcmp(q.draw_labels[n - 1], label) == 0));
	groma_request_free(&q);
	groma_wbuf_free(&b);
	return st;
}

/* Hostile DRAW payloads: counts over the limit or past the payload, a NUL inside a label. */
UNIT_TEST(test_protocol_draw_decode_rejects)
{
	groma_wbuf	b = {0};
	groma_reply r;
	groma_frame_header h;

	CHECK(draw_request(2, 2, "ok", 2).code == GROMA_OK);
	CHECK(draw_request(0, 0, "", 0).code == GROMA_OK);
	CHECK(draw_request(GROMA_PROTO_MAX_REGIONS + 1, 1, "x", 1).code == GROMA_ERR_PROTOCOL);
	CHECK(draw_request(0xFFFFFFFFu, 1, "x", 1).code == GROMA_ERR_PROTOCOL);
	CHECK(draw_request(1000, 2, "x", 1).code == GROMA_ERR_PROTOCOL);	/* claims more than it holds */
	CHECK(draw_request(1, 1, "a\0b", 3).code == GROMA_ERR_PROTOCOL);

	/* a reply whose JPEG length runs past the payload */
	proto_put_reply_start(&b, GROMA_MSG_DRAW, GROMA_OK, "");
	proto_put(&b, 10, 4);
	proto_put(&b, 10, 4);
	proto_put(&b, 100, 4);
	proto_put(&b, 0xD8, 1);
	h = proto_header(GROMA_MSG_REPLY, b.len);
	CHECK(proto_decode_reply_copy(&h, b.data, b.len, &r).code == GROMA_ERR_PROTOCOL);
	groma_reply_free(&r);
	groma_wbuf_free(&b);
}

/* A DRAW reply carries the size and the JPEG bytes; an over-long JPEG is refused by the encoder. */
UNIT_TEST(test_protocol_draw_reply)
{
	groma_reply r[PROTO_SAMPLE_REPLIES],
				back,
				bad;
	groma_wbuf	b = {0};
	groma_frame_header h;

	proto_sample_replies(r);
	CHECK(groma_proto_encode_reply(&r[6], &b).code == GROMA_OK);
	CHECK(groma_proto_parse_header(b.data, &h).code == GROMA_OK);
	CHECK(proto_decode_reply_copy(&h, b.data + 16, h.payload_len, &back).code == GROMA_OK);
	CHECK(back.kind == GROMA_MSG_DRAW && back.width == 333 && back.height == 251 &&
		  back.jpeg_len == r[6].jpeg_len && memcmp(back.jpeg, r[6].jpeg, back.jpeg_len) == 0);
	CHECK(proto_reply_difference(&r[6], &back) == NULL);
	groma_reply_free(&back);
	groma_wbuf_free(&b);
	bad = r[6];
	bad.jpeg_len = GROMA_PROTO_MAX_IMAGE + 1;
	CHECK(groma_proto_encode_reply(&bad, &b).code == GROMA_ERR_LIMIT && b.len == 0);
	groma_wbuf_free(&b);
}
