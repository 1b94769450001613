/*
 * launcher.c - the "groma launcher" background worker: starts one
 * groma-server per registry slot, logs what the servers write, restarts
 * them with backoff when they exit, and publishes their state in the
 * shared registry (server_registry.h).
 *
 * Each server is a fork + exec of the groma-server program with its
 * settings on the command line.  It holds no descriptor of the postmaster's
 * but three: /dev/null as stdin, a pipe to the launcher as stdout/stderr,
 * and the read end of a "watch" pipe whose write end only the launcher
 * holds, so the server sees EOF there as soon as the launcher is gone
 * (PR_SET_PDEATHSIG is the second line of defence; a server that cannot
 * act on either, stopped by SIGSTOP, is killed by the next launcher
 * through its pid file, server_pid_file.h).  The launcher itself never
 * loads CUDA or the model.
 */
#include "postgres.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "groma_pg.h"
#include "server_client.h"
#include "process_state.h"
#include "server_pid_file.h"
#include "server_registry.h"

PGDLLEXPORT void groma_launcher_main(Datum main_arg);

#define BACKOFF_FIRST_MS 1000	/* delay before the first restart */
#define BACKOFF_MAX_MS 30000	/* the delay doubles up to this */
#define STABLE_UPTIME_MS 60000	/* a server up this long restarts after BACKOFF_FIRST_MS again */
#define LOOP_TIMEOUT_MS 100		/* the latch loop's tick (socket probes, backoff) */
#define OUTPUT_LINE_MAX 1024	/* longer lines are logged in pieces */
#define WATCH_FD 3				/* the descriptor the server reads the watch pipe on */
#define BEACON_FD 4				/* the descriptor of the memory it shares with the launcher (--beacon-fd) */
#define SUSPENDED_TICKS 2		/* looks in a row that find a server stopped before it counts as suspended */

/* What the launcher alone knows of a slot's process. */
typedef struct launcher_slot
{
	pid_t		pid;			/* 0 when not running */
	int			output_fd;		/* read end of its stdout/stderr pipe, -1 when closed */
	int			watch_fd;		/* write end of its watch pipe, -1 when closed */
	char		line[OUTPUT_LINE_MAX];	/* the output line being read */
	int			line_len;
	TimestampTz started_at;
	TimestampTz next_start;		/* in BACKOFF: when to start again */
	int			backoff_ms;		/* the delay after the next exit */
	char		device_id[16];	/* its groma.devices entry, "" when the list is empty */
	int			stopped_ticks;	/* loop ticks in a row that found its process stopped */
	int			beacon_fd;		/* a memfd its servers keep a groma_server_beacon in (valid when beacon is set) */
	groma_server_beacon *beacon;	/* that memory, mapped; NULL until made (or when it could not be) */
	int64		long_call_since;	/* the beacon's call_since_ms of a call logged as long; 0: none */
	int64		long_call_age_ms;	/* how long that call had lasted at the last look */
	int64		stuck_lock_since;	/* the beacon's lock_stuck_since_ms of a hold logged as long; 0: none */
	bool		was_ready;		/* its process has had its model loaded (its beacon said ready) */
} launcher_slot;

static launcher_slot slots[GROMA_MAX_SERVERS];
static int	n_slots = 0;
static volatile sig_atomic_t child_exited = false;
static bool stopping = false;	/* exits now are ours: record STOPPED, not BACKOFF */
static char *config_signature = NULL;

