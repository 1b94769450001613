/*
 * test_protocol_reject.c - hostile frames for groma-server's protocol
 * decoder (src/server/protocol.h): bad headers, counts and strings over the
 * limits, a reply where a request belongs and the reverse, bad field
 * values, and counts that claim far more data than the payload holds,
 * which must fail before anything of the claimed size is allocated.
 * Every one is GROMA_ERR_PROTOCOL.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "protocol_samples.h"
#include "unit.h"

/* ASan's count of live heap bytes (weak: absent, and NULL, in a build without ASan). */
extern size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));

/* Returns the bytes the process has allocated and not freed, or 0 when unknown. */
static size_t
live_heap_bytes(void)
{
	return __sanitizer_get_current_allocated_bytes ? __sanitizer_get_current_allocated_bytes() : 0;
}

/* Writes a 16-byte header with the given fields. */
static void
write_header(uint8_t *out, uint32_t magic, uint16_t version, uint16_t kind, uint32_t id, uint32_t len)
{
	groma_wbuf	b = {0};

	proto_put(&b, magic, 4);
	proto_put(&b, version, 2);
	proto_put(&b, kind, 2);
	proto_put(&b, id, 4);
	proto_put(&b, len, 4);
	memcpy(out, b.data, 16);
	groma_wbuf_free(&b);
}

/* Returns the status of parsing a header with the given fields. */
static groma_status
parse_fields(uint32_t magic, uint16_t version, uint16_t kind, uint32_t len)
{
	uint8_t		bytes[16];
	groma_frame_header h;

	write_header(bytes, magic, version, kind, 5, len);
	return groma_proto_parse_header(bytes, &h);
}

/* Bad magic, other versions, unknown kinds and oversized payloads are refused by the header alone. */
UNIT_TEST(test_protocol_reject_headers)
{
	static const uint16_t bad_kinds[] = {0, 8, 99, 101, 0xFFFF};
	uint8_t		bytes[16];
	groma_frame_header h;
	groma_status st;

	CHECK(parse_fields(GROMA_PROTO_MAGIC, 6, GROMA_MSG_PING, 0).code == GROMA_OK);
	CHECK(parse_fields(GROMA_PROTO_MAGIC, 6, GROMA_MSG_REPLY, GROMA_PROTO_MAX_PAYLOAD).code == GROMA_OK);
	CHECK(parse_fields(0x414d5248u, 1, GROMA_MSG_PING, 0).code == GROMA_ERR_PROTOCOL);	/* "HRMA" */
	CHECK(parse_fields(0x47524d41u, 1, GROMA_MSG_PING, 0).code == GROMA_ERR_PROTOCOL);	/* big-endian "GRMA" */
	CHECK(parse_fields(0, 0, 0, 0).code == GROMA_ERR_PROTOCOL);
	CHECK(parse_fields(GROMA_PROTO_MAGIC, 1, GROMA_MSG_PING, 0).code == GROMA_ERR_PROTOCOL);
	CHECK(parse_fields(GROMA_PROTO_MAGIC, 5, GROMA_MSG_PING, 0).code == GROMA_ERR_PROTOCOL);	/* the version before */
	CHECK(parse_fields(GROMA_PROTO_MAGIC, 7, GROMA_MSG_PING, 0).code == GROMA_ERR_PROTOCOL);
	CHECK(parse_fields(GROMA_PROTO_MAGIC, 0, GROMA_MSG_PING, 0).code == GROMA_ERR_PROTOCOL);
	CHECK(parse_fields(GROMA_PROTO_MAGIC, 0x0100, GROMA_MSG_PING, 0).code == GROMA_ERR_PROTOCOL);
	for (size_t i = 0; i < sizeof(bad_kinds) / sizeof(bad_kinds[0]); i++)
		CHECKF(parse_fields(GROMA_PROTO_MAGIC, GROMA_PROTO_VERSION, bad_kinds[i], 0).code == GROMA_ERR_PROTOCOL, "kind %u",
			   (unsigned) bad_kinds[i]);
	CHECK(parse_fields(GROMA_PROTO_MAGIC, GROMA_PROTO_VERSION, GROMA_MSG_GENERATE, GROMA_PROTO_MAX_PAYLOAD + 1).code ==
		  GROMA_ERR_PROTOCOL);
	CHECK(parse_fields(GROMA_PROTO_MAGIC, GROMA_PROTO_VERSION, GROMA_MSG_GENERATE, 0xFFFFFFFFu).code == GROMA_ERR_PROTOCOL);

	/* the other version is named, so a client can say which side is out of date */
	write_header(bytes, GROMA_PROTO_MAGIC, 7, GROMA_MSG_PING, 5, 0);
	st = groma_proto_parse_header(bytes, &h);
	CHECK(st.code == GROMA_ERR_PROTOCOL && h.version == 7 && strstr(st.message, "7") != NULL);
}

