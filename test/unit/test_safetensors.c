/*
 * test_safetensors.c - safetensors write/read round trip and malformed files.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"
#include "../../src/io/safetensors.h"

/* Writes bytes to a temporary file and returns its path (static buffer). */
static const char *
temp_file(const void *bytes, size_t n)
{
	static char path[64];
	FILE	   *f;
	int			fd;

	strcpy(path, "/tmp/groma-unit-XXXXXX");
	fd = mkstemp(path);
	f = fdopen(fd, "wb");
	fwrite(bytes, 1, n, f);
	fclose(f);
	return path;
}

/* Tensors and metadata survive a write and a read. */
UNIT_TEST(test_safetensors_round_trip)
{
	float		a[6] = {1, -2, 3.5f, 0, 1e-7f, -0.0f};
	int64_t		b[2] = {-5000000000LL, 7};
	groma_st_tensor in[2] = {
		{.name = "a", .dtype = GROMA_ST_F32, .ndim = 2, .shape = {2, 3}, .data = a, .nbytes = sizeof(a)},
		{.name = "b.ids", .dtype = GROMA_ST_I64, .ndim = 1, .shape = {2}, .data = b, .nbytes = sizeof(b)},
	};
	const char *meta[] = {"k", "v \"quoted\""};
	char		path[64] = "/tmp/groma-unit-st-XXXXXX";
	int			fd = mkstemp(path);
	groma_st_file *f = NULL;
	groma_st_tensor t;
	groma_status st;

	close(fd);
	st = groma_st_write(path, in, 2, meta, 1);
	CHECKF(st.code == GROMA_OK, "%s", st.message);
	st = groma_st_open(path, &f);
	CHECKF(st.code == GROMA_OK, "%s", st.message);
	if (f == NULL)
		return;
	CHECK(groma_st_get(f, "a", &t).code == GROMA_OK && t.ndim == 2 && t.shape[1] == 3 &&
		  memcmp(t.data, a, sizeof(a)) == 0 && ((uintptr_t) t.data % 4) == 0);
	CHECK(groma_st_get(f, "b.ids", &t).code == GROMA_OK && memcmp(t.data, b, sizeof(b)) == 0);
	CHECK(groma_st_get(f, "missing", &t).code == GROMA_ERR_FORMAT);
	CHECK(groma_st_metadata(f, "k") && strcmp(groma_st_metadata(f, "k"), "v \"quoted\"") == 0);
	CHECK(groma_st_metadata(f, "absent") == NULL);
	groma_st_close(f);
	unlink(path);
}

/* Bad header lengths, JSON, offsets and sizes are refused with GROMA_ERR_FORMAT. */
UNIT_TEST(test_safetensors_malformed)
{
	static const char *headers[] = {
		"{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}",	/* past the end */
		"{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",	/* size mismatch */
		"{\"x\":{\"dtype\":\"Q8\",\"shape\":[2],\"data_offsets\":[0,8]}}",	/* unknown dtype */
		"{\"x\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,8]}}",	/* negative dim */
		"{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}",
		"{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}",	/* reversed */
		"[1,2,3]",
		"{not json",
	};

	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++)
	{
		uint8_t		buf[512];
		size_t		hl = strlen(headers[i]);
		groma_st_file *f = NULL;
		groma_status st;
		const char *path;

		memset(buf, 0, sizeof(buf));
		for (int k = 0; k < 8; k++)
			buf[k] = (uint8_t) (hl >> (8 * k));
		memcpy(buf + 8, headers[i], hl);
		path = temp_file(buf, 8 + hl + 8);	/* 8 data bytes */
		st = groma_st_open(path, &f);
		CHECKF(st.code == GROMA_ERR_FORMAT && f == NULL, "header %zu accepted: %s", i, headers[i]);
		unlink(path);
	}
	{
		uint8_t		buf[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
		groma_st_file *f = NULL;
		const char *path = temp_file(buf, sizeof(buf));

		CHECK(groma_st_open(path, &f).code == GROMA_ERR_FORMAT);
		unlink(path);
		CHECK(groma_st_open("/nonexistent/file", &f).code == GROMA_ERR_IO);
	}
}
