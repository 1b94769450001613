/*
 * serve_connection.c - one thread per client connection: reads request
 * frames, answers ping, status and image checks at once, queues model
 * requests and waits for them while watching the socket for a cancel or
 * the client going away.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve_internal.h"
#include "../runtime/cancel.h"

typedef struct connection
{
	serve_state *server;
	int			fd;
	int			wake_fd;		/* eventfd the scheduler writes when our job is done */
	pid_t		client_pid;		/* the peer process (SO_PEERCRED), 0 if unknown: its jobs' share of the queue */
	serve_conn_link link;		/* in the server's list of open connections */
} connection;

/* Cancels a job and waits, without poll, until the scheduler is done with it (for when poll or the eventfd fails). */
static void
cancel_and_outwait(connection *c, serve_job *job)
{
	bool		done = false;

	serve_log(SERVE_LOG_WARNING, "request %u (job %llu): cannot wait on its connection (%s); cancelling it",
			  (unsigned) job->req.id, (unsigned long long) job->serial, strerror(errno));
	serve_cancel(c->server, job);
	while (!done)
	{
		usleep(1000);
		pthread_mutex_lock(&c->server->lock);
		done = job->done;
		pthread_mutex_unlock(&c->server->lock);
	}
}

/* Waits for a queued job while watching the socket; returns false when the client is gone. */
static bool
wait_for_job(connection *c, serve_job *job)
{
	bool		client_alive = true;

	for (;;)
	{
		struct pollfd fds[2] = {{c->wake_fd, POLLIN, 0}, {c->fd, POLLIN, 0}};
		int			n = poll(fds, client_alive ? 2 : 1, -1);
		bool		done;

		/* the job is the scheduler's until done: never leave it behind, or it would be freed in use */
		if (n < 0 && errno != EINTR)
		{
			cancel_and_outwait(c, job);
			return false;
		}
		if (n > 0 && (fds[0].revents & POLLIN))
		{
			uint64_t	count;

			if (read(c->wake_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
			{
				cancel_and_outwait(c, job);
				return false;
			}
		}
		pthread_mutex_lock(&c->server->lock);
		done = job->done;
		pthread_mutex_unlock(&c->server->lock);
		if (done)
			return client_alive;
		if (client_alive && n > 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)))
		{
			groma_frame_header h;
			uint8_t    *payload;
			groma_status why;
			int			got = serve_read_frame(c->fd, &h, &payload, &why);
			groma_request req = {0};
			bool		a_cancel = got == 1 && h.kind == GROMA_MSG_CANCEL &&
				groma_proto_decode_request(&h, payload, h.payload_len, &req).code == GROMA_OK;

			if (a_cancel && req.cancel_id != job->req.id)
			{
				/* a late cancel of an earlier request of this connection: nothing of it runs */
				serve_log(SERVE_LOG_DEBUG, "request %u (job %llu): a cancel of request %u, not this one, is ignored",
						  (unsigned) job->req.id, (unsigned long long) job->serial, (unsigned) req.cancel_id);
				groma_request_free(&req);
				free(payload);
				continue;
			}
			if (a_cancel)
				serve_log(SERVE_LOG_DEBUG, "request %u (job %llu): cancelled by the client", (unsigned) job->req.id,
						  (unsigned long long) job->serial);
			else if (got == 1)
				serve_log(SERVE_LOG_WARNING, "request %u (job %llu): another frame while it runs; dropping it and the "
						  "connection", (unsigned) job->req.id, (unsigned long long) job->serial);
			else
				serve_log(SERVE_LOG_DEBUG, "request %u (job %llu): the client went away; cancelling it",
						  (unsigned) job->req.id, (unsigned long long) job->serial);
			if (got == 1)
				groma_request_free(&req);
			free(payload);
			serve_cancel(c->server, job);
			/* a cancel frame keeps the connection: the cancelled reply is still sent */
			client_alive = got == 1 && h.kind == GROMA_MSG_CANCEL;
		}
	}
}

