/*
 * array_functions.c - the array calls groma_caption_many,
 * groma_chat_many, groma_ground_many and groma_regions_many: the one-image
 * functions over an array of images (bytea[]), each
 * image's request checked first, then groma.bulk_in_flight of them in
 * flight at once (so groma-server batches them), each answer kept with its
 * image's subscript.  The one-image functions are in model_functions.c.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/tuplestore.h"
#include "utils/typcache.h"

#include "bulk_progress.h"
#include "model_functions.h"
#include "text_encoding.h"
#include "../text/prompt.h"

PG_FUNCTION_INFO_V1(groma_caption_array);
PG_FUNCTION_INFO_V1(groma_caption_chunk);
PG_FUNCTION_INFO_V1(groma_caption_chunk_answered);
PG_FUNCTION_INFO_V1(groma_chat_array);
PG_FUNCTION_INFO_V1(groma_ground_array);
PG_FUNCTION_INFO_V1(groma_regions_array);

/* The most elements (NULLs included) an array call takes. */
#define GROMA_MAX_ARRAY_IMAGES 100000

/* How long a chunk of groma_caption_table waits at most for a groma-server being restarted or loading. */
#define CHUNK_AWAIT_SERVER_MS (5 * 60 * 1000)

/* Which image of an array call is being checked or answered, for the error context. */
typedef struct array_call_position
{
	int			lbound;			/* the array's first subscript */
	volatile int current;		/* the image's index from 0, or -1 */
} array_call_position;

/*
 * Adds "imgs[K]" to an error raised about one image of an array call: one
 * the image itself caused (not a JPEG, damaged, unsupported, too large),
 * not one of the server or the arguments that its request met first.
 */
static void
array_call_context(void *arg)
{
	array_call_position *at = arg;
	int			code = geterrcode();

	if (at->current >= 0 && (code == ERRCODE_INVALID_BINARY_REPRESENTATION || code == ERRCODE_FEATURE_NOT_SUPPORTED ||
							 code == ERRCODE_PROGRAM_LIMIT_EXCEEDED))
		errcontext("the image imgs[%d] of the array", at->lbound + at->current);
}

/*
 * Refuses an imgs array of more than one dimension or over
 * GROMA_MAX_ARRAY_IMAGES elements; returns its elements (and NULL flags)
 * and their number.
 */
static int
array_images(ArrayType *imgs, Datum **elems, bool **isnull)
{
	int			n;

	if (ARR_NDIM(imgs) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("imgs must be a one-dimensional array of images")));
	if (ArrayGetNItems(ARR_NDIM(imgs), ARR_DIMS(imgs)) > GROMA_MAX_ARRAY_IMAGES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("an array of %d images is over the limit of %d images a call",
						ArrayGetNItems(ARR_NDIM(imgs), ARR_DIMS(imgs)), GROMA_MAX_ARRAY_IMAGES),
				 errdetail("An array call keeps every image's request and answer in memory until it returns."),
				 errhint("Pass the images in smaller arrays, or caption a table with groma_caption_table.")));
	deconstruct_array(imgs, BYTEAOID, -1, false, TYPALIGN_INT, elems, isnull, &n);
	return n;
}

/*
 * Sends the array call's requests (none for NULL images) with
 * groma.bulk_in_flight in flight: every image header is checked first by
 * set_image(reqs[i], img, arg), then the replies are stored in replies
 * (palloc'd, n; free them with free_replies); an error names the image it
 * is about.  work names the call in groma_progress.  With faults (n
 * statuses, zeroed: groma_caption_table's chunks), an image the model
 * cannot take (its header's checks, or groma-server's) does not fail the
 * call: its status is kept in faults[i] and its reply is empty or failed;
 * and a groma-server on its way (restarting, loading) is waited for first,
 * as is one that ends before it reads a request (then sent again), up to
 * CHUNK_AWAIT_SERVER_MS or groma.request_timeout when that is less.  Plain
 * array calls wait so for groma.restart_wait (0: not at all).  alone:
 * the call captions a lost chunk's rows one at a time (for groma_progress).
 */
