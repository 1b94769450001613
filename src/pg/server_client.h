/*
 * server_client.h - a backend's side of the groma-server protocol: one
 * persistent UNIX-socket connection per server slot, requests sent and
 * waited for with the latch (so cancel, statement_timeout and terminate
 * stop a wait at once), and every failure turned into an ERROR with a
 * specific SQLSTATE.
 */
#ifndef GROMA_SERVER_CLIENT_H
#define GROMA_SERVER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "../server/protocol.h"

/* Why a groma-server ended, beyond its exit status. */
typedef enum groma_exit_cause
{
	GROMA_EXIT_PLAIN = 0,		/* its status says it all */
	GROMA_EXIT_FORCED,			/* the launcher killed it: it had not stopped GROMA_STOP_GRACE_MS after SIGTERM */
	GROMA_EXIT_HUNG				/* its watchdog found it hung (exit 5, or killed while that exit was slow) */
} groma_exit_cause;

/*
 * Writes how a process ended: "exit N" or "signal N (name)", with what
 * cause adds, or "none" when neither is known.
 */
void		groma_describe_exit(int exit_code, int exit_signal, groma_exit_cause cause, char *buf, size_t len);

struct groma_server_slot;

/*
 * Returns true when the launcher read the server's beacon (its model call
 * in progress) within the last second; an older look says nothing (the
 * launcher may be stopped while the call has ended).
 */
bool		groma_client_look_is_fresh(const struct groma_server_slot *snap);

/*
 * Returns true when the launcher's last look, within the last second,
 * found snap's server unable to run anything yet or any more: starting,
 * loading, failed or stopping (one without a model still runs image
 * checks).
 */
bool		groma_client_known_unready(const struct groma_server_slot *snap);

/* Raises ERROR 55000 unless groma.so was loaded through shared_preload_libraries. */
void		groma_client_require_registry(void);

/*
 * Sends req (kind and fields set; the id is assigned here) to the least
 * loaded running groma-server and waits for its reply, within
 * groma.request_timeout.  Returns only with a successful reply, which the
 * caller frees with groma_reply_free; raises ERROR for everything else
 * (no server, a timeout, the server dying, an error status in the reply).
 * With groma.restart_wait, a server on its way (restarting, loading) is
 * waited for first, and a request a server lost through no fault of its
 * own (never read, answered "shutting down" or "loading", or only queued
 * behind another request's fatal model call) is sent again once one is
 * back, waiting up to groma.restart_wait before the first send and as
 * long again in all after losses (each loss may add up to 2 s of looking
 * at the registry and the server's state), for three server processes.
 */
void		groma_client_call(groma_request *req, groma_reply *reply);

/*
 * Sends the n requests of reqs (NULL entries skipped) over up to in_flight
 * new connections, one request per connection at a time, so that several
 * wait in the servers' queues at once; each connection goes to the running
 * groma-server with the fewest requests in flight when it opens, so the
 * call is spread over several servers (groma.devices); a server that
 * cannot be reached or answers that it has no model to run is left for the
 * rest of the call, the connection opened again to another with its request;
 * stores each successful reply in replies[i] (the caller frees each with
 * groma_reply_free; entries of NULL requests are zeroed).  A request
 * refused because the queue is full while others of the call are still
 * outstanding is sent again when one of them is answered (the call then
 * keeps one fewer in flight); refused with none outstanding, it is sent
 * again after a delay (50 ms, doubling up to 1 s) until there is room, or
 * groma.request_timeout has passed.  Raises ERROR as
 * groma_client_call does at the first failure, after closing every
 * connection and freeing every reply.  *current holds the index of the
 * request whose reply is being read, else -1 (also for a size limit that is
 * not about the image: the model's context, the query's length), so an
 * error context can name the request whose image failed.  With
 * keep_image_faults, a reply failed for its image (see
 * groma_status_is_image_fault) does not fail the call: it is stored with
 * its status, for the caller to report.  With await_ms > 0, a request that
 * a server ended without reading, answered "shutting down" or "loading",
 * or had only queued behind a model call for other requests, when no other
 * server runs, is sent again once a server takes calls
 * (groma_client_await_server), waiting at most await_ms in all and for
 * three server processes; a request in the server's fatal model call still
 * fails the call (at once, before any other is sent again).
 */
void		groma_client_call_many(groma_request **reqs, int n, groma_reply *replies, int in_flight,
								   bool keep_image_faults, int await_ms, volatile int *current);

/*
 * After groma_client_call_many raised an ERROR: sets *reqs to the indexes
 * (in that call's reqs) of the requests it had answered before, which the
 * error threw away, and returns how many; -1 when the last call did not
 * fail (or none was made).  Valid until the next groma_client_call_many.
 */
int			groma_client_answered_before_failure(const int **reqs);

/*
 * Waits up to max_ms, looking at the launcher's registry every 100 ms (a
 * cancel ends it), for a groma-server that takes calls, while one is on
 * its way: restarting after an exit, starting, loading its model (unless
 * the call needs no model: image checks and drawings are answered while
 * the model loads), or ending so as to be started again.  Returns true at
 * once when one takes calls (or nothing known says otherwise), false when
 * none does and none is on its way (a failed load, a suspended server), or
 * when max_ms has passed; the call made next then says why.
 */
bool		groma_client_await_server(int max_ms, bool needs_model);

/* Like groma_client_call for a PING; returns the round trip in milliseconds. */
double		groma_client_ping(void);

/*
 * Asks slot's server for its STATUS, waiting at most timeout_ms.  Returns
 * false, with nothing to free, when the slot is not running or does not
 * answer; raises ERROR only for interrupts (cancel, timeouts).
 */
bool		groma_client_try_status(int slot, int timeout_ms, groma_reply *reply);

/* True when the current role may read groma-server's log lines (pg_read_all_stats and pg_read_all_settings). */
bool		groma_may_read_server_log(void);

#endif							/* GROMA_SERVER_CLIENT_H */
