/*
 * model_config.h - the hyper-parameters of a Groma checkpoint (config.json).
 *
 * config.json nests three transformers configs: llm_cfg (LlamaConfig),
 * perceiver_cfg.vis_encoder_cfg (Dinov2Config) and perceiver_cfg.ddetr_cfg
 * (DeformableDetrConfig), plus Groma's own top-level fields.  A field that is
 * absent (or null) takes the default of the transformers 4.3x class, exactly
 * as GromaConfig(**json) would; see model_config.c for the table.
 */
#ifndef GROMA_MODEL_CONFIG_H
#define GROMA_MODEL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "../runtime/status.h"

/* LLaMA decoder (llm_cfg). */
typedef struct groma_llm_config
{
	int			hidden_size;	/* 4096 */
	int			num_layers;		/* num_hidden_layers: 32 */
	int			num_heads;		/* num_attention_heads: 32 */
	int			num_kv_heads;	/* num_key_value_heads: num_heads when absent */
	int			intermediate_size;	/* 11008 */
	int			vocab_size;		/* 32000 */
	int			max_position_embeddings;	/* 2048 */
	double		rms_norm_eps;	/* 1e-6 (Vicuna's config says 1e-5) */
	double		rope_theta;		/* 10000 */
	bool		attention_bias; /* false: q/k/v/o have no bias */
	bool		tie_word_embeddings;	/* false */
	bool		rope_scaling;	/* true when rope_scaling is not null */
} groma_llm_config;

/* DINOv2 vision encoder (perceiver_cfg.vis_encoder_cfg). */
typedef struct groma_vision_config
{
	int			hidden_size;	/* 768 */
	int			num_layers;		/* num_hidden_layers: 12 */
	int			num_heads;		/* num_attention_heads: 12 */
	double		mlp_ratio;		/* 4 */
	int			mlp_hidden;		/* derived: int(hidden_size * mlp_ratio) */
	int			patch_size;		/* 16 (Dinov2Config's default; Groma uses 14) */
	int			image_size;		/* 224 (Groma: 518) */
	int			num_channels;	/* 3 */
	int			grid_size;		/* derived: image_size / patch_size */
	double		layer_norm_eps; /* 1e-6 */
	double		layerscale_value;	/* 1.0 */
	bool		qkv_bias;		/* true */
	bool		use_swiglu_ffn; /* false */
} groma_vision_config;

/* Deformable DETR region proposer (perceiver_cfg.ddetr_cfg). */
typedef struct groma_ddetr_config
{
	int			d_model;		/* 256 */
	int			encoder_layers; /* 6 */
	int			decoder_layers; /* 6 */
	int			encoder_heads;	/* encoder_attention_heads: 8 */
	int			decoder_heads;	/* decoder_attention_heads: 8 */
	int			encoder_n_points;	/* 4 */
	int			decoder_n_points;	/* 4 */
	int			encoder_ffn_dim;	/* 1024 */
	int			decoder_ffn_dim;	/* 1024 */
	int			num_queries;	/* 300 */
	int			two_stage_num_proposals;	/* 300 */
	int			num_feature_levels; /* 4 (Groma: 1) */
	int			num_labels;		/* len(id2label), else num_labels, else 2 (Groma: 1) */
	bool		two_stage;		/* false (Groma: true) */
	bool		with_box_refine;	/* false (Groma: true) */
	int			box_head_width; /* bbox_embed hidden width: 256, hard-coded in the original */
} groma_ddetr_config;

/*
 * Region encoder (MLVLROIQueryModule).  The original hard-codes these, so
 * config.json cannot say them; the defaults are the original's values and
 * groma_model_config_widths_from_checkpoint (checkpoint_validate.h) reads the
 * widths from the weights that define them for models built otherwise.
 */
typedef struct groma_region_config
{
	int			num_levels;		/* 3 feature levels */
	int			num_fuse;		/* 5 fuse rounds */
	int			roi_output_size;	/* 14 */
	int			gn_groups;		/* 64 GroupNorm groups */
	int			pos_width;		/* 256: pos_embedd hidden width */
	int			region_width;	/* 1024: flatten_linear output, updims input */
} groma_region_config;

typedef struct groma_model_config
{
	groma_llm_config llm;
	groma_vision_config vision;
	groma_ddetr_config ddetr;
	groma_region_config region;
	int			num_new_token;	/* 0 (Groma: 114) */
	double		nms_thres;		/* 0.0 (Groma: 0.6) */
	double		box_score_thres;	/* 0.0 (Groma: 0.15) */
	int			max_region_num; /* 100 */
	int			vocab_size;		/* derived, as GromaConfig does: llm.vocab_size + num_new_token */
	int			vis_output_layer;	/* perceiver_cfg.vis_output_layer: -1 */
} groma_model_config;

/* Fills cfg with the defaults GromaConfig() has when every field is absent. */
void		groma_model_config_set_defaults(groma_model_config *cfg);

/*
 * Parses config.json text (len bytes; label names it in messages) into cfg.
 * GROMA_ERR_FORMAT naming the field ("llm_cfg.hidden_size") for a value of
 * the wrong type, GROMA_ERR_LIMIT for one out of range, GROMA_ERR_UNSUPPORTED
 * for consistent but unsupported settings (e.g. heads not dividing width).
 */
groma_status groma_model_config_parse(const char *text, size_t len, const char *label,
									  groma_model_config *cfg);

/* Reads and parses path, or path/config.json when path is a folder. */
groma_status groma_model_config_load(const char *path, groma_model_config *cfg);

/* Parses the built-in groma-7b-finetune configuration (GROMA.md's hyper-parameters). */
groma_status groma_model_config_real(groma_model_config *cfg);

#endif							/* GROMA_MODEL_CONFIG_H */
