/*
 * tokenizer.c - loading a tokenizer directory, and lookups by id and text.
 */
#include "tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_tokenizer_json.h"
#include "sp_model_proto.h"
#include "tokenizer_internal.h"

/* Returns the default options: AUTO source, legacy from the config, cross-check on. */
groma_tokenizer_options
groma_tokenizer_default_options(void)
{
	groma_tokenizer_options o = {GROMA_TOKENIZER_AUTO, GROMA_TOKENIZER_LEGACY_FROM_CONFIG, true};

	return o;
}

/* Writes dir/name into path; INVALID_ARGUMENT when it does not fit. */
static groma_status
join_path(char *path, size_t size, const char *dir, const char *name)
{
	int			n = snprintf(path, size, "%s/%s", dir, name);

	if (n < 0 || (size_t) n >= size)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "tokenizer directory path is too long");
	return groma_ok();
}

/* Frees a tokenizer; safe on NULL. */
void
groma_tokenizer_free(groma_tokenizer *tok)
{
	if (tok == NULL)
		return;
	tok_vocab_free(&tok->vocab);
	tok_hash_free(&tok->base_lookup);
	tok_hash_free(&tok->added_lookup);
	tok_merges_free(&tok->merges);
	free(tok->specials);
	free(tok);
}

/* Returns whether text is "<0xNN>" with upper-case hex digits; *value gets NN. */
static bool
parse_byte_piece(const char *text, size_t len, uint8_t *value)
{
	unsigned	v = 0;

	if (len != 6 || strncmp(text, "<0x", 3) != 0 || text[5] != '>')
		return false;
	for (int i = 3; i < 5; i++)
	{
		char		c = text[i];

		if (c >= '0' && c <= '9')
			v = v * 16 + (unsigned) (c - '0');
		else if (c >= 'A' && c <= 'F')
			v = v * 16 + (unsigned) (c - 'A' + 10);
		else
			return false;
	}
	*value = (uint8_t) v;
	return true;
}

/*
 * Checks the base pieces: exactly one unknown piece, all 256 byte pieces
 * spelled "<0xNN>", no user-defined pieces (SentencePiece matches those
 * before BPE; LLaMA has none).  Fills tok->byte_ids.
 */
static groma_status
check_base(groma_tokenizer *tok)
{
	int			unknown = 0;

	for (int b = 0; b < 256; b++)
		tok->byte_ids[b] = -1;
	for (int32_t id = 0; id < tok->n_base; id++)
	{
		const tok_piece *p = &tok->vocab.pieces[id];
		const char *text = tok_vocab_text(&tok->vocab, id);
		uint8_t		b;

		if (p->type == TOK_PIECE_UNKNOWN)
			unknown++;
		else if (p->type == TOK_PIECE_USER_DEFINED)
			return groma_error(GROMA_ERR_UNSUPPORTED, "piece %d (\"%s\") is user-defined", id, text);
		else if (p->type == TOK_PIECE_BYTE)
		{
			if (!parse_byte_piece(text, p->len, &b))
				return groma_error(GROMA_ERR_FORMAT, "byte piece %d is spelled \"%s\"", id, text);
			if (tok->byte_ids[b] >= 0)
				return groma_error(GROMA_ERR_FORMAT, "byte <0x%02X> appears twice", b);
			tok->byte_ids[b] = id;
		}
	}
	if (unknown != 1)
		return groma_error(GROMA_ERR_FORMAT, "the vocabulary has %d unknown pieces, expected 1", unknown);
	for (int b = 0; b < 256; b++)
		if (tok->byte_ids[b] < 0)
			return groma_error(GROMA_ERR_FORMAT, "byte piece <0x%02X> is missing", b);
	return groma_ok();
}

