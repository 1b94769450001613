/*
 * decode_graph.h - decode steps recorded once and replayed (groma_graph).
 * A step in which n sequences each add one token queues the same kernels
 * with the same pointers every time while the batch keeps its caches, its
 * input rows and its scratch: only the positions change, and the kernels
 * read those from device memory.  So the second step of a shape is
 * recorded and every later one replays it in one launch instead of some
 * hundreds.  A key names everything the recording baked in.
 */
#ifndef GROMA_DECODE_GRAPH_H
#define GROMA_DECODE_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../runtime/ops.h"

#define GROMA_DECODE_GRAPH_ROWS 8	/* steps of up to this many sequences are recorded */
#define GROMA_DECODE_GRAPH_SLOTS 8	/* recordings kept (the least recently used goes) */
#define GROMA_DECODE_GRAPH_TRIES 2	/* failed recordings after which a key stays eager */

/*
 * What a recorded decode step baked in: the batch's caches, its input rows
 * and where its scratch starts (and how much the arena holds: a replay
 * checks no bounds).
 */
typedef struct groma_decode_key
{
	int64_t		n;				/* sequences, each adding one token */
	const void *x;				/* the step's input rows [n, D] */
	const void *scratch;		/* the activation arena's first free byte */
	size_t		scratch_size;	/* the activation arena's size */
	const void *k[GROMA_DECODE_GRAPH_ROWS];	/* each sequence's K and V caches */
	const void *v[GROMA_DECODE_GRAPH_ROWS];
	int64_t		capacity[GROMA_DECODE_GRAPH_ROWS];	/* and the positions they hold */
} groma_decode_key;

/* One key's state: seen once (run eagerly), recorded, or refused by the device (always eager). */
typedef struct groma_decode_slot
{
	groma_decode_key key;
	groma_graph *graph;
	int			seen;
	int			failures;		/* recordings that failed (GROMA_DECODE_GRAPH_TRIES) */
	bool		refused;
	uint64_t	last_use;
} groma_decode_slot;

typedef struct groma_decode_graphs
{
	groma_decode_slot slot[GROMA_DECODE_GRAPH_SLOTS];
	int			used;
	uint64_t	clock;
	bool		off;			/* every step runs eagerly (groma_decode_graphs_set_enabled) */
	long		recorded;		/* recordings made */
	long		replayed;		/* steps run from a recording */
	long		refused;		/* keys left eager because recording or replaying failed */
} groma_decode_graphs;

/* The device work of one decode step, run eagerly or while recording. */
typedef groma_status (*groma_decode_body) (void *ctx);

/* An empty set; graphs are on unless GROMA_DECODE_GRAPHS=0 is in the environment. */
void		groma_decode_graphs_init(groma_decode_graphs *g);

/* Frees every recording (the set stays usable). */
void		groma_decode_graphs_clear(groma_decode_graphs *g);

/* Turns recording on or off (off: every step runs eagerly; recordings are freed). */
void		groma_decode_graphs_set_enabled(groma_decode_graphs *g, bool on);

/*
 * Runs body(ctx), device work only, for the step named by key on device:
 * the first time a key is seen eagerly (its buffers grow to size), the
 * second time recorded and then replayed, later replayed.  A key over
 * GROMA_DECODE_GRAPH_ROWS runs eagerly; so does a step whose recording or
 * replay fails (then the key stays eager: at once when the device records
 * nothing or a replay failed, after GROMA_DECODE_GRAPH_TRIES failed
 * recordings otherwise); a stale recording is dropped and the key starts
 * over.  The result is the step's, however it ran.
 */
groma_status groma_decode_graphs_run(groma_decode_graphs *g, groma_device device, const groma_decode_key *key,
									 groma_decode_body body, void *ctx);

#endif							/* GROMA_DECODE_GRAPH_H */
