/*
 * test_tokenizer_files.c - loading: which file is used, files that disagree,
 * settings from the small JSON files, and malformed tokenizer.model bytes.
 * Variants live in temporary directories holding links to the golden files
 * plus the one file a test changes.
 */
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"
#include "../../src/text/sp_model_proto.h"
#include "../../src/text/tokenizer.h"

static const char *const golden_files[] = {
	"tokenizer.model", "tokenizer.json", "added_tokens.json", "special_tokens_map.json",
	"tokenizer_config.json",
};

#define N_GOLDEN_FILES (sizeof(golden_files) / sizeof(golden_files[0]))

/* A temporary tokenizer directory. */
typedef struct temp_dir
{
	char		path[64];
} temp_dir;

/* Creates a temporary directory with links to the golden files whose bit is set in which (1 << index). */
static bool
temp_dir_make(temp_dir *d, unsigned which)
{
	char		golden[PATH_MAX];

	strcpy(d->path, "/tmp/groma-tok-XXXXXX");
	CHECK(mkdtemp(d->path) != NULL);
	CHECK(realpath(unit_path("test/golden/tiny-groma"), golden) != NULL);
	for (size_t i = 0; i < N_GOLDEN_FILES; i++)
	{
		char		from[PATH_MAX + 64],
					to[128];

		if (!(which & (1u << i)))
			continue;
		snprintf(from, sizeof(from), "%s/%s", golden, golden_files[i]);
		snprintf(to, sizeof(to), "%s/%s", d->path, golden_files[i]);
		CHECKF(symlink(from, to) == 0, "cannot link %s", to);
	}
	return unit_failures == 0;
}

/* Replaces file name in d with text. */
static void
temp_dir_write(temp_dir *d, const char *name, const char *text)
{
	char		path[128];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/%s", d->path, name);
	unlink(path);
	f = fopen(path, "w");
	CHECKF(f != NULL, "cannot write %s", path);
	if (f)
	{
		fputs(text, f);
		fclose(f);
	}
}

/* Replaces tokenizer.json in d with json. */
static void
temp_dir_write_json(temp_dir *d, json_t *json)
{
	char		path[128];

	snprintf(path, sizeof(path), "%s/tokenizer.json", d->path);
	unlink(path);
	CHECKF(json_dump_file(json, path, JSON_COMPACT) == 0, "cannot write %s", path);
}

/* Removes the directory and the files a test may have put there. */
static void
temp_dir_remove(temp_dir *d)
{
	for (size_t i = 0; i < N_GOLDEN_FILES; i++)
	{
		char		path[128];

		snprintf(path, sizeof(path), "%s/%s", d->path, golden_files[i]);
		unlink(path);
	}
	rmdir(d->path);
}

/* Loads the golden tokenizer.json as a JSON object; NULL with a failed check. */
static json_t *
golden_json(void)
{
	json_error_t err;
	json_t	   *root = json_load_file(unit_path("test/golden/tiny-groma/tokenizer.json"), 0, &err);

	CHECKF(root != NULL, "tokenizer.json: %s", err.text);
	return root;
}

/* Loads dir with the given source and cross-check setting. */
static groma_status
load_dir(const char *dir, groma_tokenizer_source source, bool cross_check, groma_tokenizer **tok)
{
	groma_tokenizer_options o = groma_tokenizer_default_options();

	o.source = source;
	o.cross_check = cross_check;
	return groma_tokenizer_load_with(dir, &o, tok);
}

/* Encodes text (with bos) and compares with want[0..n). */
static bool
encodes_to(const groma_tokenizer *tok, const char *text, const int32_t *want, size_t n)
{
	int32_t		got[64];
	size_t		count = 0;

	return groma_tokenizer_encode(tok, text, true, got, 64, &count).code == GROMA_OK && count == n &&
		memcmp(got, want, n * sizeof(int32_t)) == 0;
}

/* Expected ids of "Locate <p>the man</p> in the image." (tokenizers 0.23.3, as the goldens). */
static const int32_t locate_ids[] = {1, 5976, 403, 29871, 32006, 278, 767, 32007, 29871, 297, 278, 1967, 29889};

