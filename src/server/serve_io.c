/*
 * serve_io.c - the socket server's logging, whole-frame reads and writes,
 * and thread starts.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "serve_internal.h"

/* A frame's payload buffer starts at this size and doubles as its bytes arrive. */
#define PAYLOAD_FIRST_BYTES ((size_t) 1 << 20)

static serve_log_level log_level = SERVE_LOG_INFO;
static const char *const level_names[] = {"error", "warning", "info", "debug"};
static int	lines_dropped;		/* log lines a full pipe refused since the last one written (__atomic) */
static int	log_silenced;		/* set for good by serve_log_silence (__atomic) */

/* Sets the log level by name; see serve_internal.h. */
bool
serve_log_set_level(const char *name)
{
	for (int i = 0; i <= SERVE_LOG_DEBUG; i++)
		if (strcmp(name, level_names[i]) == 0)
		{
			log_level = (serve_log_level) i;
			return true;
		}
	return false;
}

/* Makes stderr non-blocking when it is a pipe; see serve_internal.h. */
void
serve_log_never_block(void)
{
	struct stat st;
	int			flags = fcntl(STDERR_FILENO, F_GETFL);

	/* a terminal's or a file's description may be shared with the shell: only a pipe is changed */
	if (flags >= 0 && fstat(STDERR_FILENO, &st) == 0 && S_ISFIFO(st.st_mode))
		(void) fcntl(STDERR_FILENO, F_SETFL, flags | O_NONBLOCK);
}

/* Writes one whole line to stderr; returns false when a full non-blocking pipe refused it. */
static bool
write_line(const char *line, size_t len)
{
	/* a pipe takes a write of at most PIPE_BUF (4096) bytes whole or not at all, so lines never interleave */
	for (;;)
	{
		if (write(STDERR_FILENO, line, len) >= 0)
			return true;
		if (errno != EINTR)
			return errno != EAGAIN && errno != EWOULDBLOCK;	/* other errors: nowhere to say it */
	}
}

/* Silences serve_log for good (a line already past the check may still be written); see serve_internal.h. */
void
serve_log_silence(void)
{
	__atomic_store_n(&log_silenced, 1, __ATOMIC_RELEASE);
}

/* Prints one log line; see serve_internal.h. */
void
serve_log(serve_log_level level, const char *fmt,...)
{
	char		message[1024];
	char		line[1200];
	int			len;
	int			dropped;
	va_list		ap;

	if (level > log_level || __atomic_load_n(&log_silenced, __ATOMIC_ACQUIRE))
		return;
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	dropped = __atomic_exchange_n(&lines_dropped, 0, __ATOMIC_RELAXED);
	if (dropped > 0)
	{
		len = snprintf(line, sizeof(line), "warning: %d log lines were dropped: the log pipe was full\n", dropped);
		if (!write_line(line, (size_t) len))
		{
			__atomic_add_fetch(&lines_dropped, dropped + 1, __ATOMIC_RELAXED);
			return;
		}
	}
	len = snprintf(line, sizeof(line), "%s: %s\n", level_names[level], message);
	if (!write_line(line, (size_t) len))
		__atomic_add_fetch(&lines_dropped, 1, __ATOMIC_RELAXED);
}

/* Returns monotonic milliseconds; see serve_internal.h. */
double
serve_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Waits on cond (lock held) until signalled or ms pass; see serve_internal.h. */
void
serve_cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *lock, long ms)
{
	struct timespec until = serve_clock_in(CLOCK_REALTIME, ms);

	pthread_cond_timedwait(cond, lock, &until);
}