/* Registers the launcher worker; called from _PG_init under shared_preload_libraries. */
void
groma_launcher_register(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS;
	worker.bgw_start_time = BgWorkerStart_PostmasterStart;
	worker.bgw_restart_time = 5;
	strlcpy(worker.bgw_library_name, "groma", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "groma_launcher_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "groma launcher", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "groma launcher", BGW_MAXLEN);
	worker.bgw_notify_pid = 0;
	RegisterBackgroundWorker(&worker);
}

/* Sets a flag and the latch when a child exits; the latch loop reaps it. */
static void
handle_sigchld(SIGNAL_ARGS)
{
	int			save_errno = errno;

	child_exited = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

/* Returns the settings that shape a server's command line as one string, to detect changes on reload. */
static char *
current_signature(void)
{
	return psprintf("%s|%d|%d|%d|%d|%s|%s|%d|%d|%d|%d|%d|%d|%d|%d", groma_model_path, groma_device, groma_weights,
					groma_threads, groma_max_queue, groma_devices, groma_server_path, groma_log_level,
					groma_max_image_pixels, groma_max_batch, groma_kv_cache_mb, groma_kv_first_tokens,
					groma_activation_mb, groma_max_decodes, groma_server_watchdog);
}

/* Writes the path of the groma-server program into out (MAXPGPATH bytes). */
static void
server_program(char *out)
{
	if (groma_server_path != NULL && groma_server_path[0] != '\0')
		strlcpy(out, groma_server_path, MAXPGPATH);
	else
	{
		strlcpy(out, my_exec_path, MAXPGPATH);
		get_parent_directory(out);
		join_path_components(out, out, "groma-server");
	}
}

/* Sets a slot's shared state under its lock. */
static void
publish_state(int i, groma_slot_state state)
{
	groma_server_slot *s = &groma_registry_shared->slots[i];

	SpinLockAcquire(&s->mutex);
	s->state = state;
	if (state != GROMA_SLOT_STARTING && state != GROMA_SLOT_RUNNING && state != GROMA_SLOT_STOPPING)
	{
		s->pid = 0;
		s->suspended_since = 0;
		s->call_started = 0;
		s->lock_stuck_since = 0;
		s->hung_exiting = false;
		s->watchdog_ms = 0;
		s->server_state = GROMA_SERVER_STARTING;
		s->n_in_call = 0;
	}
	SpinLockRelease(&s->mutex);
}

/* Logs one line the server wrote and keeps it as the slot's last_stderr. */
static void
emit_line(int i, char *line, int len)
{
	groma_server_slot *s = &groma_registry_shared->slots[i];

	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
		len--;
	line[len] = '\0';
	if (len == 0)
		return;
	if (n_slots > 1)
		ereport(LOG, (errmsg("groma-server %d: %s", i, line)));
	else
		ereport(LOG, (errmsg("groma-server: %s", line)));
	SpinLockAcquire(&s->mutex);
	strlcpy(s->last_stderr, line, sizeof(s->last_stderr));
	SpinLockRelease(&s->mutex);
}

/* Closes a slot's output pipe, logging an unfinished last line first. */
static void
close_output(int i)
{
	launcher_slot *ls = &slots[i];

	if (ls->line_len > 0)
		emit_line(i, ls->line, ls->line_len);
	ls->line_len = 0;
	if (ls->output_fd >= 0)
		close(ls->output_fd);
	ls->output_fd = -1;
}

/* Reads what a slot's server has written, without blocking, logging each complete line. */
static void
read_output(int i)
{
	launcher_slot *ls = &slots[i];
	char		buf[4096];

	while (ls->output_fd >= 0)
	{
		ssize_t		n = read(ls->output_fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0)
		{
			close_output(i);
			return;
		}
		for (ssize_t k = 0; k < n; k++)
		{
			if (buf[k] == '\n' || ls->line_len == OUTPUT_LINE_MAX - 1)
			{
				emit_line(i, ls->line, ls->line_len);
				ls->line_len = 0;
				if (buf[k] == '\n')
					continue;
			}
			ls->line[ls->line_len++] = buf[k];
		}
	}
}

/* Closes every descriptor from first up (close_range, or a loop where the kernel lacks it). */
static void
close_descriptors_from(int first)
{
	long		max_fd;

	if (close_range((unsigned int) first, ~0U, 0) == 0)
		return;
	max_fd = sysconf(_SC_OPEN_MAX);
	if (max_fd < 0 || max_fd > 65536)
		max_fd = 65536;
	for (int fd = first; fd < max_fd; fd++)
		close(fd);
}

/*
 * In the forked child: arranges the descriptors, signals and environment a
 * fresh groma-server expects and execs it.  Never returns; uses only
 * async-signal-safe calls plus setenv (the launcher has one thread).
 */
static void
exec_server(const char *program, char **argv, int output_w, int watch_r, int beacon_fd, const char *cuda_id,
			pid_t launcher_pid)
{
	sigset_t	stop_only;
	int			nul,
				out,
				watch,
				beacon = -1;

	/* Die with the launcher; if it is already gone, do not start. */
	(void) prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != launcher_pid)
		_exit(1);
	/*
	 * The handlers and the ignored signals (SIGPIPE) are PostgreSQL's: reset
	 * them all.  SIGTERM and SIGINT stay blocked across the exec, until
	 * groma-server has its handler: a stop that came sooner (a reload right
	 * after the start) killed it by the default action, which reads as a crash.
	 */
	for (int sig = 1; sig < NSIG; sig++)
		(void) signal(sig, SIG_DFL);
	sigemptyset(&stop_only);
	sigaddset(&stop_only, SIGTERM);
	sigaddset(&stop_only, SIGINT);
	(void) sigprocmask(SIG_SETMASK, &stop_only, NULL);
	/* stdin /dev/null, stdout and stderr to the launcher, the watch pipe on WATCH_FD, the beacon on BEACON_FD */
	nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	out = fcntl(output_w, F_DUPFD_CLOEXEC, 10);
	watch = fcntl(watch_r, F_DUPFD_CLOEXEC, 10);
	if (beacon_fd >= 0)
		beacon = fcntl(beacon_fd, F_DUPFD_CLOEXEC, 10);
	if (nul < 0 || out < 0 || watch < 0 || dup2(nul, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0 ||
		dup2(watch, WATCH_FD) < 0 || (beacon_fd >= 0 && (beacon < 0 || dup2(beacon, BEACON_FD) < 0)))
		_exit(126);
	close_descriptors_from(beacon_fd >= 0 ? BEACON_FD + 1 : WATCH_FD + 1);
	if (cuda_id != NULL)
		setenv("CUDA_VISIBLE_DEVICES", cuda_id, 1);
	execv(program, argv);
	dprintf(2, "could not execute \"%s\": %s\n", program, strerror(errno));
	_exit(127);
}

/*
 * Schedules a slot's next start after its backoff delay and doubles the
 * delay; the delay starts again from BACKOFF_FIRST_MS after a process that
 * had loaded its model or had run for STABLE_UPTIME_MS.
 */
static void
schedule_restart(int i)
{
	launcher_slot *ls = &slots[i];
	TimestampTz now = GetCurrentTimestamp();

	/* the delay grows while starts fail; a process that loaded its model (then met an image that crashes it) did not */
	if (ls->started_at != 0 && (ls->was_ready || TimestampDifferenceExceeds(ls->started_at, now, STABLE_UPTIME_MS)))
		ls->backoff_ms = BACKOFF_FIRST_MS;
	ls->next_start = TimestampTzPlusMilliseconds(now, ls->backoff_ms);
	ls->backoff_ms = Min(ls->backoff_ms * 2, BACKOFF_MAX_MS);
	publish_state(i, stopping ? GROMA_SLOT_STOPPED : GROMA_SLOT_BACKOFF);
}

/*
 * Makes slot i's beacon, the shared memory its servers keep the start of
 * their model call in, once; returns it cleared, or NULL (logged) when no
 * memfd could be made: its servers then run without one.
 */
static groma_server_beacon *
slot_beacon(int i)
{
	launcher_slot *ls = &slots[i];

	if (ls->beacon == NULL)
	{
		int			fd = memfd_create("groma-server-beacon", MFD_CLOEXEC);
		void	   *mem = MAP_FAILED;

		if (fd >= 0 && ftruncate(fd, sizeof(groma_server_beacon)) == 0)
			mem = mmap(NULL, sizeof(groma_server_beacon), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (mem == MAP_FAILED)
		{
			ereport(LOG, (errmsg("could not make shared memory for groma-server %d: %m; a long model call will "
								 "not be seen", i)));
			if (fd >= 0)
				close(fd);
			return NULL;
		}
		ls->beacon_fd = fd;
		ls->beacon = mem;
	}
	/* no server writes it now: the last one has exited, the next is not forked yet */
	memset(ls->beacon, 0, sizeof(groma_server_beacon));
	return ls->beacon;
}

/* Forks and execs a slot's groma-server with the current settings; on failure schedules a retry. */
static void
start_server(int i)
{
	launcher_slot *ls = &slots[i];
	groma_server_slot *s = &groma_registry_shared->slots[i];
	char		program[MAXPGPATH];
	char		socket_path[64];
	char		device[32];
	char		max_queue[16],
				max_decodes[16],
				max_batch[16],
				kv_cache_mb[16],
				kv_first_tokens[16],
				activation_mb[16],
				threads[16],
				max_pixels[24],
				watchdog_s[16],
				watch_fd[8],
				beacon_fd[8];
	char	   *argv[40];
	int			argc = 0;
	int			output_pipe[2],
				watch_pipe[2];
	const char *dev = groma_device_setting_name(groma_device);
	bool		use_id = ls->device_id[0] != '\0';
	groma_server_beacon *beacon = slot_beacon(i);
	pid_t		pid;

	server_program(program);
	snprintf(socket_path, sizeof(socket_path), "groma/server-%d.sock", i);
	if (use_id && groma_device != GROMA_DEVICE_SETTING_CPU)
		snprintf(device, sizeof(device), "%s:%s", dev, ls->device_id);
	else
		strlcpy(device, dev, sizeof(device));
	snprintf(max_queue, sizeof(max_queue), "%d", groma_max_queue);
	snprintf(max_decodes, sizeof(max_decodes), "%d", groma_max_decodes);
	snprintf(max_batch, sizeof(max_batch), "%d", groma_max_batch);
	snprintf(kv_cache_mb, sizeof(kv_cache_mb), "%d", groma_kv_cache_mb);
	snprintf(kv_first_tokens, sizeof(kv_first_tokens), "%d", groma_kv_first_tokens);
	snprintf(activation_mb, sizeof(activation_mb), "%d", groma_activation_mb);
	snprintf(threads, sizeof(threads), "%d", groma_threads);
	snprintf(max_pixels, sizeof(max_pixels), "%d", groma_max_image_pixels);
	snprintf(watch_fd, sizeof(watch_fd), "%d", WATCH_FD);
	snprintf(beacon_fd, sizeof(beacon_fd), "%d", BEACON_FD);
	/* groma-server counts whole seconds: rounded up, so that 1500ms is not shorter than asked */
	snprintf(watchdog_s, sizeof(watchdog_s), "%d", (groma_server_watchdog + 999) / 1000);

	argv[argc++] = program;
	argv[argc++] = "--serve";
	argv[argc++] = "--socket";
	argv[argc++] = socket_path;
	if (groma_model_path[0] != '\0')
	{
		argv[argc++] = "--model";
		argv[argc++] = groma_model_path;
	}
	argv[argc++] = "--device";
	argv[argc++] = (char *) dev;
	if (use_id && groma_device != GROMA_DEVICE_SETTING_CPU)
	{
		argv[argc++] = "--device-id";
		argv[argc++] = ls->device_id;
	}
	/*
	 * groma.weights bf16/f16 are for GPUs: groma-server's default is bf16
	 * there and f32 on the CPU, so the default is left to it (device auto may
	 * resolve to the CPU, where it ignores 16-bit weights); int8 applies to
	 * both.
	 */
	if ((groma_device != GROMA_DEVICE_SETTING_CPU && groma_weights != GROMA_WEIGHTS_SETTING_BF16) ||
		groma_weights == GROMA_WEIGHTS_SETTING_INT8)
	{
		argv[argc++] = "--weights";
		argv[argc++] = (char *) groma_weights_setting_name(groma_weights);
	}
	if (groma_threads > 0)
	{
		argv[argc++] = "--threads";
		argv[argc++] = threads;
	}
	argv[argc++] = "--max-queue";
	argv[argc++] = max_queue;
	argv[argc++] = "--max-decodes";
	argv[argc++] = max_decodes;
	argv[argc++] = "--max-batch";
	argv[argc++] = max_batch;
	argv[argc++] = "--kv-cache-mb";
	argv[argc++] = kv_cache_mb;
	argv[argc++] = "--kv-first-tokens";
	argv[argc++] = kv_first_tokens;
	if (groma_activation_mb > 0)
	{
		argv[argc++] = "--act-mb";
		argv[argc++] = activation_mb;
	}
	argv[argc++] = "--log-level";
	argv[argc++] = (char *) groma_log_level_setting_name(groma_log_level);
	argv[argc++] = "--watch-fd";
	argv[argc++] = watch_fd;
	if (beacon != NULL)
	{
		argv[argc++] = "--beacon-fd";
		argv[argc++] = beacon_fd;
	}
	if (groma_server_watchdog >= 0)
	{
		argv[argc++] = "--watchdog-s";
		argv[argc++] = watchdog_s;
	}
	argv[argc++] = "--max-image-pixels";
	argv[argc++] = max_pixels;
	argv[argc] = NULL;

	if (pipe2(output_pipe, O_CLOEXEC) != 0)
	{
		ereport(LOG, (errcode_for_file_access(), errmsg("could not create a pipe for groma-server: %m")));
		schedule_restart(i);
		return;
	}
	if (pipe2(watch_pipe, O_CLOEXEC) != 0)
	{
		ereport(LOG, (errcode_for_file_access(), errmsg("could not create a pipe for groma-server: %m")));
		close(output_pipe[0]);
		close(output_pipe[1]);
		schedule_restart(i);
		return;
	}
	/* a socket file left by a server that crashed answers nothing: remove it before the new one binds */
	(void) unlink(socket_path);

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0)
		exec_server(program, argv, output_pipe[1], watch_pipe[0], beacon != NULL ? ls->beacon_fd : -1,
					use_id && groma_device != GROMA_DEVICE_SETTING_CPU ? ls->device_id : NULL,
					MyProcPid);
	close(output_pipe[1]);
	close(watch_pipe[0]);
	if (pid < 0)
	{
		ereport(LOG, (errmsg("could not fork groma-server: %m")));
		close(output_pipe[0]);
		close(watch_pipe[1]);
		schedule_restart(i);
		return;
	}
	(void) fcntl(output_pipe[0], F_SETFL, O_NONBLOCK);
	groma_pid_file_write(i, pid);
	ls->pid = pid;
	ls->output_fd = output_pipe[0];
	ls->watch_fd = watch_pipe[1];
	ls->line_len = 0;
	ls->started_at = GetCurrentTimestamp();
	ls->was_ready = false;

	SpinLockAcquire(&s->mutex);
	if (s->generation > 0)
		s->restarts++;
	s->generation++;
	s->state = GROMA_SLOT_STARTING;
	s->pid = pid;
	s->last_stderr[0] = '\0';	/* the last line of this process, not of the one before */
	strlcpy(s->socket_path, socket_path, sizeof(s->socket_path));
	strlcpy(s->device, device, sizeof(s->device));
	strlcpy(s->model_path, groma_model_path, sizeof(s->model_path));
	s->started_at = ls->started_at;
	SpinLockRelease(&s->mutex);

	ereport(LOG, (errmsg("groma launcher started groma-server %d (pid %d) on device %s with model \"%s\"",
						 i, (int) pid, device, groma_model_path)));
}

static bool read_beacon(int i, groma_server_beacon *out);

/*
 * Records the exit of a slot's server (status from waitpid; killed when
 * the launcher killed it for not stopping in time), with the requests of
 * the model call it was in (so that backends resend theirs that were not
 * in it), and schedules its restart.  A server whose beacon said it hung
 * ended by its watchdog, also when the launcher's kill came first.
 */
static void
server_exited(int i, int status, bool killed)
{
	launcher_slot *ls = &slots[i];
	groma_server_slot *s = &groma_registry_shared->slots[i];
	int			code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	int			signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	bool		hung = code == GROMA_SERVER_EXIT_HUNG ||
		(ls->beacon != NULL && __atomic_load_n(&ls->beacon->hung, __ATOMIC_ACQUIRE) != 0);
	groma_exit_cause cause = hung ? GROMA_EXIT_HUNG : killed ? GROMA_EXIT_FORCED : GROMA_EXIT_PLAIN;
	char		how[128];
	groma_server_beacon beacon;
	/* the model call it was in when it ended, whose requests may be what ended it (-1: in none, or unread) */
	bool		beacon_read = read_beacon(i, &beacon);
	int			n_fatal = beacon_read && beacon.call_since_ms != 0 && beacon.n_in_call > 0 ? beacon.n_in_call : -1;

	read_output(i);
	close_output(i);
	if (ls->watch_fd >= 0)
		close(ls->watch_fd);
	ls->watch_fd = -1;
	groma_describe_exit(code, signal, cause, how, sizeof(how));
	ereport(LOG,
			(errmsg("groma-server %d (pid %d) ended: %s", i, (int) ls->pid, how)));
	SpinLockAcquire(&s->mutex);
	s->last_exit_code = code;
	s->last_exit_signal = signal;
	s->last_exit_pid = ls->pid;
	s->last_exit_cause = cause;
	s->last_exit_n_in_call = n_fatal;
	if (n_fatal > 0)
		memcpy(s->last_exit_in_call, beacon.in_call, sizeof(groma_beacon_request) * n_fatal);
	s->hung_exiting = false;
	SpinLockRelease(&s->mutex);
	ls->pid = 0;
	groma_pid_file_remove(i);
	schedule_restart(i);
}

/* Reaps every exited child and records the exits of servers. */
static void
reap_children(void)
{
	pid_t		pid;
	int			status;

	child_exited = false;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
	{
		for (int i = 0; i < n_slots; i++)
			if (slots[i].pid == pid)
				server_exited(i, status, false);
	}
}

/* Returns true when a server listens on the socket path (relative to the data directory). */
static bool
socket_answers(const char *path)
{
	struct sockaddr_un addr;
	int			fd;
	bool		answers;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
	/* EAGAIN: the listen backlog is full, so something listens */
	answers = connect(fd, (struct sockaddr *) &addr, sizeof(addr)) == 0 || errno == EAGAIN;
	close(fd);
	return answers;
}

/*
 * Terminates every running server: SIGTERM, then SIGKILL for those still
 * there after GROMA_STOP_GRACE_MS (at once for one its watchdog is ending).  A server stopped by a signal (SIGSTOP) gets
 * SIGCONT too, so that it stops cleanly instead of being killed; one held
 * by a debugger cannot be resumed that way.
 */
static void
stop_servers(void)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), GROMA_STOP_GRACE_MS);
	bool		any;

	stopping = true;
	for (int i = 0; i < n_slots; i++)
	{
		if (slots[i].pid > 0 && slots[i].beacon != NULL && __atomic_load_n(&slots[i].beacon->hung, __ATOMIC_ACQUIRE))
		{
			/* its watchdog is ending it and it takes no signal in: no grace to wait out */
			publish_state(i, GROMA_SLOT_STOPPING);
			kill(slots[i].pid, SIGKILL);
		}
		else if (slots[i].pid > 0)
		{
			publish_state(i, GROMA_SLOT_STOPPING);
			kill(slots[i].pid, SIGTERM);
			if (groma_process_state(slots[i].pid) == 'T')
			{
				ereport(LOG, (errmsg("groma-server %d (pid %d) is stopped by a signal: resuming it so that it can stop",
									 i, (int) slots[i].pid)));
				kill(slots[i].pid, SIGCONT);
			}
		}
	}
	for (;;)
	{
		any = false;
		reap_children();
		for (int i = 0; i < n_slots; i++)
		{
			read_output(i);
			any |= slots[i].pid > 0;
		}
		if (!any || GetCurrentTimestamp() >= deadline)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 50, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	for (int i = 0; i < n_slots; i++)
	{
		int			status;

		if (slots[i].pid <= 0)
			continue;
		ereport(LOG, (errmsg("groma-server %d (pid %d) did not stop within %d ms: killing it",
							 i, (int) slots[i].pid, GROMA_STOP_GRACE_MS)));
		kill(slots[i].pid, SIGKILL);
		while (waitpid(slots[i].pid, &status, 0) < 0 && errno == EINTR)
			;
		server_exited(i, status, WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	}
	stopping = false;
}

/*
 * Sends SIGTERM to every server when the launcher exits for any reason
 * (they also see the watch pipe close), and SIGCONT: a server stopped by
 * SIGSTOP acts on neither until it runs again (the postmaster's death).
 */
static void
launcher_exit(int code, Datum arg)
{
	for (int i = 0; i < n_slots; i++)
		if (slots[i].pid > 0)
		{
			kill(slots[i].pid, SIGTERM);
			kill(slots[i].pid, SIGCONT);
		}
	if (groma_registry_shared != NULL)
	{
		for (int i = 0; i < n_slots; i++)
			publish_state(i, GROMA_SLOT_STOPPED);
		groma_registry_shared->launcher_running = false;
	}
}

/* Sizes the slots from groma.devices and publishes them; every slot is stopped when this runs. */
static void
configure_slots(void)
{
	char		ids[GROMA_MAX_SERVERS][16];
	int			n = groma_parse_devices(groma_devices, ids, GROMA_MAX_SERVERS);

	if (n < 0)
		n = 0;					/* the check hook makes this impossible */
	n_slots = Max(n, 1);
	for (int i = 0; i < GROMA_MAX_SERVERS; i++)
	{
		launcher_slot *ls = &slots[i];

		Assert(ls->pid == 0);
		ls->output_fd = -1;
		ls->watch_fd = -1;
		ls->line_len = 0;
		ls->started_at = 0;
		ls->stopped_ticks = 0;
		ls->long_call_since = 0;
		ls->stuck_lock_since = 0;
		ls->next_start = 0;
		ls->backoff_ms = BACKOFF_FIRST_MS;
		strlcpy(ls->device_id, i < n ? ids[i] : "", sizeof(ls->device_id));
		publish_state(i, i < n_slots ? GROMA_SLOT_STOPPED : GROMA_SLOT_UNUSED);
	}
	groma_registry_shared->n_servers = n_slots;
}

/*
 * Publishes whether a slot's server is suspended (stopped by SIGSTOP or held
 * by a debugger), so that backends send their calls to the other servers
 * meanwhile, and logs each change.  It is marked after SUSPENDED_TICKS
 * looks in a row find it stopped (a process traced by strace passes
 * through a tracer's stop at each system call); a zombie or an unreadable
 * state changes nothing (the exit is handled when it is reaped).
 */
static void
watch_suspension(int i)
{
	groma_server_slot *s = &groma_registry_shared->slots[i];
	launcher_slot *ls = &slots[i];
	char		state = ls->pid > 0 ? groma_process_state(ls->pid) : '\0';
	TimestampTz now = GetCurrentTimestamp();
	bool		was,
				suspended;

	if (ls->pid > 0 && (state == '\0' || state == 'Z' || state == 'X'))
		return;
	ls->stopped_ticks = state == 'T' || state == 't' ? ls->stopped_ticks + 1 : 0;
	suspended = ls->stopped_ticks >= SUSPENDED_TICKS;
	SpinLockAcquire(&s->mutex);
	was = s->suspended_since != 0;
	if (suspended && !was)
		s->suspended_since = now;
	else if (!suspended && was && ls->stopped_ticks == 0)
		s->suspended_since = 0;
	SpinLockRelease(&s->mutex);
	if (suspended && !was && s->hung_exiting)
		ereport(LOG, (errmsg("groma-server %d (pid %d) is suspended (%s) while its watchdog ends it as hung: it "
							 "exits once it runs again", i, (int) ls->pid,
							 state == 't' ? "held by a debugger" : "stopped by a signal")));
	else if (suspended && !was)
		ereport(LOG, (errmsg("groma-server %d (pid %d) is suspended (%s): calls go to the other servers until "
							 "it runs again", i, (int) ls->pid,
							 state == 't' ? "held by a debugger" : "stopped by a signal")));
	else if (was && ls->stopped_ticks == 0 && ls->pid > 0)
		ereport(LOG, (errmsg("groma-server %d (pid %d) runs again", i, (int) ls->pid)));
}

/*
 * Copies slot i's beacon into *out as a seqlock reader (the server makes
 * seq odd while it writes); returns false, out cleared, when there is no
 * beacon or its server kept writing.
 */
static bool
read_beacon(int i, groma_server_beacon *out)
{
	const groma_server_beacon *b = slots[i].beacon;

	memset(out, 0, offsetof(groma_server_beacon, in_call));
	out->state = GROMA_SERVER_STARTING;
	out->lock_stuck_since_ms = 0;
	out->hung = 0;
	if (b == NULL || slots[i].pid <= 0)
		return false;
	for (int attempt = 0; attempt < 8; attempt++)
	{
		uint32		seq = __atomic_load_n(&b->seq, __ATOMIC_ACQUIRE);

		if (seq & 1)
			continue;
		out->watchdog_ms = b->watchdog_ms;
		out->call_since_ms = b->call_since_ms;
		out->n_in_call = Min(Max(b->n_in_call, 0), GROMA_BEACON_MAX_IN_CALL);
		memcpy(out->in_call, b->in_call, sizeof(groma_beacon_request) * out->n_in_call);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		out->state = __atomic_load_n(&b->state, __ATOMIC_ACQUIRE);
		out->lock_stuck_since_ms = __atomic_load_n(&b->lock_stuck_since_ms, __ATOMIC_ACQUIRE);
		out->hung = __atomic_load_n(&b->hung, __ATOMIC_ACQUIRE);
		if (__atomic_load_n(&b->seq, __ATOMIC_RELAXED) == seq)
			return true;
	}
	memset(out, 0, offsetof(groma_server_beacon, in_call));
	out->state = GROMA_SERVER_STARTING;
	out->lock_stuck_since_ms = 0;
	out->hung = 0;
	return false;
}

/* Returns how long ago a CLOCK_MONOTONIC reading of since_ms milliseconds was (at least 0); 0 for none (since_ms 0). */
static int64
monotonic_age_ms(int64 since_ms)
{
	struct timespec mono;

	if (since_ms == 0)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &mono);
	return Max((int64) mono.tv_sec * 1000 + mono.tv_nsec / 1000000 - since_ms, 0);
}