/* A missing directory is an IO error; AUTO picks tokenizer.json when tokenizer.model is absent. */
UNIT_TEST(test_tokenizer_files_choice)
{
	groma_tokenizer *tok = NULL;
	groma_status st;
	temp_dir	d;

	st = groma_tokenizer_load("/nonexistent/groma-tokenizer", &tok);
	CHECKF(st.code == GROMA_ERR_IO && tok == NULL, "%s", st.message);
	CHECK(groma_tokenizer_load(NULL, &tok).code == GROMA_ERR_INVALID_ARGUMENT);

	if (!temp_dir_make(&d, 0x1E))	/* everything but tokenizer.model */
		return;
	st = groma_tokenizer_load(d.path, &tok);
	CHECKF(st.code == GROMA_OK, "%s", st.message);
	if (tok)
	{
		CHECK(groma_tokenizer_source_used(tok) == GROMA_TOKENIZER_HF_JSON);
		CHECK(encodes_to(tok, "Locate <p>the man</p> in the image.", locate_ids, 13));
		groma_tokenizer_free(tok);
	}
	st = load_dir(d.path, GROMA_TOKENIZER_SP_MODEL, true, &tok);
	CHECKF(st.code == GROMA_ERR_IO && tok == NULL, "%s", st.message);
	temp_dir_remove(&d);
}

/* tokenizer.model alone (no JSON files): 32000 pieces, no added tokens, legacy and bos defaults. */
UNIT_TEST(test_tokenizer_files_model_only)
{
	static const int32_t p_as_text[] = {1, 529, 29886, 29958, 29916};	/* "<p>x": ▁< p > x */
	groma_tokenizer *tok = NULL;
	groma_status st;
	temp_dir	d;

	if (!temp_dir_make(&d, 0x01))
		return;
	st = groma_tokenizer_load(d.path, &tok);
	CHECKF(st.code == GROMA_OK, "%s", st.message);
	if (tok)
	{
		CHECK(groma_tokenizer_vocab_size(tok) == 32000);
		CHECK(groma_tokenizer_token_id(tok, "<p>") == -1);
		CHECK(groma_tokenizer_pad_id(tok) == -1 && groma_tokenizer_bos_id(tok) == 1);
		CHECK(groma_tokenizer_legacy_mode(tok) && groma_tokenizer_add_bos(tok));
		CHECK(encodes_to(tok, "<p>x", p_as_text, 5));
		groma_tokenizer_free(tok);
	}
	temp_dir_remove(&d);
}

/* tokenizer.json that disagrees with tokenizer.model fails the cross-check, from either side. */
UNIT_TEST(test_tokenizer_files_disagree)
{
	json_t	   *root = golden_json();
	json_t	   *vocab;
	groma_tokenizer *tok = NULL;
	groma_status st;
	temp_dir	d;

	if (root == NULL || !temp_dir_make(&d, 0x1D))	/* everything but tokenizer.json */
	{
		json_decref(root);
		return;
	}
	vocab = json_object_get(json_object_get(root, "model"), "vocab");
	/* swap the ids of "▁t" (260) and "er" (261) */
	json_object_set_new(vocab, "\xE2\x96\x81t", json_integer(261));
	json_object_set_new(vocab, "er", json_integer(260));
	temp_dir_write_json(&d, root);
	st = load_dir(d.path, GROMA_TOKENIZER_AUTO, true, &tok);
	CHECKF(st.code == GROMA_ERR_FORMAT && strstr(st.message, "cross-check") && strstr(st.message, "260"),
		   "%s", st.message);
	st = load_dir(d.path, GROMA_TOKENIZER_HF_JSON, true, &tok);
	CHECKF(st.code == GROMA_ERR_FORMAT && strstr(st.message, "cross-check"), "%s", st.message);
	st = load_dir(d.path, GROMA_TOKENIZER_AUTO, false, &tok);
	CHECKF(st.code == GROMA_OK, "without cross-check: %s", st.message);
	groma_tokenizer_free(tok);

	/* a byte piece that tokenizer.json calls ordinary: the types disagree */
	json_object_set_new(vocab, "\xE2\x96\x81t", json_integer(260));
	json_object_set_new(vocab, "er", json_integer(261));
	json_object_del(vocab, "<0x41>");
	json_object_set_new(vocab, "<0x4a>", json_integer(68));
	temp_dir_write_json(&d, root);
	st = load_dir(d.path, GROMA_TOKENIZER_AUTO, true, &tok);
	CHECKF(st.code == GROMA_ERR_FORMAT && strstr(st.message, "cross-check"), "%s", st.message);
	st = load_dir(d.path, GROMA_TOKENIZER_HF_JSON, false, &tok);
	CHECKF(st.code == GROMA_ERR_FORMAT && strstr(st.message, "0x41"), "missing byte piece: %s", st.message);
	json_decref(root);
	temp_dir_remove(&d);
}

