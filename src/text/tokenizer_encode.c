/*
 * tokenizer_encode.c - text to ids: cut out special texts, normalise each
 * text run (dummy prefix, spaces to "▁"), BPE it, write the ids.
 */
#include <stdlib.h>
#include <string.h>

#include "bpe_encode.h"
#include "tokenizer_internal.h"
#include "utf8.h"

#define SPACE_MARK "\xE2\x96\x81"	/* U+2581 */
#define SPACE_MARK_LEN 3

/* Buffers for one encode call, sized for the whole text. */
typedef struct encode_state
{
	const groma_tokenizer *tok;
	const char *text;
	char	   *normalized;		/* 3 bytes per input byte + the dummy prefix */
	tok_bpe_scratch scratch;
	tok_id_sink sink;
} encode_state;

/* Returns the length of the longest special text at text[at..len), or 0; its id goes to *id. */
static size_t
match_special(const groma_tokenizer *tok, const char *text, size_t at, size_t len, int32_t *id)
{
	uint8_t		c = (uint8_t) text[at];
	size_t		best = 0;

	if ((tok->special_first[c >> 3] & (1u << (c & 7))) == 0)
		return 0;
	for (int32_t i = 0; i < tok->n_specials; i++)
	{
		const tok_special *s = &tok->specials[i];

		if (s->len > best && s->len <= len - at && memcmp(text + at, s->text, s->len) == 0)
		{
			best = s->len;
			*id = s->id;
		}
	}
	return best;
}

/* Normalises the text run [start, end) and appends its pieces to the sink. */
static groma_status
encode_run(encode_state *e, size_t start, size_t end)
{
	const groma_tokenizer *tok = e->tok;
	bool		prefix = tok->add_dummy_prefix && (tok->legacy || start == 0);
	size_t		n = 0;

	if (end == start)
		return groma_ok();
	if (prefix)
	{
		memcpy(e->normalized, SPACE_MARK, SPACE_MARK_LEN);
		n = SPACE_MARK_LEN;
	}
	for (size_t i = start; i < end; i++)
	{
		if (e->text[i] == ' ')
		{
			memcpy(e->normalized + n, SPACE_MARK, SPACE_MARK_LEN);
			n += SPACE_MARK_LEN;
		}
		else
			e->normalized[n++] = e->text[i];
	}
	return tok_bpe_encode(tok, e->normalized, n, &e->scratch, &e->sink);
}

/* Checks the arguments and the text itself; INVALID_ARGUMENT or LIMIT naming the problem. */
static groma_status
check_input(const groma_tokenizer *tok, const char *text, size_t len, bool add_bos,
			const int32_t *ids_out, size_t max_ids, const size_t *n)
{
	size_t		bad;

	if (tok == NULL || n == NULL || (text == NULL && len > 0) || (ids_out == NULL && max_ids > 0))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "tokenizer encode called with a NULL argument");
	if (add_bos && tok->bos_id < 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "the tokenizer has no bos token");
	if (len > GROMA_TOKENIZER_MAX_TEXT)
		return groma_error(GROMA_ERR_LIMIT, "text of %zu bytes is over the %u-byte limit",
						   len, GROMA_TOKENIZER_MAX_TEXT);
	if (len > 0 && memchr(text, '\0', len) != NULL)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "text contains a NUL byte at offset %zu",
						   (size_t) ((const char *) memchr(text, '\0', len) - text));
	bad = len > 0 ? tok_utf8_validate((const uint8_t *) text, len) : 0;
	if (bad < len)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "text is not valid UTF-8 at byte %zu (0x%02X)",
						   bad, (unsigned) (uint8_t) text[bad]);
	return groma_ok();
}

/* Encodes text of len bytes; see tokenizer.h. */
groma_status
groma_tokenizer_encode_len(const groma_tokenizer *tok, const char *text, size_t len, bool add_bos,
						   int32_t *ids_out, size_t max_ids, size_t *n)
{
	encode_state e;
	groma_status st = check_input(tok, text, len, add_bos, ids_out, max_ids, n);
	size_t		run = 0,
				at = 0;

	if (n != NULL)
		*n = 0;
	if (st.code != GROMA_OK)
		return st;
	memset(&e, 0, sizeof(e));
	e.tok = tok;
	e.text = text;
	e.sink.ids = ids_out;
	e.sink.cap = max_ids;
	if (add_bos)
		tok_sink_push(&e.sink, tok->bos_id);
	e.normalized = malloc(3 * len + SPACE_MARK_LEN + 1);
	if (e.normalized == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate %zu bytes to normalise text", 3 * len + 4);
	st = tok_bpe_scratch_reserve(&e.scratch, len + 1);
	while (st.code == GROMA_OK && at < len)
	{
		int32_t		id = -1;
		size_t		m = match_special(tok, text, at, len, &id);

		if (m == 0)
		{
			at++;
			continue;
		}
		st = encode_run(&e, run, at);
		if (st.code == GROMA_OK)
			tok_sink_push(&e.sink, id);
		at += m;
		run = at;
	}
	if (st.code == GROMA_OK)
		st = encode_run(&e, run, len);
	free(e.normalized);
	tok_bpe_scratch_free(&e.scratch);
	if (st.code != GROMA_OK)
		return st;
	*n = e.sink.count;
	if (e.sink.count > max_ids)
		return groma_error(GROMA_ERR_LIMIT, "text needs %zu ids, room for %zu", e.sink.count, max_ids);
	return groma_ok();
}

/* Encodes NUL-terminated text; see tokenizer.h. */
groma_status
groma_tokenizer_encode(const groma_tokenizer *tok, const char *text, bool add_bos,
					   int32_t *ids_out, size_t max_ids, size_t *n)
{
	if (text == NULL)
	{
		if (n != NULL)
			*n = 0;
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "tokenizer encode called with NULL text");
	}
	return groma_tokenizer_encode_len(tok, text, strlen(text), add_bos, ids_out, max_ids, n);
}