/*
 * Publishes slot i's state and model call in progress (from its beacon):
 * when the call began, the requests it works for, and when the launcher
 * looked, so that backends send new calls to the other servers while one
 * lasts GROMA_LONG_CALL_MS or more (a hung GPU, a very long batch), or
 * while its lock has been held that long (a deadlock), and move the
 * requests queued behind a long call to a ready server; with several
 * servers, logs such a call or hold and its end.
 */
static void
watch_model_call(int i)
{
	groma_server_slot *s = &groma_registry_shared->slots[i];
	launcher_slot *ls = &slots[i];
	groma_server_beacon beacon;
	int64		age_ms,
				lock_age_ms;
	TimestampTz now = GetCurrentTimestamp();

	if (!read_beacon(i, &beacon) && ls->beacon != NULL && ls->pid > 0)
		return;					/* written all the while: the last look stands */
	/* the watchdog's line comes before its mark: backends told it hung find the line in last_stderr */
	if (beacon.hung != 0 && !s->hung_exiting)
		read_output(i);
	age_ms = monotonic_age_ms(beacon.call_since_ms);
	lock_age_ms = monotonic_age_ms(beacon.lock_stuck_since_ms);
	SpinLockAcquire(&s->mutex);
	s->call_started = beacon.call_since_ms != 0 ? now - age_ms * 1000 : 0;
	s->lock_stuck_since = beacon.lock_stuck_since_ms != 0 ? now - lock_age_ms * 1000 : 0;
	s->hung_exiting = beacon.hung != 0;
	/* with no beacon there was nothing to look at: backends go by the socket alone */
	s->looked_at = ls->beacon != NULL ? now : 0;
	s->watchdog_ms = beacon.watchdog_ms;
	s->server_state = beacon.state;
	ls->was_ready |= beacon.state == GROMA_SERVER_READY;
	s->n_in_call = beacon.n_in_call;
	memcpy(s->in_call, beacon.in_call, sizeof(groma_beacon_request) * beacon.n_in_call);
	SpinLockRelease(&s->mutex);
	if (ls->long_call_since != 0 && beacon.call_since_ms != ls->long_call_since)
	{
		if (ls->pid > 0)
			ereport(LOG, (errmsg("groma-server %d (pid %d): its long model call ended after about %.1f s",
								 i, (int) ls->pid, ls->long_call_age_ms / 1000.0)));
		ls->long_call_since = 0;
	}
	if (beacon.call_since_ms != 0 && age_ms >= GROMA_LONG_CALL_MS && ls->long_call_since == 0 && n_slots > 1)
	{
		ereport(LOG, (errmsg("groma-server %d (pid %d) has been in one model call for %.1f s: new calls go to the "
							 "other servers while it lasts", i, (int) ls->pid, age_ms / 1000.0)));
		ls->long_call_since = beacon.call_since_ms;
	}
	ls->long_call_age_ms = age_ms;
	if (ls->stuck_lock_since != 0 && beacon.lock_stuck_since_ms != ls->stuck_lock_since)
	{
		if (ls->pid > 0)
			ereport(LOG, (errmsg("groma-server %d (pid %d): its lock is free again", i, (int) ls->pid)));
		ls->stuck_lock_since = 0;
	}
	if (beacon.lock_stuck_since_ms != 0 && lock_age_ms >= GROMA_LONG_CALL_MS && ls->stuck_lock_since == 0 &&
		n_slots > 1)
	{
		ereport(LOG, (errmsg("groma-server %d (pid %d) has held its lock for %.1f s (a deadlock?): new calls go to "
							 "the other servers while it lasts", i, (int) ls->pid, lock_age_ms / 1000.0)));
		ls->stuck_lock_since = beacon.lock_stuck_since_ms;
	}
}

