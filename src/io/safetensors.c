/*
 * safetensors.c - reading and writing the safetensors format.
 */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Headers above this size are refused (the format's reference reader uses 100 MB). */
#define MAX_HEADER_BYTES (100u * 1024u * 1024u)

struct groma_st_file
{
	const uint8_t *map;			/* whole file, read-only */
	size_t		size;
	const uint8_t *data;		/* first byte after the header */
	size_t		data_size;
	json_t	   *header;			/* parsed JSON object */
};

static const struct
{
	const char *name;
	size_t		size;
}			dtype_table[] = {
	[GROMA_ST_F32] = {"F32", 4},
	[GROMA_ST_F16] = {"F16", 2},
	[GROMA_ST_BF16] = {"BF16", 2},
	[GROMA_ST_F64] = {"F64", 8},
	[GROMA_ST_I64] = {"I64", 8},
	[GROMA_ST_I32] = {"I32", 4},
	[GROMA_ST_I16] = {"I16", 2},
	[GROMA_ST_I8] = {"I8", 1},
	[GROMA_ST_U8] = {"U8", 1},
	[GROMA_ST_BOOL] = {"BOOL", 1},
};

#define DTYPE_COUNT ((int) (sizeof(dtype_table) / sizeof(dtype_table[0])))

/* Returns the size in bytes of one element of dtype. */
size_t
groma_st_dtype_size(groma_st_dtype dtype)
{
	return (int) dtype >= 0 && (int) dtype < DTYPE_COUNT ? dtype_table[dtype].size : 0;
}

/* Returns the safetensors name of a dtype. */
const char *
groma_st_dtype_name(groma_st_dtype dtype)
{
	return (int) dtype >= 0 && (int) dtype < DTYPE_COUNT ? dtype_table[dtype].name : "?";
}

/* Parses a dtype name; returns -1 when unknown. */
static int
dtype_from_name(const char *name)
{
	for (int i = 0; i < DTYPE_COUNT; i++)
		if (strcmp(dtype_table[i].name, name) == 0)
			return i;
	return -1;
}

/* Unmaps and frees an opened file; safe on NULL. */
void
groma_st_close(groma_st_file *file)
{
	if (file == NULL)
		return;
	if (file->header)
		json_decref(file->header);
	if (file->map && file->size > 0)
		munmap((void *) file->map, file->size);
	free(file);
}

/* Maps path read-only into file->map. */
static groma_status
map_file(const char *path, groma_st_file *file)
{
	struct stat sb;
	int			fd = open(path, O_RDONLY | O_CLOEXEC);
	void	   *map;

	if (fd < 0)
		return groma_error(GROMA_ERR_IO, "cannot open \"%s\": %s", path, strerror(errno));
	if (fstat(fd, &sb) != 0 || sb.st_size < 8)
	{
		close(fd);
		return groma_error(GROMA_ERR_FORMAT, "\"%s\" is too short to be a safetensors file", path);
	}
	map = mmap(NULL, (size_t) sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return groma_error(GROMA_ERR_IO, "cannot map \"%s\": %s", path, strerror(errno));
	file->map = map;
	file->size = (size_t) sb.st_size;
	return groma_ok();
}

/* Opens and validates a safetensors file; see safetensors.h. */
groma_status
groma_st_open(const char *path, groma_st_file **out)
{
	groma_st_file *file = calloc(1, sizeof(*file));
	groma_status st;
	uint64_t	hlen = 0;
	json_error_t jerr;
	const char *key;
	json_t	   *value;

	*out = NULL;
	if (file == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate a safetensors reader");
	st = map_file(path, file);
	if (st.code != GROMA_OK)
	{
		groma_st_close(file);
		return st;
	}
	for (int i = 7; i >= 0; i--)
		hlen = (hlen << 8) | file->map[i];
	if (hlen > MAX_HEADER_BYTES || hlen > file->size - 8)
	{
		groma_st_close(file);
		return groma_error(GROMA_ERR_FORMAT, "\"%s\" has a bad header length %llu", path,
						   (unsigned long long) hlen);
	}
	file->header = json_loadb((const char *) file->map + 8, (size_t) hlen, 0, &jerr);
	if (file->header == NULL || !json_is_object(file->header))
	{
		groma_st_close(file);
		return groma_error(GROMA_ERR_FORMAT, "\"%s\" has a malformed JSON header", path);
	}
	file->data = file->map + 8 + hlen;
	file->data_size = file->size - 8 - (size_t) hlen;

	/* Validate every entry now so later lookups cannot fail on structure. */
	json_object_foreach(file->header, key, value)
	{
		groma_st_tensor t;

		if (strcmp(key, "__metadata__") == 0)
			continue;
		st = groma_st_get(file, key, &t);
		if (st.code != GROMA_OK)
		{
			groma_st_close(file);
			return st;
		}
	}
	*out = file;
	return groma_ok();
}

/* Reads shape from a JSON array into t, checking the element count for overflow. */
static groma_status
parse_shape(const char *name, json_t *shape, groma_st_tensor *t, size_t *elements)
{
	size_t		n = 1;

	if (!json_is_array(shape) || json_array_size(shape) > GROMA_ST_MAX_DIMS)
		return groma_error(GROMA_ERR_FORMAT, "tensor \"%s\" has a bad shape", name);
	t->ndim = (int) json_array_size(shape);
	for (int d = 0; d < t->ndim; d++)
	{
		json_t	   *dim = json_array_get(shape, (size_t) d);
		json_int_t	v = json_is_integer(dim) ? json_integer_value(dim) : -1;

		if (v < 0 || (v > 0 && n > SIZE_MAX / (size_t) v))
			return groma_error(GROMA_ERR_FORMAT, "tensor \"%s\" has a bad shape", name);
		t->shape[d] = v;
		n *= (size_t) v;
	}
	*elements = n;
	return groma_ok();
}

/* Finds and checks one tensor; see safetensors.h. */
groma_status
groma_st_get(const groma_st_file *file, const char *name, groma_st_tensor *out)
{
	json_t	   *entry = json_object_get(file->header, name);
	json_t	   *offsets;
	int			dtype;
	size_t		elements = 0;
	json_int_t	begin,
				end;
	groma_status st;

	memset(out, 0, sizeof(*out));
	if (entry == NULL || strcmp(name, "__metadata__") == 0)
		return groma_error(GROMA_ERR_FORMAT, "tensor \"%s\" is not in the file", name);
	if (!json_is_object(entry) || !json_is_string(json_object_get(entry, "dtype")))
		return groma_error(GROMA_ERR_FORMAT, "tensor \"%s\" has no dtype", name);
	dtype = dtype_from_name(json_string_value(json_object_get(entry, "dtype")));
	if (dtype < 0)
		return groma_error(GROMA_ERR_FORMAT, "tensor \"%s\" has an unknown dtype", name);
	st = parse_shape(name, json_object_get(entry, "shape"), out, &elements);
	if (st.code != GROMA_OK)
		return st;
	offsets = json_object_get(entry, "data_offsets");
	if (!json_is_array(offsets) || json_array_size(offsets) != 2 ||
		!json_is_integer(json_array_get(offsets, 0)) || !json_is_integer(json_array_get(offsets, 1)))
		return groma_error(GROMA_ERR_FORMAT, "tensor \"%s\" has bad data_offsets", name);
	begin = json_integer_value(json_array_get(offsets, 0));
	end = json_integer_value(json_array_get(offsets, 1));
	if (begin < 0 || end < begin || (uint64_t) end > file->data_size)
		return groma_error(GROMA_ERR_FORMAT, "tensor \"%s\" lies outside the file", name);
	if (elements > SIZE_MAX / dtype_table[dtype].size ||
		elements * dtype_table[dtype].size != (size_t) (end - begin))
		return groma_error(GROMA_ERR_FORMAT, "tensor \"%s\" has %lld bytes for its shape",
						   name, (long long) (end - begin));
	out->name = name;
	out->dtype = (groma_st_dtype) dtype;
	out->data = file->data + begin;
	out->nbytes = (size_t) (end - begin);
	return groma_ok();
}

/* Returns a string from __metadata__, or NULL when absent. */
const char *
groma_st_metadata(const groma_st_file *file, const char *key)
{
	json_t	   *meta = json_object_get(file->header, "__metadata__");

	return json_is_object(meta) ? json_string_value(json_object_get(meta, key)) : NULL;
}

/* Builds the JSON header for tensors laid out back to back. */
static json_t *
build_header(const groma_st_tensor *tensors, int count,
			 const char *const *metadata_pairs, int metadata_count)
{
	json_t	   *header = json_object();
	size_t		offset = 0;

	if (metadata_count > 0)
	{
		json_t	   *meta = json_object();

		for (int i = 0; i < metadata_count; i++)
			json_object_set_new(meta, metadata_pairs[2 * i], json_string(metadata_pairs[2 * i + 1]));
		json_object_set_new(header, "__metadata__", meta);
	}
	for (int i = 0; i < count; i++)
	{
		json_t	   *entry = json_object();
		json_t	   *shape = json_array();

		for (int d = 0; d < tensors[i].ndim; d++)
			json_array_append_new(shape, json_integer(tensors[i].shape[d]));
		json_object_set_new(entry, "dtype", json_string(groma_st_dtype_name(tensors[i].dtype)));
		json_object_set_new(entry, "shape", shape);
		json_object_set_new(entry, "data_offsets",
							json_pack("[II]", (json_int_t) offset,
									  (json_int_t) (offset + tensors[i].nbytes)));
		json_object_set_new(header, tensors[i].name, entry);
		offset += tensors[i].nbytes;
	}
	return header;
}

/* Writes tensors and metadata to path; see safetensors.h. */
groma_status
groma_st_write(const char *path, const groma_st_tensor *tensors, int count,
			   const char *const *metadata_pairs, int metadata_count)
{
	json_t	   *header = build_header(tensors, count, metadata_pairs, metadata_count);
	char	   *text = json_dumps(header, JSON_COMPACT);
	FILE	   *f = NULL;
	size_t		tlen,
				padded;
	uint8_t		lenbuf[8];
	int			ok;

	json_decref(header);
	if (text == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot build the safetensors header");
	tlen = strlen(text);
	padded = (tlen + 7) & ~(size_t) 7;	/* keep the data 8-byte aligned */
	for (int i = 0; i < 8; i++)
		lenbuf[i] = (uint8_t) ((uint64_t) padded >> (8 * i));
	f = fopen(path, "wb");
	ok = f != NULL && fwrite(lenbuf, 1, 8, f) == 8 && fwrite(text, 1, tlen, f) == tlen;
	for (size_t i = tlen; ok && i < padded; i++)
		ok = fputc(' ', f) != EOF;
	for (int i = 0; ok && i < count; i++)
		ok = fwrite(tensors[i].data, 1, tensors[i].nbytes, f) == tensors[i].nbytes;
	free(text);
	if (f != NULL && fclose(f) != 0)
		ok = 0;
	if (!ok)
		return groma_error(GROMA_ERR_IO, "cannot write \"%s\": %s", path, strerror(errno));
	return groma_ok();
}

/* Calls fn for every tensor name in header order; returns fn's first failure. */
groma_status
groma_st_foreach(const groma_st_file *file, groma_status (*fn) (const char *name, void *arg),
				 void *arg)
{
	const char *key;
	json_t	   *value;

	json_object_foreach(file->header, key, value)
	{
		groma_status st;

		if (strcmp(key, "__metadata__") == 0)
			continue;
		st = fn(key, arg);
		if (st.code != GROMA_OK)
			return st;
	}
	return groma_ok();
}

/* Starts kernel read-ahead of the whole mapping. */
void
groma_st_prefetch(const groma_st_file *file)
{
	if (file->map != NULL && file->size > 0)
		(void) madvise((void *) file->map, file->size, MADV_WILLNEED);
}

/* Bytes converted per fill call: a multiple of every element size. */
#define FILL_CHUNK_BYTES (8u * 1024u * 1024u)

/* Writes header and fill-produced data to an open stream; returns false on any failure (st set for fill failures). */
static bool
write_filled_stream(FILE *f, const char *text, const groma_st_tensor *tensors, int count,
					groma_st_fill_fn fill, void *arg, uint8_t *chunk, groma_status *st)
{
	size_t		tlen = strlen(text);
	size_t		padded = (tlen + 7) & ~(size_t) 7;	/* keep the data 8-byte aligned */
	uint8_t		lenbuf[8];

	for (int i = 0; i < 8; i++)
		lenbuf[i] = (uint8_t) ((uint64_t) padded >> (8 * i));
	if (fwrite(lenbuf, 1, 8, f) != 8 || fwrite(text, 1, tlen, f) != tlen)
		return false;
	for (size_t i = tlen; i < padded; i++)
		if (fputc(' ', f) == EOF)
			return false;
	for (int i = 0; i < count; i++)
		for (size_t off = 0; off < tensors[i].nbytes; off += FILL_CHUNK_BYTES)
		{
			size_t		len = tensors[i].nbytes - off < FILL_CHUNK_BYTES ?
				tensors[i].nbytes - off : FILL_CHUNK_BYTES;

			*st = fill(i, off, chunk, len, arg);
			if (st->code != GROMA_OK || fwrite(chunk, 1, len, f) != len)
				return false;
		}
	return true;
}

/* Writes a safetensors file whose tensor bytes come from fill; see safetensors.h. */
groma_status
groma_st_write_filled(const char *path, const groma_st_tensor *tensors, int count,
					  const char *const *metadata_pairs, int metadata_count,
					  groma_st_fill_fn fill, void *arg)
{
	json_t	   *header = build_header(tensors, count, metadata_pairs, metadata_count);
	char	   *text = json_dumps(header, JSON_COMPACT);
	uint8_t    *chunk = malloc(FILL_CHUNK_BYTES);
	groma_status st = groma_ok();
	FILE	   *f = NULL;
	bool		ok;

	json_decref(header);
	if (text == NULL || chunk == NULL)
	{
		free(text);
		free(chunk);
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot build the safetensors header for \"%s\"",
						   path);
	}
	f = fopen(path, "wb");
	ok = f != NULL && write_filled_stream(f, text, tensors, count, fill, arg, chunk, &st);
	free(text);
	free(chunk);
	if (f != NULL && fclose(f) != 0)
		ok = false;
	if (st.code != GROMA_OK)
		return st;
	if (!ok)
		return groma_error(GROMA_ERR_IO, "cannot write \"%s\": %s", path, strerror(errno));
	return groma_ok();
}
