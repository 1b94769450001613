/*
 * zip_reader.c - the ZIP container of PyTorch checkpoints, read in place.
 *
 * Written by hand rather than with libzip or minizip: those libraries hand
 * out entry contents through their own read calls (copies into caller
 * buffers) and do not report where an entry's bytes start in the file, which
 * is exactly what a memory-mapped, copy-free tensor view needs.  The subset
 * torch.save produces is small: stored entries, ZIP64 records for large
 * files, and local headers whose extra field (alignment padding) differs from
 * the central directory's, so data offsets come from the local headers.
 */
#include "zip_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_ZIP64_EOCD 0x06064b50u
#define SIG_ZIP64_LOCATOR 0x07064b50u

#define LOCAL_HEADER_SIZE 30
#define CENTRAL_HEADER_SIZE 46
#define EOCD_SIZE 22
#define ZIP64_EOCD_SIZE 56
#define ZIP64_LOCATOR_SIZE 20
#define MAX_COMMENT 65535
#define ZIP64_EXTRA_ID 0x0001

#define FLAG_ENCRYPTED 0x0001

struct groma_zip
{
	const uint8_t *base;		/* whole archive */
	uint64_t	size;
	int			mapped;			/* base came from mmap and is ours to unmap */
	char	   *label;			/* path or caller label, for messages */
	groma_zip_entry *entries;	/* central directory order */
	size_t		count;
	const groma_zip_entry **by_name;	/* sorted for lookups */
	char	   *names;			/* one block holding every entry name */
};

/* Returns the little-endian 16-bit value at p. */
static uint16_t
read_u16(const uint8_t *p)
{
	return (uint16_t) (p[0] | (p[1] << 8));
}

/* Returns the little-endian 32-bit value at p. */
static uint32_t
read_u32(const uint8_t *p)
{
	return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) |
		((uint32_t) p[3] << 24);
}

/* Returns the little-endian 64-bit value at p. */
static uint64_t
read_u64(const uint8_t *p)
{
	return (uint64_t) read_u32(p) | ((uint64_t) read_u32(p + 4) << 32);
}

/* Returns true when [offset, offset + length) lies inside [0, limit), without overflow. */
static bool
range_inside(uint64_t offset, uint64_t length, uint64_t limit)
{
	return offset <= limit && length <= limit - offset;
}

/* Returns the running CRC-32 of crc extended by len bytes (table built per call: 2 KiB of work). */
uint32_t
groma_zip_crc32(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t	table[256];

	for (uint32_t i = 0; i < 256; i++)
	{
		uint32_t	c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		table[i] = c;
	}
	crc = ~crc;
	for (size_t i = 0; i < len; i++)
		crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
	return ~crc;
}

/* Unmaps (when mapped) and frees a reader; safe on NULL. */
void
groma_zip_close(groma_zip *zip)
{
	if (zip == NULL)
		return;
	if (zip->mapped && zip->base != NULL)
		munmap((void *) zip->base, (size_t) zip->size);
	free(zip->entries);
	free(zip->by_name);
	free(zip->names);
	free(zip->label);
	free(zip);
}

/* Finds the end of central directory record; its position goes to *eocd. */
static groma_status
find_eocd(const groma_zip *zip, uint64_t *eocd)
{
	uint64_t	lowest;

	if (zip->size < EOCD_SIZE)
		return groma_error(GROMA_ERR_FORMAT, "\"%s\" is too short to be a zip archive",
						   zip->label);
	lowest = zip->size - EOCD_SIZE > MAX_COMMENT ? zip->size - EOCD_SIZE - MAX_COMMENT : 0;
	/* Scan back from the end: the record is followed only by its comment. */
	for (uint64_t pos = zip->size - EOCD_SIZE;; pos--)
	{
		const uint8_t *p = zip->base + pos;

		if (read_u32(p) == SIG_EOCD && pos + EOCD_SIZE + read_u16(p + 20) == zip->size)
		{
			*eocd = pos;
			return groma_ok();
		}
		if (pos == lowest)
			break;
	}
	return groma_error(GROMA_ERR_FORMAT,
					   "\"%s\" has no end of central directory record (not a zip archive, or truncated)",
					   zip->label);
}

/* Where the central directory lies and how many entries it holds. */
typedef struct directory_location
{
	uint64_t	count;
	uint64_t	offset;
	uint64_t	size;
	uint64_t	limit;			/* the directory must end before this offset */
} directory_location;

