/*
 * resize_bicubic.h - PIL's bicubic resampling of 8-bit RGB, bit for bit.
 *
 * Pillow resizes in two separable passes (horizontal, then vertical) with a
 * Keys cubic (a = -0.5) whose support widens with the downscale factor.
 * Weights are computed in double, normalised per output sample, then rounded
 * to fixed point with 22 fractional bits; each output is the rounded,
 * clamped integer sum.  groma reimplements that arithmetic so its 448x448
 * image equals PIL's exactly, and the CUDA twin uses the same weight tables.
 */
#ifndef GROMA_RESIZE_BICUBIC_H
#define GROMA_RESIZE_BICUBIC_H

#include <stdint.h>

#include "../runtime/status.h"

/* Fractional bits of the fixed-point weights (Pillow's PRECISION_BITS). */
#define GROMA_RESAMPLE_PRECISION_BITS 22

/* The weights that map one axis of in_size samples to out_size samples. */
typedef struct groma_resample_axis
{
	int			in_size;
	int			out_size;
	int			taps;			/* weights per output sample (ksize) */
	int32_t    *first;			/* [out_size] first input index used */
	int32_t    *count;			/* [out_size] input samples used (<= taps) */
	int32_t    *weights;		/* [out_size][taps] fixed-point weights */
} groma_resample_axis;

/* Builds the weight table for one axis; free it with groma_resample_axis_free. */
groma_status groma_resample_axis_build(int in_size, int out_size, groma_resample_axis *axis);

/* Frees a weight table; safe on a zeroed one. */
void		groma_resample_axis_free(groma_resample_axis *axis);

/* Lets the CUDA twin call the same inline helpers. */
#ifdef __CUDACC__
#define GROMA_HOST_DEVICE __host__ __device__
#else
#define GROMA_HOST_DEVICE
#endif

/* Returns one fixed-point accumulator rounded and clamped to 0..255, as Pillow's clip8. */
static inline GROMA_HOST_DEVICE uint8_t
groma_resample_clip8(int32_t acc)
{
	if (acc >= (1 << GROMA_RESAMPLE_PRECISION_BITS << 8))
		return 255;
	if (acc <= 0)
		return 0;
	return (uint8_t) (acc >> GROMA_RESAMPLE_PRECISION_BITS);
}

/*
 * Resizes src ([in_h][in_w][3]) into dst ([out_h][out_w][3]) exactly as
 * PIL's Image.resize((out_w, out_h), Image.BICUBIC) does for an RGB image.
 */
groma_status groma_resize_bicubic_rgb(const uint8_t *src, int in_w, int in_h,
									  uint8_t *dst, int out_w, int out_h);

#endif							/* GROMA_RESIZE_BICUBIC_H */
