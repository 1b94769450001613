/*
 * checkpoint_validate.h - checking a checkpoint against the tensors its
 * config implies, before any model is built from it.
 */
#ifndef GROMA_CHECKPOINT_VALIDATE_H
#define GROMA_CHECKPOINT_VALIDATE_H

#include <stddef.h>

#include "../runtime/status.h"
#include "checkpoint.h"
#include "model_config.h"

/* What a successful validation found besides the expected tensors. */
typedef struct groma_validation_report
{
	size_t		expected_count; /* tensors the config implies (all present) */
	size_t		checkpoint_count;	/* tensors in the file */
	size_t		unused_count;	/* in the file but not expected: reported, not fatal */
	const char **unused_names;	/* unused_count names in file order; valid while the checkpoint is open */
} groma_validation_report;

/*
 * Sets the widths the original code hard-codes (so config.json cannot state
 * them) from the weights that define them: region_width from
 * region_encoder.roi_align.flatten_linear.weight, pos_width from
 * region_encoder.roi_align.pos_embedd.0.weight, box_head_width from
 * perceiver.ddetr_transformer.bbox_embed.0.layers.0.weight (their first
 * dimension).  region_width and pos_width take the value most of the
 * tensors that state them agree on (the defining one's on a tie), so a
 * wrongly shaped defining tensor is the one validation names.  Validation
 * then checks every other tensor against them.  GROMA_ERR_FORMAT naming the
 * tensor when a defining one is absent or not 2-D.
 */
groma_status groma_model_config_widths_from_checkpoint(groma_model_config *cfg,
													   const groma_checkpoint *ckpt);

/*
 * Checks that every tensor cfg implies is present with exactly the implied
 * shape and a floating-point dtype; fails with GROMA_ERR_FORMAT naming the
 * FIRST mismatch (in state-dict order) and both shapes.  On success *report
 * lists the tensors present but unused.
 */
groma_status groma_checkpoint_validate(const groma_checkpoint *ckpt, const groma_model_config *cfg,
									   groma_validation_report *report);

/* Frees a report's name list; safe on a zeroed report. */
void		groma_validation_report_free(groma_validation_report *report);

#endif							/* GROMA_CHECKPOINT_VALIDATE_H */