/* Returns clock's reading ms milliseconds from now; see serve_internal.h. */
struct timespec
serve_clock_in(clockid_t clock, long ms)
{
	struct timespec t;

	clock_gettime(clock, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (ms % 1000) * 1000 * 1000;
	if (t.tv_nsec >= 1000 * 1000 * 1000)
	{
		t.tv_sec++;
		t.tv_nsec -= 1000 * 1000 * 1000;
	}
	return t;
}

/* Reads exactly len bytes; returns len, 0 on end of file before any byte, -1 on an error or a short read. */
static ssize_t
read_exact(int fd, uint8_t *buf, size_t len)
{
	size_t		got = 0;

	while (got < len)
	{
		ssize_t		n = read(fd, buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return got == 0 && n == 0 ? 0 : -1;
		got += (size_t) n;
	}
	return (ssize_t) len;
}

/*
 * Reads a payload of len bytes into a malloc'd buffer (one byte more, for
 * a terminator), grown as the bytes arrive (1 MB first, then doubling):
 * a header alone does not reserve the 300 MB a frame may declare.  Returns
 * 1, or -1 with *why.
 */
static int
read_payload(int fd, uint32_t len, uint8_t **payload, groma_status *why)
{
	size_t		cap = len < PAYLOAD_FIRST_BYTES ? len : PAYLOAD_FIRST_BYTES,
				got = 0;
	uint8_t    *buf = malloc(cap + 1);

	while (buf != NULL)
	{
		uint8_t    *bigger;

		if (read_exact(fd, buf + got, cap - got) != (ssize_t) (cap - got))
		{
			free(buf);
			*why = groma_error(GROMA_ERR_PROTOCOL, "connection closed inside a frame of %u bytes", (unsigned) len);
			return -1;
		}
		got = cap;
		if (got == len)
		{
			*payload = buf;
			return 1;
		}
		cap = cap * 2 < len ? cap * 2 : len;
		bigger = realloc(buf, cap + 1);
		if (bigger == NULL)
			free(buf);
		buf = bigger;
	}
	*why = groma_error(GROMA_ERR_NO_MEMORY, "out of memory for a frame of %u bytes", (unsigned) len);
	return -1;
}

/* Reads one frame; see serve_internal.h. */
int
serve_read_frame(int fd, groma_frame_header *h, uint8_t **payload, groma_status *why)
{
	uint8_t		hdr[GROMA_PROTO_HEADER_BYTES];
	ssize_t		n = read_exact(fd, hdr, sizeof(hdr));

	*payload = NULL;
	memset(h, 0, sizeof(*h));
	if (n == 0)
		return 0;
	if (n < 0)
	{
		*why = groma_error(GROMA_ERR_PROTOCOL, "connection closed inside a frame header");
		return -1;
	}
	*why = groma_proto_parse_header(hdr, h);
	if (why->code != GROMA_OK)
		return -1;
	return read_payload(fd, h->payload_len, payload, why);
}

/* Writes a whole buffer; see serve_internal.h. */
bool
serve_write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len > 0)
	{
		ssize_t		n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		buf += n;
		len -= (size_t) n;
	}
	return true;
}

/* Encodes and sends a reply; see serve_internal.h. */
bool
serve_send_reply(int fd, const groma_reply *reply)
{
	groma_wbuf	buf = {0};
	groma_status st = groma_proto_encode_reply(reply, &buf);
	bool		ok;

	if (st.code != GROMA_OK)
	{
		/* a reply over the limits: send its error instead */
		groma_reply err = {.kind = reply->kind, .id = reply->id, .status = st};

		groma_wbuf_free(&buf);
		serve_log(SERVE_LOG_WARNING, "request %u: %s", (unsigned) reply->id, st.message);
		if (groma_proto_encode_reply(&err, &buf).code != GROMA_OK)
		{
			groma_wbuf_free(&buf);
			return false;
		}
	}
	ok = serve_write_all(fd, buf.data, buf.len);
	groma_wbuf_free(&buf);
	return ok;
}

/* Fills set with the stop signals; see serve_internal.h. */
void
serve_stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
}

/* Starts a thread that never takes the stop signals; see serve_internal.h. */
int
serve_thread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*body) (void *), void *arg)
{
	sigset_t	stop_signals,
				before;
	int			rc;

	serve_stop_signals(&stop_signals);
	pthread_sigmask(SIG_BLOCK, &stop_signals, &before);
	rc = pthread_create(thread, attr, body, arg);
	pthread_sigmask(SIG_SETMASK, &before, NULL);
	return rc;
}
