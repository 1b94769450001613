/*
 * prompt.c - the llava conversation template and placeholder expansion.
 */
#define _GNU_SOURCE				/* asprintf */
#include "prompt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SYSTEM_TEXT "A chat between a curious user and an artificial intelligence assistant. " \
	"The assistant gives helpful, detailed, and polite answers to the user's questions."
#define IMAGE_TURN "Here is an image with region crops from it. Image: <image>. Regions: <region>."
#define ASSISTANT_TURN "Thank you for the image! How can I assist you with it?"

/* Markup a user query may contain. */
static const char *const allowed_markup[] = {
	"<p>", "</p>", "<roi>", "</roi>", "<refer_box>", "<refer_feat>", "[grounding]",
};

/* Markup a user query must not contain (prefix match for <rK>). */
static const char *const refused_markup[] = {
	"<image>", "<region>", "<ground_box>", "<sep>", "<img>", "</img>", "[PAD]", "<s>", "</s>", "<unk>",
};

/* Returns true when s[0..len) is valid UTF-8 without NUL bytes. */
static bool
valid_utf8(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *) s;
	size_t		i = 0;

	while (i < len)
	{
		unsigned	c = p[i];
		int			extra = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
		uint32_t	cp;

		if (c == 0 || extra < 0 || (extra == 1 && c < 0xC2) || i + (size_t) extra >= len + (extra == 0))
			return false;
		cp = extra == 0 ? c : c & (0x3F >> extra);
		for (int k = 1; k <= extra; k++)
		{
			if ((p[i + k] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3F);
		}
		if ((extra == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (extra == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
			return false;
		i += (size_t) extra + 1;
	}
	return true;
}

/* Refuses queries with markup the prompt itself owns. */
static groma_status
check_query(const char *query)
{
	size_t		len = strlen(query);

	if (len > GROMA_MAX_QUERY_BYTES)
		return groma_error(GROMA_ERR_LIMIT, "the query is %zu bytes, more than %d", len, GROMA_MAX_QUERY_BYTES);
	if (!valid_utf8(query, len))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "the query is not valid UTF-8");
	for (size_t i = 0; i < sizeof(refused_markup) / sizeof(refused_markup[0]); i++)
		if (strstr(query, refused_markup[i]) != NULL)
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "the query must not contain %s", refused_markup[i]);
	/* <r0>..<r99>: "<r", one or two digits, ">" (parsed by hand: linear in the query length) */
	for (const char *p = strstr(query, "<r"); p; p = strstr(p + 2, "<r"))
	{
		const char *d = p + 2;
		int			digits = 0;

		while (digits < 3 && d[digits] >= '0' && d[digits] <= '9')
			digits++;
		if (digits >= 1 && digits <= 2 && d[digits] == '>')
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "the query must not contain region tokens such as <r%.*s>",
							   digits, d);
	}
	return groma_ok();
}

/* Returns how many times needle occurs in s (non-overlapping). */
static size_t
count_occurrences(const char *s, const char *needle)
{
	size_t		n = 0,
				len = strlen(needle);

	for (const char *p = strstr(s, needle); p; p = strstr(p + len, needle))
		n++;
	return n;
}

/* Checks the query's refer placeholders against the refer box count; see prompt.h. */
groma_status
groma_prompt_check_refer(const char *query, int n_refer)
{
	size_t		boxes = count_occurrences(query, "<refer_box>"),
				feats = count_occurrences(query, "<refer_feat>");

	if (boxes == (size_t) n_refer && feats == (size_t) n_refer)
		return groma_ok();
	return groma_error(GROMA_ERR_INVALID_ARGUMENT,
					   "prompt: %zu <refer_box> and %zu <refer_feat> placeholders for %d refer boxes",
					   boxes, feats, n_refer);
}

/* Writes a standard task query. */
groma_status
groma_task_query(groma_task task, const char *phrase, char **out)
{
	const char *text = NULL;

	*out = NULL;
	switch (task)
	{
		case GROMA_TASK_CAPTION:
			text = "[grounding]Please briefly summarize the content of this image.";
			break;
		case GROMA_TASK_CAPTION_DETAILED:
			text = "[grounding]Please describe the content of this image in detail.";
			break;
		case GROMA_TASK_DESCRIBE:
			text = "What is " GROMA_REFER_MARKUP "?";
			break;
		case GROMA_TASK_GROUND:
			if (phrase == NULL || phrase[0] == '\0')
				return groma_error(GROMA_ERR_INVALID_ARGUMENT, "locating needs a non-empty phrase");
			for (size_t i = 0; i < sizeof(allowed_markup) / sizeof(allowed_markup[0]); i++)
				if (strstr(phrase, allowed_markup[i]) != NULL)
					return groma_error(GROMA_ERR_INVALID_ARGUMENT, "the phrase must not contain %s", allowed_markup[i]);
			if (strlen(phrase) > GROMA_MAX_PHRASE_BYTES)
				return groma_error(GROMA_ERR_LIMIT, "the phrase is %zu bytes, more than %d", strlen(phrase),
								   GROMA_MAX_PHRASE_BYTES);
			GROMA_TRY(check_query(phrase));
			if (asprintf(out, GROMA_GROUND_BEFORE "%s" GROMA_GROUND_AFTER, phrase) < 0)
				return groma_error(GROMA_ERR_NO_MEMORY, "out of memory");
			return groma_ok();
	}
	if (text == NULL || (*out = strdup(text)) == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "out of memory");
	return groma_ok();
}

