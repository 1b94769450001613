/*
 * serve_beacon.c - the beacon: memory groma-server shares with its launcher
 * (--beacon-fd, protocol.h's groma_server_beacon), kept up to date with the
 * model call in progress and the requests it works for, so that backends
 * can tell a server in a call that lasts (a hung GPU) and move the
 * requests queued behind it to a server that is ready.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "serve_internal.h"
#include "../model/kv_pool.h"

/* a call works for the whole batch at most, or for one vision batch */
_Static_assert(GROMA_KV_POOL_MAX_BLOCKS <= GROMA_BEACON_MAX_IN_CALL, "a batch fits the beacon");
_Static_assert(SERVE_VISION_BATCH <= GROMA_BEACON_MAX_IN_CALL, "a vision batch fits the beacon");

/* Maps the beacon of --beacon-fd; see serve_internal.h. */
bool
serve_beacon_open(serve_state *s, int fd, int watchdog_s)
{
	struct stat st;
	groma_server_beacon *b;

	if (fstat(fd, &st) != 0)
	{
		fprintf(stderr, "groma-server: --beacon-fd %d is not an open file\n", fd);
		return false;
	}
	/* a file shorter than the beacon would fault on its first store: an older launcher's, which gets none */
	if (st.st_size < (off_t) sizeof(groma_server_beacon))
	{
		serve_log(SERVE_LOG_WARNING, "--beacon-fd %d has %lld bytes, fewer than this groma-server's %zu (a launcher "
				  "of another version: restart PostgreSQL after an upgrade): running without a beacon, so other "
				  "servers do not take over while this one hangs", fd, (long long) st.st_size,
				  sizeof(groma_server_beacon));
		return true;
	}
	b = mmap(NULL, sizeof(groma_server_beacon), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (b == MAP_FAILED)
	{
		fprintf(stderr, "groma-server: --beacon-fd %d cannot be mapped: %s\n", fd, strerror(errno));
		return false;
	}
	s->beacon = b;
	serve_beacon_publish(s, 0, NULL, 0);
	__atomic_store_n(&b->state, (int32_t) s->state, __ATOMIC_RELEASE);
	__atomic_store_n(&b->lock_stuck_since_ms, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&b->hung, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&b->watchdog_ms, watchdog_s * 1000, __ATOMIC_RELEASE);
	return true;
}

/* Writes the call in progress to the beacon, as a seqlock writer; see serve_internal.h. */
void
serve_beacon_publish(serve_state *s, int64_t since_ms, serve_job *const *jobs, int n)
{
	groma_server_beacon *b = s->beacon;
	uint32_t	seq;

	/* once the watchdog ends the server, the call it found hung stays there for the launcher to record */
	if (b == NULL || __atomic_load_n(&b->hung, __ATOMIC_ACQUIRE) != 0)
		return;
	seq = __atomic_load_n(&b->seq, __ATOMIC_RELAXED);
	__atomic_store_n(&b->seq, seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	b->call_since_ms = since_ms;
	b->n_in_call = n < GROMA_BEACON_MAX_IN_CALL ? n : GROMA_BEACON_MAX_IN_CALL;
	for (int i = 0; i < b->n_in_call; i++)
	{
		b->in_call[i].client_pid = (int32_t) jobs[i]->client_pid;
		b->in_call[i].request_id = jobs[i]->req.id;
	}
	__atomic_store_n(&b->seq, seq + 2, __ATOMIC_RELEASE);
}

/* Sets the server's state (under the lock) and shows it in the beacon; see serve_internal.h. */
void
serve_set_state(serve_state *s, groma_server_state state)
{
	s->state = state;
	if (s->beacon != NULL)
		__atomic_store_n(&s->beacon->state, (int32_t) state, __ATOMIC_RELEASE);
}
