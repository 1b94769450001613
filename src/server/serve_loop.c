/*
 * serve_loop.c - the scheduler thread, which owns the model: it loads it,
 * then loops.  Each turn admits queued jobs (up to SERVE_VISION_BATCH
 * REGIONS jobs get their vision as one batch and are answered; as many
 * GENERATE jobs get their vision as one batch and their prompts, and join
 * the batch; REGIONS jobs pass GENERATE jobs that wait for room), then
 * runs one step for every GENERATE job in the batch: the newcomers'
 * prefills beside one decode token of each of the others, answering those
 * that finished.
 * Continuous batching: jobs join between steps and leave as soon as they
 * are done, so each answer is what it would be alone while a weight read
 * serves the whole batch.  A cache starts with room for a few new tokens
 * and grows when full; when the KV pool cannot hold that, younger members
 * (or the growing one) start again later with their whole cache
 * (make_room).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve_internal.h"
#include "../runtime/cancel.h"

/* Says "shutting down" rather than "cancelled" for work stopped by a shutdown; under the lock. */
static groma_status
shutdown_aware(const serve_state *s, groma_status st)
{
	if (st.code == GROMA_ERR_CANCELLED && s->stopping)
		return groma_error(GROMA_ERR_UNAVAILABLE, "groma-server is shutting down");
	return st;
}

/* Answers a job taken from the queue (reply filled, or failed with st), under the lock. */
static void
finish_job(serve_state *s, serve_job *job, groma_status st)
{
	st = shutdown_aware(s, st);
	if (st.code != GROMA_OK && job->reply.status.code == GROMA_OK)
		groma_reply_set_error(&job->reply, &job->req, st);
	else if (st.code != GROMA_OK)
		job->reply.status = st;
	job->reply.queue_ms = job->started_ms - job->enqueued_ms;
	s->running--;
	job->finished_ms = serve_now_ms();
	job->done = true;
	serve_count_outcome(s, st.code);
	serve_log_request(job);
	serve_wake(job);
	if (st.code == GROMA_ERR_DEVICE_LOST && s->exit_code != GROMA_CLI_EXIT_DEVICE_LOST)
	{
		serve_log(SERVE_LOG_ERROR, "the GPU is lost (%s): exiting so the launcher restarts groma-server", st.message);
		s->exit_code = GROMA_CLI_EXIT_DEVICE_LOST;
		s->stopping = true;
		serve_set_state(s, GROMA_SERVER_STOPPING);
		if (write(s->stop_pipe[1], "x", 1) < 0)
			serve_log(SERVE_LOG_ERROR, "cannot wake the main thread");
	}
}

/* Takes member i out of the batch (the others keep their order); under the lock. */
static serve_job *
take_member(serve_state *s, int i)
{
	serve_job  *job = s->batch[i];

	memmove(&s->batch[i], &s->batch[i + 1], sizeof(serve_job *) * (size_t) (s->n_batch - i - 1));
	s->n_batch--;
	return job;
}

/* Removes batch member i, frees its sequence and answers it with st; under the lock. */
static void
leave_batch(serve_state *s, int i, groma_status st)
{
	serve_job  *job = take_member(s, i);

	groma_pending_generate_free(&job->pending, &s->pool);
	s->pool_wait = false;		/* KV room may have come free */
	s->kv_used = s->pool.used;
	finish_job(s, job, st);
}

/* Puts a job back at the queue's head, under the lock. */
static void
push_head(serve_state *s, serve_job *job)
{
	job->next = s->head;
	s->head = job;
	if (s->tail == NULL)
		s->tail = job;
	s->queued++;
	job->queued = true;
}

/* New tokens a GENERATE job's cache holds when it starts: --kv-first-tokens, or all (0) once it was stopped. */
static int
first_room(const serve_state *s, const serve_job *job)
{
	return job->kv_whole ? 0 : s->opt->kv_first_tokens;
}

/* KV positions a queued GENERATE job takes when it starts: its prompt's bound plus its first room for new tokens. */
static int64_t
first_positions(const serve_state *s, const serve_job *job)
{
	int			max_new = job->req.max_new_tokens;

	return job->kv_positions - max_new + groma_sequence_first_room(max_new, first_room(s, job));
}

