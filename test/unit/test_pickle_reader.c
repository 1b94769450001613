/*
 * test_pickle_reader.c - the restricted unpickler on pickles written by
 * torch 1.13 and torch 2.x, on protocol-4 pickles written by Python's pickle
 * module (test/fixtures/ckpt/make_ckpt_fixtures.py), and on hostile ones.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_fixture.h"
#include "unit.h"
#include "../../src/io/pickle_reader.h"
#include "../../src/io/zip_reader.h"

/* Reads entry name of a zip file into a malloc'd buffer; NULL (with a failed check) on failure. */
static uint8_t *
read_entry(const char *zip_path, const char *name, size_t *len)
{
	groma_zip  *zip = NULL;
	const groma_zip_entry *e;
	const uint8_t *data;
	uint64_t	size;
	uint8_t    *copy = NULL;

	*len = 0;
	if (groma_zip_open(unit_path(zip_path), &zip).code != GROMA_OK)
	{
		CHECKF(0, "cannot open %s", zip_path);
		return NULL;
	}
	e = groma_zip_find(zip, name);
	if (e != NULL && groma_zip_checked_data(zip, e, &data, &size).code == GROMA_OK)
	{
		copy = malloc(size ? size : 1);
		memcpy(copy, data, size);
		*len = size;
	}
	CHECKF(copy != NULL, "cannot read %s in %s", name, zip_path);
	groma_zip_close(zip);
	return copy;
}

/* Returns the record named name, or NULL. */
static const groma_pickle_tensor *
find_record(const groma_pickle_state_dict *sd, const char *name)
{
	for (size_t i = 0; i < sd->count; i++)
		if (strcmp(sd->tensors[i].name, name) == 0)
			return &sd->tensors[i];
	return NULL;
}

/* Returns true when the record has the JSON shape, stride and storage offset. */
static bool
record_matches(const groma_pickle_tensor *t, json_t *shape, json_t *stride, json_int_t offset)
{
	if (t == NULL || (size_t) t->ndim != json_array_size(shape) ||
		(size_t) t->ndim != json_array_size(stride) || t->storage_offset != offset)
		return false;
	for (int d = 0; d < t->ndim; d++)
		if (t->shape[d] != json_integer_value(json_array_get(shape, (size_t) d)) ||
			t->stride[d] != json_integer_value(json_array_get(stride, (size_t) d)))
			return false;
	return true;
}

/* Runs the reader on bytes (exact-size copy) expecting failure code with message containing text. */
static void
expect_failure(const char *what, const void *bytes, size_t len, groma_status_code code,
			   const char *text)
{
	uint8_t    *copy = malloc(len ? len : 1);
	groma_pickle_state_dict sd;
	groma_status st;

	memcpy(copy, bytes, len);
	st = groma_pickle_read_state_dict(copy, len, "test.pkl", &sd);
	CHECKF(st.code == code, "%s: got %s: %s", what, groma_status_code_name(st.code), st.message);
	CHECKF(strstr(st.message, text) != NULL, "%s: message \"%s\" lacks \"%s\"", what, st.message,
		   text);
	CHECK(sd.count == 0 && sd.tensors == NULL);
	free(copy);
}

