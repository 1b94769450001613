/*
 * test_model_config.c - config.json parsing: the tiny checkpoint's full
 * config, the real hyper-parameters written with defaults left out, an empty
 * config (every transformers 4.39 default), and bad values.
 */
#include <string.h>

#include "unit.h"
#include "../../src/io/model_config.h"

/* Parses a literal JSON text. */
static groma_status
parse(const char *json, groma_model_config *cfg)
{
	return groma_model_config_parse(json, strlen(json), "test.json", cfg);
}

/* The tiny checkpoint's config.json states every field. */
UNIT_TEST(test_model_config_tiny)
{
	groma_model_config c;
	groma_status st = groma_model_config_load(unit_path("test/golden/tiny-groma"), &c);

	CHECKF(st.code == GROMA_OK, "%s", st.message);
	CHECK(c.llm.hidden_size == 32 && c.llm.num_layers == 2 && c.llm.num_heads == 4 &&
		  c.llm.num_kv_heads == 4 && c.llm.intermediate_size == 64 && c.llm.vocab_size == 32000 &&
		  c.llm.max_position_embeddings == 4096 && c.llm.rms_norm_eps == 1e-5 &&
		  c.llm.rope_theta == 10000.0 && !c.llm.attention_bias && !c.llm.tie_word_embeddings &&
		  !c.llm.rope_scaling);
	CHECK(c.vision.hidden_size == 128 && c.vision.num_layers == 4 && c.vision.num_heads == 4 &&
		  c.vision.mlp_ratio == 4.0 && c.vision.mlp_hidden == 512 && c.vision.patch_size == 14 &&
		  c.vision.image_size == 518 && c.vision.grid_size == 37 && c.vision.num_channels == 3 &&
		  c.vision.layer_norm_eps == 1e-6 && c.vision.layerscale_value == 1.0 && c.vision.qkv_bias &&
		  !c.vision.use_swiglu_ffn);
	CHECK(c.ddetr.d_model == 64 && c.ddetr.encoder_layers == 2 && c.ddetr.decoder_layers == 2 &&
		  c.ddetr.encoder_heads == 4 && c.ddetr.decoder_heads == 4 && c.ddetr.encoder_n_points == 4 &&
		  c.ddetr.decoder_n_points == 4 && c.ddetr.encoder_ffn_dim == 128 &&
		  c.ddetr.decoder_ffn_dim == 128 && c.ddetr.num_queries == 50 &&
		  c.ddetr.two_stage_num_proposals == 50 && c.ddetr.num_feature_levels == 1 &&
		  c.ddetr.num_labels == 1 && c.ddetr.two_stage && c.ddetr.with_box_refine);
	CHECK(c.num_new_token == 114 && c.nms_thres == 0.6 && c.box_score_thres == 0.15 &&
		  c.max_region_num == 100 && c.vocab_size == 32114 && c.vis_output_layer == -1);
	/* Not in config.json: the original's hard-coded widths until read from the weights. */
	CHECK(c.region.region_width == 1024 && c.region.pos_width == 256 && c.ddetr.box_head_width == 256 &&
		  c.region.roi_output_size == 14 && c.region.num_levels == 3 && c.region.num_fuse == 5);
}