static groma_reply *
call_array(ArrayType *imgs, Datum *elems, bool *isnull, int n, groma_array_work work,
		   void (*set_image) (groma_request *, bytea *, void *), void *arg, groma_status *faults, bool alone)
{
	array_call_position at = {ARR_LBOUND(imgs)[0], -1};
	ErrorContextCallback context = {.previous = error_context_stack, .callback = array_call_context, .arg = &at};
	groma_request **reqs = palloc0(sizeof(groma_request *) * n);
	groma_reply *replies = palloc(sizeof(groma_reply) * n);
	bool		registry_checked = false;
	int			n_requests = 0;
	int			await_ms = faults == NULL ? groma_restart_wait : groma_request_timeout > 0 ?
		Min(groma_request_timeout, CHUNK_AWAIT_SERVER_MS) : CHUNK_AWAIT_SERVER_MS;

	error_context_stack = &context;
	for (int i = 0; i < n; i++)
		if (!isnull[i])
		{
			bytea	   *img = DatumGetByteaPP(elems[i]);

			/* the server is checked before the first image's header (an array of NULLs needs none) */
			if (!registry_checked)
			{
				groma_client_require_registry();
				if (await_ms > 0)
					(void) groma_client_await_server(await_ms, true);
			}
			registry_checked = true;
			at.current = i;
			if (faults != NULL)
			{
				groma_jpeg_info info;

				faults[i] = groma_check_image_header(img, &info);
				if (groma_status_is_image_fault(&faults[i]))
					continue;
			}
			reqs[i] = palloc0(sizeof(groma_request));
			set_image(reqs[i], img, arg);
			n_requests++;
		}
	at.current = -1;
	/* groma_progress counts the requests sent (NULL images and those refused by their header get no answer) */
	groma_progress_chunk_start(n_requests, work, alone);
	groma_client_call_many(reqs, n, replies, groma_bulk_in_flight, faults != NULL, await_ms, &at.current);
	groma_progress_chunk_end();
	error_context_stack = context.previous;
	for (int i = 0; faults != NULL && i < n; i++)
		if (reqs[i] != NULL && replies[i].status.code != GROMA_OK)
			faults[i] = replies[i].status;
	return replies;
}

/* Frees the replies (malloc'd inside) of an array call's non-NULL images. */
static void
free_replies(groma_reply *replies, const bool *isnull, int n)
{
	for (int i = 0; i < n; i++)
		if (!isnull[i])
			groma_reply_free(&replies[i]);
}

/*
 * What every GENERATE request of an array call asks: a task (or -1, a free
 * prompt), its text (or NULL), and whether each runs in model calls of its
 * own (alone).
 */
typedef struct generate_job
{
	int32		task;
	char	   *text;
	bool		alone;
} generate_job;

/* Fills a GENERATE request for one image of an array call (arg: its generate_job). */
static void
set_generate_request(groma_request *req, bytea *img, void *arg)
{
	const generate_job *job = arg;

	req->kind = GROMA_MSG_GENERATE;
	req->task = job->task;
	req->text = job->text;
	req->max_new_tokens = groma_max_new_tokens;
	req->alone = job->alone;
	groma_set_request_image(req, img);
}

/*
 * Returns the grounded answers (groma_answer[], answer_type its element) of
 * a GENERATE job over the array of images imgs, answers[k] for imgs[k]
 * (NULL for a NULL image).  With failures, an image the model cannot take,
 * or whose answer the database's encoding cannot hold, gets a NULL answer
 * and its reason in (*failures)[k] (a text[] with imgs' bounds, NULL where
 * nothing failed) instead of failing the call.
 */
