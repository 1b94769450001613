/*
 * tensor.h - the tensor type every op and model file works with.
 *
 * A tensor is a view: a data pointer, a dtype, up to four dimensions with
 * explicit strides (in elements) and a device tag.  It never owns memory;
 * arenas (arena.h) and weight files (src/io) do.  Batch is the leading
 * dimension wherever an op takes a batch.
 */
#ifndef GROMA_TENSOR_H
#define GROMA_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define GROMA_MAX_DIMS 4

typedef enum groma_dtype
{
	GROMA_F32 = 0,
	GROMA_F16,
	GROMA_BF16,
	GROMA_I32,
	GROMA_I64,
	GROMA_U8,
	GROMA_I8					/* quantized weights: value = data[i] · scale[row] */
} groma_dtype;

typedef enum groma_device
{
	GROMA_DEVICE_CPU = 0,
	GROMA_DEVICE_CUDA
} groma_device;

typedef struct groma_tensor
{
	void	   *data;			/* first element (already offset) */
	groma_dtype dtype;
	groma_device device;
	int			ndim;			/* 0..GROMA_MAX_DIMS; 0 is a scalar */
	int64_t		shape[GROMA_MAX_DIMS];
	int64_t		stride[GROMA_MAX_DIMS];	/* in elements, may be 0 (broadcast) */
	float	   *scale;			/* i8 only: one f32 scale per index of dim 0, where data lives; else NULL */
} groma_tensor;

/* Returns the size in bytes of one element. */
size_t		groma_dtype_size(groma_dtype dtype);

/* Returns a short lower-case name ("f32", "bf16", ...). */
const char *groma_dtype_name(groma_dtype dtype);

/* Returns a contiguous CPU view of data with the given shape (ndim <= 4). */
groma_tensor groma_tensor_view(void *data, groma_dtype dtype, int ndim, const int64_t *shape);

/* Shorthands for contiguous f32 CPU views of 1..4 dimensions. */
groma_tensor groma_f32_1d(float *data, int64_t n0);
groma_tensor groma_f32_2d(float *data, int64_t n0, int64_t n1);
groma_tensor groma_f32_3d(float *data, int64_t n0, int64_t n1, int64_t n2);
groma_tensor groma_f32_4d(float *data, int64_t n0, int64_t n1, int64_t n2, int64_t n3);

/* Returns the number of elements (1 for a scalar). */
int64_t		groma_tensor_numel(const groma_tensor *t);

/* Returns the number of bytes a contiguous copy takes. */
size_t		groma_tensor_nbytes(const groma_tensor *t);

/* Returns true when strides are the row-major strides of the shape. */
bool		groma_tensor_is_contiguous(const groma_tensor *t);

/* Returns true when both tensors have the same ndim and shape. */
bool		groma_tensor_same_shape(const groma_tensor *a, const groma_tensor *b);

/* Formats the shape as "[2,3,4]" into buf (for error messages); returns buf. */
const char *groma_tensor_shape_str(const groma_tensor *t, char *buf, size_t len);

/*
 * Reinterprets a contiguous tensor with a new shape of the same element
 * count; fails with GROMA_ERR_INVALID_ARGUMENT otherwise.
 */
groma_status groma_tensor_reshape(const groma_tensor *t, int ndim, const int64_t *shape,
								  groma_tensor *out);

/* Returns a view with dimensions reordered: out dim i is t's dim perm[i]. */
groma_status groma_tensor_permute(const groma_tensor *t, const int *perm, groma_tensor *out);

/* Returns a view of indices [start, start + length) along dim. */
groma_status groma_tensor_narrow(const groma_tensor *t, int dim, int64_t start, int64_t length,
								 groma_tensor *out);

/* Returns the float at a multi-index of a CPU tensor, an i8 one times its row's scale (tests, slow paths). */
float		groma_tensor_get_f32(const groma_tensor *t, const int64_t *index);

/* Converts one bf16 or f16 value (bits) to float, and float to bf16 or f16 (round to nearest even). */
float		groma_bf16_to_f32(uint16_t bits);
float		groma_f16_to_f32(uint16_t bits);
uint16_t	groma_f32_to_bf16(float value);
uint16_t	groma_f32_to_f16(float value);

/* Element i of data, an f32, bf16 or f16 array (type), as f32 (exact). */
static inline float
groma_element_f32(const void *data, int64_t i, groma_dtype type)
{
	if (type == GROMA_BF16)
		return groma_bf16_to_f32(((const uint16_t *) data)[i]);
	if (type == GROMA_F16)
		return groma_f16_to_f32(((const uint16_t *) data)[i]);
	return ((const float *) data)[i];
}

/* Element i of data, an f32, bf16 or f16 array (type), = x (rounded to nearest even when 16-bit). */
static inline void
groma_set_element_f32(void *data, int64_t i, groma_dtype type, float x)
{
	if (type == GROMA_BF16)
		((uint16_t *) data)[i] = groma_f32_to_bf16(x);
	else if (type == GROMA_F16)
		((uint16_t *) data)[i] = groma_f32_to_f16(x);
	else
		((float *) data)[i] = x;
}

#endif							/* GROMA_TENSOR_H */