/*
 * Stops batch member i (why says for what, in the log) to free its KV
 * block, under the lock: its sequence is dropped and the job goes back to the queue's head,
 * to start again from its image once a member has left and its whole KV
 * bound fits, then taken at once (so it is stopped once at most).  Its answer is
 * the one it would have got: decoding is greedy, and a step's bits do not
 * depend on the batch or on where the cache lies.  During a shutdown it is
 * answered instead.
 */
static void
preempt_member(serve_state *s, int i, const char *why)
{
	serve_job  *job = take_member(s, i);
	size_t		tokens = job->pending.seq.n;

	groma_pending_generate_free(&job->pending, &s->pool);
	s->kv_used = s->pool.used;
	if (s->stopping)
	{
		finish_job(s, job, groma_error(GROMA_ERR_UNAVAILABLE, "groma-server is shutting down"));
		return;
	}
	s->running--;
	job->kv_whole = true;
	s->pool_wait = true;		/* until a member leaves */
	push_head(s, job);
	serve_log(SERVE_LOG_INFO, "request %u (job %llu): stopped after %zu new tokens %s; it starts again, with all of "
			  "its %lld KV positions, once an answer has left and they fit", (unsigned) job->req.id,
			  (unsigned long long) job->serial, tokens, why, (long long) job->kv_positions);
}

/*
 * The batch members younger than member i that may be stopped for it (not
 * stopped before: those hold their whole cache), youngest first, into
 * out; returns how many.
 */
static int
stoppable_after(const serve_state *s, int i, int *out)
{
	int			n = 0;

	for (int j = s->n_batch - 1; j > i; j--)
		if (!s->batch[j]->kv_whole)
			out[n++] = j;
	return n;
}

/*
 * True when member i's cache could grow if the members listed in
 * stoppable[n] gave their blocks back (the old block of i stays for the
 * copy).
 */
static bool
growth_possible(const serve_state *s, int i, const int *stoppable, int n)
{
	const groma_kv_cache *given[GROMA_KV_POOL_MAX_BLOCKS];

	for (int k = 0; k < n; k++)
		given[k] = &s->batch[stoppable[k]]->pending.seq.cache;
	return groma_kv_pool_fits_without(&s->pool, &s->engine.session.model->llm.cfg,
									  groma_sequence_next_capacity(&s->batch[i]->pending.seq), given, n);
}

/*
 * Gives every batch member room for its next step, under the lock
 * (released for the copies): a full cache moves into a block with twice
 * the room for new tokens.  While the pool has no gap for it, the youngest
 * younger member not stopped before is stopped (preempt_member), as long
 * as stopping all of those could make the gap; otherwise the member
 * growing is stopped itself.  A cache that cannot grow for another reason
 * fails its member alone.
 */
static void
make_room(serve_state *s)
{
	for (int i = 0; i < s->n_batch; i++)
	{
		serve_job  *job = s->batch[i];
		int			stoppable[GROMA_KV_POOL_MAX_BLOCKS],
					n;
		groma_status st;

		for (;;)
		{
			/* the scheduler thread alone touches the pool and the batch's sequences */
			pthread_mutex_unlock(&s->lock);
			serve_model_call_begin(s, "growing the KV cache of answer %d of the batch", i + 1, &job, 1);
			st = groma_sequence_make_room(s->engine.session.model, &job->pending.seq, &s->pool);
			serve_model_call_end(s);
			pthread_mutex_lock(&s->lock);
			if (st.code != GROMA_ERR_BUSY)
				break;
			n = stoppable_after(s, i, stoppable);
			if (n == 0 || !growth_possible(s, i, stoppable, n))
				break;
			preempt_member(s, stoppable[0], "to free KV room for older answers");
		}
		if (st.code == GROMA_ERR_BUSY)
			preempt_member(s, i--, "because its KV cache could not grow in the pool (its old and new blocks "
						   "together did not fit beside the other answers)");
		else if (st.code != GROMA_OK)
			leave_batch(s, i--, st);
	}
	s->kv_used = s->pool.used;
}

/*
 * Learns the queue head's KV bound (it needs the tokenizer: outside the
 * lock), under the lock.  A job that cannot run (bad query, a bound larger
 * than the whole pool, a shutdown meanwhile) is answered; else it goes back
 * to the head with its bound.
 */
