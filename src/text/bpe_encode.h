/*
 * bpe_encode.h - SentencePiece-style BPE over one normalised text run.
 *
 * The run starts as one symbol per UTF-8 character.  Repeatedly, the
 * adjacent pair whose merge is best is merged: by the merged piece's score
 * when encoding from tokenizer.model (SentencePiece), by the lowest merge
 * rank when encoding from tokenizer.json (Hugging Face); ties go to the
 * leftmost pair.  Candidate pairs sit in a binary heap and stale ones are
 * dropped when popped, so a run of n characters costs O(n log n) whatever
 * its spaces.  Only NORMAL pieces take part: a character that is not one,
 * and any symbol left that is not one, becomes <0xNN> byte pieces.
 */
#ifndef GROMA_BPE_ENCODE_H
#define GROMA_BPE_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer_internal.h"

/* One symbol of the run: a byte range of the text, linked to its live neighbours. */
typedef struct tok_bpe_symbol
{
	int32_t		start;
	int32_t		len;			/* 0 once merged into its left neighbour */
	int32_t		prev;			/* -1 at the ends */
	int32_t		next;
	int32_t		id;				/* piece id, or -1 when the symbol is not a piece */
} tok_bpe_symbol;

/* A candidate merge of symbols left and right into merged, len bytes long in all. */
typedef struct tok_bpe_pair
{
	double		priority;		/* higher merges first: score, or -rank */
	int32_t		left;
	int32_t		right;
	int32_t		merged;
	int32_t		len;
} tok_bpe_pair;

/* Working memory reused across the runs of one encode call; zero-initialise. */
typedef struct tok_bpe_scratch
{
	tok_bpe_symbol *symbols;
	tok_bpe_pair *heap;
	size_t		capacity;		/* characters the buffers hold */
} tok_bpe_scratch;

/* Makes scratch hold runs of up to chars characters; NO_MEMORY or LIMIT on failure. */
groma_status tok_bpe_scratch_reserve(tok_bpe_scratch *scratch, size_t chars);

/* Frees the buffers and zeroes scratch; safe on a zeroed scratch. */
void		tok_bpe_scratch_free(tok_bpe_scratch *scratch);

/*
 * Splits text[0..len) (valid UTF-8, already normalised) into pieces and
 * appends their ids to sink.  scratch must hold len characters.
 * INVALID_ARGUMENT when it does not or len exceeds INT32_MAX.
 */
groma_status tok_bpe_encode(const groma_tokenizer *tok, const char *text, size_t len,
							tok_bpe_scratch *scratch, tok_id_sink *sink);

#endif							/* GROMA_BPE_ENCODE_H */
