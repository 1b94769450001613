/*
 * kv_pool.h - one preallocated memory pool for the KV caches of the
 * sequences a server decodes at once.
 *
 * The pool is allocated once (on the model's device) and hands out one
 * contiguous block per sequence, sized for its prompt plus its new tokens
 * (groma_kv_cache_bytes), first fit; a finished or cancelled sequence gives
 * its block back.  A cache that needs more positions moves into a larger
 * block (groma_kv_pool_grow).  Nothing is allocated from the system after
 * start-up: when no gap is large enough the caller waits for a sequence to
 * finish, or stops one.
 */
#ifndef GROMA_KV_POOL_H
#define GROMA_KV_POOL_H

#include <stdbool.h>

#include "../runtime/arena.h"
#include "llama.h"

/* Sequences a pool can hold at once. */
#define GROMA_KV_POOL_MAX_BLOCKS 256

typedef struct groma_kv_block
{
	size_t		offset;			/* from the pool's base, GROMA_ARENA_ALIGN-aligned */
	size_t		bytes;
} groma_kv_block;

typedef struct groma_kv_pool
{
	groma_arena memory;			/* the pool's one allocation */
	groma_kv_block blocks[GROMA_KV_POOL_MAX_BLOCKS + 1];	/* in use, by offset (one more while a cache grows) */
	int			n_blocks;
	size_t		used;			/* bytes of the blocks in use */
	size_t		peak;			/* the most ever in use */
} groma_kv_pool;

/* Allocates a pool of bytes on device (once, at start-up). */
groma_status groma_kv_pool_init(groma_kv_pool *pool, groma_device device, size_t bytes);

/* Frees the pool; safe on a zeroed one. */
void		groma_kv_pool_free(groma_kv_pool *pool);

/*
 * Carves a cache for capacity positions (length 0) from the pool into
 * *cache.  GROMA_ERR_BUSY when no free gap is large enough now (another
 * sequence must finish first), GROMA_ERR_LIMIT when the pool could never
 * hold it.
 */
groma_status groma_kv_pool_take(groma_kv_pool *pool, const groma_llama_config *cfg, int64_t capacity,
								groma_kv_cache *cache);

/* True when a cache of capacity positions would fit in a free gap once the n caches given[] were given back. */
bool		groma_kv_pool_fits_without(const groma_kv_pool *pool, const groma_llama_config *cfg, int64_t capacity,
									   const groma_kv_cache *const *given, int n);

/*
 * Moves a cache from the pool into a new block of capacity positions (more
 * than it holds): takes the block, copies the filled positions of every
 * layer and head, then gives the old block back.  GROMA_ERR_BUSY, with the
 * cache as it was, when no free gap holds the new block beside the old
 * one; GROMA_ERR_LIMIT when the pool could never hold it.  The new block
 * may be one over GROMA_KV_POOL_MAX_BLOCKS for the moment of the copy.
 */
groma_status groma_kv_pool_grow(groma_kv_pool *pool, const groma_llama_config *cfg, int64_t capacity,
								groma_kv_cache *cache);

/* Gives a cache's block back to the pool; a cache not from the pool is ignored. */
void		groma_kv_pool_give(groma_kv_pool *pool, groma_kv_cache *cache);

#endif							/* GROMA_KV_POOL_H */
