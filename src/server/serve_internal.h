/*
 * serve_internal.h - what the socket server's files share: the server's
 * state, the job queue, logging and whole-frame I/O.
 */
#ifndef GROMA_SERVE_INTERNAL_H
#define GROMA_SERVE_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "protocol.h"
#include "../model/kv_pool.h"
#include "request.h"
#include "serve.h"

/* GENERATE jobs admitted together at most, their images going through the vision stages as one batch. */
#define SERVE_VISION_BATCH 8

/* One model request from a connection, queued for the scheduler. */
typedef struct serve_job
{
	groma_request req;
	groma_reply reply;			/* filled by the scheduler (or by a refusal) */
	volatile int cancel;		/* set by the connection: client cancelled or went away */
	bool		queued;			/* in the queue, not yet taken */
	bool		done;			/* reply is final */
	int			wake_fd;		/* the connection's eventfd, written when done */
	double		enqueued_ms;
	double		started_ms;
	double		finished_ms;
	uint64_t	serial;			/* the server's count of requests submitted when this one came (ids are per connection) */
	pid_t		client_pid;		/* the process at the other end of its connection (SO_PEERCRED), 0 if unknown */
	int64_t		kv_positions;	/* GENERATE: the most KV positions it can need (0: not known yet) */
	bool		kv_whole;		/* GENERATE: was stopped to free KV room: takes kv_positions at once when it starts again */
	groma_pending_generate pending; /* GENERATE: its sequence while in the batch */
	struct serve_job *next;
} serve_job;

/* A connection waiting for a decode slot, in the line of those waiting (first come, first served). */
typedef struct serve_decode_waiter
{
	struct serve_decode_waiter *next;
} serve_decode_waiter;

/* An open connection as the shutdown sees it: its socket, and whether its thread waits idle for a frame. */
typedef struct serve_conn_link
{
	int			fd;
	bool		idle;			/* waiting for the first byte of a next frame (under the lock) */
	bool		hung_up;		/* shut down by the shutdown for its descriptor (under the lock) */
	struct serve_conn_link *prev;
	struct serve_conn_link *next;
} serve_conn_link;

/* The whole server. */
typedef struct serve_state
{
	const groma_cli_options *opt;
	pthread_mutex_t lock;		/* protects everything below */
	pthread_cond_t work;		/* the queue gained a job, or stopping */
	pthread_cond_t idle;		/* a reply was written (shutdown waits on it) */
	serve_job  *head;			/* FIFO of queued jobs */
	serve_job  *tail;
	int			queued;
	int			running;		/* jobs taken from the queue and not answered yet */
	serve_job  *starting[SERVE_VISION_BATCH];	/* the jobs in vision and prompt embedding (or a REGIONS job) */
	int			n_starting;
	serve_job  *batch[GROMA_KV_POOL_MAX_BLOCKS];	/* GENERATE jobs decoding together */
	int			n_batch;
	bool		pool_wait;		/* the queue's head waits for KV room: retry when the batch shrinks */
	groma_kv_pool pool;			/* the KV caches of the batch, allocated after the model loads */
	size_t		kv_used;		/* pool.used as of the scheduler's last change (the pool itself is its own) */
	int			outstanding;	/* jobs accepted whose reply is not yet written */
	struct serve_conn_link *conns;	/* every open connection (the shutdown checks that none has a request unread) */
	int			n_conns;		/* how many conns holds */
	bool		accept_held;	/* the accept loop waits for a connection to close (--max-connections reached) */
	int			conn_closed_fd;	/* eventfd written when a connection closes while accept_held */
	int			decoding;		/* image checks and drawings decoding now (at most opt->max_decodes) */
	pthread_cond_t decode_done;	/* one of them ended, or the line of waiters moved */
	serve_decode_waiter *decode_line;	/* the connections waiting for a decode slot, oldest first */
	groma_server_state state;
	char		state_message[GROMA_STATUS_MESSAGE_LEN];	/* why FAILED, or what loads */
	char		device[32];
	uint64_t	load_total;		/* bytes of the checkpoint files */
	uint64_t	load_base;		/* groma_weights_bound_bytes() when the load began */
	uint64_t	submitted;		/* model requests ever submitted (each job's serial) */
	uint64_t	served;
	uint64_t	failed;			/* answered with an error other than a cancel or a full queue */
	uint64_t	cancelled;		/* ended by a cancel */
	uint64_t	busy;			/* refused because the queue was full */
	bool		stopping;
	volatile int load_cancel;	/* set by the shutdown: a model still loading stops at its next weight */
	int			exit_code;		/* what groma_serve returns */
	int			stop_pipe[2];	/* written to wake the main thread */
	groma_engine engine;
	/* the scheduler's model call in progress, which the watchdog reads without the lock (__atomic) */
	int64_t		call_since_ms;	/* serve_now_ms() when it began; 0: none */
	groma_server_beacon *beacon;	/* the launcher's copy of call_since_ms (--beacon-fd), NULL: none */
	const char *call_what;		/* what it does, as a format taking call_count */
	int			call_count;
	int			exiting_hung;	/* set (__atomic) by the watchdog as it ends the process: the main thread parks */
} serve_state;

