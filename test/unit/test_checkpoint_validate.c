/*
 * test_checkpoint_validate.c - the expected tensor list derived from
 * hyper-parameters: against the real groma-7b-finetune names and shapes
 * (test/golden/real_shapes.json, 1177 entries), and validation of the tiny
 * checkpoint with its first-mismatch and unused-tensor reports.
 */
#include <jansson.h>
#include <string.h>

#include "unit.h"
#include "../../src/io/checkpoint_validate.h"
#include "../../src/io/model_tensors.h"

/* Returns the expected entry named name, or NULL. */
static const groma_expected_tensor *
find_expected(const groma_expected_list *l, const char *name)
{
	for (size_t i = 0; i < l->count; i++)
		if (strcmp(l->items[i].name, name) == 0)
			return &l->items[i];
	return NULL;
}

/* The list built from the real hyper-parameters is real_shapes.json: same 1177 names, shapes and order. */
UNIT_TEST(test_expected_tensors_real_shapes)
{
	json_t	   *root = json_load_file(unit_path("test/golden/real_shapes.json"), 0, NULL);
	json_t	   *tensors = json_object_get(root, "tensors");
	groma_model_config cfg;
	groma_expected_list list;
	groma_status st = groma_model_config_load(unit_path("test/golden/real_config.json"), &cfg);
	size_t		i,
				mismatches = 0;
	json_t	   *item;

	CHECKF(st.code == GROMA_OK, "%s", st.message);
	st = groma_expected_tensors(&cfg, &list);
	CHECKF(st.code == GROMA_OK, "%s", st.message);
	CHECK(json_array_size(tensors) == 1177);
	CHECKF(list.count == json_array_size(tensors), "%zu expected tensors", list.count);
	json_array_foreach(tensors, i, item)
	{
		const char *name = json_string_value(json_object_get(item, "name"));
		json_t	   *shape = json_object_get(item, "shape");
		const groma_expected_tensor *e = i < list.count ? &list.items[i] : NULL;
		bool		same = e != NULL && strcmp(e->name, name) == 0 &&
			(size_t) e->ndim == json_array_size(shape);

		for (int d = 0; same && d < e->ndim; d++)
			same = e->shape[d] == json_integer_value(json_array_get(shape, (size_t) d));
		if (!same && mismatches++ < 5)
			CHECKF(0, "entry %zu: real %s, derived %s", i, name, e ? e->name : "(none)");
	}
	CHECK(mismatches == 0);
	/* Spot checks that do not depend on the file. */
	CHECK(find_expected(&list, "region_encoder.roi_align.flatten_linear.weight")->shape[1] == 200704);
	CHECK(find_expected(&list, "perceiver.vis_encoder.embeddings.position_embeddings")->shape[1] == 1370);
	groma_expected_list_free(&list);
	json_decref(root);
}

/* Variants the original code builds differently: one-stage, no box refinement; unsupported ones refused. */
UNIT_TEST(test_expected_tensors_variants)
{
	groma_model_config cfg;
	groma_expected_list list;
	const groma_expected_tensor *e;

	CHECK(groma_model_config_load(unit_path("test/golden/real_config.json"), &cfg).code == GROMA_OK);
	cfg.ddetr.two_stage = false;
	cfg.ddetr.with_box_refine = false;
	CHECK(groma_expected_tensors(&cfg, &list).code == GROMA_OK);
	/* Without two-stage: reference_points, [queries, 2 d] query embeddings, no enc_output, no decoder aliases. */
	e = find_expected(&list, "perceiver.ddetr_transformer.reference_points.weight");
	CHECK(e != NULL && e->shape[0] == 2 && e->shape[1] == 256);
	e = find_expected(&list, "perceiver.ddetr_transformer.query_position_embeddings.weight");
	CHECK(e != NULL && e->shape[0] == 300 && e->shape[1] == 512);
	CHECK(find_expected(&list, "perceiver.ddetr_transformer.enc_output.weight") == NULL);
	CHECK(find_expected(&list, "perceiver.ddetr_transformer.decoder.bbox_embed.0.layers.0.weight") == NULL);
	CHECK(find_expected(&list, "perceiver.ddetr_transformer.decoder.class_embed_enc.weight") == NULL);
	/* Without refinement: one box head per decoder layer (6), not 7. */
	CHECK(find_expected(&list, "perceiver.ddetr_transformer.bbox_embed.5.layers.2.bias") != NULL &&
		  find_expected(&list, "perceiver.ddetr_transformer.bbox_embed.6.layers.2.bias") == NULL);
	CHECK(list.count == 1177 - 42 - 26 - 8 + 2 - 6);
	groma_expected_list_free(&list);
	/* GQA and attention biases change the LLaMA projections. */
	cfg.llm.num_kv_heads = 8;
	cfg.llm.attention_bias = true;
	CHECK(groma_expected_tensors(&cfg, &list).code == GROMA_OK);
	e = find_expected(&list, "llm.model.layers.31.self_attn.k_proj.weight");
	CHECK(e != NULL && e->shape[0] == 1024 && e->shape[1] == 4096);
	CHECK(find_expected(&list, "llm.model.layers.0.self_attn.o_proj.bias") != NULL);
	groma_expected_list_free(&list);
	cfg.vision.use_swiglu_ffn = true;
	CHECK(groma_expected_tensors(&cfg, &list).code == GROMA_ERR_UNSUPPORTED && list.count == 0);
	cfg.vision.use_swiglu_ffn = false;
	cfg.ddetr.num_feature_levels = 2;
	CHECK(groma_expected_tensors(&cfg, &list).code == GROMA_ERR_UNSUPPORTED && list.count == 0);
}

