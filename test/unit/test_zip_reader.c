/*
 * test_zip_reader.c - the ZIP container reader: real torch archives, a
 * ZIP64 archive written by Python's zipfile, archives from the test writer,
 * and damaged copies (truncated, bad directory offsets, bad sizes).
 */
#include <stdlib.h>
#include <string.h>

#include "ckpt_fixture.h"
#include "unit.h"
#include "../../src/io/zip_reader.h"

/* Returns the little-endian 32-bit value at p. */
static uint32_t
le32(const uint8_t *p)
{
	return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) |
		((uint32_t) p[3] << 24);
}

/* Stores v little-endian in n bytes at p. */
static void
put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t) (v >> (8 * i));
}

/* Opens a copy of bytes[0..len) from memory (exact-size heap buffer, so ASan sees overreads). */
static groma_status
open_copy(const uint8_t *bytes, size_t len, groma_zip **zip, uint8_t **copy)
{
	*copy = malloc(len ? len : 1);
	memcpy(*copy, bytes, len);
	return groma_zip_open_memory(*copy, len, "damaged.zip", zip);
}

/* The standard CRC-32 check value, and incremental use. */
UNIT_TEST(test_zip_crc32_check_value)
{
	CHECK(groma_zip_crc32(0, "123456789", 9) == 0xCBF43926u);
	CHECK(groma_zip_crc32(groma_zip_crc32(0, "1234", 4), "56789", 5) == 0xCBF43926u);
	CHECK(groma_zip_crc32(0, "", 0) == 0);
}

/*
 * torch 2.x archive: every entry found; data offsets come from the local
 * headers (torch pads them to 64 bytes, the central directory does not say
 * so), which the stored values prove.
 */
UNIT_TEST(test_zip_reader_torch_archive)
{
	groma_zip  *zip = NULL;
	groma_status st = groma_zip_open(unit_path("test/golden/compact/dtype_ckpt.pt"), &zip);
	const groma_zip_entry *e;
	const uint8_t *data;
	uint64_t	size;

	CHECKF(st.code == GROMA_OK, "%s", st.message);
	if (zip == NULL)
		return;
	CHECK(groma_zip_entry_count(zip) == 11);
	CHECK(groma_zip_entry_at(zip, 11) == NULL);
	CHECK(groma_zip_find(zip, "dtype_ckpt/data/9") == NULL);
	e = groma_zip_find(zip, "dtype_ckpt/byteorder");
	CHECK(e != NULL && groma_zip_checked_data(zip, e, &data, &size).code == GROMA_OK &&
		  size == 6 && memcmp(data, "little", 6) == 0);
	/* data/0 holds the f32 tensor -2.0, -1.75, ... (manifest.json dtype_checkpoint.f32). */
	e = groma_zip_find(zip, "dtype_ckpt/data/0");
	CHECK(e != NULL && e->method == GROMA_ZIP_STORED && e->data_offset % 64 == 0);
	if (e != NULL && groma_zip_stored_data(zip, e, &data, &size).code == GROMA_OK)
	{
		CHECK(size == 96);
		for (int i = 0; i < 24 && size == 96; i++)
		{
			float		v;

			memcpy(&v, data + 4 * i, 4);
			CHECKF(v == -2.0f + 0.25f * (float) i, "element %d is %g", i, v);
		}
	}
	/* data/3 holds int64 -5e9 + 1e9 * i. */
	e = groma_zip_find(zip, "dtype_ckpt/data/3");
	if (e != NULL && groma_zip_stored_data(zip, e, &data, &size).code == GROMA_OK && size == 96)
	{
		int64_t		v;

		/* torch wrote k * 1000000007 for k = -5..6 (read with Python's zipfile + struct). */
		memcpy(&v, data + 8 * 11, 8);
		CHECK(v == 6000000042LL);
	}
	else
		CHECK(!"dtype_ckpt/data/3 readable");
	groma_zip_close(zip);
}

