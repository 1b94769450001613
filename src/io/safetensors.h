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

#endif							/* GROMA_SAFETENSORS_H */