/* Wraps a query in the conversation template. */
groma_status
groma_prompt_text(const char *query, char **out)
{
	*out = NULL;
	GROMA_TRY(check_query(query));
	if (asprintf(out, "%s USER: %s ASSISTANT: %s</s>USER: %s ASSISTANT:", SYSTEM_TEXT, IMAGE_TURN,
				 ASSISTANT_TURN, query) < 0)
		return groma_error(GROMA_ERR_NO_MEMORY, "out of memory");
	return groma_ok();
}

/* Looks up one placeholder id. */
static groma_status
lookup(const groma_tokenizer *tok, const char *text, int32_t *id)
{
	*id = groma_tokenizer_token_id(tok, text);
	if (*id < 0)
		return groma_error(GROMA_ERR_FORMAT, "the tokenizer has no %s token", text);
	return groma_ok();
}

/* Looks up the placeholder ids. */
groma_status
groma_prompt_tokens_lookup(const groma_tokenizer *tok, groma_prompt_tokens *pt)
{
	int32_t		r99;

	GROMA_TRY(lookup(tok, "<image>", &pt->image));
	GROMA_TRY(lookup(tok, "<region>", &pt->region));
	GROMA_TRY(lookup(tok, "<refer_box>", &pt->refer_box));
	GROMA_TRY(lookup(tok, "<refer_feat>", &pt->refer_feat));
	GROMA_TRY(lookup(tok, "<r0>", &pt->r0));
	GROMA_TRY(lookup(tok, "<r99>", &r99));
	if (r99 != pt->r0 + 99)
		return groma_error(GROMA_ERR_FORMAT, "the tokenizer's <r0>..<r99> ids are not consecutive");
	return groma_ok();
}

/* Expands the placeholders; see prompt.h. */
groma_status
groma_prompt_expand(const groma_prompt_tokens *pt, const int32_t *ids, size_t n, int n_image,
					int n_regions, const int64_t *refer_match, int n_refer, int32_t **expanded,
					size_t *n_expanded)
{
	size_t		images = 0,
				regions = 0,
				refers = 0,
				feats = 0,
				total,
				o = 0;
	int32_t    *out;

	*expanded = NULL;
	*n_expanded = 0;
	if (n_regions < 1 || n_regions > 100 || n_image < 1)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "prompt: %d regions and %d image tokens", n_regions, n_image);
	for (size_t i = 0; i < n; i++)
	{
		images += ids[i] == pt->image;
		regions += ids[i] == pt->region;
		refers += ids[i] == pt->refer_box;
		feats += ids[i] == pt->refer_feat;
	}
	if (images != 1 || regions != 1)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "prompt: needs exactly one <image> and one <region>, has %zu and %zu",
						   images, regions);
	if (refers != (size_t) n_refer || feats != (size_t) n_refer)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT,
						   "prompt: %zu <refer_box> and %zu <refer_feat> placeholders for %d refer boxes",
						   refers, feats, n_refer);
	total = n - 2 + (size_t) n_image + 2 * (size_t) n_regions;
	out = malloc(total * sizeof(int32_t));
	if (out == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "out of memory");
	refers = 0;
	for (size_t i = 0; i < n; i++)
	{
		if (ids[i] == pt->image)
			for (int k = 0; k < n_image; k++)
				out[o++] = pt->image;
		else if (ids[i] == pt->region)
			for (int k = 0; k < n_regions; k++)
			{
				out[o++] = pt->r0 + k;
				out[o++] = pt->region;
			}
		else if (ids[i] == pt->refer_box)
		{
			int64_t		k = refer_match[refers++];

			if (k < 0 || k >= n_regions)
			{
				free(out);
				return groma_error(GROMA_ERR_INVALID_ARGUMENT, "prompt: refer match %lld is not a selected box", (long long) k);
			}
			out[o++] = pt->r0 + (int32_t) k;
		}
		else
			out[o++] = ids[i];
	}
	*expanded = out;
	*n_expanded = o;
	return groma_ok();
}
