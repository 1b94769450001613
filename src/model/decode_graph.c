/*
 * decode_graph.c - decode steps recorded once and replayed; see
 * decode_graph.h.
 */
#include "decode_graph.h"

#include <stdlib.h>
#include <string.h>

/* An empty set, on unless GROMA_DECODE_GRAPHS=0; see decode_graph.h. */
void
groma_decode_graphs_init(groma_decode_graphs *g)
{
	const char *env = getenv("GROMA_DECODE_GRAPHS");

	memset(g, 0, sizeof(*g));
	g->off = env != NULL && strcmp(env, "0") == 0;
}

/* Frees every recording; see decode_graph.h. */
void
groma_decode_graphs_clear(groma_decode_graphs *g)
{
	for (int i = 0; i < g->used; i++)
		groma_graph_free(g->slot[i].graph);
	memset(g->slot, 0, sizeof(g->slot));
	g->used = 0;
}

/* Turns recording on or off; see decode_graph.h. */
void
groma_decode_graphs_set_enabled(groma_decode_graphs *g, bool on)
{
	g->off = !on;
	if (!on)
		groma_decode_graphs_clear(g);
}

/* True when two keys name the same step (unused cache entries are zero in both). */
static bool
same_key(const groma_decode_key *a, const groma_decode_key *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

/* The slot of key, made (evicting the least recently used) when it has none. */
static groma_decode_slot *
slot_of(groma_decode_graphs *g, const groma_decode_key *key)
{
	groma_decode_slot *s;
	int			victim = 0;

	for (int i = 0; i < g->used; i++)
		if (same_key(&g->slot[i].key, key))
			return &g->slot[i];
	if (g->used < GROMA_DECODE_GRAPH_SLOTS)
		victim = g->used++;		/* a slot never used, or cleared: no recording to free */
	else
		for (int i = 1; i < g->used; i++)
			if (g->slot[i].last_use < g->slot[victim].last_use)
				victim = i;
	s = &g->slot[victim];
	groma_graph_free(s->graph);	/* the evicted key's recording, if it had one */
	memset(s, 0, sizeof(*s));
	s->key = *key;
	return s;
}

/*
 * Records body into s->graph; on success the recorded step has not run
 * yet.  *began says whether the device started recording at all.
 */
static groma_status
record(groma_decode_graphs *g, groma_decode_slot *s, groma_device device, groma_decode_body body, void *ctx,
	   bool *began)
{
	groma_status st = groma_graph_begin(device),
				ended;

	*began = st.code == GROMA_OK;
	if (st.code != GROMA_OK)
		return st;
	st = body(ctx);
	ended = groma_graph_end(device, &s->graph);	/* always closed, whatever the body did */
	if (st.code == GROMA_OK)
		st = ended;
	if (st.code != GROMA_OK)
	{
		groma_graph_free(s->graph);
		s->graph = NULL;
		return st;
	}
	g->recorded++;
	return groma_ok();
}

/* Runs one decode step, recorded or not; see decode_graph.h. */
groma_status
groma_decode_graphs_run(groma_decode_graphs *g, groma_device device, const groma_decode_key *key,
						groma_decode_body body, void *ctx)
{
	groma_decode_slot *s;
	groma_status st;

	if (g->off || device != GROMA_DEVICE_CUDA || key->n < 1 || key->n > GROMA_DECODE_GRAPH_ROWS)
		return body(ctx);
	s = slot_of(g, key);
	s->last_use = ++g->clock;
	if (s->graph && !groma_graph_current(s->graph))
	{
		/* a buffer moved: run eagerly once more (it may grow again), then record anew */
		groma_graph_free(s->graph);
		s->graph = NULL;
		s->seen = 0;
	}
	if (s->graph == NULL && (s->refused || s->seen++ == 0))
		return body(ctx);
	if (s->graph == NULL)
	{
		bool		began = false;

		st = record(g, s, device, body, ctx, &began);
		if (st.code == GROMA_ERR_DEVICE_LOST)
			return st;
		if (st.code != GROMA_OK)
		{
			/*
			 * nothing recorded ran: the step runs eagerly.  A device that
			 * records nothing (profiling, no graphs) leaves the key eager for
			 * good; a recording that failed is tried again after another
			 * eager step, twice at most.
			 */
			s->refused = !began || ++s->failures >= GROMA_DECODE_GRAPH_TRIES;
			s->seen = 0;
			g->refused += s->refused;
			return body(ctx);
		}
	}
	st = groma_graph_replay(s->graph);
	if (st.code == GROMA_OK || st.code == GROMA_ERR_DEVICE_LOST)
	{
		g->replayed += st.code == GROMA_OK;
		return st;
	}
	/* a replay the device refused (out of memory for the graph, say): this key runs eagerly from now on */
	groma_graph_free(s->graph);
	s->graph = NULL;
	s->refused = true;
	g->refused++;
	return body(ctx);
}
