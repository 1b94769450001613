/*
 * server_client.c - a backend's connections to groma-server and the
 * request/reply exchange over them (server_client.h).
 *
 * One connection per server slot, opened on first use and kept for the
 * session.  A request is written and its reply read with non-blocking I/O
 * around WaitLatchOrSocket; every wakeup runs CHECK_FOR_INTERRUPTS, so a
 * cancel or a timeout ends the wait at once.  Any error while a request is
 * outstanding closes the connection: groma-server takes a closed connection
 * as a cancel and drops the request, and the next request reconnects.
 */
#include "postgres.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "portability/instr_time.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "catalog/pg_authid.h"
#include "utils/acl.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "bulk_progress.h"
#include "groma_pg.h"
#include "server_client.h"
#include "server_registry.h"
#include "text_encoding.h"

/* The hint of every "groma-server is stopping" error. */
#define STOPPING_HINT \
	"It stops for a configuration change, after which the groma launcher starts it again, or because PostgreSQL " \
	"is shutting down; retry in a moment."

/* How long a backend waits for the launcher to record the exit of a server that closed its connection. */
#define EXIT_RECORD_WAIT_MS 2000
#define EXIT_RECORD_POLL_MS 20

/* A backend's connection to one server slot. */
typedef struct server_connection
{
	bool		open;
	pgsocket	fd;
	uint64		generation;		/* the slot's generation when connected: a restart invalidates it */
	int			pid;			/* the server process it reaches */
} server_connection;

/* What a round trip ended with, short of an ERROR. */
typedef enum io_result
{
	IO_OK,						/* a reply was decoded */
	IO_CLOSED,					/* the server closed the connection after it read the request */
	IO_UNREAD,					/* the server went away before it read all of the request: a UNIX socket is
								 * reset (ECONNRESET, EPIPE) when its peer closes with bytes unread, or was
								 * never accepted, as when a killed server's listening socket closes.  This
								 * holds while a connection carries one request at a time and nothing after
								 * it (no CANCEL frame, no pipelining): unread bytes are then this request's */
	IO_TIMEOUT,					/* the deadline passed */
	IO_CONNECT_FAILED,			/* nothing accepted the connection */
	IO_PROTOCOL,				/* a frame that does not parse (protocol_error says why) */
	IO_SUSPENDED,				/* the server was suspended (SIGSTOP, a debugger) while another took calls */
	IO_HUNG						/* the request waited behind a model call that lasted a tenth of the server's
								 * watchdog while another server took calls */
} io_result;

/* Why a server that holds a request leaves it to another server. */
typedef enum leave_reason
{
	LEAVE_NONE,
	LEAVE_SUSPENDED,			/* suspended past the grace: it may take requests again once it runs */
	LEAVE_HUNG					/* in one model call for a tenth of its watchdog, which the request is not part of */
} leave_reason;

static server_connection connections[GROMA_MAX_SERVERS];

/* Slots that answered "no model to run" (loading, stopping): avoided until then, for that generation. */
static TimestampTz unready_until[GROMA_MAX_SERVERS];
static uint64 unready_generation[GROMA_MAX_SERVERS];
static TimestampTz unready_at[GROMA_MAX_SERVERS];	/* when it last answered so */

#define UNREADY_AVOID_MS 1000
#define SUSPENSION_CHECK_MS 200	/* how often a wait on a server looks whether it was suspended */
#define BEACON_STALE_MS 1000	/* a look of the launcher at a server's model call older than this says nothing */
#define SUSPENSION_GRACE_MS 2000	/* a server suspended this long loses the requests it holds to the others,
									 * and calls with no other server stop waiting for it; a shorter stop is
									 * waited out (its requests' work is not thrown away) */
#define BULK_RESEND_FIRST_MS 50		/* a bulk call refused as busy with nothing else in flight tries again after this */
#define BULK_RESEND_MAX_MS 1000		/* the delay doubles up to this */
#define MAX_EXITS_AWAITED 3		/* server processes a call waits for after they lost its requests */
/* The requests (indexes) of the last bulk call that were answered before it failed. */
static int *answered_reqs = NULL;	/* room for the call's requests, in TopMemoryContext */
static int	n_answered_reqs = -1;	/* -1: the call did not fail */
#define LOADING_RECHECK_MS 100		/* a call waiting for a loading server asks again after this at least */
static uint32 next_request_id = 0;
static int	counted_slot = -1;		/* the slot whose in_flight counts our outstanding request */
static bool exit_callback_registered = false;
static uint32 bulk_counted[GROMA_MAX_SERVERS];	/* a bulk call's outstanding requests counted in each slot's in_flight */
static uint32 next_slot_turn = 0;
static char connect_error[128];
static char protocol_error[GROMA_STATUS_MESSAGE_LEN + 64];
static unsigned protocol_error_version = 0;	/* the server's version when that was the problem */

/* Writes how a process ended; see server_client.h. */
void
groma_describe_exit(int exit_code, int exit_signal, groma_exit_cause cause, char *buf, size_t len)
{
	if (exit_signal > 0 && cause == GROMA_EXIT_HUNG)
		snprintf(buf, len, "signal %d (%s) while its watchdog ended it as hung", exit_signal, pg_strsignal(exit_signal));
	else if (exit_signal > 0 && cause == GROMA_EXIT_FORCED)
		snprintf(buf, len, "signal %d (%s), sent by the launcher: it had not stopped %d s after SIGTERM", exit_signal,
				 pg_strsignal(exit_signal), GROMA_STOP_GRACE_MS / 1000);
	else if (exit_signal > 0)
		snprintf(buf, len, "signal %d (%s)", exit_signal, pg_strsignal(exit_signal));
	else if (exit_code == GROMA_SERVER_EXIT_HUNG)
		snprintf(buf, len, "exit %d: hung, ended by its watchdog", exit_code);
	else if (exit_code >= 0)
		snprintf(buf, len, "exit %d", exit_code);
	else
		strlcpy(buf, "none", len);
}

/* Raises 55000 unless the registry exists; see server_client.h. */
void
groma_client_require_registry(void)
{
	if (groma_registry_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("groma.so must be in shared_preload_libraries to use groma-server"),
				 errdetail("The model runs in groma-server, which the groma launcher starts only when groma is preloaded."),
				 errhint("Set shared_preload_libraries = 'groma' in postgresql.conf and restart PostgreSQL.")));
}

/* Closes a slot's connection, if open. */
static void
close_connection(int slot)
{
	server_connection *c = &connections[slot];

	if (c->open && c->fd != PGINVALID_SOCKET)
		closesocket(c->fd);
	c->open = false;
	c->fd = PGINVALID_SOCKET;
}

/* Returns the deadline timeout_ms from now, or 0 for none. */
static TimestampTz
deadline_after(int timeout_ms)
{
	if (timeout_ms <= 0)
		return 0;
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
}

/*
 * The server of the single call in progress, when other servers run: its
 * waits give up (wait_left_because says why) once it has been suspended for
 * SUSPENSION_GRACE_MS, or hung, and a server outside watched_exclude takes
 * calls (leave_reason_for); -1 when none is watched.
 */
static int	watched_slot = -1;
static uint32 watched_exclude = 0;
static uint32 watched_unready = 0;
static uint32 watched_request_id = 0;
static leave_reason wait_left_because = LEAVE_NONE;

static leave_reason leave_reason_for(int slot, uint32 exclude, uint32 unready, uint32 request_id);
static bool slot_suspended_briefly(uint32 exclude);

/* Returns the milliseconds left before deadline (at least 0), or -1 when there is none. */
static long
ms_left(TimestampTz deadline)
{
	long		secs;
	int			usecs;

	if (deadline == 0)
		return -1;
	TimestampDifference(GetCurrentTimestamp(), deadline, &secs, &usecs);
	/* rounded up: a deadline less than a millisecond away has not passed (rounded down, 1 ms was always over) */
	return secs * 1000 + (usecs + 999) / 1000;
}

/*
 * Waits until fd has the event (WL_SOCKET_READABLE or WL_SOCKET_WRITEABLE),
 * the latch is set or the deadline passes; handles interrupts.  Returns
 * false when the deadline has passed.
 */
static bool
wait_socket(pgsocket fd, int event, TimestampTz deadline)
{
	long		left = ms_left(deadline);
	long		wait = left < 0 ? 1000 : left;

	if (left == 0)
		return false;
	if (watched_slot >= 0)
		wait = Min(wait, SUSPENSION_CHECK_MS);
	(void) WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH | event, fd,
							 wait, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	if (watched_slot >= 0 &&
		(wait_left_because = leave_reason_for(watched_slot, watched_exclude, watched_unready,
											  watched_request_id)) != LEAVE_NONE)
		return false;
	return true;
}

