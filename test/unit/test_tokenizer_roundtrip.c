/*
 * test_tokenizer_roundtrip.c - decode(encode(s)) over a UTF-8 corpus, decode
 * edge cases (broken byte sequences, leading spaces, skipped tokens), and
 * tokenizer.model against tokenizer.json on thousands of random texts.
 *
 * Round trips are exact (add_bos off, special tokens written out) except:
 *   - U+2581 ("▁") in the input comes back as a space: SentencePiece escapes
 *     spaces as U+2581, so the two cannot be told apart (same in
 *     SentencePiece and tokenizers).
 *   - legacy mode: a text run after a special token gets the dummy-prefix
 *     space, and it comes back ("<p>x" -> "<p> x"); non-legacy is exact.
 * Leading, trailing and repeated spaces, control characters, CJK, emoji and
 * combining sequences all come back exactly.
 */
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "golden_case.h"
#include "../../src/text/tokenizer.h"

#define BYTE(b) (3 + (b))			/* LLaMA-2 puts <0x00>..<0xFF> at ids 3..258 */

/* Encodes text (bos as asked), decodes it (specials kept unless skip) into out; false with a failed check on error. */
static bool
round_trip(const groma_tokenizer *tok, const char *text, bool add_bos, bool skip, char *out, size_t outlen)
{
	int32_t		ids[4096];
	size_t		n = 0,
				len = 0;
	groma_status st = groma_tokenizer_encode(tok, text, add_bos, ids, 4096, &n);

	CHECKF(st.code == GROMA_OK, "encode \"%s\": %s", text, st.message);
	if (st.code != GROMA_OK)
		return false;
	st = groma_tokenizer_decode(tok, ids, n, skip, out, outlen, &len);
	CHECKF(st.code == GROMA_OK && len == strlen(out), "decode \"%s\": %s", text, st.message);
	return st.code == GROMA_OK;
}

/* Texts without special tokens: exact in both modes, with or without bos. */
static const char *const plain_corpus[] = {
	"",
	" ",
	"   ",
	"Hello, world!",
	"  leading and trailing  ",
	"multiple     spaces   inside",
	"tabs\tand\nnewlines\r\nand\vmore\f",
	"control \x01\x02\x1b[0m\x7f end",
	"accents: caf\xC3\xA9 na\xC3\xAFve r\xC3\xA9sum\xC3\xA9 \xC3\x85ngstr\xC3\xB6m",
	"combining: e\xCC\x81 a\xCC\x8A",
	"CJK: \xE4\xB8\xAD\xE6\x96\x87\xE5\xAD\x97\xE7\xAC\xA6 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E "
	"\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4",
	"emoji: \xF0\x9F\x98\x80\xF0\x9F\x8E\x89 \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD "
	"\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7",
	"max code point \xF4\x8F\xBF\xBF and U+FFFD \xEF\xBF\xBD",
	"\n",
	"trailing newline\n",
	" <not a token> [PAD without bracket <r100>",
	"A chat between a curious user and an artificial intelligence assistant.",
};

/* Every plain text survives encode + decode exactly, in both modes and from both files. */
UNIT_TEST(test_tokenizer_roundtrip_plain)
{
	groma_tokenizer_legacy modes[] = {GROMA_TOKENIZER_LEGACY_ON, GROMA_TOKENIZER_LEGACY_OFF};
	char		out[4096];

	for (int m = 0; m < 2; m++)
	{
		groma_tokenizer *tok = golden_tokenizer_with(m == 0 ? GROMA_TOKENIZER_SP_MODEL : GROMA_TOKENIZER_HF_JSON, modes[m]);

		if (tok == NULL)
			return;
		for (size_t i = 0; i < sizeof(plain_corpus) / sizeof(plain_corpus[0]); i++)
		{
			if (round_trip(tok, plain_corpus[i], false, false, out, sizeof(out)))
				CHECKF(strcmp(out, plain_corpus[i]) == 0, "mode %d: \"%s\" came back as \"%s\"",
					   m, plain_corpus[i], out);
			if (round_trip(tok, plain_corpus[i], true, true, out, sizeof(out)))
				CHECKF(strcmp(out, plain_corpus[i]) == 0, "mode %d with bos: \"%s\" came back as \"%s\"",
					   m, plain_corpus[i], out);
		}
		groma_tokenizer_free(tok);
	}
}

