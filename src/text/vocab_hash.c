/*
 * vocab_hash.c - piece text to id: open addressing with linear probing.
 */
#include "vocab_hash.h"

#include <stdlib.h>
#include <string.h>

/* Returns the FNV-1a hash of s[0..len). */
uint32_t
tok_hash_text(const char *s, size_t len)
{
	uint32_t	h = 2166136261u;

	for (size_t i = 0; i < len; i++)
	{
		h ^= (uint8_t) s[i];
		h *= 16777619u;
	}
	return h;
}

/* Returns whether piece id of vocab is spelled exactly s[0..len). */
static int
same_text(const tok_vocab *vocab, int32_t id, const char *s, size_t len)
{
	return vocab->pieces[id].len == len && memcmp(tok_vocab_text(vocab, id), s, len) == 0;
}

/* Builds h over pieces first..end-1; see vocab_hash.h. */
groma_status
tok_hash_build(tok_hash *h, const tok_vocab *vocab, int32_t first, int32_t end)
{
	uint32_t	slots = 16;
	uint32_t	n = end > first ? (uint32_t) (end - first) : 0;

	memset(h, 0, sizeof(*h));
	if (first < 0 || end > vocab->count)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "hash range %d..%d is outside the vocabulary",
						   first, end);
	while (slots / 2 < n)
	{
		if (slots > UINT32_MAX / 4)
			return groma_error(GROMA_ERR_LIMIT, "%u pieces are too many to index", n);
		slots *= 2;
	}
	h->slots = malloc((size_t) slots * sizeof(*h->slots));
	if (h->slots == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate a hash table of %u slots", slots);
	for (uint32_t i = 0; i < slots; i++)
		h->slots[i].id = -1;
	h->mask = slots - 1;
	for (int32_t id = first; id < end; id++)
	{
		const char *text = tok_vocab_text(vocab, id);
		size_t		len = vocab->pieces[id].len;
		uint32_t	hash = tok_hash_text(text, len);
		uint32_t	at = hash & h->mask;

		while (h->slots[at].id >= 0)
		{
			if (h->slots[at].hash == hash && same_text(vocab, h->slots[at].id, text, len))
			{
				int32_t		other = h->slots[at].id;

				tok_hash_free(h);
				return groma_error(GROMA_ERR_FORMAT, "pieces %d and %d are both \"%s\"", other, id, text);
			}
			at = (at + 1) & h->mask;
		}
		h->slots[at].hash = hash;
		h->slots[at].id = id;
		h->used++;
	}
	return groma_ok();
}

/* Returns the id whose text is s[0..len), or -1. */
int32_t
tok_hash_find(const tok_hash *h, const tok_vocab *vocab, const char *s, size_t len)
{
	uint32_t	hash,
				at;

	if (h->slots == NULL)
		return -1;
	hash = tok_hash_text(s, len);
	at = hash & h->mask;
	while (h->slots[at].id >= 0)
	{
		if (h->slots[at].hash == hash && same_text(vocab, h->slots[at].id, s, len))
			return h->slots[at].id;
		at = (at + 1) & h->mask;
	}
	return -1;
}

/* Frees the table and zeroes h; safe on a zeroed table. */
void
tok_hash_free(tok_hash *h)
{
	free(h->slots);
	memset(h, 0, sizeof(*h));
}
