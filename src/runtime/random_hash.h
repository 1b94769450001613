/*
 * random_hash.h - a counter-based random number, the same in C and CUDA:
 * value i of stream seed is a pure function of (seed, i), so fills can be
 * split over threads or GPU blocks without changing a single value.
 */
#ifndef GROMA_RANDOM_HASH_H
#define GROMA_RANDOM_HASH_H

#include <stdint.h>

#ifdef __CUDACC__
#define GROMA_HOST_DEVICE __host__ __device__
#else
#define GROMA_HOST_DEVICE
#endif

/* Uniform in [-scale, scale) from splitmix64 of (seed, i). */
static inline GROMA_HOST_DEVICE float
groma_random_uniform(uint64_t seed, uint64_t i, float scale)
{
	uint64_t	z = seed * 0x9E3779B97F4A7C15ull + i + 0x632BE59BD9B4E019ull;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	z ^= z >> 31;
	/* the top 24 bits as a float in [0, 1), then to [-scale, scale) */
	return ((float) (z >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f) * scale;
}

#endif							/* GROMA_RANDOM_HASH_H */
