/*
 * process_state.h - what the kernel says a process is doing, read from
 * /proc/<pid>/stat: used by the launcher to tell a groma-server that is
 * stopped (SIGSTOP, a debugger) from one that runs, and to tell a live
 * leftover server from a zombie (server_pid_file.c).
 */
#ifndef GROMA_PROCESS_STATE_H
#define GROMA_PROCESS_STATE_H

#include <sys/types.h>

/*
 * Returns pid's state letter from /proc/<pid>/stat ('R', 'S', 'D', 'T' for
 * stopped by a signal, 't' for held by a tracer, 'Z' for a zombie, ...),
 * or '\0' when it cannot be read.
 */
char		groma_process_state(pid_t pid);

#endif							/* GROMA_PROCESS_STATE_H */