static void
learn_head_bound(serve_state *s)
{
	serve_job  *job = serve_pop_head(s);
	const groma_llama_config *cfg = &s->engine.session.model->llm.cfg;
	groma_status st;

	pthread_mutex_unlock(&s->lock);
	serve_model_call_begin(s, "bounding the KV room of job %d", (int) job->serial, &job, 1);
	st = groma_request_kv_bound(&s->engine, &job->req, &job->kv_positions);
	serve_model_call_end(s);
	pthread_mutex_lock(&s->lock);
	if (st.code == GROMA_OK && s->stopping)
		st = groma_error(GROMA_ERR_UNAVAILABLE, "groma-server is shutting down");	/* drained meanwhile */
	if (st.code == GROMA_OK && groma_kv_cache_bytes(cfg, job->kv_positions) > s->pool.memory.size)
		st = groma_error(GROMA_ERR_LIMIT,
						 "this answer may need %lld KV positions (%.2f MB), more than the KV cache pool "
						 "of %.2f MB holds (--kv-cache-mb)", (long long) job->kv_positions,
						 groma_kv_cache_bytes(cfg, job->kv_positions) / 1048576.0, s->pool.memory.size / 1048576.0);
	if (st.code != GROMA_OK)
		serve_finish_with_error(s, job, st);
	else
		push_head(s, job);
}

/*
 * Takes the first queued REGIONS jobs (up to SERVE_VISION_BATCH, in queue
 * order) into jobs when the queue's GENERATE jobs cannot start now (the
 * batch is full or the KV pool has no room), under the lock; returns how
 * many.  They need no KV room, so they go ahead instead of waiting for an
 * answer to leave: they delay the batch by their own run, as they would at
 * the head, and the waiting GENERATE jobs keep their order.
 */
static int
overtake(serve_state *s, serve_job **jobs)
{
	int			ahead = 0,
				n = 0;
	serve_job  *job = s->head;

	while (job != NULL && n < SERVE_VISION_BATCH)
	{
		serve_job  *next = job->next;

		if (job->req.kind == GROMA_MSG_GENERATE)
			ahead++;
		else
		{
			if (ahead > 0)
				serve_log(SERVE_LOG_DEBUG, "request %u (job %llu) goes ahead of %d answers waiting for room in the "
						  "batch or the KV pool", (unsigned) job->req.id, (unsigned long long) job->serial, ahead);
			jobs[n++] = serve_unqueue(s, job);
		}
		job = next;
	}
	return n;
}

/*
 * Takes the jobs that can start now from the queue's head, under the lock:
 * up to SERVE_VISION_BATCH consecutive REGIONS jobs, or as many GENERATE jobs
 * while the batch has room and the KV pool has room for all their first
 * blocks together (first_positions; checked by taking blocks and giving
 * them back).  A GENERATE job asking to run alone (a suspect image
 * captioned again) waits for the batch to empty and runs with no other
 * GENERATE job beside it.  A cancelled
 * head is answered and dropped.  When no GENERATE job can start, queued
 * REGIONS jobs may go ahead (overtake).  Returns how many were taken into
 * jobs, all of one kind.
 */
static int
admit(serve_state *s, serve_job **jobs)
{
	const groma_llama_config *cfg = &s->engine.session.model->llm.cfg;
	groma_kv_cache trial[SERVE_VISION_BATCH];
	int			n = 0;
	bool		batch_alone = false;

	for (int i = 0; i < s->n_batch; i++)
		batch_alone |= s->batch[i]->req.alone;

	while (s->head != NULL && !s->pool_wait && n < SERVE_VISION_BATCH)
	{
		serve_job  *job = s->head;

		if (job->cancel)
		{
			serve_finish_with_error(s, serve_pop_head(s), groma_error(GROMA_ERR_CANCELLED,
																"the request was cancelled while queued"));
			continue;
		}
		if (job->req.kind != GROMA_MSG_GENERATE)
		{
			/* REGIONS jobs at the head, consecutive, share a vision batch; never mixed with GENERATE jobs */
			if (n > 0 && jobs[0]->req.kind == GROMA_MSG_GENERATE)
				break;
			jobs[n++] = serve_pop_head(s);
			continue;
		}
		if (n > 0 && jobs[0]->req.kind != GROMA_MSG_GENERATE)
			break;
		/* a job asking to run alone starts into an empty batch, and no GENERATE job joins it (REGIONS jobs, which
		 * may overtake it, run in model calls of their own) */
		if (batch_alone || (job->req.alone && (n > 0 || s->n_batch > 0)))
			break;
		if (s->n_batch + n >= s->opt->max_batch)
			break;
		if (job->kv_positions == 0)
		{
			learn_head_bound(s);
			continue;
		}
		if (groma_kv_pool_take(&s->pool, cfg, first_positions(s, job), &trial[n]).code != GROMA_OK)
		{
			if (n == 0)
				s->pool_wait = true;	/* until a batch member leaves */
			break;
		}
		jobs[n++] = serve_pop_head(s);
		if (job->req.alone)
		{
			serve_log(SERVE_LOG_INFO, "request %u (job %llu) runs alone: no other request joins its model calls",
					  (unsigned) job->req.id, (unsigned long long) job->serial);
			break;
		}
	}
	for (int i = 0; i < n; i++)
		if (jobs[i]->req.kind == GROMA_MSG_GENERATE)
			groma_kv_pool_give(&s->pool, &trial[i]);
	if (n == 0 && s->head != NULL)
		n = overtake(s, jobs);
	return n;
}

