/*
 * serve_scheduler.c - the scheduler's shared state: loading the model and
 * its KV pool, the queue of model requests (submit, cancel, drain) and the
 * STATUS answer.  The scheduler thread's loop is serve_loop.c.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "serve_internal.h"
#include "../model/weight_source.h"
#include "../runtime/cancel.h"

/* Wakes the connection waiting for a finished job; see serve_internal.h. */
void
serve_wake(serve_job *job)
{
	uint64_t	one = 1;

	if (write(job->wake_fd, &one, sizeof(one)) < 0)
		serve_log(SERVE_LOG_WARNING, "request %u: could not wake its connection", (unsigned) job->req.id);
}

/* Logs one finished request; see serve_internal.h. */
void
serve_log_request(const serve_job *job)
{
	static const char *const kinds[] = {"?", "ping", "status", "validate", "regions", "generate", "cancel"};
	const groma_reply *r = &job->reply;
	const char *kind = job->req.kind >= 1 && job->req.kind <= 6 ? kinds[job->req.kind] : "?";
	char		times[64],
				outcome[GROMA_STATUS_MESSAGE_LEN + 32];

	/* a job answered from the queue never started: its whole time was waiting */
	if (job->started_ms > 0)
		snprintf(times, sizeof(times), "wait=%.1fms run=%.1fms", job->started_ms - job->enqueued_ms,
				 job->finished_ms - job->started_ms);
	else
		snprintf(times, sizeof(times), "wait=%.1fms run=0.0ms", job->finished_ms - job->enqueued_ms);
	if (r->status.code == GROMA_OK)
		snprintf(outcome, sizeof(outcome), "ok");
	else
		snprintf(outcome, sizeof(outcome), "%s: %s", groma_status_code_name(r->status.code), r->status.message);
	serve_log(SERVE_LOG_INFO, "request %u %s image=%uB %s %s (job %llu)", (unsigned) job->req.id, kind,
			  (unsigned) job->req.image_len, times, outcome, (unsigned long long) job->serial);
}

/* Counts one answered job; see serve_internal.h. */
void
serve_count_outcome(serve_state *s, groma_status_code code)
{
	if (code == GROMA_OK)
		s->served++;
	else if (code == GROMA_ERR_CANCELLED)
		s->cancelled++;
	else if (code == GROMA_ERR_BUSY)
		s->busy++;
	else
		s->failed++;
}

/* Finishes a job with an error under the lock (the job must not be queued or running). */
void
serve_finish_with_error(serve_state *s, serve_job *job, groma_status st)
{
	groma_reply_set_error(&job->reply, &job->req, st);
	job->done = true;
	job->finished_ms = serve_now_ms();
	serve_count_outcome(s, st.code);
	serve_log_request(job);
	serve_wake(job);
}

/* Returns the bytes of the checkpoint files in dir (0 when none is found). */
static uint64_t
checkpoint_bytes(const char *dir)
{
	static const char *const names[] = {"model.safetensors", "pytorch_model.bin"};
	char		path[4096];
	struct stat st;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
	{
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (stat(path, &st) == 0)
			return (uint64_t) st.st_size;
	}
	return 0;
}

