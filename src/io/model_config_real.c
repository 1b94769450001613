/*
 * model_config_real.c - groma-7b-finetune's config.json as GROMA.md states
 * its hyper-parameters (the same text as test/golden/real_config.json, a
 * unit test keeps them equal), for building the real shapes without files.
 */
#include "model_config.h"

#include <string.h>

/* Parses the built-in real configuration; see model_config.h. */
groma_status
groma_model_config_real(groma_model_config *cfg)
{
	static const char text[] =
	"{\"architectures\": [\"GromaModel\"], \"model_type\": \"groma\", \"box_score_thres\": 0.15, \"max_reg"
	"ion_num\": 100, \"nms_thres\": 0.6, \"num_new_token\": 114, \"vocab_size\": 32114, \"torch_dtype\":"
	" \"float32\", \"transformers_version\": \"4.32.0\", \"llm_cfg\": {\"_name_or_path\": \"lmsys/vicuna-7"
	"b-v1.5\", \"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"max_position_embed"
	"dings\": 4096, \"pad_token_id\": 0, \"rms_norm_eps\": 1e-05, \"torch_dtype\": \"float16\"}, \"percei"
	"ver_cfg\": {\"model_type\": \"ddetr\", \"vis_output_layer\": -1, \"zs_weight_path\": null, \"vis_enc"
	"oder_cfg\": {\"_name_or_path\": \"facebook/dinov2-large\", \"architectures\": [\"Dinov2Model\"], \"m"
	"odel_type\": \"dinov2\", \"hidden_size\": 1024, \"num_hidden_layers\": 24, \"num_attention_heads\":"
	" 16, \"patch_size\": 14, \"image_size\": 518, \"torch_dtype\": \"float32\"}, \"ddetr_cfg\": {\"model_"
	"type\": \"deformable_detr\", \"two_stage\": true, \"with_box_refine\": true, \"num_feature_levels\""
	": 1, \"use_timm_backbone\": false, \"use_pretrained_backbone\": false, \"backbone\": null, \"id2l"
	"abel\": {\"0\": \"object\"}, \"label2id\": {\"object\": 0}}}}";

	return groma_model_config_parse(text, strlen(text), "built-in groma-7b-finetune config", cfg);
}
