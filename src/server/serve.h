/*
 * serve.h - groma-server --serve: the socket server that PostgreSQL
 * backends talk to (protocol.h).
 *
 * Threads: the main thread accepts connections and watches for SIGTERM and
 * the launcher's pipe; one thread per connection reads frames and answers
 * what needs no model (ping, status, image checks) at once; one scheduler
 * thread loads the model and runs queued requests in order.  The queue is a
 * list the scheduler takes from under one lock, so it can later take
 * several ready requests at once (batching).
 */
#ifndef GROMA_SERVE_H
#define GROMA_SERVE_H

#include "cli.h"

/* Queued requests allowed by default before new ones are refused as busy. */
#define GROMA_SERVE_DEFAULT_MAX_QUEUE 64

/* Open connections at most; more wait to be accepted until one closes. */
#define GROMA_SERVE_DEFAULT_MAX_CONNECTIONS 4096

/* Image checks and drawings (decoded on their connections' threads, outside the queue) decoding at once. */
#define GROMA_SERVE_DEFAULT_MAX_DECODES 4

/* Sequences decoded together at most by default (--max-batch). */
#define GROMA_SERVE_DEFAULT_MAX_BATCH 16

/* Megabytes of the KV cache pool by default (--kv-cache-mb). */
#define GROMA_SERVE_DEFAULT_KV_CACHE_MB 4096

/* New tokens an answer's KV cache holds when it starts, by default (--kv-first-tokens). */
#define GROMA_SERVE_DEFAULT_KV_FIRST_TOKENS 256

/* Exit status when the socket cannot be set up (another server, bad directory). */
#define GROMA_SERVE_EXIT_SETUP 4

/* Seconds one model call (a vision batch, a decode step) may run by default on a GPU before groma-server takes itself as hung (none on the CPU). */
#define GROMA_SERVE_DEFAULT_WATCHDOG_S 300

/*
 * Runs the server until SIGTERM/SIGINT or end of file on --watch-fd;
 * returns the exit status: 0 after a clean shutdown, 3 after a lost GPU,
 * GROMA_SERVE_EXIT_SETUP when the socket could not be set up.  The
 * watchdog thread exits the process with GROMA_SERVER_EXIT_HUNG (protocol.h) instead.
 */
int			groma_serve(const groma_cli_options *opt);

#endif							/* GROMA_SERVE_H */