/* Texts with special tokens: exact in non-legacy mode; legacy adds the documented space. */
UNIT_TEST(test_tokenizer_roundtrip_specials)
{
	static const struct
	{
		const char *text;
		const char *legacy;		/* what legacy mode gives back */
	}			cases[] = {
		{"<p>the man</p> is <roi><r3></roi>.", "<p> the man</p>  is <roi><r3></roi> ."},
		{"a<p>b", "a<p> b"},
		{"<p>x", "<p> x"},
		{" <p> x", " <p>  x"},
		{"[grounding]Describe it.</s>", "[grounding] Describe it.</s>"},
		{"<image>\n<region>", "<image> \n<region>"},
	};
	groma_tokenizer *modern = golden_tokenizer_with(GROMA_TOKENIZER_AUTO, GROMA_TOKENIZER_LEGACY_OFF);
	groma_tokenizer *legacy = golden_tokenizer_with(GROMA_TOKENIZER_AUTO, GROMA_TOKENIZER_LEGACY_ON);
	char		out[1024];

	for (size_t i = 0; modern && legacy && i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		if (round_trip(modern, cases[i].text, false, false, out, sizeof(out)))
			CHECKF(strcmp(out, cases[i].text) == 0, "non-legacy: \"%s\" came back as \"%s\"", cases[i].text, out);
		if (round_trip(legacy, cases[i].text, false, false, out, sizeof(out)))
			CHECKF(strcmp(out, cases[i].legacy) == 0, "legacy: \"%s\" came back as \"%s\"", cases[i].text, out);
	}
	groma_tokenizer_free(modern);
	groma_tokenizer_free(legacy);
}

/* The one plain-text exception: U+2581 comes back as a space. */
UNIT_TEST(test_tokenizer_roundtrip_space_mark)
{
	groma_tokenizer *tok = golden_tokenizer_with(GROMA_TOKENIZER_AUTO, GROMA_TOKENIZER_LEGACY_ON);
	char		out[64];

	if (tok && round_trip(tok, "a\xE2\x96\x81" "b", false, false, out, sizeof(out)))
		CHECKF(strcmp(out, "a b") == 0, "got \"%s\"", out);
	groma_tokenizer_free(tok);
}

/* Decodes ids and compares with want. */
static void
check_decode(const groma_tokenizer *tok, const int32_t *ids, size_t n, bool skip, const char *want)
{
	char		out[256];
	size_t		len = 0;
	groma_status st = groma_tokenizer_decode(tok, ids, n, skip, out, sizeof(out), &len);

	CHECKF(st.code == GROMA_OK && strcmp(out, want) == 0 && len == strlen(want),
		   "decode gave \"%s\" (%s), want \"%s\"", out, st.message, want);
}

/*
 * Decode edge cases.  Byte sequences: as sentencepiece 0.2.0's decode gives
 * them (valid characters kept, one U+FFFD per stray byte; tokenizers would
 * turn every byte of a broken run into U+FFFD).  Spaces and skipped tokens:
 * as tokenizers 0.23.3's decode gives them.  NUL: groma's rule (U+FFFD).
 */
