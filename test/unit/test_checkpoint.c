/*
 * test_checkpoint.c - opening checkpoints and reading their tensors: the
 * torch 2.x dtype golden (values and views from manifest.json), the vendored
 * torch 1.13 tiny Groma checkpoint (checksums computed independently by
 * test/fixtures/ckpt/make_ckpt_fixtures.py with zipfile + pickle + struct),
 * Python's ZIP64 archive, and malformed checkpoints built into /tmp.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt_fixture.h"
#include "unit.h"
#include "../../src/io/checkpoint.h"
#include "../../src/io/zip_reader.h"

/* Maps a manifest dtype name to the checkpoint dtype. */
static groma_st_dtype
dtype_from_manifest(const char *name)
{
	if (strcmp(name, "float16") == 0)
		return GROMA_ST_F16;
	if (strcmp(name, "bfloat16") == 0)
		return GROMA_ST_BF16;
	if (strcmp(name, "int64") == 0)
		return GROMA_ST_I64;
	return GROMA_ST_F32;
}

/* Checks one tensor against a manifest entry: dtype, shape, strides, offset, every value. */
static void
check_against_manifest(const groma_ckpt_tensor *t, json_t *m)
{
	json_t	   *shape = json_object_get(m, "shape");
	json_t	   *stride = json_object_get(m, "stride");
	json_t	   *values = json_object_get(m, "values");
	int64_t		n = groma_ckpt_tensor_numel(t);

	CHECKF(t->dtype == dtype_from_manifest(json_string_value(json_object_get(m, "dtype"))),
		   "dtype of %s", t->name);
	CHECKF((size_t) t->ndim == json_array_size(shape) && t->storage_offset ==
		   json_integer_value(json_object_get(m, "storage_offset")), "shape of %s", t->name);
	for (int d = 0; d < t->ndim && (size_t) d < json_array_size(shape); d++)
		CHECKF(t->shape[d] == json_integer_value(json_array_get(shape, (size_t) d)) &&
			   t->stride[d] == json_integer_value(json_array_get(stride, (size_t) d)),
			   "dimension %d of %s", d, t->name);
	CHECKF((size_t) n == json_array_size(values), "numel of %s", t->name);
	if ((size_t) n != json_array_size(values))
		return;
	if (t->dtype == GROMA_ST_I64)
	{
		int64_t    *v = malloc((size_t) n * sizeof(int64_t));

		CHECK(groma_ckpt_tensor_read(t, 0, n, GROMA_ST_I64, v).code == GROMA_OK);
		/* The manifest's int64 values went through float32 (-5000000035 is written -5e9). */
		for (int64_t i = 0; i < n; i++)
			CHECKF((double) (float) v[i] == json_number_value(json_array_get(values, (size_t) i)),
				   "%s[%lld] = %lld", t->name, (long long) i, (long long) v[i]);
		free(v);
		return;
	}
	{
		float	   *v = malloc((size_t) n * sizeof(float));

		CHECK(groma_ckpt_tensor_read(t, 0, n, GROMA_ST_F32, v).code == GROMA_OK);
		for (int64_t i = 0; i < n; i++)
			CHECKF(v[i] == json_number_value(json_array_get(values, (size_t) i)) &&
				   !signbit(v[i]) == !signbit(json_number_value(json_array_get(values, (size_t) i))),
				   "%s[%lld] = %g", t->name, (long long) i, v[i]);
		free(v);
	}
}

