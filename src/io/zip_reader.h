/*
 * zip_reader.h - the ZIP container of PyTorch checkpoints, read in place.
 *
 * torch.save writes a ZIP archive of stored (uncompressed) entries:
 * <prefix>/data.pkl, <prefix>/data/<key> per storage, <prefix>/version and
 * more.  A file larger than 4 GiB uses ZIP64 records.  The reader maps the
 * archive (or borrows a caller's buffer), parses the end of central directory
 * and the central directory, and computes where every entry's bytes start, so
 * tensors are views into the mapping and nothing is copied.  Every offset and
 * length is checked against the archive size before it is used.
 */
#ifndef GROMA_ZIP_READER_H
#define GROMA_ZIP_READER_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/status.h"

/* ZIP compression methods groma names in messages; only STORED is read. */
#define GROMA_ZIP_STORED 0
#define GROMA_ZIP_DEFLATED 8

/* One entry of the central directory, with its data located. */
typedef struct groma_zip_entry
{
	const char *name;			/* NUL-terminated copy of the entry name */
	uint64_t	data_offset;	/* first data byte, from the archive start */
	uint64_t	compressed_size;	/* bytes stored in the archive */
	uint64_t	uncompressed_size;
	uint32_t	crc32;
	uint16_t	method;			/* GROMA_ZIP_STORED, GROMA_ZIP_DEFLATED, ... */
	uint16_t	flags;			/* general purpose bit flags */
} groma_zip_entry;

/* An opened archive (opaque). */
typedef struct groma_zip groma_zip;

/* Maps path read-only and parses its directory; *out is NULL on failure. */
groma_status groma_zip_open(const char *path, groma_zip **out);

/*
 * Parses an archive held in caller memory (which must outlive the reader);
 * label names it in messages.  *out is NULL on failure.
 */
groma_status groma_zip_open_memory(const void *data, size_t size, const char *label,
								   groma_zip **out);

/* Unmaps (when mapped) and frees a reader; safe on NULL. */
void		groma_zip_close(groma_zip *zip);

/* Returns the path or label given when the archive was opened. */
const char *groma_zip_label(const groma_zip *zip);

/* Returns the archive size in bytes. */
uint64_t	groma_zip_size(const groma_zip *zip);

/* Returns the number of entries. */
size_t		groma_zip_entry_count(const groma_zip *zip);

/* Returns entry index in central directory order, or NULL past the end. */
const groma_zip_entry *groma_zip_entry_at(const groma_zip *zip, size_t index);

/* Returns the entry with exactly this name, or NULL when there is none. */
const groma_zip_entry *groma_zip_find(const groma_zip *zip, const char *name);

/*
 * Points *data at a stored entry's bytes inside the archive and sets *size;
 * GROMA_ERR_UNSUPPORTED naming the entry when it is compressed or encrypted.
 */
groma_status groma_zip_stored_data(const groma_zip *zip, const groma_zip_entry *entry,
								   const uint8_t **data, uint64_t *size);

/*
 * Like groma_zip_stored_data, and also checks the entry's CRC-32 (for small
 * entries such as data.pkl: a tensor storage is never checksummed, since that
 * would read the whole multi-GB file at open).  GROMA_ERR_FORMAT on mismatch.
 */
groma_status groma_zip_checked_data(const groma_zip *zip, const groma_zip_entry *entry,
									const uint8_t **data, uint64_t *size);

/* Returns the running CRC-32 (ZIP polynomial) of crc extended by len bytes; start with 0. */
uint32_t	groma_zip_crc32(uint32_t crc, const void *data, size_t len);

/*
 * Asks the kernel to read [offset, offset + length) of a mapped archive ahead
 * (madvise WILLNEED); a no-op for memory archives and out-of-range requests.
 */
void		groma_zip_prefetch(const groma_zip *zip, uint64_t offset, uint64_t length);

#endif							/* GROMA_ZIP_READER_H */
