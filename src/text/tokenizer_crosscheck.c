/*
 * tokenizer_crosscheck.c - tokenizer.model and tokenizer.json must describe
 * the same tokenizer: the same pieces with the same ids and types, the same
 * dummy-prefix rule, and merges that only ever build ordinary pieces.
 * (Merge ranks need not follow piece scores: LLaMA-2's tokenizer.json ranks
 * the whitespace-run merges last; the tests check both orders encode alike.)
 */
#include <string.h>

#include "tokenizer_internal.h"

/* Returns a short name for a piece type, for messages. */
static const char *
type_name(uint8_t type)
{
	switch (type)
	{
		case TOK_PIECE_NORMAL:
			return "normal";
		case TOK_PIECE_UNKNOWN:
			return "unknown";
		case TOK_PIECE_CONTROL:
			return "control";
		case TOK_PIECE_USER_DEFINED:
			return "user-defined";
		case TOK_PIECE_UNUSED:
			return "unused";
		case TOK_PIECE_BYTE:
			return "byte";
	}
	return "?";
}

/* Compares the two readings of the vocabulary; see tokenizer_internal.h. */
groma_status
tok_cross_check(const tok_vocab *model, bool model_dummy_prefix, const tok_vocab *json,
				const tok_merge_table *merges, bool json_dummy_prefix)
{
	if (model->count != json->count)
		return groma_error(GROMA_ERR_FORMAT, "tokenizer.model has %d pieces, tokenizer.json %d",
						   model->count, json->count);
	if (model_dummy_prefix != json_dummy_prefix)
		return groma_error(GROMA_ERR_FORMAT, "tokenizer.model and tokenizer.json disagree on the dummy prefix");
	for (int32_t id = 0; id < model->count; id++)
	{
		const tok_piece *a = &model->pieces[id],
				   *b = &json->pieces[id];

		if (a->len != b->len || memcmp(tok_vocab_text(model, id), tok_vocab_text(json, id), a->len) != 0)
			return groma_error(GROMA_ERR_FORMAT, "piece %d is \"%s\" in tokenizer.model, \"%s\" in tokenizer.json",
							   id, tok_vocab_text(model, id), tok_vocab_text(json, id));
		if (a->type != b->type)
			return groma_error(GROMA_ERR_FORMAT, "piece %d (\"%s\") is %s in tokenizer.model, %s in tokenizer.json",
							   id, tok_vocab_text(model, id), type_name(a->type), type_name(b->type));
	}
	for (uint32_t i = 0; merges->slots != NULL && i <= merges->mask; i++)
	{
		const tok_merge_slot *slot = &merges->slots[i];

		if (slot->key == UINT64_MAX)
			continue;
		if (model->pieces[slot->merged].type != TOK_PIECE_NORMAL)
			return groma_error(GROMA_ERR_FORMAT, "tokenizer.json merge %d builds \"%s\", a %s piece in tokenizer.model",
							   slot->rank, tok_vocab_text(model, slot->merged),
							   type_name(model->pieces[slot->merged].type));
	}
	return groma_ok();
}
