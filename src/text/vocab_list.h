/*
 * vocab_list.h - the tokenizer's pieces in id order, their texts stored
 * NUL-terminated in one growing pool.
 */
#ifndef GROMA_VOCAB_LIST_H
#define GROMA_VOCAB_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../runtime/status.h"

/* Longest piece text accepted, in bytes (LLaMA's longest is 16 characters). */
#define TOK_MAX_PIECE_BYTES 1024

/* Piece types, numbered as SentencePiece's ModelProto numbers them. */
typedef enum tok_piece_type
{
	TOK_PIECE_NORMAL = 1,
	TOK_PIECE_UNKNOWN = 2,		/* <unk> */
	TOK_PIECE_CONTROL = 3,		/* <s>, </s> */
	TOK_PIECE_USER_DEFINED = 4,
	TOK_PIECE_UNUSED = 5,
	TOK_PIECE_BYTE = 6			/* <0x00> .. <0xFF> */
} tok_piece_type;

/* One piece: where its text is in the pool, its score and its type. */
typedef struct tok_piece
{
	uint32_t	offset;			/* into tok_vocab.pool */
	uint32_t	len;			/* bytes, without the NUL */
	float		score;			/* SentencePiece score (0 from tokenizer.json) */
	uint8_t		type;			/* tok_piece_type */
	bool		special;		/* skipped by decode's skip_special */
} tok_piece;

/* A growable piece list; zero-initialise before the first tok_vocab_add. */
typedef struct tok_vocab
{
	tok_piece  *pieces;
	int32_t		count;
	int32_t		cap;
	char	   *pool;
	size_t		pool_len;
	size_t		pool_cap;
} tok_vocab;

/*
 * Appends a piece and returns its id in *id (may be NULL).  FORMAT when text
 * is empty, longer than TOK_MAX_PIECE_BYTES, holds a NUL or is not valid
 * UTF-8; NO_MEMORY when the list cannot grow; LIMIT past INT32_MAX pieces.
 */
groma_status tok_vocab_add(tok_vocab *vocab, const char *text, size_t len, float score,
						   tok_piece_type type, int32_t *id);

/* Returns the NUL-terminated text of piece id (id must be in range). */
static inline const char *
tok_vocab_text(const tok_vocab *vocab, int32_t id)
{
	return vocab->pool + vocab->pieces[id].offset;
}

/* Frees the lists and zeroes vocab; safe on a zeroed vocab. */
void		tok_vocab_free(tok_vocab *vocab);

#endif							/* GROMA_VOCAB_LIST_H */
