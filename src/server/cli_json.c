/*
 * cli_json.c - how groma-server's command-line modes print results: JSON
 * objects built with jansson, pixel boxes and stage timings.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "protocol.h"

/* Prints one JSON object (on one line, or indented; keys in insertion order) and frees it. */
void
groma_cli_print_json(json_t *root, bool indent)
{
	size_t		flags = JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10) | (indent ? JSON_INDENT(1) : 0);
	char	   *text = root ? json_dumps(root, flags) : NULL;

	printf("%s\n", text ? text : "{}");
	free(text);
	json_decref(root);
}

/* Returns the vision stage timings of a reply as a JSON object. */
json_t *
groma_cli_stage_timings(const groma_reply *r)
{
	return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f}", "decode", r->stage_ms[0], "dinov2", r->stage_ms[1],
					 "bridge", r->stage_ms[2], "proposer", r->stage_ms[3], "select", r->stage_ms[4],
					 "region", r->stage_ms[5]);
}

/* Returns a JSON array of the four pixel corners at p. */
json_t *
groma_cli_box(const double *p)
{
	return json_pack("[ffff]", p[0], p[1], p[2], p[3]);
}
