/*
 * protocol.c - encoding and decoding groma-server's frames (protocol.h).
 *
 * Written by hand because it is a fixed little-endian layout of a few
 * fields: a serialisation library would add a dependency to groma.so for
 * less checking than the explicit bounds tests below.
 */
#include "protocol.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- writing */

/* Makes room for n more bytes; returns false (and marks the buffer failed) when out of memory. */
static bool
wbuf_reserve(groma_wbuf *b, size_t n)
{
	size_t		cap;
	uint8_t    *p;

	if (b->failed)
		return false;
	if (b->len + n <= b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + n)
		cap *= 2;
	p = realloc(b->data, cap);
	if (p == NULL)
	{
		b->failed = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

/* Appends n raw bytes. */
static void
put_bytes(groma_wbuf *b, const void *src, size_t n)
{
	if (n > 0 && wbuf_reserve(b, n))
	{
		memcpy(b->data + b->len, src, n);
		b->len += n;
	}
}

/* Appends an unsigned integer of `bytes` bytes, little-endian. */
static void
put_uint(groma_wbuf *b, uint64_t v, int bytes)
{
	uint8_t		le[8];

	for (int i = 0; i < bytes; i++)
		le[i] = (uint8_t) (v >> (8 * i));
	put_bytes(b, le, (size_t) bytes);
}

static void
put_u8(groma_wbuf *b, uint8_t v)
{
	put_uint(b, v, 1);
}

static void
put_u32(groma_wbuf *b, uint32_t v)
{
	put_uint(b, v, 4);
}

static void
put_i32(groma_wbuf *b, int32_t v)
{
	put_uint(b, (uint32_t) v, 4);
}

static void
put_u64(groma_wbuf *b, uint64_t v)
{
	put_uint(b, v, 8);
}

static void
put_f32(groma_wbuf *b, float v)
{
	uint32_t	u;

	memcpy(&u, &v, 4);
	put_uint(b, u, 4);
}

static void
put_f64(groma_wbuf *b, double v)
{
	uint64_t	u;

	memcpy(&u, &v, 8);
	put_uint(b, u, 8);
}

/* Appends a byte string: u32 length, then the bytes. */
static void
put_blob(groma_wbuf *b, const void *p, uint32_t n)
{
	put_u32(b, n);
	put_bytes(b, p, n);
}

/* Appends a C string as a byte string (NULL as empty). */
static void
put_str(groma_wbuf *b, const char *s)
{
	size_t		n = s ? strlen(s) : 0;

	put_blob(b, s, (uint32_t) (n > GROMA_PROTO_MAX_TEXT ? GROMA_PROTO_MAX_TEXT : n));
}

/* Writes a header with a zero length at the end of out; returns its offset. */
static size_t
begin_frame(groma_wbuf *out, groma_msg_kind kind, uint32_t id)
{
	size_t		at = out->len;

	put_u32(out, GROMA_PROTO_MAGIC);
	put_uint(out, GROMA_PROTO_VERSION, 2);
	put_uint(out, (uint64_t) kind, 2);
	put_u32(out, id);
	put_u32(out, 0);
	return at;
}

/*
 * Fills in the payload length of the frame begun at offset at; fails when it
 * is over the limit or memory ran out, and then removes the partial frame.
 */
static groma_status
end_frame(groma_wbuf *out, size_t at)
{
	size_t		payload;

	if (out->failed)
	{
		out->len = out->len < at ? out->len : at;
		return groma_error(GROMA_ERR_NO_MEMORY, "out of memory encoding a frame");
	}
	payload = out->len - at - GROMA_PROTO_HEADER_BYTES;
	if (payload > GROMA_PROTO_MAX_PAYLOAD)
	{
		out->len = at;
		return groma_error(GROMA_ERR_LIMIT, "frame of %zu bytes is over the protocol's limit of %u",
						   payload, (unsigned) GROMA_PROTO_MAX_PAYLOAD);
	}
	for (int i = 0; i < 4; i++)
		out->data[at + 12 + i] = (uint8_t) (payload >> (8 * i));
	return groma_ok();
}

/* Frees a buffer; see protocol.h. */
void
groma_wbuf_free(groma_wbuf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* ---------------------------------------------------------------- reading */

/* A cursor over a payload; the first failure sticks. */
typedef struct reader
{
	const uint8_t *p;
	size_t		left;
	bool		bad;
	const char *what;			/* the field that failed */
} reader;

/* Takes n bytes; NULL (and marks the reader bad) when fewer are left. */
static const uint8_t *
take(reader *r, size_t n, const char *what)
{
	const uint8_t *p = r->p;

	if (r->bad)
		return NULL;
	if (n > r->left)
	{
		r->bad = true;
		r->what = what;
		return NULL;
	}
	r->p += n;
	r->left -= n;
	return p;
}

/* Reads an unsigned little-endian integer of `bytes` bytes (0 after a failure). */
static uint64_t
get_uint(reader *r, int bytes, const char *what)
{
	const uint8_t *p = take(r, (size_t) bytes, what);
	uint64_t	v = 0;

	if (p == NULL)
		return 0;
	for (int i = 0; i < bytes; i++)
		v |= (uint64_t) p[i] << (8 * i);
	return v;
}

static uint32_t
get_u32(reader *r, const char *what)
{
	return (uint32_t) get_uint(r, 4, what);
}

static int32_t
get_i32(reader *r, const char *what)
{
	return (int32_t) (uint32_t) get_uint(r, 4, what);
}

static uint64_t
get_u64(reader *r, const char *what)
{
	return get_uint(r, 8, what);
}

static float
get_f32(reader *r, const char *what)
{
	uint32_t	u = (uint32_t) get_uint(r, 4, what);
	float		v;

	memcpy(&v, &u, 4);
	return v;
}

static double
get_f64(reader *r, const char *what)
{
	uint64_t	u = get_uint(r, 8, what);
	double		v;

	memcpy(&v, &u, 8);
	return v;
}

/* Marks the reader bad for field what. */
static void
fail_field(reader *r, const char *what)
{
	if (!r->bad)
	{
		r->bad = true;
		r->what = what;
	}
}

/* Reads a count and checks it against limit. */
static int32_t
get_count(reader *r, int32_t limit, const char *what)
{
	uint32_t	n = get_u32(r, what);

	if (n > (uint32_t) limit)
	{
		fail_field(r, what);
		return 0;
	}
	return (int32_t) n;
}

/* Reads a byte string of at most limit bytes into a malloc'd, NUL-terminated copy (NULL after a failure). */
static uint8_t *
get_blob(reader *r, uint32_t limit, uint32_t *len, const char *what)
{
	uint32_t	n = get_u32(r, what);
	const uint8_t *p;
	uint8_t    *copy;

	*len = 0;
	if (r->bad)
		return NULL;
	if (n > limit || n > r->left)
	{
		fail_field(r, what);
		return NULL;
	}
	p = take(r, n, what);
	copy = malloc((size_t) n + 1);
	if (copy == NULL)
	{
		fail_field(r, "memory");
		return NULL;
	}
	memcpy(copy, p, n);
	copy[n] = '\0';
	*len = n;
	return copy;
}

/* Reads a text field (no NUL bytes inside) into a malloc'd string. */
static char *
get_str(reader *r, const char *what)
{
	uint32_t	n;
	char	   *s = (char *) get_blob(r, GROMA_PROTO_MAX_TEXT, &n, what);

	if (s != NULL && strlen(s) != n)
	{
		free(s);
		fail_field(r, what);
		return NULL;
	}
	return s;
}

/* Allocates n zeroed elements of size bytes (n may be 0); NULL marks the reader bad. */
static void *
get_array(reader *r, size_t n, size_t size, const char *what)
{
	void	   *p;

	if (r->bad)
		return NULL;
	/* every element takes at least `size` bytes of payload: refuse before allocating */
	if (n > r->left / (size ? size : 1))
	{
		fail_field(r, what);
		return NULL;
	}
	p = calloc(n ? n : 1, size);
	if (p == NULL)
		fail_field(r, "memory");
	return p;
}

/* Turns the reader's end state into a status: a failed field or trailing bytes are format errors. */
static groma_status
finish(reader *r, const char *frame)
{
	if (r->bad)
		return groma_error(GROMA_ERR_PROTOCOL, "malformed %s frame: bad or oversized field \"%s\"", frame, r->what);
	if (r->left != 0)
		return groma_error(GROMA_ERR_PROTOCOL, "malformed %s frame: %zu trailing bytes", frame, r->left);
	return groma_ok();
}

/* ---------------------------------------------------------------- header */

/* Returns true for a kind this version knows. */
static bool
known_kind(uint32_t k)
{
	return (k >= GROMA_MSG_PING && k <= GROMA_MSG_DRAW) || k == GROMA_MSG_REPLY;
}

/* Parses a header; see protocol.h. */
groma_status
groma_proto_parse_header(const uint8_t *bytes, groma_frame_header *h)
{
	reader		r = {bytes, GROMA_PROTO_HEADER_BYTES, false, NULL};
	uint32_t	magic = get_u32(&r, "magic");
	uint32_t	kind;

	h->version = (uint16_t) get_uint(&r, 2, "version");
	kind = (uint32_t) get_uint(&r, 2, "kind");
	h->id = get_u32(&r, "id");
	h->payload_len = get_u32(&r, "length");
	h->kind = (groma_msg_kind) kind;
	h->magic_ok = magic == GROMA_PROTO_MAGIC;
	if (!h->magic_ok)
		return groma_error(GROMA_ERR_PROTOCOL, "not a groma frame (bad magic)");
	if (h->version != GROMA_PROTO_VERSION)
		return groma_error(GROMA_ERR_PROTOCOL, "protocol version %u, this side speaks %u",
						   (unsigned) h->version, (unsigned) GROMA_PROTO_VERSION);
	if (!known_kind(kind))
		return groma_error(GROMA_ERR_PROTOCOL, "unknown frame kind %u", (unsigned) kind);
	if (h->payload_len > GROMA_PROTO_MAX_PAYLOAD)
		return groma_error(GROMA_ERR_PROTOCOL, "frame of %u bytes is over the limit of %u",
						   (unsigned) h->payload_len, (unsigned) GROMA_PROTO_MAX_PAYLOAD);
	return groma_ok();
}

/* ---------------------------------------------------------------- requests */

/* Returns true for a kind that answers with a reply (every request kind but CANCEL). */
static bool
answered_kind(uint32_t k)
{
	return (k >= GROMA_MSG_PING && k <= GROMA_MSG_GENERATE) || k == GROMA_MSG_DRAW;
}

/* Returns true for a kind whose request carries an image (VALIDATE, REGIONS, GENERATE, DRAW). */
static bool
image_kind(uint32_t k)
{
	return k == GROMA_MSG_VALIDATE || k == GROMA_MSG_REGIONS || k == GROMA_MSG_GENERATE || k == GROMA_MSG_DRAW;
}

/* Checks the boxes and labels of a DRAW request against the limits. */
static groma_status
check_draw(const groma_request *r)
{
	if (r->n_draw < 0 || r->n_draw > GROMA_PROTO_MAX_REGIONS)
		return groma_error(GROMA_ERR_LIMIT, "%d boxes to draw, at most %d", (int) r->n_draw,
						   GROMA_PROTO_MAX_REGIONS);
	if (r->n_draw > 0 && r->draw_boxes == NULL)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%d boxes to draw and no coordinates", (int) r->n_draw);
	for (int i = 0; r->draw_labels != NULL && i < r->n_draw; i++)
		if (r->draw_labels[i] && strlen(r->draw_labels[i]) > GROMA_PROTO_MAX_TEXT)
			return groma_error(GROMA_ERR_LIMIT, "label %d is over the limit of %d bytes", i, GROMA_PROTO_MAX_TEXT);
	return groma_ok();
}

/*
 * Checks a request against what the decoder accepts, so that a refused
 * request is reported to its caller instead of closing the connection:
 * GROMA_ERR_LIMIT for sizes and counts, GROMA_ERR_INVALID_ARGUMENT for values.
 */
static groma_status
check_request(const groma_request *r)
{
	if (!answered_kind(r->kind) && r->kind != GROMA_MSG_CANCEL)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%d is not a request kind", (int) r->kind);
	if (r->image_len > GROMA_PROTO_MAX_IMAGE)
		return groma_error(GROMA_ERR_LIMIT, "image of %u bytes is over groma-server's limit of %u bytes",
						   (unsigned) r->image_len, (unsigned) GROMA_PROTO_MAX_IMAGE);
	if (r->n_refer < 0 || r->n_refer > GROMA_PROTO_MAX_REFER)
		return groma_error(GROMA_ERR_LIMIT, "%d refer boxes, at most %d", r->n_refer, GROMA_PROTO_MAX_REFER);
	if (r->text && strlen(r->text) > GROMA_PROTO_MAX_TEXT)
		return groma_error(GROMA_ERR_LIMIT, "text of %zu bytes is over the limit of %d bytes",
						   strlen(r->text), GROMA_PROTO_MAX_TEXT);
	if (image_kind(r->kind) && r->max_pixels <= 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "max_pixels %lld is not positive", (long long) r->max_pixels);
	if (r->kind == GROMA_MSG_REGIONS && (r->max_regions < 0 || !(r->min_score <= 1.0f)))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "max_regions %d or min_score is out of range",
						   (int) r->max_regions);
	if ((r->kind == GROMA_MSG_VALIDATE || r->kind == GROMA_MSG_DRAW) && r->n_refer != 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%d refer boxes: only REGIONS and GENERATE take them",
						   r->n_refer);
	if (r->kind == GROMA_MSG_GENERATE && (r->task < -1 || r->task > 3))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "task %d is out of range", (int) r->task);
	if (r->kind == GROMA_MSG_DRAW)
		return check_draw(r);
	return groma_ok();
}

/* Encodes a request; see protocol.h. */
groma_status
groma_proto_encode_request(const groma_request *r, groma_wbuf *out)
{
	size_t		at;
	bool		has_image = image_kind(r->kind);

	GROMA_TRY(check_request(r));
	at = begin_frame(out, r->kind, r->id);
	if (has_image)
	{
		put_blob(out, r->image, r->image_len);
		put_u64(out, (uint64_t) r->max_pixels);
		put_u32(out, (uint32_t) r->n_refer);
		for (int i = 0; i < r->n_refer; i++)
			for (int k = 0; k < 4; k++)
				put_f64(out, r->refer[i][k]);
	}
	if (r->kind == GROMA_MSG_REGIONS)
	{
		put_i32(out, r->max_regions);
		put_f32(out, r->min_score);
		put_u8(out, r->want_embeddings ? 1 : 0);
	}
	else if (r->kind == GROMA_MSG_GENERATE)
	{
		put_i32(out, r->task);
		put_str(out, r->text);
		put_i32(out, r->max_new_tokens);
		put_u8(out, r->alone ? 1 : 0);
	}
	else if (r->kind == GROMA_MSG_CANCEL)
		put_u32(out, r->cancel_id);
	else if (r->kind == GROMA_MSG_DRAW)
	{
		put_u32(out, (uint32_t) r->n_draw);
		for (int i = 0; i < 4 * r->n_draw; i++)
			put_f64(out, r->draw_boxes[i]);
		for (int i = 0; i < r->n_draw; i++)
			put_str(out, r->draw_labels ? r->draw_labels[i] : NULL);
	}
	return end_frame(out, at);
}

/* Decodes the boxes and labels of a DRAW request. */
static void
get_draw_fields(reader *r, groma_request *q)
{
	size_t		n;

	q->n_draw = get_count(r, GROMA_PROTO_MAX_REGIONS, "draw box count");
	n = (size_t) q->n_draw;
	/* each box takes 32 bytes and each label at least 4: get_array bounds the allocations by the payload */
	q->draw_boxes = get_array(r, 4 * n, sizeof(double), "draw boxes");
	for (size_t i = 0; i < 4 * n && !r->bad; i++)
		q->draw_boxes[i] = get_f64(r, "draw box");
	q->draw_labels = get_array(r, n, 4, "labels");
	if (q->draw_labels != NULL)
	{
		free(q->draw_labels);
		q->draw_labels = calloc(n + 1, sizeof(char *));
		if (q->draw_labels == NULL)
			fail_field(r, "memory");
	}
	for (size_t i = 0; i < n && !r->bad; i++)
		q->draw_labels[i] = get_str(r, "label");
}

/* Decodes a request; see protocol.h. */
groma_status
groma_proto_decode_request(const groma_frame_header *h, const uint8_t *payload, size_t len, groma_request *q)
{
	reader		r = {payload, len, false, NULL};
	uint64_t	want;

	memset(q, 0, sizeof(*q));
	q->kind = h->kind;
	q->id = h->id;
	q->task = -1;
	q->min_score = -1;
	switch (h->kind)
	{
		case GROMA_MSG_PING:
		case GROMA_MSG_STATUS:
			break;
		case GROMA_MSG_VALIDATE:
		case GROMA_MSG_REGIONS:
		case GROMA_MSG_GENERATE:
		case GROMA_MSG_DRAW:
			q->image = get_blob(&r, GROMA_PROTO_MAX_IMAGE, &q->image_len, "image");
			q->max_pixels = (int64_t) get_u64(&r, "max_pixels");
			if (q->max_pixels <= 0)
				fail_field(&r, "max_pixels");
			q->n_refer = get_count(&r, GROMA_PROTO_MAX_REFER, "refer count");
			for (int i = 0; i < q->n_refer; i++)
				for (int k = 0; k < 4; k++)
					q->refer[i][k] = get_f64(&r, "refer box");
			if (q->n_refer != 0 && (h->kind == GROMA_MSG_VALIDATE || h->kind == GROMA_MSG_DRAW))
				fail_field(&r, "refer count (only REGIONS and GENERATE take refer boxes)");
			if (h->kind == GROMA_MSG_REGIONS)
			{
				q->max_regions = get_i32(&r, "max_regions");
				q->min_score = get_f32(&r, "min_score");
				want = get_uint(&r, 1, "want_embeddings");
				q->want_embeddings = want != 0;
				/* scores are probabilities: a min_score above 1 (or NaN) keeps nothing; a flag byte is 0 or 1 */
				if (q->max_regions < 0 || !(q->min_score <= 1.0f) || want > 1)
					fail_field(&r, "max_regions, min_score or want_embeddings");
			}
			else if (h->kind == GROMA_MSG_GENERATE)
			{
				q->task = get_i32(&r, "task");
				q->text = get_str(&r, "text");
				q->max_new_tokens = get_i32(&r, "max_new_tokens");
				want = get_uint(&r, 1, "alone");
				q->alone = want != 0;
				if (q->task < -1 || q->task > 3)
					fail_field(&r, "task");
				if (want > 1)
					fail_field(&r, "alone");
			}
			else if (h->kind == GROMA_MSG_DRAW)
				get_draw_fields(&r, q);
			break;
		case GROMA_MSG_CANCEL:
			q->cancel_id = get_u32(&r, "cancel_id");
			break;
		case GROMA_MSG_REPLY:
			return groma_error(GROMA_ERR_PROTOCOL, "a reply frame where a request was expected");
	}
	return finish(&r, "request");
}

/* Frees a request; see protocol.h. */
void
groma_request_free(groma_request *r)
{
	free(r->image);
	free(r->text);
	free(r->draw_boxes);
	for (int i = 0; r->draw_labels && i < r->n_draw; i++)
		free(r->draw_labels[i]);
	free(r->draw_labels);
	memset(r, 0, sizeof(*r));
}

/* ---------------------------------------------------------------- replies */

/* Encodes the STATUS fields. */
static void
put_status_fields(groma_wbuf *out, const groma_reply *r)
{
	put_u32(out, (uint32_t) r->state);
	put_str(out, r->model_path);
	put_str(out, r->device);
	put_u64(out, r->load_done);
	put_u64(out, r->load_total);
	put_u32(out, r->queue_depth);
	put_u32(out, r->running);
	put_u64(out, r->served);
	put_u64(out, r->failed);
	put_u32(out, r->batch);
	put_u32(out, r->max_batch);
	put_u64(out, r->kv_used);
	put_u64(out, r->kv_total);
	put_str(out, r->weights);
	put_u64(out, r->cancelled);
	put_u64(out, r->busy);
}

/* Encodes the REGIONS fields. */
static void
put_regions_fields(groma_wbuf *out, const groma_reply *r)
{
	put_u32(out, (uint32_t) r->n_regions);
	put_u32(out, (uint32_t) r->embed_dim);
	for (int i = 0; i < r->n_regions; i++)
	{
		for (int k = 0; k < 4; k++)
			put_f64(out, r->boxes[4 * i + k]);
		put_f32(out, r->scores[i]);
		put_u8(out, r->is_refer[i]);
		for (int k = 0; k < r->embed_dim; k++)
			put_f32(out, r->embeddings[(size_t) i * r->embed_dim + k]);
	}
	put_u32(out, (uint32_t) r->n_refer_match);
	for (int i = 0; i < r->n_refer_match; i++)
		put_i32(out, r->refer_match[i]);
}

/* Encodes the GENERATE fields. */
static void
put_generate_fields(groma_wbuf *out, const groma_reply *r)
{
	put_u32(out, (uint32_t) r->n_regions);
	put_str(out, r->text);
	put_u32(out, (uint32_t) r->n_groundings);
	for (int i = 0; i < r->n_groundings; i++)
	{
		const groma_reply_grounding *g = &r->groundings[i];

		put_str(out, g->phrase);
		put_i32(out, g->start);
		put_i32(out, g->stop);
		put_u32(out, (uint32_t) g->n_boxes);
		for (int k = 0; k < 4 * g->n_boxes; k++)
			put_f64(out, g->boxes[k]);
	}
	put_u32(out, (uint32_t) r->n_ids);
	for (int i = 0; i < r->n_ids; i++)
		put_i32(out, r->ids[i]);
	put_u8(out, r->hit_eos ? 1 : 0);
	put_i32(out, r->prompt_tokens);
	put_f64(out, r->prefill_ms);
	put_f64(out, r->decode_ms);
}

/* Returns true when s (NULL: "") fits in a text field. */
static bool
text_fits(const char *s)
{
	return s == NULL || strlen(s) <= GROMA_PROTO_MAX_TEXT;
}

/* Checks the groundings of a GENERATE reply against the limits and the answer's length. */
static groma_status
check_groundings(const groma_reply *r)
{
	size_t		text_len = r->text ? strlen(r->text) : 0;

	for (int i = 0; i < r->n_groundings; i++)
	{
		const groma_reply_grounding *g = &r->groundings[i];

		if (g->n_boxes < 0 || g->n_boxes > GROMA_PROTO_MAX_REGIONS || !text_fits(g->phrase))
			return groma_error(GROMA_ERR_LIMIT, "grounding %d is over the protocol's limits", i);
		if (g->start < 0 || g->stop < g->start || (size_t) g->stop > text_len)
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "grounding %d has offsets %d..%d outside the answer",
							   i, (int) g->start, (int) g->stop);
	}
	return groma_ok();
}