/* torch 2.x: fp32, fp16, bf16, int64 and three views of one storage, all as manifest.json says. */
UNIT_TEST(test_checkpoint_dtype_golden)
{
	json_t	   *manifest = json_load_file(unit_path("test/golden/compact/manifest.json"), 0, NULL);
	json_t	   *cases = json_object_get(manifest, "dtype_checkpoint");
	groma_checkpoint *ckpt = NULL;
	groma_status st = groma_checkpoint_open(unit_path("test/golden/compact/dtype_ckpt.pt"), &ckpt);
	const groma_ckpt_tensor *base,
			   *cols;
	const char *key;
	json_t	   *m;

	CHECKF(st.code == GROMA_OK, "%s", st.message);
	if (ckpt == NULL || cases == NULL)
	{
		json_decref(manifest);
		groma_checkpoint_close(ckpt);
		return;
	}
	CHECK(groma_checkpoint_format(ckpt) == GROMA_CKPT_PYTORCH_ZIP);
	CHECK(groma_checkpoint_count(ckpt) == 8);
	json_object_foreach(cases, key, m)
	{
		const groma_ckpt_tensor *t;

		if (key[0] == '_')
			continue;
		st = groma_checkpoint_get(ckpt, key, &t);
		CHECKF(st.code == GROMA_OK, "%s", st.message);
		if (st.code == GROMA_OK)
			check_against_manifest(t, m);
	}
	/* The views alias one storage: same bytes, data pointers offset by storage_offset. */
	base = groma_checkpoint_find(ckpt, "base");
	cols = groma_checkpoint_find(ckpt, "view_cols");
	CHECK(base && cols && base->storage == cols->storage &&
		  (const float *) cols->data == (const float *) base->data + 1 &&
		  groma_checkpoint_find(ckpt, "view_t")->data == base->data &&
		  strcmp(groma_checkpoint_find(ckpt, "view_offset")->storage_key, base->storage_key) == 0);
	CHECK(groma_checkpoint_find(ckpt, "f32")->storage != base->storage);
	st = groma_checkpoint_get(ckpt, "absent", &base);
	CHECKF(st.code == GROMA_ERR_FORMAT && strstr(st.message, "\"absent\"") != NULL, "%s", st.message);
	json_decref(manifest);
	groma_checkpoint_close(ckpt);
}

/* Sums a tensor's values in row-major order in double, as the fixture generator did. */
static double
sum_values(const groma_ckpt_tensor *t, double *sum_abs)
{
	int64_t		n = groma_ckpt_tensor_numel(t);
	float	   *v = malloc((size_t) n * sizeof(float));
	double		sum = 0;

	*sum_abs = 0;
	if (groma_ckpt_tensor_read(t, 0, n, GROMA_ST_F32, v).code != GROMA_OK)
		n = 0;
	for (int64_t i = 0; i < n; i++)
	{
		sum += v[i];
		*sum_abs += fabs(v[i]);
	}
	free(v);
	return sum;
}

