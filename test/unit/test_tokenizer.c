/*
 * test_tokenizer.c - the tokenizer against the golden prompts (both
 * vocabulary files), golden decodes, lookups, bad input, and speed.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "unit.h"
#include "../../src/io/safetensors.h"
#include "../../src/text/tokenizer.h"

#define GOLDEN_TOKENIZER "test/golden/tiny-groma"

static const char *const golden_cases[] = {"extreme_ironing", "waterview", "synthetic"};
static const char *const golden_prompts[] = {"gcap", "rec", "regcap"};

/* Loads the golden tokenizer from source (AUTO, SP_MODEL or HF_JSON); NULL with a failed check. */
static groma_tokenizer *
load_tokenizer(groma_tokenizer_source source)
{
	groma_tokenizer_options o = groma_tokenizer_default_options();
	groma_tokenizer *tok = NULL;
	groma_status st;

	o.source = source;
	st = groma_tokenizer_load_with(unit_path(GOLDEN_TOKENIZER), &o, &tok);
	CHECKF(st.code == GROMA_OK, "load: %s", st.message);
	return tok;
}

/* Returns seconds on the monotonic clock. */
static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Reads an I64 vector tensor into a malloc'd int32 array (*n elements); NULL with a failed check. */
static int32_t *
read_ids(groma_st_file *f, const char *name, size_t *n)
{
	groma_st_tensor t;
	groma_status st = groma_st_get(f, name, &t);
	int32_t    *ids;

	CHECKF(st.code == GROMA_OK && t.dtype == GROMA_ST_I64 && t.ndim == 1, "%s: %s", name, st.message);
	if (st.code != GROMA_OK || t.dtype != GROMA_ST_I64 || t.ndim != 1)
		return NULL;
	*n = (size_t) t.shape[0];
	ids = malloc(*n * sizeof(*ids) + 1);
	for (size_t i = 0; ids && i < *n; i++)
	{
		int64_t		v;

		memcpy(&v, (const uint8_t *) t.data + 8 * i, 8);	/* data may be unaligned */
		ids[i] = (int32_t) v;
	}
	return ids;
}

/* Encodes text and compares with want[0..n); reports the first difference. */
static void
check_encode(const groma_tokenizer *tok, const char *label, const char *text,
			 const int32_t *want, size_t n)
{
	int32_t		got[1024];
	size_t		count = 0;
	groma_status st = groma_tokenizer_encode(tok, text, true, got, 1024, &count);

	CHECKF(st.code == GROMA_OK, "%s: %s", label, st.message);
	CHECKF(count == n, "%s: %zu ids, golden has %zu", label, count, n);
	for (size_t i = 0; i < n && i < count; i++)
		if (got[i] != want[i])
		{
			CHECKF(false, "%s: id %zu is %d (\"%s\"), golden %d (\"%s\")", label, i, got[i],
				   groma_tokenizer_piece(tok, got[i]), want[i], groma_tokenizer_piece(tok, want[i]));
			break;
		}
}

/* Runs fn over every golden prompt of every case: the prompt text, its input_ids and generated_ids. */
static void
for_each_golden(void (*fn) (const char *label, const char *prompt, const char *decoded,
							const int32_t *input, size_t n_input, const int32_t *generated,
							size_t n_generated, void *arg), void *arg)
{
	for (size_t c = 0; c < sizeof(golden_cases) / sizeof(golden_cases[0]); c++)
	{
		char		path[256];
		groma_st_file *f = NULL;
		groma_status st;

		snprintf(path, sizeof(path), "test/golden/compact/case_%s.safetensors", golden_cases[c]);
		st = groma_st_open(unit_path(path), &f);
		CHECKF(st.code == GROMA_OK, "%s: %s", path, st.message);
		if (f == NULL)
			continue;
		for (size_t p = 0; p < sizeof(golden_prompts) / sizeof(golden_prompts[0]); p++)
		{
			char		key[128],
						label[128];
			const char *prompt,
					   *decoded;
			int32_t    *input,
					   *generated;
			size_t		n_input = 0,
						n_generated = 0;

			snprintf(label, sizeof(label), "%s/%s", golden_cases[c], golden_prompts[p]);
			snprintf(key, sizeof(key), "prompt.%s.prompt", golden_prompts[p]);
			prompt = groma_st_metadata(f, key);
			snprintf(key, sizeof(key), "prompt.%s.decoded", golden_prompts[p]);
			decoded = groma_st_metadata(f, key);
			snprintf(key, sizeof(key), "prompt.%s.input_ids", golden_prompts[p]);
			input = read_ids(f, key, &n_input);
			snprintf(key, sizeof(key), "prompt.%s.generated_ids", golden_prompts[p]);
			generated = read_ids(f, key, &n_generated);
			CHECKF(prompt && decoded && input && generated, "%s: golden entries missing", label);
			if (prompt && decoded && input && generated)
				fn(label, prompt, decoded, input, n_input, generated, n_generated, arg);
			free(input);
			free(generated);
		}
		groma_st_close(f);
	}
}

