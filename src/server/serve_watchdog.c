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
 * A gap between two of its looks counts a tick and a quarter at most, so
 * that time this process spends stopped (SIGSTOP, a debugger) is mostly
 * not counted; time a busy CPU slows the call itself counts.  The model
 * load is not timed (a server that never finishes loading refuses model
 * requests at once).
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
serve_model_call_begin(serve_state *s, const char *what, int count, serve_job *const *jobs, int n)
{
	int64_t		now = (int64_t) serve_now_ms();

	__atomic_store_n(&s->call_what, what, __ATOMIC_RELEASE);
	__atomic_store_n(&s->call_count, count, __ATOMIC_RELEASE);
	__atomic_store_n(&s->call_since_ms, now, __ATOMIC_RELEASE);
	serve_beacon_publish(s, now, jobs, n);
}

/* Marks the end of the scheduler's model call; see serve_internal.h. */
void
serve_model_call_end(serve_state *s)
{
	__atomic_store_n(&s->call_since_ms, 0, __ATOMIC_RELEASE);
	serve_beacon_publish(s, 0, NULL, 0);
}

/*
 * Says why groma-server is taken as hung and exits at once (the hung thread
 * could not take part in a shutdown).  The line goes out with one write(2),
 * which a full log pipe refuses rather than blocks (serve_log_never_block).
 */
static void
exit_hung(const serve_state *s, const char *what, double seconds)
{
	char		line[512];
	int			n;

	n = snprintf(line, sizeof(line), "error: %s for %.1f s, longer than --watchdog-s %d: groma-server is hung (a GPU "
				 "that no longer answers, or a deadlock) and exits with status %d so that the launcher starts it "
				 "again\n", what, seconds, s->opt->watchdog_s, GROMA_SERVER_EXIT_HUNG);
	if (n > 0 && write(STDERR_FILENO, line, (size_t) n < sizeof(line) ? (size_t) n : sizeof(line) - 1) < 0)
		n = 0;					/* nothing more can be said */
	_exit(GROMA_SERVER_EXIT_HUNG);
}

/* What the watchdog keeps between its looks. */
typedef struct watch
{
	serve_state *s;
	long		limit_ms;		/* --watchdog-s in milliseconds */
	long		tick_ms;		/* between looks: a quarter of the limit, at most a second */
	int64_t		call_since;		/* the model call being timed (its call_since_ms), 0: none */
	double		call_ran_ms;	/* how long it has run while this process ran */
} watch;

/*
 * Returns the part of elapsed_ms to count against a limit: at most a tick
 * and a quarter.  A longer gap between two looks means this process was
 * stopped (SIGSTOP, a debugger) or starved of CPU meanwhile, which is not
 * a hang of its own: the server is given that time back.
 */
static double
counted_ms(const watch *w, double elapsed_ms)
{
	double		most = 1.25 * w->tick_ms;

	return elapsed_ms < most ? elapsed_ms : most;
}

/* Takes and releases the lock, trying a tick at a time; exits the process once the lock was held past the limit. */
static void
check_lock(watch *w)
{
	double		held_ms = 0;

	for (;;)
	{
		double		tried_at = serve_now_ms();
		struct timespec deadline = serve_clock_in(CLOCK_MONOTONIC, w->tick_ms);
		int			rc = pthread_mutex_clocklock(&w->s->lock, CLOCK_MONOTONIC, &deadline);

		if (rc == 0)
			pthread_mutex_unlock(&w->s->lock);
		if (rc != ETIMEDOUT)
			return;				/* taken, or an error that says nothing of a hang */
		held_ms += counted_ms(w, serve_now_ms() - tried_at);
		if (held_ms > w->limit_ms)
			exit_hung(w->s, "the server's lock has been held", held_ms / 1000.0);
	}
}

/* Times the scheduler's model call in progress over elapsed_ms since the last look; exits the process once it ran past the limit. */
static void
check_call(watch *w, double elapsed_ms)
{
	serve_state *s = w->s;
	int64_t		since = __atomic_load_n(&s->call_since_ms, __ATOMIC_ACQUIRE);
	char		what[128];

	if (since == 0)
	{
		w->call_since = 0;
		return;
	}
	if (since != w->call_since)
	{
		/* a call begun since the last look: it ran for at most that long */
		w->call_since = since;
		w->call_ran_ms = counted_ms(w, serve_now_ms() - (double) since);
	}
	else
		w->call_ran_ms += counted_ms(w, elapsed_ms);
	if (w->call_ran_ms <= w->limit_ms)
		return;
	snprintf(what, sizeof(what), __atomic_load_n(&s->call_what, __ATOMIC_ACQUIRE),
			 __atomic_load_n(&s->call_count, __ATOMIC_ACQUIRE));
	/* read again: the call may have ended (and another begun) while its description was read */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if (__atomic_load_n(&s->call_since_ms, __ATOMIC_ACQUIRE) == since)
		exit_hung(s, what, w->call_ran_ms / 1000.0);
}

/* The watchdog thread: looks at the lock and the model call in progress every tick. */
static void *
watchdog_main(void *arg)
{
	watch		w = {.s = arg};
	double		last = serve_now_ms();

	w.limit_ms = w.s->opt->watchdog_s * 1000L;
	w.tick_ms = w.limit_ms / 4 < 1000 ? w.limit_ms / 4 : 1000;
	for (;;)
	{
		struct timespec pause = {w.tick_ms / 1000, (w.tick_ms % 1000) * 1000000L};
		double		now;

		while (nanosleep(&pause, &pause) != 0 && errno == EINTR)
			;
		check_lock(&w);
		now = serve_now_ms();
		check_call(&w, now - last);
		last = now;
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
