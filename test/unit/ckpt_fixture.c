/*
 * ckpt_fixture.c - writing small torch.save-style checkpoints for tests and
 * the load benchmark (see ckpt_fixture.h).
 */
#include "ckpt_fixture.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/io/zip_reader.h"

#define MAX_ENTRIES 4096
#define ALIGNMENT 64

typedef struct fx_entry
{
	char	   *name;
	uint16_t	method;
	uint32_t	crc;
	uint64_t	size;
	uint64_t	header_offset;
} fx_entry;

struct fx_zip
{
	FILE	   *f;
	bool		zip64;
	bool		ok;
	fx_entry	entries[MAX_ENTRIES];
	int			count;
	uint64_t	data_start;		/* of the current entry */
};

/* Writes n bytes of v little-endian. */
static void
put_le(fx_zip *z, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		if (fputc((int) ((v >> (8 * i)) & 0xFF), z->f) == EOF)
			z->ok = false;
}

/* Creates path; see ckpt_fixture.h. */
fx_zip *
fx_zip_create(const char *path, bool zip64)
{
	fx_zip	   *z = calloc(1, sizeof(*z));

	if (z == NULL)
		return NULL;
	z->f = fopen(path, "wb");
	if (z->f == NULL)
	{
		free(z);
		return NULL;
	}
	z->zip64 = zip64;
	z->ok = true;
	return z;
}

/* Starts an entry: local header with placeholder CRC/sizes and padding to align the data. */
bool
fx_zip_begin(fx_zip *z, const char *name, uint16_t method)
{
	fx_entry   *e;
	size_t		name_len = strlen(name);
	uint64_t	offset = (uint64_t) ftello(z->f);
	uint64_t	unpadded = offset + 30 + name_len + (z->zip64 ? 20 : 0);
	uint64_t	pad = (ALIGNMENT - (unpadded + 4) % ALIGNMENT) % ALIGNMENT;

	if (z->count >= MAX_ENTRIES)
		return z->ok = false;
	e = &z->entries[z->count++];
	e->name = strdup(name);
	e->method = method;
	e->header_offset = offset;
	put_le(z, 0x04034b50u, 4);
	put_le(z, z->zip64 ? 45 : 20, 2);
	put_le(z, 0, 2);			/* flags */
	put_le(z, method, 2);
	put_le(z, 0, 4);			/* time, date */
	put_le(z, 0, 4);			/* crc: patched */
	put_le(z, z->zip64 ? 0xFFFFFFFFu : 0, 4);
	put_le(z, z->zip64 ? 0xFFFFFFFFu : 0, 4);
	put_le(z, name_len, 2);
	put_le(z, (z->zip64 ? 20 : 0) + 4 + pad, 2);
	fwrite(name, 1, name_len, z->f);
	if (z->zip64)
	{
		put_le(z, 0x0001, 2);
		put_le(z, 16, 2);
		put_le(z, 0, 8);		/* sizes: patched */
		put_le(z, 0, 8);
	}
	/* Padding field like torch's ("FB"): the central directory does not repeat it. */
	put_le(z, 0x4246, 2);
	put_le(z, pad, 2);
	for (uint64_t i = 0; i < pad; i++)
		put_le(z, 'Z', 1);
	z->data_start = (uint64_t) ftello(z->f);
	e->crc = 0;
	e->size = 0;
	return z->ok;
}

/* Appends data to the current entry. */
bool
fx_zip_write(fx_zip *z, const void *data, size_t len)
{
	fx_entry   *e = &z->entries[z->count - 1];

	if (len > 0 && fwrite(data, 1, len, z->f) != len)
		z->ok = false;
	e->crc = groma_zip_crc32(e->crc, data, len);
	e->size += len;
	return z->ok;
}

/* Ends the current entry by patching its local header. */
bool
fx_zip_end(fx_zip *z)
{
	fx_entry   *e = &z->entries[z->count - 1];
	uint64_t	end = (uint64_t) ftello(z->f);

	fseeko(z->f, (off_t) (e->header_offset + 14), SEEK_SET);
	put_le(z, e->crc, 4);
	if (z->zip64)
	{
		fseeko(z->f, (off_t) (e->header_offset + 30 + strlen(e->name) + 4), SEEK_SET);
		put_le(z, e->size, 8);
		put_le(z, e->size, 8);
	}
	else
	{
		put_le(z, e->size, 4);
		put_le(z, e->size, 4);
	}
	fseeko(z->f, (off_t) end, SEEK_SET);
	return z->ok;
}

/* Adds a whole stored entry. */
bool
fx_zip_add(fx_zip *z, const char *name, const void *data, size_t len)
{
	return fx_zip_begin(z, name, 0) && fx_zip_write(z, data, len) && fx_zip_end(z);
}

