/*
 * bpe_encode.c - SentencePiece-style BPE over one normalised text run.
 */
#include "bpe_encode.h"

#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* A binary max-heap of candidate pairs inside scratch. */
typedef struct pair_heap
{
	tok_bpe_pair *items;
	size_t		count;
	size_t		cap;
} pair_heap;

/* Returns whether pair a merges before pair b: better priority, then the leftmost. */
static bool
better(const tok_bpe_pair *a, const tok_bpe_pair *b)
{
	if (a->priority != b->priority)
		return a->priority > b->priority;
	return a->left < b->left;
}

/* Adds a pair to the heap; scratch reserves room for every pair a run can produce. */
static void
heap_push(pair_heap *h, tok_bpe_pair pair)
{
	size_t		i;

	if (h->count >= h->cap)
		return;					/* cannot happen: n - 1 + 2 * (n - 1) < 3n pushes */
	i = h->count++;

	while (i > 0)
	{
		size_t		parent = (i - 1) / 2;

		if (!better(&pair, &h->items[parent]))
			break;
		h->items[i] = h->items[parent];
		i = parent;
	}
	h->items[i] = pair;
}

/* Removes and returns the best pair (the heap must not be empty). */
static tok_bpe_pair
heap_pop(pair_heap *h)
{
	tok_bpe_pair top = h->items[0];
	tok_bpe_pair last = h->items[--h->count];
	size_t		i = 0;

	for (;;)
	{
		size_t		child = 2 * i + 1;

		if (child >= h->count)
			break;
		if (child + 1 < h->count && better(&h->items[child + 1], &h->items[child]))
			child++;
		if (!better(&h->items[child], &last))
			break;
		h->items[i] = h->items[child];
		i = child;
	}
	if (h->count > 0)
		h->items[i] = last;
	return top;
}

/* Returns the id of a base NORMAL piece spelled s[0..len), or -1. */
static int32_t
normal_piece(const groma_tokenizer *tok, const char *s, size_t len)
{
	int32_t		id = tok_hash_find(&tok->base_lookup, &tok->vocab, s, len);

	return id >= 0 && tok->vocab.pieces[id].type == TOK_PIECE_NORMAL ? id : -1;
}

/* Queues the merge of symbols left and right when the vocabulary (or merge list) has it. */
static void
consider(const groma_tokenizer *tok, const char *text, const tok_bpe_symbol *symbols,
		 int32_t left, int32_t right, pair_heap *heap)
{
	const tok_bpe_symbol *l,
			   *r;
	tok_bpe_pair pair;

	if (left < 0 || right < 0)
		return;
	l = &symbols[left];
	r = &symbols[right];
	pair.left = left;
	pair.right = right;
	pair.len = l->len + r->len;
	if (tok->source == GROMA_TOKENIZER_HF_JSON)
	{
		int32_t		rank;

		if (!tok_merges_find(&tok->merges, l->id, r->id, &rank, &pair.merged))
			return;
		pair.priority = -(double) rank;
	}
	else
	{
		pair.merged = normal_piece(tok, text + l->start, (size_t) pair.len);
		if (pair.merged < 0)
			return;
		pair.priority = tok->vocab.pieces[pair.merged].score;
	}
	heap_push(heap, pair);
}

/* Makes scratch hold runs of up to chars characters; see bpe_encode.h. */
groma_status
tok_bpe_scratch_reserve(tok_bpe_scratch *scratch, size_t chars)
{
	tok_bpe_symbol *symbols;
	tok_bpe_pair *heap;

	if (chars <= scratch->capacity)
		return groma_ok();
	if (chars > INT32_MAX / 3)
		return groma_error(GROMA_ERR_LIMIT, "a text run of %zu characters is too long", chars);
	symbols = realloc(scratch->symbols, chars * sizeof(*symbols));
	if (symbols == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate BPE symbols for %zu characters", chars);
	scratch->symbols = symbols;
	/* n - 1 initial pairs plus at most two new ones per merge (n - 1 merges) */
	heap = realloc(scratch->heap, 3 * chars * sizeof(*heap));
	if (heap == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate a BPE heap for %zu characters", chars);
	scratch->heap = heap;
	scratch->capacity = chars;
	return groma_ok();
}

/* Frees the buffers and zeroes scratch; safe on a zeroed scratch. */
void
tok_bpe_scratch_free(tok_bpe_scratch *scratch)
{
	free(scratch->symbols);
	free(scratch->heap);
	memset(scratch, 0, sizeof(*scratch));
}

/* Splits text into one symbol per character; returns the count, or -1 when scratch is too small. */
static int32_t
split_chars(const groma_tokenizer *tok, const char *text, size_t len, tok_bpe_scratch *scratch)
{
	int32_t		n = 0;
	size_t		at = 0;

	while (at < len)
	{
		size_t		clen = tok_utf8_char_len((const uint8_t *) text + at, len - at);
		tok_bpe_symbol *s;

		if (clen == 0)
			clen = 1;			/* cannot happen for validated text; stay safe */
		if ((size_t) n >= scratch->capacity)
			return -1;
		s = &scratch->symbols[n];
		s->start = (int32_t) at;
		s->len = (int32_t) clen;
		s->prev = n - 1;
		s->next = n + 1;
		s->id = normal_piece(tok, text + at, clen);
		at += clen;
		n++;
	}
	if (n > 0)
		scratch->symbols[n - 1].next = -1;
	return n;
}

/* Appends the ids of the final symbols to sink, byte pieces for symbols that are not pieces. */
static void
emit_symbols(const groma_tokenizer *tok, const char *text, const tok_bpe_symbol *symbols,
			 tok_id_sink *sink)
{
	for (int32_t i = 0; i >= 0; i = symbols[i].next)
	{
		const tok_bpe_symbol *s = &symbols[i];

		if (s->id >= 0)
			tok_sink_push(sink, s->id);
		else
			for (int32_t b = 0; b < s->len; b++)
				tok_sink_push(sink, tok->byte_ids[(uint8_t) text[s->start + b]]);
	}
}

/* Splits one normalised run into pieces; see bpe_encode.h. */
groma_status
tok_bpe_encode(const groma_tokenizer *tok, const char *text, size_t len,
			   tok_bpe_scratch *scratch, tok_id_sink *sink)
{
	pair_heap	heap;
	tok_bpe_symbol *sym = scratch->symbols;
	int32_t		n;

	if (len == 0)
		return groma_ok();
	if (len > INT32_MAX)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "text run of %zu bytes is too long", len);
	n = split_chars(tok, text, len, scratch);
	if (n < 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "BPE scratch holds %zu characters, run needs more",
						   scratch->capacity);
	heap.items = scratch->heap;
	heap.count = 0;
	heap.cap = 3 * scratch->capacity;
	for (int32_t i = 0; i + 1 < n; i++)
		consider(tok, text, sym, i, i + 1, &heap);
	while (heap.count > 0)
	{
		tok_bpe_pair top = heap_pop(&heap);
		tok_bpe_symbol *l = &sym[top.left];
		tok_bpe_symbol *r = &sym[top.right];

		/* stale: a side was merged away or grew since this pair was queued */
		if (l->len == 0 || r->len == 0 || l->next != top.right || l->len + r->len != top.len)
			continue;
		l->len += r->len;
		l->id = top.merged;
		l->next = r->next;
		if (r->next >= 0)
			sym[r->next].prev = top.left;
		r->len = 0;
		consider(tok, text, sym, l->prev, top.left, &heap);
		consider(tok, text, sym, top.left, l->next, &heap);
	}
	emit_symbols(tok, text, sym, sink);
	return groma_ok();
}
