/*
 * tokenizer.h - the LLaMA-2 SentencePiece BPE tokenizer with Groma's added tokens.
 *
 * A checkpoint directory holds the vocabulary twice: tokenizer.model (a
 * SentencePiece ModelProto: pieces with scores) and tokenizer.json (Hugging
 * Face: vocab plus ranked merges).  Either can drive encoding; when both are
 * present the one not used is loaded too and must agree with the other.
 * added_tokens.json gives the added tokens (Groma: 114, ids 32000..32113),
 * special_tokens_map.json names bos/eos/unk/pad, and tokenizer_config.json
 * gives "legacy" and "add_bos_token".
 *
 * Encoding: added tokens and the control pieces (<s>, </s>, <unk>) are cut
 * out of the raw text first (leftmost, longest match); every other run of
 * text has spaces replaced by U+2581 ("▁"), gets a "▁" dummy prefix (legacy:
 * every run; non-legacy: only a run that starts the text), and is split into
 * pieces by BPE.  Characters no piece covers become <0xNN> byte pieces.
 *
 * Decoding reverses this: "▁" becomes a space, byte pieces are reassembled
 * into UTF-8 (each byte of an invalid sequence becomes U+FFFD, and so does a
 * NUL byte), added tokens are written as their text (or skipped), and one
 * space at the very start of the output is dropped.
 *
 * Ids are int32_t; a loaded tokenizer is read-only, so one can serve many
 * threads at once.
 */
#ifndef GROMA_TOKENIZER_H
#define GROMA_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../runtime/status.h"

/*
 * Texts longer than this many bytes are refused by groma_tokenizer_encode
 * (prompts are a few kB; encoding needs about 100 bytes of scratch per byte).
 */
#define GROMA_TOKENIZER_MAX_TEXT (1024u * 1024u)

/* Which file drives encoding. */
typedef enum groma_tokenizer_source
{
	GROMA_TOKENIZER_AUTO = 0,	/* tokenizer.model when present, else tokenizer.json */
	GROMA_TOKENIZER_SP_MODEL,	/* tokenizer.model: merge by piece score */
	GROMA_TOKENIZER_HF_JSON		/* tokenizer.json: merge by merge rank */
} groma_tokenizer_source;

/* Where the legacy flag comes from. */
typedef enum groma_tokenizer_legacy
{
	GROMA_TOKENIZER_LEGACY_FROM_CONFIG = 0,	/* tokenizer_config.json "legacy"; true when absent */
	GROMA_TOKENIZER_LEGACY_ON,	/* every text run after a special token gets "▁" */
	GROMA_TOKENIZER_LEGACY_OFF	/* only a text run at the start of the text gets "▁" */
} groma_tokenizer_legacy;

/* Loading choices; groma_tokenizer_default_options() gives AUTO, FROM_CONFIG, cross-check on. */
typedef struct groma_tokenizer_options
{
	groma_tokenizer_source source;
	groma_tokenizer_legacy legacy;
	bool		cross_check;	/* load the other file too, when present, and compare */
} groma_tokenizer_options;

/* A loaded tokenizer (opaque). */
typedef struct groma_tokenizer groma_tokenizer;

/* Returns the default options: AUTO source, legacy from the config, cross-check on. */
groma_tokenizer_options groma_tokenizer_default_options(void);

/*
 * Loads the tokenizer in dir with default options; *out is NULL on failure.
 * GROMA_ERR_IO when neither tokenizer.model nor tokenizer.json can be read,
 * GROMA_ERR_FORMAT for malformed files or files that disagree,
 * GROMA_ERR_UNSUPPORTED for a valid tokenizer of another kind (unigram,
 * no byte fallback, a normaliser other than the identity).
 */
groma_status groma_tokenizer_load(const char *dir, groma_tokenizer **out);

/* Loads the tokenizer in dir with explicit options (NULL means the defaults); as groma_tokenizer_load. */
groma_status groma_tokenizer_load_with(const char *dir, const groma_tokenizer_options *options,
									   groma_tokenizer **out);

/* Frees a tokenizer; safe on NULL. */
void		groma_tokenizer_free(groma_tokenizer *tok);

/*
 * Encodes NUL-terminated UTF-8 text into ids_out[0..max_ids), with <s> first
 * when add_bos.  *n is the number of ids the text needs: on GROMA_ERR_LIMIT
 * (max_ids too small) nothing past max_ids is written and *n says how many
 * are needed (ids_out may be NULL when max_ids is 0, to ask for the count).
 * Invalid UTF-8 gives GROMA_ERR_INVALID_ARGUMENT naming the byte offset;
 * texts over GROMA_TOKENIZER_MAX_TEXT give GROMA_ERR_LIMIT.
 */
groma_status groma_tokenizer_encode(const groma_tokenizer *tok, const char *text, bool add_bos,
									int32_t *ids_out, size_t max_ids, size_t *n);

/* As groma_tokenizer_encode for text of len bytes; a NUL byte inside is GROMA_ERR_INVALID_ARGUMENT. */
groma_status groma_tokenizer_encode_len(const groma_tokenizer *tok, const char *text, size_t len,
										bool add_bos, int32_t *ids_out, size_t max_ids, size_t *n);

/*
 * Decodes ids[0..n) into buf as NUL-terminated UTF-8; *len is the text's
 * length without the NUL.  skip_special drops <s>, </s>, <unk> and special
 * added tokens instead of writing their text.  An id outside the vocabulary
 * is GROMA_ERR_INVALID_ARGUMENT; a buffer shorter than *len + 1 is
 * GROMA_ERR_LIMIT with buf set to "" (when buflen > 0) and *len the length
 * needed (buf may be NULL when buflen is 0).
 */
groma_status groma_tokenizer_decode(const groma_tokenizer *tok, const int32_t *ids, size_t n,
									bool skip_special, char *buf, size_t buflen, size_t *len);

/* Returns the id of a piece or added token spelled exactly text ("<image>", "▁the"), or -1. */
int32_t		groma_tokenizer_token_id(const groma_tokenizer *tok, const char *text);

/* Returns the text of id ("▁the", "<0x0A>", "<r3>"), or NULL when id is outside the vocabulary. */
const char *groma_tokenizer_piece(const groma_tokenizer *tok, int32_t id);

/* Returns the number of ids, added tokens included (32114 for Groma). */
int32_t		groma_tokenizer_vocab_size(const groma_tokenizer *tok);

/* Returns true for <s>, </s>, <unk> and added tokens marked special; false otherwise or out of range. */
bool		groma_tokenizer_is_special(const groma_tokenizer *tok, int32_t id);

/* Returns the id of the bos / eos / pad token named in special_tokens_map.json, or -1 when none. */
int32_t		groma_tokenizer_bos_id(const groma_tokenizer *tok);
int32_t		groma_tokenizer_eos_id(const groma_tokenizer *tok);
int32_t		groma_tokenizer_pad_id(const groma_tokenizer *tok);

/* Returns tokenizer_config.json's "add_bos_token" (true when absent). */
bool		groma_tokenizer_add_bos(const groma_tokenizer *tok);

/* Returns whether the legacy dummy-prefix rule is in force. */
bool		groma_tokenizer_legacy_mode(const groma_tokenizer *tok);

/* Returns which file drives encoding (never AUTO). */
groma_tokenizer_source groma_tokenizer_source_used(const groma_tokenizer *tok);

#endif							/* GROMA_TOKENIZER_H */
