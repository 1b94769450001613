/*
 * llama.h - the LLaMA decoder (Vicuna-7B in the real model) with a KV cache,
 * over Groma's extended vocabulary: ids below vocab use the LLM's own
 * embedding and lm_head; the 114 added tokens use new_input_embs and
 * extra_lm_head (GROMA.md "Added token ids").
 */
#ifndef GROMA_LLAMA_H
#define GROMA_LLAMA_H

#include "../runtime/arena.h"
#include "../runtime/tensor.h"
#include "graph_cache.h"
#include "weight_source.h"

#define GROMA_LLAMA_MAX_LAYERS 128
#define GROMA_DECODE_GRAPH_ROWS 8	/* decode steps of up to this many sequences are recorded (graph_cache.h) */

typedef struct groma_llama_config
{
	int			hidden;			/* D: 4096 real, 32 tiny */
	int			layers;			/* 32 real */
	int			heads;			/* 32 real */
	int			kv_heads;		/* must equal heads (Vicuna-7B has no GQA) */
	int			intermediate;	/* 11008 real */
	int			vocab;			/* 32000 */
	int			extra_vocab;	/* num_new_token: 114 */
	float		rms_eps;		/* 1e-5 */
	float		rope_theta;		/* 10000 */
	groma_dtype kv_dtype;		/* KV cache values: f32 (zero), or the layers' 16-bit compute type (set by groma_llama_build) */
} groma_llama_config;

typedef struct groma_llama_layer
{
	groma_tensor attn_norm;		/* [D] */
	groma_tensor q,
				k,
				v,
				o;				/* [D, D] */
	groma_tensor mlp_norm;		/* [D] */
	groma_tensor gate,
				up;				/* [I, D] */
	groma_tensor down;			/* [D, I] */
} groma_llama_layer;

typedef struct groma_llama
{
	groma_llama_config cfg;
	groma_tensor embed;			/* [V, D] llm.model.embed_tokens */
	groma_tensor extra_embed;	/* [X, D] new_input_embs */
	groma_llama_layer layer[GROMA_LLAMA_MAX_LAYERS];
	groma_tensor norm;			/* [D] */
	groma_tensor lm_head;		/* [V, D] */
	groma_tensor extra_head;	/* [X, D] extra_lm_head */
	groma_graph_cache *graphs;	/* recorded decode steps (owned: groma_llama_free) */
} groma_llama;

/* Keys and values of every layer for one sequence, up to capacity positions. */
typedef struct groma_kv_cache
{
	int64_t		capacity;
	int64_t		length;			/* positions filled so far */
	groma_tensor k;				/* [layers, heads, capacity, Dh] of cfg->kv_dtype */
	groma_tensor v;				/* [layers, heads, capacity, Dh] of cfg->kv_dtype */
} groma_kv_cache;

/* Binds llm.*, new_input_embs and extra_lm_head. */
groma_status groma_llama_build(groma_llama *m, const groma_llama_config *cfg,
							   const groma_weight_source *src, groma_arena *weights);

/* Frees what groma_llama_build allocated beside the arena (the recorded decode steps); safe twice. */
void		groma_llama_free(groma_llama *m);

/* Bytes an arena needs for groma_kv_cache_init of capacity positions (alignment included). */
size_t		groma_kv_cache_bytes(const groma_llama_config *cfg, int64_t capacity);

/* Carves a cache for capacity positions from arena (length 0). */
groma_status groma_kv_cache_init(groma_kv_cache *cache, const groma_llama_config *cfg,
								 int64_t capacity, groma_arena *arena);

/* out[T, D] = input embeddings of ids[T] (0 <= id < vocab + extra_vocab). */
groma_status groma_llama_embed(const groma_llama *m, const int64_t *ids, int64_t count,
							   groma_tensor *out);

/*
 * Runs x[T, D] (embeddings of the next T positions) through the decoder,
 * appending their keys and values to the cache.  logits[V + X] receives the
 * scores of the last position; final_hidden[T, D] (after the final RMSNorm)
 * when not NULL.  Scratch from act, released on return.
 */
groma_status groma_llama_forward(const groma_llama *m, groma_kv_cache *cache, const groma_tensor *x,
								 groma_arena *act, float *logits, groma_tensor *final_hidden);

/*
 * One step for n sequences at once, each with its own number of new
 * positions: x[sum rows, D] holds, in order, rows[b] embeddings for
 * sequence b, at positions caches[b]->length onwards (a newcomer's whole
 * prompt, its prefill, beside one token of each sequence already
 * decoding).  The linears and norms run once over all rows (a weight is
 * read once for the whole step); RoPE, cache writes and causal attention
 * run per sequence over its own cache.  next[n] receives each sequence's
 * greedy id (the first maximum of its last row's V + X scores, as
 * groma_argmax), picked where the scores live (groma_argmax_rows): only
 * the ids come back from a device.  On a GPU a step whose sequences all
 * add one token is recorded the second time its shape comes and replayed
 * after that (m->graphs, graph_cache.h).  The caches' lengths move on only when
 * the whole step succeeds, so a failed step (GROMA_ERR_NO_MEMORY from act,
 * say) can be run again, whole or split.  Scratch from act.
 */
groma_status groma_llama_step(const groma_llama *m, groma_kv_cache *const *caches, const int64_t *rows, int64_t n,
							  const groma_tensor *x, groma_arena *act, int64_t *next);

/* Returns the first index of the largest of n values; the first NaN wins, as in torch.argmax. */
int64_t		groma_argmax(const float *logits, int64_t n);

#endif							/* GROMA_LLAMA_H */