/* Loads the model and the KV pool; see serve_internal.h. */
void
serve_load_model(serve_state *s)
{
	const groma_cli_options *opt = s->opt;
	groma_status st;
	double		t0 = serve_now_ms();

	pthread_mutex_lock(&s->lock);
	if (s->stopping)
	{
		/* stopped before the load began: the state stays stopping, nothing is loaded */
		pthread_mutex_unlock(&s->lock);
		return;
	}
	if (opt->model_dir == NULL || opt->model_dir[0] == '\0')
	{
		serve_set_state(s, GROMA_SERVER_NO_MODEL);
		pthread_mutex_unlock(&s->lock);
		serve_log(SERVE_LOG_INFO, "ready without a model (no --model): image checks only");
		return;
	}
	serve_set_state(s, GROMA_SERVER_LOADING);
	s->load_total = checkpoint_bytes(opt->model_dir);
	s->load_base = groma_weights_bound_bytes();
	pthread_mutex_unlock(&s->lock);
	serve_log(SERVE_LOG_INFO, "loading model %s on %s (--weights %s)", opt->model_dir, s->device,
			  serve_weights_name(s));
	serve_test_stall_load(s);
	groma_cancel_watch(&s->load_cancel);
	st = groma_engine_open(opt, &s->engine);
	groma_cancel_watch(NULL);
	if (st.code == GROMA_OK)
	{
		st = groma_kv_pool_init(&s->pool, s->engine.session.act.device, (size_t) opt->kv_cache_mb << 20);
		if (st.code != GROMA_OK)
			st = groma_error(st.code, "the KV cache pool of %d MB (--kv-cache-mb) cannot be allocated: %s",
							 opt->kv_cache_mb, st.message);
	}
	pthread_mutex_lock(&s->lock);
	if (st.code == GROMA_OK && s->stopping)
		serve_log(SERVE_LOG_INFO, "the model loaded in %.0f ms, after the stop was asked for: not serving",
				  serve_now_ms() - t0);	/* the state stays stopping */
	else if (st.code == GROMA_OK)
	{
		serve_set_state(s, GROMA_SERVER_READY);
		serve_log(SERVE_LOG_INFO, "ready: model %s loaded in %.0f ms; up to %d answers decoded together, %d MB of KV cache "
				  "(a cache starts with room for %d new tokens)", opt->model_dir, serve_now_ms() - t0, opt->max_batch,
				  opt->kv_cache_mb, opt->kv_first_tokens);
	}
	else if (st.code == GROMA_ERR_CANCELLED && s->stopping)
	{
		groma_kv_pool_free(&s->pool);
		groma_engine_close(&s->engine);
		serve_set_state(s, GROMA_SERVER_STOPPING);
		serve_log(SERVE_LOG_INFO, "the model load was stopped by the shutdown after %.0f ms", serve_now_ms() - t0);
	}
	else
	{
		groma_kv_pool_free(&s->pool);
		groma_engine_close(&s->engine);
		serve_set_state(s, GROMA_SERVER_FAILED);
		snprintf(s->state_message, sizeof(s->state_message), "%s", st.message);
		serve_log(SERVE_LOG_ERROR, "the model failed to load (%s): %s", groma_status_code_name(st.code),
				  st.message);
		if (st.code == GROMA_ERR_DEVICE_LOST)
		{
			s->exit_code = GROMA_CLI_EXIT_DEVICE_LOST;
			s->stopping = true;
			if (write(s->stop_pipe[1], "x", 1) < 0)
				serve_log(SERVE_LOG_ERROR, "cannot wake the main thread");
		}
	}
	pthread_mutex_unlock(&s->lock);
}

/* Takes a queued job off the queue; see serve_internal.h. */
serve_job *
serve_unqueue(serve_state *s, serve_job *job)
{
	serve_job **p = &s->head;
	serve_job  *before = NULL;

	while (*p != job)
	{
		before = *p;
		p = &(*p)->next;
	}
	*p = job->next;
	if (s->tail == job)
		s->tail = before;
	s->queued--;
	job->queued = false;
	job->next = NULL;
	return job;
}

/* Takes the queue's head off the queue; see serve_internal.h. */
serve_job *
serve_pop_head(serve_state *s)
{
	return serve_unqueue(s, s->head);
}

/* Starts the scheduler; see serve_internal.h. */
bool
serve_scheduler_start(serve_state *s, pthread_t *thread)
{
	return serve_thread_create(thread, NULL, serve_loop, s) == 0;
}

/* Returns why a model request cannot run now (state not READY); called under the lock. */
static groma_status
unavailable(const serve_state *s)
{
	switch (s->state)
	{
		case GROMA_SERVER_NO_MODEL:
			return groma_error(GROMA_ERR_UNAVAILABLE, "groma-server runs without a model (no model path is set)");
		case GROMA_SERVER_FAILED:
			return groma_error(GROMA_ERR_UNAVAILABLE, "the model failed to load: %s", s->state_message);
		case GROMA_SERVER_STOPPING:
			return groma_error(GROMA_ERR_UNAVAILABLE, "groma-server is shutting down");
		case GROMA_SERVER_STARTING:
		case GROMA_SERVER_LOADING:
		case GROMA_SERVER_READY:
			break;
	}
	return groma_error(GROMA_ERR_UNAVAILABLE, "groma-server is loading the model");
}

/* Puts a job at the queue's end and wakes the scheduler; under the lock. */
static void
enqueue(serve_state *s, serve_job *job)
{
	job->queued = true;
	if (s->tail)
		s->tail->next = job;
	else
		s->head = job;
	s->tail = job;
	s->queued++;
	pthread_cond_signal(&s->work);
}

/*
 * Gives the place of another client's newest queued job to job, whose
 * client has none queued, when some client holds at least two (the full
 * queue's case); returns false when none does.  Under the lock.
 */
static bool
take_place_of_heaviest(serve_state *s, serve_job *job)
{
	int			held;
	serve_job  *victim;

	if (job->client_pid == 0 || serve_queued_from_client(s, job->client_pid) > 0 ||
		(victim = serve_eviction_victim(s, &held)) == NULL)
		return false;
	serve_unqueue(s, victim);
	serve_finish_with_error(s, victim, groma_error(GROMA_ERR_BUSY, "groma-server's queue is full: this request gave "
												   "its place to a client with none queued (%d of this client's "
												   "requests waited)", held));
	enqueue(s, job);
	return true;
}

