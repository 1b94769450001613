/*
 * checkpoint.h - the tensors of a Groma checkpoint, by their original names.
 *
 * Two forms are read: the original release (a folder with pytorch_model.bin,
 * the PyTorch zip format, plus config.json and tokenizer files) and the
 * converted form groma-convert writes (one model.safetensors beside the same
 * json and tokenizer files).  Either way every tensor is a view into the
 * read-only mapping of the weights file: a data pointer, dtype, shape and
 * strides in elements.  Views may alias (several names sharing a storage,
 * with offsets and strides); each was checked at open to lie inside its
 * storage, to have no more elements than its storage (no expansion through
 * zero strides), and its element count times element size fits in size_t.
 */
#ifndef GROMA_CHECKPOINT_H
#define GROMA_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../runtime/status.h"
#include "../runtime/tensor.h"
#include "pickle_reader.h"
#include "safetensors.h"

#define GROMA_CKPT_MAX_DIMS GROMA_PICKLE_MAX_DIMS

typedef enum groma_ckpt_format
{
	GROMA_CKPT_PYTORCH_ZIP,		/* pytorch_model.bin written by torch.save */
	GROMA_CKPT_SAFETENSORS		/* model.safetensors written by groma-convert */
} groma_ckpt_format;

/* One named tensor: a read-only strided view into the mapped file. */
typedef struct groma_ckpt_tensor
{
	const char *name;
	groma_st_dtype dtype;
	int			ndim;
	int64_t		shape[GROMA_CKPT_MAX_DIMS];
	int64_t		stride[GROMA_CKPT_MAX_DIMS];	/* in elements */
	int64_t		storage_offset; /* in elements, from the storage start */
	const void *data;			/* element [0, 0, ...]: storage + storage_offset */
	const void *storage;		/* first byte of the storage the view lies in */
	uint64_t	storage_bytes;
	const char *storage_key;	/* PyTorch storage key (aliases share it); NULL for safetensors */
} groma_ckpt_tensor;

/* An opened checkpoint (opaque). */
typedef struct groma_checkpoint groma_checkpoint;

/*
 * Opens a checkpoint folder (model.safetensors preferred, else
 * pytorch_model.bin) or a weights file given directly; *out is NULL on
 * failure.  GROMA_ERR_IO when nothing can be read, GROMA_ERR_UNSUPPORTED for
 * sharded or pre-1.6 torch checkpoints, GROMA_ERR_FORMAT/LIMIT naming the
 * file and tensor for anything malformed.
 */
groma_status groma_checkpoint_open(const char *path, groma_checkpoint **out);

/*
 * Opens a PyTorch zip checkpoint held in caller memory (which must outlive
 * the checkpoint); label names it in messages.  Used by the fuzzer and tests.
 */
groma_status groma_checkpoint_open_memory(const void *data, size_t size, const char *label,
										  groma_checkpoint **out);

/* Unmaps and frees a checkpoint; every view from it becomes invalid.  Safe on NULL. */
void		groma_checkpoint_close(groma_checkpoint *ckpt);

/* Returns which form the weights were read from. */
groma_ckpt_format groma_checkpoint_format(const groma_checkpoint *ckpt);

/* Returns the weights file path (or the memory label). */
const char *groma_checkpoint_path(const groma_checkpoint *ckpt);

/* Returns the folder holding config.json and tokenizer files, or NULL for memory checkpoints. */
const char *groma_checkpoint_dir(const groma_checkpoint *ckpt);

/* Returns the number of named tensors (aliases counted once per name). */
size_t		groma_checkpoint_count(const groma_checkpoint *ckpt);

/* Returns tensor index in file order, or NULL past the end. */
const groma_ckpt_tensor *groma_checkpoint_tensor_at(const groma_checkpoint *ckpt, size_t index);

/* Returns the tensor with this original name, or NULL when there is none. */
const groma_ckpt_tensor *groma_checkpoint_find(const groma_checkpoint *ckpt, const char *name);

/* Finds a tensor by name; GROMA_ERR_FORMAT naming it and the file when absent. */
groma_status groma_checkpoint_get(const groma_checkpoint *ckpt, const char *name,
								  const groma_ckpt_tensor **out);

/*
 * Returns a runtime tensor view (src/runtime/tensor.h) of a named tensor;
 * GROMA_ERR_UNSUPPORTED when it has more than 4 dimensions, a dtype the
 * runtime lacks, or data not aligned to its element size.  The view points
 * into read-only memory: never write through it.
 */
groma_status groma_checkpoint_view(const groma_checkpoint *ckpt, const char *name,
								   groma_tensor *out);

/* Returns the element count of a view (1 for a scalar, 0 when a dimension is 0). */
int64_t		groma_ckpt_tensor_numel(const groma_ckpt_tensor *t);

/* Returns true when strides are the row-major strides of the shape (size-1 dims ignored). */
bool		groma_ckpt_tensor_is_contiguous(const groma_ckpt_tensor *t);

/*
 * Copies elements [first, first + count) of the view in row-major order into
 * dst as dtype (float types convert with round-to-nearest-even; other types
 * only to themselves).  GROMA_ERR_INVALID_ARGUMENT past the end,
 * GROMA_ERR_UNSUPPORTED for a conversion that is not offered.
 */
groma_status groma_ckpt_tensor_read(const groma_ckpt_tensor *t, int64_t first, int64_t count,
									groma_st_dtype dtype, void *dst);

/* Asks the kernel to start reading the whole weights file (madvise WILLNEED); no-op for memory. */
void		groma_checkpoint_prefetch(const groma_checkpoint *ckpt);

#endif							/* GROMA_CHECKPOINT_H */