/* tokenizer.json variants: merges as pairs load alike; other normalisers and bad merges are refused. */
UNIT_TEST(test_tokenizer_files_json_variants)
{
	json_t	   *root = golden_json();
	json_t	   *model,
			   *merges,
			   *pairs,
			   *entry;
	groma_tokenizer *tok = NULL;
	groma_status st;
	temp_dir	d;
	size_t		i;

	if (root == NULL || !temp_dir_make(&d, 0x1C))	/* JSON side files only */
	{
		json_decref(root);
		return;
	}
	model = json_object_get(root, "model");
	merges = json_object_get(model, "merges");
	pairs = json_array();
	json_array_foreach(merges, i, entry)
	{
		const char *s = json_string_value(entry);
		const char *space = strchr(s, ' ');
		json_t	   *pair = json_array();

		json_array_append_new(pair, json_stringn(s, (size_t) (space - s)));
		json_array_append_new(pair, json_string(space + 1));
		json_array_append_new(pairs, pair);
	}
	json_incref(merges);
	json_object_set_new(model, "merges", pairs);
	temp_dir_write_json(&d, root);
	st = groma_tokenizer_load(d.path, &tok);
	CHECKF(st.code == GROMA_OK, "merges as pairs: %s", st.message);
	if (tok)
		CHECK(encodes_to(tok, "Locate <p>the man</p> in the image.", locate_ids, 13));
	groma_tokenizer_free(tok);

	json_array_append_new(json_array_get(pairs, 5), json_string("x"));	/* three parts */
	temp_dir_write_json(&d, root);
	st = groma_tokenizer_load(d.path, &tok);
	CHECKF(st.code == GROMA_ERR_FORMAT && strstr(st.message, "merge 5"), "%s", st.message);

	json_object_set_new(model, "merges", merges);	/* back to strings, then a duplicate pair */
	json_array_append_new(merges, json_string("\xE2\x96\x81 t"));
	temp_dir_write_json(&d, root);
	st = groma_tokenizer_load(d.path, &tok);
	CHECKF(st.code == GROMA_ERR_FORMAT && strstr(st.message, "repeats"), "%s", st.message);
	json_array_remove(merges, json_array_size(merges) - 1);

	json_array_append_new(merges, json_string("zzzq qqq"));
	temp_dir_write_json(&d, root);
	st = groma_tokenizer_load(d.path, &tok);
	CHECKF(st.code == GROMA_ERR_FORMAT && strstr(st.message, "unknown piece"), "%s", st.message);
	json_array_remove(merges, json_array_size(merges) - 1);

	json_object_set_new(root, "normalizer", json_null());
	temp_dir_write_json(&d, root);
	st = groma_tokenizer_load(d.path, &tok);
	CHECKF(st.code == GROMA_ERR_UNSUPPORTED && tok == NULL, "%s", st.message);

	temp_dir_write(&d, "tokenizer.json", "{\"model\": ");
	st = groma_tokenizer_load(d.path, &tok);
	CHECKF(st.code == GROMA_ERR_FORMAT, "%s", st.message);
	json_decref(root);
	temp_dir_remove(&d);
}