/* Sleeps ms on the latch, handling interrupts. */
static void
sleep_ms(long ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/*
 * Opens a new non-blocking connection to the server snap describes, retrying
 * while its listen backlog is full; *out receives the socket before the
 * connect (the caller closes it, also on failure).  Returns false and fills
 * connect_error when nothing accepts it.
 */
static bool
connect_to_server(const groma_server_slot *snap, TimestampTz deadline, pgsocket *out)
{
	struct sockaddr_un addr;
	pgsocket	fd;

	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	strlcpy(addr.sun_path, snap->socket_path, sizeof(addr.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
	{
		snprintf(connect_error, sizeof(connect_error), "could not create a socket: %m");
		return false;
	}
	*out = fd;
	for (;;)
	{
		if (connect(fd, (struct sockaddr *) &addr, sizeof(addr)) == 0)
			return true;
		if (errno == EINTR)
			continue;
		/* a UNIX socket says EAGAIN when its listen backlog is full: try again shortly */
		if (errno == EAGAIN && ms_left(deadline) != 0)
		{
			sleep_ms(10);
			continue;
		}
		snprintf(connect_error, sizeof(connect_error), "connect to \"%s\" failed: %m", snap->socket_path);
		return false;
	}
}

/* Opens (or reuses) the connection to a slot's server as snap describes it; returns false and fills connect_error when nothing accepts it. */
static bool
ensure_connection(int slot, const groma_server_slot *snap, TimestampTz deadline)
{
	server_connection *c = &connections[slot];

	if (c->open && c->generation == snap->generation)
		return true;
	close_connection(slot);
	/* kept in the table while connecting (generation 0 matches no server), so an ERROR closes it */
	c->open = true;
	c->generation = 0;
	if (!connect_to_server(snap, deadline, &c->fd))
	{
		close_connection(slot);
		return false;
	}
	c->generation = snap->generation;
	c->pid = snap->pid;
	return true;
}

/* Writes len bytes to fd, waiting while the socket is full; returns IO_OK, IO_UNREAD, IO_CLOSED or IO_TIMEOUT. */
static io_result
send_all(pgsocket fd, const uint8 *data, size_t len, TimestampTz deadline)
{
	size_t		done = 0;

	while (done < len)
	{
		ssize_t		n = send(fd, data + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0)
			done += (size_t) n;
		else if (n < 0 && errno == EINTR)
			continue;
		else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		{
			if (!wait_socket(fd, WL_SOCKET_WRITEABLE, deadline))
				return IO_TIMEOUT;
		}
		else if (errno == EPIPE || errno == ECONNRESET)
			return IO_UNREAD;	/* the server is gone, and did not read all of it */
		else
			return IO_CLOSED;
	}
	return IO_OK;
}

/*
 * Reads exactly len bytes from fd, waiting for them; returns IO_OK,
 * IO_CLOSED (end of file), IO_UNREAD (reset: the server closed with our
 * bytes unread) or IO_TIMEOUT.
 */
static io_result
recv_all(pgsocket fd, uint8 *data, size_t len, TimestampTz deadline)
{
	size_t		done = 0;

	while (done < len)
	{
		ssize_t		n = recv(fd, data + done, len - done, MSG_DONTWAIT);

		if (n > 0)
			done += (size_t) n;
		else if (n == 0)
			return IO_CLOSED;
		else if (errno == EINTR)
			continue;
		else if (errno == EAGAIN || errno == EWOULDBLOCK)
		{
			if (!wait_socket(fd, WL_SOCKET_READABLE, deadline))
				return IO_TIMEOUT;
		}
		else
			return errno == ECONNRESET ? IO_UNREAD : IO_CLOSED;
	}
	return IO_OK;
}

/*
 * Reads frames from fd until the reply with req's id, decoding it into
 * reply.  Returns IO_PROTOCOL (with protocol_error set) for frames that do
 * not parse, IO_CLOSED, IO_UNREAD or IO_TIMEOUT for I/O failures.
 */
static io_result
read_reply(pgsocket fd, const groma_request *req, groma_reply *reply, TimestampTz deadline)
{
	io_result	r;

	for (;;)
	{
		uint8		header[GROMA_PROTO_HEADER_BYTES];
		groma_frame_header h;
		groma_status st;
		uint8	   *payload;

		r = recv_all(fd, header, sizeof(header), deadline);
		if (r != IO_OK)
			return r;
		st = groma_proto_parse_header(header, &h);
		if (st.code != GROMA_OK)
		{
			protocol_error_version = memcmp(header, "GRMA", 4) == 0 && h.version != GROMA_PROTO_VERSION ?
				h.version : 0;
			snprintf(protocol_error, sizeof(protocol_error), "The frame header failed to parse: %s.", st.message);
			return IO_PROTOCOL;
		}
		payload = palloc(Max(h.payload_len, 1));
		r = recv_all(fd, payload, h.payload_len, deadline);
		if (r != IO_OK)
			return r;
		if (h.kind != GROMA_MSG_REPLY || h.id != req->id)
		{
			/* not the answer to this request (cannot happen with one request per connection): skip it */
			pfree(payload);
			continue;
		}
		st = groma_proto_decode_reply(&h, payload, h.payload_len, reply);
		pfree(payload);
		if (st.code == GROMA_OK && reply->kind != req->kind)
			st = groma_error(GROMA_ERR_PROTOCOL, "a reply of kind %d to a request of kind %d",
							 (int) reply->kind, (int) req->kind);
		if (st.code != GROMA_OK)
		{
			groma_reply_free(reply);
			protocol_error_version = 0;
			snprintf(protocol_error, sizeof(protocol_error), "The reply failed to decode: %s.", st.message);
			return IO_PROTOCOL;
		}
		return IO_OK;
	}
}

/*
 * After a send that failed because the server closed (IO_UNREAD): reads,
 * without waiting, a reply it wrote before closing, as a server of another
 * protocol version does after a header; returns IO_PROTOCOL for such a
 * frame, IO_OK for a reply to req (in reply), else IO_UNREAD.
 */
static io_result
reply_before_close(pgsocket fd, const groma_request *req, groma_reply *reply)
{
	io_result	r = read_reply(fd, req, reply, GetCurrentTimestamp());

	return r == IO_OK || r == IO_PROTOCOL ? r : IO_UNREAD;
}

/* Sends one encoded request frame on fd and reads its reply into reply; returns as read_reply does. */
static io_result
exchange(pgsocket fd, const uint8 *frame, size_t len, const groma_request *req, groma_reply *reply,
		 TimestampTz deadline)
{
	io_result	r = send_all(fd, frame, len, deadline);

	if (r == IO_UNREAD)
		return reply_before_close(fd, req, reply);
	if (r != IO_OK)
		return r;
	return read_reply(fd, req, reply, deadline);
}

/* Takes the outstanding request out of its slot's in_flight again. */
static void
uncount_request(void)
{
	if (counted_slot >= 0)
		pg_atomic_fetch_sub_u32(&groma_registry_shared->slots[counted_slot].in_flight, 1);
	counted_slot = -1;
}

/* Takes one outstanding bulk request of slot out of its in_flight. */
static void
bulk_uncount_one(int slot)
{
	if (bulk_counted[slot] == 0)
		return;
	pg_atomic_fetch_sub_u32(&groma_registry_shared->slots[slot].in_flight, 1);
	bulk_counted[slot]--;
}

/* Takes every outstanding bulk request out of its slot's in_flight. */
static void
bulk_uncount_all(void)
{
	for (int i = 0; i < GROMA_MAX_SERVERS; i++)
	{
		if (bulk_counted[i] > 0)
			pg_atomic_fetch_sub_u32(&groma_registry_shared->slots[i].in_flight, bulk_counted[i]);
		bulk_counted[i] = 0;
	}
}

/* Takes our outstanding requests out of their slots' in_flight when the backend exits during them (FATAL skips PG_CATCH). */
static void
uncount_at_exit(int code, Datum arg)
{
	if (groma_registry_shared == NULL)
		return;
	uncount_request();
	bulk_uncount_all();
}

/* Counts an outstanding request in slot's in_flight. */
static void
count_request(int slot)
{
	if (!exit_callback_registered)
	{
		before_shmem_exit(uncount_at_exit, 0);
		exit_callback_registered = true;
	}
	pg_atomic_fetch_add_u32(&groma_registry_shared->slots[slot].in_flight, 1);
	counted_slot = slot;
}

/*
 * Sends req to slot's server (as snap describes it) and reads the reply,
 * within timeout_ms (0: no limit).  Raises ERROR for interrupts and
 * requests that do not encode; the connection is closed on every path but
 * success.  Counts the request in the slot's in_flight
 * while it is outstanding when count is true; such a request gives up its
 * wait (IO_SUSPENDED, IO_HUNG) when the server has been suspended past the
 * grace, or hung, and a server outside exclude takes calls (leave_reason_for;
 * of exclude, the slots in unready count again once they are ready).
 */
static io_result
round_trip(int slot, const groma_server_slot *snap, groma_request *req, groma_reply *reply, int timeout_ms,
		   bool count, uint32 exclude, uint32 unready)
{
	TimestampTz deadline = deadline_after(timeout_ms);
	groma_wbuf	buf = {0};
	groma_status st;
	uint8	   *frame;
	size_t		frame_len;
	volatile io_result r = IO_OK;

	memset(reply, 0, sizeof(*reply));
	req->id = ++next_request_id;
	st = groma_proto_encode_request(req, &buf);
	if (st.code != GROMA_OK)
	{
		groma_wbuf_free(&buf);
		groma_pg_check(st);
	}
	/* the frame moves to palloc memory so that an ERROR leaks nothing */
	frame_len = buf.len;
	frame = palloc(frame_len);
	memcpy(frame, buf.data, frame_len);
	groma_wbuf_free(&buf);

	if (count)
		count_request(slot);
	/* a model request leaves a server suspended meanwhile for the others, when there are others */
	wait_left_because = LEAVE_NONE;
	watched_slot = count && groma_registry_shared->n_servers > 1 ? slot : -1;
	watched_exclude = exclude;
	watched_unready = unready;
	watched_request_id = req->id;
	PG_TRY();
	{
		if (!ensure_connection(slot, snap, deadline))
			r = IO_CONNECT_FAILED;
		else
			r = exchange(connections[slot].fd, frame, frame_len, req, reply, deadline);
	}
	PG_CATCH();
	{
		watched_slot = -1;
		close_connection(slot);
		uncount_request();
		PG_RE_THROW();
	}
	PG_END_TRY();
	watched_slot = -1;
	if (r == IO_TIMEOUT && wait_left_because == LEAVE_SUSPENDED)
		r = IO_SUSPENDED;
	else if (r == IO_TIMEOUT && wait_left_because == LEAVE_HUNG)
		r = IO_HUNG;
	uncount_request();
	if (r != IO_OK)
		close_connection(slot);
	pfree(frame);
	return r;
}

/* Returns true when snap shows process pid as ended by its watchdog, or being ended (its exit may take a while). */
static bool
ended_as_hung(const groma_server_slot *snap, int pid)
{
	return pid > 0 && ((snap->pid == pid && snap->hung_exiting) ||
					   (snap->last_exit_pid == pid && snap->last_exit_cause == GROMA_EXIT_HUNG));
}

/* What a look at the registry says of a server process a backend waits on. */
typedef enum process_answer
{
	PROCESS_LOOK_AGAIN,			/* nothing yet: look again */
	PROCESS_YES,
	PROCESS_NO
} process_answer;

/*
 * Looks at slot's state (into *now) every EXIT_RECORD_POLL_MS, for up to
 * EXIT_RECORD_WAIT_MS, until test says yes or no of process pid; returns
 * true when it said yes, false at once when no process was known (pid 0).
 */
static bool
poll_process(int slot, int pid, process_answer (*test) (const groma_server_slot *now, int pid),
			 groma_server_slot *now)
{
	for (int waited = 0;; waited += EXIT_RECORD_POLL_MS)
	{
		process_answer answer;

		groma_registry_snapshot(slot, now);
		answer = pid > 0 ? test(now, pid) : PROCESS_NO;
		if (answer != PROCESS_LOOK_AGAIN)
			return answer == PROCESS_YES;
		if (waited >= EXIT_RECORD_WAIT_MS)
			return false;
		sleep_ms(EXIT_RECORD_POLL_MS);
	}
}

/* Says yes once now records the exit of process pid, or shows its watchdog ending it (ended_as_hung). */
static process_answer
exit_recorded(const groma_server_slot *now, int pid)
{
	return now->last_exit_pid == pid || ended_as_hung(now, pid) ? PROCESS_YES : PROCESS_LOOK_AGAIN;
}

/*
 * Waits up to EXIT_RECORD_WAIT_MS for the launcher to record the exit of
 * process pid in slot, or that its watchdog is ending it (ended_as_hung);
 * returns true with the slot's state in *snap when it did.  A process
 * waited for so in vain just before is looked at once only: deciding
 * whether to send a request again, then reporting its loss, waits once.
 */
static bool
wait_for_exit_record(int slot, int pid, groma_server_slot *snap)
{
	static int	unrecorded_pid = 0;
	bool		recorded;

	if (pid > 0 && pid == unrecorded_pid)
	{
		groma_registry_snapshot(slot, snap);
		return exit_recorded(snap, pid) == PROCESS_YES;
	}
	recorded = poll_process(slot, pid, exit_recorded, snap);
	unrecorded_pid = recorded ? 0 : pid;
	return recorded;
}

/*
 * Says yes when now shows process pid stopping: the launcher asked it to
 * (a reload, or a shutdown of the cluster), its own state says so (a
 * SIGTERM from elsewhere), or it has already exited (its exit recorded, or
 * another process in its place: two reloads in a row record only the later
 * exit); no when its fresh state says it is up without a model to run.
 */
static process_answer
stopping_or_gone(const groma_server_slot *now, int pid)
{
	if (now->last_exit_pid == pid || now->pid != pid || now->state == GROMA_SLOT_STOPPING)
		return PROCESS_YES;
	if (groma_client_look_is_fresh(now))
	{
		if (now->server_state == GROMA_SERVER_STOPPING)
			return PROCESS_YES;
		if (now->server_state == GROMA_SERVER_NO_MODEL || now->server_state == GROMA_SERVER_FAILED)
			return PROCESS_NO;
	}
	return PROCESS_LOOK_AGAIN;
}

/* True when slot's process pid, as the registry shows it (polled for up to EXIT_RECORD_WAIT_MS), is stopping. */
static bool
process_stopping(int slot, int pid)
{
	groma_server_slot now;

	return poll_process(slot, pid, stopping_or_gone, &now);
}

/*
 * How long a call may wait for servers to come back after they lost its
 * requests through no fault of theirs, and for how many server processes:
 * groma_caption_table's chunks always, single and array calls for
 * groma.restart_wait.
 */
typedef struct server_wait
{
	int			max_ms;			/* the wait in all, counted from its first (0: the call does not wait) */
	TimestampTz until;			/* when it ends (0: no wait yet) */
	int			exits;			/* server processes waited for so */
	int			last_pid;		/* the last of them */
	bool		needs_model;	/* a server loading its model is waited for (not for image checks, drawings) */
} server_wait;

/*
 * Counts process pid among those the call waited for after they lost its
 * requests; false when it is one more than MAX_EXITS_AWAITED: its arrival
 * may be what ends them.
 */
static bool
count_awaited_exit(server_wait *w, int pid)
{
	if (pid == w->last_pid)
		return true;
	w->last_pid = pid;
	return ++w->exits <= MAX_EXITS_AWAITED;
}

/* Waits for a server to take calls for what is left of the call's wait (starting it); false when it is over, or none comes. */
static bool
await_more(server_wait *w)
{
	long		left;

	if (w->max_ms <= 0)
		return false;
	if (w->until == 0)
		w->until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), w->max_ms);
	left = ms_left(w->until);
	return left > 0 && groma_client_await_server((int) left, w->needs_model);
}

/*
 * Waits, when the call may, for slot's server that answered it cannot run
 * models because it was starting or loading its model, as its STATUS says
 * (then *up is set; also when it says ready since, as the other requests
 * of an array call answered so meanwhile find it): true once a server
 * takes calls, after LOADING_RECHECK_MS at least (the launcher may not have
 * seen it loading yet, and nothing spins).  False at once for a server
 * without a model, one that failed to load it, or one that does not answer
 * (stopping); false when the call's wait is over.
 */
static bool
await_loading(server_wait *w, int slot, bool *up)
{
	groma_reply status;

	*up = false;
	if (w->max_ms <= 0 || !groma_client_try_status(slot, 2000, &status))
		return false;
	*up = status.state == GROMA_SERVER_STARTING || status.state == GROMA_SERVER_LOADING ||
		status.state == GROMA_SERVER_READY;
	groma_reply_free(&status);
	if (!*up)
		return false;
	if (w->until == 0)
		w->until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), w->max_ms);
	if (ms_left(w->until) <= 0)
		return false;
	sleep_ms(Min(LOADING_RECHECK_MS, ms_left(w->until)));
	return await_more(w);
}

