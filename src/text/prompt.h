/*
 * prompt.h - Groma's conversation prompt (GROMA.md step 7): the "llava"
 * template around a user query, the standard task queries, and expansion of
 * the <image>, <region> and <refer_box> placeholders in token ids.
 */
#ifndef GROMA_PROMPT_H
#define GROMA_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/status.h"
#include "tokenizer.h"

/* The standard tasks --task / the SQL functions build queries for. */
typedef enum groma_task
{
	GROMA_TASK_CAPTION,			/* grounded caption */
	GROMA_TASK_CAPTION_DETAILED,	/* grounded detailed caption */
	GROMA_TASK_GROUND,			/* locate a phrase (REC) */
	GROMA_TASK_DESCRIBE			/* describe a user box (region caption) */
} groma_task;

/* Queries longer than this are refused (the model's context is 4096 tokens). */
#define GROMA_MAX_QUERY_BYTES 65536

/* The ground task's query around its phrase. */
#define GROMA_GROUND_BEFORE "Locate <p>"
#define GROMA_GROUND_AFTER "</p> in the image."

/* The longest phrase to ground: its query is then GROMA_MAX_QUERY_BYTES long. */
#define GROMA_MAX_PHRASE_BYTES \
	(GROMA_MAX_QUERY_BYTES - (int) (sizeof(GROMA_GROUND_BEFORE GROMA_GROUND_AFTER) - 1))

/* The user-box markup a query uses: <roi><refer_box></roi><refer_feat>. */
#define GROMA_REFER_MARKUP "<roi><refer_box></roi><refer_feat>"

/*
 * Writes the query of a standard task into a malloc'd string *out: phrase
 * is used by GROMA_TASK_GROUND (it must not contain markup), ignored by the
 * others.
 */
groma_status groma_task_query(groma_task task, const char *phrase, char **out);

/*
 * Wraps a user query in the llava conversation (system text, the image and
 * regions turn, the assistant's reply, the query, "ASSISTANT:") into a
 * malloc'd *out.  The query may use <p>, </p>, <roi>, </roi>, <refer_box>,
 * <refer_feat> and [grounding]; other Groma or control tokens (<image>,
 * <region>, <rK>, <s>, </s>, ...) and invalid UTF-8 are refused.
 */
groma_status groma_prompt_text(const char *query, char **out);

/*
 * Checks, from the query text alone (before any model is loaded or run),
 * that it has one <refer_box> and one <refer_feat> per refer box:
 * GROMA_ERR_INVALID_ARGUMENT with both counts otherwise, the message
 * groma_prompt_expand gives for the same mismatch.
 */
groma_status groma_prompt_check_refer(const char *query, int n_refer);

/* Placeholder ids the expansion works with (from the tokenizer). */
typedef struct groma_prompt_tokens
{
	int32_t		image;			/* <image> */
	int32_t		region;			/* <region> */
	int32_t		refer_box;		/* <refer_box> */
	int32_t		refer_feat;		/* <refer_feat> */
	int32_t		r0;				/* <r0>; <rK> is r0 + K */
} groma_prompt_tokens;

/* Looks up the placeholder ids; GROMA_ERR_FORMAT when the tokenizer lacks one. */
groma_status groma_prompt_tokens_lookup(const groma_tokenizer *tok, groma_prompt_tokens *pt);

/*
 * Expands ids[0..n) into a malloc'd *expanded: the single <image> becomes
 * n_image copies; the single <region> becomes <r0> <region> <r1> <region> ...
 * for n_regions boxes; the i-th <refer_box> becomes <rK> with K =
 * refer_match[i].  The number of <refer_box> tokens must equal n_refer and
 * the number of <refer_feat> tokens too.
 */
groma_status groma_prompt_expand(const groma_prompt_tokens *pt, const int32_t *ids, size_t n,
								 int n_image, int n_regions, const int64_t *refer_match, int n_refer,
								 int32_t **expanded, size_t *n_expanded);

#endif							/* GROMA_PROMPT_H */
