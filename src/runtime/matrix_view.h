/*
 * matrix_view.h - how the matmul ops (CPU and CUDA) see an operand: up to
 * two batch dimensions over a row-major matrix whose last dimension is
 * contiguous.  Host-side bookkeeping only, shared by both devices.
 */
#ifndef GROMA_MATRIX_VIEW_H
#define GROMA_MATRIX_VIEW_H

#include "tensor.h"

typedef struct groma_matrix_view
{
	const float *data;
	int64_t		batch[2];		/* batch sizes (1 when absent) */
	int64_t		bstride[2];		/* batch strides in elements (0 broadcasts a size-1 batch) */
	int64_t		rows,
				cols,
				ld;				/* leading dimension: the row stride */
} groma_matrix_view;

/*
 * Describes t (2..4 dims, f32, contiguous last dimension, on device) as a
 * matrix view; GROMA_ERR_INVALID_ARGUMENT naming what otherwise.
 */
groma_status groma_matrix_view_of(const char *what, const groma_tensor *t, groma_device device,
								  groma_matrix_view *v);

/*
 * Checks that op(a) · op(b) fits c (and the batches broadcast) and returns
 * m, k, n of the product.
 */
groma_status groma_matrix_product_dims(const groma_matrix_view *a, bool trans_a, const groma_matrix_view *b,
									   bool trans_b, const groma_matrix_view *c, int64_t *m, int64_t *k,
									   int64_t *n);

#endif							/* GROMA_MATRIX_VIEW_H */