/*
 * True when the current role may read groma-server's log lines: they name
 * other sessions' requests (pg_read_all_stats, as for their queries) and
 * the model's files (pg_read_all_settings, as for groma.model_path).
 */
bool
groma_may_read_server_log(void)
{
	return has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS) &&
		has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_SETTINGS);
}

/*
 * Adds groma-server's last log line as the error's detail, for roles with
 * the privileges of pg_read_all_stats and pg_read_all_settings only (it can
 * name other sessions' requests and the model's files, as
 * groma_status().last_stderr); returns 0 for ereport.
 */
static int
last_message_detail(const char *line)
{
	if (line[0] == '\0' || !groma_may_read_server_log())
		return 0;
	return errdetail("Its last message was: %s", groma_server_text(line));
}

/* Raises the ERROR for a round trip that ended with r (not IO_OK). */
static void
report_io_failure(int slot, const groma_server_slot *sent_to, io_result r, int timeout_ms)
{
	groma_server_slot now;
	char		how[128];

	if (r == IO_PROTOCOL && protocol_error_version != 0)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("groma-server speaks protocol version %u, groma.so %u",
						protocol_error_version, (unsigned) GROMA_PROTO_VERSION),
				 errhint("Install groma-server and groma.so from the same build, then restart PostgreSQL.")));
	if (r == IO_PROTOCOL)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("groma-server sent a malformed frame"),
				 errdetail("%s", protocol_error)));
	if (r == IO_SUSPENDED)
		ereport(ERROR,
				(errcode(ERRCODE_CANNOT_CONNECT_NOW),
				 errmsg("groma-server %d (pid %d) was suspended while it had this request", slot, sent_to->pid),
				 errdetail("Its process was stopped by a signal or held by a debugger, and no other server could "
						   "take the request."),
				 errhint("It runs again after kill -CONT %d, or when the debugger holding it lets it go.",
						 sent_to->pid)));
	if (r == IO_HUNG)
		ereport(ERROR,
				(errcode(ERRCODE_CANNOT_CONNECT_NOW),
				 errmsg("groma-server %d (pid %d) seems hung: its model call has lasted long while it had this request",
						slot, sent_to->pid),
				 errdetail("No other server could take the request."),
				 errhint("Its watchdog (groma.server_watchdog) ends it if the call does not end.")));
	if (r == IO_TIMEOUT)
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("groma request timed out after %d ms", timeout_ms),
				 errhint("Raise groma.request_timeout, or set it to 0 to wait without a limit.")));
	/* the request never reached the server (nothing accepted it, or it went away before reading it all) */
	if (r == IO_CONNECT_FAILED || r == IO_UNREAD)
	{
		if (wait_for_exit_record(slot, sent_to->pid, &now) && ended_as_hung(&now, sent_to->pid))
			ereport(ERROR,
					(errcode(ERRCODE_CANNOT_CONNECT_NOW),
					 errmsg("groma-server hung, and its watchdog ended it before it read this request"),
					 last_message_detail(now.last_stderr),
					 errhint("The groma launcher starts it again once it has exited; retry in a moment.")));
		if (now.last_exit_pid == sent_to->pid && sent_to->pid > 0)
		{
			groma_describe_exit(now.last_exit_code, now.last_exit_signal, (groma_exit_cause) now.last_exit_cause, how, sizeof(how));
			ereport(ERROR,
					(errcode(ERRCODE_CANNOT_CONNECT_NOW),
					 errmsg("groma-server is restarting after it exited (%s)", how),
					 last_message_detail(now.last_stderr),
					 errhint("The groma launcher restarts it; retry in a moment.")));
		}
		if (r == IO_UNREAD)
			ereport(ERROR,
					(errcode(ERRCODE_CANNOT_CONNECT_NOW),
					 errmsg("groma-server closed the connection before it read this request"),
					 errhint("groma_status() shows the state of groma-server; retry in a moment.")));
		ereport(ERROR,
				(errcode(ERRCODE_CANNOT_CONNECT_NOW),
				 errmsg("could not connect to groma-server"),
				 errdetail("%s.", connect_error),
				 errhint("groma_status() shows the state of groma-server; the server log has its messages.")));
	}
	/* IO_CLOSED: the server went away while it had our request */
	if (wait_for_exit_record(slot, sent_to->pid, &now))
	{
		if (ended_as_hung(&now, sent_to->pid))
			ereport(ERROR,
					(errcode(ERRCODE_SYSTEM_ERROR),
					 errmsg("groma-server hung while it had this request (queued or running), and its watchdog "
							"ended it"),
					 last_message_detail(now.last_stderr),
					 errhint("The groma launcher restarts it. groma.server_watchdog is how long one model call, or a "
							 "hold of the server's lock, may last before a server is taken as hung.")));
		if (now.last_exit_signal > 0 && now.last_exit_cause == GROMA_EXIT_FORCED)
			ereport(ERROR,
					(errcode(ERRCODE_CANNOT_CONNECT_NOW),
					 errmsg("groma-server was killed while it had this request (queued or running): it had not "
							"stopped %d s after it was asked to", GROMA_STOP_GRACE_MS / 1000),
					 last_message_detail(now.last_stderr),
					 errhint(STOPPING_HINT)));
		if (now.last_exit_signal > 0)
			ereport(ERROR,
					(errcode(ERRCODE_SYSTEM_ERROR),
					 errmsg("groma-server was terminated by signal %d (%s) while it had this request "
							"(queued or running)", now.last_exit_signal, pg_strsignal(now.last_exit_signal)),
					 last_message_detail(now.last_stderr),
					 errhint("The groma launcher restarts it; the server log has its messages.")));
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("groma-server exited with code %d while it had this request (queued or running)",
						now.last_exit_code),
				 last_message_detail(now.last_stderr),
				 errhint("The groma launcher restarts it; the server log has its messages.")));
	}
	ereport(ERROR,
			(errcode(ERRCODE_SYSTEM_ERROR),
			 errmsg("groma-server closed the connection while it had this request (queued or running)"),
			 errhint("groma_status() shows the state of groma-server; the server log has its messages.")));
}

/* Returns true when snap's server runs but is suspended (SIGSTOP, a debugger). */
static bool
slot_is_suspended(const groma_server_slot *snap)
{
	return snap->state == GROMA_SLOT_RUNNING && snap->suspended_since != 0;
}

