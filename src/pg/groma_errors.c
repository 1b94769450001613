/*
 * groma_errors.c - the only translation from groma_status to ereport.
 */
#include "postgres.h"

#include <string.h>

#include "groma_pg.h"
#include "text_encoding.h"

/* Returns the SQLSTATE that fits a status code. */
static int
errcode_for_status(groma_status_code code)
{
	switch (code)
	{
		case GROMA_ERR_NOT_JPEG:
		case GROMA_ERR_CORRUPT:
		case GROMA_ERR_TRUNCATED:
			return ERRCODE_INVALID_BINARY_REPRESENTATION;
		case GROMA_ERR_UNSUPPORTED:
			return ERRCODE_FEATURE_NOT_SUPPORTED;
		case GROMA_ERR_LIMIT:
			return ERRCODE_PROGRAM_LIMIT_EXCEEDED;
		case GROMA_ERR_NO_MEMORY:
			return ERRCODE_OUT_OF_MEMORY;
		case GROMA_ERR_INVALID_ARGUMENT:
			return ERRCODE_INVALID_PARAMETER_VALUE;
		case GROMA_ERR_IO:
			return ERRCODE_IO_ERROR;
		case GROMA_ERR_DEVICE:
		case GROMA_ERR_DEVICE_LOST:
			return ERRCODE_SYSTEM_ERROR;
		case GROMA_ERR_CANCELLED:
			return ERRCODE_QUERY_CANCELED;
		case GROMA_ERR_BUSY:
			return ERRCODE_INSUFFICIENT_RESOURCES;
		case GROMA_ERR_UNAVAILABLE:
			return ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;
		case GROMA_ERR_PROTOCOL:
			return ERRCODE_PROTOCOL_VIOLATION;
		case GROMA_ERR_FORMAT:
		case GROMA_OK:
			break;
	}
	return ERRCODE_INTERNAL_ERROR;
}

/* Returns a detail sentence for a failed status, or NULL. */
static const char *
detail_for_status(const groma_status *st)
{
	switch (st->code)
	{
		case GROMA_ERR_NOT_JPEG:
			return "groma reads JPEG images only.";
		case GROMA_ERR_TRUNCATED:
			return "The image data ends before the JPEG stream does; it was probably cut short.";
		case GROMA_ERR_LIMIT:
			if (strstr(st->message, "groma-server's limit") != NULL)
				return "A request carries at most 256 MB of image data.";
			if (strstr(st->message, "scans") != NULL)
				return "The limit on scans keeps crafted progressive files from taking minutes to decode.";
			if (strstr(st->message, "pixels") != NULL)
				return "Raise groma.max_image_pixels to accept larger images.";
			return NULL;
		case GROMA_ERR_UNSUPPORTED:
			if (strstr(st->message, "JPEG") != NULL)
				return "groma decodes 8-bit baseline and progressive JPEG in grayscale, YCbCr or RGB.";
			return NULL;
		case GROMA_ERR_DEVICE_LOST:
			return "The accelerator is in an unrecoverable state; groma-server must be restarted to use it again.";
		case GROMA_ERR_CANCELLED:
			return "groma-server dropped the request before it finished.";
		default:
			return NULL;
	}
}

/* Raises ERROR for a failed status; returns on success. */
void
groma_pg_check(groma_status st)
{
	const char *detail;

	if (st.code == GROMA_OK)
		return;
	detail = detail_for_status(&st);
	ereport(ERROR,
			(errcode(errcode_for_status(st.code)),
			 errmsg("%s", groma_server_text(st.message)),
			 detail ? errdetail("%s", detail) : 0));
}

/* True for a status about the image itself (not a JPEG, damaged, unsupported, over a JPEG limit); see groma_pg.h. */
bool
groma_status_is_image_fault(const groma_status *st)
{
	switch (st->code)
	{
		case GROMA_ERR_NOT_JPEG:
		case GROMA_ERR_CORRUPT:
		case GROMA_ERR_TRUNCATED:
		case GROMA_ERR_UNSUPPORTED:
			return true;
		case GROMA_ERR_LIMIT:
			/* not the limits of the request's arguments: the model's context, the query's length, the KV pool */
			return strncmp(st->message, "JPEG", 4) == 0 || strncmp(st->message, "image", 5) == 0;
		default:
			return false;
	}
}
