/*
 * vocab_hash.h - piece text to id: an open-addressing hash table (linear
 * probing, at most half full) over a tok_vocab, written here because the
 * tokenizer looks up every candidate merge and a lookup must stay cheap.
 */
#ifndef GROMA_VOCAB_HASH_H
#define GROMA_VOCAB_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/status.h"
#include "vocab_list.h"

/* One slot: the text's hash and the piece id, or id -1 when empty. */
typedef struct tok_hash_slot
{
	uint32_t	hash;
	int32_t		id;
} tok_hash_slot;

/* A table over some ids of one vocabulary; the keys are the vocabulary's texts. */
typedef struct tok_hash
{
	tok_hash_slot *slots;
	uint32_t	mask;			/* slot count - 1 (a power of two) */
	uint32_t	used;
} tok_hash;

/* Returns the hash used for the text s[0..len) (FNV-1a, 32 bits). */
uint32_t	tok_hash_text(const char *s, size_t len);

/*
 * Builds h over the pieces first..end-1 of vocab; FORMAT naming both ids when
 * two texts are equal, NO_MEMORY when the table cannot be allocated.  h is
 * zeroed on failure.
 */
groma_status tok_hash_build(tok_hash *h, const tok_vocab *vocab, int32_t first, int32_t end);

/* Returns the id whose text is s[0..len), or -1 (also for an empty or unbuilt table). */
int32_t		tok_hash_find(const tok_hash *h, const tok_vocab *vocab, const char *s, size_t len);

/* Frees the table and zeroes h; safe on a zeroed table. */
void		tok_hash_free(tok_hash *h);

#endif							/* GROMA_VOCAB_HASH_H */
