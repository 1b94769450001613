/*
 * bulk_progress.c - progress of bulk captioning (and of the other array
 * calls) in shared memory
 * (bulk_progress.h) and the SQL functions behind the groma_progress view
 * and the groma_caption_table procedure's reports.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "catalog/pg_authid.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "bulk_progress.h"

PG_FUNCTION_INFO_V1(groma_progress_begin);
PG_FUNCTION_INFO_V1(groma_progress_advance);
PG_FUNCTION_INFO_V1(groma_progress_end);
PG_FUNCTION_INFO_V1(groma_progress_rows);

/* One backend's bulk job; pid 0 when it runs none. */
typedef struct progress_entry
{
	slock_t		mutex;			/* protects every other field */
	int			pid;
	Oid			userid;			/* the role running the job: seen by its members and by pg_read_all_stats */
	Oid			datid;
	Oid			relid;			/* the procedure's table; InvalidOid for an array call made by hand */
	bool		array_job;		/* the job is one array call, ended with it */
	groma_array_work work;		/* what that array call does */
	TimestampTz started_at;
	int64		rows_total;		/* rows to caption when the job began */
	int64		rows_done;		/* rows captioned and committed */
	int32		chunk_rows;		/* images of the array call running now (0: none) */
	int32		chunk_done;		/* of those, answered so far */
	bool		alone;			/* that call captions a lost chunk's rows one at a time */
	bool		waiting;		/* the job waits for a groma-server on its way back */
} progress_entry;

static progress_entry *progress_entries = NULL;	/* MaxBackends entries */
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static bool callbacks_registered = false;

/* Asks for one entry per backend, after the hooks installed before ours. */
static void
progress_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(mul_size(MaxBackends, sizeof(progress_entry)));
}

/* Attaches to the entries, initialising them when the postmaster creates shared memory. */
static void
progress_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	progress_entries = ShmemInitStruct("groma bulk progress",
									   mul_size(MaxBackends, sizeof(progress_entry)), &found);
	if (!found)
	{
		memset(progress_entries, 0, mul_size(MaxBackends, sizeof(progress_entry)));
		for (int i = 0; i < MaxBackends; i++)
			SpinLockInit(&progress_entries[i].mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Installs the shmem hooks; called from _PG_init under shared_preload_libraries only. */
void
groma_progress_request(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = progress_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = progress_shmem_startup;
}

/* Returns this backend's entry, or NULL when there is no shared memory for it. */
static volatile progress_entry *
my_entry(void)
{
	if (progress_entries == NULL || MyBackendId == InvalidBackendId || MyBackendId > MaxBackends)
		return NULL;
	return &progress_entries[MyBackendId - 1];
}

/* Clears this backend's entry (only_array_job: only when it holds an array call's job). */
static void
clear_my_entry(bool only_array_job)
{
	volatile progress_entry *e = my_entry();

	if (e == NULL)
		return;
	SpinLockAcquire(&e->mutex);
	if (e->pid == MyProcPid && (!only_array_job || e->array_job))
		e->pid = 0;
	SpinLockRelease(&e->mutex);
}

/* Ends the job when the transaction aborts: a cancelled or failed job does not show as running. */
static void
progress_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		clear_my_entry(false);
}

/* Ends an array call's own job when the subtransaction it ran in aborts. */
static void
progress_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						  SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		clear_my_entry(true);
}

/* Clears the entry when the backend exits. */
static void
progress_at_exit(int code, Datum arg)
{
	clear_my_entry(false);
}

/* Registers the callbacks that clear the entry, once per backend. */
static void
register_callbacks(void)
{
	if (callbacks_registered)
		return;
	RegisterXactCallback(progress_xact_callback, NULL);
	RegisterSubXactCallback(progress_subxact_callback, NULL);
	before_shmem_exit(progress_at_exit, 0);
	callbacks_registered = true;
}

/* Starts a job in this backend's entry (an array call's job is its own only chunk, doing work). */
static void
start_job(Oid relid, int64 total, bool array_job, groma_array_work work)
{
	volatile progress_entry *e = my_entry();

	if (e == NULL)
		return;
	register_callbacks();
	SpinLockAcquire(&e->mutex);
	e->pid = MyProcPid;
	e->userid = GetUserId();
	e->datid = MyDatabaseId;
	e->relid = relid;
	e->array_job = array_job;
	e->work = work;
	e->started_at = GetCurrentTimestamp();
	e->rows_total = total;
	e->rows_done = 0;
	e->chunk_rows = array_job ? (int32) total : 0;
	e->chunk_done = 0;
	e->alone = false;
	e->waiting = false;
	SpinLockRelease(&e->mutex);
}

