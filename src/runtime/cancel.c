/*
 * cancel.c - the per-thread cancel flag (cancel.h).
 */
#include "cancel.h"

#include <stddef.h>

static __thread const volatile int *const *watched_flags;	/* every one set: stop */
static __thread const volatile int *watched_one;	/* watched_flags' array for one flag */
static __thread int watched_count;

/* Sets the flag the calling thread watches; see cancel.h. */
void
groma_cancel_watch(const volatile int *flag)
{
	watched_one = flag;
	groma_cancel_watch_all(&watched_one, flag != NULL);
}

/* Sets the flags the calling thread watches together; see cancel.h. */
void
groma_cancel_watch_all(const volatile int *const *flags, int n)
{
	watched_flags = n > 0 ? flags : NULL;
	watched_count = n > 0 ? n : 0;
}

/* Reads the watched flags: true when there are some and every one is set; see cancel.h. */
bool
groma_cancel_requested(void)
{
	for (int i = 0; i < watched_count; i++)
		if (__atomic_load_n(watched_flags[i], __ATOMIC_RELAXED) == 0)
			return false;
	return watched_count > 0;
}

/* Turns the watched flag into a status; see cancel.h. */
groma_status
groma_cancel_check(void)
{
	if (groma_cancel_requested())
		return groma_error(GROMA_ERR_CANCELLED, "the request was cancelled");
	return groma_ok();
}
