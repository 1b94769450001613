/*
 * server_await.c - waiting for a groma-server that is on its way: being
 * restarted after an exit, starting, or loading its model.  Bulk
 * captioning (groma_caption_table) waits here before each chunk, so a
 * server lost in the middle of a table is waited for instead of ending the
 * job; single and array calls wait here only with groma.restart_wait (by
 * default they say at once that the server is restarting or loading).
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/timestamp.h"

#include "bulk_progress.h"
#include "groma_pg.h"
#include "server_client.h"
#include "server_registry.h"

/* How often the wait looks at the registry again. */
#define AWAIT_POLL_MS 100

/* What a slot promises a call that may wait for it. */
typedef enum slot_outlook
{
	SLOT_TAKES_CALLS,			/* runs, and is not known to be unable to run models */
	SLOT_ON_ITS_WAY,			/* restarting, starting, loading, or ending (to be started again) */
	SLOT_OUT					/* failed to load, suspended, or not run at all */
} slot_outlook;

/*
 * Returns what snap's slot promises a call (its beacon read only when the
 * launcher looked within the last second); one that needs no model (an
 * image check, a drawing) is taken by a server still starting or loading.
 */
static slot_outlook
outlook_of(const groma_server_slot *snap, bool needs_model)
{
	/* its exit is recorded a moment before the launcher says it waits to start it again */
	if (snap->pid != 0 && snap->last_exit_pid == snap->pid)
		return SLOT_ON_ITS_WAY;
	switch (snap->state)
	{
		case GROMA_SLOT_STARTING:
		case GROMA_SLOT_BACKOFF:
		case GROMA_SLOT_STOPPING:
			return SLOT_ON_ITS_WAY;
		case GROMA_SLOT_STOPPED:
			/* (the launcher starts it, unless the cluster is shutting down: then this backend ends too) */
			return groma_registry_shared->launcher_running ? SLOT_ON_ITS_WAY : SLOT_OUT;
		case GROMA_SLOT_RUNNING:
			if (snap->hung_exiting)
				return SLOT_ON_ITS_WAY;
			if (snap->suspended_since != 0)
				return SLOT_OUT;
			/* (without a fresh look nothing says it cannot run models: the call finds out) */
			if (!groma_client_known_unready(snap))
				return SLOT_TAKES_CALLS;
			if (snap->server_state == GROMA_SERVER_STOPPING)
				return SLOT_ON_ITS_WAY;
			/* (one starting, loading, or that failed to load its model still answers image checks) */
			if (!needs_model)
				return SLOT_TAKES_CALLS;
			if (snap->server_state == GROMA_SERVER_STARTING || snap->server_state == GROMA_SERVER_LOADING)
				return SLOT_ON_ITS_WAY;
			return SLOT_OUT;
		case GROMA_SLOT_UNUSED:
			break;
	}
	return SLOT_OUT;
}

/* Polls the registry until a server takes calls (true), none is on its way, or max_ms have passed. */
static bool
await_server(int max_ms, bool needs_model)
{
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), max_ms);

	for (;;)
	{
		bool		coming = false;

		for (int i = 0; i < groma_registry_shared->n_servers; i++)
		{
			groma_server_slot snap;
			slot_outlook outlook;

			groma_registry_snapshot(i, &snap);
			outlook = outlook_of(&snap, needs_model);
			if (outlook == SLOT_TAKES_CALLS)
				return true;
			coming |= outlook == SLOT_ON_ITS_WAY;
		}
		if (!coming || GetCurrentTimestamp() >= until)
			return false;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, AWAIT_POLL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* Waits for a server to take calls while one is on its way, shown in groma_progress; see server_client.h. */
bool
groma_client_await_server(int max_ms, bool needs_model)
{
	bool		was_waiting;
	volatile bool took = false;

	groma_client_require_registry();
	was_waiting = groma_progress_set_waiting(true);
	PG_TRY();
	{
		took = await_server(max_ms, needs_model);
	}
	PG_FINALLY();
	{
		(void) groma_progress_set_waiting(was_waiting);
	}
	PG_END_TRY();
	return took;
}
