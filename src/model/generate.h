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
 * groma_generate_check_length, also giving the most KV positions the
 * generation can need: the prompt's bound (every region the model may
 * keep) plus max_new_tokens.  A scheduler reserves this much before
 * running vision.
 */
groma_status groma_generate_bound(const groma_model *m, const groma_tokenizer *tok, const char *query,
								  int max_new_tokens, int64_t *positions);

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

/*
 * One request's generation in flight, for decoding several at once: its KV
 * cache, its prompt's embeddings until the prefill, the ids generated so
 * far and the id to feed next.  Begun by groma_sequence_begin (prompt and
 * cache), advanced by groma_sequence_step together with others (its first
 * step is its prefill), ended by groma_sequence_end.
 */
typedef struct groma_sequence
{
	groma_kv_cache cache;		/* from the pool (or from act when begun without one) */
	bool		pooled;
	groma_tensor prompt;		/* [prompt_tokens, D] embeddings in act, read by the first step */
	bool		prefilled;		/* the first step has run: the next feeds one token */
	bool		prefill_alone;	/* its prefill ran apart from the others: act had no room for both */
	groma_status failure;		/* set, with done, when its prefill alone did not fit act */
	int32_t    *ids;			/* [max_new_tokens] generated (malloc), </s> not included */
	size_t		n;
	int			max_new_tokens;
	bool		stop_at_eos;
	bool		hit_eos;
	bool		done;			/* </s> or max_new_tokens reached: nothing more to decode */
	int64_t		next;			/* the id to feed at the next step (when not done) */
	size_t		prompt_tokens;
	double		prefill_ms;
	double		decode_ms;		/* the steps this sequence took part in */
} groma_sequence;

struct groma_kv_pool;

/*
 * Tokenizes and expands query over a finished vision result, takes a KV
 * cache for the prompt plus max_new_tokens from pool (or, with pool NULL,
 * from act, which then keeps it until the caller resets act) and writes the
 * prompt's embeddings into act, where they must stay until the sequence's
 * first groma_sequence_step (its prefill).  With a pool and first_room in
 * 1..max_new_tokens - 1 the cache holds the prompt plus first_room new
 * tokens at first, and groma_sequence_make_room grows it.  The vision
 * result is not needed afterwards.  GROMA_ERR_BUSY when the pool has no
 * room now.
 */
groma_status groma_sequence_begin(const groma_model *m, const groma_tokenizer *tok,
								  const groma_vision_result *vis, const char *query, int max_new_tokens,
								  int first_room, bool stop_at_eos, struct groma_kv_pool *pool, groma_arena *act,
								  groma_sequence *seq);

/*
 * Before a step: when seq's next step would not fit its pooled cache, moves
 * the cache into a block with twice the room for new tokens (at most the
 * prompt plus max_new_tokens).  Its answer stays what it would be with the
 * whole cache taken at once.  GROMA_ERR_BUSY, the cache as it was, when the
 * pool has no gap for the larger block now.
 */
groma_status groma_sequence_make_room(const groma_model *m, groma_sequence *seq, struct groma_kv_pool *pool);

/*
 * New tokens a pooled cache holds at first for first_room asked (see
 * groma_sequence_begin): first_room when in 1..max_new_tokens - 1, else
 * max_new_tokens.
 */
int			groma_sequence_first_room(int max_new_tokens, int first_room);

/*
 * The capacity seq's cache needs before its next step: the one it has when
 * the step fits, else twice its room for new tokens (at most the prompt
 * plus max_new_tokens), as groma_sequence_make_room grows it.
 */
int64_t		groma_sequence_next_capacity(const groma_sequence *seq);

/*
 * One step for the n sequences of seqs that are not done, as one
 * groma_llama_step: a sequence not yet prefilled runs its whole prompt
 * beside one token of each of the others (so newcomers' prefills share the
 * weight reads with the decoding batch and with each other).  Each gets its
 * next id and is done at </s> (with stop_at_eos) or at its max_new_tokens;
 * its ids are those it would get alone.  When the prefills do not fit act
 * beside the others, the decoding sequences step together and each prefill
 * runs alone; one that still does not fit is done with its failure set,
 * and only its request fails.  The return value is a failure of the whole
 * step (the caches are left as they were before it).
 */
groma_status groma_sequence_step(const groma_model *m, const groma_tokenizer *tok, groma_sequence *const *seqs,
								 int n, groma_arena *act);

/*
 * Steps seq alone (a batch of one) until it is done, checking the calling
 * thread's cancel flag (runtime/cancel.h) before each step.
 */
groma_status groma_sequence_run_alone(const groma_model *m, const groma_tokenizer *tok, groma_sequence *seq,
									  groma_arena *act);

/* A generation viewing seq's ids and figures (the ids stay owned by seq). */
groma_generation groma_sequence_generation(const groma_sequence *seq);

/* Gives the cache back to its pool (when pooled) and frees the ids; safe on a zeroed sequence. */
void		groma_sequence_end(groma_sequence *seq, struct groma_kv_pool *pool);

/* Expands query's conversation into prompt ids (malloc) over a vision result; GROMA_ERR_LIMIT past the context. */
groma_status groma_prompt_ids(const groma_model *m, const groma_tokenizer *tok, const groma_vision_result *vis,
							  const char *query, int max_new_tokens, int32_t **ids, size_t *n);

/* Frees the generated ids; safe on a zeroed generation. */
void		groma_generation_free(groma_generation *g);

#endif							/* GROMA_GENERATE_H */
