/*
 * merge_table.h - tokenizer.json's BPE merges: the pair (left id, right id)
 * to its rank (position in the merges list, lower merges first) and the id
 * of the merged piece; open addressing with linear probing, at most half full.
 */
#ifndef GROMA_MERGE_TABLE_H
#define GROMA_MERGE_TABLE_H

#include <stdbool.h>
#include <stdint.h>

#include "../runtime/status.h"

/* One slot; key is UINT64_MAX when empty. */
typedef struct tok_merge_slot
{
	uint64_t	key;			/* left << 32 | right */
	int32_t		rank;
	int32_t		merged;
} tok_merge_slot;

/* The table; zero-initialised means empty and unbuilt. */
typedef struct tok_merge_table
{
	tok_merge_slot *slots;
	uint32_t	mask;
	int32_t		count;
} tok_merge_table;

/* Allocates room for expected merges; NO_MEMORY or LIMIT on failure (t stays zeroed). */
groma_status tok_merges_init(tok_merge_table *t, int32_t expected);

/*
 * Adds left + right -> merged at rank; returns false without changing the
 * table when the pair is already present or the table is full (callers size
 * it with tok_merges_init).  Ids must be non-negative.
 */
bool		tok_merges_add(tok_merge_table *t, int32_t left, int32_t right, int32_t rank, int32_t merged);

/* Finds a pair: true with *rank and *merged set, or false (also for an unbuilt table). */
bool		tok_merges_find(const tok_merge_table *t, int32_t left, int32_t right,
							int32_t *rank, int32_t *merged);

/* Frees the table and zeroes t; safe on a zeroed table. */
void		tok_merges_free(tok_merge_table *t);

#endif							/* GROMA_MERGE_TABLE_H */