/* Writes one central directory entry. */
static void
put_central(fx_zip *z, const fx_entry *e)
{
	size_t		name_len = strlen(e->name);

	put_le(z, 0x02014b50u, 4);
	put_le(z, z->zip64 ? 45 : 20, 2);
	put_le(z, z->zip64 ? 45 : 20, 2);
	put_le(z, 0, 2);
	put_le(z, e->method, 2);
	put_le(z, 0, 4);
	put_le(z, e->crc, 4);
	put_le(z, z->zip64 ? 0xFFFFFFFFu : e->size, 4);
	put_le(z, z->zip64 ? 0xFFFFFFFFu : e->size, 4);
	put_le(z, name_len, 2);
	put_le(z, z->zip64 ? 28 : 0, 2);
	put_le(z, 0, 2);			/* comment */
	put_le(z, 0, 2);			/* disk */
	put_le(z, 0, 2);
	put_le(z, 0, 4);
	put_le(z, z->zip64 ? 0xFFFFFFFFu : e->header_offset, 4);
	fwrite(e->name, 1, name_len, z->f);
	if (z->zip64)
	{
		put_le(z, 0x0001, 2);
		put_le(z, 24, 2);
		put_le(z, e->size, 8);
		put_le(z, e->size, 8);
		put_le(z, e->header_offset, 8);
	}
}

/* Writes the directory and end records; closes and frees z. */
bool
fx_zip_finish(fx_zip *z)
{
	uint64_t	cd_offset = (uint64_t) ftello(z->f),
				cd_size,
				record;
	bool		ok;

	for (int i = 0; i < z->count; i++)
		put_central(z, &z->entries[i]);
	cd_size = (uint64_t) ftello(z->f) - cd_offset;
	record = (uint64_t) ftello(z->f);
	if (z->zip64)
	{
		put_le(z, 0x06064b50u, 4);
		put_le(z, 44, 8);
		put_le(z, 45, 2);
		put_le(z, 45, 2);
		put_le(z, 0, 4);
		put_le(z, 0, 4);
		put_le(z, (uint64_t) z->count, 8);
		put_le(z, (uint64_t) z->count, 8);
		put_le(z, cd_size, 8);
		put_le(z, cd_offset, 8);
		put_le(z, 0x07064b50u, 4);
		put_le(z, 0, 4);
		put_le(z, record, 8);
		put_le(z, 1, 4);
	}
	put_le(z, 0x06054b50u, 4);
	put_le(z, 0, 2);
	put_le(z, 0, 2);
	put_le(z, z->zip64 ? 0xFFFF : (uint64_t) z->count, 2);
	put_le(z, z->zip64 ? 0xFFFF : (uint64_t) z->count, 2);
	put_le(z, z->zip64 ? 0xFFFFFFFFu : cd_size, 4);
	put_le(z, z->zip64 ? 0xFFFFFFFFu : cd_offset, 4);
	put_le(z, 0, 2);
	ok = z->ok;
	if (fclose(z->f) != 0)
		ok = false;
	for (int i = 0; i < z->count; i++)
		free(z->entries[i].name);
	free(z);
	return ok;
}

/* Appends raw bytes. */
void
fx_pk_bytes(fx_pickle *p, const void *bytes, size_t n)
{
	if (p->len + n > p->cap)
	{
		size_t		cap = p->cap ? p->cap : 256;

		while (cap < p->len + n)
			cap *= 2;
		p->data = realloc(p->data, cap);
		p->cap = cap;
	}
	memcpy(p->data + p->len, bytes, n);
	p->len += n;
}

/* Appends one opcode. */
void
fx_pk_op(fx_pickle *p, uint8_t op)
{
	fx_pk_bytes(p, &op, 1);
}

/* Appends BINUNICODE s. */
void
fx_pk_str(fx_pickle *p, const char *s)
{
	uint32_t	n = (uint32_t) strlen(s);
	uint8_t		len[4] = {(uint8_t) n, (uint8_t) (n >> 8), (uint8_t) (n >> 16), (uint8_t) (n >> 24)};

	fx_pk_op(p, 'X');
	fx_pk_bytes(p, len, 4);
	fx_pk_bytes(p, s, n);
}

/* Appends an int in the smallest form pickle protocol 2 uses. */
void
fx_pk_int(fx_pickle *p, int64_t v)
{
	uint8_t		b[9];

	if (v >= 0 && v < 256)
	{
		b[0] = 'K';
		b[1] = (uint8_t) v;
		fx_pk_bytes(p, b, 2);
	}
	else if (v >= 0 && v < 65536)
	{
		b[0] = 'M';
		b[1] = (uint8_t) v;
		b[2] = (uint8_t) (v >> 8);
		fx_pk_bytes(p, b, 3);
	}
	else if (v >= INT32_MIN && v <= INT32_MAX)
	{
		b[0] = 'J';
		for (int i = 0; i < 4; i++)
			b[1 + i] = (uint8_t) ((uint64_t) v >> (8 * i));
		fx_pk_bytes(p, b, 5);
	}
	else
	{
		b[0] = 0x8a;			/* LONG1, 8 bytes two's complement */
		fx_pk_bytes(p, b, 1);
		b[0] = 8;
		for (int i = 0; i < 8; i++)
			b[1 + i] = (uint8_t) ((uint64_t) v >> (8 * i));
		fx_pk_bytes(p, b, 9);
	}
}

