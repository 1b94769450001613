/*
 * checkpoint_validate.c - checking a checkpoint against the tensors its
 * config implies.
 */
#include "checkpoint_validate.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "element_convert.h"
#include "model_tensors.h"

/* Formats shape[0..ndim) as "[a,b,c]" into buf; returns buf. */
static const char *
shape_text(int ndim, const int64_t *shape, char *buf, size_t len)
{
	size_t		used = 0;

	buf[0] = '\0';
	used += (size_t) snprintf(buf, len, "[");
	for (int d = 0; d < ndim && used < len; d++)
		used += (size_t) snprintf(buf + used, len - used, d ? ",%lld" : "%lld",
								  (long long) shape[d]);
	if (used < len)
		snprintf(buf + used, len - used, "]");
	return buf;
}

/* Reads the first dimension of a 2-D tensor into *width. */
static groma_status
first_dimension(const groma_checkpoint *ckpt, const char *name, int *width)
{
	const groma_ckpt_tensor *t;
	groma_status st = groma_checkpoint_get(ckpt, name, &t);

	if (st.code != GROMA_OK)
		return st;
	if (t->ndim != 2 || t->shape[0] < 1 || t->shape[0] > (1 << 20))
		return groma_error(GROMA_ERR_FORMAT, "\"%s\": tensor \"%s\" is not a 2-D weight",
						   groma_checkpoint_path(ckpt), name);
	*width = (int) t->shape[0];
	return groma_ok();
}

/* One place a hard-coded width can be read from: dimension dim of a tensor of ndim dimensions. */
typedef struct width_source
{
	const char *name;
	int			ndim;
	int			dim;
} width_source;

#define RA "region_encoder.roi_align."

/*
 * Sets *width to the value most of sources[0..n) agree on, the defining
 * tensor sources[0]'s on a tie (it must exist and be 2-D); sources that are
 * missing or of another rank are left to validation.  Reading a width from
 * one tensor alone made a wrong shape there be reported on the tensors that
 * use the width.
 */
static groma_status
agreed_width(const groma_checkpoint *ckpt, const width_source *sources, int n, int *width)
{
	int64_t		values[8];
	int			count = 0,
				best_votes = 0;

	GROMA_TRY(first_dimension(ckpt, sources[0].name, width));
	for (int i = 0; i < n && count < 8; i++)
	{
		const groma_ckpt_tensor *t = groma_checkpoint_find(ckpt, sources[i].name);

		if (t != NULL && t->ndim == sources[i].ndim)
			values[count++] = t->shape[sources[i].dim];
	}
	for (int i = 0; i < count; i++)
	{
		int			votes = 0;

		for (int j = 0; j < count; j++)
			votes += values[j] == values[i];
		if (votes > best_votes && values[i] >= 1 && values[i] <= (1 << 20))
		{
			best_votes = votes;
			*width = (int) values[i];
		}
	}
	return groma_ok();
}

/* Sets the hard-coded widths from the weights that define and use them; see checkpoint_validate.h. */
groma_status
groma_model_config_widths_from_checkpoint(groma_model_config *cfg, const groma_checkpoint *ckpt)
{
	static const width_source region[] = {
		{RA "flatten_linear.weight", 2, 0}, {RA "flatten_linear.bias", 1, 0},
		{RA "pos_embedd.3.weight", 2, 0}, {RA "pos_embedd.3.bias", 1, 0},
		{RA "pos_embedd.5.weight", 1, 0}, {RA "updims.weight", 2, 1},
	};
	static const width_source pos[] = {
		{RA "pos_embedd.0.weight", 2, 0}, {RA "pos_embedd.0.bias", 1, 0},
		{RA "pos_embedd.2.weight", 1, 0}, {RA "pos_embedd.3.weight", 2, 1},
	};
	groma_status st = agreed_width(ckpt, region, 6, &cfg->region.region_width);

	if (st.code == GROMA_OK)
		st = agreed_width(ckpt, pos, 4, &cfg->region.pos_width);
	if (st.code == GROMA_OK)
		st = first_dimension(ckpt, "perceiver.ddetr_transformer.bbox_embed.0.layers.0.weight",
							 &cfg->ddetr.box_head_width);
	return st;
}