/* Checks one golden prompt's input_ids (ids before <image>/<region> expansion). */
static void
golden_encode_one(const char *label, const char *prompt, const char *decoded, const int32_t *input,
				  size_t n_input, const int32_t *generated, size_t n_generated, void *arg)
{
	const groma_tokenizer *tok = arg;

	CHECKF(n_input > 80 && n_input < 120, "%s: %zu input ids (expected the unexpanded prompt)", label, n_input);
	check_encode(tok, label, prompt, input, n_input);
}

/* Every golden prompt encodes to its golden ids, from tokenizer.model and from tokenizer.json. */
UNIT_TEST(test_tokenizer_golden_prompts)
{
	groma_tokenizer_source sources[] = {GROMA_TOKENIZER_SP_MODEL, GROMA_TOKENIZER_HF_JSON};

	for (int s = 0; s < 2; s++)
	{
		groma_tokenizer *tok = load_tokenizer(sources[s]);

		if (tok == NULL)
			return;
		CHECK(groma_tokenizer_source_used(tok) == sources[s]);
		CHECK(groma_tokenizer_legacy_mode(tok));	/* tiny-groma's tokenizer_config.json: legacy true */
		for_each_golden(golden_encode_one, tok);
		groma_tokenizer_free(tok);
	}
}

/* Checks one golden generation's decoded text (special tokens written out). */
static void
golden_decode_one(const char *label, const char *prompt, const char *decoded, const int32_t *input,
				  size_t n_input, const int32_t *generated, size_t n_generated, void *arg)
{
	const groma_tokenizer *tok = arg;
	char		buf[1024];
	size_t		len = 0;
	groma_status st = groma_tokenizer_decode(tok, generated, n_generated, false, buf, sizeof(buf), &len);

	CHECKF(st.code == GROMA_OK, "%s: %s", label, st.message);
	CHECKF(strcmp(buf, decoded) == 0 && len == strlen(decoded), "%s: decoded \"%s\", golden \"%s\"",
		   label, buf, decoded);
}

/* The golden generations decode to the golden texts (tokenizers' decode, special tokens kept). */
UNIT_TEST(test_tokenizer_golden_decode)
{
	groma_tokenizer *tok = load_tokenizer(GROMA_TOKENIZER_AUTO);

	if (tok == NULL)
		return;
	for_each_golden(golden_decode_one, tok);
	groma_tokenizer_free(tok);
}

/*
 * Decoding with skip_special drops the added tokens and then the leading
 * space.  Expected texts: tokenizers 0.23.3, Tokenizer.from_file(tokenizer.json)
 * plus the 114 added tokens, decode(ids, skip_special_tokens=True).
 */
UNIT_TEST(test_tokenizer_decode_skip_special)
{
	static const int32_t synthetic_gcap[] = {32069, 32058, 32108, 27752, 32023, 23372, 32103, 13354,
	32047, 24139, 910, 32042};
	static const int32_t extreme_rec[] = {32057, 32010, 32047, 32093, 9860, 21401, 19258, 29637,
	32106, 32026, 25981, 30560};
	groma_tokenizer *tok = load_tokenizer(GROMA_TOKENIZER_AUTO);
	char		buf[256];
	size_t		len = 0;

	if (tok == NULL)
		return;
	CHECK(groma_tokenizer_decode(tok, synthetic_gcap, 12, true, buf, sizeof(buf), &len).code == GROMA_OK);
	CHECKF(strcmp(buf, "Hamiltonianarca Durch\xD0\xB9\xD1\x82 This") == 0, "got \"%s\"", buf);
	CHECK(groma_tokenizer_decode(tok, extreme_rec, 12, true, buf, sizeof(buf), &len).code == GROMA_OK);
	CHECKF(strcmp(buf, "\xD1\x8C\xD1\x8E kritiorePixel Seq\xE2\x94\xBC") == 0, "got \"%s\"", buf);
	groma_tokenizer_free(tok);
}

