/*
 * grounded_output.c - generated ids to text plus phrase groundings.
 */
#include "grounded_output.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* A growable byte string. */
typedef struct text_buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} text_buf;

/* Parser state while walking the ids. */
typedef struct parse_state
{
	const groma_tokenizer *tok;
	int			n_regions;
	text_buf	text;
	int32_t		lead;			/* a piece without "▁" that decodes to one byte: keeps run spaces */
	int32_t		p_open,
				p_close,
				roi_open,
				roi_close,
				r0,
				eos;
	int			phrase_start;	/* byte offset of an open phrase, -1 when none */
	int			pending;		/* grounding index waiting for boxes, -1 when none */
	bool		in_roi;
	bool		collapse;		/* markup was just removed */
	bool		legacy;			/* runs after special tokens carry a dummy-prefix space */
	groma_grounded_answer *out;
	int			cap_groundings;
	int			group[128];		/* box indices of the open group */
	int			n_group;
} parse_state;

/* Appends len bytes, dropping NUL bytes; false when out of memory. */
static bool
buf_append(text_buf *b, const char *s, size_t len)
{
	if (b->len + len + 1 > b->cap)
	{
		size_t		cap = (b->cap ? b->cap * 2 : 256) + len;
		char	   *p = realloc(b->data, cap);

		if (p == NULL)
			return false;
		b->data = p;
		b->cap = cap;
	}
	for (size_t i = 0; i < len; i++)
		if (s[i] != '\0')
			b->data[b->len++] = s[i];
	b->data[b->len] = '\0';
	return true;
}

/* Returns the number of code points in s[0..len). */
static int
utf8_chars(const char *s, size_t len)
{
	int			n = 0;

	for (size_t i = 0; i < len; i++)
		n += ((unsigned char) s[i] & 0xC0) != 0x80;
	return n;
}

/* Decodes a run of text ids and appends it, keeping its leading space unless it starts the text. */
static groma_status
flush_run(parse_state *ps, const int32_t *run, size_t n)
{
	int32_t    *ids;
	size_t		len = 0,
				cap = 64 + n * 32;
	char	   *buf;
	const char *s;
	groma_status st;

	if (n == 0)
		return groma_ok();
	ids = malloc((n + 1) * sizeof(int32_t));
	buf = malloc(cap);
	if (ids == NULL || buf == NULL)
	{
		free(ids);
		free(buf);
		return groma_error(GROMA_ERR_NO_MEMORY, "grounded output: out of memory");
	}
	/* decode with a one-byte lead piece so the run's own leading space survives */
	ids[0] = ps->lead;
	memcpy(ids + 1, run, n * sizeof(int32_t));
	st = groma_tokenizer_decode(ps->tok, ids, n + 1, true, buf, cap, &len);
	if (st.code == GROMA_ERR_LIMIT)
	{
		char	   *bigger = realloc(buf, len + 1);

		if (bigger == NULL)
			st = groma_error(GROMA_ERR_NO_MEMORY, "grounded output: out of memory");
		else
		{
			buf = bigger;
			st = groma_tokenizer_decode(ps->tok, ids, n + 1, true, buf, len + 1, &len);
		}
	}
	if (st.code == GROMA_OK)
	{
		s = buf + 1;
		len -= 1;
		if (ps->text.len == 0)
			while (len > 0 && *s == ' ')	/* the answer starts with its first word */
			{
				s++;
				len--;
			}
		else
		{
			/* legacy tokenization gave this run (which follows a special token) a dummy-prefix space */
			if (ps->legacy && len > 0 && *s == ' ')
			{
				s++;
				len--;
			}
			/*
			 * Where markup was removed, one space at most: the space before
			 * it is kept only when the next text starts with neither a
			 * space nor closing punctuation.
			 */
			if (ps->collapse && ps->text.data[ps->text.len - 1] == ' ' && len > 0 &&
				(*s == ' ' || strchr(".,;:!?)]}'\"", *s) != NULL))
			{
				ps->text.data[--ps->text.len] = '\0';
				if (ps->phrase_start >= 0 && ps->text.len < (size_t) ps->phrase_start)
					ps->phrase_start = (int) ps->text.len;
				if (*s == ' ' && ps->text.len > 0)
				{
					ps->text.data[ps->text.len++] = ' ';	/* keep exactly one */
					ps->text.data[ps->text.len] = '\0';
					s++;
					len--;
				}
			}
		}
		ps->collapse = false;
		if (!buf_append(&ps->text, s, len))
			st = groma_error(GROMA_ERR_NO_MEMORY, "grounded output: out of memory");
	}
	free(ids);
	free(buf);
	return st;
}

