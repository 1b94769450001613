/*
 * element_convert.h - converting runs of checkpoint elements between dtypes.
 *
 * Floating types (f64, f32, f16, bf16) convert to one another, rounding to
 * nearest even; integer and bool types copy only to themselves.  Sources may
 * be strided and unaligned (zip entries need not be aligned), so every load
 * and store goes through memcpy.
 */
#ifndef GROMA_ELEMENT_CONVERT_H
#define GROMA_ELEMENT_CONVERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

/* Returns true for F64, F32, F16 and BF16. */
bool		groma_convert_is_float(groma_st_dtype dtype);

/* Returns true when groma_convert_elements can turn from into to. */
bool		groma_convert_supported(groma_st_dtype from, groma_st_dtype to);

/*
 * Converts count elements of dtype from, src_stride elements apart, into
 * count contiguous elements of dtype to at dst; the caller checks
 * groma_convert_supported first (unsupported pairs write nothing).
 */
void		groma_convert_elements(groma_st_dtype from, const void *src, int64_t src_stride,
								   groma_st_dtype to, void *dst, size_t count);

/* Converts float to IEEE half bits, rounding to nearest even (overflow gives infinity, NaN stays NaN). */
uint16_t	groma_convert_f32_to_f16(float value);

#endif							/* GROMA_ELEMENT_CONVERT_H */
