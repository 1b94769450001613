/*
 * op_elementwise_cpu.c - add and mul with broadcasting, affine scale,
 * strided copy, concat and dtype conversion.
 */
#include <string.h>

#include "device_ops.h"
#include "op_check.h"
#include "ops.h"

/* Strides of b seen with y's shape: right-aligned, size-1 and missing dims broadcast (stride 0). */
static groma_status
broadcast_strides(const char *op, const groma_tensor *b, const groma_tensor *y, int64_t *strides)
{
	char		x1[64],
				x2[64];
	int			off = y->ndim - b->ndim;

	if (off < 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: %s cannot broadcast to %s", op,
						   groma_tensor_shape_str(b, x1, sizeof(x1)), groma_tensor_shape_str(y, x2, sizeof(x2)));
	for (int d = 0; d < GROMA_MAX_DIMS; d++)
		strides[d] = 0;
	for (int d = 0; d < y->ndim; d++)
	{
		int			bd = d - off;

		if (bd < 0 || b->shape[bd] == 1)
			continue;
		if (b->shape[bd] != y->shape[d])
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: %s cannot broadcast to %s", op,
							   groma_tensor_shape_str(b, x1, sizeof(x1)), groma_tensor_shape_str(y, x2, sizeof(x2)));
		strides[d] = b->stride[bd];
	}
	return groma_ok();
}

/* Applies y = a (+ or ·) b with b broadcast. */
static groma_status
binary_op(const char *op, const groma_tensor *a, const groma_tensor *b, groma_tensor *y, bool multiply)
{
	int64_t		bs[GROMA_MAX_DIMS],
				shape[GROMA_MAX_DIMS] = {1, 1, 1, 1},
				stride4[GROMA_MAX_DIMS];
	const float *pa = a->data;
	const float *pb = b->data;
	float	   *py = y->data;
	int64_t		i = 0;

	if (groma_on_device(a))
		return GROMA_DEVICE_CALL(op, binary, multiply, a, b, y);
	GROMA_TRY(groma_check_f32(op, "a", a));
	GROMA_TRY(groma_check_f32(op, "y", y));
	GROMA_TRY(groma_check_same_shape(op, a, y));
	if (b->dtype != GROMA_F32 || b->data == NULL)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: b must be f32", op);
	GROMA_TRY(broadcast_strides(op, b, y, bs));
	/* Left-pad to 4 dims so one loop nest covers every rank. */
	for (int d = 0; d < 4; d++)
	{
		int			yd = d - (4 - y->ndim);

		shape[d] = yd >= 0 ? y->shape[yd] : 1;
		stride4[d] = yd >= 0 ? bs[yd] : 0;
	}
	for (int64_t d0 = 0; d0 < shape[0]; d0++)
		for (int64_t d1 = 0; d1 < shape[1]; d1++)
			for (int64_t d2 = 0; d2 < shape[2]; d2++)
			{
				const float *brow = pb + d0 * stride4[0] + d1 * stride4[1] + d2 * stride4[2];

				for (int64_t d3 = 0; d3 < shape[3]; d3++, i++)
				{
					float		bv = brow[d3 * stride4[3]];

					py[i] = multiply ? pa[i] * bv : pa[i] + bv;
				}
			}
	return groma_ok();
}

/* y = a + b with b broadcast. */
groma_status
groma_add(const groma_tensor *a, const groma_tensor *b, groma_tensor *y)
{
	return binary_op("add", a, b, y, false);
}

/* y = a · b with b broadcast. */
groma_status
groma_mul(const groma_tensor *a, const groma_tensor *b, groma_tensor *y)
{
	return binary_op("mul", a, b, y, true);
}

/* y = x · s + t. */
groma_status
groma_scale(const groma_tensor *x, float s, float t, groma_tensor *y)
{
	int64_t		n;

	if (groma_on_device(x))
		return GROMA_DEVICE_CALL("scale", scale, x, s, t, y);
	GROMA_TRY(groma_check_f32("scale", "x", x));
	GROMA_TRY(groma_check_f32("scale", "y", y));
	GROMA_TRY(groma_check_same_shape("scale", x, y));
	n = groma_tensor_numel(x);
	for (int64_t i = 0; i < n; i++)
		((float *) y->data)[i] = ((const float *) x->data)[i] * s + t;
	return groma_ok();
}

/* An element type groma_copy takes. */
static bool
copyable(groma_dtype t)
{
	return t == GROMA_F32 || t == GROMA_BF16 || t == GROMA_F16;
}

