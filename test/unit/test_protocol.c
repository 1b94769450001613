/*
 * test_protocol.c - groma-server's frame format (src/server/protocol.h):
 * the header's bytes, a round trip of every request and reply kind, every
 * truncation and any trailing byte of a valid frame refused, and the
 * encoder's refusals (which leave the output buffer as it was).
 * Hostile payloads are in test_protocol_reject.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol_compare.h"
#include "protocol_samples.h"
#include "unit.h"

/* Returns the little-endian 32-bit value at p. */
static uint32_t
le32(const uint8_t *p)
{
	return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}

/* Parses the header of the one frame in b and checks that its length covers exactly the rest of b. */
static bool
parse_whole_frame(const groma_wbuf *b, groma_frame_header *h)
{
	groma_status st;

	if (b->len < GROMA_PROTO_HEADER_BYTES)
	{
		unit_fail(__FILE__, __LINE__, "frame of %zu bytes is shorter than a header", b->len);
		return false;
	}
	st = groma_proto_parse_header(b->data, h);
	CHECKF(st.code == GROMA_OK, "header: %s", st.message);
	CHECKF(h->payload_len == b->len - GROMA_PROTO_HEADER_BYTES, "length field %u for %zu payload bytes",
		   (unsigned) h->payload_len, b->len - GROMA_PROTO_HEADER_BYTES);
	return st.code == GROMA_OK && h->payload_len == b->len - GROMA_PROTO_HEADER_BYTES;
}

/* Encodes q, decodes the frame back and checks that every field it carries came back equal. */
static void
check_request_round_trip(const groma_request *q)
{
	groma_wbuf	b = {0};
	groma_frame_header h;
	groma_request back;
	groma_status st = groma_proto_encode_request(q, &b);
	const char *diff;

	CHECKF(st.code == GROMA_OK, "encoding kind %d: %s", q->kind, st.message);
	if (st.code == GROMA_OK && parse_whole_frame(&b, &h))
	{
		CHECK(h.kind == q->kind && h.id == q->id && h.version == GROMA_PROTO_VERSION);
		st = proto_decode_request_copy(&h, b.data + GROMA_PROTO_HEADER_BYTES, h.payload_len, &back);
		CHECKF(st.code == GROMA_OK, "decoding kind %d: %s", q->kind, st.message);
		diff = proto_request_difference(q, &back);
		CHECKF(st.code != GROMA_OK || diff == NULL, "kind %d: %s came back different", q->kind, diff);
		groma_request_free(&back);
	}
	groma_wbuf_free(&b);
}

/* Encodes r, decodes the frame back and checks that every field it carries came back equal. */
static void
check_reply_round_trip(const groma_reply *r)
{
	groma_wbuf	b = {0};
	groma_frame_header h;
	groma_reply back;
	groma_status st = groma_proto_encode_reply(r, &b);
	const char *diff;

	CHECKF(st.code == GROMA_OK, "encoding a reply to kind %d: %s", r->kind, st.message);
	if (st.code == GROMA_OK && parse_whole_frame(&b, &h))
	{
		CHECK(h.kind == GROMA_MSG_REPLY && h.id == r->id);
		st = proto_decode_reply_copy(&h, b.data + GROMA_PROTO_HEADER_BYTES, h.payload_len, &back);
		CHECKF(st.code == GROMA_OK, "decoding a reply to kind %d: %s", r->kind, st.message);
		diff = proto_reply_difference(r, &back);
		CHECKF(st.code != GROMA_OK || diff == NULL, "reply to kind %d: %s came back different", r->kind, diff);
		groma_reply_free(&back);
	}
	groma_wbuf_free(&b);
}

