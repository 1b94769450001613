/*
 * text_encoding.c - converts text between the database's encoding and the
 * UTF-8 that groma-server's tokenizer reads and writes.  In a UTF8
 * database text goes out as it is and answers are checked to be valid
 * UTF-8; in a SQL_ASCII one (no encoding) the bytes pass both ways as they
 * are, and a prompt that is not UTF-8 is refused.  Messages and names
 * from groma-server are shown in the database's encoding whatever their
 * characters.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "text_encoding.h"

/* True when text goes to groma-server as it is (a UTF8 or SQL_ASCII database). */
static bool
database_is_utf8(void)
{
	return GetDatabaseEncoding() == PG_UTF8 || GetDatabaseEncoding() == PG_SQL_ASCII;
}

/* Raises 54000 for a text argument of (at least) utf8_bytes bytes of UTF-8 and db_bytes in the database. */
static void
refuse_long_text(const char *what, size_t utf8_bytes, bool at_least, size_t db_bytes, size_t max)
{
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("%s of %s%zu bytes is over the limit of %zu bytes", what, at_least ? "at least " : "",
					utf8_bytes, max),
			 database_is_utf8() ? 0 : errdetail("The limit counts UTF-8 bytes; in the database's encoding %s it has %zu.",
												  GetDatabaseEncodingName(), db_bytes)));
}

/* Returns a text argument as UTF-8, refused when over max bytes; see text_encoding.h. */
char *
groma_text_to_utf8(text *t, const char *what, size_t max)
{
	size_t		db_bytes = VARSIZE_ANY_EXHDR(t);
	size_t		fewest_utf8_bytes = db_bytes / pg_database_encoding_max_length();
	char	   *utf8;

	/* each character takes at least one byte of UTF-8: one with more characters than max is refused unconverted */
	if (!database_is_utf8() && fewest_utf8_bytes > max)
		refuse_long_text(what, fewest_utf8_bytes, true, db_bytes, max);
	utf8 = pg_server_to_any(VARDATA_ANY(t), db_bytes, PG_UTF8);
	if (utf8 == VARDATA_ANY(t))
		utf8 = text_to_cstring(t);
	if (strlen(utf8) > max)
		refuse_long_text(what, strlen(utf8), false, db_bytes, max);
	return utf8;
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

/* Appends one legal UTF-8 character of n bytes in the database's encoding, or as \uXXXX when it has none. */
static void
append_server_character(StringInfo out, const unsigned char *c, int n, Oid proc)
{
	char		converted[4 * MAX_CONVERSION_GROWTH + 1];
	pg_wchar	code = utf8_to_unicode(c);

	if (GetDatabaseEncoding() == PG_UTF8)
		appendBinaryStringInfo(out, (const char *) c, n);
	else if (OidIsValid(proc) &&
			 pg_do_encoding_conversion_buf(proc, PG_UTF8, GetDatabaseEncoding(), (unsigned char *) c, n,
										   (unsigned char *) converted, sizeof(converted), true) == n)
		appendStringInfoString(out, converted);
	else if (code <= 0xFFFF)
		appendStringInfo(out, "\\u%04X", (unsigned int) code);
	else
		appendStringInfo(out, "\\U%08X", (unsigned int) code);
}

/* Returns a message or name from groma-server as text of the database's encoding; see text_encoding.h. */
char *
groma_server_text(const char *utf8)
{
	const unsigned char *p = (const unsigned char *) utf8;
	size_t		left = strlen(utf8);
	Oid			proc = InvalidOid;
	StringInfoData out;

	if (GetDatabaseEncoding() == PG_SQL_ASCII ||
		(GetDatabaseEncoding() == PG_UTF8 && pg_verify_mbstr(PG_UTF8, utf8, left, true)))
		return pstrdup(utf8);
	if (GetDatabaseEncoding() != PG_UTF8 && IsTransactionState())
		proc = FindDefaultConversionProc(PG_UTF8, GetDatabaseEncoding());
	initStringInfo(&out);
	while (left > 0)
	{
		int			n = *p < 0x80 ? 1 : pg_utf_mblen(p);

		if (*p < 0x80)
			appendStringInfoChar(&out, (char) *p);
		else if ((size_t) n <= left && pg_utf8_islegal(p, n))
			append_server_character(&out, p, n, proc);
		else
		{
			appendStringInfo(&out, "\\x%02X", *p);
			n = 1;
		}
		p += n;
		left -= n;
	}
	return out.data;
}

/* True when a UTF-8 string from groma-server converts into the database's encoding; see text_encoding.h. */
bool
groma_utf8_fits_database(const char *utf8, pg_wchar *lacking)
{
	int			len = (int) strlen(utf8);
	Oid			proc;
	char	   *converted;
	int			done;

	*lacking = 0;
	if (!pg_verify_mbstr(PG_UTF8, utf8, len, true))
		return false;
	if (database_is_utf8())
		return true;
	proc = FindDefaultConversionProc(PG_UTF8, GetDatabaseEncoding());
	if (!OidIsValid(proc))
		return false;
	converted = palloc((Size) len * MAX_CONVERSION_GROWTH + 1);
	done = pg_do_encoding_conversion_buf(proc, PG_UTF8, GetDatabaseEncoding(), (unsigned char *) utf8, len,
										 (unsigned char *) converted, len * MAX_CONVERSION_GROWTH + 1, true);
	pfree(converted);
	if (done < len)
		*lacking = utf8_to_unicode((const unsigned char *) utf8 + done);
	return done == len;
}
