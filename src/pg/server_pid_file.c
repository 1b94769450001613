/*
 * server_pid_file.c - pid files of the groma-server processes, and the
 * launcher's check at start for servers an earlier launcher left behind.
 *
 * A pid names a leftover only when that process still runs in this data
 * directory with this slot's socket on its command line: a pid reused by
 * another process is never signalled.
 */
#include "postgres.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include "process_state.h"
#include "server_pid_file.h"
#include "server_registry.h"

#define LEFTOVER_WAIT_MS 5000	/* how long to wait for a leftover to be gone after SIGTERM, then after SIGKILL */
#define CMDLINE_MAX 8192		/* the part of /proc/PID/cmdline read */

/* Writes slot i's pid file path ("groma/server-N.pid", relative to the data directory) into out. */
static void
pid_file_path(int i, char *out, size_t size)
{
	snprintf(out, size, "groma/server-%d.pid", i);
}

/* Records that slot i's server runs as pid (a LOG line when the file cannot be written). */
void
groma_pid_file_write(int i, pid_t pid)
{
	char		path[64];
	char		tmp[72];
	char		text[24];
	int			fd;
	int			len;
	bool		ok;

	pid_file_path(i, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	len = snprintf(text, sizeof(text), "%d\n", (int) pid);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, S_IRUSR | S_IWUSR);
	errno = 0;
	ok = fd >= 0 && write(fd, text, len) == len;
	if (!ok && errno == 0)
		errno = EIO;				/* a short write sets none */
	if (fd >= 0 && close(fd) != 0)
		ok = false;
	if (ok && rename(tmp, path) == 0)
		return;
	ereport(LOG, (errcode_for_file_access(),
				  errmsg("could not write the pid file \"%s\" of groma-server %d: %m", path, i),
				  errdetail("If the launcher dies without stopping it, a new launcher cannot find this server.")));
	(void) unlink(tmp);
}

/* Removes slot i's pid file (its server has exited and been reaped). */
void
groma_pid_file_remove(int i)
{
	char		path[64];

	pid_file_path(i, path, sizeof(path));
	if (unlink(path) != 0 && errno != ENOENT)
		ereport(LOG, (errcode_for_file_access(), errmsg("could not remove \"%s\": %m", path)));
}

/* Returns the pid in slot i's pid file, or 0 when there is none (or it does not hold a pid). */
static pid_t
read_pid_file(int i)
{
	char		path[64];
	char		text[24];
	int			fd;
	ssize_t		n;
	long		pid;
	char	   *end;

	pid_file_path(i, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	text[n] = '\0';
	errno = 0;
	pid = strtol(text, &end, 10);
	if (errno != 0 || end == text || (*end != '\n' && *end != '\0') || pid <= 1 || pid > INT_MAX)
		return 0;
	return (pid_t) pid;
}

/* Returns true when pid runs in this process's working directory (the data directory). */
static bool
runs_in_data_directory(pid_t pid)
{
	char		link[64];
	char		theirs[MAXPGPATH];
	char		ours[MAXPGPATH];
	ssize_t		n_theirs,
				n_ours;

	snprintf(link, sizeof(link), "/proc/%d/cwd", (int) pid);
	n_theirs = readlink(link, theirs, sizeof(theirs));
	n_ours = readlink("/proc/self/cwd", ours, sizeof(ours));
	return n_theirs > 0 && n_theirs == n_ours && n_ours < (ssize_t) sizeof(ours) &&
		memcmp(theirs, ours, n_ours) == 0;
}

/* Returns true when pid's command line has "--serve" and "--socket" followed by slot i's socket path. */
static bool
serves_slot(pid_t pid, int i)
{
	char		path[64];
	char		socket_path[64];
	char		cmdline[CMDLINE_MAX];
	int			fd;
	ssize_t		n;
	bool		serve = false,
				socket = false;
	const char *previous = "";

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int) pid);
	snprintf(socket_path, sizeof(socket_path), "groma/server-%d.sock", i);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, cmdline, sizeof(cmdline) - 1);
	close(fd);
	if (n <= 0)
		return false;
	cmdline[n] = '\0';
	/* the arguments, each ended by a NUL */
	for (const char *arg = cmdline; arg < cmdline + n; arg += strlen(arg) + 1)
	{
		serve |= strcmp(arg, "--serve") == 0;
		socket |= strcmp(previous, "--socket") == 0 && strcmp(arg, socket_path) == 0;
		previous = arg;
	}
	return serve && socket;
}

/* Waits up to LEFTOVER_WAIT_MS for pid to be gone (a zombie counts as gone); true when it is. */
static bool
wait_until_gone(pid_t pid)
{
	for (int waited = 0; waited < LEFTOVER_WAIT_MS; waited += 10)
	{
		char		state = groma_process_state(pid);

		if (state == '\0' || state == 'Z')
			return true;
		pg_usleep(10000L);
	}
	return false;
}

/* Kills every server an earlier launcher of this data directory left running, for all slots. */
void
groma_pid_file_kill_leftovers(void)
{
	for (int i = 0; i < GROMA_MAX_SERVERS; i++)
	{
		pid_t		pid = read_pid_file(i);
		char		state = pid > 0 ? groma_process_state(pid) : '\0';

		if (state != '\0' && state != 'Z' && runs_in_data_directory(pid) && serves_slot(pid, i))
		{
			ereport(LOG,
					(errmsg("groma launcher: killing groma-server %d (pid %d, state %c), left running by an earlier launcher",
							i, (int) pid, state)));
			/*
			 * SIGTERM, and SIGCONT for a stopped one: it exits 0 (where the
			 * postmaster is PID 1 it inherits orphans, and any other exit
			 * status would read to it as a crash); SIGKILL only if it is
			 * still there after LEFTOVER_WAIT_MS.
			 */
			(void) kill(pid, SIGTERM);
			(void) kill(pid, SIGCONT);
			if (!wait_until_gone(pid) && (kill(pid, SIGKILL) != 0 ? errno != ESRCH : !wait_until_gone(pid)))
				ereport(WARNING,
						(errmsg("groma-server %d (pid %d), left by an earlier launcher, is still there", i, (int) pid)));
		}
		groma_pid_file_remove(i);	/* also one without a pid, or of a process gone */
	}
}