/* Reads the ZIP64 end of central directory record named by the locator before eocd. */
static groma_status
read_zip64_eocd(const groma_zip *zip, uint64_t eocd, directory_location *loc)
{
	const uint8_t *locator = zip->base + eocd - ZIP64_LOCATOR_SIZE;
	uint64_t	record = read_u64(locator + 8);
	const uint8_t *p;

	if (read_u32(locator + 4) != 0 || read_u32(locator + 16) > 1)
		return groma_error(GROMA_ERR_UNSUPPORTED, "\"%s\" is a multi-disk zip archive",
						   zip->label);
	if (!range_inside(record, ZIP64_EOCD_SIZE, eocd - ZIP64_LOCATOR_SIZE))
		return groma_error(GROMA_ERR_FORMAT,
						   "\"%s\" has a zip64 end of central directory offset %llu outside the archive",
						   zip->label, (unsigned long long) record);
	p = zip->base + record;
	if (read_u32(p) != SIG_ZIP64_EOCD)
		return groma_error(GROMA_ERR_FORMAT,
						   "\"%s\" has no zip64 end of central directory record where its locator points",
						   zip->label);
	if (read_u32(p + 16) != 0 || read_u32(p + 20) != 0 || read_u64(p + 24) != read_u64(p + 32))
		return groma_error(GROMA_ERR_UNSUPPORTED, "\"%s\" is a multi-disk zip archive",
						   zip->label);
	loc->count = read_u64(p + 32);
	loc->size = read_u64(p + 40);
	loc->offset = read_u64(p + 48);
	loc->limit = record;
	return groma_ok();
}

/* Locates the central directory from the (ZIP64) end of central directory records. */
static groma_status
locate_directory(const groma_zip *zip, directory_location *loc)
{
	uint64_t	eocd = 0;
	groma_status st = find_eocd(zip, &eocd);
	const uint8_t *p;

	if (st.code != GROMA_OK)
		return st;
	p = zip->base + eocd;
	if (read_u16(p + 4) != 0 || read_u16(p + 6) != 0 || read_u16(p + 8) != read_u16(p + 10))
		return groma_error(GROMA_ERR_UNSUPPORTED, "\"%s\" is a multi-disk zip archive",
						   zip->label);
	loc->count = read_u16(p + 10);
	loc->size = read_u32(p + 12);
	loc->offset = read_u32(p + 16);
	loc->limit = eocd;
	if (eocd >= ZIP64_LOCATOR_SIZE &&
		read_u32(zip->base + eocd - ZIP64_LOCATOR_SIZE) == SIG_ZIP64_LOCATOR)
		st = read_zip64_eocd(zip, eocd, loc);
	else if (loc->count == 0xFFFF || loc->size == 0xFFFFFFFFu || loc->offset == 0xFFFFFFFFu)
		st = groma_error(GROMA_ERR_FORMAT,
						 "\"%s\" needs zip64 records but has no zip64 end of central directory locator",
						 zip->label);
	if (st.code != GROMA_OK)
		return st;
	if (!range_inside(loc->offset, loc->size, loc->limit))
		return groma_error(GROMA_ERR_FORMAT,
						   "\"%s\" has a central directory (offset %llu, %llu bytes) outside the archive",
						   zip->label, (unsigned long long) loc->offset,
						   (unsigned long long) loc->size);
	if (loc->count > loc->size / CENTRAL_HEADER_SIZE)
		return groma_error(GROMA_ERR_FORMAT,
						   "\"%s\" claims %llu entries in a %llu-byte central directory",
						   zip->label, (unsigned long long) loc->count,
						   (unsigned long long) loc->size);
	return groma_ok();
}

/* The 32-bit central directory fields that ZIP64 may replace. */
typedef struct central_sizes
{
	uint64_t	compressed;
	uint64_t	uncompressed;
	uint64_t	local_offset;
	uint32_t	disk;
} central_sizes;

