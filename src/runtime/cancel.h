/*
 * cancel.h - a per-thread cancel flag that long model work polls at stage
 * boundaries, decode steps and weight binds.  groma-server's scheduler
 * points it at the running requests' flags, and at the shutdown's flag
 * while the model loads; everywhere else it is unset and never fires.
 */
#ifndef GROMA_CANCEL_H
#define GROMA_CANCEL_H

#include <stdbool.h>

#include "status.h"

/* Makes the calling thread's model work watch *flag (non-zero: stop); NULL stops watching. */
void		groma_cancel_watch(const volatile int *flag);

/*
 * Makes the calling thread's model work watch n flags at once, for work
 * shared by n requests: it stops only when every one of them is set.  The
 * array must stay valid until the next groma_cancel_watch call.
 */
void		groma_cancel_watch_all(const volatile int *const *flags, int n);

/* Returns true when the calling thread's watched flag is set. */
bool		groma_cancel_requested(void);

/* Returns GROMA_ERR_CANCELLED when the watched flag is set, else success. */
groma_status groma_cancel_check(void);

#endif							/* GROMA_CANCEL_H */