/* Lists the texts cut out before BPE: control and unknown base pieces, and every added token. */
static groma_status
build_specials(groma_tokenizer *tok)
{
	int32_t		n = 0;

	tok->specials = calloc((size_t) tok->vocab.count, sizeof(*tok->specials));
	if (tok->specials == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate the special token list");
	for (int32_t id = 0; id < tok->vocab.count; id++)
	{
		const tok_piece *p = &tok->vocab.pieces[id];
		uint8_t		first;

		if (id < tok->n_base && p->type != TOK_PIECE_CONTROL && p->type != TOK_PIECE_UNKNOWN)
			continue;
		tok->specials[n].text = tok_vocab_text(&tok->vocab, id);
		tok->specials[n].len = p->len;
		tok->specials[n].id = id;
		first = (uint8_t) tok->specials[n].text[0];
		tok->special_first[first >> 3] |= (uint8_t) (1u << (first & 7));
		n++;
	}
	tok->n_specials = n;
	return groma_ok();
}

/* Loads the other file of the pair and compares it with the one in tok. */
static groma_status
cross_check(groma_tokenizer *tok, const char *model_path, const char *json_path)
{
	tok_vocab	other = {0};
	tok_merge_table merges = {0};
	bool		dummy = false;
	groma_status st;

	if (tok->source == GROMA_TOKENIZER_SP_MODEL)
	{
		st = tok_hf_json_load(json_path, &other, &merges, &dummy);
		if (st.code == GROMA_OK)
			st = tok_cross_check(&tok->vocab, tok->add_dummy_prefix, &other, &merges, dummy);
	}
	else
	{
		st = tok_sp_model_load(model_path, &other, &dummy);
		if (st.code == GROMA_OK)
			st = tok_cross_check(&other, dummy, &tok->vocab, &tok->merges, tok->add_dummy_prefix);
	}
	tok_vocab_free(&other);
	tok_merges_free(&merges);
	if (st.code != GROMA_OK)
		return groma_error(st.code, "cross-check of tokenizer.model and tokenizer.json: %s", st.message);
	return st;
}

/* Reads the base vocabulary from the chosen file, cross-checking the other when asked. */
static groma_status
load_base(groma_tokenizer *tok, const char *dir, const groma_tokenizer_options *o)
{
	char		model_path[4096],
				json_path[4096];
	bool		have_model,
				have_json;
	groma_status st = join_path(model_path, sizeof(model_path), dir, "tokenizer.model");

	if (st.code == GROMA_OK)
		st = join_path(json_path, sizeof(json_path), dir, "tokenizer.json");
	if (st.code != GROMA_OK)
		return st;
	have_model = access(model_path, R_OK) == 0;
	have_json = access(json_path, R_OK) == 0;
	tok->source = o->source;
	if (tok->source == GROMA_TOKENIZER_AUTO)
		tok->source = have_model || !have_json ? GROMA_TOKENIZER_SP_MODEL : GROMA_TOKENIZER_HF_JSON;
	if (tok->source == GROMA_TOKENIZER_SP_MODEL && !have_model)
		return groma_error(GROMA_ERR_IO, "cannot read \"%s\": %s", model_path, strerror(errno));
	if (tok->source == GROMA_TOKENIZER_HF_JSON && !have_json)
		return groma_error(GROMA_ERR_IO, "cannot read \"%s\": %s", json_path, strerror(errno));
	if (tok->source == GROMA_TOKENIZER_SP_MODEL)
		st = tok_sp_model_load(model_path, &tok->vocab, &tok->add_dummy_prefix);
	else
		st = tok_hf_json_load(json_path, &tok->vocab, &tok->merges, &tok->add_dummy_prefix);
	if (st.code == GROMA_OK && o->cross_check && have_model && have_json)
		st = cross_check(tok, model_path, json_path);
	return st;
}

/* Loads dir with explicit options; see tokenizer.h. */
groma_status
groma_tokenizer_load_with(const char *dir, const groma_tokenizer_options *options, groma_tokenizer **out)
{
	groma_tokenizer_options o = options ? *options : groma_tokenizer_default_options();
	groma_tokenizer *tok;
	groma_status st;

	if (out == NULL || dir == NULL)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "tokenizer load called with a NULL argument");
	*out = NULL;
	if (o.source < GROMA_TOKENIZER_AUTO || o.source > GROMA_TOKENIZER_HF_JSON ||
		o.legacy < GROMA_TOKENIZER_LEGACY_FROM_CONFIG || o.legacy > GROMA_TOKENIZER_LEGACY_OFF)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "bad tokenizer options");
	tok = calloc(1, sizeof(*tok));
	if (tok == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate a tokenizer");
	tok->bos_id = tok->eos_id = tok->unk_id = tok->pad_id = -1;
	st = load_base(tok, dir, &o);
	if (st.code == GROMA_OK)
	{
		tok->n_base = tok->vocab.count;
		st = check_base(tok);
	}
	if (st.code == GROMA_OK)
		st = tok_config_load(dir, tok);
	if (st.code == GROMA_OK)
		st = tok_hash_build(&tok->base_lookup, &tok->vocab, 0, tok->n_base);
	if (st.code == GROMA_OK)
		st = tok_hash_build(&tok->added_lookup, &tok->vocab, tok->n_base, tok->vocab.count);
	if (st.code == GROMA_OK)
		st = build_specials(tok);
	if (st.code == GROMA_OK)
		st = tok_special_map_load(dir, tok);
	if (st.code != GROMA_OK)
	{
		groma_tokenizer_free(tok);
		return st;
	}
	if (o.legacy != GROMA_TOKENIZER_LEGACY_FROM_CONFIG)
		tok->legacy = o.legacy == GROMA_TOKENIZER_LEGACY_ON;
	*out = tok;
	return groma_ok();
}

