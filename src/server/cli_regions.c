/*
 * cli_regions.c - groma-server --model DIR --regions IMG: the boxes the
 * model selects for an image, in pixels of the original image, as JSON.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "../model/vision.h"

/* Prints the result as one JSON object. */
static void
print_regions(const groma_vision_result *r, int k)
{
	const groma_vision_timing *t = &r->timing;

	printf("{\"width\": %d, \"height\": %d, \"regions\": [", r->width, r->height);
	for (int i = 0; i < r->n_regions; i++)
	{
		double		px[4];

		groma_box_to_pixels(r->boxes + 4 * i, r->width, r->height, px);
		printf("%s\n  {\"index\": %d, \"box\": [%.2f, %.2f, %.2f, %.2f], \"score\": %.6f, \"refer\": %s}",
			   i ? "," : "", i, px[0], px[1], px[2], px[3], r->scores[i],
			   r->kept[i] >= k ? "true" : "false");
	}
	printf("],\n \"refer_match\": [");
	for (int i = 0; i < r->n_refer; i++)
		printf("%s%lld", i ? ", " : "", (long long) r->refer_match[i]);
	printf("],\n \"timing_ms\": {\"decode\": %.1f, \"dinov2\": %.1f, \"bridge\": %.1f, \"proposer\": %.1f, "
		   "\"select\": %.1f, \"region\": %.1f}}\n",
		   t->decode_ms, t->dinov2_ms, t->bridge_ms, t->proposer_ms, t->select_ms, t->region_ms);
}

/* --model DIR --regions IMG; see cli.h. */
int
groma_cli_regions(const groma_cli_options *opt)
{
	groma_cli_session s = {0};
	groma_vision_result res;
	uint8_t    *data = NULL;
	size_t		len = 0;
	groma_status st = groma_read_file(opt->image_path, &data, &len);
	int			rc;

	if (st.code == GROMA_OK)
		st = groma_cli_session_open(opt, GROMA_CLI_ACT_BYTES, &s);
	if (st.code == GROMA_OK)
		st = groma_vision_run(s.model, data, len, &opt->limits, &opt->refer[0][0], opt->n_refer, &s.act, &s.out,
							  &s.host, &res);
	if (st.code == GROMA_OK)
	{
		print_regions(&res, s.model->proposer.cfg.num_queries);
		rc = 0;
	}
	else
		rc = groma_cli_fail(st);
	free(data);
	groma_cli_session_close(&s);
	return rc;
}