/* The 16 header bytes: "GRMA", version, kind, id and payload length, all little-endian. */
UNIT_TEST(test_protocol_header_layout)
{
	static const uint8_t ping[16] = {'G', 'R', 'M', 'A', 6, 0, 1, 0, 0x04, 0x03, 0x02, 0x01, 0, 0, 0, 0};
	static const uint8_t cancel[20] = {'G', 'R', 'M', 'A', 6, 0, 6, 0, 0xD0, 0xC0, 0xB0, 0xA0, 4, 0, 0, 0,
	0x05, 0x00, 0x00, 0x80};
	groma_request q = {.kind = GROMA_MSG_PING, .id = 0x01020304u};
	groma_reply r = {.kind = GROMA_MSG_PING, .id = 0x0A0B0C0Du, .status = groma_ok()};
	groma_wbuf	b = {0};
	groma_frame_header h;

	CHECK(groma_proto_encode_request(&q, &b).code == GROMA_OK);
	CHECK(b.len == 16 && memcmp(b.data, ping, 16) == 0);
	CHECK(groma_proto_parse_header(b.data, &h).code == GROMA_OK);
	CHECK(h.version == 6 && h.kind == GROMA_MSG_PING && h.id == 0x01020304u && h.payload_len == 0);

	/* a second frame is appended after the first, with its own length */
	q = (groma_request) {.kind = GROMA_MSG_CANCEL, .id = 0xA0B0C0D0u, .cancel_id = 0x80000005u};
	CHECK(groma_proto_encode_request(&q, &b).code == GROMA_OK);
	CHECK(b.len == 36 && memcmp(b.data, ping, 16) == 0 && memcmp(b.data + 16, cancel, 20) == 0);

	/* a reply: kind 100, then the payload starts with the answered kind (u16) and the status code (u32) */
	groma_wbuf_free(&b);
	CHECK(groma_proto_encode_reply(&r, &b).code == GROMA_OK);
	CHECK(b.len == 16 + 2 + 4 + 4);
	CHECK(b.len >= 26 && b.data[6] == 100 && b.data[7] == 0 && le32(b.data + 8) == 0x0A0B0C0Du);
	CHECK(b.len >= 26 && le32(b.data + 12) == 10 && b.data[16] == GROMA_MSG_PING && b.data[17] == 0);
	CHECK(b.len >= 26 && le32(b.data + 18) == GROMA_OK && le32(b.data + 22) == 0);
	groma_wbuf_free(&b);
}

/* A payload over 255 and 65535 bytes: all four bytes of the length field are used, low byte first. */
UNIT_TEST(test_protocol_header_length_bytes)
{
	groma_request q[PROTO_SAMPLE_REQUESTS];
	groma_wbuf	b = {0};
	char	   *text = malloc(70001);
	groma_frame_header h;

	proto_sample_requests(q);
	memset(text, 'x', 70000);
	text[70000] = '\0';
	text[65536] = '\0';			/* the longest text allowed */
	q[4].text = text;
	CHECK(groma_proto_encode_request(&q[4], &b).code == GROMA_OK);
	CHECK(b.len > 65536 + 16 && le32(b.data + 12) == b.len - 16);
	CHECK(b.len > 16 && b.data[14] == 1);	/* 65,536 < length < 131,072 */
	CHECK(parse_whole_frame(&b, &h));
	groma_wbuf_free(&b);
	check_request_round_trip(&q[4]);
	free(text);
}

/* Every request kind survives encode + decode, field for field. */
UNIT_TEST(test_protocol_request_round_trip)
{
	groma_request q[PROTO_SAMPLE_REQUESTS];

	proto_sample_requests(q);
	for (int i = 0; i < PROTO_SAMPLE_REQUESTS; i++)
		check_request_round_trip(&q[i]);

	/* edge values: no refer boxes, all 16, a zero-byte image, an empty prompt, a NaN-free negative min_score */
	q[3].n_refer = 0;
	check_request_round_trip(&q[3]);
	q[3].n_refer = GROMA_PROTO_MAX_REFER;
	q[3].min_score = -1;
	q[3].want_embeddings = false;
	check_request_round_trip(&q[3]);
	q[4].image_len = 0;
	q[4].text = NULL;
	q[4].task = -1;
	check_request_round_trip(&q[4]);
	q[4].alone = true;			/* a request run in model calls of its own */
	check_request_round_trip(&q[4]);
}

/* Decoding fills in the defaults of the fields a kind does not carry. */
UNIT_TEST(test_protocol_request_defaults)
{
	groma_frame_header h = proto_header(GROMA_MSG_PING, 0);
	groma_request q;

	CHECK(groma_proto_decode_request(&h, NULL, 0, &q).code == GROMA_OK);
	CHECK(q.kind == GROMA_MSG_PING && q.id == 77 && q.task == -1 && q.min_score < 0 && q.image == NULL &&
		  q.text == NULL && q.n_refer == 0);
	groma_request_free(&q);
}

