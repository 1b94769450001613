/*
 * sp_model_proto.c - reading SentencePiece's tokenizer.model.
 *
 * The protobuf wire format is decoded by hand: the tokenizer needs only
 * pieces {piece, score, type} and six scalar settings, and protobuf-c would
 * need a schema generated from sentencepiece_model.proto at build time.
 * Every read is bounds-checked against the enclosing message; unknown
 * fields are skipped; groups (wire types 3 and 4, unused by this schema)
 * are refused.
 *
 * Field numbers (sentencepiece_model.proto):
 *   ModelProto      1 pieces (repeated message), 2 trainer_spec, 3 normalizer_spec
 *   SentencePiece   1 piece (string), 2 score (float), 3 type (enum, default NORMAL)
 *   TrainerSpec     3 model_type (default UNIGRAM=1, BPE=2), 24 treat_whitespace_as_suffix,
 *                   35 byte_fallback (default false)
 *   NormalizerSpec  2 precompiled_charsmap, 3 add_dummy_prefix (default true),
 *                   4 remove_extra_whitespaces (default true), 5 escape_whitespaces
 *                   (default true), 6 normalization_rule_tsv
 */
#include "sp_model_proto.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Protobuf wire types. */
#define WIRE_VARINT 0
#define WIRE_FIXED64 1
#define WIRE_BYTES 2
#define WIRE_FIXED32 5

#define MODEL_TYPE_BPE 2

/* A bounded cursor over one message; base is the file start, for error offsets. */
typedef struct pb_reader
{
	const uint8_t *p;
	const uint8_t *end;
	const uint8_t *base;
} pb_reader;

/* The settings read from trainer_spec and normalizer_spec, with the schema's defaults. */
typedef struct sp_settings
{
	uint64_t	model_type;
	bool		byte_fallback;
	bool		whitespace_suffix;
	bool		add_dummy_prefix;
	bool		remove_extra_whitespaces;
	bool		escape_whitespaces;
	bool		custom_normalizer;	/* a charsmap or rule table is present */
} sp_settings;

/* Returns a FORMAT error naming the offset where r stands. */
static groma_status
malformed(const pb_reader *r, const char *what)
{
	return groma_error(GROMA_ERR_FORMAT, "tokenizer.model is malformed at byte %zu: %s",
					   (size_t) (r->p - r->base), what);
}

/* Reads a varint (at most 10 bytes); false when it runs past the message or is too long. */
static bool
pb_varint(pb_reader *r, uint64_t *value)
{
	uint64_t	v = 0;

	for (int shift = 0; shift < 70; shift += 7)
	{
		uint8_t		b;

		if (r->p >= r->end)
			return false;
		b = *r->p++;
		v |= (uint64_t) (b & 0x7F) << shift;
		if ((b & 0x80) == 0)
		{
			*value = v;
			return true;
		}
	}
	return false;
}

/* Reads a field key; false at a malformed key or field number 0. */
static bool
pb_key(pb_reader *r, uint32_t *field, uint32_t *wire)
{
	uint64_t	key;

	if (!pb_varint(r, &key) || (key >> 3) == 0 || (key >> 3) > 0x1FFFFFFF)
		return false;
	*field = (uint32_t) (key >> 3);
	*wire = (uint32_t) (key & 7);
	return true;
}

/* Reads a length-delimited payload into a sub-reader; false when it overruns the message. */
static bool
pb_bytes(pb_reader *r, pb_reader *sub)
{
	uint64_t	len;

	if (!pb_varint(r, &len) || len > (uint64_t) (r->end - r->p))
		return false;
	sub->p = r->p;
	sub->end = r->p + len;
	sub->base = r->base;
	r->p += len;
	return true;
}

/* Reads a little-endian 32-bit value; false when fewer than 4 bytes remain. */
static bool
pb_fixed32(pb_reader *r, uint32_t *value)
{
	if (r->end - r->p < 4)
		return false;
	*value = (uint32_t) r->p[0] | (uint32_t) r->p[1] << 8 | (uint32_t) r->p[2] << 16 |
		(uint32_t) r->p[3] << 24;
	r->p += 4;
	return true;
}

/* Skips one field of the given wire type; false for groups, unknown types or overruns. */
static bool
pb_skip(pb_reader *r, uint32_t wire)
{
	uint64_t	v;
	uint32_t	v32;
	pb_reader	sub;

	switch (wire)
	{
		case WIRE_VARINT:
			return pb_varint(r, &v);
		case WIRE_FIXED64:
			if (r->end - r->p < 8)
				return false;
			r->p += 8;
			return true;
		case WIRE_BYTES:
			return pb_bytes(r, &sub);
		case WIRE_FIXED32:
			return pb_fixed32(r, &v32);
		default:
			return false;
	}
}

