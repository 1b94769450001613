/*
 * bench_json.h - the JSON lines groma-server --bench prints (jansson):
 * one object per line, keys in the order given, strings escaped, and
 * numbers rounded to the decimals a reader needs, so that a figure reads
 * "value": 12.345 (no exponent, no binary noise).  Non-finite numbers
 * become null.
 */
#ifndef GROMA_BENCH_JSON_H
#define GROMA_BENCH_JSON_H

#include <jansson.h>

/* Returns v rounded to `decimals` places as a JSON number, or JSON null when v is not finite. */
json_t	   *groma_json_rounded(double v, int decimals);

/* Returns s as a JSON string; bytes that are not valid UTF-8 text become '?'. */
json_t	   *groma_json_text(const char *s);

/* Prints obj as one line (NULL, from a failed json_pack: "{}"), flushes stdout and frees obj. */
void		groma_json_print_line(json_t *obj);

/* Prints {"figure": name, "value": value (3 decimals), "unit": unit[, "note": note]}. */
void		groma_bench_figure(const char *name, double value, const char *unit, const char *note);

#endif							/* GROMA_BENCH_JSON_H */