/* Runs a model request through the queue and writes its reply; returns false when the connection should close. */
static bool
run_queued(connection *c, groma_request *req)
{
	serve_job  *job = calloc(1, sizeof(serve_job));
	bool		alive;

	if (job == NULL)
	{
		groma_reply r = {.kind = req->kind, .id = req->id,
		.status = groma_error(GROMA_ERR_NO_MEMORY, "out of memory")};

		groma_request_free(req);
		return serve_send_reply(c->fd, &r);
	}
	job->req = *req;			/* the job owns the request's buffers now */
	memset(req, 0, sizeof(*req));
	job->wake_fd = c->wake_fd;
	job->client_pid = c->client_pid;
	serve_submit(c->server, job);
	alive = wait_for_job(c, job);
	if (alive)
		alive = serve_send_reply(c->fd, &job->reply);
	pthread_mutex_lock(&c->server->lock);
	c->server->outstanding--;
	pthread_cond_broadcast(&c->server->idle);
	pthread_mutex_unlock(&c->server->lock);
	groma_reply_free(&job->reply);
	groma_request_free(&job->req);
	free(job);
	return alive;
}

/* What the socket watcher of a VALIDATE shares with its connection thread. */
typedef struct validate_watch
{
	int			client_fd;
	int			stop_fd;		/* readable when the decode is over */
	volatile int cancel;		/* set when the client sent something or went away */
} validate_watch;

/* Watcher thread: sets the cancel flag as soon as the client's socket has data or hangs up, until told to stop. */
static void *
validate_watcher(void *arg)
{
	validate_watch *w = arg;

	for (;;)
	{
		struct pollfd fds[2] = {{w->stop_fd, POLLIN, 0}, {w->client_fd, POLLIN, 0}};

		if (poll(fds, 2, -1) < 0 && errno != EINTR)
			return NULL;
		if (fds[0].revents)
			return NULL;
		if (fds[1].revents & (POLLIN | POLLHUP | POLLERR))
		{
			/* the frame (a cancel, or end of file) stays unread for the connection loop */
			__atomic_store_n(&w->cancel, 1, __ATOMIC_RELAXED);
			return NULL;
		}
	}
}

/* Takes waiter out of the line of connections waiting for a decode slot, wherever it stands; under the lock. */
static void
leave_decode_line(serve_state *s, serve_decode_waiter *waiter)
{
	serve_decode_waiter **p = &s->decode_line;

	while (*p != NULL && *p != waiter)
		p = &(*p)->next;
	if (*p != NULL)
		*p = waiter->next;
}

/*
 * Takes one of the --max-decodes decode slots (each decode holds a whole
 * image's pixels), waiting while all are taken, in arrival order (a
 * newcomer never takes a slot from one that waits); returns false, taking
 * none, when the client cancels or goes away first.
 */
static bool
take_decode_slot(serve_state *s, const groma_request *req, const validate_watch *w)
{
	serve_decode_waiter me = {NULL};
	serve_decode_waiter **end;
	bool		said = false;
	bool		taken;

	pthread_mutex_lock(&s->lock);
	for (end = &s->decode_line; *end != NULL; end = &(*end)->next)
		;
	*end = &me;
	while ((s->decode_line != &me || s->decoding >= s->opt->max_decodes) &&
		   !__atomic_load_n(&w->cancel, __ATOMIC_RELAXED))
	{
		if (!said)
		{
			/* logged without the lock (a full stderr pipe must not hold up the scheduler); then looked at again */
			pthread_mutex_unlock(&s->lock);
			serve_log(SERVE_LOG_DEBUG, "request %u: waits for an image decode to end (--max-decodes %d)",
					  (unsigned) req->id, s->opt->max_decodes);
			said = true;
			pthread_mutex_lock(&s->lock);
			continue;
		}
		/* woken by a decode's end; the 50 ms steps notice the client's cancel */
		serve_cond_wait_ms(&s->decode_done, &s->lock, 50);
	}
	leave_decode_line(s, &me);
	taken = !__atomic_load_n(&w->cancel, __ATOMIC_RELAXED);
	if (taken)
		s->decoding++;
	/* the next in line looks: a slot may still be free */
	pthread_cond_broadcast(&s->decode_done);
	pthread_mutex_unlock(&s->lock);
	return taken;
}

/* Gives back a decode slot taken by take_decode_slot. */
static void
give_decode_slot(serve_state *s)
{
	pthread_mutex_lock(&s->lock);
	s->decoding--;
	/* every waiter looks: one woken and then cancelled must not leave the slot unused until the next 50 ms */
	pthread_cond_broadcast(&s->decode_done);
	pthread_mutex_unlock(&s->lock);
}

