/*
 * op_int8_cpu.c - weight-only int8 on the CPU: rows quantized with one
 * symmetric scale each, their dequantization, and linear with int8 weights
 * (the twin of the GPU's int8 kernels).
 *
 * A row r of an i8 tensor w[R, C] stands for w[r, c] · scale[r], where
 * scale[r] = max_c |v[r, c]| / 127 of the f32 row v it was made from and
 * w[r, c] = v[r, c] / scale[r] rounded to nearest even (a zero row has
 * scale 0 and zeros).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_parallel.h"
#include "op_check.h"
#include "ops.h"

/* Rows of w dequantized and multiplied together: fixed by the shape, so results do not depend on threads. */
#define INT8_BLOCK_ROWS 64

/* The scale of a row of c values: its largest magnitude over 127 (0 for a zero row). */
float
groma_int8_row_scale(const float *row, int64_t c)
{
	float		amax = 0.0f;

	for (int64_t i = 0; i < c; i++)
		amax = fmaxf(amax, fabsf(row[i]));
	return amax / 127.0f;
}

/* One value quantized with its row's scale: v / scale to nearest even, within ±127. */
int8_t
groma_int8_quantize(float v, float scale)
{
	float		q = scale > 0.0f ? rintf(v / scale) : 0.0f;

	return (int8_t) fminf(127.0f, fmaxf(-127.0f, q));
}

/* Rows of a quantize or dequantize, split over the pool. */
typedef struct int8_rows
{
	const void *src;
	void	   *dst;
	float	   *scale;
	int64_t		cols;
} int8_rows;

/* Quantizes rows [begin, end) of an f32 [R, C] into i8 with their scales. */
static void
quantize_range(void *ctx, int64_t begin, int64_t end, int part)
{
	int8_rows  *a = ctx;

	(void) part;
	for (int64_t r = begin; r < end; r++)
	{
		const float *v = (const float *) a->src + r * a->cols;
		int8_t	   *q = (int8_t *) a->dst + r * a->cols;
		float		s = groma_int8_row_scale(v, a->cols);

		a->scale[r] = s;
		for (int64_t c = 0; c < a->cols; c++)
			q[c] = groma_int8_quantize(v[c], s);
	}
}

/* Dequantizes rows [begin, end) of an i8 [R, C] into f32. */
static void
dequantize_range(void *ctx, int64_t begin, int64_t end, int part)
{
	int8_rows  *a = ctx;

	(void) part;
	for (int64_t r = begin; r < end; r++)
	{
		const int8_t *q = (const int8_t *) a->src + r * a->cols;
		float	   *v = (float *) a->dst + r * a->cols;
		float		s = a->scale[r];

		for (int64_t c = 0; c < a->cols; c++)
			v[c] = (float) q[c] * s;
	}
}

/* Quantizes f32 src into i8 dst (and dst->scale), or dequantizes i8 src into f32 dst; CPU, contiguous, same shape. */
groma_status
groma_convert_int8_cpu(const groma_tensor *src, groma_tensor *dst)
{
	const groma_tensor *q = src->dtype == GROMA_I8 ? src : dst;
	int8_rows	a;
	int64_t		rows = q->ndim > 0 ? q->shape[0] : 1;

	if (q->scale == NULL)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "convert: the i8 tensor has no row scales");
	a.src = src->data;
	a.dst = dst->data;
	a.scale = q->scale;
	a.cols = rows > 0 ? groma_tensor_numel(q) / rows : 0;
	groma_parallel_for(rows, 16, src->dtype == GROMA_I8 ? dequantize_range : quantize_range, &a);
	return groma_ok();
}

/* A linear with int8 weights, split over blocks of output features. */
typedef struct int8_linear
{
	const float *x;				/* [m, k] */
	const int8_t *w;			/* [n, k] */
	const float *scale;			/* [n] */
	float	   *y;				/* [m, n], holding the bias when beta is 1 */
	int64_t		m,
				n,
				k;
	float		beta;
	bool		failed;			/* a part could not get its block buffer */
} int8_linear;

/* Output features of blocks [begin, end): each block's rows dequantized to f32, then one GEMM. */
static void
int8_linear_range(void *ctx, int64_t begin, int64_t end, int part)
{
	int8_linear *a = ctx;
	float	   *block = malloc((size_t) (INT8_BLOCK_ROWS * a->k) * sizeof(float));

	(void) part;
	if (block == NULL)
	{
		__atomic_store_n(&a->failed, true, __ATOMIC_RELAXED);
		return;
	}
	for (int64_t bi = begin; bi < end; bi++)
	{
		int64_t		o0 = bi * INT8_BLOCK_ROWS,
					rows = a->n - o0 < INT8_BLOCK_ROWS ? a->n - o0 : INT8_BLOCK_ROWS;
		int8_rows	d = {a->w + o0 * a->k, block, (float *) a->scale + o0, a->k};

		dequantize_range(&d, 0, rows, 0);
		/* block: [rows, k] f32; y[:, o0 : o0 + rows] = x · blockᵀ (+ bias) */
		groma_sgemm(false, true, a->m, rows, a->k, 1.0f, a->x, a->k, block, a->k, a->beta, a->y + o0, a->n);
	}
	free(block);
}

/* y[m, n] = x[m, k] · (w · scale)ᵀ (+ y when beta is 1) for contiguous CPU operands; see op_check.h. */
groma_status
groma_linear_int8_cpu(const float *x, const groma_tensor *w, float beta, float *y, int64_t m, int64_t n, int64_t k)
{
	int8_linear a = {x, w->data, w->scale, y, m, n, k, beta, false};

	if (w->scale == NULL || !groma_tensor_is_contiguous(w))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "linear: an i8 weight must be contiguous with row scales");
	groma_parallel_for((n + INT8_BLOCK_ROWS - 1) / INT8_BLOCK_ROWS, 1, int8_linear_range, &a);
	if (a.failed)
		return groma_error(GROMA_ERR_NO_MEMORY, "linear: no memory for a block of dequantized int8 weights");
	return groma_ok();
}