/* torch 1.13 (the tiny checkpoint): 299 records, matching what Python's pickle read. */
UNIT_TEST(test_pickle_reader_torch1_state_dict)
{
	size_t		len;
	uint8_t    *pkl = read_entry("test/golden/tiny-groma/pytorch_model.bin",
								 "pytorch_model/data.pkl", &len);
	json_t	   *expected = json_load_file(unit_path("test/fixtures/ckpt/expected.json"), 0, NULL);
	json_t	   *tiny = json_object_get(expected, "tiny");
	groma_pickle_state_dict sd;
	groma_status st;
	size_t		i;
	json_t	   *item;

	if (pkl == NULL || tiny == NULL)
	{
		CHECK(!"fixtures readable");
		free(pkl);
		json_decref(expected);
		return;
	}
	st = groma_pickle_read_state_dict(pkl, len, "tiny", &sd);
	CHECKF(st.code == GROMA_OK, "%s", st.message);
	CHECK((json_int_t) sd.count == json_integer_value(json_object_get(tiny, "tensor_count")));
	CHECK(sd.count > 0 && strcmp(sd.tensors[0].name, "perceiver.vis_encoder.embeddings.cls_token") == 0);
	json_array_foreach(json_object_get(tiny, "tensors"), i, item)
	{
		const char *name = json_string_value(json_object_get(item, "name"));
		const groma_pickle_tensor *t = find_record(&sd, name);

		CHECKF(record_matches(t, json_object_get(item, "shape"), json_object_get(item, "stride"),
							  json_integer_value(json_object_get(item, "storage_offset"))) &&
			   t->dtype == GROMA_ST_F32 &&
			   strcmp(t->storage_key, json_string_value(json_object_get(item, "storage_key"))) == 0,
			   "record of %s", name);
	}
	groma_pickle_state_dict_free(&sd);
	free(pkl);
	json_decref(expected);
}

/* torch 2.x: dtypes, strides and offsets of views sharing a storage (manifest.json dtype_checkpoint). */
UNIT_TEST(test_pickle_reader_torch2_views)
{
	size_t		len;
	uint8_t    *pkl = read_entry("test/golden/compact/dtype_ckpt.pt", "dtype_ckpt/data.pkl", &len);
	json_t	   *manifest = json_load_file(unit_path("test/golden/compact/manifest.json"), 0, NULL);
	json_t	   *cases = json_object_get(manifest, "dtype_checkpoint");
	static const struct
	{
		const char *name;
		const char *key;
		groma_st_dtype dtype;
		int64_t		storage_numel;
	}			storages[] = {
		{"f32", "0", GROMA_ST_F32, 24}, {"f16", "1", GROMA_ST_F16, 24},
		{"bf16", "2", GROMA_ST_BF16, 24}, {"i64", "3", GROMA_ST_I64, 12},
		{"base", "4", GROMA_ST_F32, 24}, {"view_cols", "4", GROMA_ST_F32, 24},
		{"view_t", "4", GROMA_ST_F32, 24}, {"view_offset", "4", GROMA_ST_F32, 24},
	};
	groma_pickle_state_dict sd;
	groma_status st;

	if (pkl == NULL || cases == NULL)
	{
		CHECK(!"fixtures readable");
		free(pkl);
		json_decref(manifest);
		return;
	}
	st = groma_pickle_read_state_dict(pkl, len, "dtype_ckpt", &sd);
	CHECKF(st.code == GROMA_OK && sd.count == 8, "%s", st.message);
	for (size_t i = 0; i < sizeof(storages) / sizeof(storages[0]); i++)
	{
		json_t	   *c = json_object_get(cases, storages[i].name);
		const groma_pickle_tensor *t = find_record(&sd, storages[i].name);

		CHECKF(t != NULL && i < sd.count && t == &sd.tensors[i], "order of %s", storages[i].name);
		CHECKF(record_matches(t, json_object_get(c, "shape"), json_object_get(c, "stride"),
							  json_integer_value(json_object_get(c, "storage_offset"))) &&
			   t->dtype == storages[i].dtype && strcmp(t->storage_key, storages[i].key) == 0 &&
			   t->storage_numel == storages[i].storage_numel, "record of %s", storages[i].name);
	}
	groma_pickle_state_dict_free(&sd);
	free(pkl);
	json_decref(manifest);
}

