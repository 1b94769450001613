/*
 * kv_pool.c - first-fit blocks of one preallocated pool for KV caches
 * (kv_pool.h).
 */
#include "kv_pool.h"

#include <string.h>

#include "../runtime/ops.h"

/* Allocates the pool; see kv_pool.h. */
groma_status
groma_kv_pool_init(groma_kv_pool *pool, groma_device device, size_t bytes)
{
	memset(pool, 0, sizeof(*pool));
	return groma_arena_init_on(&pool->memory, device, bytes);
}

/* Frees the pool; see kv_pool.h. */
void
groma_kv_pool_free(groma_kv_pool *pool)
{
	groma_arena_free(&pool->memory);
	memset(pool, 0, sizeof(*pool));
}

/*
 * Finds the first gap of need bytes among blocks[n] (by offset) of a pool
 * of size bytes: returns the index of the block it precedes (n: after the
 * last), or -1.
 */
static int
gap_among(const groma_kv_block *blocks, int n, size_t size, size_t need, size_t *gap_start)
{
	*gap_start = 0;
	/* the gaps are before each block and after the last */
	for (int at = 0; at <= n; at++)
	{
		size_t		gap_end = at < n ? blocks[at].offset : size;

		if (gap_end - *gap_start >= need)
			return at;
		if (at < n)
			*gap_start = blocks[at].offset + blocks[at].bytes;
	}
	return -1;
}

/* Finds the first gap of need bytes while fewer than most blocks are taken; see gap_among. */
static int
first_gap(const groma_kv_pool *pool, size_t need, int most, size_t *gap_start)
{
	*gap_start = 0;
	if (pool->n_blocks >= most)
		return -1;
	return gap_among(pool->blocks, pool->n_blocks, pool->memory.size, need, gap_start);
}

/* The index of the block holding a cache's K tensor (the first thing carved from it), or -1. */
static int
block_of(const groma_kv_pool *pool, const groma_kv_cache *cache)
{
	const uint8_t *start = cache->k.data;

	for (int i = 0; start != NULL && i < pool->n_blocks; i++)
	{
		const uint8_t *block = pool->memory.base + pool->blocks[i].offset;

		if (start >= block && start < block + pool->blocks[i].bytes)
			return i;
	}
	return -1;
}

/* True when a cache would fit once some caches are given back; see kv_pool.h. */
bool
groma_kv_pool_fits_without(const groma_kv_pool *pool, const groma_llama_config *cfg, int64_t capacity,
						   const groma_kv_cache *const *given, int n)
{
	groma_kv_block kept[GROMA_KV_POOL_MAX_BLOCKS + 1];
	bool		drop[GROMA_KV_POOL_MAX_BLOCKS + 1] = {false};
	int			n_kept = 0;
	size_t		gap_start;

	for (int i = 0; i < n; i++)
	{
		int			b = block_of(pool, given[i]);

		if (b >= 0)
			drop[b] = true;
	}
	for (int b = 0; b < pool->n_blocks; b++)
		if (!drop[b])
			kept[n_kept++] = pool->blocks[b];
	return gap_among(kept, n_kept, pool->memory.size, groma_arena_round(groma_kv_cache_bytes(cfg, capacity)),
					 &gap_start) >= 0;
}

/*
 * Carves a cache of capacity positions from the first gap that fits while
 * fewer than most blocks are taken; see groma_kv_pool_take.
 */
static groma_status
take_block(groma_kv_pool *pool, const groma_llama_config *cfg, int64_t capacity, int most, groma_kv_cache *cache)
{
	size_t		need = groma_arena_round(groma_kv_cache_bytes(cfg, capacity));
	size_t		gap_start = 0;
	int			at;
	groma_arena block;
	groma_status st;

	memset(cache, 0, sizeof(*cache));
	if (need > pool->memory.size)
		return groma_error(GROMA_ERR_LIMIT, "a KV cache of %lld positions needs %.2f MB, more than the pool's %.2f MB",
						   (long long) capacity, need / 1048576.0, pool->memory.size / 1048576.0);
	if (pool->n_blocks >= most)
		return groma_error(GROMA_ERR_BUSY, "the KV pool holds its most sequences (%d)", GROMA_KV_POOL_MAX_BLOCKS);
	at = first_gap(pool, need, most, &gap_start);
	if (at < 0)
		return groma_error(GROMA_ERR_BUSY, "the KV pool has no free %zu MB now (%zu of %zu MB in use)", need >> 20,
						   pool->used >> 20, pool->memory.size >> 20);
	block = (groma_arena) {pool->memory.base + gap_start, need, 0, 0, pool->memory.device};
	st = groma_kv_cache_init(cache, cfg, capacity, &block);
	if (st.code != GROMA_OK)
		return st;
	memmove(&pool->blocks[at + 1], &pool->blocks[at], sizeof(groma_kv_block) * (size_t) (pool->n_blocks - at));
	pool->blocks[at] = (groma_kv_block) {gap_start, need};
	pool->n_blocks++;
	pool->used += need;
	if (pool->used > pool->peak)
		pool->peak = pool->used;
	return groma_ok();
}

/* Carves a cache from the first gap that fits; see kv_pool.h. */
groma_status
groma_kv_pool_take(groma_kv_pool *pool, const groma_llama_config *cfg, int64_t capacity,
				   groma_kv_cache *cache)
{
	return take_block(pool, cfg, capacity, GROMA_KV_POOL_MAX_BLOCKS, cache);
}

/* Copies positions [0, length) of every layer and head of one cache tensor into another's. */
static groma_status
copy_filled(const groma_tensor *from, const groma_tensor *to, int64_t length)
{
	groma_tensor src,
				dst;

	GROMA_TRY(groma_tensor_narrow(from, 2, 0, length, &src));	/* [layers, heads, length, Dh] */
	GROMA_TRY(groma_tensor_narrow(to, 2, 0, length, &dst));
	return groma_copy(&src, &dst);
}

/* Moves a cache into a larger block; see kv_pool.h. */
groma_status
groma_kv_pool_grow(groma_kv_pool *pool, const groma_llama_config *cfg, int64_t capacity, groma_kv_cache *cache)
{
	groma_kv_cache grown;
	groma_status st;

	if (capacity <= cache->capacity)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "a KV cache of %lld positions cannot grow to %lld",
						   (long long) cache->capacity, (long long) capacity);
	/* the new block is taken beside the old one: one block over the most for a moment */
	GROMA_TRY(take_block(pool, cfg, capacity, GROMA_KV_POOL_MAX_BLOCKS + 1, &grown));
	st = cache->length > 0 ? copy_filled(&cache->k, &grown.k, cache->length) : groma_ok();
	if (st.code == GROMA_OK && cache->length > 0)
		st = copy_filled(&cache->v, &grown.v, cache->length);
	if (st.code != GROMA_OK)
	{
		groma_kv_pool_give(pool, &grown);
		return st;
	}
	grown.length = cache->length;
	groma_kv_pool_give(pool, cache);
	*cache = grown;
	return groma_ok();
}

/* Gives a block back; see kv_pool.h. */
void
groma_kv_pool_give(groma_kv_pool *pool, groma_kv_cache *cache)
{
	int			i = block_of(pool, cache);

	if (i >= 0)
	{
		pool->used -= pool->blocks[i].bytes;
		memmove(&pool->blocks[i], &pool->blocks[i + 1], sizeof(groma_kv_block) * (size_t) (pool->n_blocks - i - 1));
		pool->n_blocks--;
	}
	memset(cache, 0, sizeof(*cache));
}
