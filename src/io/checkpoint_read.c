/*
 * checkpoint_read.c - element counts, contiguity and row-major copies (with
 * dtype conversion) of checkpoint views.
 */
#include "checkpoint.h"

#include "element_convert.h"

/* Returns the element count (1 for a scalar, 0 when a dimension is 0). */
int64_t
groma_ckpt_tensor_numel(const groma_ckpt_tensor *t)
{
	int64_t		n = 1;

	for (int d = 0; d < t->ndim; d++)
		n *= t->shape[d];		/* fits: checked when the checkpoint was opened */
	return n;
}

/* Returns true when strides are row-major for the shape (size-1 dimensions may have any stride). */
bool
groma_ckpt_tensor_is_contiguous(const groma_ckpt_tensor *t)
{
	int64_t		expected = 1;

	for (int d = t->ndim - 1; d >= 0; d--)
	{
		if (t->shape[d] != 1 && t->stride[d] != expected)
			return false;
		expected *= t->shape[d];
	}
	return true;
}

/* Copies elements [first, first + count) in row-major order into dst as dtype; see checkpoint.h. */
groma_status
groma_ckpt_tensor_read(const groma_ckpt_tensor *t, int64_t first, int64_t count,
					   groma_st_dtype dtype, void *dst)
{
	int64_t		numel = groma_ckpt_tensor_numel(t);
	size_t		in_size = groma_st_dtype_size(t->dtype);
	size_t		out_size = groma_st_dtype_size(dtype);
	const uint8_t *base = t->data;
	uint8_t    *out = dst;
	int64_t		index[GROMA_CKPT_MAX_DIMS];
	int64_t		rest = first;
	int			last = t->ndim - 1;

	if (first < 0 || count < 0 || first > numel || count > numel - first)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT,
						   "elements [%lld, +%lld) of tensor \"%s\" are out of range",
						   (long long) first, (long long) count, t->name);
	if (!groma_convert_supported(t->dtype, dtype))
		return groma_error(GROMA_ERR_UNSUPPORTED, "tensor \"%s\" cannot be read as %s from %s",
						   t->name, groma_st_dtype_name(dtype), groma_st_dtype_name(t->dtype));
	if (count == 0)
		return groma_ok();
	if (t->ndim == 0 || groma_ckpt_tensor_is_contiguous(t))
	{
		groma_convert_elements(t->dtype, base + (size_t) first * in_size, 1, dtype, out,
							   (size_t) count);
		return groma_ok();
	}
	/* Strided: walk runs along the last dimension, carrying the multi-index. */
	for (int d = last; d >= 0; d--)
	{
		index[d] = rest % t->shape[d];
		rest /= t->shape[d];
	}
	while (count > 0)
	{
		int64_t		offset = 0;
		int64_t		run = t->shape[last] - index[last];

		if (run > count)
			run = count;
		for (int d = 0; d <= last; d++)
			offset += index[d] * t->stride[d];
		groma_convert_elements(t->dtype, base + (size_t) offset * in_size, t->stride[last],
							   dtype, out, (size_t) run);
		out += (size_t) run * out_size;
		count -= run;
		index[last] += run;
		for (int d = last; d > 0 && index[d] == t->shape[d]; d--)
		{
			index[d] = 0;
			index[d - 1]++;
		}
	}
	return groma_ok();
}
