/*
 * test_tokenizer_modes.c - legacy and non-legacy dummy prefixes on
 * hand-checked texts, from both vocabulary files.
 *
 * How the expected ids were produced (Python, once; the test needs none):
 *   legacy:     tokenizers 0.20.3, Tokenizer.from_file(tokenizer.json) plus the 114
 *               added tokens as special AddedTokens (how the goldens were made);
 *               transformers 4.46.3 LlamaTokenizer(legacy=True) (slow, sentencepiece
 *               0.2.0 on tokenizer.model) gives the same ids for every case.
 *   non-legacy: transformers 4.46.3 LlamaTokenizer(legacy=False) (slow) and
 *               LlamaTokenizerFast(legacy=False, from_slow=True).  Where they
 *               disagree, groma's rule -- "▁" only before a text run that starts
 *               the text -- matches one of them, marked in the table:
 *                 SLOW  text starting with a space: the fast tokenizer's Metaspace
 *                       does not add "▁" before a "▁" (" lead" -> ▁lead); the slow
 *                       one and SentencePiece do (▁ ▁lead).
 *                 FAST  text starting with a Groma token: the slow tokenizer keeps a
 *                       lone "▁" before it ("<p>x" -> ▁ <p> x) because the Groma
 *                       tokens are not in its all_special_tokens; for <s>/</s>/<unk>
 *                       it drops that "▁", and so do the fast tokenizer and groma.
 */
#include <string.h>

#include "unit.h"
#include "golden_case.h"
#include "../../src/text/tokenizer.h"

/* One text with its ids in both modes (bos included). */
typedef struct mode_case
{
	const char *text;
	int32_t		legacy[16];
	size_t		n_legacy;
	int32_t		modern[16];
	size_t		n_modern;
} mode_case;

static const mode_case cases[] = {
	{"Locate <p>the man</p> in the image.",
		{1, 5976, 403, 29871, 32006, 278, 767, 32007, 29871, 297, 278, 1967, 29889}, 13,
	{1, 5976, 403, 29871, 32006, 1552, 767, 32007, 297, 278, 1967, 29889}, 12},
	{"a<p>b", {1, 263, 32006, 289}, 4, {1, 263, 32006, 29890}, 4},
	{"<p>x", {1, 32006, 921}, 3, {1, 32006, 29916}, 3},	/* FAST */
	{" <p> x", {1, 259, 32006, 29871, 921}, 5, {1, 259, 32006, 921}, 4},	/* SLOW */
	{"hello  world", {1, 22172, 29871, 3186}, 4, {1, 22172, 29871, 3186}, 4},
	{" lead", {1, 29871, 3275}, 3, {1, 29871, 3275}, 3},	/* SLOW */
	{"What is <roi><refer_box></roi><refer_feat>?",
		{1, 1724, 338, 29871, 32004, 32010, 32005, 32012, 1577}, 9,
	{1, 1724, 338, 29871, 32004, 32010, 32005, 32012, 29973}, 9},
	{"[grounding]Please describe.", {1, 32013, 3529, 8453, 29889}, 5,
	{1, 32013, 12148, 8453, 29889}, 5},	/* FAST */
	{"<s>hi</s> there", {1, 1, 7251, 2, 29871, 727}, 6, {1, 1, 2918, 2, 727}, 5},
	{"<p> <r3></p>  two", {1, 32006, 259, 32017, 32007, 259, 1023}, 7,
	{1, 32006, 29871, 32017, 32007, 29871, 1023}, 7},	/* FAST */
	{"a <p>", {1, 263, 29871, 32006}, 4, {1, 263, 29871, 32006}, 4},
	{"", {1}, 1, {1}, 1},
	{"x<unk>y</s>", {1, 921, 0, 343, 2}, 5, {1, 921, 0, 29891, 2}, 5},
	{"<ground_box><r12>tie", {1, 32011, 32026, 22134}, 4, {1, 32011, 32026, 29873, 347}, 5},	/* FAST */
	{"  spaces  ", {1, 259, 8162, 259}, 4, {1, 259, 8162, 259}, 4},	/* SLOW */
	{"caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80",
		{1, 274, 28059, 29871, 30275, 30333, 29871, 243, 162, 155, 131}, 11,
	{1, 274, 28059, 29871, 30275, 30333, 29871, 243, 162, 155, 131}, 11},
};

/* Returns the first index where got[0..n) and want[0..n_want) differ (the shorter length when one is a prefix). */
static size_t
first_difference(const int32_t *got, size_t n, const int32_t *want, size_t n_want)
{
	size_t		i = 0;

	while (i < n && i < n_want && got[i] == want[i])
		i++;
	return i;
}

/* Encodes every case with tok and compares with the legacy or non-legacy column. */
static void
check_cases(const groma_tokenizer *tok, bool legacy, const char *label)
{
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
	{
		const int32_t *want = legacy ? cases[c].legacy : cases[c].modern;
		size_t		n_want = legacy ? cases[c].n_legacy : cases[c].n_modern;
		int32_t		got[64];
		size_t		n = 0;
		groma_status st = groma_tokenizer_encode(tok, cases[c].text, true, got, 64, &n);

		CHECKF(st.code == GROMA_OK, "%s \"%s\": %s", label, cases[c].text, st.message);
		CHECKF(n == n_want && memcmp(got, want, n * sizeof(int32_t)) == 0,
			   "%s \"%s\": %zu ids (want %zu), first difference at %zu", label, cases[c].text, n, n_want,
			   first_difference(got, n, want, n_want));
	}
}

/* Legacy mode (every text run after a special token gets "▁") from both files. */
UNIT_TEST(test_tokenizer_mode_legacy)
{
	groma_tokenizer_source sources[] = {GROMA_TOKENIZER_SP_MODEL, GROMA_TOKENIZER_HF_JSON};

	for (int s = 0; s < 2; s++)
	{
		groma_tokenizer *tok = golden_tokenizer_with(sources[s], GROMA_TOKENIZER_LEGACY_ON);

		if (tok == NULL)
			return;
		CHECK(groma_tokenizer_legacy_mode(tok));
		check_cases(tok, true, s == 0 ? "legacy/model" : "legacy/json");
		groma_tokenizer_free(tok);
	}
}

/* Non-legacy mode ("▁" only before a run that starts the text) from both files. */
UNIT_TEST(test_tokenizer_mode_non_legacy)
{
	groma_tokenizer_source sources[] = {GROMA_TOKENIZER_SP_MODEL, GROMA_TOKENIZER_HF_JSON};

	for (int s = 0; s < 2; s++)
	{
		groma_tokenizer *tok = golden_tokenizer_with(sources[s], GROMA_TOKENIZER_LEGACY_OFF);

		if (tok == NULL)
			return;
		CHECK(!groma_tokenizer_legacy_mode(tok));
		check_cases(tok, false, s == 0 ? "non-legacy/model" : "non-legacy/json");
		groma_tokenizer_free(tok);
	}
}

/* Without an override the flag comes from tokenizer_config.json (true for tiny-groma). */
UNIT_TEST(test_tokenizer_mode_from_config)
{
	groma_tokenizer *tok = golden_tokenizer_with(GROMA_TOKENIZER_AUTO, GROMA_TOKENIZER_LEGACY_FROM_CONFIG);

	if (tok == NULL)
		return;
	CHECK(groma_tokenizer_legacy_mode(tok));
	CHECK(groma_tokenizer_source_used(tok) == GROMA_TOKENIZER_SP_MODEL);
	check_cases(tok, true, "config");
	groma_tokenizer_free(tok);
}
