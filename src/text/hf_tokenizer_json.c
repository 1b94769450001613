/*
 * hf_tokenizer_json.c - reading Hugging Face's tokenizer.json (LLaMA BPE).
 */
#include "hf_tokenizer_json.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vocab_hash.h"

#define SPACE_MARK "\xE2\x96\x81"	/* U+2581, SentencePiece's escaped space */

/* Returns whether json is a string equal to text. */
static bool
is_string(const json_t *json, const char *text)
{
	return json_is_string(json) && strcmp(json_string_value(json), text) == 0;
}

/* Returns whether a Replace normaliser's pattern is the plain string pattern. */
static bool
replace_pattern_is(const json_t *pattern, const char *text)
{
	return json_is_object(pattern) && is_string(json_object_get(pattern, "String"), text);
}

/*
 * Checks that normalizer is LLaMA's: a Sequence of an optional Prepend "▁"
 * and a Replace of " " by "▁".  Sets *dummy_prefix when the Prepend is
 * there; UNSUPPORTED for anything else.
 */
static groma_status
check_normalizer(const json_t *normalizer, bool *dummy_prefix)
{
	const json_t *steps;
	size_t		n,
				i = 0;

	*dummy_prefix = false;
	if (json_is_object(normalizer) && is_string(json_object_get(normalizer, "type"), "Sequence"))
		steps = json_object_get(normalizer, "normalizers");
	else
		steps = NULL;
	n = json_is_array(steps) ? json_array_size(steps) : 0;
	if (n == 2)
	{
		const json_t *first = json_array_get(steps, 0);

		if (!is_string(json_object_get(first, "type"), "Prepend") ||
			!is_string(json_object_get(first, "prepend"), SPACE_MARK))
			return groma_error(GROMA_ERR_UNSUPPORTED, "tokenizer.json normaliser does not prepend \"▁\"");
		*dummy_prefix = true;
		i = 1;
	}
	else if (n != 1)
		return groma_error(GROMA_ERR_UNSUPPORTED,
						   "tokenizer.json normaliser is not LLaMA's Prepend + Replace sequence");
	{
		const json_t *last = json_array_get(steps, i);

		if (!is_string(json_object_get(last, "type"), "Replace") ||
			!replace_pattern_is(json_object_get(last, "pattern"), " ") ||
			!is_string(json_object_get(last, "content"), SPACE_MARK))
			return groma_error(GROMA_ERR_UNSUPPORTED, "tokenizer.json normaliser does not replace spaces by \"▁\"");
	}
	return groma_ok();
}

/* Checks model's type and options; UNSUPPORTED or FORMAT naming the first problem. */
static groma_status
check_model(const json_t *root, const json_t *model)
{
	const json_t *pre = json_object_get(root, "pre_tokenizer");

	if (!json_is_object(model))
		return groma_error(GROMA_ERR_FORMAT, "tokenizer.json has no model object");
	if (!is_string(json_object_get(model, "type"), "BPE"))
		return groma_error(GROMA_ERR_UNSUPPORTED, "tokenizer.json model is not BPE");
	if (!json_is_true(json_object_get(model, "byte_fallback")))
		return groma_error(GROMA_ERR_UNSUPPORTED, "tokenizer.json model has no byte fallback");
	if (pre != NULL && !json_is_null(pre))
		return groma_error(GROMA_ERR_UNSUPPORTED, "tokenizer.json has a pre-tokeniser");
	if (json_object_get(model, "dropout") != NULL && !json_is_null(json_object_get(model, "dropout")))
		return groma_error(GROMA_ERR_UNSUPPORTED, "tokenizer.json model uses BPE dropout");
	if (!json_is_object(json_object_get(model, "vocab")) || !json_is_array(json_object_get(model, "merges")))
		return groma_error(GROMA_ERR_FORMAT, "tokenizer.json model lacks vocab or merges");
	return groma_ok();
}

