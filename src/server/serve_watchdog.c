/*
 * serve_watchdog.c - the watchdog thread.  A hung GPU, a kernel that never
 * ends or a deadlock leaves groma-server running but answering nothing:
 * every request sent to it would wait until its client's timeout, and the
 * launcher, which sees a live process, would never replace it.  The
 * watchdog times the scheduler's model call in progress, how long the
 * server's lock is held, and how long the model load goes without reading
 * a byte; past --watchdog-s it logs what hung, hangs up every connection
 * (so their clients get an error at once, even when the exit itself then
 * blocks in a GPU driver's teardown) and exits the process
 * (GROMA_SERVER_EXIT_HUNG), and the launcher starts a fresh server.
 * It keeps watching during a shutdown, which waits for the scheduler.
 * A gap between two of its looks counts a tick and a quarter at most, so
 * that time this process spends stopped (SIGSTOP, a debugger) is mostly
 * not counted; time a busy CPU slows the call itself counts.
 */
#define _GNU_SOURCE				/* pthread_mutex_clocklock */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "serve_internal.h"
#include "../model/weight_source.h"

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
 * Ends socket fd's connections at once: a listening socket, or a
 * connection with bytes the server never read, is closed (its descriptor
 * then names /dev/null), so that its clients get a reset and know their
 * request was not read; any other connection is shut down (a thread may be
 * blocked reading it, which would keep a closed socket open).
 */
static void
hang_up_socket(int fd, int devnull)
{
	int			listening = 0;
	int			unread = 0;
	socklen_t	len = sizeof(listening);

	if ((getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening) ||
		(ioctl(fd, SIOCINQ, &unread) == 0 && unread > 0))
	{
		if (devnull >= 0 && dup2(devnull, fd) >= 0)
			return;
	}
	shutdown(fd, SHUT_RDWR);
}

