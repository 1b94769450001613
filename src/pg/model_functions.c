/*
 * model_functions.c - SQL functions answered by groma-server's model, one
 * image a call: groma_ping(), groma_chat, groma_caption, groma_ground,
 * groma_describe, groma_regions and groma_proposals, and groma_draw (which
 * needs no model), all on one path: arguments checked in the backend, one
 * request, the result built from the reply (model_functions.h: the checks
 * and builders the array calls share).
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/geo_decls.h"
#include "utils/lsyscache.h"
#include "utils/tuplestore.h"
#include "utils/typcache.h"

#include "groma_pg.h"
#include "model_functions.h"
#include "text_encoding.h"
#include "server_client.h"
#include "../image/draw.h"
#include "../model/refer_box.h"
#include "../text/prompt.h"

PG_FUNCTION_INFO_V1(groma_ping);
PG_FUNCTION_INFO_V1(groma_chat);
PG_FUNCTION_INFO_V1(groma_caption);
PG_FUNCTION_INFO_V1(groma_ground);
PG_FUNCTION_INFO_V1(groma_describe);
PG_FUNCTION_INFO_V1(groma_regions);
PG_FUNCTION_INFO_V1(groma_proposals);
PG_FUNCTION_INFO_V1(groma_draw);

/* Returns the round trip of a PING to a groma-server, in milliseconds. */
Datum
groma_ping(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(groma_client_ping());
}

/* Returns a prompt or phrase argument as UTF-8; raises ERROR when it is empty or over max bytes; what names it. */
char *
groma_text_argument(text *t, const char *what, size_t max)
{
	if (VARSIZE_ANY_EXHDR(t) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_ZERO_LENGTH_CHARACTER_STRING),
				 errmsg("%s must not be empty", what)));
	return groma_text_to_utf8(t, what, max);
}

/*
 * Returns the status of the checks of an image's header made before it is
 * sent anywhere: the header parses, the image is within
 * groma.max_image_pixels, in a colour space groma decodes (not CMYK or
 * YCCK), and no larger than a request carries; fills info.
 */
groma_status
groma_check_image_header(bytea *img, groma_jpeg_info *info)
{
	groma_jpeg_limits limits = groma_pg_jpeg_limits();
	size_t		len = VARSIZE_ANY_EXHDR(img);

	GROMA_TRY(groma_jpeg_read_info((const uint8_t *) VARDATA_ANY(img), len, &limits, info));
	GROMA_TRY(groma_jpeg_check_colorspace(info));
	if (len > GROMA_PROTO_MAX_IMAGE)
		return groma_error(GROMA_ERR_LIMIT, "JPEG data of %zu bytes is over groma-server's limit of %u bytes", len,
						   (unsigned) GROMA_PROTO_MAX_IMAGE);
	return groma_ok();
}

/*
 * Checks that the server runs and the image's header (raising ERROR), then
 * points req at its bytes (not copied: the request is encoded before img
 * can go away) and returns its header facts.
 */
groma_jpeg_info
groma_set_request_image(groma_request *req, bytea *img)
{
	groma_jpeg_info info;

	groma_client_require_registry();
	groma_pg_check(groma_check_image_header(img, &info));
	req->image = (uint8_t *) VARDATA_ANY(img);
	req->image_len = (uint32_t) Min(VARSIZE_ANY_EXHDR(img), (Size) PG_UINT32_MAX);
	req->max_pixels = groma_max_image_pixels;
	return info;
}

/*
 * Appends a user box (a refer box or describe's area; what names it) to
 * req's refer boxes as pixel corners x1, y1, x2, y2, after checking that it
 * is finite, not empty, inside the image and not too small for the model.
 */