/* The vendored tiny Groma checkpoint (torch 1.13): 299 tensors, aliases, values. */
UNIT_TEST(test_checkpoint_tiny_groma)
{
	json_t	   *expected = json_load_file(unit_path("test/fixtures/ckpt/expected.json"), 0, NULL);
	json_t	   *tiny = json_object_get(expected, "tiny");
	groma_checkpoint *ckpt = NULL;
	groma_status st = groma_checkpoint_open(unit_path("test/golden/tiny-groma"), &ckpt);
	groma_tensor view;
	size_t		i;
	json_t	   *item;

	CHECKF(st.code == GROMA_OK, "%s", st.message);
	if (ckpt == NULL || tiny == NULL)
	{
		json_decref(expected);
		groma_checkpoint_close(ckpt);
		return;
	}
	CHECK(strcmp(groma_checkpoint_dir(ckpt), unit_path("test/golden/tiny-groma")) == 0);
	CHECK(strstr(groma_checkpoint_path(ckpt), "pytorch_model.bin") != NULL);
	CHECK((json_int_t) groma_checkpoint_count(ckpt) ==
		  json_integer_value(json_object_get(tiny, "tensor_count")));
	json_array_foreach(json_object_get(tiny, "tensors"), i, item)
	{
		const char *name = json_string_value(json_object_get(item, "name"));
		const groma_ckpt_tensor *t = groma_checkpoint_find(ckpt, name);
		json_t	   *first = json_object_get(item, "first");
		double		sum_abs,
					sum;
		float		v[3],
					last,
					middle;
		int64_t		n;

		CHECKF(t != NULL, "missing %s", name);
		if (t == NULL)
			continue;
		n = groma_ckpt_tensor_numel(t);
		CHECK(strcmp(t->storage_key, json_string_value(json_object_get(item, "storage_key"))) == 0);
		sum = sum_values(t, &sum_abs);
		CHECKF(fabs(sum - json_number_value(json_object_get(item, "sum"))) <= 1e-9 * sum_abs &&
			   fabs(sum_abs - json_number_value(json_object_get(item, "sum_abs"))) <= 1e-9 * sum_abs,
			   "sums of %s: %.17g %.17g", name, sum, sum_abs);
		CHECK(groma_ckpt_tensor_read(t, 0, 3, GROMA_ST_F32, v).code == GROMA_OK);
		for (int k = 0; k < 3; k++)
			CHECKF(v[k] == json_number_value(json_array_get(first, (size_t) k)), "%s[%d]", name, k);
		CHECK(groma_ckpt_tensor_read(t, n - 1, 1, GROMA_ST_F32, &last).code == GROMA_OK &&
			  last == json_number_value(json_object_get(item, "last")));
		CHECK(groma_ckpt_tensor_read(t, json_integer_value(json_object_get(item, "middle_index")), 1,
									 GROMA_ST_F32, &middle).code == GROMA_OK &&
			  middle == json_number_value(json_object_get(item, "middle")));
	}
	/* Names that share a storage in the file are views of the same mapped bytes. */
	CHECK(json_array_size(json_object_get(tiny, "alias_groups")) == 28);
	json_array_foreach(json_object_get(tiny, "alias_groups"), i, item)
	{
		const groma_ckpt_tensor *a = groma_checkpoint_find(ckpt, json_string_value(json_array_get(item, 0)));
		const groma_ckpt_tensor *b = groma_checkpoint_find(ckpt, json_string_value(json_array_get(item, 1)));

		CHECK(a != NULL && b != NULL && a != b && a->data == b->data && a->storage == b->storage);
	}
	st = groma_checkpoint_view(ckpt, "llm.model.embed_tokens.weight", &view);
	CHECKF(st.code == GROMA_OK && view.dtype == GROMA_F32 && view.ndim == 2 &&
		   view.shape[0] == 32000 && view.shape[1] == 32 && view.stride[0] == 32 &&
		   view.stride[1] == 1 && view.device == GROMA_DEVICE_CPU &&
		   view.data == groma_checkpoint_find(ckpt, "llm.model.embed_tokens.weight")->data,
		   "%s", st.message);
	st = groma_checkpoint_view(ckpt, "no.such.tensor", &view);
	CHECK(st.code == GROMA_ERR_FORMAT && view.data == NULL);
	groma_checkpoint_prefetch(ckpt);
	json_decref(expected);
	groma_checkpoint_close(ckpt);
}

