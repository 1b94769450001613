/*
 * matrix_view.c - matmul operand bookkeeping shared by the CPU and CUDA ops.
 */
#include "matrix_view.h"

/* Describes a matmul operand; see matrix_view.h. */
groma_status
groma_matrix_view_of(const char *what, const groma_tensor *t, groma_device device, groma_matrix_view *v)
{
	char		buf[64];
	int			nb;

	if (t->dtype != GROMA_F32 || t->device != device || t->data == NULL)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "matmul: %s must be an f32 %s tensor", what,
						   device == GROMA_DEVICE_CPU ? "CPU" : "CUDA");
	if (t->ndim < 2 || (t->stride[t->ndim - 1] != 1 && t->shape[t->ndim - 1] > 1))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT,
						   "matmul: %s %s needs 2-4 dimensions and a contiguous last one", what,
						   groma_tensor_shape_str(t, buf, sizeof(buf)));
	nb = t->ndim - 2;
	v->data = t->data;
	for (int i = 0; i < 2; i++)
	{
		int			d = i - (2 - nb);	/* right-align the batch dims */

		v->batch[i] = d >= 0 ? t->shape[d] : 1;
		v->bstride[i] = d >= 0 && t->shape[d] > 1 ? t->stride[d] : 0;
	}
	v->rows = t->shape[t->ndim - 2];
	v->cols = t->shape[t->ndim - 1];
	v->ld = t->shape[t->ndim - 2] > 1 ? t->stride[t->ndim - 2] : v->cols;
	if (v->ld < v->cols)
		v->ld = v->cols;
	return groma_ok();
}

/* Checks the product's shapes; see matrix_view.h. */
groma_status
groma_matrix_product_dims(const groma_matrix_view *a, bool trans_a, const groma_matrix_view *b, bool trans_b,
						  const groma_matrix_view *c, int64_t *m, int64_t *k, int64_t *n)
{
	*m = trans_a ? a->cols : a->rows;
	*k = trans_a ? a->rows : a->cols;
	*n = trans_b ? b->rows : b->cols;
	if ((trans_b ? b->cols : b->rows) != *k || c->rows != *m || c->cols != *n)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT,
						   "matmul: op(a) is %lldx%lld, op(b) %lldx%lld, c %lldx%lld",
						   (long long) *m, (long long) *k, (long long) (trans_b ? b->cols : b->rows),
						   (long long) *n, (long long) c->rows, (long long) c->cols);
	for (int i = 0; i < 2; i++)
		if ((a->batch[i] != 1 && a->batch[i] != c->batch[i]) || (b->batch[i] != 1 && b->batch[i] != c->batch[i]))
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "matmul: batch dimensions do not match c");
	return groma_ok();
}