/* tokenizer_config.json and friends: legacy false, mismatched tokens, gaps in added ids. */
UNIT_TEST(test_tokenizer_files_config)
{
	static const int32_t non_legacy[] = {1, 5976, 403, 29871, 32006, 1552, 767, 32007, 297, 278, 1967, 29889};
	groma_tokenizer *tok = NULL;
	groma_tokenizer_options o = groma_tokenizer_default_options();
	groma_status st;
	temp_dir	d;

	if (!temp_dir_make(&d, 0x03))	/* tokenizer.model and tokenizer.json */
		return;
	temp_dir_write(&d, "added_tokens.json", "{\"<a>\": 32000, \"<p>\": 32006, \"</p>\": 32007,"
				   " \"<b>\": 32001, \"<c>\": 32002, \"<d>\": 32003, \"<e>\": 32004, \"<f>\": 32005}");
	temp_dir_write(&d, "tokenizer_config.json", "{\"legacy\": false, \"add_bos_token\": false,"
				   " \"model_max_length\": 1000000000000000019884624838656,"
				   " \"added_tokens_decoder\": {\"1\": {\"content\": \"<s>\", \"special\": true},"
				   " \"32001\": {\"content\": \"<b>\", \"special\": false}}}");
	st = load_dir(d.path, GROMA_TOKENIZER_AUTO, false, &tok);
	CHECKF(st.code == GROMA_OK, "%s", st.message);
	if (tok)
	{
		CHECK(!groma_tokenizer_legacy_mode(tok) && !groma_tokenizer_add_bos(tok));
		CHECK(encodes_to(tok, "Locate <p>the man</p> in the image.", non_legacy, 12));
		CHECK(!groma_tokenizer_is_special(tok, 32001) && groma_tokenizer_is_special(tok, 32002));
		groma_tokenizer_free(tok);
	}
	o.legacy = GROMA_TOKENIZER_LEGACY_ON;
	st = groma_tokenizer_load_with(d.path, &o, &tok);
	CHECKF(st.code == GROMA_OK && groma_tokenizer_legacy_mode(tok), "override: %s", st.message);
	groma_tokenizer_free(tok);

	temp_dir_write(&d, "tokenizer_config.json", "{\"added_tokens_decoder\": {\"32006\": {\"content\": \"<q>\"}}}");
	st = load_dir(d.path, GROMA_TOKENIZER_AUTO, false, &tok);
	CHECKF(st.code == GROMA_ERR_FORMAT && strstr(st.message, "32006"), "%s", st.message);
	temp_dir_write(&d, "tokenizer_config.json", "{\"legacy\": \"yes\"}");
	st = load_dir(d.path, GROMA_TOKENIZER_AUTO, false, &tok);
	CHECKF(st.code == GROMA_ERR_FORMAT && strstr(st.message, "legacy"), "%s", st.message);
	temp_dir_write(&d, "tokenizer_config.json", "{}");

	temp_dir_write(&d, "special_tokens_map.json", "{\"pad_token\": {\"content\": \"[NOPE]\"}}");
	st = load_dir(d.path, GROMA_TOKENIZER_AUTO, false, &tok);
	CHECKF(st.code == GROMA_ERR_FORMAT && strstr(st.message, "[NOPE]"), "%s", st.message);
	temp_dir_write(&d, "special_tokens_map.json", "{\"pad_token\": {\"content\": \"<c>\"}}");
	st = load_dir(d.path, GROMA_TOKENIZER_AUTO, false, &tok);
	CHECKF(st.code == GROMA_OK && groma_tokenizer_pad_id(tok) == 32002, "%s", st.message);
	groma_tokenizer_free(tok);

	temp_dir_write(&d, "added_tokens.json", "{\"<a>\": 32000, \"<b>\": 32002}");
	st = load_dir(d.path, GROMA_TOKENIZER_AUTO, false, &tok);
	CHECKF(st.code == GROMA_ERR_FORMAT && strstr(st.message, "<b>"), "gap: %s", st.message);
	temp_dir_write(&d, "added_tokens.json", "{\"<a>\": 32000, \"<b>\": \"32001\"}");
	st = load_dir(d.path, GROMA_TOKENIZER_AUTO, false, &tok);
	CHECKF(st.code == GROMA_ERR_FORMAT, "string id: %s", st.message);
	temp_dir_write(&d, "added_tokens.json", "[]");
	st = load_dir(d.path, GROMA_TOKENIZER_AUTO, false, &tok);
	CHECKF(st.code == GROMA_ERR_FORMAT, "not an object: %s", st.message);
	temp_dir_remove(&d);
}