/* Replaces saturated fields of *sizes with the values of the entry's zip64 extra field. */
static groma_status
apply_zip64_extra(const groma_zip *zip, const char *name, const uint8_t *extra,
				  uint16_t extra_len, central_sizes *sizes)
{
	uint32_t	pos = 0;

	while (pos + 4 <= extra_len)
	{
		uint16_t	id = read_u16(extra + pos);
		uint16_t	len = read_u16(extra + pos + 2);
		const uint8_t *field = extra + pos + 4;
		uint32_t	used = 0;

		if (pos + 4 + (uint32_t) len > extra_len)
			break;
		if (id == ZIP64_EXTRA_ID)
		{
			uint64_t   *wide[3] = {&sizes->uncompressed, &sizes->compressed, &sizes->local_offset};

			/* Fields appear in this order, each only when its 32-bit twin is saturated. */
			for (int i = 0; i < 3; i++)
			{
				if (*wide[i] != 0xFFFFFFFFu)
					continue;
				if (used + 8 > len)
					return groma_error(GROMA_ERR_FORMAT,
									   "\"%s\": zip64 extra field of entry \"%s\" is too short",
									   zip->label, name);
				*wide[i] = read_u64(field + used);
				used += 8;
			}
			if (sizes->disk == 0xFFFF)
			{
				if (used + 4 > len)
					return groma_error(GROMA_ERR_FORMAT,
									   "\"%s\": zip64 extra field of entry \"%s\" is too short",
									   zip->label, name);
				sizes->disk = read_u32(field + used);
			}
			return groma_ok();
		}
		pos += 4 + (uint32_t) len;
	}
	return groma_error(GROMA_ERR_FORMAT,
					   "\"%s\": entry \"%s\" has saturated sizes but no zip64 extra field",
					   zip->label, name);
}

/* Reads the local header at entry->data_offset (its header offset) and sets the true data offset. */
static groma_status
locate_entry_data(const groma_zip *zip, groma_zip_entry *entry, uint16_t name_len)
{
	uint64_t	header = entry->data_offset;
	const uint8_t *p;
	uint16_t	local_name_len,
				local_extra_len;

	if (!range_inside(header, LOCAL_HEADER_SIZE, zip->size) ||
		read_u32(zip->base + header) != SIG_LOCAL)
		return groma_error(GROMA_ERR_FORMAT,
						   "\"%s\": entry \"%s\" has no local header at offset %llu",
						   zip->label, entry->name, (unsigned long long) header);
	p = zip->base + header;
	local_name_len = read_u16(p + 26);
	local_extra_len = read_u16(p + 28);
	if (!range_inside(header + LOCAL_HEADER_SIZE, (uint64_t) local_name_len + local_extra_len,
					  zip->size))
		return groma_error(GROMA_ERR_FORMAT,
						   "\"%s\": local header of entry \"%s\" runs past the end", zip->label,
						   entry->name);
	if (local_name_len != name_len ||
		memcmp(p + LOCAL_HEADER_SIZE, entry->name, name_len) != 0)
		return groma_error(GROMA_ERR_FORMAT,
						   "\"%s\": local header of entry \"%s\" names another entry",
						   zip->label, entry->name);
	/* The local extra field (torch's alignment padding) may differ from the central one. */
	entry->data_offset = header + LOCAL_HEADER_SIZE + local_name_len + local_extra_len;
	if (!range_inside(entry->data_offset, entry->compressed_size, zip->size))
		return groma_error(GROMA_ERR_FORMAT,
						   "\"%s\": data of entry \"%s\" (%llu bytes at offset %llu) lies outside the archive",
						   zip->label, entry->name, (unsigned long long) entry->compressed_size,
						   (unsigned long long) entry->data_offset);
	return groma_ok();
}

/* Parses the central directory entry at *pos (advancing it) into entry, copying its name to *names. */
static groma_status
read_central_entry(const groma_zip *zip, const directory_location *loc, size_t index,
				   uint64_t *pos, char **names, groma_zip_entry *entry)
{
	uint64_t	end = loc->offset + loc->size;
	const uint8_t *p;
	uint16_t	name_len,
				extra_len,
				comment_len;
	central_sizes sizes;

	if (!range_inside(*pos, CENTRAL_HEADER_SIZE, end) ||
		read_u32(zip->base + *pos) != SIG_CENTRAL)
		return groma_error(GROMA_ERR_FORMAT, "\"%s\": central directory entry %zu is malformed",
						   zip->label, index);
	p = zip->base + *pos;
	name_len = read_u16(p + 28);
	extra_len = read_u16(p + 30);
	comment_len = read_u16(p + 32);
	if (!range_inside(*pos + CENTRAL_HEADER_SIZE,
					  (uint64_t) name_len + extra_len + comment_len, end))
		return groma_error(GROMA_ERR_FORMAT,
						   "\"%s\": central directory entry %zu runs past the directory",
						   zip->label, index);
	if (memchr(p + CENTRAL_HEADER_SIZE, '\0', name_len) != NULL)
		return groma_error(GROMA_ERR_FORMAT, "\"%s\": entry %zu has a NUL byte in its name",
						   zip->label, index);
	memcpy(*names, p + CENTRAL_HEADER_SIZE, name_len);
	(*names)[name_len] = '\0';
	entry->name = *names;
	*names += name_len + 1;

	entry->flags = read_u16(p + 8);
	entry->method = read_u16(p + 10);
	entry->crc32 = read_u32(p + 16);
	sizes.compressed = read_u32(p + 20);
	sizes.uncompressed = read_u32(p + 24);
	sizes.disk = read_u16(p + 34);
	sizes.local_offset = read_u32(p + 42);
	if (sizes.compressed == 0xFFFFFFFFu || sizes.uncompressed == 0xFFFFFFFFu ||
		sizes.local_offset == 0xFFFFFFFFu || sizes.disk == 0xFFFF)
	{
		groma_status st = apply_zip64_extra(zip, entry->name, p + CENTRAL_HEADER_SIZE + name_len,
											extra_len, &sizes);

		if (st.code != GROMA_OK)
			return st;
	}
	if (sizes.disk != 0)
		return groma_error(GROMA_ERR_UNSUPPORTED, "\"%s\" is a multi-disk zip archive",
						   zip->label);
	if (entry->method == GROMA_ZIP_STORED && sizes.compressed != sizes.uncompressed)
		return groma_error(GROMA_ERR_FORMAT,
						   "\"%s\": stored entry \"%s\" has different stored and original sizes",
						   zip->label, entry->name);
	entry->compressed_size = sizes.compressed;
	entry->uncompressed_size = sizes.uncompressed;
	entry->data_offset = sizes.local_offset;	/* the local header, until located */
	*pos += CENTRAL_HEADER_SIZE + (uint64_t) name_len + extra_len + comment_len;
	return locate_entry_data(zip, entry, name_len);
}