/*
 * Checks the fields a reply sends against what the decoder accepts:
 * GROMA_ERR_LIMIT for counts and string lengths, GROMA_ERR_INVALID_ARGUMENT
 * for values (kind, status code, state, offsets, refer matches).
 */
static groma_status
check_reply(const groma_reply *r)
{
	if (!answered_kind(r->kind) || (uint32_t) r->status.code > GROMA_ERR_PROTOCOL)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "a reply to kind %d with status %d cannot be sent",
						   (int) r->kind, (int) r->status.code);
	if (r->status.code != GROMA_OK)
		return groma_ok();		/* only the status travels */
	if (r->kind == GROMA_MSG_STATUS &&
		(!text_fits(r->model_path) || !text_fits(r->device) || !text_fits(r->weights) ||
		 (uint32_t) r->state > GROMA_SERVER_STOPPING))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "a status reply with state %d or a path over the limit",
						   (int) r->state);
	if ((r->kind == GROMA_MSG_REGIONS || r->kind == GROMA_MSG_GENERATE) &&
		(r->n_regions < 0 || r->n_regions > GROMA_PROTO_MAX_REGIONS))
		return groma_error(GROMA_ERR_LIMIT, "%d regions, at most %d", (int) r->n_regions, GROMA_PROTO_MAX_REGIONS);
	if (r->kind == GROMA_MSG_REGIONS)
	{
		if (r->embed_dim < 0 || r->embed_dim > GROMA_PROTO_MAX_EMBED || r->n_refer_match < 0 ||
			r->n_refer_match > GROMA_PROTO_MAX_REFER)
			return groma_error(GROMA_ERR_LIMIT, "regions reply over the protocol's limits");
		for (int i = 0; i < r->n_refer_match; i++)
			if (r->refer_match[i] < 0 || r->refer_match[i] >= r->n_regions)
				return groma_error(GROMA_ERR_INVALID_ARGUMENT, "refer match %d names region %d of %d", i,
								   (int) r->refer_match[i], (int) r->n_regions);
	}
	if (r->kind == GROMA_MSG_GENERATE)
	{
		if (!text_fits(r->text) || r->n_groundings < 0 || r->n_groundings > GROMA_PROTO_MAX_GROUNDINGS ||
			r->n_ids < 0 || r->n_ids > GROMA_PROTO_MAX_TOKENS)
			return groma_error(GROMA_ERR_LIMIT, "generate reply over the protocol's limits");
		return check_groundings(r);
	}
	if (r->kind == GROMA_MSG_DRAW && (r->jpeg_len > GROMA_PROTO_MAX_IMAGE || (r->jpeg_len > 0 && r->jpeg == NULL)))
		return groma_error(GROMA_ERR_LIMIT, "a drawn image of %u bytes cannot be sent (limit %u)",
						   (unsigned) r->jpeg_len, (unsigned) GROMA_PROTO_MAX_IMAGE);
	return groma_ok();
}

