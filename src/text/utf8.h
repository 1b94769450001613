/*
 * utf8.h - strict UTF-8 checks for the tokenizer (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF).
 */
#ifndef GROMA_TEXT_UTF8_H
#define GROMA_TEXT_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* What a run of bytes is, read as the start of one UTF-8 character. */
typedef enum tok_utf8_prefix
{
	TOK_UTF8_COMPLETE,			/* exactly one whole character */
	TOK_UTF8_INCOMPLETE,		/* a valid start that needs more bytes */
	TOK_UTF8_INVALID			/* no character starts this way */
} tok_utf8_prefix;

/* Returns the byte length of the valid character at s[0..n), or 0 when it is invalid or cut short. */
size_t		tok_utf8_char_len(const uint8_t *s, size_t n);

/* Returns the offset of the first byte that does not start a valid character, or n when all of s is valid. */
size_t		tok_utf8_validate(const uint8_t *s, size_t n);

/* Classifies s[0..n) (1 <= n <= 4) as one complete character, a valid beginning of one, or invalid. */
tok_utf8_prefix tok_utf8_classify(const uint8_t *s, size_t n);

#endif							/* GROMA_TEXT_UTF8_H */