/* Parses hand-written ModelProto bytes; returns the status, with the piece count in *pieces. */
static groma_status
parse_proto(const uint8_t *bytes, size_t n, int32_t *pieces, bool *dummy)
{
	tok_vocab	vocab = {0};
	groma_status st = tok_sp_model_parse(bytes, n, &vocab, dummy);

	*pieces = vocab.count;
	tok_vocab_free(&vocab);
	return st;
}

/*
 * Hand-assembled ModelProto messages (wire format per the protobuf
 * encoding spec): one piece {"a", -1.0, NORMAL}, trainer_spec {model_type
 * BPE, byte_fallback}, normalizer_spec {remove_extra_whitespaces false},
 * then one defect at a time.
 */
UNIT_TEST(test_tokenizer_proto_handmade)
{
#define PIECE_A 0x0A, 0x0A, 0x0A, 0x01, 'a', 0x15, 0x00, 0x00, 0x80, 0xBF, 0x18, 0x01
#define TRAINER 0x12, 0x05, 0x18, 0x02, 0x98, 0x02, 0x01
#define NORMALIZER 0x1A, 0x02, 0x20, 0x00
	static const uint8_t good[] = {PIECE_A, TRAINER, NORMALIZER};
	static const uint8_t no_prefix[] = {PIECE_A, TRAINER, 0x1A, 0x04, 0x20, 0x00, 0x18, 0x00};
	static const uint8_t unknown_fields[] = {PIECE_A, 0x98, 0x06, 0x05, 0x31, 1, 2, 3, 4, 5, 6, 7, 8,
	TRAINER, NORMALIZER};
	static const uint8_t bad_type[] = {0x0A, 0x05, 0x0A, 0x01, 'a', 0x18, 0x09, TRAINER, NORMALIZER};
	static const uint8_t nan_score[] = {0x0A, 0x08, 0x0A, 0x01, 'a', 0x15, 0x00, 0x00, 0xC0, 0x7F,
	TRAINER, NORMALIZER};
	static const uint8_t bad_utf8[] = {0x0A, 0x03, 0x0A, 0x01, 0xFF, TRAINER, NORMALIZER};
	static const uint8_t no_text[] = {0x0A, 0x02, 0x18, 0x01, TRAINER, NORMALIZER};
	static const uint8_t overrun[] = {0x0A, 0x0A, 0x0A, 0x01, 'a', 0x15, 0x00};
	static const uint8_t inner_overrun[] = {0x0A, 0x03, 0x0A, 0x05, 'a', TRAINER, NORMALIZER};
	static const uint8_t long_varint[] = {0x0A, 0x0C, 0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
	0xFF, 0xFF, 0x01};
	static const uint8_t group[] = {PIECE_A, 0x2B, 0x2C, TRAINER, NORMALIZER};
	static const uint8_t field_zero[] = {0x02, 0x00, PIECE_A, TRAINER, NORMALIZER};
	static const uint8_t unigram[] = {PIECE_A, 0x12, 0x05, 0x18, 0x01, 0x98, 0x02, 0x01, NORMALIZER};
	static const uint8_t no_fallback[] = {PIECE_A, 0x12, 0x02, 0x18, 0x02, NORMALIZER};
	static const uint8_t no_normalizer[] = {PIECE_A, TRAINER};
	static const uint8_t charsmap[] = {PIECE_A, TRAINER, 0x1A, 0x05, 0x20, 0x00, 0x12, 0x01, 0x00};
	static const uint8_t no_pieces[] = {TRAINER, NORMALIZER};
	static const struct
	{
		const char *name;
		const uint8_t *bytes;
		size_t		n;
		groma_status_code code;
	}			cases[] = {
		{"good", good, sizeof(good), GROMA_OK},
		{"no_prefix", no_prefix, sizeof(no_prefix), GROMA_OK},
		{"unknown_fields", unknown_fields, sizeof(unknown_fields), GROMA_OK},
		{"bad_type", bad_type, sizeof(bad_type), GROMA_ERR_FORMAT},
		{"nan_score", nan_score, sizeof(nan_score), GROMA_ERR_FORMAT},
		{"bad_utf8", bad_utf8, sizeof(bad_utf8), GROMA_ERR_FORMAT},
		{"no_text", no_text, sizeof(no_text), GROMA_ERR_FORMAT},
		{"overrun", overrun, sizeof(overrun), GROMA_ERR_FORMAT},
		{"inner_overrun", inner_overrun, sizeof(inner_overrun), GROMA_ERR_FORMAT},
		{"long_varint", long_varint, sizeof(long_varint), GROMA_ERR_FORMAT},
		{"group", group, sizeof(group), GROMA_ERR_FORMAT},
		{"field_zero", field_zero, sizeof(field_zero), GROMA_ERR_FORMAT},
		{"unigram", unigram, sizeof(unigram), GROMA_ERR_UNSUPPORTED},
		{"no_fallback", no_fallback, sizeof(no_fallback), GROMA_ERR_UNSUPPORTED},
		{"no_normalizer", no_normalizer, sizeof(no_normalizer), GROMA_ERR_UNSUPPORTED},
		{"charsmap", charsmap, sizeof(charsmap), GROMA_ERR_UNSUPPORTED},
		{"no_pieces", no_pieces, sizeof(no_pieces), GROMA_ERR_FORMAT},
		{"empty", good, 0, GROMA_ERR_FORMAT},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		int32_t		pieces = -1;
		bool		dummy = false;
		groma_status st = parse_proto(cases[i].bytes, cases[i].n, &pieces, &dummy);

		CHECKF(st.code == cases[i].code, "%s: got %s (%s)", cases[i].name,
			   groma_status_code_name(st.code), st.message);
		if (cases[i].code == GROMA_OK)
			CHECKF(pieces == 1 && dummy == (cases[i].bytes != no_prefix), "%s: %d pieces, dummy %d",
				   cases[i].name, pieces, dummy);
		else
			CHECKF(pieces == 0, "%s: vocabulary kept %d pieces after failing", cases[i].name, pieces);
	}
#undef PIECE_A
#undef TRAINER
#undef NORMALIZER
}

