/*
 * process_state.h - what the kernel says a process is doing, read from
 * /proc/<pid>/stat: used by the launcher to tell a groma-server that is
 * stopped (SIGSTOP, a debugger) from one that runs.
 */
#ifndef GROMA_PROCESS_STATE_H
#define GROMA_PROCESS_STATE_H

#include <stdbool.h>
#include <sys/types.h>

/* True when pid is stopped by a signal or held by a tracer (state T or t); false otherwise or when unknown. */
bool		groma_process_is_suspended(pid_t pid);

#endif							/* GROMA_PROCESS_STATE_H */