static ArrayType *
generate_answers(Oid answer_type, ArrayType *imgs, generate_job *job, groma_array_work work, ArrayType **failures)
{
	Datum	   *elems;
	bool	   *isnull;
	int			n = array_images(imgs, &elems, &isnull);
	groma_status *faults = failures != NULL ? palloc0(sizeof(groma_status) * Max(n, 1)) : NULL;
	groma_reply *replies;
	Datum	   *answers;
	bool	   *answer_null;
	Datum	   *reasons;
	bool	   *reason_null;
	int			dims[1];
	int			lbs[1];
	int16		typlen;
	bool		typbyval;
	char		typalign;

	if (n == 0)
	{
		if (failures != NULL)
			*failures = construct_empty_array(TEXTOID);
		return construct_empty_array(answer_type);
	}
	replies = call_array(imgs, elems, isnull, n, work, set_generate_request, job, faults, job->alone);
	answers = palloc(sizeof(Datum) * n);
	answer_null = palloc(sizeof(bool) * n);
	reasons = palloc0(sizeof(Datum) * n);
	reason_null = palloc(sizeof(bool) * n);
	PG_TRY();
	{
		TupleDesc	tupdesc = BlessTupleDesc(lookup_rowtype_tupdesc_copy(answer_type, -1));

		for (int i = 0; i < n; i++)
		{
			const char *reason = NULL;

			if (faults != NULL && !isnull[i] && faults[i].code != GROMA_OK)
				reason = groma_server_text(faults[i].message);
			else if (faults != NULL && !isnull[i])
				reason = groma_reply_lacks(&replies[i]);
			answer_null[i] = isnull[i] || reason != NULL;
			answers[i] = answer_null[i] ? (Datum) 0 : groma_answer_from_reply(tupdesc, &replies[i]);
			reason_null[i] = reason == NULL;
			if (reason != NULL)
				reasons[i] = CStringGetTextDatum(reason);
		}
	}
	PG_FINALLY();
	{
		free_replies(replies, isnull, n);
	}
	PG_END_TRY();
	dims[0] = n;
	lbs[0] = ARR_LBOUND(imgs)[0];	/* answers[k] answers imgs[k]; an empty array has no bounds to read */
	if (failures != NULL)
		*failures = construct_md_array(reasons, reason_null, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT);
	get_typlenbyvalalign(answer_type, &typlen, &typbyval, &typalign);
	return construct_md_array(answers, answer_null, 1, dims, lbs, answer_type, typlen, typbyval, typalign);
}

/* Returns the answers (groma_answer[]) of a GENERATE job over an array of images, for an array call's result. */
static Datum
answers_array(FunctionCallInfo fcinfo, ArrayType *imgs, generate_job *job, groma_array_work work)
{
	Oid			answer_type = get_element_type(get_fn_expr_rettype(fcinfo->flinfo));

	if (!OidIsValid(answer_type))
		elog(ERROR, "an array call must return an array of groma_answer");
	return PointerGetDatum(generate_answers(answer_type, imgs, job, work, NULL));
}

/*
 * Returns the grounded captions of an array of images, in the same order
 * (NULL for a NULL image).  Every image header is checked before anything
 * is sent.
 */
Datum
groma_caption_array(PG_FUNCTION_ARGS)
{
	generate_job job = {PG_GETARG_BOOL(1) ? GROMA_TASK_CAPTION_DETAILED : GROMA_TASK_CAPTION, NULL};

	PG_RETURN_DATUM(answers_array(fcinfo, PG_GETARG_ARRAYTYPE_P(0), &job, GROMA_ARRAY_CAPTIONS));
}

/*
 * groma_caption_table's call for one chunk: the grounded captions of an
 * array of images as groma_caption_many returns them (answers), except that
 * an image the model cannot take, or whose caption the database's encoding
 * cannot hold, gets a NULL answer and its reason in failures (same
 * subscript) instead of failing the call.  With alone, each image runs in
 * model calls of its own on groma-server, so that losing the server there
 * blames that image only.
 */
Datum
groma_caption_chunk(PG_FUNCTION_ARGS)
{
	generate_job job = {PG_GETARG_BOOL(1) ? GROMA_TASK_CAPTION_DETAILED : GROMA_TASK_CAPTION, NULL,
		PG_NARGS() > 2 && PG_GETARG_BOOL(2)};
	TupleDesc	tupdesc;
	Oid			answer_type;
	ArrayType  *failures;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE || tupdesc->natts != 2)
		elog(ERROR, "groma_caption_chunk must return (answers groma_answer[], failures text[])");
	answer_type = get_element_type(TupleDescAttr(tupdesc, 0)->atttypid);
	if (!OidIsValid(answer_type))
		elog(ERROR, "groma_caption_chunk's answers must be an array of groma_answer");
	values[0] = PointerGetDatum(generate_answers(answer_type, PG_GETARG_ARRAYTYPE_P(0), &job, GROMA_ARRAY_CAPTIONS,
												 &failures));
	values[1] = PointerGetDatum(failures);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/*
 * groma_caption_table's question after a chunk failed with its server
 * (58000): the subscripts (from 1) of the chunk's images that were
 * answered before (their answers thrown away with the error: those images
 * did not end the server); NULL when the last groma_caption_chunk did not
 * fail while it sent its requests.
 */
