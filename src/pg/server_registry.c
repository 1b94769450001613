/*
 * server_registry.c - the shared-memory table of groma-server slots
 * (server_registry.h): allocated through the PostgreSQL 15 shmem hooks,
 * written by the launcher, read by backends.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "server_registry.h"

groma_registry *groma_registry_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Asks for the registry's shared memory, after the hooks installed before ours. */
static void
registry_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(groma_registry)));
}

/* Attaches to the registry, initialising it when the postmaster creates shared memory. */
static void
registry_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	groma_registry_shared = ShmemInitStruct("groma registry", sizeof(groma_registry), &found);
	if (!found)
	{
		memset(groma_registry_shared, 0, sizeof(groma_registry));
		for (int i = 0; i < GROMA_MAX_SERVERS; i++)
		{
			groma_server_slot *slot = &groma_registry_shared->slots[i];

			SpinLockInit(&slot->mutex);
			slot->state = GROMA_SLOT_UNUSED;
			slot->last_exit_code = -1;
			pg_atomic_init_u32(&slot->in_flight, 0);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Installs the shmem hooks; called from _PG_init under shared_preload_libraries only. */
void
groma_registry_request(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = registry_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = registry_shmem_startup;
}

/* Copies a slot under its spinlock; in_flight is read atomically. */
void
groma_registry_snapshot(int slot, groma_server_slot *out)
{
	volatile groma_server_slot *s;

	Assert(groma_registry_shared != NULL && slot >= 0 && slot < GROMA_MAX_SERVERS);
	s = &groma_registry_shared->slots[slot];
	SpinLockAcquire(&s->mutex);
	out->state = s->state;
	out->pid = s->pid;
	out->generation = s->generation;
	strlcpy(out->socket_path, (const char *) s->socket_path, sizeof(out->socket_path));
	strlcpy(out->device, (const char *) s->device, sizeof(out->device));
	strlcpy(out->model_path, (const char *) s->model_path, sizeof(out->model_path));
	out->started_at = s->started_at;
	out->restarts = s->restarts;
	out->last_exit_code = s->last_exit_code;
	out->last_exit_signal = s->last_exit_signal;
	out->last_exit_pid = s->last_exit_pid;
	out->last_exit_cause = s->last_exit_cause;
	strlcpy(out->last_stderr, (const char *) s->last_stderr, sizeof(out->last_stderr));
	out->suspended_since = s->suspended_since;
	out->call_started = s->call_started;
	out->lock_stuck_since = s->lock_stuck_since;
	out->hung_exiting = s->hung_exiting;
	out->looked_at = s->looked_at;
	out->watchdog_ms = s->watchdog_ms;
	out->server_state = s->server_state;
	out->n_in_call = s->n_in_call;
	SpinLockRelease(&s->mutex);
	SpinLockInit(&out->mutex);
	pg_atomic_init_u32(&out->in_flight, pg_atomic_read_u32(&groma_registry_shared->slots[slot].in_flight));
}

/*
 * Returns whether request id of process pid is among n entries of calls:
 * GROMA_FATAL_CALL_UNKNOWN for n <= 0, or when an entry's client is
 * unknown (pid 0: the server could not tell who sent it), since that one
 * may be ours.
 */
static groma_fatal_call_role
role_in(const groma_beacon_request *calls, int n, int pid, uint32 id)
{
	groma_fatal_call_role role = n > 0 ? GROMA_FATAL_CALL_NOT_IN : GROMA_FATAL_CALL_UNKNOWN;

	for (int i = 0; i < n; i++)
	{
		if (calls[i].client_pid == pid && calls[i].request_id == id)
			return GROMA_FATAL_CALL_IN;
		if (calls[i].client_pid == 0)
			role = GROMA_FATAL_CALL_UNKNOWN;
	}
	return role;
}

/* Looks for a request in the slot's model call in progress; see server_registry.h. */
bool
groma_registry_in_call(int slot, int pid, uint32 id)
{
	groma_server_slot *s = &groma_registry_shared->slots[slot];
	bool		found;

	SpinLockAcquire(&s->mutex);
	found = role_in(s->in_call, s->n_in_call, pid, id) == GROMA_FATAL_CALL_IN;
	SpinLockRelease(&s->mutex);
	return found;
}

/* Looks for a request in the model call of a server process that ended; see server_registry.h. */
groma_fatal_call_role
groma_registry_fatal_call_role(int slot, int server_pid, int pid, uint32 id)
{
	groma_server_slot *s = &groma_registry_shared->slots[slot];
	groma_fatal_call_role role = GROMA_FATAL_CALL_UNKNOWN;

	SpinLockAcquire(&s->mutex);
	if (server_pid > 0 && s->last_exit_pid == server_pid)
		role = role_in(s->last_exit_in_call, s->last_exit_n_in_call, pid, id);
	else if (server_pid > 0 && s->pid == server_pid && s->hung_exiting)
		role = role_in(s->in_call, s->n_in_call, pid, id);
	SpinLockRelease(&s->mutex);
	return role;
}
