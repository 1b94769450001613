/*
 * tensor.c - tensor views: shapes, strides, reshaping and element access.
 */
#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Returns the size in bytes of one element. */
size_t
groma_dtype_size(groma_dtype dtype)
{
	switch (dtype)
	{
		case GROMA_F32:
		case GROMA_I32:
			return 4;
		case GROMA_F16:
		case GROMA_BF16:
			return 2;
		case GROMA_I64:
			return 8;
		case GROMA_U8:
		case GROMA_I8:
			return 1;
	}
	return 0;
}

/* Returns a short lower-case dtype name. */
const char *
groma_dtype_name(groma_dtype dtype)
{
	switch (dtype)
	{
		case GROMA_F32:
			return "f32";
		case GROMA_F16:
			return "f16";
		case GROMA_BF16:
			return "bf16";
		case GROMA_I32:
			return "i32";
		case GROMA_I64:
			return "i64";
		case GROMA_U8:
			return "u8";
		case GROMA_I8:
			return "i8";
	}
	return "?";
}

/* Fills row-major strides for t's shape. */
static void
set_contiguous_strides(groma_tensor *t)
{
	int64_t		s = 1;

	for (int d = t->ndim - 1; d >= 0; d--)
	{
		t->stride[d] = s;
		s *= t->shape[d];
	}
}

/* Returns a contiguous CPU view of data with the given shape. */
groma_tensor
groma_tensor_view(void *data, groma_dtype dtype, int ndim, const int64_t *shape)
{
	groma_tensor t;

	memset(&t, 0, sizeof(t));
	t.data = data;
	t.dtype = dtype;
	t.device = GROMA_DEVICE_CPU;
	t.ndim = ndim < 0 ? 0 : ndim > GROMA_MAX_DIMS ? GROMA_MAX_DIMS : ndim;
	for (int d = 0; d < t.ndim; d++)
		t.shape[d] = shape[d];
	set_contiguous_strides(&t);
	return t;
}

/* Contiguous f32 view of one dimension. */
groma_tensor
groma_f32_1d(float *data, int64_t n0)
{
	int64_t		shape[1] = {n0};

	return groma_tensor_view(data, GROMA_F32, 1, shape);
}

/* Contiguous f32 view of two dimensions. */
groma_tensor
groma_f32_2d(float *data, int64_t n0, int64_t n1)
{
	int64_t		shape[2] = {n0, n1};

	return groma_tensor_view(data, GROMA_F32, 2, shape);
}

/* Contiguous f32 view of three dimensions. */
groma_tensor
groma_f32_3d(float *data, int64_t n0, int64_t n1, int64_t n2)
{
	int64_t		shape[3] = {n0, n1, n2};

	return groma_tensor_view(data, GROMA_F32, 3, shape);
}

/* Contiguous f32 view of four dimensions. */
groma_tensor
groma_f32_4d(float *data, int64_t n0, int64_t n1, int64_t n2, int64_t n3)
{
	int64_t		shape[4] = {n0, n1, n2, n3};

	return groma_tensor_view(data, GROMA_F32, 4, shape);
}

/* Returns the number of elements (1 for a scalar). */
int64_t
groma_tensor_numel(const groma_tensor *t)
{
	int64_t		n = 1;

	for (int d = 0; d < t->ndim; d++)
		n *= t->shape[d];
	return n;
}

/* Returns the bytes of a contiguous copy. */
size_t
groma_tensor_nbytes(const groma_tensor *t)
{
	return (size_t) groma_tensor_numel(t) * groma_dtype_size(t->dtype);
}

/* Returns true when strides are row-major for the shape (size-1 dims ignored). */
bool
groma_tensor_is_contiguous(const groma_tensor *t)
{
	int64_t		s = 1;

	for (int d = t->ndim - 1; d >= 0; d--)
	{
		if (t->shape[d] != 1 && t->stride[d] != s)
			return false;
		s *= t->shape[d];
	}
	return true;
}