/* Log levels, lowest first. */
typedef enum serve_log_level
{
	SERVE_LOG_ERROR = 0,
	SERVE_LOG_WARNING,
	SERVE_LOG_INFO,
	SERVE_LOG_DEBUG
} serve_log_level;

/* Sets the level below which lines are printed; returns false for an unknown name. */
bool		serve_log_set_level(const char *name);

/*
 * Makes stderr non-blocking when it is a pipe (the launcher's), so that a
 * reader that stops reading (a stopped launcher, a stuck logger) drops log
 * lines instead of blocking the threads that log, some under the lock.
 */
void		serve_log_never_block(void);

/* Makes serve_log drop every line from now on: the watchdog's last word stays the last line of a hung server. */
void		serve_log_silence(void);

/*
 * Prints one line "LEVEL: message" on stderr when level is enabled, with
 * one write(2); a line a full pipe refuses is dropped and counted, and the
 * next line written is preceded by how many were.
 */
void		serve_log(serve_log_level level, const char *fmt,...) __attribute__((format(printf, 2, 3)));

/* Returns a monotonic clock reading in milliseconds. */
double		serve_now_ms(void);

/*
 * Reads one whole frame from a blocking socket: the header into *h and a
 * malloc'd payload into *payload.  Returns 1 on success, 0 on end of file
 * before a header, -1 on an error or a frame that does not parse (*why says
 * which; *h is filled when the header itself parsed far enough to answer).
 */
int			serve_read_frame(int fd, groma_frame_header *h, uint8_t **payload, groma_status *why);

/* Writes all of buf to a socket; returns false when the peer is gone. */
bool		serve_write_all(int fd, const uint8_t *buf, size_t len);

/* Encodes and writes a reply; returns false when the peer is gone. */
bool		serve_send_reply(int fd, const groma_reply *reply);

/* Returns clock's reading ms milliseconds from now: an absolute deadline for the waits that take one. */
struct timespec serve_clock_in(clockid_t clock, long ms);

/* Waits on cond, with lock held, until it is signalled or ms milliseconds pass (pthread_cond_timedwait). */
void		serve_cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *lock, long ms);

/* Fills set with the stop signals, SIGTERM and SIGINT (which the main thread alone takes). */
void		serve_stop_signals(sigset_t *set);

/* Starts a thread with SIGTERM and SIGINT blocked in it, so that the main thread alone takes them; as pthread_create. */
int			serve_thread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*body) (void *), void *arg);

/*
 * True when every open connection waits idle for a frame and none has
 * bytes (or an end of file) waiting to be read; under the lock.  The
 * shutdown waits for it, so that no request already sent is dropped.
 */
bool		serve_connections_quiet(serve_state *s);

/* Hangs up (shutdown(2)) every connection that waits idle with nothing unread, so its thread closes it; under the lock. Returns how many. */
int			serve_connections_hang_up_idle(serve_state *s);

/*
 * Marks the start of a model call the scheduler makes without the lock
 * for jobs[n] (what: a format taking count, such as "a step of %d
 * answers"); the watchdog times it until serve_model_call_end, and the
 * beacon shows it and its jobs.
 */
void		serve_model_call_begin(serve_state *s, const char *what, int count, serve_job *const *jobs, int n);

/*
 * Maps --beacon-fd's memory as the server's beacon and writes its watchdog's
 * limit there; prints why and returns false when fd cannot be one.
 */
bool		serve_beacon_open(serve_state *s, int fd, int watchdog_s);

/* Writes the model call in progress (since_ms 0: none) and the requests of jobs[n] to the beacon, if there is one. */
void		serve_beacon_publish(serve_state *s, int64_t since_ms, serve_job *const *jobs, int n);

/* Sets s->state (under the lock) and writes it to the beacon, if there is one: backends move hung requests only to a ready server. */
void		serve_set_state(serve_state *s, groma_server_state state);

/* Marks the end of the scheduler's model call. */
void		serve_model_call_end(serve_state *s);

/*
 * Starts the watchdog thread when --watchdog-s is not 0: it exits the
 * process with GROMA_SERVER_EXIT_HUNG when a model call, or a hold of the
 * lock, lasts longer.  Returns false when no thread could start.
 */
bool		serve_watchdog_start(serve_state *s);

/*
 * Stalls the calling thread for good when the environment has
 * GROMA_SERVER_TEST_STALL=1 (or the name of s's socket file before the
 * dot: that server alone) and one of jobs[n] has the free prompt
 * "groma test: stall" (locked false: called without the lock, inside a
 * model call; an image holding those words asks it too) or "groma test:
 * stall holding the lock" (locked true): the hangs the watchdog's tests
 * need.  Otherwise returns at once.
 */