/* The real hyper-parameters, with transformers-default fields left out of the file. */
UNIT_TEST(test_model_config_real_with_defaults)
{
	groma_model_config c;
	groma_status st = groma_model_config_load(unit_path("test/golden/real_config.json"), &c);

	CHECKF(st.code == GROMA_OK, "%s", st.message);
	/* LlamaConfig defaults + Vicuna's stated fields. */
	CHECK(c.llm.hidden_size == 4096 && c.llm.num_layers == 32 && c.llm.num_heads == 32 &&
		  c.llm.num_kv_heads == 32 && c.llm.intermediate_size == 11008 && c.llm.vocab_size == 32000 &&
		  c.llm.max_position_embeddings == 4096 && c.llm.rms_norm_eps == 1e-5 && c.llm.rope_theta == 10000.0);
	CHECK(c.vision.hidden_size == 1024 && c.vision.num_layers == 24 && c.vision.num_heads == 16 &&
		  c.vision.mlp_hidden == 4096 && c.vision.patch_size == 14 && c.vision.grid_size == 37 &&
		  c.vision.layer_norm_eps == 1e-6 && c.vision.layerscale_value == 1.0);
	/* DeformableDetrConfig defaults. */
	CHECK(c.ddetr.d_model == 256 && c.ddetr.encoder_layers == 6 && c.ddetr.decoder_layers == 6 &&
		  c.ddetr.encoder_heads == 8 && c.ddetr.decoder_heads == 8 && c.ddetr.encoder_n_points == 4 &&
		  c.ddetr.decoder_n_points == 4 && c.ddetr.encoder_ffn_dim == 1024 &&
		  c.ddetr.decoder_ffn_dim == 1024 && c.ddetr.num_queries == 300 &&
		  c.ddetr.two_stage_num_proposals == 300 && c.ddetr.num_feature_levels == 1 &&
		  c.ddetr.num_labels == 1 && c.ddetr.two_stage && c.ddetr.with_box_refine);
	CHECK(c.num_new_token == 114 && c.vocab_size == 32114 && c.nms_thres == 0.6 &&
		  c.box_score_thres == 0.15 && c.max_region_num == 100);
}

/* "{}" is GromaConfig(): LlamaConfig(), Dinov2Config() (patch 16, image 224), DeformableDetrConfig(). */
UNIT_TEST(test_model_config_empty_is_all_defaults)
{
	groma_model_config c,
				d;

	CHECK(parse("{}", &c).code == GROMA_OK);
	groma_model_config_set_defaults(&d);
	CHECK(c.llm.hidden_size == 4096 && c.llm.num_kv_heads == 32 && c.llm.rms_norm_eps == 1e-6 &&
		  c.llm.max_position_embeddings == 2048);
	CHECK(c.vision.hidden_size == 768 && c.vision.num_layers == 12 && c.vision.num_heads == 12 &&
		  c.vision.patch_size == 16 && c.vision.image_size == 224 && c.vision.grid_size == 14 &&
		  c.vision.mlp_hidden == 3072 && c.vision.layer_norm_eps == 1e-6);
	CHECK(c.ddetr.num_feature_levels == 4 && c.ddetr.num_labels == 2 && !c.ddetr.two_stage &&
		  !c.ddetr.with_box_refine && c.ddetr.d_model == 256);
	CHECK(c.num_new_token == 0 && c.nms_thres == 0.0 && c.box_score_thres == 0.0 &&
		  c.max_region_num == 100 && c.vocab_size == 32000);
	CHECK(d.llm.num_kv_heads == 0);	/* resolved only when parsing */
	/* Nulls mean "absent"; num_labels without id2label is read; a float stating an int is accepted. */
	CHECK(parse("{\"llm_cfg\": {\"num_key_value_heads\": null, \"num_attention_heads\": 8},"
				" \"perceiver_cfg\": {\"ddetr_cfg\": {\"num_labels\": 3, \"d_model\": 128.0}}}", &c).code == GROMA_OK &&
		  c.llm.num_kv_heads == 8 && c.ddetr.num_labels == 3 && c.ddetr.d_model == 128);
	/* rope_scaling null and a top-level vocab_size that agrees are accepted. */
	CHECK(parse("{\"llm_cfg\": {\"rope_scaling\": null}, \"vocab_size\": 32114, \"num_new_token\": 114}", &c).code ==
		  GROMA_OK && c.vocab_size == 32114);
	CHECK(parse("{\"llm_cfg\": {\"num_key_value_heads\": 8}, \"llm_cfg_extra\": 1}", &c).code == GROMA_OK &&
		  c.llm.num_kv_heads == 8 && c.llm.num_heads == 32);
}