/*
 * Runs a VALIDATE (or a DRAW) on this thread, once a decode slot is free,
 * while a watcher thread watches the client: a cancel frame or a closed
 * connection stops a long JPEG decode (the decoder polls the thread's
 * cancel flag), or the wait for a slot.
 */
static void
run_validate_watched(connection *c, groma_request *req, groma_reply *reply)
{
	validate_watch w = {.client_fd = c->fd, .stop_fd = -1, .cancel = 0};
	int			stop[2];
	pthread_t	watcher;
	bool		watching = pipe(stop) == 0;

	if (watching)
	{
		w.stop_fd = stop[0];
		watching = pthread_create(&watcher, NULL, validate_watcher, &w) == 0;
		if (!watching)
		{
			close(stop[0]);
			close(stop[1]);
		}
	}
	if (take_decode_slot(c->server, req, &w))
	{
		groma_cancel_watch(&w.cancel);
		groma_request_run(NULL, req, reply);
		groma_cancel_watch(NULL);
		give_decode_slot(c->server);
	}
	else
		groma_reply_set_error(reply, req, groma_error(GROMA_ERR_CANCELLED, "cancelled before its image was decoded"));
	if (watching)
	{
		if (write(stop[1], "x", 1) < 0)
			serve_log(SERVE_LOG_WARNING, "request %u: cannot stop its socket watcher", (unsigned) req->id);
		pthread_join(watcher, NULL);
		close(stop[0]);
		close(stop[1]);
	}
}

/* Answers one request frame; returns false when the connection should close. */
static bool
handle_request(connection *c, groma_request *req)
{
	groma_reply reply = {.kind = req->kind, .id = req->id};
	bool		ok;

	switch (req->kind)
	{
		case GROMA_MSG_REGIONS:
		case GROMA_MSG_GENERATE:
			return run_queued(c, req);
		case GROMA_MSG_CANCEL:
			/* nothing of ours runs: a late cancel has nothing to stop */
			return true;
		case GROMA_MSG_PING:
			reply.status = groma_ok();
			break;
		case GROMA_MSG_STATUS:
			serve_fill_status(c->server, &reply);
			break;
		case GROMA_MSG_VALIDATE:
			/* image checks need no model: answered here, also while the model loads */
			run_validate_watched(c, req, &reply);
			serve_log(SERVE_LOG_DEBUG, "request %u validate image=%uB %s", (unsigned) req->id,
					  (unsigned) req->image_len, groma_status_code_name(reply.status.code));
			break;
		case GROMA_MSG_DRAW:
			/* drawing needs no model either: decoded here, cancelled the same way as VALIDATE */
			run_validate_watched(c, req, &reply);
			serve_log(SERVE_LOG_DEBUG, "request %u draw image=%uB boxes=%d %s", (unsigned) req->id,
					  (unsigned) req->image_len, (int) req->n_draw, groma_status_code_name(reply.status.code));
			break;
		case GROMA_MSG_REPLY:
			return false;
	}
	ok = serve_send_reply(c->fd, &reply);
	groma_reply_free(&reply);
	return ok;
}

/* Returns true when fd has bytes or an end of file to read now. */
static bool
has_input(int fd)
{
	struct pollfd p = {fd, POLLIN, 0};

	return poll(&p, 1, 0) > 0;
}

/* Marks the connection idle while it waits for the first byte of a next frame; false on poll failure. */
static bool
wait_idle_for_frame(connection *c)
{
	struct pollfd fd = {c->fd, POLLIN, 0};
	int			n;

	if (has_input(c->fd))
		return true;
	pthread_mutex_lock(&c->server->lock);
	c->link.idle = true;
	pthread_cond_broadcast(&c->server->idle);
	pthread_mutex_unlock(&c->server->lock);
	do
		n = poll(&fd, 1, -1);
	while (n < 0 && errno == EINTR);
	pthread_mutex_lock(&c->server->lock);
	c->link.idle = false;
	pthread_mutex_unlock(&c->server->lock);
	return n > 0;
}