/* Marks the start of an array call of n images; see bulk_progress.h. */
void
groma_progress_chunk_start(int n, groma_array_work work, bool alone)
{
	volatile progress_entry *e = my_entry();
	bool		running;

	if (e == NULL)
		return;
	SpinLockAcquire(&e->mutex);
	running = e->pid == MyProcPid && !e->array_job;
	if (running)
	{
		e->chunk_rows = n;
		e->chunk_done = 0;
		e->alone = alone;
	}
	SpinLockRelease(&e->mutex);
	if (!running)
		start_job(InvalidOid, n, true, work);
}

/* Marks whether the job waits for a groma-server; see bulk_progress.h. */
bool
groma_progress_set_waiting(bool waiting)
{
	volatile progress_entry *e = my_entry();
	bool		was = false;

	if (e == NULL)
		return false;
	SpinLockAcquire(&e->mutex);
	if (e->pid == MyProcPid)
	{
		was = e->waiting;
		e->waiting = waiting;
	}
	SpinLockRelease(&e->mutex);
	return was;
}

/* Records the answers received of the current array call; see bulk_progress.h. */
void
groma_progress_chunk_answered(int done)
{
	volatile progress_entry *e = my_entry();

	if (e == NULL)
		return;
	SpinLockAcquire(&e->mutex);
	if (e->pid == MyProcPid)
		e->chunk_done = done;
	SpinLockRelease(&e->mutex);
}

/* Marks the end of an array call; see bulk_progress.h. */
void
groma_progress_chunk_end(void)
{
	clear_my_entry(true);
}

/* SQL groma_progress_begin(tbl, total): the procedure starts captioning total rows of tbl. */
Datum
groma_progress_begin(PG_FUNCTION_ARGS)
{
	if (PG_GETARG_INT64(1) < 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("a job of %lld rows",
																		 (long long) PG_GETARG_INT64(1))));
	start_job(PG_GETARG_OID(0), PG_GETARG_INT64(1), false, GROMA_ARRAY_CAPTIONS);
	PG_RETURN_VOID();
}

/* SQL groma_progress_advance(done): the procedure has committed done rows in all. */
Datum
groma_progress_advance(PG_FUNCTION_ARGS)
{
	volatile progress_entry *e = my_entry();

	if (PG_GETARG_INT64(0) < 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("%lld rows done",
																		 (long long) PG_GETARG_INT64(0))));
	if (e != NULL)
	{
		SpinLockAcquire(&e->mutex);
		if (e->pid == MyProcPid && !e->array_job)
		{
			e->rows_done = PG_GETARG_INT64(0);
			e->chunk_rows = 0;
			e->chunk_done = 0;
		}
		SpinLockRelease(&e->mutex);
	}
	PG_RETURN_VOID();
}

/* SQL groma_progress_end(): the procedure has finished. */
Datum
groma_progress_end(PG_FUNCTION_ARGS)
{
	clear_my_entry(false);
	PG_RETURN_VOID();
}

/* The phase groma_progress shows for a job of groma_caption_table (e, a copy of its entry). */
static const char *
table_phase(const progress_entry *e)
{
	if (e->waiting)
		return "waiting for groma-server";
	if (e->alone)
		return "captioning a lost chunk's rows one at a time";
	return "captioning a table";
}

/* The phase groma_progress shows for an array call made by hand. */
static const char *
array_phase(groma_array_work work)
{
	switch (work)
	{
		case GROMA_ARRAY_REGIONS:
			return "finding regions in an array";
		case GROMA_ARRAY_GROUNDING:
			return "grounding a phrase in an array";
		case GROMA_ARRAY_ANSWERS:
			return "answering a prompt about an array";
		case GROMA_ARRAY_CAPTIONS:
			break;
	}
	return "captioning an array";
}

/* SQL groma_progress_rows(): one row per backend running a bulk job (the groma_progress view). */
Datum
groma_progress_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	bool		see_all = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);

	InitMaterializedSRF(fcinfo, 0);
	if (progress_entries == NULL)
		return (Datum) 0;
	for (int i = 0; i < MaxBackends; i++)
	{
		volatile progress_entry *e = &progress_entries[i];
		progress_entry copy;
		Datum		values[9];
		bool		nulls[9] = {0};

		SpinLockAcquire(&e->mutex);
		copy = *(progress_entry *) e;
		SpinLockRelease(&e->mutex);
		if (copy.pid == 0 || (!see_all && !has_privs_of_role(GetUserId(), copy.userid)))
			continue;
		values[0] = Int32GetDatum(copy.pid);
		values[1] = ObjectIdGetDatum(copy.datid);
		values[2] = ObjectIdGetDatum(copy.relid);
		nulls[2] = !OidIsValid(copy.relid);
		values[3] = CStringGetTextDatum(copy.array_job ? array_phase(copy.work) : table_phase(&copy));
		values[4] = Int64GetDatum(copy.rows_total);
		values[5] = Int64GetDatum(copy.rows_done);
		values[6] = Int32GetDatum(copy.chunk_rows);
		values[7] = Int32GetDatum(copy.chunk_done);
		values[8] = TimestampTzGetDatum(copy.started_at);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