/* Raises 57P03 (or 55000) saying why no slot has a running server. */
static void
report_no_server(void)
{
	groma_server_slot snap,
				suspended_snap,
				hung_snap;
	int			n = groma_registry_shared->n_servers;
	int			backoff = -1,
				suspended = -1,
				n_suspended = 0,
				hung = -1,
				n_hung = 0;
	StringInfoData listed,
				hung_listed;

	initStringInfo(&listed);
	initStringInfo(&hung_listed);
	for (int i = 0; i < n; i++)
	{
		groma_registry_snapshot(i, &snap);
		if (slot_is_suspended(&snap) && snap.pid != 0)
			appendStringInfo(&listed, "%s%d (pid %d)", n_suspended++ > 0 ? ", " : "", i, snap.pid);
		if (slot_is_suspended(&snap) && snap.pid != 0 && suspended < 0)
		{
			suspended = i;
			suspended_snap = snap;
		}
		if (snap.state == GROMA_SLOT_STARTING)
			ereport(ERROR,
					(errcode(ERRCODE_CANNOT_CONNECT_NOW),
					 errmsg("groma-server is starting"),
					 errhint("Retry in a moment; groma_status() shows its progress.")));
		if (snap.state == GROMA_SLOT_STOPPING)
			ereport(ERROR,
					(errcode(ERRCODE_CANNOT_CONNECT_NOW),
					 errmsg("groma-server is stopping"),
					 errhint(STOPPING_HINT)));
		if (snap.state == GROMA_SLOT_RUNNING && snap.hung_exiting)
		{
			appendStringInfo(&hung_listed, "%s%d (pid %d)", n_hung++ > 0 ? ", " : "", i, snap.pid);
			if (hung < 0)
			{
				hung = i;
				hung_snap = snap;
			}
		}
		if (snap.state == GROMA_SLOT_BACKOFF && backoff < 0)
			backoff = i;
	}
	if (n_hung > 1)
		ereport(ERROR,
				(errcode(ERRCODE_CANNOT_CONNECT_NOW),
				 errmsg("groma-servers %s hung, and their watchdogs are ending them", hung_listed.data),
				 errhint("The groma launcher starts each again once it has exited; retry in a moment.")));
	if (hung >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_CANNOT_CONNECT_NOW),
				 errmsg("groma-server %d (pid %d) hung, and its watchdog is ending it", hung, hung_snap.pid),
				 last_message_detail(hung_snap.last_stderr),
				 errhint("The groma launcher starts it again once it has exited; retry in a moment.")));
	if (suspended >= 0)
	{
		long		secs;
		int			usecs;

		TimestampDifference(suspended_snap.suspended_since, GetCurrentTimestamp(), &secs, &usecs);
		if (n_suspended > 1)
			ereport(ERROR,
					(errcode(ERRCODE_CANNOT_CONNECT_NOW),
					 errmsg("groma-servers %s are suspended", listed.data),
					 errdetail("Their processes are stopped by a signal or held by a debugger (server %d for %ld s).",
							   suspended, secs),
					 errhint("Each runs again after kill -CONT with its pid, or when the debugger holding it lets "
							 "it go; groma_status() shows them as suspended until then.")));
		ereport(ERROR,
				(errcode(ERRCODE_CANNOT_CONNECT_NOW),
				 errmsg("groma-server %d (pid %d) is suspended", suspended, suspended_snap.pid),
				 errdetail("Its process has been stopped by a signal or held by a debugger for %ld s.", secs),
				 errhint("It runs again after kill -CONT %d, or when the debugger holding it lets it go; "
						 "groma_status() shows it as suspended until then.", suspended_snap.pid)));
	}
	if (backoff >= 0)
	{
		char		how[128];

		groma_registry_snapshot(backoff, &snap);
		groma_describe_exit(snap.last_exit_code, snap.last_exit_signal, (groma_exit_cause) snap.last_exit_cause, how, sizeof(how));
		ereport(ERROR,
				(errcode(ERRCODE_CANNOT_CONNECT_NOW),
				 errmsg("groma-server is restarting after it exited (%s)", how),
				 last_message_detail(snap.last_stderr),
				 errhint("The groma launcher restarts it with a growing delay; the server log has its messages.")));
	}
	ereport(ERROR,
			(errcode(ERRCODE_CANNOT_CONNECT_NOW),
			 errmsg("groma-server is not running"),
			 errdetail(groma_registry_shared->launcher_running ?
					   "The groma launcher is between stopping and starting it." :
					   "The groma launcher background worker is not running."),
			 errhint("Retry in a moment; the server log says more.")));
}

/* Returns true when a slot (as snap describes it) takes calls: its server runs, is not suspended, and is not being ended as hung. */
static bool
slot_takes_calls(const groma_server_slot *snap)
{
	return snap->state == GROMA_SLOT_RUNNING && snap->suspended_since == 0 && !snap->hung_exiting;
}

/* Returns true when the launcher's last look, within BEACON_STALE_MS, found snap's server ready (its model loaded). */
static bool
slot_model_ready(const groma_server_slot *snap)
{
	return groma_client_look_is_fresh(snap) && snap->server_state == GROMA_SERVER_READY;
}

/* Returns true when the launcher's last look found snap's server unable to run models; see server_client.h. */
bool
groma_client_known_unready(const groma_server_slot *snap)
{
	return groma_client_look_is_fresh(snap) && snap->server_state != GROMA_SERVER_READY &&
		snap->server_state != GROMA_SERVER_NO_MODEL;
}

/*
 * Returns true when snap's server has been in one model call for at least
 * ms, as the launcher saw it within the last BEACON_STALE_MS (an older look
 * says nothing: the launcher may be stopped while the call has ended).
 */
static bool
slot_in_call_for(const groma_server_slot *snap, TimestampTz now, int ms)
{
	return snap->call_started != 0 && groma_client_look_is_fresh(snap) &&
		TimestampDifferenceExceeds(snap->call_started, now, ms);
}

/* Returns true when the launcher looked at snap's beacon within BEACON_STALE_MS; see server_client.h. */
bool
groma_client_look_is_fresh(const groma_server_slot *snap)
{
	return !TimestampDifferenceExceeds(snap->looked_at, GetCurrentTimestamp(), BEACON_STALE_MS);
}

/*
 * Returns true when snap's server has been in one model call (a hung GPU,
 * a long batch), or its lock held (a deadlock), for GROMA_LONG_CALL_MS or
 * more, as the launcher saw it within the last BEACON_STALE_MS.
 */
static bool
slot_in_long_call(const groma_server_slot *snap, TimestampTz now)
{
	return slot_in_call_for(snap, now, GROMA_LONG_CALL_MS) ||
		(snap->lock_stuck_since != 0 && groma_client_look_is_fresh(snap) &&
		 TimestampDifferenceExceeds(snap->lock_stuck_since, now, GROMA_LONG_CALL_MS));
}

/*
 * Returns exclude less the slots of unready (those this call left because
 * they answered that they cannot run models, or went away unread) that the
 * launcher has found ready since they answered: a server that was loading
 * can take the call once it has loaded.
 */
static uint32
readmit_ready(uint32 exclude, uint32 unready)
{
	uint32		left = exclude;

	for (int i = 0; i < groma_registry_shared->n_servers; i++)
	{
		groma_server_slot s;

		if (!(exclude & unready & (1u << i)))
			continue;
		groma_registry_snapshot(i, &s);
		if (slot_model_ready(&s) && s.looked_at > unready_at[i])
			left &= ~(1u << i);
	}
	return left;
}

/*
 * Returns true when this backend recently found slot's server (as snap
 * describes it) unable to run models, and the launcher has not seen it
 * ready since.
 */
static bool
recently_unready(int slot, const groma_server_slot *snap, TimestampTz now)
{
	return unready_generation[slot] == snap->generation && now < unready_until[slot] &&
		!(slot_model_ready(snap) && snap->looked_at > unready_at[slot]);
}

/*
 * Returns the running slot with the fewest requests in flight, ties taken
 * in turn (each backend starting at a different slot), skipping the slots
 * whose bit is set in exclude and those suspended, and preferring those
 * ready (as the launcher last saw them), then those not recently found
 * loading and not in a long model call; waits while the only servers left
 * are suspended for less than SUSPENSION_GRACE_MS; raises why there is
 * none.
 */
static int
choose_slot(groma_server_slot *snap, uint32 exclude)
{
	TimestampTz now = GetCurrentTimestamp();
	int			n,
				best = -1;
	uint32		best_load = 0;

	groma_client_require_registry();
	if (next_slot_turn == 0)
		next_slot_turn = (uint32) MyProcPid;
	n = groma_registry_shared->n_servers;
	for (int pass = 0; best < 0; pass++)
	{
		/* with none to take calls, a server suspended for less than the grace is waited for */
		if (pass == 3)
		{
			if (!slot_suspended_briefly(exclude))
				break;
			sleep_ms(50);
			now = GetCurrentTimestamp();
			pass = 0;
		}
		for (int k = 0; k < n; k++)
		{
			int			i = (int) ((next_slot_turn + (uint32) k) % (uint32) n);
			groma_server_slot s;

			if (exclude & (1u << i))
				continue;
			groma_registry_snapshot(i, &s);
			if (!slot_takes_calls(&s) ||
				(pass <= 1 && groma_client_known_unready(&s)) ||
				(pass == 0 && (recently_unready(i, &s, now) || slot_in_long_call(&s, now))))
				continue;
			if (best < 0 || pg_atomic_read_u32(&s.in_flight) < best_load)
			{
				best = i;
				best_load = pg_atomic_read_u32(&s.in_flight);
				*snap = s;
			}
		}
	}
	next_slot_turn++;
	if (best < 0)
		report_no_server();
	return best;
}

/* Returns true when a slot whose bit is not set in exclude holds (as its snapshot shows) what holds() tests. */
static bool
any_slot(uint32 exclude, bool (*holds) (const groma_server_slot *snap))
{
	for (int i = 0; i < groma_registry_shared->n_servers; i++)
	{
		groma_server_slot s;

		if (exclude & (1u << i))
			continue;
		groma_registry_snapshot(i, &s);
		if (holds(&s))
			return true;
	}
	return false;
}

/* Returns true when a slot whose bit is not set in exclude has a running server. */
static bool
other_slot_running(uint32 exclude)
{
	return any_slot(exclude, slot_takes_calls);
}

/* Returns true when snap's server has been suspended for SUSPENSION_GRACE_MS or more. */
static bool
suspended_past_grace(const groma_server_slot *snap)
{
	return slot_is_suspended(snap) &&
		TimestampDifferenceExceeds(snap->suspended_since, GetCurrentTimestamp(), SUSPENSION_GRACE_MS);
}

/* Returns true when snap's server is suspended, not yet for SUSPENSION_GRACE_MS. */
static bool
suspended_within_grace(const groma_server_slot *snap)
{
	return slot_is_suspended(snap) && !suspended_past_grace(snap);
}

/*
 * Returns true when snap's server takes calls, is not known to be unready
 * (loading: a slot without a fresh look counts as ready) and is not in a
 * long model call.
 */
static bool
slot_takes_calls_promptly(const groma_server_slot *snap)
{
	return slot_takes_calls(snap) && !groma_client_known_unready(snap) && !slot_in_long_call(snap, GetCurrentTimestamp());
}

/*
 * Returns true when snap's server has a watchdog and its model call in
 * progress has lasted a tenth of the watchdog's limit (GROMA_LONG_CALL_MS
 * at least): on a GPU, 30 s of a call that takes well under a second.
 */
static bool
slot_hung(const groma_server_slot *snap)
{
	return snap->watchdog_ms > 0 &&
		slot_in_call_for(snap, GetCurrentTimestamp(), Max(snap->watchdog_ms / 10, GROMA_LONG_CALL_MS));
}

/*
 * Returns true when snap's server was suspended in a model call that had
 * already lasted GROMA_LONG_CALL_MS (a hang looked at in a debugger, say).
 */
