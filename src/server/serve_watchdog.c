/*
 * serve_watchdog.c - the watchdog thread.  A hung GPU, a kernel that never
 * ends or a deadlock leaves groma-server running but answering nothing:
 * every request sent to it would wait until its client's timeout, and the
 * launcher, which sees a live process, would never replace it.  The
 * watchdog times the scheduler's model call in progress and how long the
 * server's lock is held; past --watchdog-s it logs what hung and exits the
 * process (GROMA_SERVER_EXIT_HUNG), so its connections close, their
 * clients get an error at once, and the launcher starts a fresh server.
 * It keeps watching during a shutdown, which waits for the scheduler.
 */
#define _GNU_SOURCE				/* pthread_mutex_clocklock */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "serve_internal.h"

/* Marks the start of a scheduler model call; see serve_internal.h. */
void
serve_model_call_begin(serve_state *s, const char *what, int count)
{
	__atomic_store_n(&s->call_what, what, __ATOMIC_RELAXED);
	__atomic_store_n(&s->call_count, count, __ATOMIC_RELAXED);
	__atomic_store_n(&s->call_since_ms, (int64_t) serve_now_ms(), __ATOMIC_RELEASE);
}

/* Marks the end of the scheduler's model call; see serve_internal.h. */
void
serve_model_call_end(serve_state *s)
{
	__atomic_store_n(&s->call_since_ms, 0, __ATOMIC_RELEASE);
}

/* Logs why groma-server is taken as hung and exits at once: the hung thread could not take part in a shutdown. */
static void
exit_hung(const serve_state *s, const char *what, double seconds)
{
	serve_log(SERVE_LOG_ERROR, "%s for %.0f s, longer than --watchdog-s %d: groma-server is hung (a GPU that no "
			  "longer answers, or a deadlock) and exits with status %d so that the launcher starts it again",
			  what, seconds, s->opt->watchdog_s, GROMA_SERVER_EXIT_HUNG);
	_exit(GROMA_SERVER_EXIT_HUNG);
}

/* Returns true when the lock could be taken within limit_ms (it is then released at once). */
static bool
lock_taken_within(serve_state *s, long limit_ms)
{
	struct timespec deadline;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += limit_ms / 1000;
	deadline.tv_nsec += (limit_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L)
	{
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	if (pthread_mutex_clocklock(&s->lock, CLOCK_MONOTONIC, &deadline) != 0)
		return false;
	pthread_mutex_unlock(&s->lock);
	return true;
}

/* The watchdog thread: checks the lock and the model call in progress four times per limit, at most once a second. */
static void *
watchdog_main(void *arg)
{
	serve_state *s = arg;
	long		limit_ms = s->opt->watchdog_s * 1000L;
	long		tick_ms = limit_ms / 4 < 1000 ? limit_ms / 4 : 1000;

	for (;;)
	{
		struct timespec pause = {tick_ms / 1000, (tick_ms % 1000) * 1000000L};
		int64_t		since;

		while (nanosleep(&pause, &pause) != 0 && errno == EINTR)
			;
		if (!lock_taken_within(s, limit_ms))
			exit_hung(s, "the server's lock has been held", limit_ms / 1000.0);
		since = __atomic_load_n(&s->call_since_ms, __ATOMIC_ACQUIRE);
		if (since != 0 && serve_now_ms() - (double) since > (double) limit_ms)
		{
			char		what[128];
			const char *format = __atomic_load_n(&s->call_what, __ATOMIC_RELAXED);

			snprintf(what, sizeof(what), format, __atomic_load_n(&s->call_count, __ATOMIC_RELAXED));
			/* read again: the call may have ended while its description was read */
			if (__atomic_load_n(&s->call_since_ms, __ATOMIC_ACQUIRE) == since)
				exit_hung(s, what, (serve_now_ms() - (double) since) / 1000.0);
		}
	}
	return NULL;
}

/* Starts the watchdog thread; see serve_internal.h. */
bool
serve_watchdog_start(serve_state *s)
{
	pthread_t	thread;

	if (s->opt->watchdog_s == 0)
		return true;
	if (serve_thread_create(&thread, NULL, watchdog_main, s) != 0)
		return false;
	pthread_detach(thread);
	return true;
}