/* A reply frame given to the request decoder and a request frame given to the reply decoder. */
UNIT_TEST(test_protocol_reject_wrong_direction)
{
	groma_reply r[PROTO_SAMPLE_REPLIES],
				back;
	groma_request q[PROTO_SAMPLE_REQUESTS],
				qback;
	groma_wbuf	b = {0};
	groma_frame_header h;

	proto_sample_replies(r);
	proto_sample_requests(q);
	CHECK(groma_proto_encode_reply(&r[0], &b).code == GROMA_OK);
	CHECK(groma_proto_parse_header(b.data, &h).code == GROMA_OK);
	CHECK(proto_decode_request_copy(&h, b.data + 16, h.payload_len, &qback).code == GROMA_ERR_PROTOCOL);
	groma_request_free(&qback);
	groma_wbuf_free(&b);
	for (int i = 0; i < PROTO_SAMPLE_REQUESTS; i++)
	{
		CHECK(groma_proto_encode_request(&q[i], &b).code == GROMA_OK);
		CHECK(groma_proto_parse_header(b.data, &h).code == GROMA_OK);
		CHECKF(proto_decode_reply_copy(&h, b.data + 16, h.payload_len, &back).code == GROMA_ERR_PROTOCOL,
			   "request kind %d decoded as a reply", q[i].kind);
		groma_reply_free(&back);
		groma_wbuf_free(&b);
	}
}

/* Appends a request's image fields: image bytes, max_pixels, and a refer count of n_refer (at most 17 boxes written). */
static void
put_image_fields(groma_wbuf *b, uint32_t image_len, int64_t max_pixels, uint32_t n_refer)
{
	uint32_t	written = n_refer > GROMA_PROTO_MAX_REFER + 1 ? GROMA_PROTO_MAX_REFER + 1 : n_refer;

	proto_put(b, image_len, 4);
	for (uint32_t i = 0; i < image_len; i++)
		proto_put(b, 0xD8, 1);
	proto_put(b, (uint64_t) max_pixels, 8);
	proto_put(b, n_refer, 4);
	for (uint32_t i = 0; i < 4 * written; i++)
		proto_put_f64(b, 1.0 + i);
}

/* Returns the decode status of a REGIONS request with n_refer boxes, max_regions, min_score and a want_embeddings byte. */
static groma_status
regions_request_want(uint32_t n_refer, int32_t max_regions, float min_score, uint8_t want)
{
	groma_wbuf	b = {0};
	groma_request q;
	groma_frame_header h;
	groma_status st;
	uint32_t	bits;

	memcpy(&bits, &min_score, 4);
	put_image_fields(&b, 3, 1000, n_refer);
	proto_put(&b, (uint32_t) max_regions, 4);
	proto_put(&b, bits, 4);
	proto_put(&b, want, 1);
	h = proto_header(GROMA_MSG_REGIONS, b.len);
	st = proto_decode_request_copy(&h, b.data, b.len, &q);
	groma_request_free(&q);
	groma_wbuf_free(&b);
	return st;
}