static bool
suspended_in_long_call(const groma_server_slot *snap)
{
	return snap->call_started != 0 && snap->suspended_since != 0 &&
		TimestampDifferenceExceeds(snap->call_started, snap->suspended_since, GROMA_LONG_CALL_MS);
}

/*
 * Returns why slot's server should leave this backend's request request_id
 * to a server outside exclude (of which the slots in unready count again
 * once ready: readmit_ready): suspended past the grace, or
 * hung, while another is ready, takes calls and is not in a long call
 * itself.  A request the hung call works for (also one stopped with a
 * server suspended in a long call) stays: it may be what hangs the
 * server, and fails with it.
 */
static leave_reason
leave_reason_for(int slot, uint32 exclude, uint32 unready, uint32 request_id)
{
	groma_server_slot s;
	uint32		others = readmit_ready(exclude, unready) | (1u << slot);

	groma_registry_snapshot(slot, &s);
	if (suspended_past_grace(&s) && any_slot(others, slot_takes_calls_promptly) &&
		!(suspended_in_long_call(&s) && groma_registry_in_call(slot, MyProcPid, request_id)))
		return LEAVE_SUSPENDED;
	if (slot_hung(&s) && any_slot(others, slot_takes_calls_promptly) &&
		!groma_registry_in_call(slot, MyProcPid, request_id))
		return LEAVE_HUNG;
	return LEAVE_NONE;
}

/* Logs that n requests (of_what: " of an array call", or "") waiting behind slot's hung model call go to another server. */
static void
log_hung_move(int slot, int n, const char *of_what)
{
	groma_server_slot s;
	long		secs;
	int			usecs;

	groma_registry_snapshot(slot, &s);
	TimestampDifference(s.call_started, GetCurrentTimestamp(), &secs, &usecs);
	if (n == 1)
		ereport(LOG,
				(errmsg("groma-server %d (pid %d) has been in one model call for %ld s: a request%s waiting behind it "
						"is sent to another server", slot, s.pid, secs, of_what)));
	else
		ereport(LOG,
				(errmsg("groma-server %d (pid %d) has been in one model call for %ld s: %d requests%s waiting behind "
						"it are sent to another server", slot, s.pid, secs, n, of_what)));
}

/* Returns true when a slot outside exclude is suspended, not yet for SUSPENSION_GRACE_MS. */
static bool
slot_suspended_briefly(uint32 exclude)
{
	return any_slot(exclude, suspended_within_grace);
}

/* The hint for a model that failed to load with message: the setting that names the cause. */
static const char *
failed_load_hint(const char *message)
{
	if (strstr(message, "(--kv-cache-mb)"))
		return "Lower groma.kv_cache_mb (the KV cache pool allocated when the model loads) and reload the "
			"configuration.";
	if (strstr(message, "(--act-mb)"))
		return "Lower groma.activation_mb and reload the configuration.";
	if (strstr(message, "device memory") || strstr(message, "cannot allocate"))
		return "The model does not fit the memory left: lower groma.kv_cache_mb or groma.activation_mb, or set "
			"groma.weights = 'int8', and reload the configuration.";
	return "Fix groma.model_path (or the files it names) and reload the configuration.";
}

/* Raises the ERROR for a reply the server answered GROMA_ERR_UNAVAILABLE (st), asking the server's state to say why. */
static void
report_unavailable(int slot, const groma_status *st)
{
	groma_reply status;
	groma_server_state state;
	uint64		done,
				total;

	/* a server shutting down has closed its socket to new connections: its reply says what the status would */
	if (strstr(st->message, "shutting down") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CANNOT_CONNECT_NOW),
				 errmsg("groma-server is stopping"),
				 errdetail("groma-server reported: %s.", groma_server_text(st->message)),
				 errhint(STOPPING_HINT)));
	if (!groma_client_try_status(slot, 2000, &status))
		ereport(ERROR,
				(errcode(ERRCODE_CANNOT_CONNECT_NOW),
				 errmsg("groma-server cannot run models now"),
				 errdetail("groma-server reported: %s.", groma_server_text(st->message))));
	state = status.state;
	done = status.load_done;
	total = status.load_total;
	groma_reply_free(&status);
	switch (state)
	{
		case GROMA_SERVER_NO_MODEL:
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("groma-server has no model"),
					 errdetail("groma.model_path is empty, so groma-server runs image checks only."),
					 errhint("Set groma.model_path to a model directory and reload the configuration.")));
			break;
		case GROMA_SERVER_FAILED:
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("groma-server could not load its model"),
					 has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_SETTINGS) ?
					 errdetail("groma-server reported: %s.", groma_server_text(st->message)) :
					 errdetail("The reason names files of the server: it is shown to roles with the privileges of "
							   "pg_read_all_settings."),
					 errhint("%s", failed_load_hint(st->message))));
			break;
		case GROMA_SERVER_STARTING:
		case GROMA_SERVER_LOADING:
			if (total > 0 && done >= total)
				ereport(ERROR,
						(errcode(ERRCODE_CANNOT_CONNECT_NOW),
						 errmsg("groma-server is loading its model"),
						 errdetail("Its %llu MB of weights are read; it is setting up the rest (caches, tables).",
								   (unsigned long long) (total >> 20)),
						 errhint("Retry in a moment; groma_status() shows the progress.")));
			if (total > 0)
				ereport(ERROR,
						(errcode(ERRCODE_CANNOT_CONNECT_NOW),
						 errmsg("groma-server is loading its model"),
						 errdetail("%llu of %llu MB are loaded.",
								   (unsigned long long) (done >> 20), (unsigned long long) (total >> 20)),
						 errhint("Retry in a moment; groma_status() shows the progress.")));
			ereport(ERROR,
					(errcode(ERRCODE_CANNOT_CONNECT_NOW),
					 errmsg("groma-server is loading its model"),
					 errhint("Retry in a moment; groma_status() shows the progress.")));
			break;
		case GROMA_SERVER_STOPPING:
			ereport(ERROR,
					(errcode(ERRCODE_CANNOT_CONNECT_NOW),
					 errmsg("groma-server is stopping"),
					 errhint(STOPPING_HINT)));
			break;
		case GROMA_SERVER_READY:
			break;
	}
	ereport(ERROR,
			(errcode(ERRCODE_CANNOT_CONNECT_NOW),
			 errmsg("groma-server cannot run models now"),
			 errdetail("groma-server reported: %s.", groma_server_text(st->message))));
}

/* Raises the ERROR that fits a reply with a failed status (and frees the reply); returns on success. */
static void
check_reply(int slot, groma_reply *reply)
{
	groma_status st = reply->status;

	if (st.code == GROMA_OK)
		return;
	groma_reply_free(reply);
	switch (st.code)
	{
		case GROMA_ERR_UNAVAILABLE:
			report_unavailable(slot, &st);
			break;
		case GROMA_ERR_BUSY:
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("groma-server's request queue is full"),
					 errdetail("groma-server reported: %s.", groma_server_text(st.message)),
					 errhint("Raise groma.max_queue, or send fewer requests at once.")));
			break;
		case GROMA_ERR_PROTOCOL:
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("groma-server refused the request as malformed"),
					 errdetail("groma-server reported: %s.", groma_server_text(st.message))));
			break;
		default:
			groma_pg_check(st);
			break;
	}
}

/* Remembers that slot (as snap shows it) answered that it has no model to run: avoided for a while. */
static void
mark_unready(int slot, const groma_server_slot *snap)
{
	unready_generation[slot] = snap->generation;
	unready_at[slot] = GetCurrentTimestamp();
	unready_until[slot] = TimestampTzPlusMilliseconds(unready_at[slot], UNREADY_AVOID_MS);
}

/*
 * Raises the error of the server started in slot in place of process pid
 * when it cannot run models (a reload to a model that does not load): its
 * last log line says why, shown as a reply's reason would be, to the roles
 * that may read it (report_unavailable).  Returns when no other process
 * runs there.
 */
static void
report_failed_replacement(int slot, int pid)
{
	groma_server_slot now;
	groma_status st;

	groma_registry_snapshot(slot, &now);
	if (now.state != GROMA_SLOT_RUNNING || now.pid == pid)
		return;
	st = now.last_stderr[0] != '\0' ? groma_error(GROMA_ERR_UNAVAILABLE, "%s", now.last_stderr) :
		groma_error(GROMA_ERR_UNAVAILABLE, "it was restarted, and cannot run models now");
	report_unavailable(slot, &st);
}

/*
 * True when req runs in groma-server's model calls (REGIONS, GENERATE), so
 * that the launcher's record of the fatal call tells whether it was there;
 * an image check or a drawing is decoded by the thread that reads it,
 * outside any model call, so a crash there names no call of its own.
 */
static bool
is_model_request(const groma_request *req)
{
	return req->kind == GROMA_MSG_REGIONS || req->kind == GROMA_MSG_GENERATE;
}

/*
 * True, once a server takes calls again, when the request req that slot's
 * process (as sent_to shows it) ended with r (and *reply) was lost through
 * no fault of its own and the call may wait (w, groma.restart_wait): the
 * server went away before it read it, answered it "shutting down" (a
 * reload, a SIGTERM) or "loading", or ended while it had it only queued
 * behind a model call for other requests.  A request in the fatal model
 * call (or one the launcher recorded nothing of, or one that runs in no
 * model call: is_model_request) is not sent again: it may be what ended
 * the server.  A process that lost the call's request before is waited
 * out LOADING_RECHECK_MS first, so that a call never spins on a server
 * the launcher still lists.  Frees the reply when true.
 */
static bool
single_lost_elsewhere(server_wait *w, int slot, const groma_server_slot *sent_to, const groma_request *req,
					  io_result r, groma_reply *reply)
{
	groma_server_slot now;
	bool		unavailable = r == IO_OK && reply->status.code == GROMA_ERR_UNAVAILABLE;
	bool		up;

	if (w->max_ms <= 0)
		return false;
	if (unavailable)
	{
		/* (a server starting or loading its model has not ended: it is not counted among the exits waited for) */
		if (await_loading(w, slot, &up))
		{
			groma_reply_free(reply);
			return true;
		}
		if (up || !process_stopping(slot, sent_to->pid))
			return false;
	}
	else if ((r != IO_UNREAD && r != IO_CONNECT_FAILED && r != IO_CLOSED) ||
			 !wait_for_exit_record(slot, sent_to->pid, &now))
		return false;
	else if (r == IO_CLOSED && !(is_model_request(req) &&
								   groma_registry_fatal_call_role(slot, sent_to->pid, MyProcPid, req->id) ==
								   GROMA_FATAL_CALL_NOT_IN))
		return false;
	/* (a process seen before may still be listed as running, the launcher not having looked yet) */
	if (sent_to->pid == w->last_pid && w->until != 0 && ms_left(w->until) > 0)
		sleep_ms(Min(LOADING_RECHECK_MS, ms_left(w->until)));
	if (!count_awaited_exit(w, sent_to->pid) || !await_more(w))
	{
		if (unavailable)
			report_failed_replacement(slot, sent_to->pid);
		return false;
	}
	if (unavailable)
		groma_reply_free(reply);
	return true;
}