/* Ids and texts of the added tokens come from added_tokens.json; bos/eos/pad from the special map. */
UNIT_TEST(test_tokenizer_lookups)
{
	groma_tokenizer *tok = load_tokenizer(GROMA_TOKENIZER_AUTO);

	if (tok == NULL)
		return;
	CHECK(groma_tokenizer_vocab_size(tok) == 32114);
	CHECK(groma_tokenizer_token_id(tok, "[PAD]") == 32000);
	CHECK(groma_tokenizer_token_id(tok, "<image>") == 32008);
	CHECK(groma_tokenizer_token_id(tok, "<region>") == 32009);
	CHECK(groma_tokenizer_token_id(tok, "[grounding]") == 32013);
	CHECK(groma_tokenizer_token_id(tok, "<r0>") == 32014);
	CHECK(groma_tokenizer_token_id(tok, "<r99>") == 32113);
	CHECK(groma_tokenizer_token_id(tok, "<r100>") == -1);
	CHECK(groma_tokenizer_token_id(tok, "\xE2\x96\x81the") == 278);
	CHECK(groma_tokenizer_token_id(tok, "<0x0A>") == 13);
	CHECK(groma_tokenizer_token_id(tok, "") == -1);
	CHECK(groma_tokenizer_piece(tok, 32113) && strcmp(groma_tokenizer_piece(tok, 32113), "<r99>") == 0);
	CHECK(groma_tokenizer_piece(tok, 259) && strcmp(groma_tokenizer_piece(tok, 259), "\xE2\x96\x81\xE2\x96\x81") == 0);
	CHECK(groma_tokenizer_piece(tok, 32114) == NULL && groma_tokenizer_piece(tok, -1) == NULL);
	CHECK(groma_tokenizer_bos_id(tok) == 1 && groma_tokenizer_eos_id(tok) == 2);
	CHECK(groma_tokenizer_pad_id(tok) == 32000);
	CHECK(groma_tokenizer_add_bos(tok));
	CHECK(groma_tokenizer_is_special(tok, 1) && groma_tokenizer_is_special(tok, 32050));
	CHECK(!groma_tokenizer_is_special(tok, 278) && !groma_tokenizer_is_special(tok, 13));
	CHECK(!groma_tokenizer_is_special(tok, 99999));
	groma_tokenizer_free(tok);
}

/*
 * Special tokens are cut out wherever they occur, even inside words, longest
 * first.  Expected ids: tokenizers 0.23.3 as in the goldens (legacy).
 */
UNIT_TEST(test_tokenizer_specials_inside_words)
{
	static const struct
	{
		const char *text;
		int32_t		ids[8];
		size_t		n;
	}			cases[] = {
		{"a<p>b", {1, 263, 32006, 289}, 4},
		{"x<unk>y</s>", {1, 921, 0, 343, 2}, 5},
		{"<r1><r12>", {1, 32015, 32026}, 3},	/* <r12>, not <r1> then "2>" */
		{"<<p>>", {1, 529, 32006, 1405}, 4},
		{"<p", {1, 529, 29886}, 3},
	};
	groma_tokenizer *tok = load_tokenizer(GROMA_TOKENIZER_AUTO);

	if (tok == NULL)
		return;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_encode(tok, cases[i].text, cases[i].text, cases[i].ids, cases[i].n);
	groma_tokenizer_free(tok);
}

/*
 * Equal merges go to the leftmost pair first ("xaaa" is ▁x aa a, not ▁x a aa),
 * from both files.  Expected ids: tokenizers 0.23.3 and sentencepiece 0.2.0 agree.
 */
