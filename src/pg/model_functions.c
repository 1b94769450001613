/*
 * model_functions.c - SQL functions answered by groma-server's model:
 * groma_ping() and groma_chat(img, prompt, refer).
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/geo_decls.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "groma_pg.h"
#include "server_client.h"

PG_FUNCTION_INFO_V1(groma_ping);
PG_FUNCTION_INFO_V1(groma_chat);

/* Returns the round trip of a PING to a groma-server, in milliseconds. */
Datum
groma_ping(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(groma_client_ping());
}

/* Refuses an image whose header does not parse or is over groma.max_image_pixels, before it is sent anywhere. */
static void
check_image_header(bytea *img)
{
	groma_jpeg_limits limits = groma_pg_jpeg_limits();
	groma_jpeg_info info;

	groma_pg_check(groma_jpeg_read_info((const uint8_t *) VARDATA_ANY(img), VARSIZE_ANY_EXHDR(img),
										&limits, &info));
}

/* Points req at the image bytes (not copied: the request is encoded before img can go away). */
static void
set_request_image(groma_request *req, bytea *img)
{
	req->image = (uint8_t *) VARDATA_ANY(img);
	req->image_len = (uint32_t) Min(VARSIZE_ANY_EXHDR(img), (Size) PG_UINT32_MAX);
	req->max_pixels = groma_max_image_pixels;
}

/* Copies a box[] argument into req's refer boxes as pixel corners x1, y1, x2, y2. */
static void
set_request_refer(groma_request *req, ArrayType *refer)
{
	Datum	   *elems;
	bool	   *isnull;
	int			n;

	if (ARR_NDIM(refer) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("refer must be a one-dimensional array of boxes")));
	deconstruct_array(refer, BOXOID, sizeof(BOX), false, TYPALIGN_DOUBLE, &elems, &isnull, &n);
	if (n > GROMA_PROTO_MAX_REFER)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%d refer boxes is over the limit of %d", n, GROMA_PROTO_MAX_REFER)));
	for (int i = 0; i < n; i++)
	{
		BOX		   *b;

		if (isnull[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("refer box %d is NULL", i + 1),
					 errdetail("Every element of refer must be a box in pixels of the image.")));
		b = DatumGetBoxP(elems[i]);
		if (!isfinite(b->low.x) || !isfinite(b->low.y) || !isfinite(b->high.x) || !isfinite(b->high.y))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("refer box %d has a coordinate that is not finite", i + 1)));
		/* box keeps its upper-right corner in high, lower-left in low */
		req->refer[i][0] = b->low.x;
		req->refer[i][1] = b->low.y;
		req->refer[i][2] = b->high.x;
		req->refer[i][3] = b->high.y;
	}
	req->n_refer = n;
}

/* Returns a box[] Datum of n boxes given as pixel corners [n][4]. */
static Datum
boxes_datum(const double *corners, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
	{
		const double *c = corners + 4 * i;
		BOX		   *b = palloc(sizeof(BOX));

		b->high.x = Max(c[0], c[2]);
		b->high.y = Max(c[1], c[3]);
		b->low.x = Min(c[0], c[2]);
		b->low.y = Min(c[1], c[3]);
		elems[i] = BoxPGetDatum(b);
	}
	return PointerGetDatum(construct_array(elems, n, BOXOID, sizeof(BOX), false, TYPALIGN_DOUBLE));
}

/* Builds a groma_answer datum of type tupdesc from a GENERATE reply. */
static Datum
answer_datum(TupleDesc tupdesc, const groma_reply *reply)
{
	Oid			array_type = TupleDescAttr(tupdesc, 1)->atttypid;
	Oid			grounding_type = get_element_type(array_type);
	TupleDesc	gdesc;
	Datum	   *groundings;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (!OidIsValid(grounding_type))
		elog(ERROR, "groma_answer.groundings is not an array");
	gdesc = lookup_rowtype_tupdesc_copy(grounding_type, -1);
	groundings = palloc(sizeof(Datum) * Max(reply->n_groundings, 1));
	for (int i = 0; i < reply->n_groundings; i++)
	{
		const groma_reply_grounding *g = &reply->groundings[i];
		Datum		gvalues[4];
		bool		gnulls[4] = {false, false, false, false};

		gvalues[0] = CStringGetTextDatum(g->phrase ? g->phrase : "");
		gvalues[1] = Int32GetDatum(g->start);
		gvalues[2] = Int32GetDatum(g->stop);
		gvalues[3] = boxes_datum(g->boxes, g->n_boxes);
		groundings[i] = HeapTupleGetDatum(heap_form_tuple(gdesc, gvalues, gnulls));
	}
	get_typlenbyvalalign(grounding_type, &typlen, &typbyval, &typalign);
	values[0] = CStringGetTextDatum(reply->text ? reply->text : "");
	values[1] = PointerGetDatum(construct_array(groundings, reply->n_groundings, grounding_type,
												typlen, typbyval, typalign));
	return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
}

/*
 * Returns the model's grounded answer (groma_answer) to a free prompt about
 * an image, optionally with refer boxes the prompt names as <refer_box>;
 * NULL when the image or the prompt is NULL.
 */
Datum
groma_chat(PG_FUNCTION_ARGS)
{
	bytea	   *img;
	char	   *prompt;
	TupleDesc	tupdesc;
	groma_request req;
	groma_reply reply;
	Datum		result;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "groma_chat must return a composite type");
	tupdesc = BlessTupleDesc(tupdesc);
	img = PG_GETARG_BYTEA_PP(0);
	prompt = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (strlen(prompt) > GROMA_PROTO_MAX_TEXT)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("prompt of %zu bytes is over the limit of %d bytes", strlen(prompt), GROMA_PROTO_MAX_TEXT)));

	memset(&req, 0, sizeof(req));
	req.kind = GROMA_MSG_GENERATE;
	req.task = -1;
	req.text = prompt;
	req.max_new_tokens = groma_max_new_tokens;
	if (!PG_ARGISNULL(2))
		set_request_refer(&req, PG_GETARG_ARRAYTYPE_P(2));
	groma_client_require_registry();
	check_image_header(img);
	set_request_image(&req, img);

	groma_client_call(&req, &reply);
	/* the reply is malloc'd: build the result in palloc memory, free it, then return */
	PG_TRY();
	{
		result = answer_datum(tupdesc, &reply);
	}
	PG_FINALLY();
	{
		groma_reply_free(&reply);
	}
	PG_END_TRY();
	PG_RETURN_DATUM(result);
}
