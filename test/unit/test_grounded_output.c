/*
 * test_grounded_output.c - parsing generated ids into text and groundings,
 * including malformed generations.  Inputs are produced by encoding marked-up
 * text with the real LLaMA-2 tokenizer (legacy mode, as Groma was trained),
 * so the ids look like what the model writes.
 */
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "golden_case.h"
#include "../../src/text/grounded_output.h"

/* Encodes markup (no <s>) and parses it over n_regions boxes. */
static bool
parse(const char *markup, int n_regions, groma_grounded_answer *a)
{
	int32_t		ids[1024];
	size_t		n;
	groma_tokenizer *tok = golden_tiny_tokenizer();
	groma_status st;

	if (tok == NULL)
		return false;
	st = groma_tokenizer_encode(tok, markup, false, ids, 1024, &n);
	CHECKF(st.code == GROMA_OK, "%s", st.message);
	st = groma_parse_grounded(tok, ids, n, n_regions, a);
	CHECKF(st.code == GROMA_OK, "%s", st.message);
	return st.code == GROMA_OK;
}

/* Checks grounding i: phrase, offsets into the text, and its boxes. */
static void
expect_grounding(const groma_grounded_answer *a, int i, const char *phrase, int start, int stop,
				 int n_boxes, const int *boxes)
{
	const groma_grounding *g;

	CHECKF(i < a->n_groundings, "grounding %d missing (%d found)", i, a->n_groundings);
	if (i >= a->n_groundings)
		return;
	g = &a->groundings[i];
	CHECKF(strcmp(g->phrase, phrase) == 0, "phrase %d is \"%s\", want \"%s\"", i, g->phrase, phrase);
	CHECKF(g->start == start && g->stop == stop, "phrase %d at %d..%d, want %d..%d", i, g->start, g->stop, start, stop);
	CHECKF(g->n_boxes == n_boxes, "phrase %d has %d boxes, want %d", i, g->n_boxes, n_boxes);
	for (int k = 0; k < n_boxes && k < g->n_boxes; k++)
		CHECKF(g->boxes[k] == boxes[k], "phrase %d box %d is %d, want %d", i, k, g->boxes[k], boxes[k]);
}

/* The documented example: two phrases, offsets into the clean text, multi-box groups. */
UNIT_TEST(test_grounded_well_formed)
{
	groma_grounded_answer a;

	if (!parse("<p>A man</p> <roi><r3></roi> ironing clothes on <p>a board</p> <roi><r1><r5></roi>.", 6, &a))
		return;
	CHECKF(strcmp(a.text, "A man ironing clothes on a board.") == 0, "text \"%s\"", a.text);
	CHECK(a.n_groundings == 2 && a.dropped_box_refs == 0);
	expect_grounding(&a, 0, "A man", 0, 5, 1, (int[]) {3});
	expect_grounding(&a, 1, "a board", 25, 32, 2, (int[]) {1, 5});
	groma_grounded_answer_free(&a);

	/* offsets count characters, not bytes */
	if (!parse("Voilà <p>un café</p> <roi><r0></roi> ici.", 1, &a))
		return;
	CHECKF(strcmp(a.text, "Voilà un café ici.") == 0, "text \"%s\"", a.text);
	expect_grounding(&a, 0, "un café", 6, 13, 1, (int[]) {0});
	groma_grounded_answer_free(&a);
}

/* Malformed generations follow the documented rules and never fail. */
UNIT_TEST(test_grounded_malformed)
{
	groma_grounded_answer a;

	/* a box group without a phrase is dropped */
	if (parse("Hello <roi><r1></roi> world", 3, &a))
	{
		CHECKF(strcmp(a.text, "Hello world") == 0, "text \"%s\"", a.text);
		CHECK(a.n_groundings == 0 && a.dropped_box_refs == 1);
		groma_grounded_answer_free(&a);
	}
	/* indices beyond the selected boxes are dropped, duplicates kept once */
	if (parse("<p>the cat</p> <roi><r7><r2><r2></roi>", 3, &a))
	{
		CHECKF(strcmp(a.text, "the cat") == 0, "text \"%s\"", a.text);
		expect_grounding(&a, 0, "the cat", 0, 7, 1, (int[]) {2});
		CHECK(a.dropped_box_refs == 1);
		groma_grounded_answer_free(&a);
	}
	/* an unclosed <p> is closed by <roi>; an unclosed <roi> ends at the end */
	if (parse("Look at <p>the dog <roi><r0>", 2, &a))
	{
		CHECKF(strcmp(a.text, "Look at the dog") == 0, "text \"%s\"", a.text);
		expect_grounding(&a, 0, "the dog", 8, 15, 1, (int[]) {0});
		groma_grounded_answer_free(&a);
	}
	/* phrases without boxes are not groundings; </p> alone is ignored; <rK> outside a group dropped */
	if (parse("</p>A <p>red</p> ball <r1> here", 2, &a))
	{
		CHECKF(strcmp(a.text, "A red ball here") == 0, "text \"%s\"", a.text);
		CHECK(a.n_groundings == 0 && a.dropped_box_refs == 1);
		groma_grounded_answer_free(&a);
	}
	/* other special tokens vanish; decoding stops at </s> */
	if (parse("[grounding]Hi <image> there</s> <p>ignored</p> <roi><r0></roi>", 1, &a))
	{
		CHECKF(strcmp(a.text, "Hi there") == 0, "text \"%s\"", a.text);
		CHECK(a.n_groundings == 0);
		groma_grounded_answer_free(&a);
	}
	/* a group after text that is not a phrase grounds nothing, even after an earlier phrase */
	if (parse("<p>A man</p> <roi><r3></roi> and <roi><r4></roi>.", 6, &a))
	{
		CHECKF(strcmp(a.text, "A man and.") == 0, "text \"%s\"", a.text);
		CHECKF(a.n_groundings == 1 && a.dropped_box_refs == 1, "%d groundings, %d dropped", a.n_groundings,
			   a.dropped_box_refs);
		expect_grounding(&a, 0, "A man", 0, 5, 1, (int[]) {3});
		groma_grounded_answer_free(&a);
	}
	/* an all-invalid group uses up its phrase: the next group does not ground it */
	if (parse("<p>x</p> <roi><r50></roi> is ironing <roi><r1></roi>", 10, &a))
	{
		CHECKF(a.n_groundings == 0 && a.dropped_box_refs == 2, "%d groundings, %d dropped", a.n_groundings,
			   a.dropped_box_refs);
		groma_grounded_answer_free(&a);
	}
	/* a nested <roi> closes the open group and starts a new one */
	if (parse("<p>two dogs</p> <roi><r0><roi><r1></roi>", 2, &a))
	{
		expect_grounding(&a, 0, "two dogs", 0, 8, 1, (int[]) {0});
		CHECK(a.dropped_box_refs == 1);
		groma_grounded_answer_free(&a);
	}
	/* an empty generation */
	{
		groma_tokenizer *tok = golden_tiny_tokenizer();

		if (tok && groma_parse_grounded(tok, NULL, 0, 0, &a).code == GROMA_OK)
		{
			CHECK(strcmp(a.text, "") == 0 && a.n_groundings == 0);
			groma_grounded_answer_free(&a);
		}
		CHECK(tok == NULL || groma_parse_grounded(tok, (int32_t[]) {999999}, 1, 0, &a).code == GROMA_ERR_INVALID_ARGUMENT);
	}
}
