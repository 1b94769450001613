/*
 * protocol_samples.h - material for the protocol tests (test_protocol*.c):
 * one sample message of every request and reply kind, a little-endian
 * payload writer for hand-made (hostile) payloads, and decoders that read a
 * payload from an exact-size heap copy so that ASan sees any overread.
 */
#ifndef GROMA_PROTOCOL_SAMPLES_H
#define GROMA_PROTOCOL_SAMPLES_H

#include "../../src/server/protocol.h"

#define PROTO_SAMPLE_REQUESTS 7		/* ping, status, validate, regions, generate, cancel, draw */
#define PROTO_SAMPLE_REPLIES 7		/* ping, status, validate, regions, generate, an error, draw */

/*
 * Fills out[0..PROTO_SAMPLE_REQUESTS) with one request of each kind.  They
 * point at static data: never pass them to groma_request_free.
 */
void		proto_sample_requests(groma_request *out);

/* Fills out[0..PROTO_SAMPLE_REPLIES) with one reply of each kind (static data, like the requests). */
void		proto_sample_replies(groma_reply *out);

/* Appends the `bytes` low bytes of v to b, little-endian. */
void		proto_put(groma_wbuf *b, uint64_t v, int bytes);

/* Appends n raw bytes to b. */
void		proto_put_bytes(groma_wbuf *b, const void *p, size_t n);

/* Appends a double's bits to b. */
void		proto_put_f64(groma_wbuf *b, double v);

/* Appends a byte string (u32 length, then the bytes) to b. */
void		proto_put_blob(groma_wbuf *b, const void *p, uint32_t n);

/* Appends the start of a reply payload: the answered kind, a status code and a message. */
void		proto_put_reply_start(groma_wbuf *b, groma_msg_kind kind, groma_status_code code, const char *message);

/* Appends the eight timings that end a REGIONS or GENERATE reply. */
void		proto_put_timings(groma_wbuf *b);

/* Returns the header of a version-1 frame of kind with id 77 and a payload of len bytes. */
groma_frame_header proto_header(groma_msg_kind kind, size_t len);

/* Decodes a request payload for header h from an exact-size heap copy of payload[0..len). */
groma_status proto_decode_request_copy(const groma_frame_header *h, const uint8_t *payload, size_t len,
									   groma_request *q);

/* Decodes a reply payload for header h from an exact-size heap copy of payload[0..len). */
groma_status proto_decode_reply_copy(const groma_frame_header *h, const uint8_t *payload, size_t len,
									 groma_reply *r);

#endif							/* GROMA_PROTOCOL_SAMPLES_H */
