/*
 * serve_queue_share.c - how the queue's places are shared between client
 * processes: the last quarter is kept for clients with nothing queued, and
 * a client with nothing queued that finds the queue full takes the place of
 * the newest request of the client holding the most (at least two) that
 * has not run yet.
 */
#include <stdlib.h>

#include "serve_internal.h"

/* The places at the queue's end kept for clients with no request queued; see serve_internal.h. */
int
serve_places_kept_for_others(const serve_state *s)
{
	return s->opt->max_queue / 4;
}

/* Counts the queued jobs of one client; see serve_internal.h. */
int
serve_queued_from_client(const serve_state *s, pid_t pid)
{
	int			n = 0;

	for (const serve_job *j = s->head; j != NULL; j = j->next)
		n += j->client_pid == pid;
	return n;
}

/* Orders process ids for qsort. */
static int
compare_pids(const void *a, const void *b)
{
	pid_t		x = *(const pid_t *) a,
				y = *(const pid_t *) b;

	return (x > y) - (x < y);
}

/* Chooses the job to give up its place; see serve_internal.h. */
serve_job *
serve_eviction_victim(const serve_state *s, int *held)
{
	pid_t	   *pids;			/* [s->queued] the queued jobs' clients, sorted */
	pid_t		heaviest = 0;
	int			n = 0,
				run = 0,
				most = 1;		/* a client needs at least two queued to give one up */
	serve_job  *victim = NULL;

	*held = 0;
	if (s->queued < 2 || (pids = malloc(sizeof(pid_t) * (size_t) s->queued)) == NULL)
		return NULL;
	for (const serve_job *j = s->head; j != NULL && n < s->queued; j = j->next)
		if (j->client_pid != 0)
			pids[n++] = j->client_pid;
	qsort(pids, (size_t) n, sizeof(pid_t), compare_pids);
	for (int i = 0; i < n; i++)
	{
		run = i > 0 && pids[i] == pids[i - 1] ? run + 1 : 1;
		if (run > most)
		{
			most = run;
			heaviest = pids[i];
		}
	}
	free(pids);
	if (heaviest == 0)
		return NULL;
	/* the newest by arrival (a job stopped for KV room went back to the head), and never one that ran already */
	for (serve_job *j = s->head; j != NULL; j = j->next)
		if (j->client_pid == heaviest && j->started_ms == 0 && !j->kv_whole &&
			(victim == NULL || j->serial > victim->serial))
			victim = j;
	*held = most;
	return victim;
}
