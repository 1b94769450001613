/*
 * status.c - constructing status values.
 */
#include "status.h"

#include <stdio.h>
#include <string.h>

/* Returns a success status with an empty message. */
groma_status
groma_ok(void)
{
	groma_status s;

	s.code = GROMA_OK;
	s.message[0] = '\0';
	return s;
}

/* Returns a failure status with a printf-formatted message (truncated to fit). */
groma_status
groma_error(groma_status_code code, const char *fmt,...)
{
	groma_status s;
	va_list		ap;

	s.code = code;
	va_start(ap, fmt);
	vsnprintf(s.message, sizeof(s.message), fmt, ap);
	va_end(ap);
	return s;
}

/* Returns a stable lower-case name for a code, for logs and CLI output. */
const char *
groma_status_code_name(groma_status_code code)
{
	switch (code)
	{
		case GROMA_OK:
			return "ok";
		case GROMA_ERR_INVALID_ARGUMENT:
			return "invalid_argument";
		case GROMA_ERR_NOT_JPEG:
			return "not_jpeg";
		case GROMA_ERR_CORRUPT:
			return "corrupt";
		case GROMA_ERR_TRUNCATED:
			return "truncated";
		case GROMA_ERR_UNSUPPORTED:
			return "unsupported";
		case GROMA_ERR_LIMIT:
			return "limit";
		case GROMA_ERR_NO_MEMORY:
			return "no_memory";
		case GROMA_ERR_IO:
			return "io";
		case GROMA_ERR_FORMAT:
			return "format";
		case GROMA_ERR_DEVICE:
			return "device";
		case GROMA_ERR_DEVICE_LOST:
			return "device_lost";
		case GROMA_ERR_CANCELLED:
			return "cancelled";
		case GROMA_ERR_BUSY:
			return "busy";
		case GROMA_ERR_UNAVAILABLE:
			return "unavailable";
		case GROMA_ERR_PROTOCOL:
			return "protocol";
	}
	return "unknown";
}