/* Returns the decode status of a REGIONS request asking for embeddings. */
static groma_status
regions_request(uint32_t n_refer, int32_t max_regions, float min_score)
{
	return regions_request_want(n_refer, max_regions, min_score, 1);
}

/* Returns the decode status of a VALIDATE request carrying n_refer refer boxes. */
static groma_status
validate_request(uint32_t n_refer)
{
	groma_wbuf	b = {0};
	groma_request q;
	groma_frame_header h;
	groma_status st;

	put_image_fields(&b, 3, 1000, n_refer);
	h = proto_header(GROMA_MSG_VALIDATE, b.len);
	st = proto_decode_request_copy(&h, b.data, b.len, &q);
	groma_request_free(&q);
	groma_wbuf_free(&b);
	return st;
}

/* Returns the decode status of a GENERATE request whose text field holds text[0..len), task and an alone byte. */
static groma_status
generate_request_alone(const char *text, uint32_t len, int32_t task, int64_t max_pixels, uint8_t alone)
{
	groma_wbuf	b = {0};
	groma_request q;
	groma_frame_header h;
	groma_status st;

	put_image_fields(&b, 5, max_pixels, 0);
	proto_put(&b, (uint32_t) task, 4);
	proto_put_blob(&b, text, len);
	proto_put(&b, 64, 4);
	proto_put(&b, alone, 1);
	h = proto_header(GROMA_MSG_GENERATE, b.len);
	st = proto_decode_request_copy(&h, b.data, b.len, &q);
	groma_request_free(&q);
	groma_wbuf_free(&b);
	return st;
}

/* Returns the decode status of a GENERATE request whose text field holds text[0..len), and task. */
static groma_status
generate_request(const char *text, uint32_t len, int32_t task, int64_t max_pixels)
{
	return generate_request_alone(text, len, task, max_pixels, 0);
}

/* Request fields over their limits or out of range; the value at the limit passes. */
UNIT_TEST(test_protocol_reject_request_fields)
{
	char	   *text = malloc(GROMA_PROTO_MAX_TEXT + 1);

	memset(text, 'p', GROMA_PROTO_MAX_TEXT + 1);
	CHECK(regions_request(16, 0, -1.0f).code == GROMA_OK);
	CHECK(regions_request(17, 0, -1.0f).code == GROMA_ERR_PROTOCOL);
	CHECK(regions_request(0xFFFFFFFFu, 0, -1.0f).code == GROMA_ERR_PROTOCOL);
	CHECK(regions_request(0, -1, -1.0f).code == GROMA_ERR_PROTOCOL);
	CHECK(regions_request(0, 0, nanf("")).code == GROMA_ERR_PROTOCOL);
	CHECK(regions_request(0, 0, 1.0f).code == GROMA_OK);
	CHECK(regions_request(0, 0, 1.5f).code == GROMA_ERR_PROTOCOL);	/* scores are probabilities */
	CHECK(regions_request(0, 0, INFINITY).code == GROMA_ERR_PROTOCOL);
	CHECK(regions_request_want(0, 0, 0.5f, 0).code == GROMA_OK);
	CHECK(regions_request_want(0, 0, 0.5f, 2).code == GROMA_ERR_PROTOCOL);	/* a flag byte is 0 or 1 */
	CHECK(regions_request_want(0, 0, 0.5f, 7).code == GROMA_ERR_PROTOCOL);
	CHECK(validate_request(0).code == GROMA_OK);
	CHECK(validate_request(1).code == GROMA_ERR_PROTOCOL);	/* only REGIONS and GENERATE take refer boxes */
	CHECK(generate_request(text, GROMA_PROTO_MAX_TEXT, 0, 1000).code == GROMA_OK);
	CHECK(generate_request(text, GROMA_PROTO_MAX_TEXT + 1, 0, 1000).code == GROMA_ERR_PROTOCOL);
	CHECK(generate_request("ab\0cd", 5, -1, 1000).code == GROMA_ERR_PROTOCOL);	/* NUL inside the text */
	CHECK(generate_request("abcd\0", 5, -1, 1000).code == GROMA_ERR_PROTOCOL);	/* NUL at its end */
	CHECK(generate_request("", 0, 3, 1000).code == GROMA_OK);
	CHECK(generate_request("", 0, 4, 1000).code == GROMA_ERR_PROTOCOL);
	CHECK(generate_request("", 0, -2, 1000).code == GROMA_ERR_PROTOCOL);
	CHECK(generate_request("", 0, -1, 0).code == GROMA_ERR_PROTOCOL);	/* max_pixels must be positive */
	CHECK(generate_request("", 0, -1, -5).code == GROMA_ERR_PROTOCOL);
	CHECK(generate_request_alone("", 0, -1, 1000, 1).code == GROMA_OK);
	CHECK(generate_request_alone("", 0, -1, 1000, 2).code == GROMA_ERR_PROTOCOL);	/* a flag byte is 0 or 1 */
	free(text);
}

