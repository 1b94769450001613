/*
 * graph_cache.c - device work recorded once and replayed; see
 * graph_cache.h.
 */
#include "graph_cache.h"

#include <stdlib.h>
#include <string.h>

/* An empty cache, on unless env_off is "0"; see graph_cache.h. */
void
groma_graph_cache_init(groma_graph_cache *g, const char *env_off)
{
	const char *env = env_off ? getenv(env_off) : NULL;

	memset(g, 0, sizeof(*g));
	g->off = env != NULL && strcmp(env, "0") == 0;
}

/* Frees every recording; see graph_cache.h. */
void
groma_graph_cache_clear(groma_graph_cache *g)
{
	for (int i = 0; i < g->used; i++)
		groma_graph_free(g->slot[i].graph);
	memset(g->slot, 0, sizeof(g->slot));
	g->used = 0;
}

/* Turns recording on or off; see graph_cache.h. */
void
groma_graph_cache_set_enabled(groma_graph_cache *g, bool on)
{
	g->off = !on;
	if (!on)
		groma_graph_cache_clear(g);
}

/* The slot of key (len bytes), made (evicting the least recently used) when it has none. */
static groma_graph_slot *
slot_of(groma_graph_cache *g, const void *key, size_t len)
{
	groma_graph_slot *s;
	int			victim = 0;

	for (int i = 0; i < g->used; i++)
		if (g->slot[i].key_len == len && memcmp(g->slot[i].key, key, len) == 0)
			return &g->slot[i];
	if (g->used < GROMA_GRAPH_CACHE_SLOTS)
		victim = g->used++;		/* a slot never used, or cleared: no recording to free */
	else
		for (int i = 1; i < g->used; i++)
			if (g->slot[i].last_use < g->slot[victim].last_use)
				victim = i;
	s = &g->slot[victim];
	groma_graph_free(s->graph);	/* the evicted key's recording, if it had one */
	memset(s, 0, sizeof(*s));
	memcpy(s->key, key, len);
	s->key_len = len;
	return s;
}

/*
 * Records body into s->graph; on success the recorded work has not run
 * yet.  *began says whether the device started recording at all.
 */
static groma_status
record(groma_graph_cache *g, groma_graph_slot *s, groma_device device, groma_graph_body body, void *ctx,
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

/* Runs one key's work, recorded or not; see graph_cache.h. */
groma_status
groma_graph_cache_run(groma_graph_cache *g, groma_device device, const void *key, size_t key_len,
					  groma_graph_body body, void *ctx)
{
	groma_graph_slot *s;
	groma_status st;

	if (g->off || device != GROMA_DEVICE_CUDA || key_len > GROMA_GRAPH_KEY_BYTES)
		return body(ctx);
	s = slot_of(g, key, key_len);
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
			 * nothing recorded ran: the work runs eagerly.  A device that
			 * records nothing (profiling, no graphs) leaves the key eager for
			 * good; a recording that failed is tried again after another
			 * eager run, twice at most.
			 */
			s->refused = !began || ++s->failures >= GROMA_GRAPH_CACHE_TRIES;
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

/* A stage's key, its padding zeroed; see graph_cache.h. */
groma_stage_key
groma_stage_key_of(int stage, int64_t batch, int64_t layers, const void *in, const void *out, const groma_arena *act)
{
	groma_stage_key key;

	memset(&key, 0, sizeof(key));
	key.stage = stage;
	key.batch = batch;
	key.layers = layers;
	key.in = in;
	key.out = out;
	key.scratch = act->base + act->used;
	key.scratch_size = act->size;
	return key;
}