/* Hangs up descriptor fd (above stderr, other than skip) when it is a socket. */
static void
hang_up_if_socket(int fd, int skip, int devnull)
{
	struct stat st;

	if (fd > STDERR_FILENO && fd != skip && fd != devnull && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
		hang_up_socket(fd, devnull);
}

/* Returns the number a directory entry's name spells (a /proc/self/fd entry), or -1 for "." and "..". */
static int
descriptor_named(const char *name)
{
	int			fd = 0;

	if (name[0] < '0' || name[0] > '9')
		return -1;
	for (const char *c = name; *c >= '0' && *c <= '9'; c++)
		fd = fd * 10 + (*c - '0');
	return fd;
}

/*
 * Hangs up every socket the process holds, listing /proc/self/fd with
 * getdents64 (no allocation: the hung thread may hold any lock), or trying
 * the first 4096 descriptors where /proc cannot be read.
 */
static void
hang_up_sockets(void)
{
	char		buf[4096];
	int			devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int			dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	long		n;

	if (dir < 0)
	{
		for (int fd = STDERR_FILENO + 1; fd < 4096; fd++)
			hang_up_if_socket(fd, -1, devnull);
		return;
	}
	while ((n = syscall(SYS_getdents64, dir, buf, sizeof(buf))) > 0)
	{
		for (long at = 0; at < n;)
		{
			/* struct linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name */
			unsigned short reclen;
			int			fd = descriptor_named(buf + at + 19);

			memcpy(&reclen, buf + at + 16, sizeof(reclen));
			if (reclen == 0)
				break;
			if (fd >= 0)
				hang_up_if_socket(fd, dir, devnull);
			at += reclen;
		}
	}
	close(dir);
}

/*
 * Says why groma-server is taken as hung (what, for how long, and its
 * likely causes), shows it in the beacon, hangs up its connections, parks
 * the main thread and exits at once (the hung thread could not take part
 * in a shutdown).  The line goes out with one write(2), which a full log
 * pipe refuses rather than blocks (serve_log_never_block).
 */
static void
exit_hung(serve_state *s, const char *what, double seconds, const char *causes)
{
	char		line[640];
	int			n;

	serve_log_silence();
	n = snprintf(line, sizeof(line), "error: %s for %.1f s, longer than --watchdog-s %d: groma-server is hung (%s) "
				 "and exits with status %d so that the launcher starts it again\n", what, seconds, s->opt->watchdog_s,
				 causes, GROMA_SERVER_EXIT_HUNG);
	if (n > 0 && write(STDERR_FILENO, line, (size_t) n < sizeof(line) ? (size_t) n : sizeof(line) - 1) < 0)
		n = 0;					/* nothing more can be said */
	if (s->beacon != NULL)
		__atomic_store_n(&s->beacon->hung, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&s->exiting_hung, 1, __ATOMIC_RELEASE);
	hang_up_sockets();
	/* the main thread leaves its poll (which holds the listener open) and waits for the exit */
	if (write(s->stop_pipe[1], "h", 1) < 0)
		n = 0;
	serve_test_exit_delay(s);
	_exit(GROMA_SERVER_EXIT_HUNG);
}

/* Returns the likely causes of a hung model call or lock on s's device. */
static const char *
call_causes(const serve_state *s)
{
	return strncmp(s->device, "cpu", 3) == 0 ? "a deadlock, or a CPU too busy to finish the work in time" :
		"a GPU that no longer answers, or a deadlock";
}

/* Returns the likely causes of a model load that reads nothing on s's device. */
static const char *
load_causes(const serve_state *s)
{
	return strncmp(s->device, "cpu", 3) == 0 ? "a file system that no longer answers, or a deadlock" :
		"a GPU or a file system that no longer answers, or a deadlock";
}

/* What the watchdog keeps between its looks. */
typedef struct watch
{
	serve_state *s;
	long		limit_ms;		/* --watchdog-s in milliseconds */
	long		tick_ms;		/* between looks: a quarter of the limit, at most a second */
	int64_t		call_since;		/* the model call being timed (its call_since_ms), 0: none */
	double		call_ran_ms;	/* how long it has run while this process ran */
	uint64_t	load_read;		/* bytes of weights the model load had read at the last look */
	double		load_still_ms;	/* how long the load has gone without reading more, while this process ran */
	int64_t		lock_stuck_since;	/* what the beacon shows of the lock (lock_stuck_since_ms) */
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

/* Writes to the beacon since when the lock has been found held (0: taken at the last look), if that changed. */
static void
show_lock_stuck(watch *w, int64_t since_ms)
{
	if (w->s->beacon == NULL || since_ms == w->lock_stuck_since)
		return;
	w->lock_stuck_since = since_ms;
	__atomic_store_n(&w->s->beacon->lock_stuck_since_ms, since_ms, __ATOMIC_RELEASE);
}

/*
 * Takes and releases the lock, trying a tick at a time; the beacon shows
 * since when it has been found held, so that backends send new calls
 * elsewhere; exits the process once it was held past the limit.
 */
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
		{
			show_lock_stuck(w, 0);
			return;				/* taken, or an error that says nothing of a hang */
		}
		if (held_ms == 0)
			show_lock_stuck(w, (int64_t) tried_at);
		held_ms += counted_ms(w, serve_now_ms() - tried_at);
		if (held_ms > w->limit_ms)
			exit_hung(w->s, "the server's lock has been held", held_ms / 1000.0, call_causes(w->s));
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
		exit_hung(s, what, w->call_ran_ms / 1000.0, call_causes(s));
}

/*
 * Times how long a model load in progress has gone without reading a byte
 * of weights, over elapsed_ms since the last look; exits the process past
 * the limit (a GPU or a file system that no longer answers).
 */
static void
check_load(watch *w, double elapsed_ms)
{
	serve_state *s = w->s;
	uint64_t	read = groma_weights_bound_bytes();
	bool		loading;

	/* a lock held now is check_lock's to time: this look is skipped rather than blocked on it */
	if (pthread_mutex_trylock(&s->lock) != 0)
		return;
	loading = s->state == GROMA_SERVER_LOADING && !s->stopping;
	pthread_mutex_unlock(&s->lock);
	if (!loading || read != w->load_read)
	{
		w->load_read = read;
		w->load_still_ms = 0;
		return;
	}
	w->load_still_ms += counted_ms(w, elapsed_ms);
	if (w->load_still_ms > w->limit_ms)
		exit_hung(s, "the model load has loaded no weights", w->load_still_ms / 1000.0, load_causes(s));
}

/* The watchdog thread: looks at the lock, the model call in progress and the model load every tick. */
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
		check_load(&w, now - last);
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