/* Python's zipfile with ZIP64 forced: zip64 extras and end records are honoured. */
UNIT_TEST(test_zip_reader_python_zip64)
{
	groma_zip  *zip = NULL;
	groma_status st = groma_zip_open(unit_path("test/fixtures/ckpt/zip64_state_dict.pt"), &zip);
	const groma_zip_entry *e;
	const uint8_t *data;
	uint64_t	size;
	static const int32_t expected_ints[6] = {-7, 0, 7, 2147483647, -2147483647 - 1, 42};

	CHECKF(st.code == GROMA_OK, "%s", st.message);
	if (zip == NULL)
		return;
	CHECK(groma_zip_entry_count(zip) == 7);
	e = groma_zip_find(zip, "archive/data.pkl");
	CHECK(e != NULL && e->compressed_size == 573 &&
		  groma_zip_checked_data(zip, e, &data, &size).code == GROMA_OK && data[0] == 0x80);
	e = groma_zip_find(zip, "archive/data/1");
	CHECK(e != NULL && groma_zip_stored_data(zip, e, &data, &size).code == GROMA_OK &&
		  size == sizeof(expected_ints) && memcmp(data, expected_ints, sizeof(expected_ints)) == 0);
	e = groma_zip_find(zip, "archive/version");
	CHECK(e != NULL && groma_zip_checked_data(zip, e, &data, &size).code == GROMA_OK &&
		  size == 2 && memcmp(data, "3\n", 2) == 0);
	groma_zip_close(zip);
}

/* The test writer's archives, with and without ZIP64, read back identically from file and memory. */
UNIT_TEST(test_zip_reader_writer_round_trip)
{
	for (int zip64 = 0; zip64 <= 1; zip64++)
	{
		char		dir[64],
					path[128];
		fx_zip	   *w;
		groma_zip  *zip = NULL;
		size_t		len = 0;
		uint8_t    *bytes;
		static const char big[] = "0123456789abcdef0123456789abcdef0123456789";

		if (!fx_temp_dir("zip", dir, sizeof(dir)))
		{
			CHECK(!"temporary directory");
			return;
		}
		snprintf(path, sizeof(path), "%s/a.zip", dir);
		w = fx_zip_create(path, zip64 == 1);
		CHECK(w != NULL && fx_zip_add(w, "x/one", "1", 1) && fx_zip_add(w, "x/empty", "", 0) &&
			  fx_zip_add(w, "x/big", big, sizeof(big)) && fx_zip_finish(w));
		CHECK(groma_zip_open(path, &zip).code == GROMA_OK);
		bytes = unit_read_file(path, &len);
		for (int pass = 0; pass < 2 && zip != NULL; pass++)
		{
			const groma_zip_entry *e = groma_zip_find(zip, "x/big");
			const uint8_t *data;
			uint64_t	size;

			CHECKF(groma_zip_entry_count(zip) == 3, "zip64 %d pass %d", zip64, pass);
			CHECK(e != NULL && e->data_offset % 64 == 0 &&
				  groma_zip_checked_data(zip, e, &data, &size).code == GROMA_OK &&
				  size == sizeof(big) && memcmp(data, big, size) == 0);
			e = groma_zip_find(zip, "x/empty");
			CHECK(e != NULL && groma_zip_checked_data(zip, e, &data, &size).code == GROMA_OK &&
				  size == 0);
			groma_zip_close(zip);
			zip = NULL;
			if (pass == 0 && bytes != NULL)
				CHECK(groma_zip_open_memory(bytes, len, "mem", &zip).code == GROMA_OK);
		}
		free(bytes);
		fx_remove_dir(dir);
	}
}

/* Every truncation of a real archive fails cleanly with a format error. */
UNIT_TEST(test_zip_reader_truncated)
{
	size_t		len = 0;
	uint8_t    *bytes = unit_read_file(unit_path("test/golden/compact/dtype_ckpt.pt"), &len);

	if (bytes == NULL)
		return;
	for (size_t cut = 0; cut < len; cut++)
	{
		groma_zip  *zip = NULL;
		uint8_t    *copy;
		groma_status st = open_copy(bytes, cut, &zip, &copy);

		CHECKF(st.code == GROMA_ERR_FORMAT && zip == NULL, "cut at %zu: %s", cut, st.message);
		CHECKF(cut < 22 || strstr(st.message, "damaged.zip") != NULL, "message: %s", st.message);
		groma_zip_close(zip);
		free(copy);
	}
	free(bytes);
}

/* Returns the little-endian 64-bit value at p. */
static uint64_t
le64(const uint8_t *p)
{
	return (uint64_t) le32(p) | ((uint64_t) le32(p + 4) << 32);
}

/* Opens a copy of bytes with width bytes at field set to value; checks a failure with code mentioning message. */
static void
check_damaged_code(const uint8_t *bytes, size_t len, size_t field, uint64_t value, int width,
				   const char *what, groma_status_code code, const char *message)
{
	groma_zip  *zip = NULL;
	uint8_t    *copy = malloc(len);
	groma_status st;

	memcpy(copy, bytes, len);
	put_le(copy + field, value, width);
	st = groma_zip_open_memory(copy, len, "damaged.zip", &zip);
	CHECKF(st.code == code && zip == NULL, "%s: %s", what, st.message);
	CHECKF(strstr(st.message, message) != NULL, "%s: message \"%s\"", what, st.message);
	groma_zip_close(zip);
	free(copy);
}