/* Encodes a reply; see protocol.h. */
groma_status
groma_proto_encode_reply(const groma_reply *r, groma_wbuf *out)
{
	size_t		at;
	bool		has_image = image_kind(r->kind);

	GROMA_TRY(check_reply(r));
	at = begin_frame(out, GROMA_MSG_REPLY, r->id);
	put_uint(out, (uint64_t) r->kind, 2);
	put_u32(out, (uint32_t) r->status.code);
	put_str(out, r->status.message);
	if (r->status.code == GROMA_OK)
	{
		if (r->kind == GROMA_MSG_STATUS)
			put_status_fields(out, r);
		if (has_image)
		{
			put_i32(out, r->width);
			put_i32(out, r->height);
		}
		if (r->kind == GROMA_MSG_REGIONS)
			put_regions_fields(out, r);
		if (r->kind == GROMA_MSG_GENERATE)
			put_generate_fields(out, r);
		if (r->kind == GROMA_MSG_DRAW)
			put_blob(out, r->jpeg, r->jpeg_len);
		if (r->kind == GROMA_MSG_REGIONS || r->kind == GROMA_MSG_GENERATE)
		{
			put_f64(out, r->queue_ms);
			put_f64(out, r->vision_ms);
			for (int k = 0; k < 6; k++)
				put_f64(out, r->stage_ms[k]);
		}
	}
	return end_frame(out, at);
}

