/*
 * serve.c - groma-server --serve: the listening socket (owner-only), the
 * accept loop, signals, and shutdown.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "serve_internal.h"

#ifdef GROMA_WITH_CUDA
#include "../../kernels/groma_cuda.h"
#endif

/* How many connections may wait to be accepted (also the most the shutdown takes from that queue). */
#define LISTEN_BACKLOG 256

/* An eventfd made before each accept (main thread only), so that an accepted connection never lacks its wake fd. */
static int	spare_wake_fd = -1;

/* The write end of the stop pipe, for the signal handler. */
static int	stop_fd = -1;

/* SIGTERM / SIGINT: wake the main thread (async-signal-safe). */
static void
on_stop_signal(int sig)
{
	int			saved = errno;

	if (stop_fd >= 0 && write(stop_fd, "s", 1) < 0)
		(void) 0;
	errno = saved;
}

/*
 * Checks that the socket's directory is the server owner's and closed to
 * everyone else (mode 0700 or tighter); returns false, saying why, otherwise.
 */
static bool
socket_dir_private(const char *path)
{
	char	   *copy = strdup(path);
	struct stat st;
	bool		ok;

	if (copy == NULL)
		return false;
	if (stat(dirname(copy), &st) != 0)
	{
		serve_log(SERVE_LOG_ERROR, "socket directory of %s: %s", path, strerror(errno));
		ok = false;
	}
	else if (st.st_uid != geteuid() || (st.st_mode & 077) != 0)
	{
		serve_log(SERVE_LOG_ERROR, "socket directory of %s must belong to this user with mode 0700 (it has %03o)",
				  path, (unsigned) (st.st_mode & 0777));
		ok = false;
	}
	else
		ok = true;
	free(copy);
	return ok;
}

/* The inode of the socket file this server created, so shutdown removes only its own. */
static ino_t socket_inode;

/* Removes the socket file when it is still the one this server bound (a newer server may have replaced it). */
static void
remove_own_socket(const char *path)
{
	struct stat st;

	if (stat(path, &st) == 0 && st.st_ino == socket_inode)
		unlink(path);
}