/* Appends a REGIONS reply payload: n regions with embeddings of dim floats, then n_match refer matches. */
static void
put_regions_reply(groma_wbuf *b, uint32_t n, uint32_t dim, uint32_t n_match, int32_t match)
{
	proto_put_reply_start(b, GROMA_MSG_REGIONS, GROMA_OK, "");
	proto_put(b, 640, 4);
	proto_put(b, 480, 4);
	proto_put(b, n, 4);
	proto_put(b, dim, 4);
	for (uint32_t i = 0; i < n; i++)
	{
		for (int k = 0; k < 4; k++)
			proto_put_f64(b, k);
		proto_put(b, 0x3f000000, 4);	/* score 0.5 */
		proto_put(b, 0, 1);
		for (uint32_t k = 0; k < dim; k++)
			proto_put(b, 0, 4);
	}
	proto_put(b, n_match, 4);
	for (uint32_t i = 0; i < n_match; i++)
		proto_put(b, (uint32_t) match, 4);
	proto_put_timings(b);
}

/* Returns the decode status of a REGIONS reply built by put_regions_reply. */
static groma_status
regions_reply(uint32_t n, uint32_t dim, uint32_t n_match, int32_t match)
{
	groma_wbuf	b = {0};
	groma_reply r;
	groma_frame_header h;
	groma_status st;

	put_regions_reply(&b, n, dim, n_match, match);
	h = proto_header(GROMA_MSG_REPLY, b.len);
	st = proto_decode_reply_copy(&h, b.data, b.len, &r);
	groma_reply_free(&r);
	groma_wbuf_free(&b);
	return st;
}

/* A GENERATE reply's counts and strings, as put_generate_reply writes them. */
typedef struct generate_shape
{
	const char *text;
	uint32_t	text_len;
	uint32_t	n_groundings;
	const char *phrase;
	uint32_t	phrase_len;
	int32_t		start,
				stop;
	uint32_t	n_boxes;
	uint32_t	n_ids;
} generate_shape;

