/*
 * grounded_output.h - turning generated token ids into plain text plus
 * groundings: phrases with the selected boxes they refer to (GROMA.md step 9).
 *
 * Groma writes answers such as
 *   <p>A man</p> <roi><r3></roi> ironing clothes on <p>a board</p> <roi><r1><r5></roi>.
 * which become the text "A man ironing clothes on a board." with groundings
 * ("A man", 0, 5, {3}) and ("a board", 25, 32, {1, 5}).  Rules, including
 * for malformed output (the parser never fails on what a model writes):
 *  - decoding stops at </s>; other special tokens (<image>, <region>,
 *    [grounding], <s>, ...) are dropped from the text;
 *  - <p> opens a phrase (an open phrase is closed first); </p> closes it;
 *    </p> without <p> is ignored; a phrase still open at the end is closed
 *    there; leading and trailing spaces are not part of a phrase;
 *  - <roi> ... </roi> lists boxes <rK> (a <roi> inside an open phrase
 *    closes the phrase first); they ground the last closed phrase
 *    that has no boxes yet, if that phrase was closed since the previous box
 *    group; otherwise the group is dropped (so is the phrase's claim: a
 *    later group does not reach back past it); an unclosed <roi> ends at the
 *    end of the output, a <roi> inside a group starts a new group, text
 *    inside a group is not part of the answer, and <rK> outside a group is
 *    dropped;
 *  - an index K not below the number of selected boxes is dropped;
 *    duplicates within a group are kept once;
 *  - each text run after a special token is decoded on its own; in legacy
 *    mode its dummy-prefix space is removed, as SentencePiece decoding of
 *    that run does; removing markup never leaves two spaces in a row;
 *  - phrases that end up without boxes are not groundings;
 *  - start/stop are character (code point) offsets into the final text,
 *    which has no leading or trailing whitespace and no NUL bytes.
 */
#ifndef GROMA_GROUNDED_OUTPUT_H
#define GROMA_GROUNDED_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/status.h"
#include "tokenizer.h"

typedef struct groma_grounding
{
	char	   *phrase;			/* UTF-8 */
	int			start;			/* first character of the phrase in the text */
	int			stop;			/* one past its last character */
	int			n_boxes;
	int		   *boxes;			/* [n_boxes] indices into the selected boxes */
} groma_grounding;

typedef struct groma_grounded_answer
{
	char	   *text;			/* UTF-8 without markup */
	int			n_groundings;
	groma_grounding *groundings;
	int			dropped_box_refs;	/* <rK> references dropped by the rules above */
} groma_grounded_answer;

/*
 * Parses ids[0..n) generated over n_regions selected boxes into *out (free
 * with groma_grounded_answer_free).  Fails only on out-of-vocabulary ids or
 * memory exhaustion.
 */
groma_status groma_parse_grounded(const groma_tokenizer *tok, const int32_t *ids, size_t n,
								  int n_regions, groma_grounded_answer *out);

/* Frees everything a parse allocated; safe on a zeroed answer. */
void		groma_grounded_answer_free(groma_grounded_answer *answer);

#endif							/* GROMA_GROUNDED_OUTPUT_H */
