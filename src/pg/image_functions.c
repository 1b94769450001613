/*
 * image_functions.c - SQL functions over JPEG bytea values:
 * groma_image_info(bytea) and groma_image_validate(bytea).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "groma_pg.h"
#include "server_client.h"

PG_FUNCTION_INFO_V1(groma_image_info);
PG_FUNCTION_INFO_V1(groma_image_validate);

/* Returns (width, height, components, colorspace, progressive) read from the header alone. */
Datum
groma_image_info(PG_FUNCTION_ARGS)
{
	bytea	   *img = PG_GETARG_BYTEA_PP(0);
	groma_jpeg_limits limits = groma_pg_jpeg_limits();
	groma_jpeg_info info;
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "groma_image_info must return a composite type");
	groma_pg_check(groma_jpeg_read_info((const uint8_t *) VARDATA_ANY(img),
										VARSIZE_ANY_EXHDR(img), &limits, &info));
	values[0] = Int32GetDatum(info.width);
	values[1] = Int32GetDatum(info.height);
	values[2] = Int32GetDatum(info.components);
	values[3] = CStringGetTextDatum(info.colorspace);
	values[4] = BoolGetDatum(info.progressive);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/*
 * Returns true when the image decodes fully and preprocesses to the vision
 * encoder's input; raises the decoding error otherwise (usable in CHECK).
 * The header is checked here; the decoding runs in groma-server (a VALIDATE
 * request, answered without a model), so a crafted image can never crash a
 * backend.
 */
Datum
groma_image_validate(PG_FUNCTION_ARGS)
{
	bytea	   *img = PG_GETARG_BYTEA_PP(0);
	groma_jpeg_limits limits = groma_pg_jpeg_limits();
	groma_jpeg_info info;
	groma_request req;
	groma_reply reply;

	groma_pg_check(groma_jpeg_read_info((const uint8_t *) VARDATA_ANY(img),
										VARSIZE_ANY_EXHDR(img), &limits, &info));
	memset(&req, 0, sizeof(req));
	req.kind = GROMA_MSG_VALIDATE;
	req.image = (uint8_t *) VARDATA_ANY(img);
	req.image_len = (uint32_t) VARSIZE_ANY_EXHDR(img);
	req.max_pixels = groma_max_image_pixels;
	groma_client_call(&req, &reply);
	groma_reply_free(&reply);
	PG_RETURN_BOOL(true);
}