/* Protocol 4 (FRAME, MEMOIZE, STACK_GLOBAL), OrderedDict _metadata via BUILD, _rebuild_parameter, LONG1. */
UNIT_TEST(test_pickle_reader_protocol4)
{
	size_t		len = 0;
	uint8_t    *pkl = unit_read_file(unit_path("test/fixtures/ckpt/proto4_state_dict.pkl"), &len);
	json_t	   *expected = json_load_file(unit_path("test/fixtures/ckpt/expected.json"), 0, NULL);
	static const groma_st_dtype dtypes[] = {GROMA_ST_F64, GROMA_ST_F64, GROMA_ST_F32, GROMA_ST_U8};
	groma_pickle_state_dict sd;
	groma_status st;
	size_t		i;
	json_t	   *item;

	if (pkl == NULL || expected == NULL)
	{
		free(pkl);
		json_decref(expected);
		return;
	}
	st = groma_pickle_read_state_dict(pkl, len, "proto4", &sd);
	CHECKF(st.code == GROMA_OK && sd.count == 4, "%s (%zu records)", st.message, sd.count);
	json_array_foreach(json_object_get(expected, "proto4_state_dict"), i, item)
	{
		const groma_pickle_tensor *t = i < sd.count ? &sd.tensors[i] : NULL;

		CHECKF(t != NULL && strcmp(t->name, json_string_value(json_object_get(item, "name"))) == 0 &&
			   record_matches(t, json_object_get(item, "shape"), json_object_get(item, "stride"),
							  json_integer_value(json_object_get(item, "storage_offset"))) &&
			   t->dtype == dtypes[i] &&
			   strcmp(t->storage_key, json_string_value(json_object_get(item, "storage_key"))) == 0 &&
			   t->storage_numel == json_integer_value(json_object_get(item, "storage_numel")),
			   "record %zu", i);
	}
	groma_pickle_state_dict_free(&sd);
	free(pkl);
	json_decref(expected);
}

/* Every global outside the allow-list is refused by name, whichever opcode names it. */
UNIT_TEST(test_pickle_reader_forbidden_globals)
{
	static const char os_system[] = "\x80\x02" "cos\nsystem\n" "X\x02\x00\x00\x00ls" "\x85R.";
	static const char stack_eval[] = "\x80\x04\x8c\x08" "builtins" "\x8c\x04" "eval" "\x93.";
	static const char torch_load[] = "\x80\x02" "ctorch\nload\n.";
	static const char odd_bytes[] = "\x80\x02" "cos\"\x01\nsys\x7ftem\n.";
	fx_pickle	p = {0};
	fx_tensor	t = {"w", "load", "0", 4, 0, 1, {4}, {1}};

	expect_failure("os.system", os_system, sizeof(os_system) - 1, GROMA_ERR_FORMAT,
				   "forbidden pickle global \"os.system\"");
	expect_failure("builtins.eval", stack_eval, sizeof(stack_eval) - 1, GROMA_ERR_FORMAT,
				   "forbidden pickle global \"builtins.eval\"");
	expect_failure("torch.load", torch_load, sizeof(torch_load) - 1, GROMA_ERR_FORMAT,
				   "forbidden pickle global \"torch.load\"");
	expect_failure("unprintable", odd_bytes, sizeof(odd_bytes) - 1, GROMA_ERR_FORMAT,
				   "forbidden pickle global \"os??.sys?tem\"");
	/* Inside an otherwise well-formed state dict: a storage type torch never writes. */
	fx_pk_state_dict(&p, &t, 1);
	expect_failure("storage type torch.load", p.data, p.len, GROMA_ERR_FORMAT,
				   "forbidden pickle global \"torch.load\"");
	fx_pk_free(&p);
}

/* Every proper prefix of a real pickle fails with a format error, never a crash. */
UNIT_TEST(test_pickle_reader_truncated)
{
	size_t		len;
	uint8_t    *pkl = read_entry("test/golden/compact/dtype_ckpt.pt", "dtype_ckpt/data.pkl", &len);

	for (size_t cut = 0; pkl != NULL && cut < len; cut++)
	{
		uint8_t    *copy = malloc(cut ? cut : 1);
		groma_pickle_state_dict sd;
		groma_status st;

		memcpy(copy, pkl, cut);
		st = groma_pickle_read_state_dict(copy, cut, "cut", &sd);
		CHECKF(st.code == GROMA_ERR_FORMAT && sd.count == 0, "cut at %zu: %s", cut, st.message);
		free(copy);
	}
	free(pkl);
}

