/*
 * safetensors.h - reading and writing the safetensors format.
 *
 * A file is an 8-byte little-endian header length N, N bytes of JSON mapping
 * tensor names to {dtype, shape, data_offsets}, then the raw data.  Files are
 * memory-mapped read-only; every offset and size is checked against the file
 * before a tensor is handed out.
 */
#ifndef GROMA_SAFETENSORS_H
#define GROMA_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/status.h"

#define GROMA_ST_MAX_DIMS 8

/* Element types safetensors names (F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, F64). */
typedef enum groma_st_dtype
{
	GROMA_ST_F32,
	GROMA_ST_F16,
	GROMA_ST_BF16,
	GROMA_ST_F64,
	GROMA_ST_I64,
	GROMA_ST_I32,
	GROMA_ST_I16,
	GROMA_ST_I8,
	GROMA_ST_U8,
	GROMA_ST_BOOL
} groma_st_dtype;

/*
 * One tensor: a view into the mapped file, or caller memory for writing.
 * data is only as aligned as the writer made it (the format does not
 * require padding): copy before typed access when it matters.
 */
typedef struct groma_st_tensor
{
	const char *name;
	groma_st_dtype dtype;
	int			ndim;
	int64_t		shape[GROMA_ST_MAX_DIMS];
	const void *data;
	size_t		nbytes;
} groma_st_tensor;

/* An opened file: its mapping and parsed header (opaque to callers). */
typedef struct groma_st_file groma_st_file;

/* Returns the size in bytes of one element of dtype. */
size_t		groma_st_dtype_size(groma_st_dtype dtype);

/* Returns the safetensors name of a dtype ("F32", ...). */
const char *groma_st_dtype_name(groma_st_dtype dtype);

/* Opens and validates path; *out is NULL on failure. */
groma_status groma_st_open(const char *path, groma_st_file **out);

/* Unmaps and frees an opened file; safe on NULL. */
void		groma_st_close(groma_st_file *file);

/* Finds a tensor by name; GROMA_ERR_FORMAT naming it when absent. */
groma_status groma_st_get(const groma_st_file *file, const char *name, groma_st_tensor *out);

/* Returns a string from __metadata__, or NULL when absent. */
const char *groma_st_metadata(const groma_st_file *file, const char *key);

/* Writes tensors (and optional metadata key/value pairs) to path. */
groma_status groma_st_write(const char *path, const groma_st_tensor *tensors, int count,
							const char *const *metadata_pairs, int metadata_count);

/* Calls fn(name, arg) for every tensor in header order; stops at and returns fn's first failure. */
groma_status groma_st_foreach(const groma_st_file *file,
							  groma_status (*fn) (const char *name, void *arg), void *arg);

/* Asks the kernel to read the whole mapped file ahead (madvise WILLNEED). */
void		groma_st_prefetch(const groma_st_file *file);

/*
 * Produces bytes [offset, offset + len) of tensor index's data into dst;
 * offset and len are multiples of the tensor's element size.  A failure
 * aborts the write.
 */
typedef groma_status (*groma_st_fill_fn) (int index, size_t offset, void *dst, size_t len,
										  void *arg);

/*
 * Writes like groma_st_write, but takes each tensor's bytes from fill in
 * chunks of a few MiB instead of tensors[i].data (which is ignored), so
 * converted copies of multi-GB checkpoints never sit in memory whole.
 */
groma_status groma_st_write_filled(const char *path, const groma_st_tensor *tensors, int count,
								   const char *const *metadata_pairs, int metadata_count,
								   groma_st_fill_fn fill, void *arg);

#endif							/* GROMA_SAFETENSORS_H */