UNIT_TEST(test_tokenizer_decode_edges)
{
#define FFFD "\xEF\xBF\xBD"
	static const int32_t zhong[] = {BYTE(0xE4), BYTE(0xB8), BYTE(0xAD)};
	static const int32_t broken_ff[] = {BYTE(0xE4), BYTE(0xB8), BYTE(0xFF), 15043};
	static const int32_t broken_a[] = {BYTE(0xE4), BYTE(0xB8), BYTE(0x41), 15043};
	static const int32_t cut_short[] = {BYTE(0xF0), BYTE(0x9F), BYTE(0x98)};
	static const int32_t surrogate[] = {BYTE(0xED), BYTE(0xA0), BYTE(0x80)};
	static const int32_t overlong[] = {BYTE(0xC0), BYTE(0x80)};
	static const int32_t nul[] = {BYTE(0x00), 15043};
	static const int32_t one_mark[] = {29871};
	static const int32_t two_marks[] = {29871, 29871};
	static const int32_t bos_hello[] = {1, 15043};
	static const int32_t split_by_bos[] = {BYTE(0xE4), 1, BYTE(0xB8), BYTE(0xAD)};
	static const int32_t byte_space_first[] = {BYTE(0x20), BYTE(0x41)};
	static const int32_t bad_ids[][1] = {{-1}, {32114}, {INT32_MAX}};
	groma_tokenizer *tok = golden_tokenizer_with(GROMA_TOKENIZER_AUTO, GROMA_TOKENIZER_LEGACY_FROM_CONFIG);
	char		out[16];
	size_t		len = 0;

	if (tok == NULL)
		return;
	check_decode(tok, zhong, 3, false, "\xE4\xB8\xAD");
	check_decode(tok, broken_ff, 4, false, FFFD FFFD FFFD " Hello");
	check_decode(tok, broken_a, 4, false, FFFD FFFD "A Hello");
	check_decode(tok, cut_short, 3, false, FFFD FFFD FFFD);
	check_decode(tok, surrogate, 3, false, FFFD FFFD FFFD);
	check_decode(tok, overlong, 2, false, FFFD FFFD);
	check_decode(tok, nul, 2, false, FFFD " Hello");
	check_decode(tok, one_mark, 1, false, "");
	check_decode(tok, two_marks, 2, false, " ");
	check_decode(tok, bos_hello, 2, false, "<s> Hello");
	check_decode(tok, bos_hello, 2, true, "Hello");
	check_decode(tok, split_by_bos, 4, true, "\xE4\xB8\xAD");
	check_decode(tok, split_by_bos, 4, false, FFFD "<s>" FFFD FFFD);
	check_decode(tok, byte_space_first, 2, false, "A");
	check_decode(tok, NULL, 0, false, "");
	for (size_t i = 0; i < 3; i++)
		CHECK(groma_tokenizer_decode(tok, bad_ids[i], 1, false, out, sizeof(out), &len).code ==
			  GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_tokenizer_decode(tok, zhong, 3, false, out, 3, &len).code == GROMA_ERR_LIMIT && len == 3 &&
		  out[0] == '\0');
	CHECK(groma_tokenizer_decode(tok, zhong, 3, false, out, 4, &len).code == GROMA_OK && len == 3);
	CHECK(groma_tokenizer_decode(tok, zhong, 3, false, NULL, 0, &len).code == GROMA_ERR_LIMIT && len == 3);
	groma_tokenizer_free(tok);
#undef FFFD
}

/* A small reproducible generator (xorshift64*). */
static uint64_t
next_random(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 0x2545F4914F6CDD1DULL;
}

/* Appends the UTF-8 form of code point cp to buf at *at. */
static void
put_code_point(char *buf, size_t *at, uint32_t cp)
{
	if (cp < 0x80)
		buf[(*at)++] = (char) cp;
	else if (cp < 0x800)
	{
		buf[(*at)++] = (char) (0xC0 | cp >> 6);
		buf[(*at)++] = (char) (0x80 | (cp & 0x3F));
	}
	else if (cp < 0x10000)
	{
		buf[(*at)++] = (char) (0xE0 | cp >> 12);
		buf[(*at)++] = (char) (0x80 | (cp >> 6 & 0x3F));
		buf[(*at)++] = (char) (0x80 | (cp & 0x3F));
	}
	else
	{
		buf[(*at)++] = (char) (0xF0 | cp >> 18);
		buf[(*at)++] = (char) (0x80 | (cp >> 12 & 0x3F));
		buf[(*at)++] = (char) (0x80 | (cp >> 6 & 0x3F));
		buf[(*at)++] = (char) (0x80 | (cp & 0x3F));
	}
}