/* Opens the tiny checkpoint and its config; false (with a failed check) when either fails. */
static bool
open_tiny(groma_checkpoint **ckpt, groma_model_config *cfg)
{
	groma_status st = groma_checkpoint_open(unit_path("test/golden/tiny-groma"), ckpt);

	CHECKF(st.code == GROMA_OK, "%s", st.message);
	if (st.code != GROMA_OK)
		return false;
	st = groma_model_config_load(unit_path("test/golden/tiny-groma"), cfg);
	CHECKF(st.code == GROMA_OK, "%s", st.message);
	return st.code == GROMA_OK;
}

/* The tiny checkpoint validates against its config once the hard-coded widths come from its weights. */
UNIT_TEST(test_checkpoint_validate_tiny)
{
	groma_checkpoint *ckpt = NULL;
	groma_model_config cfg;
	groma_validation_report report;
	groma_status st;

	if (!open_tiny(&ckpt, &cfg))
	{
		groma_checkpoint_close(ckpt);
		return;
	}
	/* With the original's widths (pos_embedd 256, region 1024) the tiny model does not match. */
	st = groma_checkpoint_validate(ckpt, &cfg, &report);
	CHECKF(st.code == GROMA_ERR_FORMAT &&
		   strstr(st.message, "tensor \"region_encoder.roi_align.pos_embedd.0.weight\" has shape [32,4] "
				  "but the config implies [256,4]") != NULL, "%s", st.message);
	CHECK(report.unused_names == NULL && report.expected_count == 0);
	st = groma_model_config_widths_from_checkpoint(&cfg, ckpt);
	CHECKF(st.code == GROMA_OK && cfg.region.region_width == 32 && cfg.region.pos_width == 32 &&
		   cfg.ddetr.box_head_width == 256, "%s", st.message);
	st = groma_checkpoint_validate(ckpt, &cfg, &report);
	CHECKF(st.code == GROMA_OK, "%s", st.message);
	CHECK(report.expected_count == 299 && report.checkpoint_count == 299 && report.unused_count == 0);
	groma_validation_report_free(&report);
	groma_checkpoint_close(ckpt);
}

/* The first mismatch in state-dict order is reported with both shapes; missing tensors by name. */
UNIT_TEST(test_checkpoint_validate_mismatches)
{
	groma_checkpoint *ckpt = NULL;
	groma_model_config cfg,
				changed;
	groma_validation_report report;
	groma_status st;

	if (!open_tiny(&ckpt, &cfg) ||
		groma_model_config_widths_from_checkpoint(&cfg, ckpt).code != GROMA_OK)
	{
		groma_checkpoint_close(ckpt);
		return;
	}
	changed = cfg;
	changed.llm.intermediate_size = 65;
	st = groma_checkpoint_validate(ckpt, &changed, &report);
	CHECKF(st.code == GROMA_ERR_FORMAT &&
		   strstr(st.message, "\"llm.model.layers.0.mlp.gate_proj.weight\" has shape [64,32] but the config implies [65,32]"),
		   "%s", st.message);
	changed = cfg;
	changed.llm.num_layers = 3;
	st = groma_checkpoint_validate(ckpt, &changed, &report);
	CHECKF(st.code == GROMA_ERR_FORMAT &&
		   strstr(st.message, "\"llm.model.layers.2.self_attn.q_proj.weight\" is missing (the config implies shape [32,32])"),
		   "%s", st.message);
	changed = cfg;
	changed.ddetr.d_model = 32;
	st = groma_checkpoint_validate(ckpt, &changed, &report);
	CHECKF(st.code == GROMA_ERR_FORMAT &&
		   strstr(st.message, "\"perceiver.ddetr_transformer.level_embed\" has shape [1,64] but the config implies [1,32]"),
		   "%s", st.message);
	/* Tensors present but unused are reported, not fatal. */
	changed = cfg;
	changed.vision.num_layers = 3;
	st = groma_checkpoint_validate(ckpt, &changed, &report);
	CHECKF(st.code == GROMA_OK && report.unused_count == 18 && report.expected_count == 281,
		   "%s (%zu unused)", st.message, report.unused_count);
	for (size_t i = 0; i < report.unused_count; i++)
		CHECKF(strncmp(report.unused_names[i], "perceiver.vis_encoder.encoder.layer.3.", 38) == 0,
			   "unused %s", report.unused_names[i]);
	groma_validation_report_free(&report);
	groma_checkpoint_close(ckpt);
}

/* A defining weight that is absent is named. */
UNIT_TEST(test_checkpoint_validate_widths_need_weights)
{
	groma_checkpoint *ckpt = NULL;
	groma_model_config cfg;
	groma_status st;

	groma_model_config_set_defaults(&cfg);
	st = groma_checkpoint_open(unit_path("test/golden/compact/dtype_ckpt.pt"), &ckpt);
	CHECK(st.code == GROMA_OK);
	if (ckpt == NULL)
		return;
	st = groma_model_config_widths_from_checkpoint(&cfg, ckpt);
	CHECKF(st.code == GROMA_ERR_FORMAT && strstr(st.message, "region_encoder.roi_align.flatten_linear.weight"),
		   "%s", st.message);
	groma_checkpoint_close(ckpt);
}