/* Returns the decode status of a GENERATE reply of the given shape. */
static groma_status
generate_reply(const generate_shape *s)
{
	groma_wbuf	b = {0};
	groma_reply r;
	groma_frame_header h;
	groma_status st;

	proto_put_reply_start(&b, GROMA_MSG_GENERATE, GROMA_OK, "");
	proto_put(&b, 333, 4);
	proto_put(&b, 251, 4);
	proto_put(&b, 7, 4);		/* regions */
	proto_put_blob(&b, s->text, s->text_len);
	proto_put(&b, s->n_groundings, 4);
	for (uint32_t i = 0; i < s->n_groundings; i++)
	{
		proto_put_blob(&b, s->phrase, s->phrase_len);
		proto_put(&b, (uint32_t) s->start, 4);
		proto_put(&b, (uint32_t) s->stop, 4);
		proto_put(&b, s->n_boxes, 4);
		for (uint32_t k = 0; k < 4 * s->n_boxes; k++)
			proto_put_f64(&b, k);
	}
	proto_put(&b, s->n_ids, 4);
	for (uint32_t i = 0; i < s->n_ids; i++)
		proto_put(&b, i, 4);
	proto_put(&b, 1, 1);
	proto_put(&b, 100, 4);
	proto_put_f64(&b, 1.5);
	proto_put_f64(&b, 2.5);
	proto_put_timings(&b);
	h = proto_header(GROMA_MSG_REPLY, b.len);
	st = proto_decode_reply_copy(&h, b.data, b.len, &r);
	groma_reply_free(&r);
	groma_wbuf_free(&b);
	return st;
}

/* Reply counts over their limits (4,097 regions, 16,385-float embeddings, ...); the limits themselves pass. */
UNIT_TEST(test_protocol_reject_reply_counts)
{
	generate_shape s = {"a dog", 5, 1, "dog", 3, 2, 5, 1, 3};

	CHECK(regions_reply(GROMA_PROTO_MAX_REGIONS, 0, 0, 0).code == GROMA_OK);
	CHECK(regions_reply(GROMA_PROTO_MAX_REGIONS + 1, 0, 0, 0).code == GROMA_ERR_PROTOCOL);
	CHECK(regions_reply(1, GROMA_PROTO_MAX_EMBED, 0, 0).code == GROMA_OK);
	CHECK(regions_reply(1, GROMA_PROTO_MAX_EMBED + 1, 0, 0).code == GROMA_ERR_PROTOCOL);
	CHECK(regions_reply(1, 0, GROMA_PROTO_MAX_REFER + 1, 0).code == GROMA_ERR_PROTOCOL);

	CHECK(generate_reply(&s).code == GROMA_OK);
	s.n_ids = GROMA_PROTO_MAX_TOKENS;
	CHECK(generate_reply(&s).code == GROMA_OK);
	s.n_ids = GROMA_PROTO_MAX_TOKENS + 1;
	CHECK(generate_reply(&s).code == GROMA_ERR_PROTOCOL);
	s.n_ids = 3;
	s.n_groundings = GROMA_PROTO_MAX_GROUNDINGS;
	CHECK(generate_reply(&s).code == GROMA_OK);
	s.n_groundings = GROMA_PROTO_MAX_GROUNDINGS + 1;
	CHECK(generate_reply(&s).code == GROMA_ERR_PROTOCOL);
	s.n_groundings = 1;
	s.n_boxes = GROMA_PROTO_MAX_REGIONS + 1;
	CHECK(generate_reply(&s).code == GROMA_ERR_PROTOCOL);
}

/* Reply strings: over 65,536 bytes or with a NUL inside. */
UNIT_TEST(test_protocol_reject_reply_strings)
{
	char	   *text = malloc(GROMA_PROTO_MAX_TEXT + 1);
	generate_shape s = {text, GROMA_PROTO_MAX_TEXT, 1, "dog", 3, 2, 5, 1, 3};
	groma_wbuf	b = {0};
	groma_reply r;
	groma_frame_header h;

	memset(text, 't', GROMA_PROTO_MAX_TEXT + 1);
	CHECK(generate_reply(&s).code == GROMA_OK);
	s.text_len = GROMA_PROTO_MAX_TEXT + 1;
	CHECK(generate_reply(&s).code == GROMA_ERR_PROTOCOL);
	s.text = "a d\0g";
	s.text_len = 5;
	CHECK(generate_reply(&s).code == GROMA_ERR_PROTOCOL);
	s.text = "a dog";
	s.phrase = "d\0g";
	CHECK(generate_reply(&s).code == GROMA_ERR_PROTOCOL);

	/* an error message with a NUL inside, and one over the limit */
	proto_put(&b, GROMA_MSG_PING, 2);
	proto_put(&b, GROMA_ERR_BUSY, 4);
	proto_put_blob(&b, "bu\0sy", 5);
	h = proto_header(GROMA_MSG_REPLY, b.len);
	CHECK(proto_decode_reply_copy(&h, b.data, b.len, &r).code == GROMA_ERR_PROTOCOL);
	groma_reply_free(&r);
	b.len = 0;
	proto_put(&b, GROMA_MSG_PING, 2);
	proto_put(&b, GROMA_ERR_BUSY, 4);
	proto_put_blob(&b, text, GROMA_PROTO_MAX_TEXT + 1);
	h = proto_header(GROMA_MSG_REPLY, b.len);
	CHECK(proto_decode_reply_copy(&h, b.data, b.len, &r).code == GROMA_ERR_PROTOCOL);
	groma_reply_free(&r);
	groma_wbuf_free(&b);
	free(text);
}