/* Returns true when ndim and every dimension agree. */
bool
groma_tensor_same_shape(const groma_tensor *a, const groma_tensor *b)
{
	if (a->ndim != b->ndim)
		return false;
	for (int d = 0; d < a->ndim; d++)
		if (a->shape[d] != b->shape[d])
			return false;
	return true;
}

/* Formats the shape as "[2,3,4]" into buf. */
const char *
groma_tensor_shape_str(const groma_tensor *t, char *buf, size_t len)
{
	size_t		used = 0;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	used += (size_t) snprintf(buf, len, "[");
	for (int d = 0; d < t->ndim && used < len; d++)
		used += (size_t) snprintf(buf + used, len - used, d ? ",%lld" : "%lld", (long long) t->shape[d]);
	if (used < len)
		snprintf(buf + used, len - used, "]");
	return buf;
}

/* Reinterprets a contiguous tensor with a new shape of the same element count. */
groma_status
groma_tensor_reshape(const groma_tensor *t, int ndim, const int64_t *shape, groma_tensor *out)
{
	groma_tensor r;
	char		a[64],
				b[64];

	if (ndim < 0 || ndim > GROMA_MAX_DIMS)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "reshape to %d dimensions", ndim);
	if (!groma_tensor_is_contiguous(t))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "reshape of a non-contiguous %s tensor",
						   groma_tensor_shape_str(t, a, sizeof(a)));
	r = groma_tensor_view(t->data, t->dtype, ndim, shape);
	r.device = t->device;
	r.scale = t->scale;
	if (groma_tensor_numel(&r) != groma_tensor_numel(t))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "cannot reshape %s to %s",
						   groma_tensor_shape_str(t, a, sizeof(a)), groma_tensor_shape_str(&r, b, sizeof(b)));
	if (t->scale != NULL && (ndim < 1 || t->ndim < 1 || shape[0] != t->shape[0]))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "reshape of an i8 %s tensor must keep its scaled rows (dim 0)",
						   groma_tensor_shape_str(t, a, sizeof(a)));
	*out = r;
	return groma_ok();
}

/* Returns a view with dimensions reordered: out dim i is t's dim perm[i]. */
groma_status
groma_tensor_permute(const groma_tensor *t, const int *perm, groma_tensor *out)
{
	groma_tensor r = *t;
	int			seen = 0;

	for (int i = 0; i < t->ndim; i++)
	{
		if (perm[i] < 0 || perm[i] >= t->ndim || (seen & (1 << perm[i])))
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "bad permutation for %d dimensions", t->ndim);
		seen |= 1 << perm[i];
		r.shape[i] = t->shape[perm[i]];
		r.stride[i] = t->stride[perm[i]];
	}
	if (t->scale != NULL && t->ndim > 0 && perm[0] != 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "a permutation of an i8 tensor must keep its scaled rows (dim 0)");
	*out = r;
	return groma_ok();
}

/* Returns a view of indices [start, start + length) along dim. */
groma_status
groma_tensor_narrow(const groma_tensor *t, int dim, int64_t start, int64_t length, groma_tensor *out)
{
	groma_tensor r = *t;

	if (dim < 0 || dim >= t->ndim || start < 0 || length < 0 || start + length > t->shape[dim])
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "narrow [%lld, %lld) of dim %d (size %lld)",
						   (long long) start, (long long) (start + length), dim,
						   (long long) (dim >= 0 && dim < t->ndim ? t->shape[dim] : -1));
	r.shape[dim] = length;
	r.data = (uint8_t *) t->data + (size_t) (start * t->stride[dim]) * groma_dtype_size(t->dtype);
	if (t->scale != NULL && dim == 0)
		r.scale = t->scale + start;
	*out = r;
	return groma_ok();
}

/* Converts bf16 bits to float. */
float
groma_bf16_to_f32(uint16_t bits)
{
	uint32_t	u = (uint32_t) bits << 16;
	float		f;

	memcpy(&f, &u, 4);
	return f;
}

