/*
 * hf_tokenizer_json.h - reading Hugging Face's tokenizer.json for a LLaMA
 * BPE tokenizer: model.vocab (text -> id), model.merges (ranked pairs), the
 * added_tokens that live inside the base vocabulary (<unk>, <s>, </s>), and
 * a check that the normaliser is LLaMA's (prepend "▁", spaces to "▁").
 */
#ifndef GROMA_HF_TOKENIZER_JSON_H
#define GROMA_HF_TOKENIZER_JSON_H

#include <stdbool.h>

#include "../runtime/status.h"
#include "merge_table.h"
#include "vocab_list.h"

/*
 * Reads path into vocab (must be empty) and merges (must be zeroed).  Piece
 * types are derived: special added tokens are CONTROL (UNKNOWN for the
 * model's unk_token), non-special ones USER_DEFINED, "<0xNN>" pieces BYTE,
 * the rest NORMAL; scores are 0.  added_tokens past model.vocab (a Groma
 * tokenizer.json saved by transformers lists its 114 there) are left to
 * added_tokens.json.  FORMAT for malformed JSON, ids that are
 * not exactly 0..n-1, or merges naming unknown pieces or repeating a pair;
 * UNSUPPORTED for a model that is not BPE with byte fallback or a normaliser
 * or pre-tokeniser other than LLaMA's.  Both outputs are freed on failure.
 */
groma_status tok_hf_json_load(const char *path, tok_vocab *vocab, tok_merge_table *merges,
							  bool *add_dummy_prefix);

#endif							/* GROMA_HF_TOKENIZER_JSON_H */
