/*
 * tokenizer_config.c - the small JSON files beside the vocabulary:
 * added_tokens.json (the added tokens and their ids), tokenizer_config.json
 * ("legacy", "add_bos_token", and added_tokens_decoder, which must agree
 * with the vocabulary) and special_tokens_map.json (bos/eos/unk/pad).
 * Each file is optional; without it the LLaMA defaults hold.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokenizer_internal.h"

/* One entry of added_tokens.json. */
typedef struct added_entry
{
	const char *text;
	json_int_t	id;
} added_entry;

/*
 * Opens dir/name as JSON (jansson decode flags) into *root; *root is NULL
 * (and the status ok) when the file does not exist.
 */
static groma_status
load_optional(const char *dir, const char *name, size_t flags, json_t **root)
{
	char		path[4096];
	json_error_t jerr;
	int			n = snprintf(path, sizeof(path), "%s/%s", dir, name);

	*root = NULL;
	if (n < 0 || (size_t) n >= sizeof(path))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "tokenizer directory path is too long");
	if (access(path, F_OK) != 0 && errno == ENOENT)
		return groma_ok();
	*root = json_load_file(path, flags, &jerr);
	if (*root == NULL)
		return groma_error(GROMA_ERR_FORMAT, "cannot parse \"%s\": %s (line %d)", path, jerr.text, jerr.line);
	if (!json_is_object(*root))
	{
		json_decref(*root);
		*root = NULL;
		return groma_error(GROMA_ERR_FORMAT, "\"%s\" is not a JSON object", path);
	}
	return groma_ok();
}

/* Orders added entries by id, for qsort. */
static int
by_id(const void *a, const void *b)
{
	json_int_t	x = ((const added_entry *) a)->id,
				y = ((const added_entry *) b)->id;

	return (x > y) - (x < y);
}

/* Appends added_tokens.json's tokens to tok->vocab; their ids must run on from the base vocabulary. */
static groma_status
load_added_tokens(const char *dir, groma_tokenizer *tok)
{
	json_t	   *root;
	groma_status st = load_optional(dir, "added_tokens.json", 0, &root);
	size_t		n,
				i = 0;
	added_entry *entries;
	const char *key;
	json_t	   *value;

	if (st.code != GROMA_OK || root == NULL)
		return st;
	n = json_object_size(root);
	entries = calloc(n > 0 ? n : 1, sizeof(*entries));
	if (entries == NULL)
	{
		json_decref(root);
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate %zu added tokens", n);
	}
	json_object_foreach(root, key, value)
	{
		entries[i].text = key;
		entries[i].id = json_is_integer(value) ? json_integer_value(value) : -1;
		i++;
	}
	qsort(entries, n, sizeof(*entries), by_id);
	for (i = 0; i < n && st.code == GROMA_OK; i++)
	{
		int32_t		id;

		if (entries[i].id != (json_int_t) tok->n_base + (json_int_t) i)
			st = groma_error(GROMA_ERR_FORMAT, "added token \"%s\" has id %lld, expected %lld",
							 entries[i].text, (long long) entries[i].id, (long long) tok->n_base + (long long) i);
		else
			st = tok_vocab_add(&tok->vocab, entries[i].text, strlen(entries[i].text), 0.0f,
							   TOK_PIECE_USER_DEFINED, &id);
		if (st.code == GROMA_OK)
			tok->vocab.pieces[id].special = true;
	}
	free(entries);
	json_decref(root);
	return st;
}