/* Wrong types, out-of-range values and inconsistent settings name the field. */
UNIT_TEST(test_model_config_bad_values)
{
	static const struct
	{
		const char *json;
		groma_status_code code;
		const char *text;
	}			cases[] = {
		{"{\"llm_cfg\": {\"hidden_size\": \"4096\"}}", GROMA_ERR_FORMAT, "llm_cfg.hidden_size is not an integer"},
		{"{\"llm_cfg\": {\"hidden_size\": 40.5}}", GROMA_ERR_FORMAT, "llm_cfg.hidden_size is not an integer"},
		{"{\"llm_cfg\": {\"hidden_size\": 1e300}}", GROMA_ERR_FORMAT, "hidden_size"},
		{"{\"llm_cfg\": {\"hidden_size\": -1}}", GROMA_ERR_LIMIT, "llm_cfg.hidden_size = -1"},
		{"{\"llm_cfg\": {\"num_hidden_layers\": 0}}", GROMA_ERR_LIMIT, "num_hidden_layers"},
		{"{\"llm_cfg\": {\"rms_norm_eps\": \"small\"}}", GROMA_ERR_FORMAT, "rms_norm_eps is not a number"},
		{"{\"llm_cfg\": {\"attention_bias\": 1}}", GROMA_ERR_FORMAT, "attention_bias is not true or false"},
		{"{\"llm_cfg\": 7}", GROMA_ERR_FORMAT, "llm_cfg is not an object"},
		{"{\"perceiver_cfg\": {\"vis_encoder_cfg\": []}}", GROMA_ERR_FORMAT,
		"perceiver_cfg.vis_encoder_cfg is not an object"},
		{"{\"perceiver_cfg\": {\"ddetr_cfg\": {\"num_feature_levels\": 5}}}", GROMA_ERR_LIMIT,
		"perceiver_cfg.ddetr_cfg.num_feature_levels = 5"},
		{"{\"perceiver_cfg\": {\"ddetr_cfg\": {\"id2label\": {}}}}", GROMA_ERR_FORMAT, "id2label"},
		{"{\"nms_thres\": 1.5}", GROMA_ERR_LIMIT, "nms_thres"},
		{"{\"llm_cfg\": {\"hidden_size\": 100}}", GROMA_ERR_UNSUPPORTED, "not a multiple of its 32 heads"},
		{"{\"llm_cfg\": {\"num_key_value_heads\": 5}}", GROMA_ERR_UNSUPPORTED, "key/value heads"},
		{"{\"perceiver_cfg\": {\"vis_encoder_cfg\": {\"patch_size\": 500}}}", GROMA_ERR_UNSUPPORTED,
		"exceeds image_size"},
		{"{\"perceiver_cfg\": {\"vis_output_layer\": 40}}", GROMA_ERR_LIMIT, "vis_output_layer"},
		{"{\"num_new_token\": 1, \"num_new_token\": 2}", GROMA_ERR_FORMAT, "not valid JSON"},
		{"{\"llm_cfg\": {\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}}}", GROMA_ERR_UNSUPPORTED,
		"llm_cfg.rope_scaling"},
		{"{\"vocab_size\": 32001, \"num_new_token\": 114}", GROMA_ERR_UNSUPPORTED,
		"vocab_size 32001 disagrees with llm_cfg.vocab_size + num_new_token = 32114"},
		{"{\"vocab_size\": \"many\"}", GROMA_ERR_FORMAT, "vocab_size"},
		{"[1, 2]", GROMA_ERR_FORMAT, "not a JSON object"},
		{"{", GROMA_ERR_FORMAT, "not valid JSON"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		groma_model_config c;
		groma_status st = parse(cases[i].json, &c);

		CHECKF(st.code == cases[i].code && strstr(st.message, cases[i].text) != NULL &&
			   strstr(st.message, "test.json") != NULL, "%s: %s", cases[i].json, st.message);
	}
	CHECK(groma_model_config_load("/nonexistent/config.json", &(groma_model_config) {0}).code == GROMA_ERR_IO);
}