/* Appends GLOBAL module\nname\n. */
void
fx_pk_global(fx_pickle *p, const char *module, const char *name)
{
	fx_pk_op(p, 'c');
	fx_pk_bytes(p, module, strlen(module));
	fx_pk_op(p, '\n');
	fx_pk_bytes(p, name, strlen(name));
	fx_pk_op(p, '\n');
}

/* Frees the pickle's bytes. */
void
fx_pk_free(fx_pickle *p)
{
	free(p->data);
	memset(p, 0, sizeof(*p));
}

/* Appends the protocol-2 state dict pickle torch.save writes (without memo opcodes). */
void
fx_pk_state_dict(fx_pickle *p, const fx_tensor *tensors, int count)
{
	static const uint8_t proto[2] = {0x80, 2};

	fx_pk_bytes(p, proto, 2);
	fx_pk_global(p, "collections", "OrderedDict");
	fx_pk_op(p, ')');
	fx_pk_op(p, 'R');
	fx_pk_op(p, '(');
	for (int i = 0; i < count; i++)
	{
		const fx_tensor *t = &tensors[i];

		fx_pk_str(p, t->name);
		fx_pk_global(p, "torch._utils", "_rebuild_tensor_v2");
		fx_pk_op(p, '(');
		fx_pk_op(p, '(');
		fx_pk_str(p, "storage");
		fx_pk_global(p, "torch", t->storage_type);
		fx_pk_str(p, t->key);
		fx_pk_str(p, "cpu");
		fx_pk_int(p, t->storage_numel);
		fx_pk_op(p, 't');
		fx_pk_op(p, 'Q');
		fx_pk_int(p, t->offset);
		fx_pk_op(p, '(');
		for (int d = 0; d < t->ndim; d++)
			fx_pk_int(p, t->shape[d]);
		fx_pk_op(p, 't');
		fx_pk_op(p, '(');
		for (int d = 0; d < t->ndim; d++)
			fx_pk_int(p, t->stride[d]);
		fx_pk_op(p, 't');
		fx_pk_op(p, 0x89);		/* NEWFALSE: requires_grad */
		fx_pk_global(p, "collections", "OrderedDict");
		fx_pk_op(p, ')');
		fx_pk_op(p, 'R');
		fx_pk_op(p, 't');
		fx_pk_op(p, 'R');
	}
	fx_pk_op(p, 'u');
	fx_pk_op(p, '.');
}

/* Writes a whole checkpoint archive; see ckpt_fixture.h. */
bool
fx_write_checkpoint(const char *path, const char *prefix, const fx_pickle *pickle,
					const fx_storage *storages, int count, bool zip64)
{
	fx_zip	   *z = fx_zip_create(path, zip64);
	char		name[512];
	bool		ok;

	if (z == NULL)
		return false;
	snprintf(name, sizeof(name), "%s/data.pkl", prefix);
	ok = fx_zip_add(z, name, pickle->data, pickle->len);
	snprintf(name, sizeof(name), "%s/byteorder", prefix);
	ok = ok && fx_zip_add(z, name, "little", 6);
	for (int i = 0; ok && i < count; i++)
	{
		snprintf(name, sizeof(name), "%s/data/%s", prefix, storages[i].key);
		ok = fx_zip_add(z, name, storages[i].data, storages[i].len);
	}
	snprintf(name, sizeof(name), "%s/version", prefix);
	ok = ok && fx_zip_add(z, name, "3\n", 2);
	return fx_zip_finish(z) && ok;
}

/* Writes len bytes to path. */
bool
fx_write_file(const char *path, const void *data, size_t len)
{
	FILE	   *f = fopen(path, "wb");
	bool		ok;

	if (f == NULL)
		return false;
	ok = fwrite(data, 1, len, f) == len;
	return fclose(f) == 0 && ok;
}

/* Makes a fresh temporary directory. */
bool
fx_temp_dir(const char *tag, char *buf, size_t buflen)
{
	if ((size_t) snprintf(buf, buflen, "/tmp/groma-ckpt-%s-XXXXXX", tag) >= buflen)
		return false;
	return mkdtemp(buf) != NULL;
}

/* Removes a temporary directory and its plain files. */
void
fx_remove_dir(const char *dir)
{
	DIR		   *d = opendir(dir);
	struct dirent *e;
	char		path[4096];

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL)
	{
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}
