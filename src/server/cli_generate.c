/*
 * cli_generate.c - groma-server --model DIR --image IMG --prompt TEXT (or
 * --task): the grounded answer, with phrases mapped to pixel boxes of the
 * original image, as one JSON object.  Runs through the request module,
 * like the socket server.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "request.h"
#include "../text/prompt.h"

/* Turns --task into a groma_task; -1 for an unknown name. */
static int
task_code(const char *name)
{
	static const struct
	{
		const char *name;
		groma_task	task;
	}			tasks[] = {
		{"caption", GROMA_TASK_CAPTION},
		{"caption-detailed", GROMA_TASK_CAPTION_DETAILED},
		{"ground", GROMA_TASK_GROUND},
		{"describe", GROMA_TASK_DESCRIBE},
	};

	for (size_t i = 0; i < sizeof(tasks) / sizeof(tasks[0]); i++)
		if (strcmp(name, tasks[i].name) == 0)
			return (int) tasks[i].task;
	return -1;
}

/* Checks the query options before anything is loaded; returns 0, or 2 after printing a usage error. */
static int
check_query_options(const groma_cli_options *opt, int *task)
{
	const char *why = NULL;

	*task = -1;
	if (opt->phrase && (opt->task == NULL || strcmp(opt->task, "ground") != 0))
		why = "--phrase goes with --task ground";
	else if (opt->task && (*task = task_code(opt->task)) < 0)
		why = "unknown task (caption, caption-detailed, ground, describe)";
	else if (*task == GROMA_TASK_DESCRIBE && opt->n_refer != 1)
		why = "--task describe needs exactly one --refer box";
	else if (*task >= 0 && *task != GROMA_TASK_DESCRIBE && opt->n_refer != 0)
		why = "--refer boxes need a query that refers to them";
	if (why == NULL)
		return 0;
	fprintf(stderr, "groma-server: %s\n", why);
	return 2;
}

/* Prints a GENERATE reply: answer, groundings, ids and timings. */
static void
print_answer(const groma_reply *r)
{
	json_t	   *groundings = json_array();
	json_t	   *ids = json_array();

	for (int i = 0; i < r->n_groundings; i++)
	{
		const groma_reply_grounding *g = &r->groundings[i];
		json_t	   *boxes = json_array();

		for (int k = 0; k < g->n_boxes; k++)
			json_array_append_new(boxes, groma_cli_box(g->boxes + 4 * k));
		json_array_append_new(groundings, json_pack("{s:s, s:i, s:i, s:o}", "phrase", g->phrase, "start", g->start,
													"stop", g->stop, "boxes", boxes));
	}
	for (int i = 0; i < r->n_ids; i++)
		json_array_append_new(ids, json_integer(r->ids[i]));
	groma_cli_print_json(json_pack("{s:s, s:o, s:i, s:o, s:s, s:i, s:{s:f, s:f, s:f, s:f}}",
								   "text", r->text, "groundings", groundings, "regions", r->n_regions,
								   "generated_ids", ids, "stopped", r->hit_eos ? "eos" : "limit",
								   "prompt_tokens", r->prompt_tokens, "timing_ms",
								   "vision", r->vision_ms, "prefill", r->prefill_ms, "decode", r->decode_ms,
								   "decode_per_token", r->n_ids > 1 ? r->decode_ms / (r->n_ids - 1) : 0.0), true);
}

/* --model DIR --image IMG --prompt TEXT | --task T; see cli.h. */
int
groma_cli_generate(const groma_cli_options *opt)
{
	groma_engine e = {0};
	groma_reply reply = {0};
	groma_request req;
	uint8_t    *data = NULL;
	size_t		len = 0;
	char	   *query = NULL;
	int			task;
	groma_status st;
	int			rc = check_query_options(opt, &task);

	if (rc != 0)
		return rc;
	/* refuse a bad query before the model is loaded */
	st = task >= 0 ? groma_task_query((groma_task) task, opt->phrase, &query) : groma_ok();
	if (st.code == GROMA_OK)
	{
		char	   *text = NULL;

		st = groma_prompt_text(query ? query : opt->prompt, &text);
		free(text);
	}
	if (st.code == GROMA_OK)
		st = groma_prompt_check_refer(query ? query : opt->prompt, opt->n_refer);
	free(query);
	if (st.code == GROMA_OK)
		st = groma_read_file(opt->image_path, &data, &len);
	if (st.code == GROMA_OK && len > GROMA_PROTO_MAX_IMAGE)
		st = groma_error(GROMA_ERR_LIMIT, "%s has %zu bytes, more than groma's limit of %u", opt->image_path, len,
						 (unsigned) GROMA_PROTO_MAX_IMAGE);
	if (st.code == GROMA_OK)
		st = groma_engine_open(opt, &e);
	if (st.code == GROMA_OK)
	{
		req = groma_cli_request(opt, GROMA_MSG_GENERATE, data, len);
		req.task = task;
		req.text = (char *) (task >= 0 ? (opt->phrase ? opt->phrase : "") : opt->prompt);
		st = groma_request_run(&e, &req, &reply);
	}
	if (st.code == GROMA_OK)
	{
		print_answer(&reply);
		rc = 0;
	}
	else
		rc = groma_cli_fail(st);
	groma_reply_free(&reply);
	free(data);
	groma_engine_close(&e);
	return rc;
}