/* Decodes the STATUS fields. */
static void
get_status_fields(reader *in, groma_reply *r)
{
	uint32_t	state = get_u32(in, "state");

	if (state > GROMA_SERVER_STOPPING)
		fail_field(in, "state");
	r->state = (groma_server_state) state;
	r->model_path = get_str(in, "model_path");
	r->device = get_str(in, "device");
	r->load_done = get_u64(in, "load_done");
	r->load_total = get_u64(in, "load_total");
	r->queue_depth = get_u32(in, "queue_depth");
	r->running = get_u32(in, "running");
	r->served = get_u64(in, "served");
	r->failed = get_u64(in, "failed");
	r->batch = get_u32(in, "batch");
	r->max_batch = get_u32(in, "max_batch");
	r->kv_used = get_u64(in, "kv_used");
	r->kv_total = get_u64(in, "kv_total");
	r->weights = get_str(in, "weights");
	r->cancelled = get_u64(in, "cancelled");
	r->busy = get_u64(in, "busy");
}

/* Decodes the REGIONS fields. */
static void
get_regions_fields(reader *in, groma_reply *r)
{
	size_t		n;

	r->n_regions = get_count(in, GROMA_PROTO_MAX_REGIONS, "region count");
	r->embed_dim = get_count(in, GROMA_PROTO_MAX_EMBED, "embedding size");
	n = (size_t) r->n_regions;
	/* each region takes 37 + 4 * embed_dim bytes: get_array's checks bound the allocations by the payload */
	r->boxes = get_array(in, 4 * n, sizeof(double), "boxes");
	r->scores = get_array(in, n, sizeof(float), "scores");
	r->is_refer = get_array(in, n, 1, "refer flags");
	r->embeddings = get_array(in, n * (size_t) r->embed_dim, sizeof(float), "embeddings");
	for (size_t i = 0; i < n && !in->bad; i++)
	{
		for (int k = 0; k < 4; k++)
			r->boxes[4 * i + k] = get_f64(in, "box");
		r->scores[i] = get_f32(in, "score");
		r->is_refer[i] = (uint8_t) get_uint(in, 1, "refer flag");
		for (int k = 0; k < r->embed_dim; k++)
			r->embeddings[i * r->embed_dim + k] = get_f32(in, "embedding");
	}
	r->n_refer_match = get_count(in, GROMA_PROTO_MAX_REFER, "refer matches");
	for (int i = 0; i < r->n_refer_match; i++)
	{
		r->refer_match[i] = get_i32(in, "refer match");
		if (r->refer_match[i] < 0 || r->refer_match[i] >= r->n_regions)
			fail_field(in, "refer match");
	}
}