/* Python's ZIP64 archive: values of every dtype, a scalar, aliases; reading works unaligned too. */
UNIT_TEST(test_checkpoint_python_zip64)
{
	json_t	   *expected = json_load_file(unit_path("test/fixtures/ckpt/expected.json"), 0, NULL);
	size_t		len = 0;
	uint8_t    *bytes = unit_read_file(unit_path("test/fixtures/ckpt/zip64_state_dict.pt"), &len);
	uint8_t    *shifted = malloc(len + 1);

	if (bytes == NULL || expected == NULL)
	{
		free(bytes);
		free(shifted);
		json_decref(expected);
		return;
	}
	/* Pass 0 opens the file; pass 1 a copy one byte off alignment, so views are refused but reads work. */
	memcpy(shifted + 1, bytes, len);
	for (int pass = 0; pass < 2; pass++)
	{
		groma_checkpoint *ckpt = NULL;
		groma_status st = pass == 0 ?
			groma_checkpoint_open(unit_path("test/fixtures/ckpt/zip64_state_dict.pt"), &ckpt) :
			groma_checkpoint_open_memory(shifted + 1, len, "shifted", &ckpt);
		size_t		i;
		json_t	   *item;
		groma_tensor view;

		CHECKF(st.code == GROMA_OK, "pass %d: %s", pass, st.message);
		if (ckpt == NULL)
			continue;
		CHECK(groma_checkpoint_count(ckpt) == 7);
		json_array_foreach(json_object_get(expected, "zip64_state_dict"), i, item)
		{
			const groma_ckpt_tensor *t = groma_checkpoint_find(ckpt, json_string_value(json_object_get(item, "name")));
			json_t	   *values = json_object_get(item, "values");
			double		got[16];

			CHECK(t != NULL && (size_t) groma_ckpt_tensor_numel(t) == json_array_size(values));
			if (t == NULL || json_array_size(values) > 16)
				continue;
			for (size_t k = 0; k < json_array_size(values); k++)
			{
				if (t->dtype == GROMA_ST_I32)
				{
					int32_t		v;

					CHECK(groma_ckpt_tensor_read(t, (int64_t) k, 1, GROMA_ST_I32, &v).code == GROMA_OK);
					got[k] = v;
				}
				else if (t->dtype == GROMA_ST_I64)
				{
					int64_t		v;

					CHECK(groma_ckpt_tensor_read(t, (int64_t) k, 1, GROMA_ST_I64, &v).code == GROMA_OK);
					got[k] = (double) v;
				}
				else
					CHECK(groma_ckpt_tensor_read(t, (int64_t) k, 1, GROMA_ST_F64, &got[k]).code == GROMA_OK);
				CHECKF(got[k] == json_number_value(json_array_get(values, k)), "pass %d %s[%zu] = %g",
					   pass, t->name, k, got[k]);
			}
		}
		CHECK(groma_checkpoint_find(ckpt, "scalar")->ndim == 0);
		st = groma_checkpoint_view(ckpt, "w_t", &view);
		if (pass == 0)
			CHECKF(st.code == GROMA_OK && view.stride[0] == 1 && view.stride[1] == 4, "%s", st.message);
		else
			CHECKF(st.code == GROMA_ERR_UNSUPPORTED && strstr(st.message, "aligned") != NULL, "%s",
				   st.message);
		groma_checkpoint_close(ckpt);
	}
	free(shifted);
	free(bytes);
	json_decref(expected);
}

/* Strided reads of any sub-range, dtype conversion, and refused reads. */
UNIT_TEST(test_checkpoint_read_ranges)
{
	groma_checkpoint *ckpt = NULL;
	const groma_ckpt_tensor *t,
			   *base,
			   *bf16,
			   *i64;
	float		all[24],
				part[24];
	uint16_t	bits[24];

	if (groma_checkpoint_open(unit_path("test/golden/compact/dtype_ckpt.pt"), &ckpt).code != GROMA_OK)
	{
		CHECK(!"dtype_ckpt.pt opens");
		return;
	}
	t = groma_checkpoint_find(ckpt, "view_t");
	base = groma_checkpoint_find(ckpt, "base");
	bf16 = groma_checkpoint_find(ckpt, "bf16");
	i64 = groma_checkpoint_find(ckpt, "i64");
	CHECK(!groma_ckpt_tensor_is_contiguous(t) && groma_ckpt_tensor_is_contiguous(base));
	CHECK(groma_ckpt_tensor_read(t, 0, 24, GROMA_ST_F32, all).code == GROMA_OK);
	/* Every sub-range equals the same slice of the whole read. */
	for (int first = 0; first < 24; first++)
		for (int count = 0; first + count <= 24; count++)
		{
			memset(part, 0, sizeof(part));
			CHECK(groma_ckpt_tensor_read(t, first, count, GROMA_ST_F32, part).code == GROMA_OK);
			CHECKF(memcmp(part, all + first, (size_t) count * sizeof(float)) == 0, "[%d,+%d)", first, count);
		}
	/* view_t is base transposed. */
	CHECK(groma_ckpt_tensor_read(base, 0, 24, GROMA_ST_F32, part).code == GROMA_OK);
	for (int r = 0; r < 6; r++)
		for (int c = 0; c < 4; c++)
			CHECK(all[r * 4 + c] == part[c * 6 + r]);
	/* bf16 read back as bf16 is the stored bits; as f32 exact. */
	CHECK(groma_ckpt_tensor_read(bf16, 0, 24, GROMA_ST_BF16, bits).code == GROMA_OK &&
		  memcmp(bits, bf16->data, sizeof(bits)) == 0);
	CHECK(groma_ckpt_tensor_read(i64, 0, 1, GROMA_ST_F32, all).code == GROMA_ERR_UNSUPPORTED);
	CHECK(groma_ckpt_tensor_read(base, 20, 5, GROMA_ST_F32, all).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_ckpt_tensor_read(base, -1, 1, GROMA_ST_F32, all).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_ckpt_tensor_read(base, 24, 0, GROMA_ST_F32, all).code == GROMA_OK);
	groma_checkpoint_close(ckpt);
}