/* Sends a request to the least loaded server and returns its successful reply; see server_client.h. */
void
groma_client_call(groma_request *req, groma_reply *reply)
{
	groma_server_slot snap;
	server_wait wait = {.max_ms = groma_restart_wait, .needs_model = is_model_request(req)};
	uint32		tried = 0;
	uint32		unready = 0;	/* of tried, the servers that could not run models (loading) or never read it */
	uint32		left = 0;		/* the server the request just left (suspended, hung): not chosen next */
	int			slot;
	io_result	r;

	/* with groma.restart_wait, a server on its way (restarting, loading) is waited for first */
	if (groma_restart_wait > 0)
		(void) groma_client_await_server(groma_restart_wait, wait.needs_model);

	/*
	 * A server that just died may still be listed as running (and may
	 * even accept the connection, then reset it unread), and one that was
	 * just restarted answers while it loads its model: then try the other
	 * running servers, if there are any, as for a server whose queue is
	 * full, and that server again once the launcher has seen it ready.  A
	 * server that read the request and then died is not tried again: the
	 * request may be what killed it.  With groma.restart_wait, a request
	 * no server could take because they went away, stopped or were loading
	 * (single_lost_elsewhere) is sent again once one is back.
	 */
	for (;;)
	{
		tried = readmit_ready(tried, unready);
		unready &= tried;
		slot = choose_slot(&snap, left != 0 && other_slot_running(tried | left) ? tried | left : tried);
		left = 0;
		r = round_trip(slot, &snap, req, reply, groma_request_timeout, true, tried, unready);
		if (r == IO_HUNG)
			log_hung_move(slot, 1, "");
		/* a server left for being suspended or hung is not counted as tried: it may take the request once it runs */
		if (r == IO_SUSPENDED || r == IO_HUNG)
		{
			left = 1u << slot;
			continue;
		}
		tried |= 1u << slot;
		if (r == IO_UNREAD || (r == IO_OK && reply->status.code == GROMA_ERR_UNAVAILABLE))
		{
			mark_unready(slot, &snap);
			unready |= 1u << slot;
		}
		if (!other_slot_running(readmit_ready(tried, unready)))
		{
			if (!single_lost_elsewhere(&wait, slot, &snap, req, r, reply))
				break;
			tried = unready = 0;
			continue;
		}
		if (r == IO_CONNECT_FAILED || r == IO_UNREAD)
			continue;
		if (r == IO_OK && reply->status.code == GROMA_ERR_UNAVAILABLE)
		{
			groma_reply_free(reply);
			continue;
		}
		/* a full queue: another server may have room (this one is not avoided later for it) */
		if (r == IO_OK && reply->status.code == GROMA_ERR_BUSY)
		{
			groma_reply_free(reply);
			continue;
		}
		/* a request lost through no fault of its own with other servers running goes to one of them */
		if (r == IO_CLOSED && single_lost_elsewhere(&wait, slot, &snap, req, r, reply))
			continue;
		break;
	}
	if (r != IO_OK)
		report_io_failure(slot, &snap, r, groma_request_timeout);
	check_reply(slot, reply);
}

/* Returns the round trip of a PING in milliseconds; see server_client.h. */
double
groma_client_ping(void)
{
	groma_server_slot snap;
	int			slot = choose_slot(&snap, 0);
	groma_request req;
	groma_reply reply;
	instr_time	start,
				elapsed;
	io_result	r;

	/* connect first, so that the figure is the round trip alone */
	if (!ensure_connection(slot, &snap, deadline_after(groma_request_timeout)))
		report_io_failure(slot, &snap, IO_CONNECT_FAILED, groma_request_timeout);
	memset(&req, 0, sizeof(req));
	req.kind = GROMA_MSG_PING;
	INSTR_TIME_SET_CURRENT(start);
	r = round_trip(slot, &snap, &req, &reply, groma_request_timeout, true, 0, 0);
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	if (r != IO_OK)
		report_io_failure(slot, &snap, r, groma_request_timeout);
	check_reply(slot, &reply);
	groma_reply_free(&reply);
	return INSTR_TIME_GET_MILLISEC(elapsed);
}

/* Asks a slot's server for its STATUS; see server_client.h. */
bool
groma_client_try_status(int slot, int timeout_ms, groma_reply *reply)
{
	groma_server_slot snap;
	groma_request req;

	groma_client_require_registry();
	groma_registry_snapshot(slot, &snap);
	if (!slot_takes_calls(&snap))
		return false;
	memset(&req, 0, sizeof(req));
	req.kind = GROMA_MSG_STATUS;
	if (round_trip(slot, &snap, &req, reply, timeout_ms, false, 0, 0) != IO_OK)
		return false;
	if (reply->status.code != GROMA_OK)
	{
		groma_reply_free(reply);
		return false;
	}
	return true;
}

/*
 * One connection of a bulk call: the server it goes to (the least loaded
 * when it opened), the request it carries (-1: none) and that request's
 * deadline.  With several servers, one whose request was refused as busy
 * is closed and opens again, to another server, for its next request
 * (reopen).
 */
typedef struct bulk_connection
{
	pgsocket	fd;
	int			slot;
	groma_server_slot snap;
	int			req;
	TimestampTz deadline;
	bool		reopen;
} bulk_connection;

/*
 * What a bulk call has left to send: the requests to send again first (a
 * stack of indexes: those refused as busy, and those taken off a server
 * that answered it has no model to run; each is there at most once), then
 * reqs[next] on.  When the queue
 * refused the call's only request in flight, it waits for room: resend_at
 * is when to try again (0: not waiting), after resend_ms (doubling), since
 * full_since (for groma.request_timeout).  And where requests may still
 * go: avoid, the servers this call found unreachable, gone before they
 * read a request, or without a model to run; set, the wait set new
 * connections join (set_events of its set_room events taken: a closed
 * socket's event keeps its place, so the set is made again when full), and
 * the call's connections.
 */
typedef struct bulk_pending
{
	int			next;
	int		   *retry;
	int			n_retry;
	TimestampTz resend_at;
	int			resend_ms;
	TimestampTz full_since;
	uint32		avoid;
	uint32		unready;		/* of avoid, the servers that could not run models (loading) or went away unread */
	WaitEventSet *set;
	int			set_events;
	int			set_room;
	bulk_connection *conns;
	int			n_conns;
	server_wait wait;			/* how long the call may wait for servers that lost its requests (max_ms 0: not) */
	groma_request **reqs;		/* the call's requests (conns[k].req indexes them) */
} bulk_pending;

/* Returns request req encoded as one frame in palloc'd memory (its id assigned here), its length in *len. */
static uint8 *
encode_frame(groma_request *req, size_t *len)
{
	groma_wbuf	buf = {0};
	groma_status st;
	uint8	   *frame;

	req->id = ++next_request_id;
	st = groma_proto_encode_request(req, &buf);
	if (st.code != GROMA_OK)
	{
		groma_wbuf_free(&buf);
		groma_pg_check(st);
	}
	*len = buf.len;
	frame = palloc(Max(buf.len, 1));
	memcpy(frame, buf.data, buf.len);
	groma_wbuf_free(&buf);
	return frame;
}

/*
 * Makes the wait set of a bulk call (again): the latch, the postmaster's
 * death and every open connection, with room for one connection more
 * (opened again elsewhere) before it is made again; a set made again costs
 * little beside a request, and so the tests' moves go through this path.
 */