/* Every reply kind survives encode + decode, field for field. */
UNIT_TEST(test_protocol_reply_round_trip)
{
	groma_reply r[PROTO_SAMPLE_REPLIES];

	proto_sample_replies(r);
	for (int i = 0; i < PROTO_SAMPLE_REPLIES; i++)
		check_reply_round_trip(&r[i]);

	/* no embeddings, no regions, no groundings, no ids */
	r[3].embed_dim = 0;
	r[3].embeddings = NULL;
	check_reply_round_trip(&r[3]);
	r[3].n_regions = 0;
	r[3].n_refer_match = 0;
	check_reply_round_trip(&r[3]);
	r[4].n_groundings = 0;
	r[4].n_ids = 0;
	r[4].text = "";
	check_reply_round_trip(&r[4]);
	/* every server state */
	for (int s = GROMA_SERVER_STARTING; s <= GROMA_SERVER_STOPPING; s++)
	{
		r[1].state = (groma_server_state) s;
		check_reply_round_trip(&r[1]);
	}
}

/* An error reply carries its status code and message and nothing else. */
UNIT_TEST(test_protocol_error_reply_carries_status_only)
{
	groma_reply r[PROTO_SAMPLE_REPLIES],
				back;
	groma_wbuf	b = {0};
	groma_frame_header h;
	size_t		message_len;

	proto_sample_replies(r);
	message_len = strlen(r[5].status.message);
	CHECK(groma_proto_encode_reply(&r[5], &b).code == GROMA_OK);
	CHECK(b.len == 16 + 2 + 4 + 4 + message_len);
	if (parse_whole_frame(&b, &h))
	{
		CHECK(proto_decode_reply_copy(&h, b.data + 16, h.payload_len, &back).code == GROMA_OK);
		CHECK(back.kind == GROMA_MSG_GENERATE && back.id == 9 && back.status.code == GROMA_ERR_BUSY);
		CHECK(strcmp(back.status.message, "queue is full (64 requests waiting)") == 0);
		CHECK(back.width == 0 && back.height == 0 && back.n_ids == 0 && back.ids == NULL && back.text == NULL);
		groma_reply_free(&back);
	}
	groma_wbuf_free(&b);
}

/* Checks that every proper prefix of a frame's payload, and the payload plus one byte, is a protocol error. */
static void
check_prefixes_and_trailing(const groma_wbuf *b, bool is_request)
{
	groma_frame_header h;
	uint8_t    *longer;

	if (!parse_whole_frame(b, &h))
		return;
	for (uint32_t p = 0; p <= h.payload_len; p++)
	{
		groma_frame_header cut = h;
		groma_request q;
		groma_reply r;
		groma_status st;

		cut.payload_len = p;
		if (is_request)
			st = proto_decode_request_copy(&cut, b->data + 16, p, &q);
		else
			st = proto_decode_reply_copy(&cut, b->data + 16, p, &r);
		if (p == h.payload_len)
			CHECKF(st.code == GROMA_OK, "kind %d, whole payload: %s", h.kind, st.message);
		else
			CHECKF(st.code == GROMA_ERR_PROTOCOL, "kind %d: a prefix of %u of %u bytes gave code %d", h.kind,
				   (unsigned) p, (unsigned) h.payload_len, st.code);
		if (is_request)
			groma_request_free(&q);
		else
			groma_reply_free(&r);
	}
	/* one byte more than the fields need */
	longer = calloc(h.payload_len + 1, 1);
	memcpy(longer, b->data + 16, h.payload_len);
	h.payload_len++;
	{
		groma_request q;
		groma_reply r;
		groma_status st = is_request ? proto_decode_request_copy(&h, longer, h.payload_len, &q)
			: proto_decode_reply_copy(&h, longer, h.payload_len, &r);

		CHECKF(st.code == GROMA_ERR_PROTOCOL, "kind %d with a trailing byte gave code %d", h.kind, st.code);
		CHECKF(st.code != GROMA_ERR_PROTOCOL || strstr(st.message, "trailing") != NULL, "%s", st.message);
		if (is_request)
			groma_request_free(&q);
		else
			groma_reply_free(&r);
	}
	free(longer);
}