/* Copies src into dst of the same shape, any strides on both sides, converting between f32, bf16 and f16. */
groma_status
groma_copy(const groma_tensor *src, groma_tensor *dst)
{
	int64_t		shape[4],
				ss[4],
				ds[4];
	size_t		sz,
				dz;

	if (groma_on_device(src) || groma_on_device(dst))
		return GROMA_DEVICE_CALL("copy", copy, src, dst);
	if (!copyable(src->dtype) || !copyable(dst->dtype) || !src->data || !dst->data)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "copy: f32, bf16 or f16 tensors only");
	GROMA_TRY(groma_check_same_shape("copy", src, dst));
	sz = groma_dtype_size(src->dtype);
	dz = groma_dtype_size(dst->dtype);
	for (int d = 0; d < 4; d++)
	{
		int			td = d - (4 - src->ndim);

		shape[d] = td >= 0 ? src->shape[td] : 1;
		ss[d] = td >= 0 ? src->stride[td] : 0;
		ds[d] = td >= 0 ? dst->stride[td] : 0;
	}
	for (int64_t a = 0; a < shape[0]; a++)
		for (int64_t b = 0; b < shape[1]; b++)
			for (int64_t c = 0; c < shape[2]; c++)
			{
				const char *s = (const char *) src->data + (a * ss[0] + b * ss[1] + c * ss[2]) * (int64_t) sz;
				char	   *d = (char *) dst->data + (a * ds[0] + b * ds[1] + c * ds[2]) * (int64_t) dz;

				if (src->dtype == GROMA_F32 && dst->dtype == GROMA_F32)
					for (int64_t e = 0; e < shape[3]; e++)
						((float *) d)[e * ds[3]] = ((const float *) s)[e * ss[3]];
				else
					for (int64_t e = 0; e < shape[3]; e++)
						groma_set_element_f32(d, e * ds[3], dst->dtype, groma_element_f32(s, e * ss[3], src->dtype));
			}
	return groma_ok();
}

/* Concatenates parts along dim into y. */
groma_status
groma_concat(const groma_tensor *parts, int n, int dim, groma_tensor *y)
{
	int64_t		offset = 0;

	GROMA_TRY(groma_check_f32("concat", "y", y));
	if (dim < 0 || dim >= y->ndim)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "concat: dimension %d of %d", dim, y->ndim);
	for (int i = 0; i < n; i++)
	{
		groma_tensor slot;

		if (parts[i].ndim != y->ndim)
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "concat: part %d has %d dimensions, y %d", i,
							   parts[i].ndim, y->ndim);
		for (int d = 0; d < y->ndim; d++)
			if (d != dim && parts[i].shape[d] != y->shape[d])
				return groma_error(GROMA_ERR_INVALID_ARGUMENT, "concat: part %d differs in dimension %d", i, d);
		GROMA_TRY(groma_tensor_narrow(y, dim, offset, parts[i].shape[dim], &slot));
		GROMA_TRY(groma_copy(&parts[i], &slot));
		offset += parts[i].shape[dim];
	}
	if (offset != y->shape[dim])
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "concat: parts give %lld along dimension %d, y has %lld",
						   (long long) offset, dim, (long long) y->shape[dim]);
	return groma_ok();
}

/* Converts f32/bf16/f16 to f32, or f32 to bf16/f16 (contiguous, same shape, same device). */
groma_status
groma_convert(const groma_tensor *src, groma_tensor *dst)
{
	int64_t		n = groma_tensor_numel(src);
	bool		to_f32 = dst->dtype == GROMA_F32 &&
		(src->dtype == GROMA_F32 || src->dtype == GROMA_BF16 || src->dtype == GROMA_F16);

	if (groma_on_device(src) && groma_on_device(dst))
		return GROMA_DEVICE_CALL("convert", convert, src, dst);
	if (groma_on_device(src) || groma_on_device(dst))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "convert: both tensors must be on the same device");
	GROMA_TRY(groma_check_same_shape("convert", src, dst));
	if (!groma_tensor_is_contiguous(src) || !groma_tensor_is_contiguous(dst))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "convert: contiguous tensors only");
	if (to_f32)
	{
		for (int64_t i = 0; i < n; i++)
			((float *) dst->data)[i] = groma_element_f32(src->data, i, src->dtype);
		return groma_ok();
	}
	if ((dst->dtype == GROMA_BF16 || dst->dtype == GROMA_F16) && src->dtype == GROMA_F32)
	{
		for (int64_t i = 0; i < n; i++)
			groma_set_element_f32(dst->data, i, dst->dtype, ((const float *) src->data)[i]);
		return groma_ok();
	}
	if ((src->dtype == GROMA_F32 && dst->dtype == GROMA_I8) || (src->dtype == GROMA_I8 && dst->dtype == GROMA_F32))
		return groma_convert_int8_cpu(src, dst);
	return groma_error(GROMA_ERR_INVALID_ARGUMENT, "convert: %s to %s is not supported",
					   groma_dtype_name(src->dtype), groma_dtype_name(dst->dtype));
}