/*
 * Runs jobs taken from the queue (all of one kind): the vision of REGIONS
 * jobs as one batch, answering them, or the vision (as one batch) and
 * prompts of GENERATE jobs, which then join the batch; their prefills run
 * at its next step.
 */
static void
start_jobs(serve_state *s, serve_job **jobs, int n)
{
	const groma_request *reqs[SERVE_VISION_BATCH];
	groma_reply *replies[SERVE_VISION_BATCH];
	groma_pending_generate *pending[SERVE_VISION_BATCH];
	const volatile int *cancel[SERVE_VISION_BATCH];
	int			room[SERVE_VISION_BATCH];
	bool		generate = jobs[0]->req.kind == GROMA_MSG_GENERATE;
	bool		one_by_one = false;

	s->running += n;
	s->n_starting = n;
	for (int i = 0; i < n; i++)
	{
		if (jobs[i]->started_ms == 0)
			jobs[i]->started_ms = serve_now_ms();	/* a job stopped for KV room keeps its first start */
		s->starting[i] = jobs[i];
		reqs[i] = &jobs[i]->req;
		replies[i] = &jobs[i]->reply;
		pending[i] = &jobs[i]->pending;
		room[i] = first_room(s, jobs[i]);
		cancel[i] = &jobs[i]->cancel;
	}
	serve_test_stall(s, jobs, n, true);
	pthread_mutex_unlock(&s->lock);
	serve_model_call_begin(s, generate ? "the vision and prompts of %d GENERATE request(s)" :
						   "the vision of %d REGIONS request(s)", n, jobs, n);
	serve_test_stall(s, jobs, n, false);
	serve_test_crash(s, jobs, n);
	if (n > 1)
		serve_log(SERVE_LOG_INFO, "the vision of %d images as one batch", n);
	/*
	 * the work stops at its next stage when every job was cancelled (one job
	 * alone, or a shutdown); a job cancelled beside others leaves after it
	 */
	groma_cancel_watch_all(cancel, n);
	/* each reply holds its own outcome */
	if (generate)
		groma_request_generate_begin_batch(&s->engine, n, reqs, &s->pool, room, replies, pending, &one_by_one);
	else
		groma_request_regions_batch(&s->engine, n, reqs, replies, &one_by_one);
	groma_cancel_watch(NULL);
	serve_model_call_end(s);
	if (n > 1 && jobs[0]->reply.status.code == GROMA_ERR_CANCELLED)
		serve_log(SERVE_LOG_INFO, "the vision of %d images stopped: every one of their requests was cancelled", n);
	if (one_by_one)
		serve_log(SERVE_LOG_WARNING, "the vision of %d images did not fit the activation arena (--act-mb): "
				  "they ran one at a time", n);
	pthread_mutex_lock(&s->lock);
	s->n_starting = 0;
	s->kv_used = s->pool.used;
	for (int i = 0; i < n; i++)
	{
		serve_job  *job = jobs[i];

		if (generate && job->reply.status.code == GROMA_OK && job->pending.seq.ids != NULL && !job->pending.seq.done)
			s->batch[s->n_batch++] = job;
		else if (!generate && job->cancel && job->reply.status.code == GROMA_OK)
			finish_job(s, job, groma_error(GROMA_ERR_CANCELLED, "the request was cancelled"));	/* beside others */
		else
			finish_job(s, job, job->reply.status);
	}
}

/*
 * One step for the batch, under the lock (released while the model runs):
 * cancelled members leave first; newcomers' prefills run beside the
 * others' decode tokens; finished members are answered, and a member whose
 * prefill did not fit the activation arena fails alone.
 */
