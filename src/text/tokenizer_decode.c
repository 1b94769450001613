/*
 * tokenizer_decode.c - ids to text, as Hugging Face's LLaMA decoder does it
 * ("▁" to space, byte pieces fused into UTF-8, one leading space dropped),
 * except that an invalid byte sequence keeps its valid characters and turns
 * each stray byte into U+FFFD, as SentencePiece does (Hugging Face replaces
 * every byte of such a run).  A NUL byte also becomes U+FFFD, so the text is
 * a proper C string.
 */
#include <string.h>

#include "tokenizer_internal.h"
#include "utf8.h"

#define REPLACEMENT "\xEF\xBF\xBD"	/* U+FFFD */
#define SPACE_MARK "\xE2\x96\x81"	/* U+2581 */

/* The output: bytes are stored while they fit (with room for the NUL) and always counted. */
typedef struct text_sink
{
	char	   *buf;
	size_t		cap;
	size_t		len;
	bool		at_start;		/* nothing written yet: a first space is dropped */
	uint8_t		pending[4];		/* bytes of an unfinished UTF-8 character from byte pieces */
	size_t		npending;
} text_sink;

/* Appends bytes to the sink, dropping a space that would start the text. */
static void
put(text_sink *s, const char *bytes, size_t n)
{
	if (n == 0)
		return;
	if (s->at_start)
	{
		s->at_start = false;
		if (bytes[0] == ' ')
		{
			bytes++;
			n--;
		}
	}
	if (s->len < s->cap && n < s->cap - s->len)
		memcpy(s->buf + s->len, bytes, n);
	s->len += n;
}

/* Writes one U+FFFD per pending byte and clears them. */
static void
flush_bytes(text_sink *s)
{
	for (size_t i = 0; i < s->npending; i++)
		put(s, REPLACEMENT, 3);
	s->npending = 0;
}

/* Adds one byte from a byte piece, writing each character once it is complete. */
static void
feed_byte(text_sink *s, uint8_t b)
{
	s->pending[s->npending++] = b;
	switch (tok_utf8_classify(s->pending, s->npending))
	{
		case TOK_UTF8_COMPLETE:
			if (s->npending == 1 && b == 0)
				put(s, REPLACEMENT, 3);
			else
				put(s, (const char *) s->pending, s->npending);
			s->npending = 0;
			break;
		case TOK_UTF8_INCOMPLETE:
			break;
		case TOK_UTF8_INVALID:
			s->npending--;
			if (s->npending == 0)
			{
				put(s, REPLACEMENT, 3);	/* b cannot start a character */
				break;
			}
			flush_bytes(s);		/* the unfinished character is broken ... */
			feed_byte(s, b);	/* ... and b may start a new one */
			break;
	}
}

/* Writes a piece's text with every "▁" turned into a space. */
static void
put_piece(text_sink *s, const char *text, size_t len)
{
	size_t		from = 0;

	for (size_t i = 0; i + 3 <= len; i++)
	{
		if (memcmp(text + i, SPACE_MARK, 3) != 0)
			continue;
		put(s, text + from, i - from);
		put(s, " ", 1);
		from = i + 3;
		i += 2;
	}
	put(s, text + from, len - from);
}

/* Returns the byte a "<0xNN>" piece stands for (the loader checked the spelling). */
static uint8_t
byte_value(const char *text)
{
	unsigned	v = 0;

	for (int i = 3; i < 5; i++)
		v = v * 16 + (unsigned) (text[i] <= '9' ? text[i] - '0' : text[i] - 'A' + 10);
	return (uint8_t) v;
}

/* Decodes ids into buf; see tokenizer.h. */
groma_status
groma_tokenizer_decode(const groma_tokenizer *tok, const int32_t *ids, size_t n,
					   bool skip_special, char *buf, size_t buflen, size_t *len)
{
	text_sink	s = {.buf = buf, .cap = buflen, .at_start = true};

	if (len != NULL)
		*len = 0;
	if (tok == NULL || len == NULL || (ids == NULL && n > 0) || (buf == NULL && buflen > 0))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "tokenizer decode called with a NULL argument");
	for (size_t i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= tok->vocab.count)
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "id %d at position %zu is outside the vocabulary of %d",
							   ids[i], i, tok->vocab.count);
	for (size_t i = 0; i < n; i++)
	{
		const tok_piece *p = &tok->vocab.pieces[ids[i]];
		const char *text = tok_vocab_text(&tok->vocab, ids[i]);

		if (p->special && skip_special)
			continue;			/* skipped ids do not break a byte sequence */
		if (p->type == TOK_PIECE_BYTE && ids[i] < tok->n_base)
		{
			feed_byte(&s, byte_value(text));
			continue;
		}
		flush_bytes(&s);
		if (ids[i] >= tok->n_base || p->special)
			put(&s, text, p->len);	/* added and control tokens: their text as is */
		else
			put_piece(&s, text, p->len);
	}
	flush_bytes(&s);
	*len = s.len;
	if (s.len >= buflen)
	{
		if (buflen > 0)
			buf[0] = '\0';
		return groma_error(GROMA_ERR_LIMIT, "decoded text needs %zu bytes, buffer has %zu", s.len + 1, buflen);
	}
	buf[s.len] = '\0';
	return groma_ok();
}