static void
add_refer_box(groma_request *req, const BOX *b, const char *what, const groma_jpeg_info *info)
{
	float		cxcywh[4];		/* the box as the model sees it (checked, not sent) */

	/* box keeps its upper-right corner in high, lower-left in low, whatever order it was written in */
	if (!isfinite(b->low.x) || !isfinite(b->low.y) || !isfinite(b->high.x) || !isfinite(b->high.y))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s has a coordinate that is not finite", what),
				 errdetail("Boxes are given in pixels of the image; NaN and infinity are not positions.")));
	if (!(b->high.x > b->low.x) || !(b->high.y > b->low.y))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is empty", what),
				 errdetail("A box needs a positive width and height; PostgreSQL's box orders its corners itself, so it cannot be inverted.")));
	if (b->low.x < 0 || b->low.y < 0 || b->high.x > info->width || b->high.y > info->height)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is not inside the image", what),
				 errdetail("The box (%s,%s),(%s,%s) must lie within x 0..%d and y 0..%d, the image's size in pixels.",
						   float8out_internal(b->high.x), float8out_internal(b->high.y),
						   float8out_internal(b->low.x), float8out_internal(b->low.y), info->width, info->height)));
	/* the same conversion the server makes: the only check left that it can fail is a box too thin */
	if (groma_refer_box_from_pixels(b->low.x, b->low.y, b->high.x, b->high.y, info->width, info->height,
									cxcywh).code != GROMA_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is too small for the model", what),
				 errdetail("In the model's 32-bit coordinates (fractions of the image's size) the box (%s,%s),(%s,%s) has no area.",
						   float8out_internal(b->high.x), float8out_internal(b->high.y),
						   float8out_internal(b->low.x), float8out_internal(b->low.y))));
	if (req->n_refer >= GROMA_PROTO_MAX_REFER)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("more than %d refer boxes", GROMA_PROTO_MAX_REFER)));
	req->refer[req->n_refer][0] = b->low.x;
	req->refer[req->n_refer][1] = b->low.y;
	req->refer[req->n_refer][2] = b->high.x;
	req->refer[req->n_refer][3] = b->high.y;
	req->n_refer++;
}

/* Refuses a refer box[] that is not one-dimensional, has NULLs or more boxes than the model takes; returns its boxes. */
static int
check_refer_array(ArrayType *refer, Datum **elems)
{
	bool	   *isnull;
	int			n;

	if (ARR_NDIM(refer) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("refer must be a one-dimensional array of boxes")));
	deconstruct_array(refer, BOXOID, sizeof(BOX), false, TYPALIGN_DOUBLE, elems, &isnull, &n);
	if (n > GROMA_PROTO_MAX_REFER)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%d refer boxes is over the limit of %d", n, GROMA_PROTO_MAX_REFER)));
	for (int i = 0; i < n; i++)
		if (isnull[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("refer box %d is NULL", i + 1),
					 errdetail("Every element of refer must be a box in pixels of the image.")));
	return n;
}

/* Returns a box in palloc'd memory from pixel corners x1, y1, x2, y2 (in any order). */
static BOX *
corners_box(const double *c)
{
	BOX		   *b = palloc(sizeof(BOX));

	b->high.x = Max(c[0], c[2]);
	b->high.y = Max(c[1], c[3]);
	b->low.x = Min(c[0], c[2]);
	b->low.y = Min(c[1], c[3]);
	return b;
}

/* Returns a box[] Datum of n boxes given as pixel corners [n][4]. */
static Datum
boxes_datum(const double *corners, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		elems[i] = BoxPGetDatum(corners_box(corners + 4 * i));
	return PointerGetDatum(construct_array(elems, n, BOXOID, sizeof(BOX), false, TYPALIGN_DOUBLE));
}

/*
 * Returns NULL when a GENERATE reply's text and grounded phrases all
 * convert into the database's encoding, else a sentence naming the first
 * character that does not.
 */
char *
groma_reply_lacks(const groma_reply *reply)
{
	pg_wchar	lacking;
	bool		fits = reply->text == NULL || groma_utf8_fits_database(reply->text, &lacking);

	for (int i = 0; fits && i < reply->n_groundings; i++)
		fits = reply->groundings[i].phrase == NULL || groma_utf8_fits_database(reply->groundings[i].phrase, &lacking);
	if (fits)
		return NULL;
	if (lacking == 0)
		return pstrdup("its answer is not valid UTF-8");
	return psprintf("its answer has the character U+%04X, which the database's encoding %s lacks",
					(unsigned int) lacking, GetDatabaseEncodingName());
}

/* Builds a groma_answer (its blessed row type tupdesc) from a GENERATE reply. */
Datum
groma_answer_from_reply(TupleDesc tupdesc, const groma_reply *reply)
{
	Oid			array_type;
	Oid			grounding_type;
	TupleDesc	gdesc;
	Datum	   *groundings;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	array_type = TupleDescAttr(tupdesc, 1)->atttypid;
	grounding_type = get_element_type(array_type);
	if (!OidIsValid(grounding_type))
		elog(ERROR, "groma_answer.groundings is not an array");
	gdesc = lookup_rowtype_tupdesc_copy(grounding_type, -1);
	groundings = palloc(sizeof(Datum) * Max(reply->n_groundings, 1));
	for (int i = 0; i < reply->n_groundings; i++)
	{
		const groma_reply_grounding *g = &reply->groundings[i];
		Datum		gvalues[4];
		bool		gnulls[4] = {false, false, false, false};

		gvalues[0] = groma_utf8_to_text(g->phrase ? g->phrase : "");
		gvalues[1] = Int32GetDatum(g->start);
		gvalues[2] = Int32GetDatum(g->stop);
		gvalues[3] = boxes_datum(g->boxes, g->n_boxes);
		groundings[i] = HeapTupleGetDatum(heap_form_tuple(gdesc, gvalues, gnulls));
	}
	get_typlenbyvalalign(grounding_type, &typlen, &typbyval, &typalign);
	values[0] = groma_utf8_to_text(reply->text ? reply->text : "");
	values[1] = PointerGetDatum(construct_array(groundings, reply->n_groundings, grounding_type,
												typlen, typbyval, typalign));
	return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
}

