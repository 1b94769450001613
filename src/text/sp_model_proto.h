/*
 * sp_model_proto.h - reading SentencePiece's tokenizer.model (a ModelProto
 * protobuf): the pieces with scores and types, plus the few trainer and
 * normaliser settings that decide whether groma can encode like it.
 */
#ifndef GROMA_SP_MODEL_PROTO_H
#define GROMA_SP_MODEL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../runtime/status.h"
#include "vocab_list.h"

/* tokenizer.model files larger than this are refused (LLaMA-2's is 0.5 MB). */
#define TOK_SP_MODEL_MAX_BYTES (256u * 1024u * 1024u)

/*
 * Parses a ModelProto held in data[0..size) and appends its pieces to vocab
 * (which must be empty); *add_dummy_prefix gets the normaliser's setting.
 * FORMAT for malformed protobuf or pieces; UNSUPPORTED for a model that is
 * not BPE with byte fallback and the identity normaliser (spaces escaped,
 * extra whitespace kept, whitespace as a prefix).  vocab is freed on failure.
 */
groma_status tok_sp_model_parse(const uint8_t *data, size_t size, tok_vocab *vocab,
								bool *add_dummy_prefix);

/* Reads path and parses it as tok_sp_model_parse does; IO when it cannot be read. */
groma_status tok_sp_model_load(const char *path, tok_vocab *vocab, bool *add_dummy_prefix);

#endif							/* GROMA_SP_MODEL_PROTO_H */