static void
step_batch(serve_state *s)
{
	groma_sequence *seqs[GROMA_KV_POOL_MAX_BLOCKS];
	serve_job  *done[GROMA_KV_POOL_MAX_BLOCKS];
	bool		newcomer[GROMA_KV_POOL_MAX_BLOCKS];
	int			n,
				n_done = 0,
				prefills = 0,
				alone = 0;
	groma_status st;

	for (int i = s->n_batch - 1; i >= 0; i--)
		if (s->batch[i]->cancel)
			leave_batch(s, i, groma_error(GROMA_ERR_CANCELLED, "the request was cancelled"));
	make_room(s);
	n = s->n_batch;
	if (n == 0)
		return;
	for (int i = 0; i < n; i++)
	{
		seqs[i] = &s->batch[i]->pending.seq;
		newcomer[i] = !seqs[i]->prefilled;
		prefills += newcomer[i];
	}
	pthread_mutex_unlock(&s->lock);
	if (prefills > 0 && prefills < n)
		serve_log(SERVE_LOG_INFO, "the prefill of %d prompts beside the decoding of %d answers", prefills, n - prefills);
	serve_model_call_begin(s, "a decode step of %d answer(s)", n, s->batch, n);
	st = groma_sequence_step(s->engine.session.model, s->engine.tok, seqs, n, &s->engine.session.act);
	serve_model_call_end(s);
	groma_arena_reset(&s->engine.session.act);	/* the newcomers' prompts have been read */
	for (int i = 0; i < n; i++)
		alone += newcomer[i] && seqs[i]->prefill_alone;
	if (alone > 0)
		serve_log(SERVE_LOG_WARNING, "%d prefills did not fit the activation arena (--act-mb) beside the batch: "
				  "they ran one at a time", alone);
	pthread_mutex_lock(&s->lock);
	if (st.code != GROMA_OK)
	{
		/* a failed step leaves every sequence's cache in doubt: the whole batch fails */
		serve_log(SERVE_LOG_ERROR, "a decode step of %d answers failed (%s): %s", n, groma_status_code_name(st.code),
				  st.message);
		while (s->n_batch > 0)
			leave_batch(s, s->n_batch - 1, st);
		return;
	}
	/* finished members leave the batch; one whose prefill could not run fails alone */
	for (int i = n - 1; i >= 0; i--)
	{
		const groma_sequence *seq = &s->batch[i]->pending.seq;

		if (seq->done && seq->failure.code != GROMA_OK)
			leave_batch(s, i, seq->failure);
		else if (seq->done)
			done[n_done++] = take_member(s, i);
	}
	if (n_done == 0)
		return;
	for (int i = 0; i < n_done; i++)
		groma_kv_pool_give(&s->pool, &done[i]->pending.seq.cache);	/* its cache is no longer read */
	s->pool_wait = false;
	s->kv_used = s->pool.used;
	pthread_mutex_unlock(&s->lock);
	serve_model_call_begin(s, "finishing %d answer(s)", n_done, done, n_done);
	for (int i = 0; i < n_done; i++)
		groma_request_generate_finish(&s->engine, &done[i]->req, NULL, &done[i]->reply, &done[i]->pending);
	serve_model_call_end(s);
	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < n_done; i++)
		finish_job(s, done[i], done[i]->reply.status);
}

/* The scheduler thread; see serve_internal.h. */
void *
serve_loop(void *arg)
{
	serve_state *s = arg;

	serve_load_model(s);
	pthread_mutex_lock(&s->lock);
	for (;;)
	{
		serve_job  *jobs[SERVE_VISION_BATCH];
		int			n;

		if (s->n_batch == 0)
			s->pool_wait = false;	/* an empty pool fits any bound admit let through */
		while (!s->stopping && s->n_batch == 0 && s->head == NULL)
			pthread_cond_wait(&s->work, &s->lock);
		if (s->stopping)
			break;
		n = admit(s, jobs);
		if (n > 0)
			start_jobs(s, jobs, n);
		if (s->stopping)
			break;
		step_batch(s);
	}
	/* a shutdown answers the batch; the queue was answered by serve_drain */
	while (s->n_batch > 0)
		leave_batch(s, s->n_batch - 1, groma_error(GROMA_ERR_UNAVAILABLE, "groma-server is shutting down"));
	pthread_mutex_unlock(&s->lock);
	return NULL;
}
