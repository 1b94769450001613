/*
 * cancel.h - a per-thread cancel flag that long model work polls at stage
 * boundaries and decode steps.  groma-server's scheduler points it at the
 * running request's flag; everywhere else it is unset and never fires.
 */
#ifndef GROMA_CANCEL_H
#define GROMA_CANCEL_H

#include <stdbool.h>

#include "status.h"

/* Makes the calling thread's model work watch *flag (non-zero: stop); NULL stops watching. */
void		groma_cancel_watch(const volatile int *flag);

/* Returns true when the calling thread's watched flag is set. */
bool		groma_cancel_requested(void);

/* Returns GROMA_ERR_CANCELLED when the watched flag is set, else success. */
groma_status groma_cancel_check(void);

#endif							/* GROMA_CANCEL_H */