/* The real tokenizer.model cut short anywhere, or with bytes flipped, fails cleanly or parses; never more. */
UNIT_TEST(test_tokenizer_proto_damaged)
{
	size_t		size = 0;
	uint8_t    *data = unit_read_file(unit_path("test/golden/tiny-groma/tokenizer.model"), &size);
	uint8_t    *copy;
	uint64_t	state = 12345;
	int32_t		pieces = 0;
	bool		dummy = false;
	int			failed = 0;

	if (data == NULL)
		return;
	copy = malloc(size);
	CHECK(parse_proto(data, size, &pieces, &dummy).code == GROMA_OK && pieces == 32000 && dummy);
	for (int i = 1; i <= 100; i++)
	{
		size_t		cut = size * (size_t) i / 101;

		failed += parse_proto(data, cut, &pieces, &dummy).code != GROMA_OK;
	}
	failed += parse_proto(data, size - 1, &pieces, &dummy).code != GROMA_OK;
	CHECKF(failed == 101, "%d of 101 truncated files were refused", failed);
	for (int i = 0; copy && i < 100; i++)
	{
		memcpy(copy, data, size);
		for (int k = 0; k < 4; k++)
		{
			state = state * 6364136223846793005ULL + 1442695040888963407ULL;
			copy[(state >> 33) % size] = (uint8_t) (state >> 20);
		}
		(void) parse_proto(copy, size, &pieces, &dummy);	/* any status; sanitizers watch */
	}
	free(copy);
	free(data);
}
