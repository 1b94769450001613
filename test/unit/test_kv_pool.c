/*
 * test_kv_pool.c - the KV pool's blocks: a cache grown into a larger block
 * keeps every filled position of every layer and head bit for bit (f32 and
 * bf16), gives its old block back, a growth the pool cannot hold now
 * leaves the cache as it was, and the pool tells whether it would fit once
 * other caches are given back.
 */
#include <string.h>

#include "unit.h"
#include "../../src/model/kv_pool.h"
#include "../../src/runtime/ops.h"

/* A small decoder's shape: 3 layers of 2 heads of 4 values a position. */
static groma_llama_config
small_config(groma_dtype kv)
{
	return (groma_llama_config) {.hidden = 8, .layers = 3, .heads = 2, .kv_heads = 2, .kv_dtype = kv};
}

/* Fills positions [0, length) of a cache tensor [L, H, cap, Dh] with random values of its type. */
static void
fill_filled(groma_tensor *t, int64_t length, uint32_t seed)
{
	groma_tensor head;
	groma_tensor src;
	float		values[3 * 2 * 64 * 4];
	int64_t		n = t->shape[0] * t->shape[1] * length * t->shape[3];

	CHECK(n <= (int64_t) (sizeof(values) / sizeof(values[0])));
	unit_fill_random(values, n, seed, 1.0f);
	src = (groma_tensor) {.data = values, .dtype = GROMA_F32, .ndim = 4,
		.shape = {t->shape[0], t->shape[1], length, t->shape[3]},
	.stride = {t->shape[1] * length * t->shape[3], length * t->shape[3], t->shape[3], 1}};
	CHECK(groma_tensor_narrow(t, 2, 0, length, &head).code == GROMA_OK);
	CHECK(groma_copy(&src, &head).code == GROMA_OK);
}

/* True when positions [0, length) of a and b ([L, H, *, Dh] of one type) hold the same bytes. */
static bool
same_filled(const groma_tensor *a, const groma_tensor *b, int64_t length)
{
	size_t		row = (size_t) a->shape[3] * groma_dtype_size(a->dtype);

	for (int64_t l = 0; l < a->shape[0]; l++)
		for (int64_t h = 0; h < a->shape[1]; h++)
		{
			const uint8_t *pa = (const uint8_t *) a->data + (size_t) (l * a->stride[0] + h * a->stride[1]) *
				groma_dtype_size(a->dtype);
			const uint8_t *pb = (const uint8_t *) b->data + (size_t) (l * b->stride[0] + h * b->stride[1]) *
				groma_dtype_size(b->dtype);

			if (memcmp(pa, pb, row * (size_t) length) != 0)
				return false;
		}
	return true;
}

/*
 * A cache of 10 positions with 7 filled grows to 40 and then to 64: its
 * filled positions (every layer and head of K and V) are those it had, its
 * length is kept, the pool holds one block of the new size; growing to no
 * more positions is refused; a growth the pool has no gap for is
 * GROMA_ERR_BUSY with the cache as it was, and one past the whole pool
 * GROMA_ERR_LIMIT.
 */