/* Writes a checkpoint of tensors over one 24-float storage "0" into dir; returns its open status. */
static groma_status
open_built(const char *dir, const fx_tensor *tensors, int count, bool zip64, groma_checkpoint **ckpt)
{
	static float storage[24];
	fx_storage	s = {"0", storage, sizeof(storage)};
	fx_pickle	p = {0};
	char		path[128];

	for (int i = 0; i < 24; i++)
		storage[i] = (float) i;
	snprintf(path, sizeof(path), "%s/built.pt", dir);
	fx_pk_state_dict(&p, tensors, count);
	CHECK(fx_write_checkpoint(path, "built", &p, &s, 1, zip64));
	fx_pk_free(&p);
	return groma_checkpoint_open(path, ckpt);
}

/* Views that overrun their storage, overflow, or name missing storages are refused by name. */
UNIT_TEST(test_checkpoint_bad_views)
{
	static const struct
	{
		const char *what;
		fx_tensor	t;
		groma_status_code code;
		const char *text;
	}			cases[] = {
		{"fits exactly", {"w", "FloatStorage", "0", 24, 0, 2, {4, 6}, {6, 1}}, GROMA_OK, ""},
		{"strided view fits", {"w", "FloatStorage", "0", 24, 1, 2, {4, 3}, {6, 2}}, GROMA_OK, ""},
		{"empty view at the end", {"w", "FloatStorage", "0", 24, 24, 1, {0}, {1}}, GROMA_OK, ""},
		{"broadcast stride 0 within the storage's size", {"w", "FloatStorage", "0", 24, 23, 2, {24, 1}, {0, 1}},
		GROMA_OK, ""},
		{"stride 0 expanding past the storage's size", {"w", "FloatStorage", "0", 24, 23, 2, {1000, 1}, {0, 1}},
		GROMA_ERR_FORMAT, "tensor \"w\" has 1000 elements but its storage \"0\" holds 24"},
		{"stride 0 over one element, 2^61 long", {"w", "FloatStorage", "0", 24, 0, 1, {INT64_C(1) << 61}, {0}},
		GROMA_ERR_FORMAT, "tensor \"w\" has 2305843009213693952 elements"},
		{"storage shorter than the tensor", {"w", "FloatStorage", "0", 24, 0, 2, {5, 6}, {6, 1}},
		GROMA_ERR_FORMAT, "tensor \"w\" reaches element 29 of storage \"0\", which holds 24"},
		{"offset past the end", {"w", "FloatStorage", "0", 24, 20, 1, {6}, {1}},
		GROMA_ERR_FORMAT, "reaches element 25"},
		{"one element past the end", {"w", "FloatStorage", "0", 24, 19, 1, {6}, {1}},
		GROMA_ERR_FORMAT, "reaches element 24 of storage \"0\", which holds 24"},
		{"empty view past the end", {"w", "FloatStorage", "0", 24, 25, 1, {0}, {1}},
		GROMA_ERR_FORMAT, "starts past the end"},
		{"shape overflowing size_t", {"w", "FloatStorage", "0", 24, 0, 3,
		{2147483647, 2147483647, 2147483647}, {1, 1, 1}}, GROMA_ERR_FORMAT, "overflows size_t"},
		{"bytes overflowing size_t", {"w", "FloatStorage", "0", 24, 0, 1, {INT64_C(1) << 62}, {1}},
		GROMA_ERR_FORMAT, "overflows size_t"},
		{"strides overflowing", {"w", "FloatStorage", "0", 24, 0, 2, {3, 3}, {INT64_MAX, INT64_MAX}},
		GROMA_ERR_FORMAT, "strides that overflow"},
		{"storage length mismatch", {"w", "FloatStorage", "0", 25, 0, 1, {4}, {1}},
		GROMA_ERR_FORMAT, "storage \"0\" of tensor \"w\" holds 96 bytes, not 25 F32 elements"},
		{"storage of another dtype length", {"w", "LongStorage", "0", 24, 0, 1, {4}, {1}},
		GROMA_ERR_FORMAT, "not 24 I64 elements"},
		{"missing storage", {"w", "FloatStorage", "7", 24, 0, 1, {4}, {1}},
		GROMA_ERR_FORMAT, "storage \"7\" of tensor \"w\" is missing"},
		{"forbidden storage global", {"w", "_rebuild_from_type", "0", 24, 0, 1, {4}, {1}},
		GROMA_ERR_FORMAT, "forbidden pickle global \"torch._rebuild_from_type\""},
	};
	char		dir[64];

	if (!fx_temp_dir("views", dir, sizeof(dir)))
		return;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (int zip64 = 0; zip64 <= 1; zip64++)
		{
			groma_checkpoint *ckpt = NULL;
			groma_status st = open_built(dir, &cases[i].t, 1, zip64 == 1, &ckpt);

			CHECKF(st.code == cases[i].code && strstr(st.message, cases[i].text) != NULL &&
				   (ckpt != NULL) == (st.code == GROMA_OK),
				   "%s (zip64 %d): %s", cases[i].what, zip64, st.message);
			if (ckpt != NULL)
			{
				const groma_ckpt_tensor *t = groma_checkpoint_find(ckpt, "w");
				int64_t		n = groma_ckpt_tensor_numel(t);
				float		last = -1;

				/* The last element by strides is readable (ASan would flag an overread); it is 23 in every good case. */
				if (n > 0)
					CHECKF(groma_ckpt_tensor_read(t, n - 1, 1, GROMA_ST_F32, &last).code == GROMA_OK &&
						   last == 23.0f, "%s: last element %g", cases[i].what, last);
				groma_checkpoint_close(ckpt);
			}
		}
	fx_remove_dir(dir);
}