/*
 * Writes a random text of fragments into buf (at most 40 fragments of at most
 * 12 bytes): English pieces, repeated letters that tempt overlapping merges
 * ("ere" = "er"+"e" = "e"+"re"), runs of spaces, "▁", special tokens,
 * punctuation, and random code points from Latin to supplementary planes.
 */
static void
random_text(uint64_t *state, char *buf)
{
	static const char *const fragments[] = {
		" ", "  ", "    ", "a", "e", "r", "t", "er", "re", "ere", "at", "ta", "ata", "the", " the",
		"ing", "tion", " in", "...", "--", "----", "text", "ex", "\n", "\t", ".", ",", "<", ">", "/",
		"_", "0", "12", "345", "\xE2\x96\x81", "<p>", "</p>", "<r7>", "<s>", "[grounding]", "<image>",
		"\xC3\xA9", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80", "Hello", "ironing", "man", "ASSISTANT:",
	};
	size_t		at = 0;
	int			count = (int) (next_random(state) % 41);

	for (int i = 0; i < count; i++)
	{
		uint64_t	r = next_random(state);

		if (r % 5 == 0)
		{
			/* a random code point: 1..0x7FF, 0x800..0xFFFF without surrogates, or a supplementary one */
			uint32_t	cp,
						pick = (uint32_t) (r >> 8) % 3;

			if (pick == 0)
				cp = 1 + (uint32_t) (r >> 16) % 0x7FF;
			else if (pick == 1)
				cp = 0x800 + (uint32_t) (r >> 16) % (0x10000 - 0x800);
			else
				cp = 0x10000 + (uint32_t) (r >> 16) % 0x100000;
			if (cp >= 0xD800 && cp <= 0xDFFF)
				cp = 0x2581;
			put_code_point(buf, &at, cp);
		}
		else
		{
			const char *f = fragments[(r >> 8) % (sizeof(fragments) / sizeof(fragments[0]))];

			memcpy(buf + at, f, strlen(f));
			at += strlen(f);
		}
	}
	buf[at] = '\0';
}

/* Four thousand random texts encode to the same ids from tokenizer.model (scores) and tokenizer.json (ranks). */
UNIT_TEST(test_tokenizer_model_json_agree)
{
	groma_tokenizer_legacy modes[] = {GROMA_TOKENIZER_LEGACY_ON, GROMA_TOKENIZER_LEGACY_OFF};
	uint64_t	state = 0x9E3779B97F4A7C15ULL;
	int			differ = 0,
				texts = 0;

	for (int m = 0; m < 2; m++)
	{
		groma_tokenizer *sp = golden_tokenizer_with(GROMA_TOKENIZER_SP_MODEL, modes[m]);
		groma_tokenizer *hf = golden_tokenizer_with(GROMA_TOKENIZER_HF_JSON, modes[m]);

		for (int i = 0; sp && hf && i < 2000; i++)
		{
			char		text[40 * 12 + 1];
			int32_t		a[512],
						b[512];
			size_t		na = 0,
						nb = 0;
			groma_status sa,
						sb;

			random_text(&state, text);
			sa = groma_tokenizer_encode(sp, text, true, a, 512, &na);
			sb = groma_tokenizer_encode(hf, text, true, b, 512, &nb);
			CHECKF(sa.code == GROMA_OK && sb.code == GROMA_OK, "\"%s\": %s / %s", text, sa.message, sb.message);
			if (na != nb || memcmp(a, b, na * sizeof(int32_t)) != 0)
			{
				if (differ++ < 5)
					CHECKF(false, "mode %d: \"%s\" encodes differently from the two files", m, text);
			}
			texts++;
		}
		groma_tokenizer_free(sp);
		groma_tokenizer_free(hf);
	}
	CHECKF(differ == 0 && texts == 4000, "%d of %d texts differ", differ, texts);
}
