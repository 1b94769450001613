/*
 * serve_test_stall.c - the hangs the watchdog's tests need, on request.
 * With GROMA_SERVER_TEST_STALL=1 in its environment (or the name of its
 * --socket file before the dot, such as server-0: that server alone),
 * groma-server stalls its scheduler for good on a request whose free
 * prompt asks for it, or whose image carries the words (a JPEG comment);
 * with GROMA_SERVER_TEST_CRASH=1 (or NAME) it dies of SIGSEGV on a
 * request whose image carries "groma test: crash", as a decoder's bug
 * could make it (=every: on every request, as a broken server would).
 * GROMA_SERVER_TEST_LOAD_STALL=MS (or NAME:MS, for
 * that server alone) makes its model load wait MS milliseconds before it
 * reads anything, and GROMA_SERVER_TEST_EXIT_DELAY=MS makes a hung
 * server wait that long between hanging up its connections and exiting
 * (as a GPU driver's teardown may).  Without these variables nothing
 * here has any effect.
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "serve_internal.h"

#define STALL_PROMPT "groma test: stall"
#define STALL_LOCKED_PROMPT "groma test: stall holding the lock"
#define CRASH_MARK "groma test: crash"

/* Returns true when name_len bytes of name are the name of socket_path's file up to a dot (server-0 for .../server-0.sock). */
static bool
names_server(const char *name, size_t name_len, const char *socket_path)
{
	const char *slash = strrchr(socket_path, '/');
	const char *file = slash != NULL ? slash + 1 : socket_path;

	return name_len > 0 && strncmp(file, name, name_len) == 0 && (file[name_len] == '\0' || file[name_len] == '.');
}

/* Returns true when variable is "1", or names socket_path's server. */
static bool
hook_enabled(const char *variable, const char *socket_path)
{
	const char *enabled = getenv(variable);

	if (enabled == NULL || enabled[0] == '\0')
		return false;
	return strcmp(enabled, "1") == 0 || names_server(enabled, strlen(enabled), socket_path);
}

/* Returns true when req's image holds the bytes of mark (in a JPEG comment, say). */
static bool
image_carries(const groma_request *req, const char *mark)
{
	size_t		len = strlen(mark);

	for (size_t at = 0; req->image != NULL && at + len <= req->image_len; at++)
		if (memcmp(req->image + at, mark, len) == 0)
			return true;
	return false;
}

/*
 * Returns the milliseconds that variable asks of socket_path's server: its
 * value MS, or NAME:MS where NAME names that server; 0 otherwise.
 */
static long
test_delay_ms(const char *variable, const char *socket_path)
{
	const char *value = getenv(variable);
	const char *colon;
	char	   *end;
	long		ms;

	if (value == NULL || value[0] == '\0')
		return 0;
	colon = strchr(value, ':');
	if (colon != NULL && !names_server(value, (size_t) (colon - value), socket_path))
		return 0;
	ms = strtol(colon != NULL ? colon + 1 : value, &end, 10);
	return *end == '\0' && ms > 0 ? ms : 0;
}

/* Stalls for good when the environment and a job's prompt ask for it; see serve_internal.h. */
void
serve_test_stall(const serve_state *s, serve_job *const *jobs, int n, bool locked)
{
	const char *prompt = locked ? STALL_LOCKED_PROMPT : STALL_PROMPT;

	if (!hook_enabled("GROMA_SERVER_TEST_STALL", s->opt->socket_path))
		return;
	for (int i = 0; i < n; i++)
	{
		const groma_request *req = &jobs[i]->req;
		bool		asked = req->kind == GROMA_MSG_GENERATE && req->task == -1 && req->text != NULL &&
			strcmp(req->text, prompt) == 0;

		/* (the image's words stall a call without the lock only) */
		if (!asked && (locked || !image_carries(req, STALL_PROMPT)))
			continue;
		serve_log(SERVE_LOG_WARNING, "request %u stalls the scheduler for good%s, as GROMA_SERVER_TEST_STALL allows",
				  (unsigned) req->id, locked ? " holding the lock" : "");
		for (;;)
			sleep(3600);
	}
}

/* Dies of SIGSEGV when the environment and a job's image ask for it; see serve_internal.h. */
void
serve_test_crash(const serve_state *s, serve_job *const *jobs, int n)
{
	const char *crash = getenv("GROMA_SERVER_TEST_CRASH");
	bool		every = crash != NULL && strcmp(crash, "every") == 0;
	struct rlimit no_core = {0, 0};

	if (!every && !hook_enabled("GROMA_SERVER_TEST_CRASH", s->opt->socket_path))
		return;
	for (int i = 0; i < n; i++)
	{
		if (!every && !image_carries(&jobs[i]->req, CRASH_MARK))
			continue;
		serve_log(SERVE_LOG_WARNING, "request %u crashes groma-server, as GROMA_SERVER_TEST_CRASH allows",
				  (unsigned) jobs[i]->req.id);
		/* a test's crash leaves no core file (not dumpable: also where core_pattern pipes to a program) */
		setrlimit(RLIMIT_CORE, &no_core);
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
		signal(SIGSEGV, SIG_DFL);
		raise(SIGSEGV);
	}
}

/* Waits as GROMA_SERVER_TEST_LOAD_STALL asks before the model load reads anything, or until a stop; see serve_internal.h. */
void
serve_test_stall_load(serve_state *s)
{
	long		ms = test_delay_ms("GROMA_SERVER_TEST_LOAD_STALL", s->opt->socket_path);
	double		until = serve_now_ms() + (double) ms;
	bool		stopping = false;

	if (ms == 0)
		return;
	serve_log(SERVE_LOG_WARNING, "the model load waits %ld ms before it reads anything, as "
			  "GROMA_SERVER_TEST_LOAD_STALL asks", ms);
	while (!stopping && serve_now_ms() < until)
	{
		usleep(50 * 1000);
		pthread_mutex_lock(&s->lock);
		stopping = s->stopping;
		pthread_mutex_unlock(&s->lock);
	}
}

/* Waits as GROMA_SERVER_TEST_EXIT_DELAY asks; see serve_internal.h. */
void
serve_test_exit_delay(const serve_state *s)
{
	long		ms = test_delay_ms("GROMA_SERVER_TEST_EXIT_DELAY", s->opt->socket_path);

	if (ms > 0)
		usleep((useconds_t) (ms > 60000 ? 60000 : ms) * 1000);
}
