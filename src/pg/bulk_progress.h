/*
 * bulk_progress.h - progress of bulk captioning, per backend, in shared
 * memory: what the groma_progress view shows while groma_caption_table or
 * an array call (groma_caption_many, groma_regions_many, groma_ground_many,
 * groma_chat_many) runs.
 *
 * One entry per backend (indexed by MyBackendId).  A job is either the
 * procedure's (begun by groma_progress_begin with the table and the rows to
 * do; rows_done advanced after each committed chunk) or, for an array call
 * made by hand, the call itself.  The array call reports the answers it has
 * received of its current chunk.  An aborted transaction and the backend's
 * exit clear the entry, so a cancelled job never shows as running.
 */
#ifndef GROMA_BULK_PROGRESS_H
#define GROMA_BULK_PROGRESS_H

#include "postgres.h"

/* Requests the shared memory (from _PG_init, under shared_preload_libraries only). */
void		groma_progress_request(void);

/* What an array call made by hand does, for its phase in groma_progress. */
typedef enum groma_array_work
{
	GROMA_ARRAY_CAPTIONS,		/* groma_caption_many(bytea[]) */
	GROMA_ARRAY_REGIONS,		/* groma_regions_many(bytea[]) */
	GROMA_ARRAY_GROUNDING,		/* groma_ground_many(bytea[], text) */
	GROMA_ARRAY_ANSWERS			/* groma_chat_many(bytea[], text) */
} groma_array_work;

/*
 * Marks the start of an array call of n images: its chunk of a running
 * job (alone: rows of a chunk lost with groma-server, captioned one at a
 * time), or a job of its own doing work.
 */
void		groma_progress_chunk_start(int n, groma_array_work work, bool alone);

/* Marks whether this backend's job is waiting for a groma-server on its way back; returns what it was. */
bool		groma_progress_set_waiting(bool waiting);

/* Records that done of the current chunk's images have been answered. */
void		groma_progress_chunk_answered(int done);

/* Marks the end of an array call: ends the job when the call was a job of its own. */
void		groma_progress_chunk_end(void);

#endif							/* GROMA_BULK_PROGRESS_H */
