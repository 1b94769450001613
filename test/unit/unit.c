/*
 * unit.c - the runner behind unit.h.
 */
#include "unit.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int			unit_failures;

/* Records a failed check with its location and reason. */
void
unit_fail(const char *file, int line, const char *fmt,...)
{
	va_list		ap;

	unit_failures++;
	if (unit_failures > 20)
		return;					/* keep logs readable when a loop fails everywhere */
	fprintf(stdout, "#   check failed at %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

/* Fills n floats with a reproducible pseudo-random sequence; see unit.h. */
void
unit_fill_random(float *x, int64_t n, uint32_t seed, float scale)
{
	for (int64_t i = 0; i < n; i++)
	{
		seed = seed * 1664525u + 1013904223u;
		x[i] = scale * (float) ((seed >> 8) / 8388608.0 - 1.0);
	}
}

/* Prints a note line. */
void
unit_note(const char *fmt,...)
{
	va_list		ap;

	fputs("#   ", stdout);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

/* Path under the repository root. */
const char *
unit_path(const char *relative)
{
	static char buf[4096];
	const char *root = getenv("GROMA_SOURCE_DIR");

	snprintf(buf, sizeof(buf), "%s/%s", root && *root ? root : ".", relative);
	return buf;
}

/* Reads a whole file. */
uint8_t *
unit_read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	uint8_t    *data;
	long		size;

	*len = 0;
	if (f == NULL)
	{
		unit_fail(__FILE__, __LINE__, "cannot open %s", path);
		return NULL;
	}
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, 0, SEEK_SET);
	data = malloc(size > 0 ? (size_t) size : 1);
	if (data == NULL || fread(data, 1, (size_t) size, f) != (size_t) size)
	{
		unit_fail(__FILE__, __LINE__, "cannot read %s", path);
		free(data);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*len = (size_t) size;
	return data;
}
