/*
 * model_functions.h - the argument checks, request fillers and result
 * builders of model_functions.c that the array calls (array_functions.c)
 * share with the one-image functions.
 */
#ifndef GROMA_MODEL_FUNCTIONS_H
#define GROMA_MODEL_FUNCTIONS_H

#include "postgres.h"

#include "access/tupdesc.h"
#include "fmgr.h"

#include "groma_pg.h"
#include "server_client.h"

/* Returns a prompt or phrase argument as UTF-8; raises ERROR when it is empty or over max bytes; what names it. */
char	   *groma_text_argument(text *t, const char *what, size_t max);

/* Returns the status of the checks of img's header made before it is sent (size, pixels, colour space); fills info. */
groma_status groma_check_image_header(bytea *img, groma_jpeg_info *info);

/* Checks the server and img's header (before anything is sent), points req at its bytes; returns the header facts. */
groma_jpeg_info groma_set_request_image(groma_request *req, bytea *img);

/* Returns NULL when a GENERATE reply converts into the database's encoding, else why not (palloc'd). */
char	   *groma_reply_lacks(const groma_reply *reply);

/* Builds a groma_answer (its blessed row type tupdesc) from a GENERATE reply. */
Datum		groma_answer_from_reply(TupleDesc tupdesc, const groma_reply *reply);

/* Returns the boxes of all of a GENERATE reply's groundings in order, each box once, as a box[] Datum. */
Datum		groma_ground_boxes(const groma_reply *reply);

/* Stores a REGIONS reply's rows in the function's tuplestore, after the image's subscript ord when with_ord. */
void		groma_put_region_rows(FunctionCallInfo fcinfo, const groma_reply *reply, bool with_ord, int ord);

/* Refuses region cuts out of range: max_regions below 1, min_score outside [0, 1]. */
void		groma_check_region_cuts(int32 max_regions, float4 min_score);

/* Fills a REGIONS request for img with the (checked) cuts; the image header is checked too. */
void		groma_set_regions_request(groma_request *req, bytea *img, int32 max_regions, float4 min_score,
									  bool want_embeddings);

#endif							/* GROMA_MODEL_FUNCTIONS_H */
