/*
 * fuzz_protocol.c - libFuzzer target for groma-server's frame decoder
 * (src/server/protocol.h).  The input is a 16-byte header and a payload:
 * the header goes through groma_proto_parse_header, and the rest of the
 * input through both groma_proto_decode_request and
 * groma_proto_decode_reply (the header's length field is replaced by the
 * payload's real size, as the socket reader reads exactly that many bytes).
 * Whatever decodes must encode again, decode to an equal message, and
 * encode to the same bytes; a failure to do so aborts, so the fuzzer
 * reports it.  Seeds: the .bin frames in test/fixtures/protocol
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/protocol_compare.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reports a broken round trip and aborts. */
static void
broken(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_protocol: %s: %s\n", what, detail ? detail : "");
	abort();
}

/* Parses the header of the one frame in b, which must cover all of b. */
static groma_frame_header
whole_frame(const groma_wbuf *b)
{
	groma_frame_header h;
	groma_status st;

	if (b->len < GROMA_PROTO_HEADER_BYTES)
		broken("an encoded frame is shorter than its header", NULL);
	st = groma_proto_parse_header(b->data, &h);
	if (st.code != GROMA_OK)
		broken("an encoded header does not parse", st.message);
	if (h.payload_len != b->len - GROMA_PROTO_HEADER_BYTES)
		broken("an encoded length field is wrong", NULL);
	return h;
}

/* Checks that a decoded request encodes, decodes back equal and encodes to the same bytes. */
static void
request_round_trip(const groma_request *first)
{
	groma_wbuf	once = {0},
				twice = {0};
	groma_frame_header h;
	groma_request second;
	groma_status st = groma_proto_encode_request(first, &once);
	const char *diff;

	if (st.code != GROMA_OK)
		broken("a decoded request does not encode", st.message);
	h = whole_frame(&once);
	st = groma_proto_decode_request(&h, once.data + GROMA_PROTO_HEADER_BYTES, h.payload_len, &second);
	if (st.code != GROMA_OK)
		broken("a re-encoded request does not decode", st.message);
	if ((diff = proto_request_difference(first, &second)) != NULL)
		broken("a request changed in a round trip", diff);
	st = groma_proto_encode_request(&second, &twice);
	if (st.code != GROMA_OK || twice.len != once.len || memcmp(twice.data, once.data, once.len) != 0)
		broken("a request encodes to other bytes the second time", st.message);
	groma_request_free(&second);
	groma_wbuf_free(&once);
	groma_wbuf_free(&twice);
}

/* Checks that a decoded reply encodes, decodes back equal and encodes to the same bytes. */
static void
reply_round_trip(const groma_reply *first)
{
	groma_wbuf	once = {0},
				twice = {0};
	groma_frame_header h;
	groma_reply second;
	groma_status st = groma_proto_encode_reply(first, &once);
	const char *diff;

	if (st.code != GROMA_OK)
		broken("a decoded reply does not encode", st.message);
	h = whole_frame(&once);
	st = groma_proto_decode_reply(&h, once.data + GROMA_PROTO_HEADER_BYTES, h.payload_len, &second);
	if (st.code != GROMA_OK)
		broken("a re-encoded reply does not decode", st.message);
	if ((diff = proto_reply_difference(first, &second)) != NULL)
		broken("a reply changed in a round trip", diff);
	st = groma_proto_encode_reply(&second, &twice);
	if (st.code != GROMA_OK || twice.len != once.len || memcmp(twice.data, once.data, once.len) != 0)
		broken("a reply encodes to other bytes the second time", st.message);
	groma_reply_free(&second);
	groma_wbuf_free(&once);
	groma_wbuf_free(&twice);
}

/* One input: parse the header, decode the payload both ways, round-trip what decodes. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	groma_frame_header h;
	groma_request q;
	groma_reply r;
	const uint8_t *payload = data + GROMA_PROTO_HEADER_BYTES;
	size_t		len;

	if (size < GROMA_PROTO_HEADER_BYTES || groma_proto_parse_header(data, &h).code != GROMA_OK)
		return 0;
	len = size - GROMA_PROTO_HEADER_BYTES;
	h.payload_len = (uint32_t) len;
	if (groma_proto_decode_request(&h, payload, len, &q).code == GROMA_OK)
		request_round_trip(&q);
	groma_request_free(&q);
	if (groma_proto_decode_reply(&h, payload, len, &r).code == GROMA_OK)
		reply_round_trip(&r);
	groma_reply_free(&r);
	return 0;
}