/* Every truncation of every sample frame fails cleanly (exact-size copies: ASan sees any overread). */
UNIT_TEST(test_protocol_truncated_and_trailing)
{
	groma_request q[PROTO_SAMPLE_REQUESTS];
	groma_reply r[PROTO_SAMPLE_REPLIES];

	proto_sample_requests(q);
	proto_sample_replies(r);
	for (int i = 0; i < PROTO_SAMPLE_REQUESTS; i++)
	{
		groma_wbuf	b = {0};

		CHECK(groma_proto_encode_request(&q[i], &b).code == GROMA_OK);
		check_prefixes_and_trailing(&b, true);
		groma_wbuf_free(&b);
	}
	for (int i = 0; i < PROTO_SAMPLE_REPLIES; i++)
	{
		groma_wbuf	b = {0};

		CHECK(groma_proto_encode_reply(&r[i], &b).code == GROMA_OK);
		check_prefixes_and_trailing(&b, false);
		groma_wbuf_free(&b);
	}
}

/* Checks that encoding q is refused with code, leaving the buffer's earlier frame as it was. */
static void
check_request_refused(const groma_request *q, groma_status_code code, const char *what)
{
	groma_request ping = {.kind = GROMA_MSG_PING, .id = 1};
	groma_wbuf	b = {0};
	groma_status st;
	uint8_t		before[16];

	CHECK(groma_proto_encode_request(&ping, &b).code == GROMA_OK && b.len == 16);
	memcpy(before, b.data, 16);
	st = groma_proto_encode_request(q, &b);
	CHECKF(st.code == code, "%s: code %d (%s), expected %d", what, st.code, st.message, code);
	CHECKF(b.len == 16 && memcmp(b.data, before, 16) == 0, "%s: the refusal left %zu bytes", what, b.len);
	groma_wbuf_free(&b);
}

/* Checks that encoding r is refused with code, appending nothing. */
static void
check_reply_refused(const groma_reply *r, groma_status_code code, const char *what)
{
	groma_wbuf	b = {0};
	groma_status st = groma_proto_encode_reply(r, &b);

	CHECKF(st.code == code, "%s: code %d (%s), expected %d", what, st.code, st.message, code);
	CHECKF(b.len == 0, "%s: the refusal left %zu bytes", what, b.len);
	groma_wbuf_free(&b);
}

/* The request encoder refuses what the decoder would refuse, before writing anything. */
UNIT_TEST(test_protocol_encode_request_refusals)
{
	groma_request q[PROTO_SAMPLE_REQUESTS],
				bad;
	char	   *text = malloc(GROMA_PROTO_MAX_TEXT + 2);

	proto_sample_requests(q);
	bad = q[3];
	bad.image = NULL;			/* never read: the size is refused first */
	bad.image_len = GROMA_PROTO_MAX_IMAGE + 1;
	check_request_refused(&bad, GROMA_ERR_LIMIT, "an image over GROMA_PROTO_MAX_IMAGE");
	bad = q[3];
	bad.n_refer = GROMA_PROTO_MAX_REFER + 1;
	check_request_refused(&bad, GROMA_ERR_LIMIT, "17 refer boxes");
	bad.n_refer = -1;
	check_request_refused(&bad, GROMA_ERR_LIMIT, "-1 refer boxes");
	memset(text, 'a', GROMA_PROTO_MAX_TEXT + 1);
	text[GROMA_PROTO_MAX_TEXT + 1] = '\0';
	bad = q[4];
	bad.text = text;
	check_request_refused(&bad, GROMA_ERR_LIMIT, "a prompt of 65,537 bytes");
	bad = q[4];
	bad.task = 4;
	check_request_refused(&bad, GROMA_ERR_INVALID_ARGUMENT, "task 4");
	bad = q[2];
	bad.max_pixels = 0;
	check_request_refused(&bad, GROMA_ERR_INVALID_ARGUMENT, "max_pixels 0");
	bad = q[3];
	bad.max_regions = -1;
	check_request_refused(&bad, GROMA_ERR_INVALID_ARGUMENT, "max_regions -1");
	bad = q[3];
	bad.min_score = 1.5f;
	check_request_refused(&bad, GROMA_ERR_INVALID_ARGUMENT, "min_score 1.5");
	bad = q[2];
	bad.n_refer = 1;
	check_request_refused(&bad, GROMA_ERR_INVALID_ARGUMENT, "a VALIDATE with a refer box");
	bad = q[6];
	bad.n_refer = 2;
	check_request_refused(&bad, GROMA_ERR_INVALID_ARGUMENT, "a DRAW with refer boxes");
	bad = q[0];
	bad.kind = GROMA_MSG_REPLY;
	check_request_refused(&bad, GROMA_ERR_INVALID_ARGUMENT, "a request of kind REPLY");
	free(text);
}

