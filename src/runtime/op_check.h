/*
 * op_check.h - argument checks (and the 16-bit weight widening) shared by
 * the CPU ops.
 */
#ifndef GROMA_OP_CHECK_H
#define GROMA_OP_CHECK_H

#include "tensor.h"

/* Fails unless t is a contiguous f32 tensor with data, on any device (for model scripts). */
groma_status groma_check_f32_anywhere(const char *op, const char *what, const groma_tensor *t);

/* Fails unless t is a contiguous f32 CPU tensor; what names the argument. */
groma_status groma_check_f32(const char *op, const char *what, const groma_tensor *t);

/* Fails unless t has ndim dimensions (ndim < 0: at least -ndim). */
groma_status groma_check_ndim(const char *op, const char *what, const groma_tensor *t, int ndim);

/* Fails unless a and b have the same shape. */
groma_status groma_check_same_shape(const char *op, const groma_tensor *a, const groma_tensor *b);

/* Fails unless t's dimension dim equals size. */
groma_status groma_check_dim(const char *op, const char *what, const groma_tensor *t, int dim,
							 int64_t size);

/*
 * A malloc'd f32 copy of a contiguous 16-bit CPU weight w (bf16 or f16) in
 * *wide, for ops that widen 16-bit weights per call; the caller frees
 * wide->data.
 */
groma_status groma_widen_weight(const char *op, const groma_tensor *w, groma_tensor *wide);

/* Softmax of one row in place (max-subtracted; an all -inf row becomes zeros). */
void		groma_softmax_row(float *row, int64_t n);


#endif							/* GROMA_OP_CHECK_H */
