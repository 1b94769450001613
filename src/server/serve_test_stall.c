/*
 * serve_test_stall.c - the hangs the watchdog's tests need, on request:
 * with GROMA_SERVER_TEST_STALL=1 in its environment (or a part of its
 * --socket path, such as server-0.sock: that server alone), groma-server
 * stalls its scheduler for good on a request whose free prompt asks for
 * it.  Without that variable no prompt has any effect.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve_internal.h"

#define STALL_PROMPT "groma test: stall"
#define STALL_LOCKED_PROMPT "groma test: stall holding the lock"

/* Stalls for good when the environment and a job's prompt ask for it; see serve_internal.h. */
void
serve_test_stall(const serve_state *s, serve_job *const *jobs, int n, bool locked)
{
	const char *enabled = getenv("GROMA_SERVER_TEST_STALL");
	const char *prompt = locked ? STALL_LOCKED_PROMPT : STALL_PROMPT;

	if (enabled == NULL || enabled[0] == '\0' ||
		(strcmp(enabled, "1") != 0 && strstr(s->opt->socket_path, enabled) == NULL))
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