/* Reads one SentencePiece message and appends it to vocab. */
static groma_status
parse_piece(pb_reader *r, tok_vocab *vocab)
{
	pb_reader	text = {NULL, NULL, NULL};
	bool		have_text = false;
	float		score = 0.0f;
	uint64_t	type = TOK_PIECE_NORMAL;
	uint32_t	field,
				wire;

	while (r->p < r->end)
	{
		if (!pb_key(r, &field, &wire))
			return malformed(r, "bad field key in a piece");
		if (field == 1 && wire == WIRE_BYTES)
		{
			if (!pb_bytes(r, &text))
				return malformed(r, "piece text overruns its message");
			have_text = true;
		}
		else if (field == 2 && wire == WIRE_FIXED32)
		{
			uint32_t	bits;

			if (!pb_fixed32(r, &bits))
				return malformed(r, "piece score overruns its message");
			memcpy(&score, &bits, sizeof(score));
		}
		else if (field == 3 && wire == WIRE_VARINT)
		{
			if (!pb_varint(r, &type))
				return malformed(r, "bad piece type");
		}
		else if (!pb_skip(r, wire))
			return malformed(r, "cannot skip a field in a piece");
	}
	if (!have_text)
		return groma_error(GROMA_ERR_FORMAT, "tokenizer.model piece %d has no text", vocab->count);
	if (!isfinite(score))
		return groma_error(GROMA_ERR_FORMAT, "tokenizer.model piece %d has a non-finite score",
						   vocab->count);
	if (type < TOK_PIECE_NORMAL || type > TOK_PIECE_BYTE)
		return groma_error(GROMA_ERR_FORMAT, "tokenizer.model piece %d has unknown type %llu",
						   vocab->count, (unsigned long long) type);
	return tok_vocab_add(vocab, (const char *) text.p, (size_t) (text.end - text.p), score,
						 (tok_piece_type) type, NULL);
}

/* Reads the trainer_spec fields groma needs into s; others are skipped. */
static groma_status
parse_trainer(pb_reader *r, sp_settings *s)
{
	uint32_t	field,
				wire;
	uint64_t	v;

	while (r->p < r->end)
	{
		if (!pb_key(r, &field, &wire))
			return malformed(r, "bad field key in trainer_spec");
		if (wire == WIRE_VARINT && (field == 3 || field == 24 || field == 35))
		{
			if (!pb_varint(r, &v))
				return malformed(r, "bad varint in trainer_spec");
			if (field == 3)
				s->model_type = v;
			else if (field == 24)
				s->whitespace_suffix = v != 0;
			else
				s->byte_fallback = v != 0;
		}
		else if (!pb_skip(r, wire))
			return malformed(r, "cannot skip a field in trainer_spec");
	}
	return groma_ok();
}

/* Reads the normalizer_spec fields groma needs into s; others are skipped. */
static groma_status
parse_normalizer(pb_reader *r, sp_settings *s)
{
	uint32_t	field,
				wire;
	uint64_t	v;
	pb_reader	sub;

	while (r->p < r->end)
	{
		if (!pb_key(r, &field, &wire))
			return malformed(r, "bad field key in normalizer_spec");
		if (wire == WIRE_VARINT && field >= 3 && field <= 5)
		{
			if (!pb_varint(r, &v))
				return malformed(r, "bad varint in normalizer_spec");
			if (field == 3)
				s->add_dummy_prefix = v != 0;
			else if (field == 4)
				s->remove_extra_whitespaces = v != 0;
			else
				s->escape_whitespaces = v != 0;
		}
		else if (wire == WIRE_BYTES && (field == 2 || field == 6))
		{
			if (!pb_bytes(r, &sub))
				return malformed(r, "normalizer table overruns its message");
			if (sub.end > sub.p)
				s->custom_normalizer = true;
		}
		else if (!pb_skip(r, wire))
			return malformed(r, "cannot skip a field in normalizer_spec");
	}
	return groma_ok();
}

