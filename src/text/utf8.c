/*
 * utf8.c - strict UTF-8 checks for the tokenizer.
 */
#include "utf8.h"

#include <stdbool.h>

/* Returns the length a character starting with lead has, or 0 when lead cannot start one. */
static size_t
lead_length(uint8_t lead)
{
	if (lead < 0x80)
		return 1;
	if (lead >= 0xC2 && lead <= 0xDF)
		return 2;
	if (lead >= 0xE0 && lead <= 0xEF)
		return 3;
	if (lead >= 0xF0 && lead <= 0xF4)
		return 4;
	return 0;					/* continuation bytes, C0/C1 (overlong), F5..FF */
}

/* Returns whether byte may follow lead at position index (1..3) of a character. */
static bool
continuation_ok(uint8_t lead, size_t index, uint8_t byte)
{
	uint8_t		lo = 0x80,
				hi = 0xBF;

	if (index == 1)
	{
		if (lead == 0xE0)
			lo = 0xA0;			/* overlong three-byte forms */
		else if (lead == 0xED)
			hi = 0x9F;			/* UTF-16 surrogates */
		else if (lead == 0xF0)
			lo = 0x90;			/* overlong four-byte forms */
		else if (lead == 0xF4)
			hi = 0x8F;			/* above U+10FFFF */
	}
	return byte >= lo && byte <= hi;
}

/* Classifies s[0..n) as one complete character, a valid beginning of one, or invalid. */
tok_utf8_prefix
tok_utf8_classify(const uint8_t *s, size_t n)
{
	size_t		need;

	if (n == 0)
		return TOK_UTF8_INCOMPLETE;
	need = lead_length(s[0]);
	if (need == 0 || n > need)
		return TOK_UTF8_INVALID;
	for (size_t i = 1; i < n; i++)
		if (!continuation_ok(s[0], i, s[i]))
			return TOK_UTF8_INVALID;
	return n == need ? TOK_UTF8_COMPLETE : TOK_UTF8_INCOMPLETE;
}

/* Returns the byte length of the valid character at s[0..n), or 0 when it is invalid or cut short. */
size_t
tok_utf8_char_len(const uint8_t *s, size_t n)
{
	size_t		need;

	if (n == 0)
		return 0;
	need = lead_length(s[0]);
	if (need == 0 || need > n)
		return 0;
	return tok_utf8_classify(s, need) == TOK_UTF8_COMPLETE ? need : 0;
}

/* Returns the offset of the first byte that does not start a valid character, or n when all is valid. */
size_t
tok_utf8_validate(const uint8_t *s, size_t n)
{
	size_t		i = 0;

	while (i < n)
	{
		size_t		len;

		if (s[i] < 0x80)
		{
			i++;
			continue;
		}
		len = tok_utf8_char_len(s + i, n - i);
		if (len == 0)
			return i;
		i += len;
	}
	return n;
}