UNIT_TEST(test_tokenizer_ties_leftmost)
{
	static const struct
	{
		const char *text;
		int32_t		ids[8];
		size_t		n;
	}			cases[] = {
		{"xaaa", {1, 921, 7340, 29874}, 4},
		{"aaaa", {1, 263, 7340, 29874}, 4},
		{"xaaaaaaa", {1, 921, 27137, 7340, 29874}, 5},
		{"xbbbbb", {1, 921, 1327, 1327, 29890}, 5},
	};

	for (int s = 0; s < 2; s++)
	{
		groma_tokenizer *tok = load_tokenizer(s == 0 ? GROMA_TOKENIZER_SP_MODEL : GROMA_TOKENIZER_HF_JSON);

		if (tok == NULL)
			return;
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			check_encode(tok, cases[i].text, cases[i].text, cases[i].ids, cases[i].n);
		groma_tokenizer_free(tok);
	}
}

/* Invalid UTF-8, NUL bytes and NULL arguments are refused; nothing is half-written. */
UNIT_TEST(test_tokenizer_bad_input)
{
	static const char *const invalid[] = {
		"\xFF", "abc\xC3", "\xC0\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE2\x82", "ok \x80 no",
		"\xF8\x88\x80\x80\x80",
	};
	groma_tokenizer *tok = load_tokenizer(GROMA_TOKENIZER_AUTO);
	int32_t		ids[64];
	size_t		n = 99;
	groma_status st;

	if (tok == NULL)
		return;
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
	{
		st = groma_tokenizer_encode(tok, invalid[i], true, ids, 64, &n);
		CHECKF(st.code == GROMA_ERR_INVALID_ARGUMENT && strstr(st.message, "UTF-8") && n == 0,
			   "case %zu: %s", i, st.message);
	}
	st = groma_tokenizer_encode_len(tok, "a\0b", 3, true, ids, 64, &n);
	CHECKF(st.code == GROMA_ERR_INVALID_ARGUMENT && strstr(st.message, "NUL"), "%s", st.message);
	CHECK(groma_tokenizer_encode(tok, NULL, true, ids, 64, &n).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_tokenizer_encode(NULL, "a", true, ids, 64, &n).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_tokenizer_encode(tok, "a", true, NULL, 64, &n).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_tokenizer_encode_len(tok, "", 0, false, NULL, 0, &n).code == GROMA_OK && n == 0);
	{
		size_t		big = GROMA_TOKENIZER_MAX_TEXT + 1;
		char	   *text = malloc(big + 1);

		if (text)
		{
			memset(text, 'a', big);
			text[big] = '\0';
			st = groma_tokenizer_encode(tok, text, true, ids, 64, &n);
			CHECKF(st.code == GROMA_ERR_LIMIT && n == 0, "over-long text: %s", st.message);
		}
		free(text);
	}
	groma_tokenizer_free(tok);
}

/* A max_ids that is too small gives LIMIT, the count needed, and the ids that fit. */
UNIT_TEST(test_tokenizer_limit)
{
	groma_tokenizer *tok = load_tokenizer(GROMA_TOKENIZER_AUTO);
	const char *text = "Locate <p>the man</p> in the image.";
	int32_t		all[64],
				some[64];
	size_t		n_all = 0,
				n = 0;
	groma_status st;
	char		buf[8];
	size_t		len = 0;

	if (tok == NULL)
		return;
	CHECK(groma_tokenizer_encode(tok, text, true, all, 64, &n_all).code == GROMA_OK && n_all == 13);
	memset(some, 0x55, sizeof(some));
	st = groma_tokenizer_encode(tok, text, true, some, 5, &n);
	CHECKF(st.code == GROMA_ERR_LIMIT && n == 13, "%s, n %zu", st.message, n);
	CHECK(memcmp(some, all, 5 * sizeof(int32_t)) == 0 && some[5] == 0x55555555);
	st = groma_tokenizer_encode(tok, text, true, NULL, 0, &n);
	CHECK(st.code == GROMA_ERR_LIMIT && n == 13);
	st = groma_tokenizer_decode(tok, all, n_all, false, buf, sizeof(buf), &len);
	CHECKF(st.code == GROMA_ERR_LIMIT && len == strlen("<s> Locate <p> the man</p>  in the image.") &&
		   buf[0] == '\0', "%s, len %zu", st.message, len);
	groma_tokenizer_free(tok);
}

/* Fills buf[0..n) with a reproducible mix of letters (no spaces) and NUL-terminates it. */
static void
fill_letters(char *buf, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++)
	{
		seed = seed * 1664525u + 1013904223u;
		buf[i] = (char) ('a' + (seed >> 16) % 26);
	}
	buf[n] = '\0';
}