/* Reply values out of range: answered kind, status code, server state, phrase offsets, refer matches. */
UNIT_TEST(test_protocol_reject_reply_values)
{
	static const uint16_t bad_kinds[] = {0, GROMA_MSG_CANCEL, 8, GROMA_MSG_REPLY};
	generate_shape s = {"a dog", 5, 1, "dog", 3, 2, 5, 1, 3};
	groma_wbuf	b = {0};
	groma_reply r;
	groma_frame_header h;

	for (size_t i = 0; i < sizeof(bad_kinds) / sizeof(bad_kinds[0]); i++)
	{
		b.len = 0;
		proto_put_reply_start(&b, (groma_msg_kind) bad_kinds[i], GROMA_OK, "");
		h = proto_header(GROMA_MSG_REPLY, b.len);
		CHECKF(proto_decode_reply_copy(&h, b.data, b.len, &r).code == GROMA_ERR_PROTOCOL, "answered kind %u",
			   (unsigned) bad_kinds[i]);
		groma_reply_free(&r);
	}
	b.len = 0;
	proto_put_reply_start(&b, GROMA_MSG_PING, GROMA_ERR_PROTOCOL + 1, "");
	h = proto_header(GROMA_MSG_REPLY, b.len);
	CHECK(proto_decode_reply_copy(&h, b.data, b.len, &r).code == GROMA_ERR_PROTOCOL);
	groma_reply_free(&r);

	/* a STATUS reply in state 6 */
	b.len = 0;
	proto_put_reply_start(&b, GROMA_MSG_STATUS, GROMA_OK, "");
	proto_put(&b, GROMA_SERVER_STOPPING + 1, 4);
	proto_put_blob(&b, "", 0);
	proto_put_blob(&b, "cpu", 3);
	for (int k = 0; k < 6; k++)
		proto_put(&b, 0, k == 2 || k == 3 ? 4 : 8);
	h = proto_header(GROMA_MSG_REPLY, b.len);
	CHECK(proto_decode_reply_copy(&h, b.data, b.len, &r).code == GROMA_ERR_PROTOCOL);
	groma_reply_free(&r);
	groma_wbuf_free(&b);

	/* phrase offsets: negative, reversed, or past the end of the answer */
	s.start = -1;
	CHECK(generate_reply(&s).code == GROMA_ERR_PROTOCOL);
	s.start = 3;
	s.stop = 2;
	CHECK(generate_reply(&s).code == GROMA_ERR_PROTOCOL);
	s.start = 2;
	s.stop = 5;
	CHECK(generate_reply(&s).code == GROMA_OK);
	s.stop = 6;
	CHECK(generate_reply(&s).code == GROMA_ERR_PROTOCOL);

	/* a refer match must name one of the regions sent */
	CHECK(regions_reply(2, 0, 1, 1).code == GROMA_OK);
	CHECK(regions_reply(2, 0, 1, 2).code == GROMA_ERR_PROTOCOL);
	CHECK(regions_reply(2, 0, 1, -2).code == GROMA_ERR_PROTOCOL);
}

