/*
 * server_pid_file.h - the pid file of each groma-server the launcher
 * starts ($PGDATA/groma/server-N.pid), so that a launcher started after
 * one that died without stopping its servers (SIGKILL, the OOM killer)
 * can find and end a server left behind: a server stopped with SIGSTOP
 * never acts on its watch pipe's EOF nor on its parent-death signal, and
 * would otherwise keep its memory (and GPU) forever.
 */
#ifndef GROMA_SERVER_PID_FILE_H
#define GROMA_SERVER_PID_FILE_H

#include <sys/types.h>

/* Records that slot i's server runs as pid (a LOG line when the file cannot be written). */
void		groma_pid_file_write(int i, pid_t pid);

/* Removes slot i's pid file (its server has exited and been reaped). */
void		groma_pid_file_remove(int i);

/* Kills every server an earlier launcher of this data directory left running, for all slots. */
void		groma_pid_file_kill_leftovers(void);

#endif