/* The reply encoder refuses counts over the limits and frames the decoder would refuse. */
UNIT_TEST(test_protocol_encode_reply_refusals)
{
	groma_reply r[PROTO_SAMPLE_REPLIES],
				bad;
	groma_reply_grounding g;
	char	   *text = malloc(GROMA_PROTO_MAX_TEXT + 2);

	proto_sample_replies(r);
	bad = r[3];
	bad.n_regions = GROMA_PROTO_MAX_REGIONS + 1;
	check_reply_refused(&bad, GROMA_ERR_LIMIT, "4,097 regions");
	bad = r[3];
	bad.embed_dim = GROMA_PROTO_MAX_EMBED + 1;
	check_reply_refused(&bad, GROMA_ERR_LIMIT, "an embedding of 16,385 floats");
	bad = r[3];
	bad.n_refer_match = GROMA_PROTO_MAX_REFER + 1;
	check_reply_refused(&bad, GROMA_ERR_LIMIT, "17 refer matches");
	bad = r[4];
	bad.n_ids = GROMA_PROTO_MAX_TOKENS + 1;
	check_reply_refused(&bad, GROMA_ERR_LIMIT, "8,193 ids");
	g = r[4].groundings[0];
	g.n_boxes = GROMA_PROTO_MAX_REGIONS + 1;
	bad = r[4];
	bad.n_groundings = 1;
	bad.groundings = &g;
	check_reply_refused(&bad, GROMA_ERR_LIMIT, "a phrase with 4,097 boxes");
	g.n_boxes = -1;
	check_reply_refused(&bad, GROMA_ERR_LIMIT, "a phrase with -1 boxes");
	memset(text, 'a', GROMA_PROTO_MAX_TEXT + 1);
	text[GROMA_PROTO_MAX_TEXT + 1] = '\0';
	bad = r[4];
	bad.text = text;
	check_reply_refused(&bad, GROMA_ERR_LIMIT, "an answer of 65,537 bytes");
	bad = r[0];
	bad.kind = GROMA_MSG_CANCEL;
	check_reply_refused(&bad, GROMA_ERR_INVALID_ARGUMENT, "a reply to CANCEL");
	free(text);
}

/* Decodes one seed frame file of fuzz_protocol; returns the status (a request or a reply, as its kind says). */
static groma_status
decode_seed(const char *name)
{
	char		rel[256];
	size_t		len;
	uint8_t    *bytes;
	groma_frame_header h;
	groma_status st;

	snprintf(rel, sizeof(rel), "test/fixtures/protocol/%s.bin", name);
	bytes = unit_read_file(unit_path(rel), &len);
	if (bytes == NULL)
		return groma_error(GROMA_ERR_IO, "cannot read %s", rel);
	st = len >= 16 ? groma_proto_parse_header(bytes, &h) : groma_error(GROMA_ERR_PROTOCOL, "short");
	if (st.code == GROMA_OK && h.payload_len != len - 16)
		st = groma_error(GROMA_ERR_PROTOCOL, "length field %u for %zu bytes", (unsigned) h.payload_len, len - 16);
	if (st.code == GROMA_OK && h.kind == GROMA_MSG_REPLY)
	{
		groma_reply r;

		st = proto_decode_reply_copy(&h, bytes + 16, len - 16, &r);
		groma_reply_free(&r);
	}
	else if (st.code == GROMA_OK)
	{
		groma_request q;

		st = proto_decode_request_copy(&h, bytes + 16, len - 16, &q);
		groma_request_free(&q);
	}
	free(bytes);
	return st;
}

/* The fuzzer's seed frames, written by a second implementation (make_frames.py), all decode. */
UNIT_TEST(test_protocol_seed_frames_decode)
{
	static const char *const names[] = {
		"request_ping", "request_status", "request_validate", "request_regions", "request_generate",
		"request_cancel", "request_draw", "reply_ping", "reply_status", "reply_validate", "reply_regions",
		"reply_generate", "reply_draw", "reply_error",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
	{
		groma_status st = decode_seed(names[i]);

		CHECKF(st.code == GROMA_OK, "%s: %s", names[i], st.message);
	}
}
