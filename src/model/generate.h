/*
 * generate.h - answering a query about an image: prompt assembly, prefill
 * of the whole prompt, then greedy decoding with the KV cache until </s> or
 * the token limit (GROMA.md steps 7-9).
 */
#ifndef GROMA_GENERATE_H
#define GROMA_GENERATE_H

#include <stdbool.h>

#include "../text/tokenizer.h"
#include "vision.h"

typedef struct groma_generation
{
	int32_t    *ids;			/* [n] generated ids (malloc), </s> not included */
	size_t		n;
	bool		hit_eos;		/* stopped at </s> rather than the limit */
	size_t		prompt_tokens;	/* positions of the expanded prompt */
	double		prefill_ms;
	double		decode_ms;		/* all decode steps together */
} groma_generation;

/*
 * Refuses, before any model work, a query whose prompt cannot fit the
 * model's context (max_position_embeddings) with max_new_tokens after it:
 * GROMA_ERR_LIMIT naming both numbers.  The prompt is tokenized and its
 * placeholders counted as expanded, the image's tokens exactly and the
 * regions at the most the model keeps, so what passes here fits at
 * groma_generate (which checks the exact length again).
 */
groma_status groma_generate_check_length(const groma_model *m, const groma_tokenizer *tok,
										 const char *query, int max_new_tokens);

/*
 * Generates up to max_new_tokens ids for query over a finished vision
 * result (its refer boxes, in order, fill the query's <refer_box> places).
 * With stop_at_eos false, decoding runs the full count (parity tests).
 * Scratch, the KV cache included (groma_kv_cache_bytes for the prompt plus
 * max_new_tokens), comes from act and is released: a request allocates no
 * device memory.
 */
groma_status groma_generate(const groma_model *m, const groma_tokenizer *tok,
							const groma_vision_result *vis, const char *query, int max_new_tokens,
							bool stop_at_eos, groma_arena *act, groma_generation *out);

/* Frees the generated ids; safe on a zeroed generation. */
void		groma_generation_free(groma_generation *g);

#endif							/* GROMA_GENERATE_H */
