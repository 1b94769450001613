/*
 * cpu_math.h - elementary functions written so that loops calling them
 * vectorise (no branches, no library calls).
 */
#ifndef GROMA_CPU_MATH_H
#define GROMA_CPU_MATH_H

#include <stdint.h>
#include <string.h>

/*
 * exp(x) within 2 ulp of expf for x >= -87 (Cody-Waite reduction by ln 2
 * and a degree-6 polynomial on [-ln2/2, ln2/2]); 0 below -87 (where expf
 * gives values under 1.7e-38) and for -inf; NaN stays NaN; x must be <= 88.
 */
static inline float
groma_exp_lanes(float x)
{
	const float rounder = 12582912.0f;	/* 1.5·2^23: adding it rounds to an integer */
	float		clamped = x >= -87.0f ? x : -87.0f;	/* NaN becomes -87 here; it is returned below */
	float		fn = (clamped * 1.44269504088896341f + rounder) - rounder;	/* round(x / ln 2) */
	float		r = (clamped - fn * 0.693359375f) - fn * -2.12194440e-4f;	/* x - n·ln 2 */
	float		p = 1.9875691500e-4f;
	uint32_t	bits = (uint32_t) ((int32_t) fn + 127) << 23;	/* 2^n */
	float		scale;

	p = p * r + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	p = p * r * r + r + 1.0f;
	memcpy(&scale, &bits, sizeof(scale));
	return x != x ? x : x < -87.0f ? 0.0f : p * scale;
}

#endif							/* GROMA_CPU_MATH_H */