/*
 * Long texts (no spaces, only spaces, only '<', multibyte characters) encode
 * quickly and identically from both files.
 */
UNIT_TEST(test_tokenizer_long_text_fast)
{
	enum
	{
		LEN = 10000
	};
	groma_tokenizer *sp = load_tokenizer(GROMA_TOKENIZER_SP_MODEL);
	groma_tokenizer *hf = load_tokenizer(GROMA_TOKENIZER_HF_JSON);
	char	   *text = malloc(4 * LEN + 1);
	int32_t    *a = malloc((4 * LEN + 2) * sizeof(int32_t));
	int32_t    *b = malloc((4 * LEN + 2) * sizeof(int32_t));

	if (sp && hf && text && a && b)
	{
		for (int kind = 0; kind < 4; kind++)
		{
			size_t		na = 0,
						nb = 0;
			double		t0,
						dt;
			groma_status st;

			if (kind == 0)
				fill_letters(text, LEN, 7);
			else if (kind == 3)
			{
				for (int i = 0; i < LEN; i++)
					memcpy(text + 4 * i, i % 3 ? "\xE4\xB8\xAD" "a" : "\xF0\x9F\x98\x80", 4);
				text[4 * LEN] = '\0';
			}
			else
			{
				memset(text, kind == 1 ? ' ' : '<', LEN);
				text[LEN] = '\0';
			}
			t0 = now_seconds();
			st = groma_tokenizer_encode(sp, text, true, a, 4 * LEN + 2, &na);
			dt = now_seconds() - t0;
			CHECKF(st.code == GROMA_OK, "kind %d: %s", kind, st.message);
			CHECKF(dt < 0.5, "kind %d: %zu bytes took %.3f s", kind, strlen(text), dt);
			unit_note("long text kind %d: %zu bytes -> %zu ids in %.2f ms (sanitised build)",
					  kind, strlen(text), na, dt * 1e3);
			st = groma_tokenizer_encode(hf, text, true, b, 4 * LEN + 2, &nb);
			CHECKF(st.code == GROMA_OK && na == nb && memcmp(a, b, na * sizeof(int32_t)) == 0,
				   "kind %d: tokenizer.model and tokenizer.json differ", kind);
			if (kind == 1)
				CHECKF(na > 1 && na < LEN / 8, "kind 1: %zu ids for %d spaces", na, LEN);
		}
	}
	free(text);
	free(a);
	free(b);
	groma_tokenizer_free(sp);
	groma_tokenizer_free(hf);
}

/* What the benchmark adds up over the golden prompts. */
typedef struct bench_totals
{
	const groma_tokenizer *tok;
	size_t		ids;
	size_t		prompts;
	double		seconds;
} bench_totals;

/* Encodes one golden prompt 50 times and adds the ids and time to the totals. */
static void
bench_one(const char *label, const char *prompt, const char *decoded, const int32_t *input,
		  size_t n_input, const int32_t *generated, size_t n_generated, void *arg)
{
	bench_totals *b = arg;
	int32_t		ids[512];
	size_t		n = 0;
	double		t0 = now_seconds();

	for (int r = 0; r < 50; r++)
	{
		CHECK(groma_tokenizer_encode(b->tok, prompt, true, ids, 512, &n).code == GROMA_OK);
		b->ids += n;
		b->prompts++;
	}
	b->seconds += now_seconds() - t0;
}

/* Prints how fast the tokenizer loads and encodes the golden prompts, from each file. */
UNIT_TEST(test_tokenizer_benchmark_note)
{
	groma_tokenizer_source sources[] = {GROMA_TOKENIZER_SP_MODEL, GROMA_TOKENIZER_HF_JSON};

	for (int s = 0; s < 2; s++)
	{
		double		t0 = now_seconds();
		bench_totals b = {load_tokenizer(sources[s]), 0, 0, 0.0};
		double		load = now_seconds() - t0;

		if (b.tok == NULL)
			return;
		for_each_golden(bench_one, &b);
		unit_note("%s (sanitised build): load with cross-check %.1f ms; golden prompts %.1f us each, %.2f M ids/s",
				  s == 0 ? "tokenizer.model" : "tokenizer.json", load * 1e3,
				  b.seconds / (double) b.prompts * 1e6, (double) b.ids / b.seconds / 1e6);
		groma_tokenizer_free((groma_tokenizer *) b.tok);
	}
}
