/*
 * text_encoding.c - converts text between the database's encoding and the
 * UTF-8 that groma-server's tokenizer reads and writes.  In a UTF8
 * database text goes out as it is and answers are checked to be valid
 * UTF-8; in a SQL_ASCII one (no encoding) the bytes pass both ways as they
 * are, and groma-server refuses a prompt that is not UTF-8.
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "text_encoding.h"

/* Returns a text argument as UTF-8; see text_encoding.h. */
char *
groma_text_to_utf8(text *t)
{
	char	   *s = text_to_cstring(t);

	return pg_server_to_any(s, strlen(s), PG_UTF8);
}

/* Error context of a conversion of an answer: says where the text came from. */
static void
answer_conversion_context(void *arg)
{
	errcontext("converting groma-server's answer from UTF-8 into the database's encoding %s (a UTF8 database holds "
			   "every answer)", GetDatabaseEncodingName());
}

/* Returns an answer's text in the database's encoding; see text_encoding.h. */
Datum
groma_utf8_to_text(const char *utf8)
{
	ErrorContextCallback context = {error_context_stack, answer_conversion_context, NULL};
	char	   *converted;

	error_context_stack = &context;
	converted = pg_any_to_server(utf8, strlen(utf8), PG_UTF8);
	error_context_stack = context.previous;
	return CStringGetTextDatum(converted);
}