/* Orders entry pointers by name. */
static int
compare_entry_names(const void *a, const void *b)
{
	return strcmp((*(const groma_zip_entry *const *) a)->name,
				  (*(const groma_zip_entry *const *) b)->name);
}

/* Builds the sorted name index; GROMA_ERR_FORMAT when a name appears twice. */
static groma_status
index_names(groma_zip *zip)
{
	zip->by_name = malloc((zip->count ? zip->count : 1) * sizeof(*zip->by_name));
	if (zip->by_name == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "\"%s\": cannot allocate the entry index",
						   zip->label);
	for (size_t i = 0; i < zip->count; i++)
		zip->by_name[i] = &zip->entries[i];
	qsort(zip->by_name, zip->count, sizeof(*zip->by_name), compare_entry_names);
	for (size_t i = 1; i < zip->count; i++)
		if (strcmp(zip->by_name[i - 1]->name, zip->by_name[i]->name) == 0)
			return groma_error(GROMA_ERR_FORMAT, "\"%s\": entry \"%s\" appears twice",
							   zip->label, zip->by_name[i]->name);
	return groma_ok();
}

/* Parses the whole directory of zip->base into zip->entries. */
static groma_status
parse_directory(groma_zip *zip)
{
	directory_location loc = {0};
	groma_status st = locate_directory(zip, &loc);
	uint64_t	pos;
	char	   *names;

	if (st.code != GROMA_OK)
		return st;
	/* count <= size / 46 <= archive size, so these allocations are bounded by the file. */
	zip->count = (size_t) loc.count;
	zip->entries = calloc(zip->count ? zip->count : 1, sizeof(*zip->entries));
	zip->names = malloc((size_t) loc.size + zip->count + 1);
	if (zip->entries == NULL || zip->names == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "\"%s\": cannot allocate %zu zip entries",
						   zip->label, zip->count);
	pos = loc.offset;
	names = zip->names;
	for (size_t i = 0; i < zip->count; i++)
	{
		st = read_central_entry(zip, &loc, i, &pos, &names, &zip->entries[i]);
		if (st.code != GROMA_OK)
			return st;
	}
	return index_names(zip);
}

/* Allocates a reader labelled label; NULL when out of memory. */
static groma_zip *
new_reader(const char *label)
{
	groma_zip  *zip = calloc(1, sizeof(*zip));

	if (zip != NULL && (zip->label = strdup(label ? label : "(memory)")) == NULL)
	{
		free(zip);
		zip = NULL;
	}
	return zip;
}

