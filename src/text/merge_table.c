/*
 * merge_table.c - (left id, right id) -> merge rank and merged id.
 */
#include "merge_table.h"

#include <stdlib.h>
#include <string.h>

#define EMPTY_KEY UINT64_MAX

/* Returns a well-mixed slot hash of key (the splitmix64 finaliser). */
static uint32_t
mix(uint64_t key)
{
	key ^= key >> 30;
	key *= 0xbf58476d1ce4e5b9ULL;
	key ^= key >> 27;
	key *= 0x94d049bb133111ebULL;
	key ^= key >> 31;
	return (uint32_t) key;
}

/* Allocates room for expected merges; see merge_table.h. */
groma_status
tok_merges_init(tok_merge_table *t, int32_t expected)
{
	uint32_t	slots = 16;

	memset(t, 0, sizeof(*t));
	if (expected < 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "negative merge count %d", expected);
	while (slots / 2 < (uint32_t) expected)
	{
		if (slots > UINT32_MAX / 4)
			return groma_error(GROMA_ERR_LIMIT, "%d merges are too many to index", expected);
		slots *= 2;
	}
	t->slots = malloc((size_t) slots * sizeof(*t->slots));
	if (t->slots == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate a merge table of %u slots", slots);
	for (uint32_t i = 0; i < slots; i++)
		t->slots[i].key = EMPTY_KEY;
	t->mask = slots - 1;
	return groma_ok();
}

/* Adds a pair unless present or the table is full; see merge_table.h. */
bool
tok_merges_add(tok_merge_table *t, int32_t left, int32_t right, int32_t rank, int32_t merged)
{
	uint64_t	key = (uint64_t) (uint32_t) left << 32 | (uint32_t) right;
	uint32_t	at;

	if (t->slots == NULL || left < 0 || right < 0 || (uint32_t) t->count >= t->mask / 2 + 1)
		return false;
	at = mix(key) & t->mask;
	while (t->slots[at].key != EMPTY_KEY)
	{
		if (t->slots[at].key == key)
			return false;
		at = (at + 1) & t->mask;
	}
	t->slots[at].key = key;
	t->slots[at].rank = rank;
	t->slots[at].merged = merged;
	t->count++;
	return true;
}

/* Finds a pair; see merge_table.h. */
bool
tok_merges_find(const tok_merge_table *t, int32_t left, int32_t right, int32_t *rank, int32_t *merged)
{
	uint64_t	key = (uint64_t) (uint32_t) left << 32 | (uint32_t) right;
	uint32_t	at;

	if (t->slots == NULL || left < 0 || right < 0)
		return false;
	at = mix(key) & t->mask;
	while (t->slots[at].key != EMPTY_KEY)
	{
		if (t->slots[at].key == key)
		{
			*rank = t->slots[at].rank;
			*merged = t->slots[at].merged;
			return true;
		}
		at = (at + 1) & t->mask;
	}
	return false;
}

/* Frees the table and zeroes t; safe on a zeroed table. */
void
tok_merges_free(tok_merge_table *t)
{
	free(t->slots);
	memset(t, 0, sizeof(*t));
}