/* Decodes the GENERATE fields. */
static void
get_generate_fields(reader *in, groma_reply *r)
{
	r->n_regions = get_count(in, GROMA_PROTO_MAX_REGIONS, "region count");
	r->text = get_str(in, "text");
	r->n_groundings = get_count(in, GROMA_PROTO_MAX_GROUNDINGS, "grounding count");
	r->groundings = get_array(in, (size_t) r->n_groundings, 16, "groundings");	/* >= 16 bytes each */
	if (r->groundings != NULL)
	{
		groma_reply_grounding *all = calloc((size_t) r->n_groundings + 1, sizeof(groma_reply_grounding));

		free(r->groundings);
		r->groundings = all;
		if (all == NULL)
			fail_field(in, "memory");
	}
	for (int i = 0; i < r->n_groundings && !in->bad; i++)
	{
		groma_reply_grounding *g = &r->groundings[i];

		g->phrase = get_str(in, "phrase");
		g->start = get_i32(in, "start");
		g->stop = get_i32(in, "stop");
		g->n_boxes = get_count(in, GROMA_PROTO_MAX_REGIONS, "box count");
		g->boxes = get_array(in, 4 * (size_t) g->n_boxes, sizeof(double), "grounding boxes");
		for (int k = 0; k < 4 * g->n_boxes && !in->bad; k++)
			g->boxes[k] = get_f64(in, "grounding box");
		if (!in->bad && (g->start < 0 || g->stop < g->start || (size_t) g->stop > strlen(r->text)))
			fail_field(in, "phrase offsets");
	}
	r->n_ids = get_count(in, GROMA_PROTO_MAX_TOKENS, "token count");
	r->ids = get_array(in, (size_t) r->n_ids, sizeof(int32_t), "ids");
	for (int i = 0; i < r->n_ids && !in->bad; i++)
		r->ids[i] = get_i32(in, "id");
	r->hit_eos = get_uint(in, 1, "hit_eos") != 0;
	r->prompt_tokens = get_i32(in, "prompt_tokens");
	r->prefill_ms = get_f64(in, "prefill_ms");
	r->decode_ms = get_f64(in, "decode_ms");
}

