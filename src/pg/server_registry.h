/*
 * server_registry.h - the groma-server processes the launcher runs, as
 * shared memory that backends read: one slot per server (per entry of
 * groma.devices, or one slot when it is empty).
 *
 * Written by the launcher background worker (pid, state, exits, whether
 * the process is suspended), read by
 * backends to choose a server and to explain a failure; the in_flight
 * counters are changed by backends around each request.
 */
#ifndef GROMA_SERVER_REGISTRY_H
#define GROMA_SERVER_REGISTRY_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/spin.h"

#include "../server/protocol.h"

/* At most this many servers (entries of groma.devices). */
#define GROMA_MAX_SERVERS 16

/*
 * A server whose model call in progress has lasted this long (a hung GPU,
 * or a very long batch) gets no new calls while another server takes them.
 */
#define GROMA_LONG_CALL_MS 5000

/* A server asked to stop (SIGTERM: a reload, a shutdown) is killed when it has not exited this long after. */
#define GROMA_STOP_GRACE_MS 5000

/* What the launcher knows of a slot's process. */
typedef enum groma_slot_state
{
	GROMA_SLOT_UNUSED = 0,		/* no server for this slot */
	GROMA_SLOT_STOPPED,			/* not running: launcher not started yet, or shutting down */
	GROMA_SLOT_STARTING,		/* forked; its socket does not answer yet */
	GROMA_SLOT_RUNNING,			/* its socket answers (the server's own STATUS says more) */
	GROMA_SLOT_BACKOFF,			/* exited; waiting before the next start */
	GROMA_SLOT_STOPPING			/* sent SIGTERM (a reload or shutdown); its pid is kept until it exits */
} groma_slot_state;

typedef struct groma_server_slot
{
	slock_t		mutex;			/* protects every field but in_flight */
	groma_slot_state state;
	int			pid;			/* 0 when not running */
	uint64		generation;		/* incremented at every start */
	char		socket_path[64];	/* relative to the data directory */
	char		device[32];		/* "cpu", "cuda:1", ... */
	char		model_path[1024];	/* as passed to this start */
	TimestampTz started_at;
	int			restarts;		/* starts after the first */
	int			last_exit_code; /* -1 when none or killed by a signal */
	int			last_exit_signal;	/* 0 when none or a normal exit */
	int			last_exit_pid;	/* the pid whose exit these describe */
	int			last_exit_cause;	/* a groma_exit_cause: why it ended, beyond its status */
	char		last_stderr[256];	/* the last line it wrote to stderr */
	TimestampTz suspended_since;	/* when the launcher saw it stopped (SIGSTOP, a debugger); 0 while it runs */
	TimestampTz call_started;	/* when its model call in progress began, as the launcher last saw it; 0: none */
	TimestampTz lock_stuck_since;	/* since when its watchdog has found its lock held, as the launcher last saw it; 0: free */
	bool		hung_exiting;	/* its watchdog found it hung and ends it (its connections are closed); until it exits */
	TimestampTz looked_at;		/* when the launcher last read its beacon (call_started is stale long after) */
	int			watchdog_ms;	/* its watchdog's limit (0: none), as its beacon says */
	int			server_state;	/* its groma_server_state (loading, ready, ...), as its beacon says */
	int			n_in_call;		/* requests its model call works for (not copied by groma_registry_snapshot) */
	groma_beacon_request in_call[GROMA_BEACON_MAX_IN_CALL];
	int			last_exit_n_in_call;	/* requests the model call it was in when it exited worked for (not
										 * copied by groma_registry_snapshot); -1: unknown, or in none */
	groma_beacon_request last_exit_in_call[GROMA_BEACON_MAX_IN_CALL];
	pg_atomic_uint32 in_flight; /* requests backends have sent and not yet read back */
} groma_server_slot;

typedef struct groma_registry
{
	int			n_servers;		/* slots in use (set by the launcher) */
	bool		launcher_running;
	groma_server_slot slots[GROMA_MAX_SERVERS];
} groma_registry;

/* The registry, or NULL when groma was not loaded through shared_preload_libraries. */
extern groma_registry *groma_registry_shared;

/* Requests the shared memory (from _PG_init, under shared_preload_libraries only). */
void		groma_registry_request(void);

/* Copies a slot's fields under its lock (in_flight read atomically), all but in_call. */
void		groma_registry_snapshot(int slot, groma_server_slot *out);

/* Returns true when slot's model call in progress, as the launcher last saw it, works for request id of process pid. */
bool		groma_registry_in_call(int slot, int pid, uint32 id);

/* Whether a request was in the model call of a server process that ended (or is being ended as hung). */
typedef enum groma_fatal_call_role
{
	GROMA_FATAL_CALL_UNKNOWN = 0,	/* no record of that process's call: it was in none, or its beacon was unread */
	GROMA_FATAL_CALL_IN,		/* the call worked for the request (with others or alone) */
	GROMA_FATAL_CALL_NOT_IN		/* the call worked for other requests only: the request was queued, or unread */
} groma_fatal_call_role;

/*
 * Returns whether request id of process pid was in the model call that
 * server process server_pid of slot was in when it exited (as the
 * launcher read its beacon then), or is in now while its watchdog ends it.
 */
groma_fatal_call_role groma_registry_fatal_call_role(int slot, int server_pid, int pid, uint32 id);

#endif							/* GROMA_SERVER_REGISTRY_H */
