/*
 * cli_draw.c - groma-server --draw: boxes and labels drawn on a JPEG through
 * the request module (the DRAW request a socket client would send).
 */
#include "cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "request.h"

/* Writes len bytes to path; returns a status. */
static groma_status
write_file(const char *path, const uint8_t *data, size_t len)
{
	FILE	   *f = fopen(path, "wb");
	bool		ok;

	if (f == NULL)
		return groma_error(GROMA_ERR_IO, "cannot create %s", path);
	ok = fwrite(data, 1, len, f) == len;
	ok = fclose(f) == 0 && ok;
	return ok ? groma_ok() : groma_error(GROMA_ERR_IO, "cannot write %s", path);
}

/* --draw IMG --out FILE; see cli.h. */
int
groma_cli_draw(const groma_cli_options *opt)
{
	groma_reply reply = {0};
	uint8_t    *data = NULL;
	size_t		len = 0;
	groma_status st = groma_read_file(opt->image_path, &data, &len);

	if (st.code == GROMA_OK)
	{
		groma_request req = groma_cli_request(opt, GROMA_MSG_DRAW, data, len);

		req.n_draw = opt->n_draw;
		req.draw_boxes = (double *) opt->draw_boxes;
		/* the request does not write through these pointers */
		req.draw_labels = opt->any_label ? (char **) opt->draw_labels : NULL;
		st = groma_request_run(NULL, &req, &reply);
	}
	if (st.code == GROMA_OK)
		st = write_file(opt->out_path, reply.jpeg, reply.jpeg_len);
	free(data);
	if (st.code != GROMA_OK)
	{
		groma_reply_free(&reply);
		return groma_cli_fail(st);
	}
	groma_cli_print_json(json_pack("{s:i, s:i, s:i, s:I, s:s}", "width", reply.width, "height", reply.height,
								   "boxes", opt->n_draw, "bytes", (json_int_t) reply.jpeg_len, "out",
								   opt->out_path), false);
	groma_reply_free(&reply);
	return 0;
}
