/*
 * bench_json.c - JSON lines for groma-server --bench; see bench_json.h.
 */
#include "bench_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Significant digits when printing numbers: a value rounded to at most 3
 * decimals prints exactly (12.345, not 12.345000000000001) and without an
 * exponent up to 10^15.
 */
#define PRINT_DIGITS 15

/* Returns v rounded as a JSON number, or null; see bench_json.h. */
json_t *
groma_json_rounded(double v, int decimals)
{
	double		scale = pow(10.0, decimals);

	if (!isfinite(v))
		return json_null();
	return json_real(round(v * scale) / scale);
}

/* Returns s as a JSON string, '?' for bytes jansson refuses; see bench_json.h. */
json_t *
groma_json_text(const char *s)
{
	json_t	   *j = json_string(s);
	char	   *ascii;

	if (j != NULL)
		return j;
	/* not UTF-8 (a device name from a driver, say): keep the ASCII, mark the rest */
	ascii = strdup(s);
	if (ascii == NULL)
		return NULL;
	for (char *c = ascii; *c; c++)
		if ((unsigned char) *c >= 0x80)
			*c = '?';
	j = json_string(ascii);
	free(ascii);
	return j;
}

/* Prints one JSON line and frees obj; see bench_json.h. */
void
groma_json_print_line(json_t *obj)
{
	char	   *text = obj ? json_dumps(obj, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(PRINT_DIGITS)) : NULL;

	printf("%s\n", text ? text : "{}");
	fflush(stdout);
	free(text);
	json_decref(obj);
}

/* Prints one benchmark figure; see bench_json.h. */
void
groma_bench_figure(const char *name, double value, const char *unit, const char *note)
{
	json_t	   *obj = json_pack("{s:s, s:o, s:s}", "figure", name, "value", groma_json_rounded(value, 3),
								"unit", unit);

	if (obj != NULL && note != NULL)
		json_object_set_new(obj, "note", groma_json_text(note));
	groma_json_print_line(obj);
}
