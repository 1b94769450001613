/*
 * text_encoding.h - text between the database's encoding and groma-server's
 * UTF-8: prompts, phrases and labels go out as UTF-8, answers come back
 * into the database's encoding.
 */
#ifndef GROMA_TEXT_ENCODING_H
#define GROMA_TEXT_ENCODING_H

#include "postgres.h"

#include "mb/pg_wchar.h"

/*
 * Returns a text argument as a NUL-terminated UTF-8 string (palloc'd);
 * raises ERROR for characters UTF-8 lacks, and 54000 when it has over max
 * bytes of UTF-8 (what names it in the message), refusing a text too long
 * to fit in any encoding before converting it.
 */
char	   *groma_text_to_utf8(text *t, const char *what, size_t max);

/*
 * Returns a text Datum of a UTF-8 string from groma-server, in the
 * database's encoding; raises ERROR (22P05, with a context line saying
 * so) for a character the database's encoding has no equivalent for.
 */
Datum		groma_utf8_to_text(const char *utf8);

/*
 * Returns a message or name from groma-server (UTF-8; a path may hold other
 * bytes) as a palloc'd string valid in the database's encoding: a character
 * the encoding lacks as \uXXXX, a byte that is not UTF-8 as \xNN.  Never
 * raises ERROR for its text, so it is safe to build error messages with.
 */
char	   *groma_server_text(const char *utf8);

/*
 * True when a UTF-8 string from groma-server is valid and every character
 * of it has an equivalent in the database's encoding, so that
 * groma_utf8_to_text takes it without an error; otherwise *lacking is the
 * first character the encoding lacks (0 for a string that is not UTF-8).
 */
bool		groma_utf8_fits_database(const char *utf8, pg_wchar *lacking);

#endif							/* GROMA_TEXT_ENCODING_H */