void		serve_test_stall(const serve_state *s, serve_job *const *jobs, int n, bool locked);

/*
 * Kills groma-server with SIGSEGV (no core file) when the environment has
 * GROMA_SERVER_TEST_CRASH=1 (or the name of s's socket file before the
 * dot) and the image of one of jobs[n] holds the words "groma test:
 * crash" (a JPEG comment): the image that crashes the server, for the
 * tests of what a session does then; GROMA_SERVER_TEST_CRASH=every kills
 * it on every request (a server broken for good).  Otherwise returns at
 * once.
 */
void		serve_test_crash(const serve_state *s, serve_job *const *jobs, int n);

/*
 * Waits GROMA_SERVER_TEST_LOAD_STALL's milliseconds (MS, or NAME:MS for
 * the server whose socket file is NAME.sock) before the model load reads
 * anything, unless a stop comes first: the stalled load the watchdog's
 * tests need.  Otherwise returns at once.
 */
void		serve_test_stall_load(serve_state *s);

/* Waits GROMA_SERVER_TEST_EXIT_DELAY's milliseconds (MS or NAME:MS, at most 60 s), as a GPU driver's slow teardown may; otherwise returns at once. */
void		serve_test_exit_delay(const serve_state *s);

/* Starts the scheduler thread (it loads the model first). */
bool		serve_scheduler_start(serve_state *s, pthread_t *thread);

/* The scheduler thread's body (serve_loop.c): load the model, then admit queued jobs and decode them in batches. */
void	   *serve_loop(void *arg);

/* Loads the model and its KV pool as the options say, recording the outcome in the state. */
void		serve_load_model(serve_state *s);

/* Writes to a job's wake fd: its connection sends the reply. */
void		serve_wake(serve_job *job);

/* Takes a job that is in the queue off it (wherever it stands), under the lock; returns it. */
serve_job  *serve_unqueue(serve_state *s, serve_job *job);

/* Takes the queue's head (not NULL) off the queue, under the lock. */
serve_job  *serve_pop_head(serve_state *s);

/* Logs a finished request (its kind, image size, wait and run times, outcome) at info level. */
void		serve_log_request(const serve_job *job);

/* The places at the queue's end kept for clients with no request queued (a quarter of --max-queue, rounded down). */
int			serve_places_kept_for_others(const serve_state *s);

/* Returns how many queued jobs came from the client process pid; under the lock. */
int			serve_queued_from_client(const serve_state *s, pid_t pid);

/*
 * Returns the newest queued job (by arrival) that has not run yet of the
 * client process holding the most queued jobs, with that number in *held,
 * when it holds at least two (else NULL, also when all of them ran and were
 * stopped for KV room): the job that gives up its place to a client with
 * none queued that finds the queue full.  Under the lock.
 */
serve_job  *serve_eviction_victim(const serve_state *s, int *held);

/* Counts one answered job as served, cancelled, refused as busy or failed, by its code; under the lock. */
void		serve_count_outcome(serve_state *s, groma_status_code code);

/* Finishes a job that never ran with an error, under the lock (counts its outcome, logs and wakes it). */
void		serve_finish_with_error(serve_state *s, serve_job *job, groma_status st);

/*
 * Queues a model request for the scheduler, or refuses it (reply filled,
 * done set) when there is no model or the queue is full.  The last quarter
 * of the queue's places is kept for clients with no request queued: a
 * client (a process, as its connections' SO_PEERCRED say) that already has
 * one queued is refused as busy there, so one PostgreSQL session's array
 * call cannot fill the queue alone.  A client with none queued that finds
 * the queue full (several sessions' array calls) takes the place of the
 * newest job of the client holding the most, if it holds two or more; that
 * job is answered busy (an array call sends it again).  Under no lock.
 */
void		serve_submit(serve_state *s, serve_job *job);

/* Marks a job cancelled; a job still queued leaves the queue and is answered as cancelled. */
void		serve_cancel(serve_state *s, serve_job *job);

/* Fills a STATUS reply from the server's state. */
void		serve_fill_status(serve_state *s, groma_reply *reply);

/* The matrices' type the server loads: --weights as resolved ("f32" on the CPU unless int8; default bf16 on a GPU). */
const char *serve_weights_name(const serve_state *s);

/* Answers every queued job with "shutting down", cancels the running one and wakes the scheduler. */
void		serve_drain(serve_state *s);

/*
 * Starts the thread that runs one connection until it closes; it then owns
 * the socket and the wake eventfd.  Returns false, owning neither, when no
 * thread (or memory) is left, errno saying why: the caller keeps the connection and tries again.
 */
bool		serve_connection_start(serve_state *s, int fd, int wake_fd);

#endif							/* GROMA_SERVE_INTERNAL_H */
