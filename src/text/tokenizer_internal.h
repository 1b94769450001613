/*
 * tokenizer_internal.h - the tokenizer's data structures, shared by the
 * files of src/text/ that load, encode and decode (not a public API).
 */
#ifndef GROMA_TOKENIZER_INTERNAL_H
#define GROMA_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../runtime/status.h"
#include "merge_table.h"
#include "tokenizer.h"
#include "vocab_hash.h"
#include "vocab_list.h"

/* A text that is cut out of the raw input before BPE: an added token, <s>, </s> or <unk>. */
typedef struct tok_special
{
	const char *text;			/* points into the vocabulary pool */
	uint32_t	len;
	int32_t		id;
} tok_special;

struct groma_tokenizer
{
	tok_vocab	vocab;			/* base pieces [0, n_base), then added tokens */
	int32_t		n_base;			/* 32000 for LLaMA-2 */
	tok_hash	base_lookup;	/* base pieces by text */
	tok_hash	added_lookup;	/* added tokens by text */
	tok_merge_table merges;		/* tokenizer.json path: (left, right) -> rank, merged id */
	groma_tokenizer_source source;	/* SP_MODEL (scores) or HF_JSON (merge ranks) */
	int32_t		byte_ids[256];	/* id of <0xNN> for each byte value */
	tok_special *specials;		/* matched in raw text before BPE */
	int32_t		n_specials;
	uint8_t		special_first[32];	/* bitmap: bytes that start some special text */
	int32_t		bos_id;
	int32_t		eos_id;
	int32_t		unk_id;
	int32_t		pad_id;
	bool		legacy;			/* dummy prefix on every text run, not only the first */
	bool		add_bos;		/* tokenizer_config.json add_bos_token */
	bool		add_dummy_prefix;	/* normaliser prepends "▁" (LLaMA: true) */
};

/* Ids written by the encoder: stored while they fit, always counted. */
typedef struct tok_id_sink
{
	int32_t    *ids;
	size_t		cap;
	size_t		count;
} tok_id_sink;

/* Appends id to sink (stores it only while it fits; the count always grows). */
static inline void
tok_sink_push(tok_id_sink *sink, int32_t id)
{
	if (sink->count < sink->cap)
		sink->ids[sink->count] = id;
	sink->count++;
}

/* Reads added_tokens.json, special_tokens_map.json and tokenizer_config.json from dir into tok. */
groma_status tok_config_load(const char *dir, groma_tokenizer *tok);

/* Reads special_tokens_map.json into tok's bos/eos/unk/pad ids; needs tok's lookup tables built. */
groma_status tok_special_map_load(const char *dir, groma_tokenizer *tok);

/* Compares the vocabulary (and merges) of tokenizer.json with tokenizer.model; FORMAT on the first difference. */
groma_status tok_cross_check(const tok_vocab *model, bool model_dummy_prefix,
							 const tok_vocab *json, const tok_merge_table *merges,
							 bool json_dummy_prefix);

#endif							/* GROMA_TOKENIZER_INTERNAL_H */