/* Builds the function's groma_answer result from a GENERATE reply. */
static Datum
answer_datum(FunctionCallInfo fcinfo, const groma_reply *reply)
{
	TupleDesc	tupdesc;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "function returning groma_answer called in a context that cannot accept it");
	return groma_answer_from_reply(BlessTupleDesc(tupdesc), reply);
}

/* Returns the boxes of all of a GENERATE reply's groundings in order, each box once, as a box[] Datum. */
Datum
groma_ground_boxes(const groma_reply *reply)
{
	int			total = 0,
				n = 0;
	double	   *corners;

	for (int i = 0; i < reply->n_groundings; i++)
		total += reply->groundings[i].n_boxes;
	corners = palloc(sizeof(double) * 4 * Max(total, 1));
	for (int i = 0; i < reply->n_groundings; i++)
		for (int k = 0; k < reply->groundings[i].n_boxes; k++)
		{
			const double *c = reply->groundings[i].boxes + 4 * k;
			bool		seen = false;

			for (int j = 0; j < n && !seen; j++)
				seen = memcmp(corners + 4 * j, c, sizeof(double) * 4) == 0;
			if (!seen)
				memcpy(corners + 4 * n++, c, sizeof(double) * 4);
		}
	return boxes_datum(corners, n);
}

/* Builds groma_ground's result: the boxes of all groundings in order, each box once. */
static Datum
ground_datum(FunctionCallInfo fcinfo, const groma_reply *reply)
{
	return groma_ground_boxes(reply);
}

/* Builds groma_describe's result: the answer's text. */
static Datum
text_datum(FunctionCallInfo fcinfo, const groma_reply *reply)
{
	return groma_utf8_to_text(reply->text ? reply->text : "");
}

/* Builds groma_proposals' result: the regions' boxes in score order. */
static Datum
proposals_datum(FunctionCallInfo fcinfo, const groma_reply *reply)
{
	return boxes_datum(reply->boxes, reply->n_regions);
}

/*
 * Stores a REGIONS reply's rows (idx from 1, area, score, embedding) in the
 * function's tuplestore, each after the image's subscript ord when
 * with_ord (groma_regions_many(bytea[])).
 */
void
groma_put_region_rows(FunctionCallInfo fcinfo, const groma_reply *reply, bool with_ord, int ord)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			at = with_ord ? 1 : 0;

	for (int i = 0; i < reply->n_regions; i++)
	{
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};
		Datum	   *embed = palloc(sizeof(Datum) * Max(reply->embed_dim, 1));

		for (int k = 0; k < reply->embed_dim; k++)
			embed[k] = Float4GetDatum(reply->embeddings[(size_t) i * reply->embed_dim + k]);
		values[0] = Int32GetDatum(ord);
		values[at] = Int32GetDatum(i + 1);
		values[at + 1] = BoxPGetDatum(corners_box(reply->boxes + 4 * i));
		values[at + 2] = Float4GetDatum(reply->scores[i]);
		values[at + 3] = PointerGetDatum(construct_array(embed, reply->embed_dim, FLOAT4OID, sizeof(float4), true,
														 TYPALIGN_INT));
		nulls[at + 3] = reply->embed_dim == 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		pfree(embed);
	}
}

/* Stores groma_regions' rows (idx from 1, area, score, embedding) in the function's tuplestore. */
static Datum
regions_rows(FunctionCallInfo fcinfo, const groma_reply *reply)
{
	groma_put_region_rows(fcinfo, reply, false, 0);
	return (Datum) 0;
}