/* Starts what is due: stopped slots, and slots whose backoff has passed; promotes STARTING slots whose socket answers. */
static void
supervise(void)
{
	TimestampTz now = GetCurrentTimestamp();

	for (int i = 0; i < n_slots; i++)
	{
		groma_server_slot snap;

		watch_suspension(i);
		watch_model_call(i);
		groma_registry_snapshot(i, &snap);
		if (snap.state == GROMA_SLOT_STOPPED && slots[i].pid == 0)
			start_server(i);
		else if (snap.state == GROMA_SLOT_BACKOFF && now >= slots[i].next_start)
			start_server(i);
		else if (snap.state == GROMA_SLOT_STARTING && slots[i].pid > 0 && socket_answers(snap.socket_path))
		{
			publish_state(i, GROMA_SLOT_RUNNING);
			ereport(LOG, (errmsg("groma-server %d (pid %d) accepts connections on \"%s\"",
								 i, (int) slots[i].pid, snap.socket_path)));
		}
	}
}

/* Waits up to LOOP_TIMEOUT_MS for the latch, the postmaster's death or output from a server. */
static void
wait_for_events(void)
{
	WaitEventSet *set = CreateWaitEventSet(CurrentMemoryContext, 2 + GROMA_MAX_SERVERS);
	WaitEvent	events[2 + GROMA_MAX_SERVERS];

	AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	for (int i = 0; i < n_slots; i++)
		if (slots[i].output_fd >= 0)
			AddWaitEventToSet(set, WL_SOCKET_READABLE, slots[i].output_fd, NULL, NULL);
	(void) WaitEventSetWait(set, LOOP_TIMEOUT_MS, events, lengthof(events), PG_WAIT_EXTENSION);
	FreeWaitEventSet(set);
}