/* Returns UNSUPPORTED naming the first setting groma cannot encode like SentencePiece. */
static groma_status
check_settings(const sp_settings *s)
{
	if (s->model_type != MODEL_TYPE_BPE)
		return groma_error(GROMA_ERR_UNSUPPORTED, "tokenizer.model is not a BPE model (model_type %llu)",
						   (unsigned long long) s->model_type);
	if (!s->byte_fallback)
		return groma_error(GROMA_ERR_UNSUPPORTED, "tokenizer.model has no byte fallback");
	if (s->whitespace_suffix)
		return groma_error(GROMA_ERR_UNSUPPORTED, "tokenizer.model treats whitespace as a suffix");
	if (s->custom_normalizer)
		return groma_error(GROMA_ERR_UNSUPPORTED, "tokenizer.model has a normalisation table");
	if (s->remove_extra_whitespaces)
		return groma_error(GROMA_ERR_UNSUPPORTED, "tokenizer.model removes extra whitespace");
	if (!s->escape_whitespaces)
		return groma_error(GROMA_ERR_UNSUPPORTED, "tokenizer.model does not escape whitespace");
	return groma_ok();
}

/* Parses a ModelProto; see sp_model_proto.h. */
groma_status
tok_sp_model_parse(const uint8_t *data, size_t size, tok_vocab *vocab, bool *add_dummy_prefix)
{
	pb_reader	r = {data, data + size, data};
	sp_settings s = {
		.model_type = 1,		/* the schema's defaults: UNIGRAM ... */
		.add_dummy_prefix = true,
		.remove_extra_whitespaces = true,
		.escape_whitespaces = true,	/* ... and the normaliser's */
	};
	groma_status st = groma_ok();
	uint32_t	field,
				wire;

	if (vocab->count != 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "tokenizer.model must be read into an empty vocabulary");
	while (r.p < r.end && st.code == GROMA_OK)
	{
		pb_reader	sub;

		if (!pb_key(&r, &field, &wire))
			st = malformed(&r, "bad field key");
		else if (wire == WIRE_BYTES && field >= 1 && field <= 3)
		{
			if (!pb_bytes(&r, &sub))
				st = malformed(&r, "message overruns the file");
			else if (field == 1)
				st = parse_piece(&sub, vocab);
			else if (field == 2)
				st = parse_trainer(&sub, &s);
			else
				st = parse_normalizer(&sub, &s);
		}
		else if (!pb_skip(&r, wire))
			st = malformed(&r, "cannot skip a field");
	}
	if (st.code == GROMA_OK && vocab->count == 0)
		st = groma_error(GROMA_ERR_FORMAT, "tokenizer.model has no pieces");
	if (st.code == GROMA_OK)
		st = check_settings(&s);
	if (st.code != GROMA_OK)
	{
		tok_vocab_free(vocab);
		return st;
	}
	*add_dummy_prefix = s.add_dummy_prefix;
	return groma_ok();
}

/* Reads a whole file into malloc'd memory; IO, LIMIT or NO_MEMORY on failure. */
static groma_status
read_file(const char *path, uint8_t **data, size_t *size)
{
	FILE	   *f = fopen(path, "rb");
	long		len;
	uint8_t    *buf;

	*data = NULL;
	if (f == NULL)
		return groma_error(GROMA_ERR_IO, "cannot open \"%s\": %s", path, strerror(errno));
	if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
	{
		fclose(f);
		return groma_error(GROMA_ERR_IO, "cannot size \"%s\"", path);
	}
	if ((unsigned long) len > TOK_SP_MODEL_MAX_BYTES)
	{
		fclose(f);
		return groma_error(GROMA_ERR_LIMIT, "\"%s\" is larger than %u bytes", path, TOK_SP_MODEL_MAX_BYTES);
	}
	buf = malloc(len > 0 ? (size_t) len : 1);
	if (buf == NULL)
	{
		fclose(f);
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate %ld bytes for \"%s\"", len, path);
	}
	if (fread(buf, 1, (size_t) len, f) != (size_t) len)
	{
		free(buf);
		fclose(f);
		return groma_error(GROMA_ERR_IO, "cannot read \"%s\"", path);
	}
	fclose(f);
	*data = buf;
	*size = (size_t) len;
	return groma_ok();
}

/* Reads and parses tokenizer.model at path; see sp_model_proto.h. */
groma_status
tok_sp_model_load(const char *path, tok_vocab *vocab, bool *add_dummy_prefix)
{
	uint8_t    *data;
	size_t		size = 0;
	groma_status st = read_file(path, &data, &size);

	if (st.code != GROMA_OK)
		return st;
	st = tok_sp_model_parse(data, size, vocab, add_dummy_prefix);
	free(data);
	return st;
}