/* Checks added_tokens_decoder against the vocabulary and takes its "special" flags for added tokens. */
static groma_status
apply_added_decoder(const json_t *decoder, groma_tokenizer *tok)
{
	const char *key;
	json_t	   *value;

	if (decoder == NULL)
		return groma_ok();
	if (!json_is_object(decoder))
		return groma_error(GROMA_ERR_FORMAT, "tokenizer_config.json added_tokens_decoder is not an object");
	json_object_foreach((json_t *) decoder, key, value)
	{
		char	   *end;
		long		id = strtol(key, &end, 10);
		const json_t *content = json_object_get(value, "content");
		const json_t *special = json_object_get(value, "special");

		if (*key == '\0' || *end != '\0' || id < 0 || id >= tok->vocab.count)
			return groma_error(GROMA_ERR_FORMAT,
							   "tokenizer_config.json names token \"%s\", which is not in the vocabulary", key);
		if (!json_is_string(content) ||
			strcmp(json_string_value(content), tok_vocab_text(&tok->vocab, (int32_t) id)) != 0)
			return groma_error(GROMA_ERR_FORMAT, "tokenizer_config.json token %ld is not \"%s\"",
							   id, tok_vocab_text(&tok->vocab, (int32_t) id));
		if (id >= tok->n_base && json_is_boolean(special))
			tok->vocab.pieces[id].special = json_is_true(special);
	}
	return groma_ok();
}

/* Reads legacy, add_bos_token and added_tokens_decoder from tokenizer_config.json. */
static groma_status
load_config(const char *dir, groma_tokenizer *tok)
{
	json_t	   *root;
	groma_status st;
	const json_t *legacy,
			   *add_bos;

	tok->legacy = true;			/* transformers' default for LlamaTokenizer when unset */
	tok->add_bos = true;
	/* model_max_length is often 1e30 written as an integer, too big for json_int_t */
	st = load_optional(dir, "tokenizer_config.json", JSON_DECODE_INT_AS_REAL, &root);
	if (st.code != GROMA_OK || root == NULL)
		return st;
	legacy = json_object_get(root, "legacy");
	add_bos = json_object_get(root, "add_bos_token");
	if (json_is_boolean(legacy))
		tok->legacy = json_is_true(legacy);
	else if (legacy != NULL && !json_is_null(legacy))
		st = groma_error(GROMA_ERR_FORMAT, "tokenizer_config.json \"legacy\" is not a boolean");
	if (st.code == GROMA_OK && json_is_boolean(add_bos))
		tok->add_bos = json_is_true(add_bos);
	if (st.code == GROMA_OK)
		st = apply_added_decoder(json_object_get(root, "added_tokens_decoder"), tok);
	json_decref(root);
	return st;
}

/* Reads added_tokens.json and tokenizer_config.json; see tokenizer_internal.h. */
groma_status
tok_config_load(const char *dir, groma_tokenizer *tok)
{
	groma_status st = load_added_tokens(dir, tok);

	if (st.code == GROMA_OK)
		st = load_config(dir, tok);
	return st;
}

/* Resolves one entry of special_tokens_map.json (a string or {"content": ...}) to *id; fallback when absent. */
static groma_status
resolve_special(const groma_tokenizer *tok, const json_t *root, const char *name,
				const char *fallback, int32_t *id)
{
	const json_t *entry = root ? json_object_get(root, name) : NULL;
	const char *text = fallback;

	if (json_is_object(entry))
		entry = json_object_get(entry, "content");
	if (json_is_string(entry))
		text = json_string_value(entry);
	else if (entry != NULL && !json_is_null(entry))
		return groma_error(GROMA_ERR_FORMAT, "special_tokens_map.json \"%s\" is not a string", name);
	*id = text ? groma_tokenizer_token_id(tok, text) : -1;
	if (text != NULL && *id < 0)
		return groma_error(GROMA_ERR_FORMAT, "%s \"%s\" is not in the vocabulary", name, text);
	return groma_ok();
}

/* Reads special_tokens_map.json into tok's bos/eos/unk/pad ids (needs the lookup tables built). */
groma_status
tok_special_map_load(const char *dir, groma_tokenizer *tok)
{
	json_t	   *root;
	groma_status st = load_optional(dir, "special_tokens_map.json", 0, &root);

	if (st.code != GROMA_OK)
		return st;
	st = resolve_special(tok, root, "bos_token", "<s>", &tok->bos_id);
	if (st.code == GROMA_OK)
		st = resolve_special(tok, root, "eos_token", "</s>", &tok->eos_id);
	if (st.code == GROMA_OK)
		st = resolve_special(tok, root, "unk_token", "<unk>", &tok->unk_id);
	if (st.code == GROMA_OK)
		st = resolve_special(tok, root, "pad_token", NULL, &tok->pad_id);
	json_decref(root);
	return st;
}
