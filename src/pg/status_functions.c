/*
 * status_functions.c - groma_status(): one row per groma-server slot, from
 * the server's own STATUS when it answers and from the launcher's registry
 * otherwise.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "catalog/pg_authid.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "groma_pg.h"
#include "server_client.h"
#include "server_registry.h"
#include "text_encoding.h"

PG_FUNCTION_INFO_V1(groma_server_status);

#define STATUS_COLUMNS 22
#define STATUS_TIMEOUT_MS 1000	/* a server busier than this is shown from the registry */

/* Returns the name of a slot state as groma_status() shows it. */
static const char *
slot_state_name(groma_slot_state state)
{
	switch (state)
	{
		case GROMA_SLOT_UNUSED:
			return "unused";
		case GROMA_SLOT_STOPPED:
			return "stopped";
		case GROMA_SLOT_STARTING:
			return "starting";
		case GROMA_SLOT_RUNNING:
			return "running";
		case GROMA_SLOT_BACKOFF:
			return "backoff";
		case GROMA_SLOT_STOPPING:
			return "stopping";
	}
	return "unknown";
}

/* Fills one row of groma_status() for slot i. */
static void
status_row(int i, Datum *values, bool *nulls)
{
	groma_server_slot snap;
	groma_reply reply;
	char		how[128];
	bool		live;

	groma_registry_snapshot(i, &snap);
	live = groma_client_try_status(i, STATUS_TIMEOUT_MS, &reply);
	/* the server may have restarted during the STATUS: show the registry as it is now */
	groma_registry_snapshot(i, &snap);

	values[0] = Int32GetDatum(i);
	values[1] = CStringGetTextDatum(live ? groma_server_state_name(reply.state) :
									snap.state == GROMA_SLOT_RUNNING && snap.hung_exiting ? "hung" :
									snap.state == GROMA_SLOT_RUNNING && snap.suspended_since != 0 ? "suspended" :
									slot_state_name(snap.state));
	values[2] = Int32GetDatum(snap.pid);
	nulls[2] = snap.pid == 0;
	values[3] = CStringGetTextDatum(groma_server_text(live && reply.device && reply.device[0] ? reply.device : snap.device));
	/* a path of the server's files: shown, like groma.model_path itself, to pg_read_all_settings only */
	values[4] = CStringGetTextDatum(groma_server_text(live && reply.model_path ? reply.model_path : snap.model_path));
	nulls[4] = !has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_SETTINGS);
	values[5] = TimestampTzGetDatum(snap.started_at);
	nulls[5] = snap.started_at == 0;
	values[6] = Int32GetDatum(snap.restarts);
	groma_describe_exit(snap.last_exit_code, snap.last_exit_signal, (groma_exit_cause) snap.last_exit_cause, how, sizeof(how));
	values[7] = CStringGetTextDatum(how);
	nulls[7] = snap.last_exit_pid == 0;
	/* the last log line names other sessions' requests and the model's files */
	values[8] = CStringGetTextDatum(groma_server_text(snap.last_stderr));
	nulls[8] = snap.last_stderr[0] == '\0' || !groma_may_read_server_log();
	if (live)
	{
		values[9] = Int32GetDatum((int32) Min(reply.queue_depth, (uint32) PG_INT32_MAX));
		values[10] = Int32GetDatum((int32) Min(reply.running, (uint32) PG_INT32_MAX));
		values[11] = Int64GetDatum((int64) reply.served);
		values[12] = Int64GetDatum((int64) reply.failed);
		if (reply.load_total > 0)
			values[13] = CStringGetTextDatum(psprintf("%llu/%llu MB",
													  (unsigned long long) (reply.load_done >> 20),
													  (unsigned long long) (reply.load_total >> 20)));
		else
			nulls[13] = true;
		values[15] = Int32GetDatum((int32) Min(reply.batch, (uint32) PG_INT32_MAX));
		values[16] = Int32GetDatum((int32) Min(reply.max_batch, (uint32) PG_INT32_MAX));
		if (reply.kv_total > 0)
			values[17] = CStringGetTextDatum(psprintf("%llu/%llu MB",
													  (unsigned long long) ((reply.kv_used + (1 << 20) - 1) >> 20),
													  (unsigned long long) (reply.kv_total >> 20)));
		else
			nulls[17] = true;
		values[18] = CStringGetTextDatum(reply.weights ? reply.weights : "");
		nulls[18] = reply.weights == NULL || reply.weights[0] == '\0';
		values[19] = Int64GetDatum((int64) reply.cancelled);
		values[20] = Int64GetDatum((int64) reply.busy);
		groma_reply_free(&reply);
	}
	else
	{
		for (int k = 9; k <= 13; k++)
			nulls[k] = true;
		for (int k = 15; k <= 20; k++)
			nulls[k] = true;
	}
	values[14] = Int32GetDatum((int32) pg_atomic_read_u32(&snap.in_flight));
	/* from the launcher's look at the server's beacon (every 100 ms), so also while the server is hung */
	values[21] = Float8GetDatum((double) (GetCurrentTimestamp() - snap.call_started) / 1e6);
	nulls[21] = snap.call_started == 0 || !groma_client_look_is_fresh(&snap);
}

/*
 * Returns one row per server slot: (server, state, pid, device, model_path,
 * started_at, restarts, last_exit, last_stderr, queue_depth, running,
 * served, failed, load_progress, in_flight, batch, max_batch, kv_cache,
 * weights, cancelled, busy, model_call_s).
 */
Datum
groma_server_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	groma_client_require_registry();
	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < groma_registry_shared->n_servers; i++)
	{
		Datum		values[STATUS_COLUMNS];
		bool		nulls[STATUS_COLUMNS];

		memset(nulls, 0, sizeof(nulls));
		status_row(i, values, nulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