/* Archive-level problems: compressed storages, big-endian files, missing or doubled data.pkl, damage. */
UNIT_TEST(test_checkpoint_bad_archives)
{
	static float storage[4] = {1, 2, 3, 4};
	fx_tensor	t = {"w", "FloatStorage", "0", 4, 0, 1, {4}, {1}};
	fx_pickle	p = {0};
	char		dir[64],
				path[128];
	struct
	{
		const char *what;
		const char *pkl_name;	/* NULL: no data.pkl */
		const char *second_pkl;
		const char *byteorder;
		uint16_t	method;
		groma_status_code code;
		const char *text;
	}			cases[] = {
		{"good", "c/data.pkl", NULL, "little", 0, GROMA_OK, ""},
		{"no byteorder entry", "c/data.pkl", NULL, NULL, 0, GROMA_OK, ""},
		{"compressed storage", "c/data.pkl", NULL, "little", 8, GROMA_ERR_UNSUPPORTED,
		"entry \"c/data/0\" is compressed"},
		{"big-endian", "c/data.pkl", NULL, "big", 0, GROMA_ERR_UNSUPPORTED, "big-endian"},
		{"bad byteorder", "c/data.pkl", NULL, "middle", 0, GROMA_ERR_FORMAT, "byteorder"},
		{"no data.pkl", NULL, NULL, "little", 0, GROMA_ERR_FORMAT, "no <name>/data.pkl"},
		{"nested data.pkl only", "c/d/data.pkl", NULL, "little", 0, GROMA_ERR_FORMAT, "no <name>/data.pkl"},
		{"two data.pkl", "c/data.pkl", "e/data.pkl", "little", 0, GROMA_ERR_FORMAT, "several data.pkl"},
	};

	if (!fx_temp_dir("arch", dir, sizeof(dir)))
		return;
	snprintf(path, sizeof(path), "%s/x.pt", dir);
	fx_pk_state_dict(&p, &t, 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		fx_zip	   *z = fx_zip_create(path, i % 2 == 1);
		groma_checkpoint *ckpt = NULL;
		groma_status st;

		CHECK(z != NULL);
		if (z == NULL)
			break;
		if (cases[i].pkl_name)
			fx_zip_add(z, cases[i].pkl_name, p.data, p.len);
		if (cases[i].second_pkl)
			fx_zip_add(z, cases[i].second_pkl, p.data, p.len);
		if (cases[i].byteorder)
			fx_zip_add(z, "c/byteorder", cases[i].byteorder, strlen(cases[i].byteorder));
		fx_zip_begin(z, "c/data/0", cases[i].method);
		fx_zip_write(z, storage, sizeof(storage));
		fx_zip_end(z);
		CHECK(fx_zip_finish(z));
		st = groma_checkpoint_open(path, &ckpt);
		CHECKF(st.code == cases[i].code && strstr(st.message, cases[i].text) != NULL,
			   "%s: %s", cases[i].what, st.message);
		if (st.code == GROMA_OK)
		{
			float		v[4];

			CHECK(ckpt != NULL && groma_ckpt_tensor_read(groma_checkpoint_find(ckpt, "w"), 0, 4,
														 GROMA_ST_F32, v).code == GROMA_OK &&
				  memcmp(v, storage, sizeof(v)) == 0);
		}
		groma_checkpoint_close(ckpt);
	}
	fx_pk_free(&p);
	fx_remove_dir(dir);
}