/* Loads dir with the default options; see tokenizer.h. */
groma_status
groma_tokenizer_load(const char *dir, groma_tokenizer **out)
{
	return groma_tokenizer_load_with(dir, NULL, out);
}

/* Returns the id of the piece or added token spelled text, or -1. */
int32_t
groma_tokenizer_token_id(const groma_tokenizer *tok, const char *text)
{
	size_t		len;
	int32_t		id;

	if (tok == NULL || text == NULL)
		return -1;
	len = strlen(text);
	id = tok_hash_find(&tok->added_lookup, &tok->vocab, text, len);
	return id >= 0 ? id : tok_hash_find(&tok->base_lookup, &tok->vocab, text, len);
}

/* Returns the text of id, or NULL outside the vocabulary. */
const char *
groma_tokenizer_piece(const groma_tokenizer *tok, int32_t id)
{
	if (tok == NULL || id < 0 || id >= tok->vocab.count)
		return NULL;
	return tok_vocab_text(&tok->vocab, id);
}

/* Returns the number of ids, added tokens included. */
int32_t
groma_tokenizer_vocab_size(const groma_tokenizer *tok)
{
	return tok ? tok->vocab.count : 0;
}

/* Returns whether id is a special token (skipped by decode's skip_special). */
bool
groma_tokenizer_is_special(const groma_tokenizer *tok, int32_t id)
{
	return tok != NULL && id >= 0 && id < tok->vocab.count && tok->vocab.pieces[id].special;
}

/* Returns the bos id, or -1. */
int32_t
groma_tokenizer_bos_id(const groma_tokenizer *tok)
{
	return tok ? tok->bos_id : -1;
}

/* Returns the eos id, or -1. */
int32_t
groma_tokenizer_eos_id(const groma_tokenizer *tok)
{
	return tok ? tok->eos_id : -1;
}

/* Returns the pad id, or -1. */
int32_t
groma_tokenizer_pad_id(const groma_tokenizer *tok)
{
	return tok ? tok->pad_id : -1;
}

/* Returns tokenizer_config.json's add_bos_token. */
bool
groma_tokenizer_add_bos(const groma_tokenizer *tok)
{
	return tok != NULL && tok->add_bos;
}

/* Returns whether the legacy dummy-prefix rule is in force. */
bool
groma_tokenizer_legacy_mode(const groma_tokenizer *tok)
{
	return tok != NULL && tok->legacy;
}

/* Returns which file drives encoding. */
groma_tokenizer_source
groma_tokenizer_source_used(const groma_tokenizer *tok)
{
	return tok ? tok->source : GROMA_TOKENIZER_AUTO;
}