/* Closes the open phrase as a grounding candidate (trimmed); empty phrases are dropped. */
static groma_status
close_phrase(parse_state *ps)
{
	size_t		a = (size_t) ps->phrase_start,
				b = ps->text.len;
	groma_grounding *g;

	ps->phrase_start = -1;
	while (a < b && (ps->text.data[a] == ' ' || ps->text.data[a] == '\n' || ps->text.data[a] == '\t'))
		a++;
	while (b > a && (ps->text.data[b - 1] == ' ' || ps->text.data[b - 1] == '\n' || ps->text.data[b - 1] == '\t'))
		b--;
	if (a == b)
		return groma_ok();
	if (ps->out->n_groundings == ps->cap_groundings)
	{
		int			cap = ps->cap_groundings ? ps->cap_groundings * 2 : 8;
		groma_grounding *p = realloc(ps->out->groundings, (size_t) cap * sizeof(*p));

		if (p == NULL)
			return groma_error(GROMA_ERR_NO_MEMORY, "grounded output: out of memory");
		ps->out->groundings = p;
		ps->cap_groundings = cap;
	}
	g = &ps->out->groundings[ps->out->n_groundings];
	memset(g, 0, sizeof(*g));
	g->phrase = malloc(b - a + 1);
	if (g->phrase == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "grounded output: out of memory");
	memcpy(g->phrase, ps->text.data + a, b - a);
	g->phrase[b - a] = '\0';
	/* byte offsets for now; converted to characters at the end */
	g->start = (int) a;
	g->stop = (int) b;
	ps->pending = ps->out->n_groundings++;
	return groma_ok();
}

/* Ends a box group: its boxes ground the pending phrase, if any. */
static groma_status
close_group(parse_state *ps)
{
	ps->in_roi = false;
	ps->collapse = true;
	if (ps->pending < 0 || ps->n_group == 0)
	{
		ps->out->dropped_box_refs += ps->n_group;
		ps->n_group = 0;
		ps->pending = -1;		/* a later group may not ground an older phrase */
		return groma_ok();
	}
	{
		groma_grounding *g = &ps->out->groundings[ps->pending];

		g->boxes = malloc((size_t) ps->n_group * sizeof(int));
		if (g->boxes == NULL)
			return groma_error(GROMA_ERR_NO_MEMORY, "grounded output: out of memory");
		memcpy(g->boxes, ps->group, (size_t) ps->n_group * sizeof(int));
		g->n_boxes = ps->n_group;
	}
	ps->pending = -1;
	ps->n_group = 0;
	return groma_ok();
}

/* Handles one special token. */
static groma_status
special_token(parse_state *ps, int32_t id)
{
	if (id == ps->p_open)
	{
		if (ps->phrase_start >= 0)
		{
			groma_status st = close_phrase(ps);

			if (st.code != GROMA_OK)
				return st;
		}
		ps->phrase_start = (int) ps->text.len;
	}
	else if (id == ps->p_close)
	{
		if (ps->phrase_start >= 0)
			return close_phrase(ps);
	}
	else if (id == ps->roi_open)
	{
		if (ps->in_roi)
		{
			groma_status st = close_group(ps);	/* a nested <roi> ends the open group and starts a new one */

			if (st.code != GROMA_OK)
				return st;
		}
		if (ps->phrase_start >= 0)
		{
			groma_status st = close_phrase(ps);	/* <roi> ends an unclosed phrase */

			if (st.code != GROMA_OK)
				return st;
		}
		ps->in_roi = true;
		ps->n_group = 0;
	}
	else if (id == ps->roi_close)
	{
		if (ps->in_roi)
			return close_group(ps);
	}
	else if (ps->r0 >= 0 && id >= ps->r0 && id < ps->r0 + 100)
	{
		int			k = id - ps->r0;
		bool		dup = false;

		for (int i = 0; i < ps->n_group; i++)
			dup |= ps->group[i] == k;
		if (!ps->in_roi || k >= ps->n_regions || ps->n_group >= 128)
			ps->out->dropped_box_refs++;
		else if (!dup)
			ps->group[ps->n_group++] = k;
		ps->collapse = true;
	}
	else
		ps->collapse = true;	/* any other special token is dropped from the text */
	return groma_ok();
}