/* A damaged copy of a real checkpoint (truncated, bad directory, bad data.pkl checksum) fails cleanly. */
UNIT_TEST(test_checkpoint_damaged_files)
{
	size_t		len = 0;
	uint8_t    *bytes = unit_read_file(unit_path("test/golden/compact/dtype_ckpt.pt"), &len);
	char		dir[64],
				path[128];

	if (bytes == NULL || !fx_temp_dir("dmg", dir, sizeof(dir)))
	{
		free(bytes);
		return;
	}
	snprintf(path, sizeof(path), "%s/damaged.pt", dir);
	for (int variant = 0; variant < 4; variant++)
	{
		uint8_t    *copy = malloc(len);
		size_t		n = len;
		groma_checkpoint *ckpt = NULL;
		groma_status st;
		const char *text = "";

		memcpy(copy, bytes, len);
		if (variant == 0)
		{
			n = len / 2;
			text = "end of central directory";
		}
		else if (variant == 1)
		{
			n = len - 1;
			text = "end of central directory";
		}
		else if (variant == 2)
		{
			/* Zip64 end record's directory offset, one byte early. */
			size_t		record = 0;

			for (int k = 7; k >= 0; k--)
				record = (record << 8) | copy[len - 22 - 20 + 8 + k];

			copy[record + 48]--;
			text = "central directory entry 0";
		}
		else
		{
			/* A byte inside data.pkl (the first entry, its pickle starts with PROTO 2). */
			for (size_t i = 0; i + 1 < len; i++)
				if (copy[i] == 0x80 && copy[i + 1] == 0x02)
				{
					copy[i + 1] = 0x03;
					break;
				}
			text = "CRC";
		}
		CHECK(fx_write_file(path, copy, n));
		st = groma_checkpoint_open(path, &ckpt);
		CHECKF(st.code == GROMA_ERR_FORMAT && ckpt == NULL && strstr(st.message, text) != NULL &&
			   strstr(st.message, "damaged.pt") != NULL, "variant %d: %s", variant, st.message);
		st = groma_checkpoint_open_memory(copy, n, "damaged.pt", &ckpt);
		CHECKF(st.code == GROMA_ERR_FORMAT && ckpt == NULL, "memory variant %d: %s", variant, st.message);
		free(copy);
	}
	free(bytes);
	fx_remove_dir(dir);
}