/* Binds and listens on path, replacing a stale socket; returns the fd or -1. */
static int
listen_on(const char *path)
{
	struct stat st;
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int			fd;

	if (path[0] == '\0')
	{
		serve_log(SERVE_LOG_ERROR, "the socket path is empty");
		return -1;
	}
	if (strlen(path) >= sizeof(addr.sun_path))
	{
		serve_log(SERVE_LOG_ERROR, "socket path %s is longer than %zu bytes", path, sizeof(addr.sun_path) - 1);
		return -1;
	}
	if (!socket_dir_private(path))
		return -1;
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* a socket that nobody answers on is a leftover of a killed server */
	if (connect(fd, (struct sockaddr *) &addr, sizeof(addr)) == 0)
	{
		serve_log(SERVE_LOG_ERROR, "another groma-server already listens on %s", path);
		close(fd);
		return -1;
	}
	close(fd);
	/* only a socket is removed: any other file there (a mistyped path) is the user's, and stays */
	if (lstat(path, &st) == 0)
	{
		if (!S_ISSOCK(st.st_mode))
		{
			serve_log(SERVE_LOG_ERROR, "cannot listen on %s: it is %s, not a socket (groma-server replaces only a "
					  "socket a killed server left there)", path,
					  S_ISDIR(st.st_mode) ? "a directory" : S_ISLNK(st.st_mode) ? "a symbolic link" :
					  S_ISREG(st.st_mode) ? "a regular file" : "a file of another kind");
			return -1;
		}
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *) &addr, sizeof(addr)) != 0 || chmod(path, 0600) != 0 ||
		listen(fd, LISTEN_BACKLOG) != 0)
	{
		serve_log(SERVE_LOG_ERROR, "cannot listen on %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (stat(path, &st) == 0)
		socket_inode = st.st_ino;
	return fd;
}

/* A connection accepted whose thread could not start (no thread or memory left): started before any other is accepted. */
static int	waiting_fd = -1;

/* What accept_one did. */
typedef enum accept_outcome
{
	ACCEPT_STARTED,				/* a connection of this user runs in its own thread */
	ACCEPT_REFUSED,				/* a peer of another user was turned away */
	ACCEPT_NONE,				/* accept failed (errno: none waits, or no descriptor is left) */
	ACCEPT_NO_THREAD			/* taken, but no thread could start for it (errno): kept in waiting_fd */
} accept_outcome;

/*
 * Waits for the end of the process when the watchdog is ending it: the main
 * thread then takes no connection, polls no closed listener, and does not
 * exit on its own.
 */
static void
park_if_exiting_hung(serve_state *s)
{
	if (!__atomic_load_n(&s->exiting_hung, __ATOMIC_ACQUIRE))
		return;
	for (;;)
		sleep(3600);
}

/*
 * Starts the connection kept in waiting_fd, or else accepts one and starts
 * its thread when the peer runs as this user (others are refused and
 * logged).  A connection whose thread cannot start is kept, not dropped.
 */
static accept_outcome
accept_one(serve_state *s, int listen_fd)
{
	struct ucred cred;
	socklen_t	len = sizeof(cred);
	int			fd = waiting_fd;

	if (spare_wake_fd < 0 && (spare_wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return ACCEPT_NONE;
	if (fd < 0)
	{
		fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			return ACCEPT_NONE;
		if (__atomic_load_n(&s->exiting_hung, __ATOMIC_ACQUIRE))
		{
			close(fd);			/* taken as the watchdog hung up: its client gets a reset, its request unread */
			park_if_exiting_hung(s);
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != geteuid())
		{
			serve_log(SERVE_LOG_WARNING, "refused a connection from uid %d (pid %d): only uid %d may use groma-server",
					  (int) cred.uid, (int) cred.pid, (int) geteuid());
			close(fd);
			return ACCEPT_REFUSED;
		}
	}
	if (!serve_connection_start(s, fd, spare_wake_fd))
	{
		waiting_fd = fd;
		return ACCEPT_NO_THREAD;
	}
	waiting_fd = -1;
	spare_wake_fd = -1;
	return ACCEPT_STARTED;
}

/* Returns the device --device names, "auto" resolved to cuda when a GPU is usable, else cpu. */
static const char *
resolve_device(const char *device)
{
	if (strcmp(device, "auto") != 0)
		return device;
#ifdef GROMA_WITH_CUDA
	{
		char		why[256];

		if (groma_cuda_device_count(why, sizeof(why)) > 0)
			return "cuda";
	}
#endif
	return "cpu";
}

/* Waits until the deadline at most for every accepted job to have its reply written and every request sent to be read. */
static void
wait_for_replies(serve_state *s, double until)
{
	pthread_mutex_lock(&s->lock);
	while ((s->outstanding > 0 || !serve_connections_quiet(s)) && serve_now_ms() < until)
	{
		serve_cond_wait_ms(&s->idle, &s->lock, 20);
	}
	pthread_mutex_unlock(&s->lock);
}

/* True for the errors of accept (or of the eventfd made before it) that mean no descriptor or memory is left. */
static bool
out_of_descriptors(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

/*
 * Takes the connections still in the listen backlog at shutdown (the
 * socket's name is gone, so no more come), so that what they sent is
 * answered, not dropped; until none waits or the deadline passes, whatever
 * --max-connections says.  Out of descriptors or threads, it hangs up the
 * idle connections to free theirs.
 */
static void
accept_backlog(serve_state *s, int listen_fd, double until)
{
	int			taken = 0,
				hung_up = 0;

	if (fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK) != 0)
		return;
	while (serve_now_ms() < until)
	{
		accept_outcome got;

		park_if_exiting_hung(s);
		got = accept_one(s, listen_fd);

		if (got == ACCEPT_STARTED)
			taken++;
		else if (got == ACCEPT_NO_THREAD || (got == ACCEPT_NONE && out_of_descriptors(errno)))
		{
			pthread_mutex_lock(&s->lock);
			hung_up += serve_connections_hang_up_idle(s);
			pthread_mutex_unlock(&s->lock);
			poll(NULL, 0, 10);	/* their threads close them */
		}
		else if (got == ACCEPT_NONE && errno != EINTR && errno != ECONNABORTED)
			break;				/* EAGAIN: none waits */
	}
	if (waiting_fd >= 0)
	{
		serve_log(SERVE_LOG_WARNING, "closing a connection that waited for a thread: %s",
				  serve_now_ms() >= until ? "the shutdown's time is up" : "the listening socket failed");
		close(waiting_fd);
		waiting_fd = -1;
	}
	if (taken > 0)
		serve_log(SERVE_LOG_INFO, "took %d connection(s) waiting to be accepted, to answer them as shutting down%s",
				  taken, hung_up > 0 ? " (out of descriptors or threads: idle connections were hung up for them)" : "");
}

/*
 * True when --max-connections are open: then the accept loop waits for one
 * to close (accept_held makes a closing connection write conn_closed_fd).
 */
static bool
hold_at_cap(serve_state *s)
{
	bool		held;

	pthread_mutex_lock(&s->lock);
	held = s->n_conns >= s->opt->max_connections;
	s->accept_held = held;
	pthread_mutex_unlock(&s->lock);
	return held;
}

/* Why the accept loop is not accepting, for its log: one warning when it starts, a line when it ends. */
typedef enum accept_pause
{
	PAUSE_NONE,
	PAUSE_RESOURCES,			/* out of descriptors, threads or memory: try again every 100 ms */
	PAUSE_CAP					/* --max-connections open: wait for one to close */
} accept_pause;

/*
 * Logs a change of why the accept loop waits and returns the new reason:
 * a warning when a pause starts (at the cap at most once a minute, since
 * a busy server may reach it again and again) and a line when it ends.
 */
static accept_pause
log_pause(serve_state *s, accept_pause was, accept_pause now, const char *why)
{
	static double last_cap_warning = -1e12;

	if (now == was)
		return now;
	if (now == PAUSE_RESOURCES)
		serve_log(SERVE_LOG_WARNING, "cannot %s: trying again every 100 ms", why);
	else if (now == PAUSE_CAP && serve_now_ms() - last_cap_warning >= 60000)
	{
		serve_log(SERVE_LOG_WARNING, "%d connections are open, the most --max-connections allows: "
				  "new ones wait until one closes (said at most once a minute)", s->opt->max_connections);
		last_cap_warning = serve_now_ms();
	}
	else if (now == PAUSE_CAP)
		serve_log(SERVE_LOG_DEBUG, "%d connections are open again: new ones wait", s->opt->max_connections);
	else
		serve_log(was == PAUSE_RESOURCES ? SERVE_LOG_INFO : SERVE_LOG_DEBUG, "accepting connections again");
	return now;
}

/* The accept loop: runs until a stop signal, end of file on the watch fd, or the scheduler stopping. */
static void
accept_loop(serve_state *s, int listen_fd)
{
	double		rest_until = 0;	/* after a failure for want of descriptors, threads or memory: rest until then */
	accept_pause pause = PAUSE_NONE;

	for (;;)
	{
		/* while resting or held the listener is left out: a waiting connection would wake poll at once, and spin */
		double		rest_ms = rest_until - serve_now_ms();
		bool		resting = rest_ms > 0;
		bool		held = !resting && hold_at_cap(s);
		bool		retry = !resting && !held && waiting_fd >= 0;
		struct pollfd fds[4] = {{resting || held || retry ? -1 : listen_fd, POLLIN, 0}, {s->stop_pipe[0], POLLIN, 0},
		{s->conn_closed_fd, POLLIN, 0}, {s->opt->watch_fd, POLLIN, 0}};
		int			n;
		accept_outcome got;
		char		why[128];

		if (held)
			pause = log_pause(s, pause, PAUSE_CAP, NULL);
		else if (pause == PAUSE_CAP)
			pause = log_pause(s, pause, PAUSE_NONE, NULL);
		n = poll(fds, s->opt->watch_fd >= 0 ? 4 : 3, retry ? 0 : resting ? (int) rest_ms + 1 : -1);
		if (n < 0 && errno != EINTR)
			break;
		if (fds[1].revents)
			park_if_exiting_hung(s);
		if (fds[1].revents)
		{
			serve_log(SERVE_LOG_INFO, "stop requested: shutting down");
			break;
		}
		if (fds[2].revents)
		{
			uint64_t	count;

			if (read(s->conn_closed_fd, &count, sizeof(count)) < 0)
				(void) 0;		/* read again next time */
		}
		if (s->opt->watch_fd >= 0 && fds[3].revents)
		{
			char		buf[64];

			if (read(s->opt->watch_fd, buf, sizeof(buf)) <= 0)
			{
				serve_log(SERVE_LOG_INFO, "the launcher is gone (end of file on fd %d): shutting down",
						  s->opt->watch_fd);
				break;
			}
		}
		if (!retry && !(fds[0].revents & POLLIN))
			continue;
		got = accept_one(s, listen_fd);
		if (got == ACCEPT_STARTED || got == ACCEPT_REFUSED)
			pause = log_pause(s, pause, PAUSE_NONE, NULL);
		else if (got == ACCEPT_NO_THREAD || out_of_descriptors(errno))
		{
			snprintf(why, sizeof(why), "%s a connection (%s)", got == ACCEPT_NO_THREAD ? "start a thread for" : "accept",
					 strerror(errno));
			pause = log_pause(s, pause, PAUSE_RESOURCES, why);
			rest_until = serve_now_ms() + 100;
		}
	}
	pthread_mutex_lock(&s->lock);
	s->accept_held = false;
	pthread_mutex_unlock(&s->lock);
}

/* Runs the server; see serve.h. */
int
groma_serve(const groma_cli_options *opt)
{
	static serve_state s;
	static groma_cli_options resolved;	/* opt with the device resolved; the threads read it */
	struct sigaction sa;
	sigset_t	stop_signals;
	pthread_t	scheduler;
	int			listen_fd;

	memset(&s, 0, sizeof(s));
	resolved = *opt;
	s.opt = &resolved;
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.work, NULL);
	pthread_cond_init(&s.idle, NULL);
	pthread_cond_init(&s.decode_done, NULL);
	s.conn_closed_fd = -1;
	if (!serve_log_set_level(opt->log_level))
	{
		fprintf(stderr, "groma-server: --log-level must be error, warning, info or debug\n");
		return 2;
	}
	/* a descriptor that is not open would be reused by our own sockets and watched by mistake */
	if (opt->watch_fd >= 0 && fcntl(opt->watch_fd, F_GETFD) < 0)
	{
		fprintf(stderr, "groma-server: --watch-fd %d is not an open file descriptor\n", opt->watch_fd);
		return 2;
	}
	resolved.device = resolve_device(opt->device);
	if (opt->device_id >= 0)
		snprintf(s.device, sizeof(s.device), "%s:%d", resolved.device, opt->device_id);
	else
		snprintf(s.device, sizeof(s.device), "%s", resolved.device);
	if (strcmp(resolved.device, "cpu") == 0 && opt->weights && strcmp(opt->weights, "f32") != 0 &&
		strcmp(opt->weights, "int8") != 0)
	{
		/* a 16-bit setting made for the GPU does not stop a CPU server (device auto may pick either) */
		serve_log(SERVE_LOG_INFO, "--weights %s applies to the GPU; the CPU computes in f32", opt->weights);
		resolved.weights = NULL;
	}
	if (resolved.watchdog_s < 0)
		resolved.watchdog_s = strcmp(resolved.device, "cpu") == 0 ? 0 : GROMA_SERVE_DEFAULT_WATCHDOG_S;
	if (opt->beacon_fd >= 0 && !serve_beacon_open(&s, opt->beacon_fd, resolved.watchdog_s))
		return 2;
	/* non-blocking: a storm of signals must not block the handler once the pipe is full (one byte wakes it) */
	if (pipe2(s.stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0 ||
		(s.conn_closed_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return GROMA_SERVE_EXIT_SETUP;
	stop_fd = s.stop_pipe[1];
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* the launcher starts us with both blocked until now: one already sent is taken here */
	serve_stop_signals(&stop_signals);
	pthread_sigmask(SIG_UNBLOCK, &stop_signals, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);

	serve_log_never_block();
	listen_fd = listen_on(opt->socket_path);
	if (listen_fd < 0)
		return GROMA_SERVE_EXIT_SETUP;
	serve_log(SERVE_LOG_INFO, "listening on %s (pid %d, device %s, max queue %d, max connections %d, max decodes %d)",
			  opt->socket_path, (int) getpid(), s.device, opt->max_queue, opt->max_connections, opt->max_decodes);
	if (resolved.watchdog_s > 0)
		serve_log(SERVE_LOG_INFO, "watchdog: a model call, a hold of the lock or a stretch of the model load "
				  "without loading weights longer than %d s ends this process", resolved.watchdog_s);
	else
		serve_log(SERVE_LOG_INFO, "no watchdog: a hung model call is not detected (--watchdog-s, "
				  "groma.server_watchdog under PostgreSQL, sets one)");
	/* the watchdog first: it needs nothing from the scheduler, and a failure leaves no thread behind */
	if (!serve_watchdog_start(&s) || !serve_scheduler_start(&s, &scheduler))
	{
		serve_log(SERVE_LOG_ERROR, "cannot start the watchdog or the scheduler thread");
		remove_own_socket(opt->socket_path);
		return GROMA_SERVE_EXIT_SETUP;
	}
	accept_loop(&s, listen_fd);

	/* shutdown: no new connections, queued and newly read requests answered, the running one cancelled */
	remove_own_socket(opt->socket_path);
	serve_drain(&s);
	accept_backlog(&s, listen_fd, serve_now_ms() + 2000);
	close(listen_fd);
	pthread_join(scheduler, NULL);
	wait_for_replies(&s, serve_now_ms() + 2000);
	serve_log(SERVE_LOG_INFO, "stopped (served %llu, failed %llu, cancelled %llu, refused as busy %llu)",
			  (unsigned long long) s.served, (unsigned long long) s.failed, (unsigned long long) s.cancelled,
			  (unsigned long long) s.busy);
	/* connection threads may still block in reads: leave without freeing what they use */
	park_if_exiting_hung(&s);
	return s.exit_code;
}