/* Checks every open connection; see serve_internal.h. */
bool
serve_connections_quiet(serve_state *s)
{
	/* an idle connection's input counts too: its thread may not have woken yet to mark itself busy */
	for (serve_conn_link *l = s->conns; l; l = l->next)
		if (!l->idle || has_input(l->fd))
			return false;
	return true;
}

/* Hangs up the idle connections; see serve_internal.h. */
int
serve_connections_hang_up_idle(serve_state *s)
{
	int			n = 0;

	/* the fd stays open until its thread takes the link off the list (under this lock), so it is still ours */
	for (serve_conn_link *l = s->conns; l; l = l->next)
		if (l->idle && !l->hung_up && !has_input(l->fd))
		{
			shutdown(l->fd, SHUT_RDWR);
			l->hung_up = true;
			n++;
		}
	return n;
}

/* Adds a connection to the server's list, or takes it off (waking an accept loop held at the cap); under the lock. */
static void
link_connection(serve_state *s, serve_conn_link *l, bool add)
{
	if (add)
	{
		l->prev = NULL;
		l->next = s->conns;
		if (s->conns)
			s->conns->prev = l;
		s->conns = l;
		s->n_conns++;
		return;
	}
	s->n_conns--;
	if (s->accept_held)
	{
		uint64_t	one = 1;

		if (write(s->conn_closed_fd, &one, sizeof(one)) < 0)
			(void) 0;			/* the counter is full: the accept loop is woken already */
	}
	if (l->prev)
		l->prev->next = l->next;
	else
		s->conns = l->next;
	if (l->next)
		l->next->prev = l->prev;
}

/* The connection thread: frames until end of file or a protocol error. */
static void *
connection_main(void *arg)
{
	connection *c = arg;

	for (;;)
	{
		groma_frame_header h;
		uint8_t    *payload;
		groma_status why;
		groma_request req;
		int			got;
		bool		keep;

		if (!wait_idle_for_frame(c))
			break;
		got = serve_read_frame(c->fd, &h, &payload, &why);
		if (got == 0)
			break;
		if (got < 0)
		{
			serve_log(SERVE_LOG_WARNING, "closing a connection: %s", why.message);
			if (h.magic_ok && h.version != GROMA_PROTO_VERSION)
			{
				/* tell a client of another version why, in a reply it can read the status of */
				groma_reply r = {.kind = GROMA_MSG_PING, .id = h.id, .status = why};

				serve_send_reply(c->fd, &r);
			}
			break;
		}
		why = groma_proto_decode_request(&h, payload, h.payload_len, &req);
		free(payload);
		if (why.code != GROMA_OK)
		{
			serve_log(SERVE_LOG_WARNING, "closing a connection: %s", why.message);
			groma_request_free(&req);
			break;
		}
		keep = handle_request(c, &req);
		groma_request_free(&req);
		if (!keep)
			break;
	}
	/* off the list before the socket closes: the shutdown polls the sockets of the list */
	pthread_mutex_lock(&c->server->lock);
	link_connection(c->server, &c->link, false);
	pthread_cond_broadcast(&c->server->idle);
	pthread_mutex_unlock(&c->server->lock);
	close(c->fd);
	close(c->wake_fd);
	free(c);
	return NULL;
}

/* Starts a connection thread; see serve_internal.h. */
bool
serve_connection_start(serve_state *s, int fd, int wake_fd)
{
	connection *c = calloc(1, sizeof(connection));
	pthread_attr_t attr;
	pthread_t	thread;
	bool		started;
	struct ucred cred;
	socklen_t	len = sizeof(cred);

	if (c == NULL)
		return false;
	c->client_pid = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? cred.pid : 0;
	c->wake_fd = wake_fd;
	c->server = s;
	c->fd = fd;
	c->link.fd = fd;
	c->link.idle = false;		/* busy until its thread finds no frame waiting */
	c->link.hung_up = false;
	pthread_mutex_lock(&s->lock);
	link_connection(s, &c->link, true);
	pthread_mutex_unlock(&s->lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	errno = serve_thread_create(&thread, &attr, connection_main, c);
	started = errno == 0;
	pthread_attr_destroy(&attr);
	if (!started)
	{
		int			why = errno;

		pthread_mutex_lock(&s->lock);
		link_connection(s, &c->link, false);
		pthread_mutex_unlock(&s->lock);
		free(c);
		errno = why;
	}
	return started;
}
