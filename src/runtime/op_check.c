/*
 * op_check.c - argument checks (and the 16-bit weight widening) shared by
 * the CPU ops.
 */
#include <stdlib.h>

#include "op_check.h"
#include "ops.h"

/* Fails unless t is a contiguous f32 tensor (on any device). */
groma_status
groma_check_f32_anywhere(const char *op, const char *what, const groma_tensor *t)
{
	char		buf[64];

	if (t == NULL || t->data == NULL)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: %s is missing", op, what);
	if (t->dtype != GROMA_F32)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: %s is %s, expected f32", op, what,
						   groma_dtype_name(t->dtype));
	if (!groma_tensor_is_contiguous(t))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: %s %s is not contiguous", op, what,
						   groma_tensor_shape_str(t, buf, sizeof(buf)));
	return groma_ok();
}

/* Fails unless t is a contiguous f32 CPU tensor. */
groma_status
groma_check_f32(const char *op, const char *what, const groma_tensor *t)
{
	GROMA_TRY(groma_check_f32_anywhere(op, what, t));
	if (t->device != GROMA_DEVICE_CPU)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: %s is not on the CPU", op, what);
	return groma_ok();
}

/* Fails unless t has ndim dimensions (ndim < 0: at least -ndim). */
groma_status
groma_check_ndim(const char *op, const char *what, const groma_tensor *t, int ndim)
{
	char		buf[64];

	if ((ndim >= 0 && t->ndim != ndim) || (ndim < 0 && t->ndim < -ndim))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: %s %s must have %s%d dimensions", op, what,
						   groma_tensor_shape_str(t, buf, sizeof(buf)), ndim < 0 ? "at least " : "",
						   ndim < 0 ? -ndim : ndim);
	return groma_ok();
}

/* Fails unless a and b have the same shape. */
groma_status
groma_check_same_shape(const char *op, const groma_tensor *a, const groma_tensor *b)
{
	char		x[64],
				y[64];

	if (!groma_tensor_same_shape(a, b))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: shapes %s and %s differ", op,
						   groma_tensor_shape_str(a, x, sizeof(x)), groma_tensor_shape_str(b, y, sizeof(y)));
	return groma_ok();
}

/* Fails unless t's dimension dim equals size. */
groma_status
groma_check_dim(const char *op, const char *what, const groma_tensor *t, int dim, int64_t size)
{
	char		buf[64];

	if (dim < 0)
		dim += t->ndim;
	if (dim < 0 || dim >= t->ndim || t->shape[dim] != size)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: %s %s must have size %lld in dimension %d",
						   op, what, groma_tensor_shape_str(t, buf, sizeof(buf)), (long long) size, dim);
	return groma_ok();
}

/* A malloc'd f32 copy of a contiguous 16-bit CPU weight; see op_check.h. */
groma_status
groma_widen_weight(const char *op, const groma_tensor *w, groma_tensor *wide)
{
	float	   *buf;
	groma_status st;

	wide->data = NULL;
	if (!groma_tensor_is_contiguous(w) || w->device != GROMA_DEVICE_CPU || w->data == NULL)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: w must be a contiguous CPU tensor", op);
	buf = malloc(groma_tensor_numel(w) * sizeof(float) + 1);
	if (buf == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "%s: cannot widen a %s weight", op, groma_dtype_name(w->dtype));
	*wide = groma_tensor_view(buf, GROMA_F32, w->ndim, w->shape);
	st = groma_convert(w, wide);
	if (st.code != GROMA_OK)
	{
		free(buf);
		wide->data = NULL;
	}
	return st;
}