/* Parses an archive in caller memory; see zip_reader.h. */
groma_status
groma_zip_open_memory(const void *data, size_t size, const char *label, groma_zip **out)
{
	groma_zip  *zip = new_reader(label);
	groma_status st;

	*out = NULL;
	if (zip == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate a zip reader");
	zip->base = data;
	zip->size = data ? size : 0;
	st = parse_directory(zip);
	if (st.code != GROMA_OK)
	{
		groma_zip_close(zip);
		return st;
	}
	*out = zip;
	return groma_ok();
}

/* Maps path read-only and parses it; see zip_reader.h. */
groma_status
groma_zip_open(const char *path, groma_zip **out)
{
	groma_zip  *zip = new_reader(path);
	struct stat sb;
	int			fd;
	void	   *map;
	groma_status st;

	*out = NULL;
	if (zip == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate a zip reader");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
	{
		st = groma_error(GROMA_ERR_IO, "cannot open \"%s\": %s", path, strerror(errno));
		groma_zip_close(zip);
		return st;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size < EOCD_SIZE ||
		(uint64_t) sb.st_size > SIZE_MAX)
	{
		close(fd);
		st = groma_error(GROMA_ERR_FORMAT, "\"%s\" is not a regular file long enough to be a zip archive",
						 path);
		groma_zip_close(zip);
		return st;
	}
	map = mmap(NULL, (size_t) sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
	{
		st = groma_error(GROMA_ERR_IO, "cannot map \"%s\": %s", path, strerror(errno));
		groma_zip_close(zip);
		return st;
	}
	zip->base = map;
	zip->size = (uint64_t) sb.st_size;
	zip->mapped = 1;
	st = parse_directory(zip);
	if (st.code != GROMA_OK)
	{
		groma_zip_close(zip);
		return st;
	}
	*out = zip;
	return groma_ok();
}

/* Returns the path or label given at open. */
const char *
groma_zip_label(const groma_zip *zip)
{
	return zip->label;
}

/* Returns the archive size in bytes. */
uint64_t
groma_zip_size(const groma_zip *zip)
{
	return zip->size;
}

/* Returns the number of entries. */
size_t
groma_zip_entry_count(const groma_zip *zip)
{
	return zip->count;
}

/* Returns entry index in central directory order, or NULL past the end. */
const groma_zip_entry *
groma_zip_entry_at(const groma_zip *zip, size_t index)
{
	return index < zip->count ? &zip->entries[index] : NULL;
}

/* Returns the entry named name, or NULL (binary search over the sorted index). */
const groma_zip_entry *
groma_zip_find(const groma_zip *zip, const char *name)
{
	size_t		low = 0,
				high = zip->count;

	while (low < high)
	{
		size_t		mid = low + (high - low) / 2;
		int			cmp = strcmp(name, zip->by_name[mid]->name);

		if (cmp == 0)
			return zip->by_name[mid];
		if (cmp < 0)
			high = mid;
		else
			low = mid + 1;
	}
	return NULL;
}

/* Points *data at a stored entry's bytes; refuses compressed and encrypted entries. */
groma_status
groma_zip_stored_data(const groma_zip *zip, const groma_zip_entry *entry,
					  const uint8_t **data, uint64_t *size)
{
	*data = NULL;
	*size = 0;
	if (entry->flags & FLAG_ENCRYPTED)
		return groma_error(GROMA_ERR_UNSUPPORTED, "\"%s\": entry \"%s\" is encrypted",
						   zip->label, entry->name);
	if (entry->method != GROMA_ZIP_STORED)
		return groma_error(GROMA_ERR_UNSUPPORTED,
						   "\"%s\": entry \"%s\" is compressed (method %u); groma maps only stored entries, as torch.save writes them",
						   zip->label, entry->name, (unsigned) entry->method);
	/* Ranges were checked at open; the base pointer may be NULL only for an empty archive. */
	*data = zip->base + entry->data_offset;
	*size = entry->compressed_size;
	return groma_ok();
}

/* Like groma_zip_stored_data, and verifies the entry's CRC-32. */
groma_status
groma_zip_checked_data(const groma_zip *zip, const groma_zip_entry *entry,
					   const uint8_t **data, uint64_t *size)
{
	groma_status st = groma_zip_stored_data(zip, entry, data, size);

	if (st.code != GROMA_OK)
		return st;
	if (groma_zip_crc32(0, *data, (size_t) *size) != entry->crc32)
	{
		*data = NULL;
		*size = 0;
		return groma_error(GROMA_ERR_FORMAT, "\"%s\": entry \"%s\" fails its CRC-32 check",
						   zip->label, entry->name);
	}
	return groma_ok();
}

/* Starts kernel read-ahead over a range of a mapped archive. */
void
groma_zip_prefetch(const groma_zip *zip, uint64_t offset, uint64_t length)
{
	uint64_t	page = (uint64_t) sysconf(_SC_PAGESIZE);
	uint64_t	start;

	if (!zip->mapped || !range_inside(offset, length, zip->size) || length == 0 || page == 0)
		return;
	start = offset - offset % page;
	(void) madvise((void *) (zip->base + start), (size_t) (offset + length - start), MADV_WILLNEED);
}