/*
 * SIGQUIT (an immediate shutdown, or the reset after a crash): asks every
 * server to stop and wakes a stopped one (SIGCONT), so that none outlives
 * the cluster in state T holding its memory, then exits at once as
 * PostgreSQL's own handler does (no exit callbacks: only async-signal-safe
 * calls here).
 */
static void
handle_sigquit(SIGNAL_ARGS)
{
	for (int i = 0; i < n_slots; i++)
		if (slots[i].pid > 0)
		{
			kill(slots[i].pid, SIGTERM);
			kill(slots[i].pid, SIGCONT);
		}
	_exit(2);
}

/* The worker's entry point: runs the servers until SIGTERM or the postmaster's death. */
void
groma_launcher_main(Datum main_arg)
{
	MemoryContext loop_context;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	pqsignal(SIGCHLD, handle_sigchld);
	pqsignal(SIGQUIT, handle_sigquit);
	BackgroundWorkerUnblockSignals();

	if (groma_registry_shared == NULL)
		elog(ERROR, "groma registry is not in shared memory");
	if (mkdir("groma", S_IRWXU) != 0 && errno != EEXIST)
		ereport(ERROR, (errcode_for_file_access(),
						errmsg("could not create directory \"%s\": %m", "groma")));
	/* a server an earlier launcher left (it died by SIGKILL while that server was stopped) goes first */
	groma_pid_file_kill_leftovers();
	before_shmem_exit(launcher_exit, 0);
	groma_registry_shared->launcher_running = true;
	configure_slots();
	config_signature = MemoryContextStrdup(TopMemoryContext, current_signature());
	loop_context = AllocSetContextCreate(TopMemoryContext, "groma launcher loop", ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		MemoryContext old = MemoryContextSwitchTo(loop_context);

		if (child_exited)
			reap_children();
		for (int i = 0; i < n_slots; i++)
			read_output(i);
		if (ShutdownRequestPending)
		{
			ereport(LOG, (errmsg("groma launcher stopping groma-server")));
			stop_servers();
			/* exit status 1: a stray SIGTERM outside a shutdown gets the launcher restarted after bgw_restart_time */
			proc_exit(1);
		}
		if (ConfigReloadPending)
		{
			char	   *signature;

			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			signature = current_signature();
			if (strcmp(signature, config_signature) != 0)
			{
				ereport(LOG, (errmsg("groma launcher restarting groma-server with the new settings")));
				stop_servers();
				configure_slots();
				pfree(config_signature);
				config_signature = MemoryContextStrdup(TopMemoryContext, signature);
			}
		}
		supervise();
		wait_for_events();
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		MemoryContextSwitchTo(old);
		MemoryContextReset(loop_context);
	}
}