/* Like check_damaged_code, expecting GROMA_ERR_FORMAT. */
static void
check_damaged(const uint8_t *bytes, size_t len, size_t field, uint64_t value, int width,
			  const char *what, const char *message)
{
	check_damaged_code(bytes, len, field, value, width, what, GROMA_ERR_FORMAT, message);
}

/*
 * A damaged zip64 end record or central directory of a real torch archive
 * (torch.save always writes zip64 end records) is refused with a message.
 */
UNIT_TEST(test_zip_reader_bad_directory)
{
	size_t		len = 0;
	uint8_t    *bytes = unit_read_file(unit_path("test/golden/compact/dtype_ckpt.pt"), &len);
	size_t		record,
				cd;

	if (bytes == NULL)
		return;
	CHECK(le32(bytes + len - 22 - 20) == 0x07064b50u);
	record = (size_t) le64(bytes + len - 22 - 20 + 8);
	CHECK(record + 56 <= len && le32(bytes + record) == 0x06064b50u);
	cd = (size_t) le64(bytes + record + 48);
	CHECK(cd + le64(bytes + record + 40) == record);
	check_damaged(bytes, len, record + 48, cd - 1, 8, "directory offset - 1", "central directory entry 0");
	check_damaged(bytes, len, record + 48, cd + 1, 8, "directory offset + 1", "outside the archive");
	check_damaged(bytes, len, record + 48, 0xFFFFFFFFFFFFull, 8, "directory offset past the end",
				  "outside the archive");
	check_damaged(bytes, len, record + 40, 1ull << 62, 8, "directory size too large", "outside the archive");
	check_damaged_code(bytes, len, record + 32, 5000, 8, "disk and total counts differ",
					   GROMA_ERR_UNSUPPORTED, "multi-disk");
	put_le(bytes + record + 24, 5000, 8);
	check_damaged(bytes, len, record + 32, 5000, 8, "more entries than fit", "entries");
	put_le(bytes + record + 24, le64(bytes + record + 32), 8);
	check_damaged(bytes, len, len - 22 - 20 + 8, len, 8, "zip64 record past the end", "zip64");
	check_damaged(bytes, len, cd + 42, 0x7FFFFFF0u, 4, "local header offset past the end", "no local header");
	check_damaged(bytes, len, cd + 42, 30, 4, "local header offset into data", "no local header");
	check_damaged(bytes, len, cd + 20, 0x7FFFFFF0u, 4, "stored sizes differ", "different stored and original sizes");
	check_damaged(bytes, len, cd + 20, 0x7FFFFFF0ull | (0x7FFFFFF0ull << 32), 8, "data past the end",
				  "lies outside the archive");
	check_damaged(bytes, len, cd + 28, 0xFFFF, 2, "name length past the directory", "runs past");
	check_damaged(bytes, len, cd + 20, 0xFFFFFFFFu, 4, "zip64 size without extra", "no zip64 extra field");
	/* The local header must name the same entry as the central one. */
	check_damaged(bytes, len, 30, 'X', 1, "local name differs", "names another entry");
	free(bytes);
}

/* Without zip64 records, the plain end record's fields are checked the same way. */
UNIT_TEST(test_zip_reader_bad_plain_end_record)
{
	char		dir[64],
				path[128];
	fx_zip	   *w;
	size_t		len = 0;
	uint8_t    *bytes;

	if (!fx_temp_dir("zip", dir, sizeof(dir)))
		return;
	snprintf(path, sizeof(path), "%s/plain.zip", dir);
	w = fx_zip_create(path, false);
	CHECK(w != NULL && fx_zip_add(w, "p/a", "aaaa", 4) && fx_zip_add(w, "p/b", "bb", 2) &&
		  fx_zip_finish(w));
	bytes = unit_read_file(path, &len);
	if (bytes != NULL)
	{
		uint32_t	cd = le32(bytes + len - 22 + 16);

		CHECK(le32(bytes + len - 22) == 0x06054b50u && le32(bytes + len - 22 - 20) != 0x07064b50u);
		check_damaged(bytes, len, len - 22 + 16, cd - 1, 4, "directory offset - 1", "central directory entry 0");
		check_damaged(bytes, len, len - 22 + 12, 0x7FFFFFFFu, 4, "directory size", "outside the archive");
		check_damaged(bytes, len, len - 22 + 8, 0xFFFFFFFFu, 4, "saturated count", "zip64");
		check_damaged(bytes, len, len - 22 + 8, 3u | (3u << 16), 4, "more entries than fit", "entries");
		check_damaged(bytes, len, len - 22 + 20, 5, 2, "comment length", "no end of central directory");
		free(bytes);
	}
	fx_remove_dir(dir);
}