/* Sends req, then builds the result from the reply with build and frees the reply (malloc'd) whatever happens. */
static Datum
call_and_build(FunctionCallInfo fcinfo, groma_request *req, Datum (*build) (FunctionCallInfo, const groma_reply *))
{
	groma_reply reply;
	Datum		result;

	groma_client_call(req, &reply);
	PG_TRY();
	{
		result = build(fcinfo, &reply);
	}
	PG_FINALLY();
	{
		groma_reply_free(&reply);
	}
	PG_END_TRY();
	return result;
}

/*
 * Answers a GENERATE request about img: a free prompt (task -1) or a task
 * with its phrase (text; NULL for none), with refer boxes from a box[]
 * (refer, may be NULL) or one box (area, may be NULL); the result is built
 * by build.  Every argument is checked before anything is sent.
 */
static Datum
generate(FunctionCallInfo fcinfo, bytea *img, int32 task, char *text, ArrayType *refer, const BOX *area,
		 Datum (*build) (FunctionCallInfo, const groma_reply *))
{
	groma_request req;
	groma_jpeg_info info;
	Datum	   *elems = NULL;
	int			n_refer = refer ? check_refer_array(refer, &elems) : 0;

	memset(&req, 0, sizeof(req));
	req.kind = GROMA_MSG_GENERATE;
	req.task = task;
	req.text = text;
	req.max_new_tokens = groma_max_new_tokens;
	info = groma_set_request_image(&req, img);
	for (int i = 0; i < n_refer; i++)
	{
		char		what[32];

		snprintf(what, sizeof(what), "refer box %d", i + 1);
		add_refer_box(&req, DatumGetBoxP(elems[i]), what, &info);
	}
	if (area)
		add_refer_box(&req, area, "area", &info);
	return call_and_build(fcinfo, &req, build);
}

/*
 * Returns the model's grounded answer (groma_answer) to a free prompt about
 * an image, optionally with refer boxes the prompt names as <refer_box>;
 * NULL when the image or the prompt is NULL.
 */
Datum
groma_chat(PG_FUNCTION_ARGS)
{
	char	   *prompt;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	prompt = groma_text_argument(PG_GETARG_TEXT_PP(1), "prompt", GROMA_MAX_QUERY_BYTES);
	PG_RETURN_DATUM(generate(fcinfo, PG_GETARG_BYTEA_PP(0), -1, prompt,
							 PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2), NULL, answer_datum));
}

/* Returns the model's grounded caption of an image, brief or detailed. */
Datum
groma_caption(PG_FUNCTION_ARGS)
{
	int32		task = PG_GETARG_BOOL(1) ? GROMA_TASK_CAPTION_DETAILED : GROMA_TASK_CAPTION;

	PG_RETURN_DATUM(generate(fcinfo, PG_GETARG_BYTEA_PP(0), task, NULL, NULL, NULL, answer_datum));
}

/* Returns the boxes the model grounds a phrase to (referring expression), in order, each once; possibly empty. */
Datum
groma_ground(PG_FUNCTION_ARGS)
{
	char	   *phrase = groma_text_argument(PG_GETARG_TEXT_PP(1), "phrase", GROMA_MAX_PHRASE_BYTES);

	PG_RETURN_DATUM(generate(fcinfo, PG_GETARG_BYTEA_PP(0), GROMA_TASK_GROUND, phrase, NULL, NULL, ground_datum));
}

/* Returns the model's description of a box of an image. */
Datum
groma_describe(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(generate(fcinfo, PG_GETARG_BYTEA_PP(0), GROMA_TASK_DESCRIBE, NULL, NULL, PG_GETARG_BOX_P(1),
							 text_datum));
}

/* Prints a float4 in the fewest digits that read back as it (as float4out does), palloc'd. */
static char *
shortest_float4(float4 f)
{
	char	   *buf = palloc(FLOAT_SHORTEST_DECIMAL_LEN);

	float_to_shortest_decimal_buf(f, buf);
	return buf;
}

/* Refuses region cuts out of range: max_regions below 1, min_score outside [0, 1]. */
void
groma_check_region_cuts(int32 max_regions, float4 min_score)
{
	if (max_regions < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_regions must be at least 1, not %d", max_regions),
				 errdetail("The model keeps at most its own limit of regions (max_region_num, 100 for Groma).")));
	if (!(min_score >= 0.0f && min_score <= 1.0f))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("min_score must be between 0 and 1, not %s", shortest_float4(min_score)),
				 errdetail("Region scores are probabilities; only regions scoring above min_score are returned.")));
}