/* Queues or refuses a model request; see serve_internal.h. */
void
serve_submit(serve_state *s, serve_job *job)
{
	int			held = 0;

	pthread_mutex_lock(&s->lock);
	job->enqueued_ms = serve_now_ms();
	job->serial = ++s->submitted;
	s->outstanding++;
	if (s->stopping || s->state != GROMA_SERVER_READY)
		serve_finish_with_error(s, job, s->stopping ? groma_error(GROMA_ERR_UNAVAILABLE, "groma-server is shutting down")
						  : unavailable(s));
	else if (s->queued >= s->opt->max_queue)
	{
		if (!take_place_of_heaviest(s, job))
			serve_finish_with_error(s, job, groma_error(GROMA_ERR_BUSY, "groma-server's queue is full (%d requests wait)",
														s->queued));
	}
	else if (job->client_pid != 0 && s->queued >= s->opt->max_queue - serve_places_kept_for_others(s) &&
			 (held = serve_queued_from_client(s, job->client_pid)) > 0)
		serve_finish_with_error(s, job,
								groma_error(GROMA_ERR_BUSY, "groma-server's queue is full for this client (%d of its "
											"requests wait; the last %d of %d places are kept for other clients)",
											held, serve_places_kept_for_others(s), s->opt->max_queue));
	else
		enqueue(s, job);
	pthread_mutex_unlock(&s->lock);
}

/* Cancels a job; see serve_internal.h. */
void
serve_cancel(serve_state *s, serve_job *job)
{
	pthread_mutex_lock(&s->lock);
	__atomic_store_n(&job->cancel, 1, __ATOMIC_RELAXED);
	if (job->queued)
	{
		serve_unqueue(s, job);
		serve_finish_with_error(s, job, groma_error(GROMA_ERR_CANCELLED, "the request was cancelled while queued"));
	}
	pthread_mutex_unlock(&s->lock);
}

/* Answers the queue and stops the scheduler; see serve_internal.h. */
void
serve_drain(serve_state *s)
{
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	if (s->state != GROMA_SERVER_FAILED)
		serve_set_state(s, GROMA_SERVER_STOPPING);
	while (s->head)
		serve_finish_with_error(s, serve_pop_head(s), groma_error(GROMA_ERR_UNAVAILABLE,
																"groma-server is shutting down"));
	/* the running job stops at its next stage boundary; the batch is answered at the next step */
	for (int i = 0; i < s->n_starting; i++)
		__atomic_store_n(&s->starting[i]->cancel, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < s->n_batch; i++)
		__atomic_store_n(&s->batch[i]->cancel, 1, __ATOMIC_RELAXED);
	/* a model still loading stops at its next weight (set after stopping, which the loader then sees) */
	__atomic_store_n(&s->load_cancel, 1, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&s->work);
	pthread_mutex_unlock(&s->lock);
}

/* The matrices' type the server loads (--weights as resolved: the CPU computes in f32 unless int8). */
const char *
serve_weights_name(const serve_state *s)
{
	return s->opt->weights ? s->opt->weights : strncmp(s->device, "cpu", 3) == 0 ? "f32" : "bf16";
}

/* Fills a STATUS reply; see serve_internal.h. */
void
serve_fill_status(serve_state *s, groma_reply *reply)
{
	pthread_mutex_lock(&s->lock);
	reply->state = s->state;
	reply->model_path = strdup(s->opt->model_dir ? s->opt->model_dir : "");
	reply->device = strdup(s->device);
	reply->load_total = s->load_total;
	if (s->state == GROMA_SERVER_READY)
		reply->load_done = s->load_total;
	else if (s->state == GROMA_SERVER_LOADING)
	{
		uint64_t	done = groma_weights_bound_bytes() - s->load_base;

		reply->load_done = done < s->load_total ? done : s->load_total;
	}
	reply->queue_depth = (uint32_t) s->queued;
	reply->running = (uint32_t) s->running;
	reply->served = s->served;
	reply->failed = s->failed;
	reply->cancelled = s->cancelled;
	reply->busy = s->busy;
	reply->batch = (uint32_t) s->n_batch;
	reply->max_batch = (uint32_t) s->opt->max_batch;
	reply->kv_used = s->kv_used;
	reply->kv_total = s->pool.memory.size;
	reply->weights = strdup(s->opt->model_dir && s->opt->model_dir[0] ? serve_weights_name(s) : "");
	/* a failed load's reason travels as the (successful) reply's message */
	reply->status = groma_ok();
	snprintf(reply->status.message, sizeof(reply->status.message), "%s", s->state_message);
	pthread_mutex_unlock(&s->lock);
	if (reply->model_path == NULL || reply->device == NULL || reply->weights == NULL)
		reply->status = groma_error(GROMA_ERR_NO_MEMORY, "out of memory");
}
