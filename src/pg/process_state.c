/*
 * process_state.c - reads a process's scheduling state from /proc/<pid>/stat
 * (process_state.h).
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>

#include "process_state.h"

/* Returns pid's state letter from /proc/<pid>/stat, or '\0' when it cannot be read; see process_state.h. */
char
groma_process_state(pid_t pid)
{
	char		path[64];
	char		buf[512];
	char	   *close_paren;
	ssize_t		n;
	int			fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return '\0';
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '\0';
	buf[n] = '\0';
	/* "pid (comm) S ...": comm may hold spaces and parentheses, so the state follows the last ')' */
	close_paren = strrchr(buf, ')');
	if (close_paren == NULL || close_paren[1] != ' ')
		return '\0';
	return close_paren[2];
}
