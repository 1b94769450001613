/*
 * vocab_list.c - the tokenizer's pieces in id order with their texts in one pool.
 */
#include "vocab_list.h"

#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* Grows vocab so one more piece of len bytes fits; NO_MEMORY or LIMIT on failure. */
static groma_status
reserve(tok_vocab *vocab, size_t len)
{
	if (vocab->count == vocab->cap)
	{
		int32_t		cap = 1024;
		tok_piece  *grown;

		if (vocab->cap > INT32_MAX / 2)
			return groma_error(GROMA_ERR_LIMIT, "a vocabulary may hold at most %d pieces", INT32_MAX / 2);
		if (vocab->cap > 0)
			cap = vocab->cap * 2;
		grown = realloc(vocab->pieces, (size_t) cap * sizeof(*grown));
		if (grown == NULL)
			return groma_error(GROMA_ERR_NO_MEMORY, "cannot grow the vocabulary to %d pieces", cap);
		vocab->pieces = grown;
		vocab->cap = cap;
	}
	if (vocab->pool_cap - vocab->pool_len < len + 1)
	{
		size_t		cap = vocab->pool_cap ? vocab->pool_cap : 64 * 1024;
		char	   *grown;

		while (cap - vocab->pool_len < len + 1)
		{
			if (cap > UINT32_MAX / 2)
				return groma_error(GROMA_ERR_LIMIT, "vocabulary texts exceed 2 GiB");
			cap *= 2;
		}
		grown = realloc(vocab->pool, cap);
		if (grown == NULL)
			return groma_error(GROMA_ERR_NO_MEMORY, "cannot grow the vocabulary pool to %zu bytes", cap);
		vocab->pool = grown;
		vocab->pool_cap = cap;
	}
	return groma_ok();
}

/* Appends a piece after checking its text; see vocab_list.h. */
groma_status
tok_vocab_add(tok_vocab *vocab, const char *text, size_t len, float score,
			  tok_piece_type type, int32_t *id)
{
	tok_piece  *piece;
	groma_status st;

	if (len == 0 || len > TOK_MAX_PIECE_BYTES)
		return groma_error(GROMA_ERR_FORMAT, "piece %d has a bad length %zu", vocab->count, len);
	if (memchr(text, '\0', len) != NULL)
		return groma_error(GROMA_ERR_FORMAT, "piece %d contains a NUL byte", vocab->count);
	if (tok_utf8_validate((const uint8_t *) text, len) != len)
		return groma_error(GROMA_ERR_FORMAT, "piece %d is not valid UTF-8", vocab->count);
	st = reserve(vocab, len);
	if (st.code != GROMA_OK)
		return st;
	piece = &vocab->pieces[vocab->count];
	piece->offset = (uint32_t) vocab->pool_len;
	piece->len = (uint32_t) len;
	piece->score = score;
	piece->type = (uint8_t) type;
	piece->special = type == TOK_PIECE_CONTROL || type == TOK_PIECE_UNKNOWN;
	memcpy(vocab->pool + vocab->pool_len, text, len);
	vocab->pool[vocab->pool_len + len] = '\0';
	vocab->pool_len += len + 1;
	if (id)
		*id = vocab->count;
	vocab->count++;
	return groma_ok();
}

/* Frees the lists and zeroes vocab; safe on a zeroed vocab. */
void
tok_vocab_free(tok_vocab *vocab)
{
	free(vocab->pieces);
	free(vocab->pool);
	memset(vocab, 0, sizeof(*vocab));
}