/* Decodes a reply payload of len bytes and returns the heap bytes the failed decode still holds. */
static size_t
claimed_reply_heap(const groma_wbuf *b, size_t len, groma_status *st)
{
	groma_frame_header h = proto_header(GROMA_MSG_REPLY, len);
	groma_reply r;
	size_t		before = live_heap_bytes(),
				held;

	*st = groma_proto_decode_reply(&h, b->data, len, &r);
	held = live_heap_bytes() - before;
	groma_reply_free(&r);
	return held;
}

/*
 * Counts that claim far more data than the payload holds (4,096 regions of
 * 16,384 floats in 100 bytes: 256 MiB of embeddings) fail before any
 * allocation of the claimed size: the decoder keeps under 64 KiB, and a
 * thousand such decodes take well under a second.
 */
UNIT_TEST(test_protocol_reject_huge_claims)
{
	groma_wbuf	b = {0};
	groma_status st;
	size_t		held;
	struct timespec t0,
				t1;
	double		seconds;

	proto_put_reply_start(&b, GROMA_MSG_REGIONS, GROMA_OK, "");
	proto_put(&b, 640, 4);
	proto_put(&b, 480, 4);
	proto_put(&b, GROMA_PROTO_MAX_REGIONS, 4);
	proto_put(&b, GROMA_PROTO_MAX_EMBED, 4);
	while (b.len < 100)
		proto_put(&b, 0, 1);
	held = claimed_reply_heap(&b, 100, &st);
	CHECK(st.code == GROMA_ERR_PROTOCOL);
	CHECKF(held < 65536, "a 100-byte payload made the decoder hold %zu bytes", held);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 1000; i++)
		(void) claimed_reply_heap(&b, 100, &st);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	seconds = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
	CHECKF(seconds < 1.0, "1000 decodes of a 100-byte payload took %.2f s", seconds);

	/* the largest groundings, boxes and ids in a tiny GENERATE reply */
	b.len = 0;
	proto_put_reply_start(&b, GROMA_MSG_GENERATE, GROMA_OK, "");
	proto_put(&b, 333, 4);
	proto_put(&b, 251, 4);
	proto_put(&b, 7, 4);
	proto_put_blob(&b, "a", 1);
	proto_put(&b, GROMA_PROTO_MAX_GROUNDINGS, 4);
	proto_put_blob(&b, "a", 1);
	proto_put(&b, 0, 4);
	proto_put(&b, 1, 4);
	proto_put(&b, GROMA_PROTO_MAX_REGIONS, 4);
	while (b.len < 100)
		proto_put(&b, 0, 1);
	held = claimed_reply_heap(&b, 100, &st);
	CHECK(st.code == GROMA_ERR_PROTOCOL);
	CHECKF(held < 65536, "a 100-byte GENERATE payload made the decoder hold %zu bytes", held);
	groma_wbuf_free(&b);
}

/* An image length of 256 MiB in a 40-byte request fails without allocating it. */
UNIT_TEST(test_protocol_reject_huge_image_claim)
{
	groma_wbuf	b = {0};
	groma_request q;
	groma_frame_header h;
	groma_status st;
	size_t		before,
				held;

	proto_put(&b, GROMA_PROTO_MAX_IMAGE, 4);
	while (b.len < 40)
		proto_put(&b, 0xFF, 1);
	h = proto_header(GROMA_MSG_VALIDATE, b.len);
	before = live_heap_bytes();
	st = groma_proto_decode_request(&h, b.data, b.len, &q);
	held = live_heap_bytes() - before;
	CHECK(st.code == GROMA_ERR_PROTOCOL);
	CHECKF(held < 65536, "a 40-byte request made the decoder hold %zu bytes", held);
	groma_request_free(&q);
	groma_wbuf_free(&b);
}