/* Returns whether text is exactly "<0xNN>" with upper-case hex digits. */
static bool
is_byte_piece(const char *text)
{
	static const char hex[] = "0123456789ABCDEF";

	return strlen(text) == 6 && strncmp(text, "<0x", 3) == 0 && text[5] == '>' &&
		text[3] != '\0' && strchr(hex, text[3]) != NULL && text[4] != '\0' && strchr(hex, text[4]) != NULL;
}

/*
 * Fills texts[0..n) from the vocab object so texts[id] is the piece with that
 * id; FORMAT when an id is not an integer in 0..n-1 or appears twice.
 */
static groma_status
order_vocab(const json_t *vocab_obj, const char **texts, size_t n)
{
	const char *key;
	json_t	   *value;

	json_object_foreach((json_t *) vocab_obj, key, value)
	{
		json_int_t	id = json_is_integer(value) ? json_integer_value(value) : -1;

		if (id < 0 || (size_t) id >= n)
			return groma_error(GROMA_ERR_FORMAT, "tokenizer.json piece \"%s\" has a bad id", key);
		if (texts[id] != NULL)
			return groma_error(GROMA_ERR_FORMAT, "tokenizer.json has two pieces with id %lld",
							   (long long) id);
		texts[id] = key;
	}
	return groma_ok();
}

/* Returns the type tokenizer.json's added_tokens give piece id, or 0 when it lists none. */
static tok_piece_type
added_type(const json_t *added, const char *unk, int32_t id, const char *text, groma_status *st)
{
	size_t		i;
	json_t	   *entry;

	json_array_foreach(added, i, entry)
	{
		json_t	   *eid = json_object_get(entry, "id");

		if (!json_is_integer(eid) || json_integer_value(eid) != id)
			continue;
		if (!is_string(json_object_get(entry, "content"), text))
		{
			*st = groma_error(GROMA_ERR_FORMAT, "tokenizer.json added token %d is not \"%s\"", id, text);
			return 0;
		}
		if (unk != NULL && strcmp(unk, text) == 0)
			return TOK_PIECE_UNKNOWN;
		return json_is_true(json_object_get(entry, "special")) ? TOK_PIECE_CONTROL : TOK_PIECE_USER_DEFINED;
	}
	return 0;
}

