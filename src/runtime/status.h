/*
 * status.h - status codes and messages returned by every groma library call.
 *
 * Nothing below src/pg/ raises errors or exits: functions return a
 * groma_status whose code says what kind of failure happened and whose
 * message says, in one lower-case phrase, what exactly went wrong.
 */
#ifndef GROMA_STATUS_H
#define GROMA_STATUS_H

#include <stdarg.h>

typedef enum groma_status_code
{
	GROMA_OK = 0,
	GROMA_ERR_INVALID_ARGUMENT,	/* caller passed a bad value */
	GROMA_ERR_NOT_JPEG,			/* bytes are not a JPEG stream at all */
	GROMA_ERR_CORRUPT,			/* a JPEG stream that cannot be decoded */
	GROMA_ERR_TRUNCATED,		/* a JPEG stream that ends too early */
	GROMA_ERR_UNSUPPORTED,		/* valid but outside what groma handles */
	GROMA_ERR_LIMIT,			/* over a configured or built-in limit */
	GROMA_ERR_NO_MEMORY,		/* an allocation failed */
	GROMA_ERR_IO,				/* reading or writing a file failed */
	GROMA_ERR_FORMAT,			/* a data file (safetensors, json) is malformed */
	GROMA_ERR_DEVICE,			/* the accelerator reported an error */
	GROMA_ERR_DEVICE_LOST,		/* the accelerator is in an unrecoverable state: restart the process */
	GROMA_ERR_CANCELLED,		/* the requester cancelled the work */
	GROMA_ERR_BUSY,				/* groma-server's queue is full */
	GROMA_ERR_UNAVAILABLE,		/* groma-server has no model to run (starting, loading, none, failed, stopping) */
	GROMA_ERR_PROTOCOL			/* a frame that does not parse, or another protocol version */
} groma_status_code;

#define GROMA_STATUS_MESSAGE_LEN 256

typedef struct groma_status
{
	groma_status_code code;
	char		message[GROMA_STATUS_MESSAGE_LEN];
} groma_status;

/* Returns a success status with an empty message. */
groma_status groma_ok(void);

/* Returns a failure status with a printf-formatted message (truncated to fit). */
groma_status groma_error(groma_status_code code, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));

/* Returns a stable lower-case name for a code, for logs and CLI output. */
const char *groma_status_code_name(groma_status_code code);

/* Evaluates a groma_status expression and returns it from the caller on failure. */
#define GROMA_TRY(expr) do { groma_status try_ = (expr); if (try_.code != GROMA_OK) return try_; } while (0)

#endif							/* GROMA_STATUS_H */
