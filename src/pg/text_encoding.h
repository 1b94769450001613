/*
 * text_encoding.h - text between the database's encoding and groma-server's
 * UTF-8: prompts, phrases and labels go out as UTF-8, answers come back
 * into the database's encoding.
 */
#ifndef GROMA_TEXT_ENCODING_H
#define GROMA_TEXT_ENCODING_H

#include "postgres.h"

/* Returns a text argument as a NUL-terminated UTF-8 string (palloc'd); raises ERROR for characters UTF-8 lacks. */
char	   *groma_text_to_utf8(text *t);

/*
 * Returns a text Datum of a UTF-8 string from groma-server, in the
 * database's encoding; raises ERROR (22P05, with a context line saying
 * so) for a character the database's encoding has no equivalent for.
 */
Datum		groma_utf8_to_text(const char *utf8);

#endif							/* GROMA_TEXT_ENCODING_H */