/* Paths: missing, folders without weights, sharded folders, legacy torch files, safetensors preferred. */
UNIT_TEST(test_checkpoint_paths)
{
	char		dir[64],
				path[160];
	groma_checkpoint *ckpt = NULL;
	groma_status st;
	static const uint8_t legacy[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20};

	st = groma_checkpoint_open("/nonexistent/groma", &ckpt);
	CHECK(st.code == GROMA_ERR_IO && ckpt == NULL);
	if (!fx_temp_dir("paths", dir, sizeof(dir)))
		return;
	st = groma_checkpoint_open(dir, &ckpt);
	CHECKF(st.code == GROMA_ERR_IO && strstr(st.message, "neither") != NULL, "%s", st.message);
	snprintf(path, sizeof(path), "%s/pytorch_model.bin.index.json", dir);
	CHECK(fx_write_file(path, "{}", 2));
	st = groma_checkpoint_open(dir, &ckpt);
	CHECKF(st.code == GROMA_ERR_UNSUPPORTED && strstr(st.message, "sharded") != NULL, "%s", st.message);
	snprintf(path, sizeof(path), "%s/pytorch_model.bin", dir);
	CHECK(fx_write_file(path, legacy, sizeof(legacy)));
	st = groma_checkpoint_open(dir, &ckpt);
	CHECKF(st.code == GROMA_ERR_UNSUPPORTED && strstr(st.message, "legacy") != NULL, "%s", st.message);
	/* A model.safetensors beside it wins. */
	{
		float		x[2] = {1.5f, -2.0f};
		groma_st_tensor t = {.name = "x", .dtype = GROMA_ST_F32, .ndim = 1, .shape = {2},
		.data = x, .nbytes = sizeof(x)};

		snprintf(path, sizeof(path), "%s/model.safetensors", dir);
		CHECK(groma_st_write(path, &t, 1, NULL, 0).code == GROMA_OK);
		st = groma_checkpoint_open(dir, &ckpt);
		CHECKF(st.code == GROMA_OK && groma_checkpoint_format(ckpt) == GROMA_CKPT_SAFETENSORS &&
			   groma_checkpoint_count(ckpt) == 1, "%s", st.message);
		if (ckpt != NULL)
		{
			const groma_ckpt_tensor *ct = groma_checkpoint_find(ckpt, "x");

			CHECK(ct != NULL && ct->ndim == 1 && ct->shape[0] == 2 && ct->stride[0] == 1 &&
				  ct->storage_key == NULL && memcmp(ct->data, x, sizeof(x)) == 0);
		}
		groma_checkpoint_close(ckpt);
		/* Given as a file path, the folder is the file's. */
		st = groma_checkpoint_open(path, &ckpt);
		CHECK(st.code == GROMA_OK && ckpt != NULL && strcmp(groma_checkpoint_dir(ckpt), dir) == 0);
		groma_checkpoint_close(ckpt);
	}
	fx_remove_dir(dir);
}