/* A zip64 locator that points outside the archive is refused. */
UNIT_TEST(test_zip_reader_bad_zip64_locator)
{
	size_t		len = 0;
	uint8_t    *bytes = unit_read_file(unit_path("test/fixtures/ckpt/zip64_state_dict.pt"), &len);
	groma_zip  *zip = NULL;
	uint8_t    *copy;
	groma_status st;

	if (bytes == NULL)
		return;
	CHECK(le32(bytes + len - 22 - 20) == 0x07064b50u);
	put_le(bytes + len - 22 - 20 + 8, 0xFFFFFFFF0ull, 8);
	st = open_copy(bytes, len, &zip, &copy);
	CHECKF(st.code == GROMA_ERR_FORMAT && strstr(st.message, "zip64") != NULL, "%s", st.message);
	groma_zip_close(zip);
	free(copy);
	free(bytes);
}

/* Compressed entries are listed but their data is refused; a CRC mismatch is caught. */
UNIT_TEST(test_zip_reader_compressed_and_crc)
{
	char		dir[64],
				path[128];
	fx_zip	   *w;
	groma_zip  *zip = NULL;
	const uint8_t *data;
	uint64_t	size;
	groma_status st;

	if (!fx_temp_dir("zip", dir, sizeof(dir)))
		return;
	snprintf(path, sizeof(path), "%s/c.zip", dir);
	w = fx_zip_create(path, false);
	CHECK(w != NULL && fx_zip_begin(w, "p/data/0", GROMA_ZIP_DEFLATED) &&
		  fx_zip_write(w, "not really deflate", 18) && fx_zip_end(w) &&
		  fx_zip_add(w, "p/ok", "fine", 4) && fx_zip_finish(w));
	CHECK(groma_zip_open(path, &zip).code == GROMA_OK);
	if (zip != NULL)
	{
		st = groma_zip_stored_data(zip, groma_zip_find(zip, "p/data/0"), &data, &size);
		CHECKF(st.code == GROMA_ERR_UNSUPPORTED && strstr(st.message, "compressed") != NULL &&
			   data == NULL, "%s", st.message);
		groma_zip_close(zip);
	}
	{
		size_t		len = 0;
		uint8_t    *bytes = unit_read_file(path, &len);
		uint8_t    *copy;

		/* Flip a byte of "fine": the directory still parses, the checksum does not match. */
		for (size_t i = 0; bytes != NULL && i + 4 <= len; i++)
			if (memcmp(bytes + i, "fine", 4) == 0)
			{
				bytes[i] = 'F';
				break;
			}
		st = open_copy(bytes, len, &zip, &copy);
		CHECK(st.code == GROMA_OK);
		if (zip != NULL)
		{
			st = groma_zip_checked_data(zip, groma_zip_find(zip, "p/ok"), &data, &size);
			CHECKF(st.code == GROMA_ERR_FORMAT && strstr(st.message, "CRC") != NULL, "%s",
				   st.message);
			CHECK(groma_zip_stored_data(zip, groma_zip_find(zip, "p/ok"), &data, &size).code == GROMA_OK &&
				  size == 4 && memcmp(data, "Fine", 4) == 0);
		}
		groma_zip_close(zip);
		free(copy);
		free(bytes);
	}
	fx_remove_dir(dir);
}

/* Files that are not zip archives at all, and paths that do not exist. */
UNIT_TEST(test_zip_reader_not_a_zip)
{
	groma_zip  *zip = NULL;
	groma_status st = groma_zip_open("/nonexistent/groma.zip", &zip);

	CHECK(st.code == GROMA_ERR_IO && zip == NULL);
	st = groma_zip_open(unit_path("test/golden/tiny-groma/config.json"), &zip);
	CHECKF(st.code == GROMA_ERR_FORMAT && strstr(st.message, "end of central directory") != NULL,
		   "%s", st.message);
	st = groma_zip_open(unit_path("test/golden"), &zip);
	CHECK(st.code == GROMA_ERR_FORMAT && zip == NULL);
	st = groma_zip_open_memory(NULL, 0, NULL, &zip);
	CHECK(st.code == GROMA_ERR_FORMAT && zip == NULL);
}
