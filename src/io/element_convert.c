/*
 * element_convert.c - converting runs of checkpoint elements between dtypes.
 */
#include "element_convert.h"

#include <string.h>

#include "../runtime/tensor.h"

/* Returns true for F64, F32, F16 and BF16. */
bool
groma_convert_is_float(groma_st_dtype dtype)
{
	return dtype == GROMA_ST_F64 || dtype == GROMA_ST_F32 || dtype == GROMA_ST_F16 ||
		dtype == GROMA_ST_BF16;
}

/* Returns true when from converts to to: same dtype, or float to float. */
bool
groma_convert_supported(groma_st_dtype from, groma_st_dtype to)
{
	if (groma_st_dtype_size(from) == 0 || groma_st_dtype_size(to) == 0)
		return false;
	return from == to || (groma_convert_is_float(from) && groma_convert_is_float(to));
}

/* Converts float to half bits with round-to-nearest-even (the runtime's conversion). */
uint16_t
groma_convert_f32_to_f16(float value)
{
	return groma_f32_to_f16(value);
}

/* Loads element i (stride applied by the caller) of a float dtype as a double. */
static double
load_float(groma_st_dtype dtype, const uint8_t *p)
{
	float		f;
	double		d;
	uint16_t	h;

	switch (dtype)
	{
		case GROMA_ST_F64:
			memcpy(&d, p, 8);
			return d;
		case GROMA_ST_F32:
			memcpy(&f, p, 4);
			return f;
		case GROMA_ST_F16:
			memcpy(&h, p, 2);
			return groma_f16_to_f32(h);
		case GROMA_ST_BF16:
			memcpy(&h, p, 2);
			return groma_bf16_to_f32(h);
		default:
			return 0.0;
	}
}

/* Stores value as dtype at p (f64 exactly; others rounded to nearest even through f32). */
static void
store_float(groma_st_dtype dtype, uint8_t *p, double value)
{
	float		f = (float) value;
	uint16_t	h;

	switch (dtype)
	{
		case GROMA_ST_F64:
			memcpy(p, &value, 8);
			break;
		case GROMA_ST_F32:
			memcpy(p, &f, 4);
			break;
		case GROMA_ST_F16:
			h = groma_convert_f32_to_f16(f);
			memcpy(p, &h, 2);
			break;
		case GROMA_ST_BF16:
			h = groma_f32_to_bf16(f);
			memcpy(p, &h, 2);
			break;
		default:
			break;
	}
}

/* Converts a strided run into a contiguous one; see element_convert.h. */
void
groma_convert_elements(groma_st_dtype from, const void *src, int64_t src_stride,
					   groma_st_dtype to, void *dst, size_t count)
{
	size_t		in_size = groma_st_dtype_size(from);
	size_t		out_size = groma_st_dtype_size(to);
	const uint8_t *in = src;
	uint8_t    *out = dst;
	ptrdiff_t	step = (ptrdiff_t) src_stride * (ptrdiff_t) in_size;

	if (!groma_convert_supported(from, to) || count == 0)
		return;
	if (from == to)
	{
		if (src_stride == 1)
			memcpy(out, in, count * in_size);
		else
			for (size_t i = 0; i < count; i++)
				memcpy(out + i * out_size, in + (ptrdiff_t) i * step, in_size);
		return;
	}
	for (size_t i = 0; i < count; i++)
		store_float(to, out + i * out_size, load_float(from, in + (ptrdiff_t) i * step));
}