/* Converts byte offsets of groundings to character offsets and trims the text. */
static void
finish(parse_state *ps)
{
	size_t		lead = 0,
				end = ps->text.len;
	char	   *t = ps->text.data;

	while (lead < end && (t[lead] == ' ' || t[lead] == '\n' || t[lead] == '\t'))
		lead++;
	while (end > lead && (t[end - 1] == ' ' || t[end - 1] == '\n' || t[end - 1] == '\t'))
		end--;
	for (int i = 0; i < ps->out->n_groundings; i++)
	{
		groma_grounding *g = &ps->out->groundings[i];

		g->stop = utf8_chars(t + lead, (size_t) g->stop - lead);
		g->start = utf8_chars(t + lead, (size_t) g->start - lead);
	}
	memmove(t, t + lead, end - lead);
	t[end - lead] = '\0';
	ps->out->text = t;
	ps->text.data = NULL;
	/* phrases without boxes are not groundings */
	{
		int			kept = 0;

		for (int i = 0; i < ps->out->n_groundings; i++)
		{
			if (ps->out->groundings[i].n_boxes > 0)
				ps->out->groundings[kept++] = ps->out->groundings[i];
			else
				free(ps->out->groundings[i].phrase);
		}
		ps->out->n_groundings = kept;
	}
}

/* Parses generated ids; see grounded_output.h. */
groma_status
groma_parse_grounded(const groma_tokenizer *tok, const int32_t *ids, size_t n, int n_regions,
					 groma_grounded_answer *out)
{
	parse_state ps;
	size_t		run_start = 0;
	groma_status st = groma_ok();

	memset(out, 0, sizeof(*out));
	memset(&ps, 0, sizeof(ps));
	ps.tok = tok;
	ps.out = out;
	ps.n_regions = n_regions;
	ps.phrase_start = -1;
	ps.pending = -1;
	ps.lead = groma_tokenizer_token_id(tok, "a");
	ps.p_open = groma_tokenizer_token_id(tok, "<p>");
	ps.p_close = groma_tokenizer_token_id(tok, "</p>");
	ps.roi_open = groma_tokenizer_token_id(tok, "<roi>");
	ps.roi_close = groma_tokenizer_token_id(tok, "</roi>");
	ps.r0 = groma_tokenizer_token_id(tok, "<r0>");
	ps.eos = groma_tokenizer_eos_id(tok);
	ps.legacy = groma_tokenizer_legacy_mode(tok);
	if (ps.lead < 0)
		return groma_error(GROMA_ERR_FORMAT, "grounded output: the vocabulary has no \"a\" piece");
	if (!buf_append(&ps.text, "", 0))
		return groma_error(GROMA_ERR_NO_MEMORY, "grounded output: out of memory");

	for (size_t i = 0; i <= n && st.code == GROMA_OK; i++)
	{
		bool		end = i == n || ids[i] == ps.eos;

		if (!end && (ids[i] < 0 || ids[i] >= groma_tokenizer_vocab_size(tok)))
		{
			st = groma_error(GROMA_ERR_INVALID_ARGUMENT, "grounded output: token id %d is outside the vocabulary", ids[i]);
			break;
		}
		if (end || groma_tokenizer_is_special(tok, ids[i]))
		{
			/* text inside a box group is not part of the answer */
			if (!ps.in_roi)
				st = flush_run(&ps, ids + run_start, i - run_start);
			if (st.code == GROMA_OK && !end)
				st = special_token(&ps, ids[i]);
			run_start = i + 1;
			if (end)
				break;
		}
	}
	if (st.code == GROMA_OK && ps.in_roi)
		st = close_group(&ps);
	if (st.code == GROMA_OK && ps.phrase_start >= 0)
		st = close_phrase(&ps);
	if (st.code == GROMA_OK)
		finish(&ps);
	free(ps.text.data);
	if (st.code != GROMA_OK)
		groma_grounded_answer_free(out);
	return st;
}

/* Frees a parsed answer. */
void
groma_grounded_answer_free(groma_grounded_answer *a)
{
	for (int i = 0; i < a->n_groundings; i++)
	{
		free(a->groundings[i].phrase);
		free(a->groundings[i].boxes);
	}
	free(a->groundings);
	free(a->text);
	memset(a, 0, sizeof(*a));
}