/* Malformed and hostile pickles: each refused with its own clear message. */
UNIT_TEST(test_pickle_reader_malformed)
{
	static const struct
	{
		const char *what;
		const char *bytes;
		size_t		len;
		groma_status_code code;
		const char *text;
	}			cases[] = {
#define CASE(what, bytes, code, text) {what, bytes, sizeof(bytes) - 1, code, text}
		CASE("empty", "", GROMA_ERR_FORMAT, "ends without STOP"),
		CASE("protocol 6", "\x80\x06}.", GROMA_ERR_UNSUPPORTED, "protocol 6"),
		CASE("not a dict", "\x80\x02N.", GROMA_ERR_FORMAT, "holds a None, not a state dict"),
		CASE("unset memo", "\x80\x02}q\x00h\x01.", GROMA_ERR_FORMAT, "never set"),
		CASE("TUPLE without MARK", "\x80\x02t.", GROMA_ERR_FORMAT, "no MARK"),
		CASE("REDUCE on empty stack", "\x80\x02R.", GROMA_ERR_FORMAT, "stack underflow"),
		CASE("pop below a mark", "\x80\x02}(\x85.", GROMA_ERR_FORMAT, "stack underflow"),
		CASE("SETITEM on a list", "\x80\x02]K\x01K\x02s.", GROMA_ERR_FORMAT, "not a dict"),
		CASE("APPEND to a dict", "\x80\x02}K\x01" "a.", GROMA_ERR_FORMAT, "not a list"),
		CASE("odd SETITEMS", "\x80\x02}(K\x01u.", GROMA_ERR_FORMAT, "odd number"),
		CASE("text INT opcode", "\x80\x02I1\n.", GROMA_ERR_UNSUPPORTED, "opcode 0x49"),
		CASE("9-byte LONG1", "\x80\x02\x8a\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09.",
			 GROMA_ERR_LIMIT, "too large"),
		CASE("huge string", "\x80\x02X\x00\x00\x10\x00", GROMA_ERR_LIMIT, "exceeds"),
		CASE("string past the end", "\x80\x02X\x10\x00\x00\x00" "abc", GROMA_ERR_FORMAT, "ends inside"),
		CASE("huge memo index", "\x80\x02}r\x00\x00\x00\x80.", GROMA_ERR_LIMIT, "memo index"),
		CASE("NUL in a string", "\x80\x02X\x03\x00\x00\x00" "a\x00" "b.", GROMA_ERR_FORMAT, "NUL"),
		CASE("frame past the end", "\x80\x04\x95\xff\x00\x00\x00\x00\x00\x00\x00}.", GROMA_ERR_FORMAT, "frame"),
		CASE("int key", "\x80\x02}K\x01K\x02s.", GROMA_ERR_FORMAT, "key 0 is a int"),
		CASE("non-tensor value", "\x80\x02}X\x01\x00\x00\x00" "aK\x02s.", GROMA_ERR_FORMAT,
			 "entry \"a\" is a int, not a tensor"),
		CASE("self-containing list", "\x80\x02}(X\x01\x00\x00\x00" "a]q\x00h\x00" "au.",
			 GROMA_ERR_FORMAT, "entry \"a\" is a list"),
		CASE("BUILD on a list", "\x80\x02]}b.", GROMA_ERR_UNSUPPORTED, "BUILD of a list"),
		CASE("OrderedDict with arguments", "\x80\x02" "ccollections\nOrderedDict\n]\x85R.",
			 GROMA_ERR_UNSUPPORTED, "OrderedDict built from arguments"),
		CASE("storage type called", "\x80\x02" "ctorch\nFloatStorage\n)R.", GROMA_ERR_UNSUPPORTED,
			 "calls a storage type"),
		CASE("persistent id not a storage", "\x80\x02K\x01Q.", GROMA_ERR_FORMAT,
			 "not a storage record"),
		CASE("persistent id with a bad type", "\x80\x02(X\x07\x00\x00\x00storageK\x01X\x01\x00\x00\x00" "0"
			 "X\x03\x00\x00\x00" "cpuK\x04tQ.", GROMA_ERR_FORMAT, "without a storage type"),
		CASE("rebuild without a storage", "\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\n(K\x00K\x00)"
			 ")\x89N" "tR.", GROMA_ERR_FORMAT, "without a storage"),
		CASE("GLOBAL without newline", "\x80\x02" "ctorch", GROMA_ERR_FORMAT, "GLOBAL"),
#undef CASE
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_failure(cases[i].what, cases[i].bytes, cases[i].len, cases[i].code, cases[i].text);
}

/* Tensor records that a dict could not hold or that break the view rules. */
UNIT_TEST(test_pickle_reader_bad_tensors)
{
	static const struct
	{
		const char *what;
		fx_tensor	tensors[2];
		int			count;
		groma_status_code code;
		const char *text;
	}			cases[] = {
		{"duplicate names", {{"w", "FloatStorage", "0", 4, 0, 1, {4}, {1}},
		{"w", "FloatStorage", "1", 4, 0, 1, {4}, {1}}}, 2, GROMA_ERR_FORMAT, "\"w\" appears twice"},
		{"negative dimension", {{"w", "FloatStorage", "0", 4, 0, 1, {-4}, {1}}}, 1,
		GROMA_ERR_FORMAT, "bad size"},
		{"negative stride", {{"w", "FloatStorage", "0", 4, 0, 1, {4}, {-1}}}, 1,
		GROMA_ERR_FORMAT, "bad stride"},
		{"negative offset", {{"w", "FloatStorage", "0", 4, -1, 1, {4}, {1}}}, 1,
		GROMA_ERR_FORMAT, "storage offset"},
		{"negative storage length", {{"w", "FloatStorage", "0", -4, 0, 1, {4}, {1}}}, 1,
		GROMA_ERR_FORMAT, "bad length"},
		{"nine dimensions", {{"w", "FloatStorage", "0", 4, 0, 9, {1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 1, 1}}},
		1, GROMA_ERR_UNSUPPORTED, "9 dimensions"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		fx_pickle	p = {0};

		if (cases[i].tensors[0].ndim == 9)
		{
			/* fx_tensor holds 8 dims: write the 9-dim size tuple by hand. */
			static const uint8_t head[] = {0x80, 2};

			fx_pk_bytes(&p, head, 2);
			fx_pk_op(&p, '}');
			fx_pk_str(&p, "w");
			fx_pk_global(&p, "torch._utils", "_rebuild_tensor_v2");
			fx_pk_op(&p, '(');
			fx_pk_op(&p, '(');
			fx_pk_str(&p, "storage");
			fx_pk_global(&p, "torch", "FloatStorage");
			fx_pk_str(&p, "0");
			fx_pk_str(&p, "cpu");
			fx_pk_int(&p, 4);
			fx_pk_op(&p, 't');
			fx_pk_op(&p, 'Q');
			fx_pk_int(&p, 0);
			for (int tuple = 0; tuple < 2; tuple++)
			{
				fx_pk_op(&p, '(');
				for (int d = 0; d < 9; d++)
					fx_pk_int(&p, 1);
				fx_pk_op(&p, 't');
			}
			fx_pk_op(&p, 0x89);
			fx_pk_op(&p, '}');
			fx_pk_op(&p, 't');
			fx_pk_op(&p, 'R');
			fx_pk_op(&p, 's');
			fx_pk_op(&p, '.');
		}
		else
			fx_pk_state_dict(&p, cases[i].tensors, cases[i].count);
		expect_failure(cases[i].what, p.data, p.len, cases[i].code, cases[i].text);
		fx_pk_free(&p);
	}
}

/* Limits on stack depth and mark nesting hold (GROMA_ERR_LIMIT, not memory exhaustion). */
UNIT_TEST(test_pickle_reader_limits)
{
	size_t		n = (1u << 20) + 8;
	char	   *deep = malloc(n + 3);

	deep[0] = (char) 0x80;
	deep[1] = 2;
	memset(deep + 2, 'N', n);
	deep[n + 2] = '.';
	expect_failure("deep stack", deep, n + 3, GROMA_ERR_LIMIT, "stack deeper");
	memset(deep + 2, '(', 5000);
	deep[5002] = '.';
	expect_failure("deep marks", deep, 5003, GROMA_ERR_LIMIT, "marks nested");
	free(deep);
}