static void
bulk_make_wait_set(bulk_pending *pending)
{
	if (pending->set != NULL)
		FreeWaitEventSet(pending->set);
	pending->set = NULL;
	pending->set_room = 2 + pending->n_conns + 1;
	pending->set = CreateWaitEventSet(CurrentMemoryContext, pending->set_room);
	AddWaitEventToSet(pending->set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(pending->set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	pending->set_events = 2;
	for (int k = 0; k < pending->n_conns; k++)
		if (pending->conns[k].fd != PGINVALID_SOCKET)
		{
			AddWaitEventToSet(pending->set, WL_SOCKET_READABLE, pending->conns[k].fd, NULL, &pending->conns[k]);
			pending->set_events++;
		}
}

static bool bulk_await_ended(int slot, const groma_server_slot *sent_to, bulk_pending *pending);

/* Adds connection c's socket to the bulk call's wait set, making the set again first when it is full. */
static void
bulk_watch(bulk_connection *c, bulk_pending *pending)
{
	if (pending->set_events >= pending->set_room)
		bulk_make_wait_set(pending);	/* (c's socket is open already: the new set has it) */
	else
	{
		AddWaitEventToSet(pending->set, WL_SOCKET_READABLE, c->fd, NULL, c);
		pending->set_events++;
	}
}

/*
 * Opens connection c to the running server with the fewest requests in
 * flight, leaving out the servers in pending->avoid (and those in
 * this_time, while another runs), and adds it to the wait set; a server
 * that cannot be reached joins avoid and the next is tried while another
 * runs (else the connect failure is raised).
 */
static void
bulk_open(bulk_connection *c, bulk_pending *pending, uint32 this_time)
{
	uint32	   *avoid = &pending->avoid;

	c->reopen = false;
	for (;;)
	{
		if (this_time != 0 && !other_slot_running(*avoid | this_time))
			this_time = 0;
		c->slot = choose_slot(&c->snap, *avoid | this_time);
		if (connect_to_server(&c->snap, deadline_after(groma_request_timeout), &c->fd))
			break;
		/* (connect_to_server leaves the socket it could not connect to the caller) */
		if (c->fd != PGINVALID_SOCKET)
			closesocket(c->fd);
		c->fd = PGINVALID_SOCKET;
		if (!other_slot_running(*avoid | (1u << c->slot)))
		{
			/* the only server ended (the call may wait for it to come back), or the failure is raised */
			if (!bulk_await_ended(c->slot, &c->snap, pending))
				report_io_failure(c->slot, &c->snap, IO_CONNECT_FAILED, groma_request_timeout);
			continue;
		}
		*avoid |= 1u << c->slot;
	}
	bulk_watch(c, pending);
}

/* Puts connection c's request back to be sent again first, leaving c idle. */
static void
bulk_requeue(bulk_connection *c, bulk_pending *pending)
{
	pending->retry[pending->n_retry++] = c->req;
	c->req = -1;
}

/*
 * Puts connection c's request back to be sent again first and closes c.
 * Closing the socket takes it out of the wait set's epoll (or kqueue) set,
 * so its stale entry is never reported, though it keeps its place:
 * bulk_watch makes the set again when no place is left (WaitEventSet uses
 * epoll on Linux, kqueue on the BSDs and macOS; its poll() fallback would
 * report the stale entry).
 */
static void
bulk_give_back(bulk_connection *c, bulk_pending *pending)
{
	bulk_requeue(c, pending);
	closesocket(c->fd);
	c->fd = PGINVALID_SOCKET;
}

/*
 * Moves connection c, whose server cannot take its request (it answered
 * that it has no model to run, or went away before reading the request),
 * to another running server: the request goes back to be sent again
 * first, the server joins pending->avoid (and this session's next calls
 * avoid it for a while, as single calls do), and c opens again to another
 * server.  Returns false, changing nothing, when no other server runs.
 */
static bool
bulk_move(bulk_connection *c, bulk_pending *pending)
{
	if (!other_slot_running(pending->avoid | (1u << c->slot)))
		return false;
	mark_unready(c->slot, &c->snap);
	pending->avoid |= 1u << c->slot;
	pending->unready |= 1u << c->slot;
	bulk_give_back(c, pending);
	bulk_open(c, pending, 0);
	return true;
}

/*
 * Raises the loss of the server (58000, as for a request it had) when the
 * model call that slot's process sent_to->pid was in when it ended (as the
 * launcher recorded it) worked for one of the bulk call's outstanding
 * requests there: the caller captions those rows again alone, and sending
 * the others again first, here or to another server, would only run them
 * for nothing, or lose a server once more.  Returns when there is no such
 * request, or no record yet.
 */
static void
bulk_fail_with_fatal_call(int slot, const groma_server_slot *sent_to, const bulk_pending *pending)
{
	for (int k = 0; k < pending->n_conns; k++)
	{
		const bulk_connection *c = &pending->conns[k];

		if (c->req >= 0 && c->slot == slot && c->snap.pid == sent_to->pid &&
			groma_registry_fatal_call_role(slot, sent_to->pid, MyProcPid, pending->reqs[c->req]->id) ==
			GROMA_FATAL_CALL_IN)
			report_io_failure(slot, sent_to, IO_CLOSED, groma_request_timeout);
	}
}

/* Returns the requests the last bulk call had answered when it failed; see server_client.h. */
int
groma_client_answered_before_failure(const int **reqs)
{
	*reqs = answered_reqs;
	return n_answered_reqs;
}

/*
 * Goes on with a bulk call after it waited for slot's server: slot and the
 * servers the call had set aside meanwhile (loading) are taken back when
 * ready, and the deadlines of the requests still outstanding start again,
 * since the wait is no fault of theirs.
 */
static void
bulk_resume(int slot, bulk_pending *pending)
{
	pending->avoid = readmit_ready(pending->avoid & ~(1u << slot), pending->unready);
	pending->unready &= pending->avoid;
	for (int k = 0; k < pending->n_conns; k++)
		if (pending->conns[k].req >= 0 && pending->conns[k].deadline != 0)
			pending->conns[k].deadline = deadline_after(groma_request_timeout);
}

/*
 * Waits for a server to take calls after the process of slot that sent_to
 * describes ended or is ending (bulk_await_ended, bulk_await_stopped):
 * true once one does, the call resumed (bulk_resume).  False
 * when the call's wait is over (pending->wait) or no server
 * came back.  The fourth server process waited for so is not: the request
 * is then reported as lost with it (58000), since its arrival may be what
 * ends them.
 */
static bool
bulk_await_back(int slot, const groma_server_slot *sent_to, bulk_pending *pending)
{
	if (!count_awaited_exit(&pending->wait, sent_to->pid))
		report_io_failure(slot, sent_to, IO_CLOSED, groma_request_timeout);
	if (!await_more(&pending->wait))
		return false;
	bulk_resume(slot, pending);
	return true;
}

/*
 * Waits, when the bulk call may (pending->wait), for a server to take
 * calls after the process of slot that sent_to describes ended
 * (bulk_await_back): true once one does.  False when the call does not
 * wait, the process has not ended (the launcher records no exit within
 * 2 s), or the wait is over.  The call fails at once (58000, as lost with
 * the server) when the model call that process was in held one of its
 * requests: the caller captions those rows again alone, and sending the
 * others again first would only run them for nothing, or lose the server
 * once more.
 */
static bool
bulk_await_ended(int slot, const groma_server_slot *sent_to, bulk_pending *pending)
{
	groma_server_slot now;

	if (pending->wait.max_ms <= 0 || !wait_for_exit_record(slot, sent_to->pid, &now))
		return false;
	bulk_fail_with_fatal_call(slot, sent_to, pending);
	return bulk_await_back(slot, sent_to, pending);
}

/*
 * Takes back connection c's request, which its server (the only one left
 * to the call) never read, or only queued (bulk_lost_elsewhere), because
 * it ended, and opens c again once a
 * server takes calls (bulk_await_ended): the request is sent again first.
 * Returns false, changing nothing, when the call does not wait for that.
 */
static bool
bulk_await_restart(bulk_connection *c, bulk_pending *pending)
{
	if (!bulk_await_ended(c->slot, &c->snap, pending))
		return false;
	bulk_give_back(c, pending);
	bulk_open(c, pending, 0);
	return true;
}

/*
 * Takes back connection c's request, which its server answered it would
 * not run because that process is stopping (a configuration reload that
 * restarts groma-server, or a SIGTERM) or is still loading its model
 * (await_loading), and opens c again once a server takes calls
 * (bulk_await_back): the request is sent again first.  Only for calls that
 * may wait (pending->wait); returns false, changing nothing, when the
 * process is neither (a server without a model, or one that failed to
 * load it) or no server came back in time (a shutdown).  When the server
 * started in its place cannot run models (a reload to a model that does
 * not load), its state's error is raised instead (report_unavailable).
 */
static bool
bulk_await_stopped(bulk_connection *c, bulk_pending *pending)
{
	bool		up;

	if (pending->wait.max_ms <= 0)
		return false;
	/* (a server starting or loading its model has not ended: it is not counted among the exits waited for) */
	if (await_loading(&pending->wait, c->slot, &up))
		bulk_resume(c->slot, pending);
	else if (up || !process_stopping(c->slot, c->snap.pid))
		return false;
	else if (!bulk_await_back(c->slot, &c->snap, pending))
	{
		report_failed_replacement(c->slot, c->snap.pid);
		return false;
	}
	bulk_give_back(c, pending);
	bulk_open(c, pending, 0);
	return true;
}

/*
 * True when the request of connection c (req), lost with its server
 * (which closed the connection after reading it), was not in the model
 * call that server process was in when it ended (or is in while its
 * watchdog ends it): it was queued behind other requests' fatal call, so
 * it is no suspect and may be sent again.  Only for calls that may wait
 * for a server to come back (groma_caption_table's chunks); false when the
 * launcher recorded no such call.
 */
static bool
bulk_lost_elsewhere(const bulk_connection *c, const groma_request *req, const bulk_pending *pending)
{
	groma_server_slot now;

	return pending->wait.max_ms > 0 && wait_for_exit_record(c->slot, c->snap.pid, &now) &&
		groma_registry_fatal_call_role(c->slot, c->snap.pid, MyProcPid, req->id) == GROMA_FATAL_CALL_NOT_IN;
}

/*
 * Sends the next request on connection c (one to send again first, else
 * the first of reqs not sent yet, skipping NULLs), counting it in its
 * slot's in_flight; leaves c idle when none is left.  A server gone before
 * it read the request leaves the call (bulk_move) while another runs;
 * raises the ERROR of any other failed send.
 */
static void
bulk_send_next(bulk_connection *c, groma_request **reqs, int n, bulk_pending *pending)
{
	for (;;)
	{
		uint8	   *frame;
		size_t		len;
		io_result	r;

		c->req = -1;
		while (pending->next < n && reqs[pending->next] == NULL)
			pending->next++;
		if (pending->n_retry > 0)
			c->req = pending->retry[--pending->n_retry];
		else if (pending->next < n)
			c->req = pending->next++;
		else
			return;
		c->deadline = deadline_after(groma_request_timeout);
		frame = encode_frame(reqs[c->req], &len);
		pg_atomic_fetch_add_u32(&groma_registry_shared->slots[c->slot].in_flight, 1);
		bulk_counted[c->slot]++;
		r = send_all(c->fd, frame, len, c->deadline);
		pfree(frame);
		if (r == IO_OK)
			return;
		bulk_uncount_one(c->slot);
		if (r == IO_UNREAD)
		{
			groma_reply reply;

			/* a frame the server wrote before closing says more (another protocol version) */
			r = reply_before_close(c->fd, reqs[c->req], &reply);
			if (r == IO_OK)
			{
				groma_reply_free(&reply);
				r = IO_UNREAD;
			}
		}
		if (r != IO_UNREAD || !(bulk_move(c, pending) || bulk_await_restart(c, pending)))
			report_io_failure(c->slot, &c->snap, r, groma_request_timeout);
	}
}

/* Returns how many of a bulk call's connections carry a request not answered yet. */
static int
bulk_outstanding(const bulk_connection *conns, int n_conns)
{
	int			n = 0;

	for (int k = 0; k < n_conns; k++)
		n += conns[k].req >= 0;
	return n;
}

/*
 * Leaves connection c idle after its request was refused as busy: the
 * request goes back to be sent again.  While others of the call are
 * outstanding it is sent when one of those is answered, and the call keeps
 * one request fewer in flight until an answer wakes c again
 * (bulk_wake_idle: another session held that place in the queue).  When it
 * was the only one, the queue is full of other sessions' requests: it is
 * sent again after a delay (50 ms, doubling up to 1 s) until there is room.
 * Returns false, leaving the reply as it was, for any other reply, and
 * when the queue has stayed full longer than groma.request_timeout.
 */
static bool
bulk_yield_busy(bulk_connection *conns, int n_conns, bulk_connection *c, groma_reply *reply, bulk_pending *pending)
{
	TimestampTz now = GetCurrentTimestamp();

	/* any other reply: the queue had room (the wait for room starts again next time) */
	if (reply->status.code != GROMA_ERR_BUSY)
	{
		pending->full_since = 0;
		pending->resend_ms = 0;
		return false;
	}
	/* c's own request is still counted as outstanding here */
	if (bulk_outstanding(conns, n_conns) <= 1)
	{
		if (pending->full_since == 0)
			pending->full_since = now;
		else if (groma_request_timeout > 0 &&
				 TimestampDifferenceExceeds(pending->full_since, now, groma_request_timeout))
			return false;
		pending->resend_ms = pending->resend_ms == 0 ? BULK_RESEND_FIRST_MS
			: Min(pending->resend_ms * 2, BULK_RESEND_MAX_MS);
		pending->resend_at = TimestampTzPlusMilliseconds(now, pending->resend_ms);
	}
	groma_reply_free(reply);
	memset(reply, 0, sizeof(*reply));
	/* another server may have room: the next request on c goes to one of the others (see bulk_send_idle) */
	c->reopen = other_slot_running(pending->avoid | (1u << c->slot));
	if (c->reopen)
		bulk_give_back(c, pending);
	else
		bulk_requeue(c, pending);
	return true;
}

/*
 * Takes the outstanding requests of conns off servers the launcher found
 * suspended (SIGSTOP, a debugger), or hung in a model call they are not
 * part of, while another server takes calls (leave_reason_for): each is sent
 * again, on its connection opened to another server (the server left,
 * when it runs again, finds the connection closed and drops the request).
 * Returns true when it moved one.
 */
static bool
bulk_leave_stuck(bulk_connection *conns, int n_conns, groma_request **reqs, int n, bulk_pending *pending)
{
	bool		moved = false;
	int			hung_moves[GROMA_MAX_SERVERS] = {0};

	/* a server that was loading when the call met it takes its requests once it is ready */
	pending->avoid = readmit_ready(pending->avoid, pending->unready);
	pending->unready &= pending->avoid;
	for (int k = 0; k < n_conns; k++)
	{
		bulk_connection *c = &conns[k];
		leave_reason why;

		if (c->req < 0 || c->fd == PGINVALID_SOCKET)
			continue;
		why = leave_reason_for(c->slot, pending->avoid, 0, reqs[c->req]->id);
		if (why == LEAVE_NONE)
			continue;
		if (why == LEAVE_HUNG)
			hung_moves[c->slot]++;
		bulk_uncount_one(c->slot);
		bulk_give_back(c, pending);
		bulk_open(c, pending, 1u << c->slot);
		bulk_send_next(c, reqs, n, pending);
		moved = true;
	}
	for (int i = 0; i < GROMA_MAX_SERVERS; i++)
		if (hung_moves[i] > 0)
			log_hung_move(i, hung_moves[i], " of an array call");
	return moved;
}

/* Returns true when connection c can take a request: idle, and open or waiting to open again. */
static bool
bulk_idle(const bulk_connection *c)
{
	return c->req < 0 && (c->fd != PGINVALID_SOCKET || c->reopen);
}

/*
 * Sends the next request on idle connection c, opening it first when a
 * busy refusal closed it: to the server with the fewest requests in flight
 * other than the one that refused (while another runs).
 */
static void
bulk_send_idle(bulk_connection *c, groma_request **reqs, int n, bulk_pending *pending)
{
	if (c->reopen)
		bulk_open(c, pending, 1u << c->slot);
	bulk_send_next(c, reqs, n, pending);
}

/*
 * After an answer, sends the next request on one idle connection other
 * than c (left idle by a busy refusal), so the call's requests in flight
 * grow back by one an answer while the queue has room again.
 */
static void
bulk_wake_idle(bulk_connection *conns, int n_conns, const bulk_connection *c, groma_request **reqs, int n,
			   bulk_pending *pending)
{
	if (pending->n_retry == 0 && pending->next >= n)
		return;
	for (int k = 0; k < n_conns; k++)
		if (&conns[k] != c && bulk_idle(&conns[k]))
		{
			bulk_send_idle(&conns[k], reqs, n, pending);
			return;
		}
}

/*
 * Sends a request refused as busy again on an idle connection once its
 * delay has passed (the call waits for room in a full queue); true when it
 * sent one.
 */
static bool
bulk_resend_due(bulk_connection *conns, int n_conns, groma_request **reqs, int n, bulk_pending *pending)
{
	if (pending->resend_at == 0 || ms_left(pending->resend_at) > 0)
		return false;
	pending->resend_at = 0;
	for (int k = 0; k < n_conns; k++)
		if (bulk_idle(&conns[k]))
		{
			bulk_send_idle(&conns[k], reqs, n, pending);
			return true;
		}
	return false;
}

/*
 * Returns the milliseconds until the earliest deadline of conns'
 * outstanding requests or the next resend of a bulk call waiting for room
 * (pending), or -1 when there is none; *first is the connection whose
 * request has the earliest deadline (NULL when none has one).
 */
static long
bulk_wait_ms(bulk_connection *conns, int n_conns, const bulk_pending *pending, bulk_connection **first)
{
	/* (a resend due already is sent at the top of the loop: at least 1 ms, never taken for a deadline passed) */
	long		best = pending->resend_at != 0 ? Max(ms_left(pending->resend_at), 1) : -1;

	*first = NULL;
	for (int k = 0; k < n_conns; k++)
	{
		long		left;

		if (conns[k].req < 0 || conns[k].deadline == 0)
			continue;
		left = ms_left(conns[k].deadline);
		if (best < 0 || left <= best)
		{
			best = left;
			*first = &conns[k];
		}
	}
	return best;
}

/* Sends many requests over several connections, spread over the servers; see server_client.h. */
void
groma_client_call_many(groma_request **reqs, int n, groma_reply *replies, int in_flight, bool keep_image_faults,
					   int await_ms, volatile int *current)
{
	bulk_connection *conns;
	bool	   *got;
	int			todo = 0,
				n_conns;
	volatile int done = 0;
	bool		several;
	bulk_pending *pending;

	memset(replies, 0, sizeof(groma_reply) * n);
	n_answered_reqs = -1;
	for (int i = 0; i < n; i++)
		todo += reqs[i] != NULL;
	if (todo == 0)
		return;
	groma_client_require_registry();
	if (!exit_callback_registered)
	{
		before_shmem_exit(uncount_at_exit, 0);
		exit_callback_registered = true;
	}
	several = groma_registry_shared->n_servers > 1;
	n_conns = Min(Max(in_flight, 1), todo);
	conns = palloc(sizeof(bulk_connection) * n_conns);
	got = palloc0(sizeof(bool) * n);
	pending = palloc0(sizeof(bulk_pending));
	pending->retry = palloc(sizeof(int) * n);
	pending->conns = conns;
	pending->n_conns = n_conns;
	pending->wait.max_ms = await_ms;
	pending->wait.needs_model = true;
	pending->reqs = reqs;
	/* (room to name the requests answered, should the call fail: taken before, not while it fails) */
	if (answered_reqs != NULL)
		pfree(answered_reqs);
	answered_reqs = NULL;		/* (should the allocation fail) */
	answered_reqs = MemoryContextAlloc(TopMemoryContext, sizeof(int) * n);
	for (int k = 0; k < n_conns; k++)
	{
		conns[k].fd = PGINVALID_SOCKET;
		conns[k].slot = -1;
		conns[k].req = -1;
		conns[k].reopen = false;
	}
	PG_TRY();
	{
		bulk_make_wait_set(pending);
		/* each connection to the server with the fewest requests in flight then (its first request counted) */
		for (int k = 0; k < n_conns; k++)
		{
			bulk_open(&conns[k], pending, 0);
			bulk_send_next(&conns[k], reqs, n, pending);
		}
		while (done < todo)
		{
			WaitEvent	ev;
			bulk_connection *c,
					   *first;
			long		wait_ms;
			io_result	r;
			int			i;
			bool		resend;

			if (bulk_resend_due(conns, n_conns, reqs, n, pending))
				continue;
			if (several && bulk_leave_stuck(conns, n_conns, reqs, n, pending))
				continue;
			wait_ms = bulk_wait_ms(conns, n_conns, pending, &first);
			/* with other servers, look every SUSPENSION_CHECK_MS whether one holding our requests was suspended */
			if (several && bulk_outstanding(conns, n_conns) > 0)
				wait_ms = wait_ms < 0 ? SUSPENSION_CHECK_MS : Min(wait_ms, SUSPENSION_CHECK_MS);
			if (wait_ms == 0 && first != NULL)
				report_io_failure(first->slot, &first->snap, IO_TIMEOUT, groma_request_timeout);
			if (WaitEventSetWait(pending->set, wait_ms, &ev, 1, PG_WAIT_EXTENSION) == 0)
				continue;		/* a deadline passed: found above */
			if (ev.events & WL_LATCH_SET)
			{
				ResetLatch(MyLatch);
				CHECK_FOR_INTERRUPTS();
				continue;
			}
			if (!(ev.events & WL_SOCKET_READABLE))
				continue;
			c = (bulk_connection *) ev.user_data;
			if (c->fd == PGINVALID_SOCKET)
				continue;
			if (c->req < 0)
			{
				/* an idle connection the server closed: the call goes on with the others */
				closesocket(c->fd);	/* also leaves the wait set: a closed socket is never reported */
				c->fd = PGINVALID_SOCKET;
				if (bulk_outstanding(conns, n_conns) == 0 && done < todo)
					report_io_failure(c->slot, &c->snap, IO_CLOSED, groma_request_timeout);
				continue;
			}
			i = c->req;
			*current = i;		/* until its reply is checked: an error names the image (if it is the image's) */
			r = read_reply(c->fd, reqs[i], &replies[i], c->deadline);
			bulk_uncount_one(c->slot);
			/*
			 * a server gone before it read the request leaves the call while
			 * another runs, as for single calls; else the call may wait for it.
			 * So does one lost while its model call worked for others only
			 */
			resend = r == IO_UNREAD || (r == IO_CLOSED && bulk_lost_elsewhere(c, reqs[i], pending));
			/* (unless another request of the call was in the server's fatal model call: then the call fails) */
			if (resend && pending->wait.max_ms > 0)
				bulk_fail_with_fatal_call(c->slot, &c->snap, pending);
			if (resend && (bulk_move(c, pending) || bulk_await_restart(c, pending)))
			{
				*current = -1;
				bulk_send_next(c, reqs, n, pending);
				continue;
			}
			if (r != IO_OK)
				report_io_failure(c->slot, &c->snap, r, groma_request_timeout);
			*current = -1;
			/* so does a server without a model to run; one stopping may be waited for */
			if (replies[i].status.code == GROMA_ERR_UNAVAILABLE &&
				(bulk_move(c, pending) || bulk_await_stopped(c, pending)))
			{
				groma_reply_free(&replies[i]);
				memset(&replies[i], 0, sizeof(replies[i]));
				bulk_send_next(c, reqs, n, pending);
				continue;
			}
			if (bulk_yield_busy(conns, n_conns, c, &replies[i], pending))
				continue;
			if (!keep_image_faults || !groma_status_is_image_fault(&replies[i].status))
			{
				/* (a size limit of the request's arguments, not of its image, is not blamed on the image) */
				*current = groma_status_is_image_fault(&replies[i].status) ? i : -1;
				check_reply(c->slot, &replies[i]);
				*current = -1;
			}
			got[i] = true;
			done++;
			groma_progress_chunk_answered(done);
			bulk_send_next(c, reqs, n, pending);
			bulk_wake_idle(conns, n_conns, c, reqs, n, pending);
		}
	}
	PG_CATCH();
	{
		if (pending->set != NULL)
			FreeWaitEventSet(pending->set);
		for (int k = 0; k < n_conns; k++)
			if (conns[k].fd != PGINVALID_SOCKET)
				closesocket(conns[k].fd);
		bulk_uncount_all();
		n_answered_reqs = 0;
		for (int i = 0; i < n; i++)
			if (got[i])
			{
				answered_reqs[n_answered_reqs++] = i;
				groma_reply_free(&replies[i]);
			}
		PG_RE_THROW();
	}
	PG_END_TRY();
	FreeWaitEventSet(pending->set);
	for (int k = 0; k < n_conns; k++)
		if (conns[k].fd != PGINVALID_SOCKET)
			closesocket(conns[k].fd);
	pfree(conns);
	pfree(got);
	pfree(pending->retry);
	pfree(pending);
}