/* Returns a failure when t is not the expected tensor e (shape and dtype). */
static groma_status
check_tensor(const groma_checkpoint *ckpt, const groma_expected_tensor *e,
			 const groma_ckpt_tensor *t)
{
	char		want[96],
				got[96];
	bool		same = t->ndim == e->ndim;

	for (int d = 0; same && d < e->ndim; d++)
		same = t->shape[d] == e->shape[d];
	if (!same)
		return groma_error(GROMA_ERR_FORMAT, "\"%s\": tensor \"%s\" has shape %s but the config implies %s",
						   groma_checkpoint_path(ckpt), e->name,
						   shape_text(t->ndim, t->shape, got, sizeof(got)),
						   shape_text(e->ndim, e->shape, want, sizeof(want)));
	if (!groma_convert_is_float(t->dtype))
		return groma_error(GROMA_ERR_FORMAT, "\"%s\": tensor \"%s\" has dtype %s, not a floating-point type",
						   groma_checkpoint_path(ckpt), e->name, groma_st_dtype_name(t->dtype));
	return groma_ok();
}

/* Fills report->unused_names with the tensors not marked used. */
static groma_status
list_unused(const groma_checkpoint *ckpt, const bool *used, groma_validation_report *report)
{
	report->unused_names = malloc((report->unused_count ? report->unused_count : 1) *
								  sizeof(*report->unused_names));
	if (report->unused_names == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "out of memory");
	report->unused_count = 0;
	for (size_t i = 0; i < report->checkpoint_count; i++)
		if (!used[i])
			report->unused_names[report->unused_count++] = groma_checkpoint_tensor_at(ckpt, i)->name;
	return groma_ok();
}

/* Validates ckpt against cfg; see checkpoint_validate.h. */
groma_status
groma_checkpoint_validate(const groma_checkpoint *ckpt, const groma_model_config *cfg,
						  groma_validation_report *report)
{
	groma_expected_list expected;
	const groma_ckpt_tensor *first = groma_checkpoint_tensor_at(ckpt, 0);
	bool	   *used;
	groma_status st;

	memset(report, 0, sizeof(*report));
	st = groma_expected_tensors(cfg, &expected);
	if (st.code != GROMA_OK)
		return st;
	report->expected_count = expected.count;
	report->checkpoint_count = groma_checkpoint_count(ckpt);
	used = calloc(report->checkpoint_count ? report->checkpoint_count : 1, sizeof(bool));
	if (used == NULL)
		st = groma_error(GROMA_ERR_NO_MEMORY, "out of memory");
	for (size_t i = 0; i < expected.count && st.code == GROMA_OK; i++)
	{
		const groma_ckpt_tensor *t = groma_checkpoint_find(ckpt, expected.items[i].name);
		char		want[96];

		if (t == NULL)
		{
			st = groma_error(GROMA_ERR_FORMAT, "\"%s\": tensor \"%s\" is missing (the config implies shape %s)",
							 groma_checkpoint_path(ckpt), expected.items[i].name,
							 shape_text(expected.items[i].ndim, expected.items[i].shape, want,
										sizeof(want)));
			break;
		}
		st = check_tensor(ckpt, &expected.items[i], t);
		used[t - first] = true;
	}
	if (st.code == GROMA_OK)
	{
		report->unused_count = report->checkpoint_count - expected.count;
		st = list_unused(ckpt, used, report);
	}
	free(used);
	groma_expected_list_free(&expected);
	if (st.code != GROMA_OK)
		groma_validation_report_free(report);
	return st;
}

/* Frees a report's name list. */
void
groma_validation_report_free(groma_validation_report *report)
{
	free(report->unused_names);
	memset(report, 0, sizeof(*report));
}
