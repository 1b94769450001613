/*
 * graph_cache.h - device work recorded once and replayed (groma_graph).
 * Work that queues the same kernels with the same pointers every time it
 * runs (a decode step while its batch keeps its caches; a vision stage for
 * one batch size while the arenas stand where they stood) is recorded the
 * second time its key comes and replayed after that, one launch instead of
 * some hundreds.  A key is bytes the caller fills with everything the
 * recording bakes in (pointers, sizes, shapes); equal bytes, same work.
 */
#ifndef GROMA_GRAPH_CACHE_H
#define GROMA_GRAPH_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../runtime/arena.h"
#include "../runtime/ops.h"

#define GROMA_GRAPH_CACHE_SLOTS 8	/* recordings kept (the least recently used goes) */
#define GROMA_GRAPH_CACHE_TRIES 2	/* failed recordings after which a key stays eager */
#define GROMA_GRAPH_KEY_BYTES 256	/* the longest key (a longer one always runs eagerly) */

/* One key's state: seen once (run eagerly), recorded, or refused by the device (always eager). */
typedef struct groma_graph_slot
{
	unsigned char key[GROMA_GRAPH_KEY_BYTES];
	size_t		key_len;
	groma_graph *graph;
	int			seen;
	int			failures;		/* recordings that failed (GROMA_GRAPH_CACHE_TRIES) */
	bool		refused;
	uint64_t	last_use;
} groma_graph_slot;

typedef struct groma_graph_cache
{
	groma_graph_slot slot[GROMA_GRAPH_CACHE_SLOTS];
	int			used;
	uint64_t	clock;
	bool		off;			/* everything runs eagerly (groma_graph_cache_set_enabled) */
	long		recorded;		/* recordings made */
	long		replayed;		/* runs from a recording */
	long		refused;		/* keys left eager because recording or replaying failed */
} groma_graph_cache;

/*
 * The key of a model stage that reads in, writes out and takes its scratch
 * from an arena: what a recording of it bakes in (zero bytes between the
 * fields, so equal stages give equal bytes).
 */
typedef struct groma_stage_key
{
	int64_t		stage;			/* which stage (the caller's numbering; 64 bits: no padding) */
	int64_t		batch;			/* images */
	int64_t		layers;			/* the hidden states it reads (0: not such a stage) */
	const void *in;				/* its input's device memory */
	const void *out;			/* its first output's device memory */
	const void *scratch;		/* the activation arena's first free byte */
	size_t		scratch_size;	/* the activation arena's size */
} groma_stage_key;

/* A stage's key; see groma_stage_key. */
groma_stage_key groma_stage_key_of(int stage, int64_t batch, int64_t layers, const void *in, const void *out,
								   const groma_arena *act);

/* The device work of one key, run eagerly or while recording: it may queue device work only. */
typedef groma_status (*groma_graph_body) (void *ctx);

/* An empty cache; on unless the environment variable named env_off is "0" (env_off may be NULL). */
void		groma_graph_cache_init(groma_graph_cache *c, const char *env_off);

/* Frees every recording (the cache stays usable). */
void		groma_graph_cache_clear(groma_graph_cache *c);

/* Turns recording on or off (off: everything runs eagerly; recordings are freed). */
void		groma_graph_cache_set_enabled(groma_graph_cache *c, bool on);

/*
 * Runs body(ctx), device work only, for the work named by key (key_len
 * bytes) on device: the first time a key is seen eagerly (its buffers grow
 * to size), the second time recorded and then replayed, later replayed.
 * Work off the GPU, or with a key over GROMA_GRAPH_KEY_BYTES, runs eagerly;
 * so does work whose recording or replay fails (then the key stays eager:
 * at once when the device records nothing or a replay failed, after
 * GROMA_GRAPH_CACHE_TRIES failed recordings otherwise); a stale recording
 * is dropped and the key starts over.  The result is the body's, however
 * it ran.
 */
groma_status groma_graph_cache_run(groma_graph_cache *c, groma_device device, const void *key, size_t key_len,
								   groma_graph_body body, void *ctx);

#endif							/* GROMA_GRAPH_CACHE_H */
