/*
 * ckpt_fixture.h - writing small torch.save-style checkpoints for tests and
 * the load benchmark: a ZIP writer (stored entries, data 64-byte aligned
 * through local extra-field padding as torch does, optional ZIP64 records)
 * and a pickle builder for state dicts.  Test support only; no library code
 * depends on it, and it does not use unit.h (the benchmark includes it).
 */
#ifndef GROMA_CKPT_FIXTURE_H
#define GROMA_CKPT_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A ZIP archive being written. */
typedef struct fx_zip fx_zip;

/* Creates path; zip64 forces ZIP64 local/central extras and end records. NULL on failure. */
fx_zip	   *fx_zip_create(const char *path, bool zip64);

/* Starts an entry (method is written as given; data is always stored as is). */
bool		fx_zip_begin(fx_zip *z, const char *name, uint16_t method);

/* Appends data to the current entry. */
bool		fx_zip_write(fx_zip *z, const void *data, size_t len);

/* Ends the current entry, patching its local header's CRC and sizes. */
bool		fx_zip_end(fx_zip *z);

/* Adds a whole entry (begin, write, end) stored with method 0. */
bool		fx_zip_add(fx_zip *z, const char *name, const void *data, size_t len);

/* Writes the central directory and end records, closes and frees z (also on failure). */
bool		fx_zip_finish(fx_zip *z);

/* A pickle being built. */
typedef struct fx_pickle
{
	uint8_t    *data;
	size_t		len;
	size_t		cap;
} fx_pickle;

/* Appends raw bytes / one opcode byte. */
void		fx_pk_bytes(fx_pickle *p, const void *bytes, size_t n);
void		fx_pk_op(fx_pickle *p, uint8_t op);

/* Appends a BINUNICODE string, an int (BININT1/BININT2/BININT/LONG1) or a GLOBAL. */
void		fx_pk_str(fx_pickle *p, const char *s);
void		fx_pk_int(fx_pickle *p, int64_t v);
void		fx_pk_global(fx_pickle *p, const char *module, const char *name);

/* Frees the pickle's bytes. */
void		fx_pk_free(fx_pickle *p);

/* One tensor of a state dict, as torch.save records it. */
typedef struct fx_tensor
{
	const char *name;
	const char *storage_type;	/* "FloatStorage", "HalfStorage", ... */
	const char *key;
	int64_t		storage_numel;
	int64_t		offset;
	int			ndim;
	int64_t		shape[8];
	int64_t		stride[8];
} fx_tensor;

/* Appends a protocol-2 OrderedDict state dict pickle of the tensors, ending with STOP. */
void		fx_pk_state_dict(fx_pickle *p, const fx_tensor *tensors, int count);

/* One storage entry's bytes. */
typedef struct fx_storage
{
	const char *key;
	const void *data;
	size_t		len;
} fx_storage;

/*
 * Writes a checkpoint: <prefix>/data.pkl, <prefix>/byteorder ("little"),
 * <prefix>/data/<key> per storage, <prefix>/version.  False on I/O failure.
 */
bool		fx_write_checkpoint(const char *path, const char *prefix, const fx_pickle *pickle,
								const fx_storage *storages, int count, bool zip64);

/* Writes len bytes to path; false on failure. */
bool		fx_write_file(const char *path, const void *data, size_t len);

/* Makes a fresh directory /tmp/groma-ckpt-<tag>-XXXXXX into buf (at least 64 bytes); false on failure. */
bool		fx_temp_dir(const char *tag, char *buf, size_t buflen);

/* Removes a directory made by fx_temp_dir and the plain files in it. */
void		fx_remove_dir(const char *dir);

#endif							/* GROMA_CKPT_FIXTURE_H */