/* Appends the pieces of model.vocab to vocab in id order, with derived types. */
static groma_status
read_vocab(const json_t *root, const json_t *model, tok_vocab *vocab)
{
	const json_t *vocab_obj = json_object_get(model, "vocab");
	const json_t *added = json_object_get(root, "added_tokens");
	const char *unk = json_string_value(json_object_get(model, "unk_token"));
	size_t		n = json_object_size(vocab_obj);
	const char **texts;
	groma_status st;

	if (n == 0 || n > INT32_MAX / 2)
		return groma_error(GROMA_ERR_FORMAT, "tokenizer.json has %zu pieces", n);
	texts = calloc(n, sizeof(*texts));
	if (texts == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate %zu piece slots", n);
	st = order_vocab(vocab_obj, texts, n);
	for (size_t id = 0; id < n && st.code == GROMA_OK; id++)
	{
		tok_piece_type type = 0;

		if (json_is_array(added))
			type = added_type(added, unk, (int32_t) id, texts[id], &st);
		if (st.code != GROMA_OK)
			break;
		if (type == 0)
			type = is_byte_piece(texts[id]) ? TOK_PIECE_BYTE : TOK_PIECE_NORMAL;
		st = tok_vocab_add(vocab, texts[id], strlen(texts[id]), 0.0f, type, NULL);
	}
	free(texts);
	return st;
}

/* Splits merge entry i ("left right" or ["left", "right"]) into two texts copied to buf. */
static groma_status
merge_parts(const json_t *entry, size_t i, char *buf, size_t buflen, const char **left, const char **right)
{
	if (json_is_string(entry))
	{
		const char *s = json_string_value(entry);
		const char *space = strchr(s, ' ');
		size_t		len = strlen(s);

		if (space == NULL || strchr(space + 1, ' ') != NULL || len + 1 > buflen)
			return groma_error(GROMA_ERR_FORMAT, "tokenizer.json merge %zu is not two pieces", i);
		memcpy(buf, s, len + 1);
		buf[space - s] = '\0';
		*left = buf;
		*right = buf + (space - s) + 1;
		return groma_ok();
	}
	if (json_is_array(entry) && json_array_size(entry) == 2 &&
		json_is_string(json_array_get(entry, 0)) && json_is_string(json_array_get(entry, 1)))
	{
		*left = json_string_value(json_array_get(entry, 0));
		*right = json_string_value(json_array_get(entry, 1));
		return groma_ok();
	}
	return groma_error(GROMA_ERR_FORMAT, "tokenizer.json merge %zu is not two pieces", i);
}

/* Resolves model.merges against vocab into merges, rank = position in the list. */
static groma_status
read_merges(const json_t *model, const tok_vocab *vocab, tok_merge_table *merges)
{
	const json_t *list = json_object_get(model, "merges");
	size_t		n = json_array_size(list);
	tok_hash	lookup;
	groma_status st;
	char		split[2 * TOK_MAX_PIECE_BYTES + 2];
	char		joined[2 * TOK_MAX_PIECE_BYTES + 1];

	if (n > INT32_MAX / 4)
		return groma_error(GROMA_ERR_FORMAT, "tokenizer.json has %zu merges", n);
	st = tok_hash_build(&lookup, vocab, 0, vocab->count);
	if (st.code == GROMA_OK)
		st = tok_merges_init(merges, (int32_t) n);
	for (size_t i = 0; i < n && st.code == GROMA_OK; i++)
	{
		const char *left = NULL,
				   *right = NULL;
		int32_t		a,
					b,
					ab;
		size_t		la,
					lb;

		st = merge_parts(json_array_get(list, i), i, split, sizeof(split), &left, &right);
		if (st.code != GROMA_OK)
			break;
		la = strlen(left);
		lb = strlen(right);
		a = tok_hash_find(&lookup, vocab, left, la);
		b = tok_hash_find(&lookup, vocab, right, lb);
		if (a < 0 || b < 0 || la + lb > sizeof(joined) - 1)
		{
			st = groma_error(GROMA_ERR_FORMAT, "tokenizer.json merge %zu names an unknown piece", i);
			break;
		}
		memcpy(joined, left, la);
		memcpy(joined + la, right, lb);
		ab = tok_hash_find(&lookup, vocab, joined, la + lb);
		if (ab < 0)
			st = groma_error(GROMA_ERR_FORMAT, "tokenizer.json merge %zu makes a piece not in the vocabulary", i);
		else if (!tok_merges_add(merges, a, b, (int32_t) i, ab))
			st = groma_error(GROMA_ERR_FORMAT, "tokenizer.json merge %zu repeats an earlier pair", i);
	}
	tok_hash_free(&lookup);
	return st;
}

/* Reads tokenizer.json; see hf_tokenizer_json.h. */
groma_status
tok_hf_json_load(const char *path, tok_vocab *vocab, tok_merge_table *merges, bool *add_dummy_prefix)
{
	json_error_t jerr;
	json_t	   *root = json_load_file(path, 0, &jerr);
	const json_t *model;
	groma_status st;

	if (root == NULL)
		return groma_error(GROMA_ERR_FORMAT, "cannot parse \"%s\": %s (line %d)", path, jerr.text, jerr.line);
	model = json_object_get(root, "model");
	st = check_model(root, model);
	if (st.code == GROMA_OK)
		st = check_normalizer(json_object_get(root, "normalizer"), add_dummy_prefix);
	if (st.code == GROMA_OK)
		st = read_vocab(root, model, vocab);
	if (st.code == GROMA_OK)
		st = read_merges(model, vocab, merges);
	json_decref(root);
	if (st.code != GROMA_OK)
	{
		tok_vocab_free(vocab);
		tok_merges_free(merges);
	}
	return st;
}
