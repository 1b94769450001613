/*
 * fuzz_tokenizer.c - libFuzzer target for the tokenizer: encode the input
 * as text (legacy, from tokenizer.model, and non-legacy, from
 * tokenizer.json), decode the ids back, and decode the input read as raw
 * ids.  Non-legacy round trips must be exact for valid UTF-8 without NUL or
 * U+2581 (see test_tokenizer_roundtrip.c); a mismatch traps so the fuzzer
 * reports it.  The tokenizer is loaded once from
 * $GROMA_SOURCE_DIR/test/golden/tiny-groma (default ".").
 */
#define _GNU_SOURCE				/* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/text/tokenizer.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUT 4096

static groma_tokenizer *legacy_tok;
static groma_tokenizer *modern_tok;

/* Loads one tokenizer; traps when the golden files cannot be loaded (a broken setup, not a finding). */
static groma_tokenizer *
load(groma_tokenizer_source source, groma_tokenizer_legacy legacy)
{
	const char *root = getenv("GROMA_SOURCE_DIR");
	char		dir[4096];
	groma_tokenizer_options o = groma_tokenizer_default_options();
	groma_tokenizer *tok = NULL;
	groma_status st;

	snprintf(dir, sizeof(dir), "%s/test/golden/tiny-groma", root && *root ? root : ".");
	o.source = source;
	o.legacy = legacy;
	o.cross_check = false;
	st = groma_tokenizer_load_with(dir, &o, &tok);
	if (st.code != GROMA_OK)
	{
		fprintf(stderr, "fuzz_tokenizer: cannot load %s: %s\n", dir, st.message);
		__builtin_trap();
	}
	return tok;
}

/* Encodes text with tok and decodes the ids (specials kept) into out; returns false when the text was refused. */
static bool
encode_decode(const groma_tokenizer *tok, const char *text, size_t len, char *out, size_t outlen,
			  size_t *outlen_used)
{
	static int32_t ids[4 * MAX_INPUT + 2];
	size_t		n = 0;

	if (groma_tokenizer_encode_len(tok, text, len, true, ids, 4 * MAX_INPUT + 2, &n).code != GROMA_OK)
		return false;
	(void) groma_tokenizer_decode(tok, ids, n, true, out, outlen, outlen_used);
	return groma_tokenizer_decode(tok, ids + 1, n - 1, false, out, outlen, outlen_used).code == GROMA_OK;
}

/* One input: encode/decode in both modes, check the non-legacy round trip, decode raw ids. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char out[16 * MAX_INPUT + 16];
	static int32_t raw[MAX_INPUT / 2];	/* one id per two input bytes */
	size_t		len = 0,
				n_raw = 0;
	bool		ok;

	if (legacy_tok == NULL)
	{
		legacy_tok = load(GROMA_TOKENIZER_SP_MODEL, GROMA_TOKENIZER_LEGACY_ON);
		modern_tok = load(GROMA_TOKENIZER_HF_JSON, GROMA_TOKENIZER_LEGACY_OFF);
	}
	if (size > MAX_INPUT)
		size = MAX_INPUT;

	(void) encode_decode(legacy_tok, (const char *) data, size, out, sizeof(out), &len);
	ok = encode_decode(modern_tok, (const char *) data, size, out, sizeof(out), &len);
	if (ok && memmem(data, size, "\xE2\x96\x81", 3) == NULL && (len != size || memcmp(out, data, size) != 0))
		__builtin_trap();		/* non-legacy round trip must be exact */

	/* the input as ids: every id in range, byte pieces often, to stress UTF-8 reassembly */
	for (size_t i = 0; i + 2 <= size; i += 2)
	{
		uint16_t	v = (uint16_t) (data[i] | data[i + 1] << 8);

		raw[n_raw++] = (v & 1) ? 3 + (v >> 8) : (int32_t) (v % 32114);
	}
	/* only the n_raw ids just written (size <= MAX_INPUT, so at most MAX_INPUT / 2) */
	(void) groma_tokenizer_decode(legacy_tok, raw, n_raw, false, out, sizeof(out), &len);
	(void) groma_tokenizer_decode(legacy_tok, raw, n_raw, true, out, 7, &len);
	return 0;
}