Datum
groma_caption_chunk_answered(PG_FUNCTION_ARGS)
{
	const int  *reqs;
	int			n = groma_client_answered_before_failure(&reqs);
	Datum	   *subscripts;

	if (n < 0)
		PG_RETURN_NULL();
	subscripts = palloc(sizeof(Datum) * Max(n, 1));
	for (int i = 0; i < n; i++)
		subscripts[i] = Int32GetDatum(reqs[i] + 1);
	PG_RETURN_ARRAYTYPE_P(construct_array(subscripts, n, INT4OID, sizeof(int32), true, TYPALIGN_INT));
}

/*
 * Returns the model's grounded answers to one prompt about each image of
 * an array, in the same order (NULL for a NULL image).  The prompt and
 * every image header are checked before anything is sent.
 */
Datum
groma_chat_array(PG_FUNCTION_ARGS)
{
	generate_job job = {-1, groma_text_argument(PG_GETARG_TEXT_PP(1), "prompt", GROMA_MAX_QUERY_BYTES)};

	PG_RETURN_DATUM(answers_array(fcinfo, PG_GETARG_ARRAYTYPE_P(0), &job, GROMA_ARRAY_ANSWERS));
}

/*
 * Returns, for each image of an array (ord, its subscript), the boxes the
 * model grounds a phrase to, as groma_ground does; NULL boxes for a NULL
 * image.  The phrase and every image header are checked before anything is
 * sent.
 */
Datum
groma_ground_array(PG_FUNCTION_ARGS)
{
	ArrayType  *imgs = PG_GETARG_ARRAYTYPE_P(0);
	generate_job job = {GROMA_TASK_GROUND, groma_text_argument(PG_GETARG_TEXT_PP(1), "phrase", GROMA_MAX_PHRASE_BYTES)};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum	   *elems;
	bool	   *isnull;
	int			n;
	groma_reply *replies;

	InitMaterializedSRF(fcinfo, 0);
	n = array_images(imgs, &elems, &isnull);
	if (n == 0)
		return (Datum) 0;
	replies = call_array(imgs, elems, isnull, n, GROMA_ARRAY_GROUNDING, set_generate_request, &job, NULL, false);
	PG_TRY();
	{
		for (int i = 0; i < n; i++)
		{
			Datum		values[2] = {Int32GetDatum(ARR_LBOUND(imgs)[0] + i), (Datum) 0};
			bool		nulls[2] = {false, isnull[i]};

			if (!isnull[i])
				values[1] = groma_ground_boxes(&replies[i]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	PG_FINALLY();
	{
		free_replies(replies, isnull, n);
	}
	PG_END_TRY();
	return (Datum) 0;
}

/* The cuts of groma_regions_many(bytea[]), for each of its requests. */
typedef struct region_cuts
{
	int32		max_regions;
	float4		min_score;
} region_cuts;

/* Fills a REGIONS request for one image of groma_regions_many(bytea[]) (arg: its region_cuts). */
static void
set_array_regions_request(groma_request *req, bytea *img, void *arg)
{
	const region_cuts *cuts = arg;

	groma_set_regions_request(req, img, cuts->max_regions, cuts->min_score, true);
}

/*
 * Returns the regions of an array of images as a set (ord, the image's
 * subscript in imgs, then groma_regions' columns); a NULL image has no
 * rows.  Every argument and image header is checked before anything is
 * sent.
 */
Datum
groma_regions_array(PG_FUNCTION_ARGS)
{
	ArrayType  *imgs = PG_GETARG_ARRAYTYPE_P(0);
	region_cuts cuts = {PG_GETARG_INT32(1), PG_GETARG_FLOAT4(2)};
	Datum	   *elems;
	bool	   *isnull;
	int			n;
	groma_reply *replies;

	InitMaterializedSRF(fcinfo, 0);
	n = array_images(imgs, &elems, &isnull);
	groma_check_region_cuts(cuts.max_regions, cuts.min_score);
	if (n == 0)
		return (Datum) 0;
	replies = call_array(imgs, elems, isnull, n, GROMA_ARRAY_REGIONS, set_array_regions_request, &cuts, NULL, false);
	PG_TRY();
	{
		for (int i = 0; i < n; i++)
			if (!isnull[i])
				groma_put_region_rows(fcinfo, &replies[i], true, ARR_LBOUND(imgs)[0] + i);
	}
	PG_FINALLY();
	{
		free_replies(replies, isnull, n);
	}
	PG_END_TRY();
	return (Datum) 0;
}
