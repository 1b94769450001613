/*
 * weight_source.h - how model files get their weights: by original tensor
 * name, with the expected shape checked, as f32 views.
 *
 * A weight source is anything that can find a tensor by name (a
 * safetensors file, a PyTorch checkpoint).  Binding returns the stored
 * tensor itself when it is already contiguous f32 (no copy: it stays in the
 * memory-mapped file), or a converted copy carved from a weights arena.
 */
#ifndef GROMA_WEIGHT_SOURCE_H
#define GROMA_WEIGHT_SOURCE_H

#include "../io/safetensors.h"
#include "../runtime/arena.h"
#include "../runtime/tensor.h"

typedef struct groma_weight_source
{
	void	   *ctx;
	/* Finds a tensor by its original name; GROMA_ERR_FORMAT naming it when absent. */
	groma_status (*find) (void *ctx, const char *name, groma_tensor *out);
	/* dtype of the linear-layer matrices: f32 (0, the default), bf16 or f16 (device arenas), i8 (see groma_placed_dtype) */
	groma_dtype matrix_dtype;
} groma_weight_source;

/*
 * True for the weights that only ever feed groma_linear or groma_conv2d
 * (2-D "*.weight" other than embedding tables and learned queries, and the
 * 4-D convolution kernels), the ones that may be stored in 16 bits.
 */
bool		groma_is_matrix_weight(const char *name, int ndim);

/*
 * The dtype the weight called name is placed in, for a model whose
 * matrices were asked to be matrix_dtype on device: f32 for everything
 * but matrix weights; bf16/f16 matrices on a GPU (f32 on the CPU); i8
 * (weight-only int8, row scales) for the language model's layer matrices
 * on any device, its other matrices then bf16 on a GPU and f32 on the CPU.
 */
groma_dtype groma_placed_dtype(groma_dtype matrix_dtype, groma_device device, const char *name, int ndim);

/*
 * Returns the bytes of stored weights bound so far by this process (all
 * loads together): groma-server reports load progress as the growth of
 * this count during a load, against the checkpoint files' size.
 */
uint64_t	groma_weights_bound_bytes(void);

/*
 * Binds the weight named by the printf-style fmt, checking it has exactly
 * ndim dimensions of the given shape (the first mismatch is reported with
 * both shapes); converts bf16/f16 or strided storage into copies.  When
 * copies is a device arena every weight is uploaded into it: as f32, or
 * in src->matrix_dtype for matrix weights.  A stored tensor without data (a
 * random source) becomes random values in copies (uniform in ±0.02, seeded
 * by the name), generated where copies lives.  Fails with
 * GROMA_ERR_CANCELLED, binding nothing, when the calling thread's cancel
 * flag is set (groma_cancel_watch): a server's shutdown stops a load so.
 */
groma_status groma_bind(const groma_weight_source *src, groma_arena *copies, groma_tensor *out,
						int ndim, const int64_t *shape, const char *fmt,...)
			__attribute__((format(printf, 6, 7)));

/* Returns a weight source over an opened safetensors file (which must outlive it). */
groma_weight_source groma_weight_source_safetensors(groma_st_file *file);

#endif							/* GROMA_WEIGHT_SOURCE_H */
