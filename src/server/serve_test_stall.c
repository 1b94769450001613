/*
 * serve_test_stall.c - the hangs the watchdog's tests need, on request:
 * with GROMA_SERVER_TEST_STALL=1 in its environment (or the name of its
 * --socket file before the dot, such as server-0: that server alone), groma-server
 * stalls its scheduler for good on a request whose free prompt asks for
 * it.  Without that variable no prompt has any effect.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve_internal.h"

#define STALL_PROMPT "groma test: stall"
#define STALL_LOCKED_PROMPT "groma test: stall holding the lock"

/* Returns true when GROMA_SERVER_TEST_STALL is "1", or the name of socket_path's file up to a dot (server-0 for .../server-0.sock). */
static bool
stall_enabled(const char *socket_path)
{
	const char *enabled = getenv("GROMA_SERVER_TEST_STALL");
	const char *slash = strrchr(socket_path, '/');
	const char *name = slash != NULL ? slash + 1 : socket_path;
	size_t		len;

	if (enabled == NULL || enabled[0] == '\0')
		return false;
	if (strcmp(enabled, "1") == 0)
		return true;
	len = strlen(enabled);
	return strncmp(name, enabled, len) == 0 && (name[len] == '\0' || name[len] == '.');
}

/* Stalls for good when the environment and a job's prompt ask for it; see serve_internal.h. */
void
serve_test_stall(const serve_state *s, serve_job *const *jobs, int n, bool locked)
{
	const char *prompt = locked ? STALL_LOCKED_PROMPT : STALL_PROMPT;

	if (!stall_enabled(s->opt->socket_path))
		return;
	for (int i = 0; i < n; i++)
	{
		const groma_request *req = &jobs[i]->req;

		if (req->kind != GROMA_MSG_GENERATE || req->task != -1 || req->text == NULL || strcmp(req->text, prompt) != 0)
			continue;
		serve_log(SERVE_LOG_WARNING, "request %u stalls the scheduler for good%s, as GROMA_SERVER_TEST_STALL allows",
				  (unsigned) req->id, locked ? " holding the lock" : "");
		for (;;)
			sleep(3600);
	}
}