/* Fills a REGIONS request for img with the (checked) cuts; the image header is checked too. */
void
groma_set_regions_request(groma_request *req, bytea *img, int32 max_regions, float4 min_score, bool want_embeddings)
{
	memset(req, 0, sizeof(*req));
	req->kind = GROMA_MSG_REGIONS;
	req->task = -1;
	req->max_regions = max_regions;
	req->min_score = min_score;
	req->want_embeddings = want_embeddings;
	groma_set_request_image(req, img);
}

/* Sends a REGIONS request for img with the cuts max_regions and min_score, checked first; build makes the result. */
static Datum
regions(FunctionCallInfo fcinfo, bool want_embeddings, Datum (*build) (FunctionCallInfo, const groma_reply *))
{
	groma_request req;

	groma_check_region_cuts(PG_GETARG_INT32(1), PG_GETARG_FLOAT4(2));
	groma_set_regions_request(&req, PG_GETARG_BYTEA_PP(0), PG_GETARG_INT32(1), PG_GETARG_FLOAT4(2), want_embeddings);
	return call_and_build(fcinfo, &req, build);
}

/* Returns the regions the model keeps (idx, area, score, embedding), in score order, as a set. */
Datum
groma_regions(PG_FUNCTION_ARGS)
{
	InitMaterializedSRF(fcinfo, 0);
	regions(fcinfo, true, regions_rows);
	return (Datum) 0;
}

/* Returns the boxes of the regions the model keeps, in score order. */
Datum
groma_proposals(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(regions(fcinfo, false, proposals_datum));
}

/* Returns the drawn JPEG of a DRAW reply as bytea. */
static Datum
jpeg_datum(FunctionCallInfo fcinfo, const groma_reply *reply)
{
	bytea	   *out = palloc(VARHDRSZ + reply->jpeg_len);

	SET_VARSIZE(out, VARHDRSZ + reply->jpeg_len);
	memcpy(VARDATA(out), reply->jpeg, reply->jpeg_len);
	return PointerGetDatum(out);
}

/*
 * Reads draw's labels (NULL: none) into req, one per box: the array must
 * be one-dimensional with as many elements as boxes; a NULL element is a
 * box without a label.
 */
static void
set_draw_labels(groma_request *req, ArrayType *labels, int n_boxes)
{
	Datum	   *elems;
	bool	   *isnull;
	int			n;

	if (ARR_NDIM(labels) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("labels must be a one-dimensional array of text")));
	deconstruct_array(labels, TEXTOID, -1, false, TYPALIGN_INT, &elems, &isnull, &n);
	if (n != n_boxes)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%d labels for %d boxes", n, n_boxes),
				 errdetail("labels must have one element per box (NULL for a box without a label), or be NULL.")));
	req->draw_labels = palloc0(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		char		what[32];

		snprintf(what, sizeof(what), "label %d", i + 1);
		req->draw_labels[i] = isnull[i] ? "" : groma_text_to_utf8(DatumGetTextPP(elems[i]), what, GROMA_PROTO_MAX_TEXT);
	}
}

/* Returns img as a JPEG with boxes drawn in distinct colours and, when given, a label per box. */
Datum
groma_draw(PG_FUNCTION_ARGS)
{
	groma_request req = {.kind = GROMA_MSG_DRAW, .task = -1, .min_score = -1};
	ArrayType  *boxes;
	Datum	   *elems;
	bool	   *isnull;
	int			n;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	groma_set_request_image(&req, PG_GETARG_BYTEA_PP(0));
	boxes = PG_GETARG_ARRAYTYPE_P(1);
	if (ARR_NDIM(boxes) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("boxes must be a one-dimensional array of boxes")));
	deconstruct_array(boxes, BOXOID, sizeof(BOX), false, TYPALIGN_DOUBLE, &elems, &isnull, &n);
	if (n > GROMA_DRAW_MAX_BOXES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%d boxes is over the limit of %d boxes drawn at once", n, GROMA_DRAW_MAX_BOXES)));
	req.n_draw = n;
	req.draw_boxes = palloc(sizeof(double) * 4 * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		const BOX  *b = DatumGetBoxP(elems[i]);

		if (isnull[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("box %d is NULL", i + 1),
					 errdetail("Every element of boxes must be a box in pixels of the image.")));
		req.draw_boxes[4 * i + 0] = b->low.x;
		req.draw_boxes[4 * i + 1] = b->low.y;
		req.draw_boxes[4 * i + 2] = b->high.x;
		req.draw_boxes[4 * i + 3] = b->high.y;
	}
	if (!PG_ARGISNULL(2))
		set_draw_labels(&req, PG_GETARG_ARRAYTYPE_P(2), n);
	PG_RETURN_DATUM(call_and_build(fcinfo, &req, jpeg_datum));
}
