/*
 * model_tensors.h - the tensor names and shapes a Groma model's state dict
 * holds, derived from its hyper-parameters alone.
 *
 * The list follows the module definitions of the original Groma code
 * (GromaModel, CustomDDETRModel, DeformableDetrTransformer, Dinov2Model,
 * LlamaForCausalLM, MLVLROIQueryModule) in state-dict order, aliases
 * included (decoder.bbox_embed.N and decoder.class_embed_* share storage
 * with the transformer's own heads).  Widths the original hard-codes come
 * from groma_region_config and groma_ddetr_config.box_head_width.
 */
#ifndef GROMA_MODEL_TENSORS_H
#define GROMA_MODEL_TENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/status.h"
#include "model_config.h"

#define GROMA_EXPECTED_NAME_MAX 128
#define GROMA_EXPECTED_MAX_DIMS 4

/* One expected tensor. */
typedef struct groma_expected_tensor
{
	char		name[GROMA_EXPECTED_NAME_MAX];
	int			ndim;
	int64_t		shape[GROMA_EXPECTED_MAX_DIMS];
} groma_expected_tensor;

/* A growable list of expected tensors. */
typedef struct groma_expected_list
{
	groma_expected_tensor *items;
	size_t		count;
	size_t		cap;
} groma_expected_list;

/*
 * Builds the expected names and shapes for cfg into *out (state-dict order).
 * GROMA_ERR_UNSUPPORTED for variants groma does not model (DINOv2 SwiGLU FFN,
 * more than one deformable feature level).
 */
groma_status groma_expected_tensors(const groma_model_config *cfg, groma_expected_list *out);

/* Frees the list's items; safe on a zeroed list. */
void		groma_expected_list_free(groma_expected_list *list);

#endif							/* GROMA_MODEL_TENSORS_H */