/* Decodes a reply; see protocol.h. */
groma_status
groma_proto_decode_reply(const groma_frame_header *h, const uint8_t *payload, size_t len, groma_reply *r)
{
	reader		in = {payload, len, false, NULL};
	uint32_t	kind,
				code;
	char	   *message;

	memset(r, 0, sizeof(*r));
	r->id = h->id;
	if (h->kind != GROMA_MSG_REPLY)
		return groma_error(GROMA_ERR_PROTOCOL, "a request frame where a reply was expected");
	kind = (uint32_t) get_uint(&in, 2, "kind");
	code = get_u32(&in, "status");
	message = get_str(&in, "message");
	r->kind = (groma_msg_kind) kind;
	if (!in.bad && (!answered_kind(kind) || code > GROMA_ERR_PROTOCOL))
		fail_field(&in, "kind or status");
	/* the message travels with successes too (STATUS: why a model failed to load) */
	r->status = groma_error((groma_status_code) code, "%s", message ? message : "");
	free(message);
	if (!in.bad && code == GROMA_OK)
	{
		if (kind == GROMA_MSG_STATUS)
			get_status_fields(&in, r);
		if (image_kind(kind))
		{
			r->width = get_i32(&in, "width");
			r->height = get_i32(&in, "height");
		}
		if (kind == GROMA_MSG_REGIONS)
			get_regions_fields(&in, r);
		if (kind == GROMA_MSG_GENERATE)
			get_generate_fields(&in, r);
		if (kind == GROMA_MSG_DRAW)
			r->jpeg = get_blob(&in, GROMA_PROTO_MAX_IMAGE, &r->jpeg_len, "jpeg");
		if (kind == GROMA_MSG_REGIONS || kind == GROMA_MSG_GENERATE)
		{
			r->queue_ms = get_f64(&in, "queue_ms");
			r->vision_ms = get_f64(&in, "vision_ms");
			for (int k = 0; k < 6; k++)
				r->stage_ms[k] = get_f64(&in, "stage_ms");
		}
	}
	return finish(&in, "reply");
}

/* Frees a reply; see protocol.h. */
void
groma_reply_free(groma_reply *r)
{
	free(r->model_path);
	free(r->device);
	free(r->weights);
	free(r->boxes);
	free(r->scores);
	free(r->is_refer);
	free(r->embeddings);
	free(r->text);
	for (int i = 0; r->groundings && i < r->n_groundings; i++)
	{
		free(r->groundings[i].phrase);
		free(r->groundings[i].boxes);
	}
	free(r->groundings);
	free(r->ids);
	free(r->jpeg);
	memset(r, 0, sizeof(*r));
}

/* Returns a state's name; see protocol.h. */
const char *
groma_server_state_name(groma_server_state s)
{
	switch (s)
	{
		case GROMA_SERVER_STARTING:
			return "starting";
		case GROMA_SERVER_LOADING:
			return "loading";
		case GROMA_SERVER_READY:
			return "ready";
		case GROMA_SERVER_NO_MODEL:
			return "no_model";
		case GROMA_SERVER_FAILED:
			return "failed";
		case GROMA_SERVER_STOPPING:
			return "stopping";
	}
	return "unknown";
}
