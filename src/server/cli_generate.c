/*
 * cli_generate.c - groma-server --model DIR --image IMG --prompt TEXT (or
 * --task): the grounded answer, with phrases mapped to pixel boxes of the
 * original image, as one JSON object.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "../model/generate.h"
#include "../text/grounded_output.h"
#include "../text/prompt.h"

/* Builds the query from --prompt or --task; a usage problem is GROMA_ERR_INVALID_ARGUMENT. */
static groma_status
build_query(const groma_cli_options *opt, char **query)
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

	*query = NULL;
	if (opt->phrase && (opt->task == NULL || strcmp(opt->task, "ground") != 0))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "--phrase goes with --task ground");
	if (opt->prompt)
	{
		*query = strdup(opt->prompt);
		return *query ? groma_ok() : groma_error(GROMA_ERR_NO_MEMORY, "out of memory");
	}
	for (size_t i = 0; i < sizeof(tasks) / sizeof(tasks[0]); i++)
		if (strcmp(opt->task, tasks[i].name) == 0)
		{
			if (tasks[i].task == GROMA_TASK_DESCRIBE && opt->n_refer != 1)
				return groma_error(GROMA_ERR_INVALID_ARGUMENT, "--task describe needs exactly one --refer box");
			if (tasks[i].task != GROMA_TASK_DESCRIBE && opt->n_refer != 0)
				return groma_error(GROMA_ERR_INVALID_ARGUMENT, "--refer boxes need a query that refers to them");
			return groma_task_query(tasks[i].task, opt->phrase, query);
		}
	return groma_error(GROMA_ERR_INVALID_ARGUMENT, "unknown task \"%s\" (caption, caption-detailed, ground, describe)",
					   opt->task);
}

/* Returns a JSON array of four numbers: pixel corners of selected box k. */
static json_t *
pixel_box(const groma_vision_result *vis, int k)
{
	double		px[4];

	groma_box_to_pixels(vis->boxes + 4 * k, vis->width, vis->height, px);
	return json_pack("[ffff]", px[0], px[1], px[2], px[3]);
}

/* Prints the answer, groundings, ids and timings. */
static void
print_answer(const groma_vision_result *vis, const groma_generation *gen, const groma_grounded_answer *a)
{
	json_t	   *root = json_object();
	json_t	   *groundings = json_array();
	json_t	   *ids = json_array();
	char	   *text;

	for (int i = 0; i < a->n_groundings; i++)
	{
		const groma_grounding *g = &a->groundings[i];
		json_t	   *boxes = json_array();

		for (int k = 0; k < g->n_boxes; k++)
			json_array_append_new(boxes, pixel_box(vis, g->boxes[k]));
		json_array_append_new(groundings, json_pack("{s:s, s:i, s:i, s:o}", "phrase", g->phrase, "start", g->start,
													"stop", g->stop, "boxes", boxes));
	}
	for (size_t i = 0; i < gen->n; i++)
		json_array_append_new(ids, json_integer(gen->ids[i]));
	json_object_set_new(root, "text", json_string(a->text));
	json_object_set_new(root, "groundings", groundings);
	json_object_set_new(root, "regions", json_integer(vis->n_regions));
	json_object_set_new(root, "generated_ids", ids);
	json_object_set_new(root, "stopped", json_string(gen->hit_eos ? "eos" : "limit"));
	json_object_set_new(root, "prompt_tokens", json_integer((json_int_t) gen->prompt_tokens));
	json_object_set_new(root, "timing_ms", json_pack("{s:f, s:f, s:f, s:f}", "vision",
													 vis->timing.decode_ms + vis->timing.dinov2_ms + vis->timing.bridge_ms +
													 vis->timing.proposer_ms + vis->timing.select_ms + vis->timing.region_ms,
													 "prefill", gen->prefill_ms, "decode", gen->decode_ms,
													 "decode_per_token", gen->n > 1 ? gen->decode_ms / (double) (gen->n - 1) : 0.0));
	text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	if (text)
		printf("%s\n", text);
	free(text);
	json_decref(root);
}

/* --model DIR --image IMG --prompt TEXT | --task T; see cli.h. */
int
groma_cli_generate(const groma_cli_options *opt)
{
	groma_cli_session s = {0};
	groma_tokenizer *tok = NULL;
	groma_vision_result vis;
	groma_generation gen = {0};
	groma_grounded_answer answer = {0};
	uint8_t    *data = NULL;
	size_t		len = 0;
	char	   *query = NULL;
	groma_status st = build_query(opt, &query);
	int			rc;

	if (st.code == GROMA_ERR_INVALID_ARGUMENT && query == NULL && (opt->task || opt->phrase))
	{
		fprintf(stderr, "groma-server: %s\n", st.message);
		return 2;
	}
	/* refuse a bad query before the model is loaded */
	if (st.code == GROMA_OK)
	{
		char	   *text = NULL;

		st = groma_prompt_text(query, &text);
		free(text);
	}
	if (st.code == GROMA_OK)
		st = groma_read_file(opt->image_path, &data, &len);
	if (st.code == GROMA_OK)
		st = groma_cli_session_open(opt, GROMA_CLI_ACT_BYTES, &s);
	if (st.code == GROMA_OK)
		st = groma_tokenizer_load(opt->model_dir, &tok);
	if (st.code == GROMA_OK)
		st = groma_vision_run(s.model, data, len, &opt->limits, &opt->refer[0][0], opt->n_refer, &s.act, &s.out,
							  &s.host, &vis);
	if (st.code == GROMA_OK)
		st = groma_generate(s.model, tok, &vis, query, opt->max_new_tokens, true, &s.act, &gen);
	if (st.code == GROMA_OK)
		st = groma_parse_grounded(tok, gen.ids, gen.n, vis.n_regions, &answer);
	if (st.code == GROMA_OK)
	{
		print_answer(&vis, &gen, &answer);
		rc = 0;
	}
	else
		rc = groma_cli_fail(st);
	groma_grounded_answer_free(&answer);
	groma_generation_free(&gen);
	free(query);
	free(data);
	groma_tokenizer_free(tok);
	groma_cli_session_close(&s);
	return rc;
}
