/*
 * cancel.c - the per-thread cancel flag (cancel.h).
 */
#include "cancel.h"

#include <stddef.h>

static __thread const volatile int *watched_flag;

/* Sets the flag the calling thread watches; see cancel.h. */
void
groma_cancel_watch(const volatile int *flag)
{
	watched_flag = flag;
}

/* Reads the watched flag; see cancel.h. */
bool
groma_cancel_requested(void)
{
	return watched_flag != NULL && __atomic_load_n(watched_flag, __ATOMIC_RELAXED) != 0;
}

/* Turns the watched flag into a status; see cancel.h. */
groma_status
groma_cancel_check(void)
{
	if (groma_cancel_requested())
		return groma_error(GROMA_ERR_CANCELLED, "the request was cancelled");
	return groma_ok();
}
