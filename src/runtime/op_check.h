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

/* The int8 scale of a row of c values: its largest magnitude over 127 (0 for a zero row). */
float		groma_int8_row_scale(const float *row, int64_t c);

/* v quantized with its row's scale: v / scale rounded to nearest even, clamped to ±127 (0 when scale is 0). */
int8_t		groma_int8_quantize(float v, float scale);

/* groma_convert between f32 and i8 on the CPU (contiguous, same shape, checked by the caller). */
groma_status groma_convert_int8_cpu(const groma_tensor *src, groma_tensor *dst);

/*
 * y[m, n] = x[m, k] · (w · scale)ᵀ + beta · y (beta 0 or 1) for a
 * contiguous i8 CPU weight w[n, k] with row scales: blocks of w's rows are
 * dequantized to f32 and multiplied by OpenBLAS.
 */
groma_status groma_linear_int8_cpu(const float *x, const groma_tensor *w, float beta, float *y, int64_t m,
								   int64_t n, int64_t k);

/* Softmax of one row in place (max-subtracted; an all -inf row becomes zeros). */
void		groma_softmax_row(float *row, int64_t n);


#endif							/* GROMA_OP_CHECK_H */