UNIT_TEST(test_kv_pool_grow_keeps_the_filled_positions)
{
	static const groma_dtype types[] = {GROMA_F32, GROMA_BF16};

	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++)
	{
		groma_llama_config cfg = small_config(types[t]);
		groma_kv_pool pool;
		groma_kv_cache cache,
					other;
		groma_arena keep;
		groma_tensor k_before,
					v_before;
		size_t		pool_bytes = groma_arena_round(groma_kv_cache_bytes(&cfg, 64)) +
			groma_arena_round(groma_kv_cache_bytes(&cfg, 40)) + groma_arena_round(groma_kv_cache_bytes(&cfg, 10));
		groma_status st;

		CHECK(groma_kv_pool_init(&pool, GROMA_DEVICE_CPU, pool_bytes).code == GROMA_OK);
		CHECK(groma_arena_init(&keep, (size_t) 1 << 20).code == GROMA_OK);
		CHECK(groma_kv_pool_take(&pool, &cfg, 10, &cache).code == GROMA_OK);
		cache.length = 7;
		fill_filled(&cache.k, 7, 11);
		fill_filled(&cache.v, 7, 12);
		/* a copy of what was filled, to compare with after each move */
		CHECK(groma_arena_tensor(&keep, types[t], 4, (int64_t[]) {3, 2, 7, 4}, &k_before).code == GROMA_OK);
		CHECK(groma_arena_tensor(&keep, types[t], 4, (int64_t[]) {3, 2, 7, 4}, &v_before).code == GROMA_OK);
		{
			groma_tensor kf,
						vf;

			CHECK(groma_tensor_narrow(&cache.k, 2, 0, 7, &kf).code == GROMA_OK);
			CHECK(groma_tensor_narrow(&cache.v, 2, 0, 7, &vf).code == GROMA_OK);
			CHECK(groma_copy(&kf, &k_before).code == GROMA_OK);
			CHECK(groma_copy(&vf, &v_before).code == GROMA_OK);
		}

		st = groma_kv_pool_grow(&pool, &cfg, 10, &cache);
		CHECKF(st.code == GROMA_ERR_INVALID_ARGUMENT, "%s: growing to the same size: %s",
			   groma_dtype_name(types[t]), st.message);
		st = groma_kv_pool_grow(&pool, &cfg, 40, &cache);
		CHECKF(st.code == GROMA_OK, "%s: 10 -> 40: %s", groma_dtype_name(types[t]), st.message);
		CHECK(cache.capacity == 40 && cache.length == 7 && cache.k.shape[2] == 40 && cache.v.shape[2] == 40);
		CHECKF(same_filled(&cache.k, &k_before, 7) && same_filled(&cache.v, &v_before, 7),
			   "%s: the filled positions moved with the cache", groma_dtype_name(types[t]));
		CHECK(pool.n_blocks == 1 && pool.used == groma_arena_round(groma_kv_cache_bytes(&cfg, 40)));

		/* the pool has a 10-position gap before the cache and 64 after it: another cache takes the 64 */
		CHECK(groma_kv_pool_take(&pool, &cfg, 64, &other).code == GROMA_OK);
		st = groma_kv_pool_grow(&pool, &cfg, 64, &cache);
		CHECKF(st.code == GROMA_ERR_BUSY, "%s: 40 -> 64 beside another cache: %s", groma_dtype_name(types[t]),
			   st.message);
		CHECK(cache.capacity == 40 && cache.length == 7 && pool.n_blocks == 2);
		{
			/* the growth would fit once the other cache is given back, not before */
			const groma_kv_cache *given[1] = {&other};

			CHECK(!groma_kv_pool_fits_without(&pool, &cfg, 64, given, 0));
			CHECK(groma_kv_pool_fits_without(&pool, &cfg, 64, given, 1));
			CHECK(!groma_kv_pool_fits_without(&pool, &cfg, 100000, given, 1));
			CHECK(pool.n_blocks == 2);
		}
		CHECKF(same_filled(&cache.k, &k_before, 7) && same_filled(&cache.v, &v_before, 7),
			   "%s: a refused growth leaves the cache", groma_dtype_name(types[t]));
		groma_kv_pool_give(&pool, &other);
		st = groma_kv_pool_grow(&pool, &cfg, 64, &cache);
		CHECKF(st.code == GROMA_OK, "%s: 40 -> 64 alone: %s", groma_dtype_name(types[t]), st.message);
		CHECKF(same_filled(&cache.k, &k_before, 7) && same_filled(&cache.v, &v_before, 7),
			   "%s: the filled positions moved again", groma_dtype_name(types[t]));
		st = groma_kv_pool_grow(&pool, &cfg, 100000, &cache);
		CHECKF(st.code == GROMA_ERR_LIMIT && cache.capacity == 64, "%s: past the pool: %s",
			   groma_dtype_name(types[t]), st.message);
		groma_kv_pool_give(&pool, &cache);
		CHECK(pool.n_blocks == 0 && pool.used == 0);
		groma_arena_free(&keep);
		groma_kv_pool_free(&pool);
	}
}