/* Converts IEEE half bits to float (subnormals, infinities and NaN included). */
float
groma_f16_to_f32(uint16_t bits)
{
	uint32_t	sign = (uint32_t) (bits >> 15) << 31;
	int			exp = (bits >> 10) & 0x1F;
	uint32_t	mant = bits & 0x3FF;
	float		f;

	if (exp == 0)
		f = ldexpf((float) mant, -24);	/* zero or subnormal */
	else if (exp == 31)
		f = mant ? NAN : INFINITY;
	else
		f = ldexpf((float) (mant | 0x400), exp - 25);
	if (sign)
		f = -f;
	return f;
}

/* Converts float to bf16 bits, rounding to nearest even; NaN stays NaN. */
uint16_t
groma_f32_to_bf16(float value)
{
	uint32_t	u;

	memcpy(&u, &value, 4);
	if ((u & 0x7FFFFFFFu) > 0x7F800000u)
		return (uint16_t) ((u >> 16) | 0x40);	/* quiet NaN */
	u += 0x7FFFu + ((u >> 16) & 1u);
	return (uint16_t) (u >> 16);
}

/* Returns the float at a multi-index of a CPU tensor (i8 times its row's scale). */
float
groma_tensor_get_f32(const groma_tensor *t, const int64_t *index)
{
	int64_t		off = 0;

	for (int d = 0; d < t->ndim; d++)
		off += index[d] * t->stride[d];
	switch (t->dtype)
	{
		case GROMA_F32:
		case GROMA_BF16:
		case GROMA_F16:
			return groma_element_f32(t->data, off, t->dtype);
		case GROMA_I32:
			return (float) ((const int32_t *) t->data)[off];
		case GROMA_I64:
			return (float) ((const int64_t *) t->data)[off];
		case GROMA_U8:
			return (float) ((const uint8_t *) t->data)[off];
		case GROMA_I8:
			return (float) ((const int8_t *) t->data)[off] * (t->scale ? t->scale[index[0]] : 1.0f);
	}
	return NAN;
}

/* Converts float to half bits with round-to-nearest-even. */
uint16_t
groma_f32_to_f16(float value)
{
	uint32_t	bits;
	uint32_t	sign,
				magnitude,
				exponent,
				mantissa,
				half,
				rest,
				halfway;
	int			shift;

	memcpy(&bits, &value, 4);
	sign = (bits >> 16) & 0x8000u;
	magnitude = bits & 0x7FFFFFFFu;
	if (magnitude > 0x7F800000u)	/* NaN: keep it quiet and keep the top payload bits */
		return (uint16_t) (sign | 0x7E00u | ((magnitude >> 13) & 0x3FFu));
	if (magnitude >= 0x477FF000u)	/* 65520 and above (halfway past 65504) round to infinity */
		return (uint16_t) (sign | 0x7C00u);
	exponent = magnitude >> 23;
	mantissa = magnitude & 0x7FFFFFu;
	if (exponent >= 113)
	{
		/* Normal half: rebias 127 -> 15 and drop 13 mantissa bits. */
		half = ((exponent - 112) << 10) | (mantissa >> 13);
		rest = mantissa & 0x1FFFu;
		if (rest > 0x1000u || (rest == 0x1000u && (half & 1u)))
			half++;				/* a carry into the exponent is still correct */
		return (uint16_t) (sign | half);
	}
	if (exponent < 102)			/* below 2^-25: rounds to zero */
		return (uint16_t) sign;
	/* Subnormal half: value / 2^-24 = (mantissa | implicit bit) >> (126 - exponent). */
	mantissa |= 0x800000u;
	shift = 126 - (int) exponent;
	half = mantissa >> shift;
	rest = mantissa & ((1u << shift) - 1u);
	halfway = 1u << (shift - 1);
	if (rest > halfway || (rest == halfway && (half & 1u)))
		half++;
	return (uint16_t) (sign | half);
}
