/*
 * cli_regions.c - groma-server --model DIR --regions IMG: the boxes the
 * model selects for an image, in pixels of the original image, as JSON.
 * Runs through the request module, like the socket server.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "request.h"

/* Prints a REGIONS reply (with each region's embedding when it carries them). */
static void
print_regions(const groma_reply *r)
{
	json_t	   *regions = json_array();
	json_t	   *matches = json_array();

	for (int i = 0; i < r->n_regions; i++)
	{
		json_t	   *region = json_pack("{s:i, s:o, s:f, s:b}", "index", i, "box", groma_cli_box(r->boxes + 4 * i),
									   "score", (double) r->scores[i], "refer", r->is_refer[i]);

		if (region && r->embed_dim > 0)
		{
			json_t	   *embedding = json_array();

			for (int k = 0; k < r->embed_dim; k++)
				json_array_append_new(embedding, json_real(r->embeddings[(size_t) i * r->embed_dim + k]));
			json_object_set_new(region, "embedding", embedding);
		}
		json_array_append_new(regions, region);
	}
	for (int i = 0; i < r->n_refer_match; i++)
		json_array_append_new(matches, json_integer(r->refer_match[i]));
	groma_cli_print_json(json_pack("{s:i, s:i, s:o, s:o, s:o}", "width", r->width, "height", r->height,
								   "regions", regions, "refer_match", matches, "timing_ms",
								   groma_cli_stage_timings(r)), false);
}

/* Builds the request the options describe for kind, pointing at the image bytes (not owned). */
groma_request
groma_cli_request(const groma_cli_options *opt, groma_msg_kind kind, uint8_t *image, size_t len)
{
	groma_request req = {.kind = kind, .id = 1, .image = image, .image_len = (uint32_t) len,
	.max_pixels = opt->limits.max_pixels, .n_refer = opt->n_refer, .min_score = -1, .task = -1,
	.max_new_tokens = opt->max_new_tokens};

	for (int i = 0; i < opt->n_refer; i++)
		for (int k = 0; k < 4; k++)
			req.refer[i][k] = opt->refer[i][k];
	return req;
}

/* --model DIR --regions IMG; see cli.h. */
int
groma_cli_regions(const groma_cli_options *opt)
{
	groma_engine e = {0};
	groma_reply reply = {0};
	uint8_t    *data = NULL;
	size_t		len = 0;
	groma_status st = groma_read_file(opt->image_path, &data, &len);
	int			rc;

	if (st.code == GROMA_OK && len > GROMA_PROTO_MAX_IMAGE)
		st = groma_error(GROMA_ERR_LIMIT, "%s has %zu bytes, more than groma's limit of %u", opt->image_path, len,
						 (unsigned) GROMA_PROTO_MAX_IMAGE);
	if (st.code == GROMA_OK)
		st = groma_engine_open(opt, &e);
	if (st.code == GROMA_OK)
	{
		groma_request req = groma_cli_request(opt, GROMA_MSG_REGIONS, data, len);

		req.want_embeddings = opt->embeddings;

		st = groma_request_run(&e, &req, &reply);
	}
	if (st.code == GROMA_OK)
	{
		print_regions(&reply);
		rc = 0;
	}
	else
		rc = groma_cli_fail(st);
	groma_reply_free(&reply);
	free(data);
	groma_engine_close(&e);
	return rc;
}
