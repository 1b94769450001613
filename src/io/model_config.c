/*
 * model_config.c - parsing Groma's nested config.json with jansson.
 *
 * Defaults are those of transformers 4.39 (LlamaConfig, Dinov2Config,
 * DeformableDetrConfig, PretrainedConfig.num_labels) and of GromaConfig /
 * CustomDDETRConfig in the original Groma code, checked against their
 * sources.  Note Dinov2Config's default patch_size is 16, not DINOv2-L/14's
 * 14: Groma's config.json states 14 explicitly.
 */
#include "model_config.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* config.json files larger than this are refused (real ones are a few KB). */
#define MAX_CONFIG_BYTES (16u * 1024u * 1024u)

/* Upper bounds that keep every derived shape far from int64 overflow. */
#define MAX_WIDTH (1 << 20)
#define MAX_LAYERS 1024
#define MAX_HEADS 65536
#define MAX_VOCAB (1 << 24)

/* Fills cfg with GromaConfig()'s defaults. */
void
groma_model_config_set_defaults(groma_model_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->llm = (groma_llm_config) {
		.hidden_size = 4096,
		.num_layers = 32,
		.num_heads = 32,
		.num_kv_heads = 0,		/* 0: same as num_heads, resolved after parsing */
		.intermediate_size = 11008,
		.vocab_size = 32000,
		.max_position_embeddings = 2048,
		.rms_norm_eps = 1e-6,
		.rope_theta = 10000.0,
	};
	cfg->vision = (groma_vision_config) {
		.hidden_size = 768,
		.num_layers = 12,
		.num_heads = 12,
		.mlp_ratio = 4.0,
		.patch_size = 16,
		.image_size = 224,
		.num_channels = 3,
		.layer_norm_eps = 1e-6,
		.layerscale_value = 1.0,
		.qkv_bias = true,
	};
	cfg->ddetr = (groma_ddetr_config) {
		.d_model = 256,
		.encoder_layers = 6,
		.decoder_layers = 6,
		.encoder_heads = 8,
		.decoder_heads = 8,
		.encoder_n_points = 4,
		.decoder_n_points = 4,
		.encoder_ffn_dim = 1024,
		.decoder_ffn_dim = 1024,
		.num_queries = 300,
		.two_stage_num_proposals = 300,
		.num_feature_levels = 4,
		.num_labels = 2,
		.box_head_width = 256,
	};
	cfg->region = (groma_region_config) {
		.num_levels = 3,
		.num_fuse = 5,
		.roi_output_size = 14,
		.gn_groups = 64,
		.pos_width = 256,
		.region_width = 1024,
	};
	cfg->max_region_num = 100;
	cfg->vis_output_layer = -1;
}

/* Where a field lives, for messages: the file and the section prefix ("llm_cfg."). */
typedef struct section
{
	const char *label;
	const char *prefix;
	json_t	   *object;			/* NULL: section absent, every field default */
} section;

/* Returns the field's JSON value, or NULL when absent or null (default applies). */
static json_t *
field(const section *s, const char *key)
{
	json_t	   *v = s->object ? json_object_get(s->object, key) : NULL;

	return json_is_null(v) ? NULL : v;
}

/* Reads an integer field in [min, max] into *value; keeps *value when absent. */
static groma_status
read_int(const section *s, const char *key, long long min, long long max, int *value)
{
	json_t	   *v = field(s, key);
	long long	n;

	if (v == NULL)
		return groma_ok();
	if (json_is_integer(v))
		n = (long long) json_integer_value(v);
	else if (json_is_real(v) && fabs(json_real_value(v)) < 1e15 &&
			 json_real_value(v) == floor(json_real_value(v)))
		n = (long long) json_real_value(v);	/* 4.0 written for an int */
	else
		return groma_error(GROMA_ERR_FORMAT, "\"%s\": %s%s is not an integer", s->label,
						   s->prefix, key);
	if (n < min || n > max)
		return groma_error(GROMA_ERR_LIMIT, "\"%s\": %s%s = %lld is outside [%lld, %lld]",
						   s->label, s->prefix, key, n, min, max);
	*value = (int) n;
	return groma_ok();
}

/* Reads a number field in [min, max] into *value; keeps *value when absent. */
static groma_status
read_real(const section *s, const char *key, double min, double max, double *value)
{
	json_t	   *v = field(s, key);
	double		x;

	if (v == NULL)
		return groma_ok();
	if (!json_is_number(v))
		return groma_error(GROMA_ERR_FORMAT, "\"%s\": %s%s is not a number", s->label,
						   s->prefix, key);
	x = json_number_value(v);
	if (!(x >= min && x <= max))
		return groma_error(GROMA_ERR_LIMIT, "\"%s\": %s%s = %g is outside [%g, %g]", s->label,
						   s->prefix, key, x, min, max);
	*value = x;
	return groma_ok();
}

/* Reads a boolean field into *value; keeps *value when absent. */
static groma_status
read_bool(const section *s, const char *key, bool *value)
{
	json_t	   *v = field(s, key);

	if (v == NULL)
		return groma_ok();
	if (!json_is_boolean(v))
		return groma_error(GROMA_ERR_FORMAT, "\"%s\": %s%s is not true or false", s->label,
						   s->prefix, key);
	*value = json_is_true(v);
	return groma_ok();
}

/* Opens sub-section key of parent (absent or null: defaults); GROMA_ERR_FORMAT when not an object. */
static groma_status
sub_section(const section *parent, const char *key, const char *prefix, section *out)
{
	json_t	   *v = field(parent, key);

	out->label = parent->label;
	out->prefix = prefix;
	out->object = v;
	if (v != NULL && !json_is_object(v))
		return groma_error(GROMA_ERR_FORMAT, "\"%s\": %s%s is not an object", parent->label,
						   parent->prefix, key);
	return groma_ok();
}

/* Runs one reader step unless an earlier one failed. */
#define STEP(st, call) do { if ((st).code == GROMA_OK) (st) = (call); } while (0)

/* Reads llm_cfg (LlamaConfig). */
static groma_status
read_llm(const section *s, groma_llm_config *llm)
{
	groma_status st = groma_ok();

	STEP(st, read_int(s, "hidden_size", 1, MAX_WIDTH, &llm->hidden_size));
	STEP(st, read_int(s, "num_hidden_layers", 1, MAX_LAYERS, &llm->num_layers));
	STEP(st, read_int(s, "num_attention_heads", 1, MAX_HEADS, &llm->num_heads));
	STEP(st, read_int(s, "num_key_value_heads", 1, MAX_HEADS, &llm->num_kv_heads));
	STEP(st, read_int(s, "intermediate_size", 1, MAX_WIDTH, &llm->intermediate_size));
	STEP(st, read_int(s, "vocab_size", 1, MAX_VOCAB, &llm->vocab_size));
	STEP(st, read_int(s, "max_position_embeddings", 1, MAX_VOCAB, &llm->max_position_embeddings));
	STEP(st, read_real(s, "rms_norm_eps", 0.0, 1.0, &llm->rms_norm_eps));
	STEP(st, read_real(s, "rope_theta", 1e-6, 1e12, &llm->rope_theta));
	STEP(st, read_bool(s, "attention_bias", &llm->attention_bias));
	STEP(st, read_bool(s, "tie_word_embeddings", &llm->tie_word_embeddings));
	if (st.code == GROMA_OK)
		llm->rope_scaling = field(s, "rope_scaling") != NULL;
	if (st.code == GROMA_OK && llm->num_kv_heads == 0)
		llm->num_kv_heads = llm->num_heads; /* LlamaConfig: None means no GQA */
	return st;
}

/* Reads perceiver_cfg.vis_encoder_cfg (Dinov2Config). */
static groma_status
read_vision(const section *s, groma_vision_config *v)
{
	groma_status st = groma_ok();

	STEP(st, read_int(s, "hidden_size", 1, MAX_WIDTH, &v->hidden_size));
	STEP(st, read_int(s, "num_hidden_layers", 1, MAX_LAYERS, &v->num_layers));
	STEP(st, read_int(s, "num_attention_heads", 1, MAX_HEADS, &v->num_heads));
	STEP(st, read_real(s, "mlp_ratio", 1e-3, 64.0, &v->mlp_ratio));
	STEP(st, read_int(s, "patch_size", 1, 4096, &v->patch_size));
	STEP(st, read_int(s, "image_size", 1, 65536, &v->image_size));
	STEP(st, read_int(s, "num_channels", 1, 64, &v->num_channels));
	STEP(st, read_real(s, "layer_norm_eps", 0.0, 1.0, &v->layer_norm_eps));
	STEP(st, read_real(s, "layerscale_value", -1e6, 1e6, &v->layerscale_value));
	STEP(st, read_bool(s, "qkv_bias", &v->qkv_bias));
	STEP(st, read_bool(s, "use_swiglu_ffn", &v->use_swiglu_ffn));
	return st;
}

/* Reads perceiver_cfg.ddetr_cfg (DeformableDetrConfig). */
static groma_status
read_ddetr(const section *s, groma_ddetr_config *d)
{
	groma_status st = groma_ok();
	json_t	   *id2label = field(s, "id2label");

	STEP(st, read_int(s, "d_model", 1, MAX_WIDTH, &d->d_model));
	STEP(st, read_int(s, "encoder_layers", 1, MAX_LAYERS, &d->encoder_layers));
	STEP(st, read_int(s, "decoder_layers", 1, MAX_LAYERS, &d->decoder_layers));
	STEP(st, read_int(s, "encoder_attention_heads", 1, MAX_HEADS, &d->encoder_heads));
	STEP(st, read_int(s, "decoder_attention_heads", 1, MAX_HEADS, &d->decoder_heads));
	STEP(st, read_int(s, "encoder_n_points", 1, 64, &d->encoder_n_points));
	STEP(st, read_int(s, "decoder_n_points", 1, 64, &d->decoder_n_points));
	STEP(st, read_int(s, "encoder_ffn_dim", 1, MAX_WIDTH, &d->encoder_ffn_dim));
	STEP(st, read_int(s, "decoder_ffn_dim", 1, MAX_WIDTH, &d->decoder_ffn_dim));
	STEP(st, read_int(s, "num_queries", 1, MAX_WIDTH, &d->num_queries));
	STEP(st, read_int(s, "two_stage_num_proposals", 1, MAX_WIDTH, &d->two_stage_num_proposals));
	STEP(st, read_int(s, "num_feature_levels", 1, 4, &d->num_feature_levels));
	STEP(st, read_bool(s, "two_stage", &d->two_stage));
	STEP(st, read_bool(s, "with_box_refine", &d->with_box_refine));
	if (st.code != GROMA_OK)
		return st;
	/* PretrainedConfig: id2label decides num_labels when given, else num_labels, else 2. */
	if (id2label != NULL)
	{
		if (!json_is_object(id2label) || json_object_size(id2label) == 0 ||
			json_object_size(id2label) > 65536)
			return groma_error(GROMA_ERR_FORMAT, "\"%s\": %sid2label is not a non-empty object",
							   s->label, s->prefix);
		d->num_labels = (int) json_object_size(id2label);
		return groma_ok();
	}
	return read_int(s, "num_labels", 1, 65536, &d->num_labels);
}

/* Reads Groma's top-level fields. */
static groma_status
read_top(const section *s, groma_model_config *cfg)
{
	groma_status st = groma_ok();

	STEP(st, read_int(s, "num_new_token", 0, MAX_WIDTH, &cfg->num_new_token));
	STEP(st, read_real(s, "nms_thres", 0.0, 1.0, &cfg->nms_thres));
	STEP(st, read_real(s, "box_score_thres", 0.0, 1.0, &cfg->box_score_thres));
	STEP(st, read_int(s, "max_region_num", 1, MAX_WIDTH, &cfg->max_region_num));
	return st;
}

/* Returns GROMA_ERR_UNSUPPORTED when width is not a multiple of heads. */
static groma_status
check_heads(const char *label, const char *what, int width, int heads)
{
	if (width % heads != 0)
		return groma_error(GROMA_ERR_UNSUPPORTED, "\"%s\": %s width %d is not a multiple of its %d heads",
						   label, what, width, heads);
	return groma_ok();
}

/* Derives dependent values and refuses inconsistent settings. */
static groma_status
finish_config(const char *label, groma_model_config *cfg)
{
	groma_vision_config *v = &cfg->vision;
	double		mlp = (double) v->hidden_size * v->mlp_ratio;
	groma_status st = groma_ok();

	STEP(st, check_heads(label, "llm_cfg", cfg->llm.hidden_size, cfg->llm.num_heads));
	STEP(st, check_heads(label, "vis_encoder_cfg", v->hidden_size, v->num_heads));
	STEP(st, check_heads(label, "ddetr_cfg encoder", cfg->ddetr.d_model, cfg->ddetr.encoder_heads));
	STEP(st, check_heads(label, "ddetr_cfg decoder", cfg->ddetr.d_model, cfg->ddetr.decoder_heads));
	if (st.code != GROMA_OK)
		return st;
	if (cfg->llm.num_heads % cfg->llm.num_kv_heads != 0)
		return groma_error(GROMA_ERR_UNSUPPORTED,
						   "\"%s\": llm_cfg has %d attention heads, not a multiple of its %d key/value heads",
						   label, cfg->llm.num_heads, cfg->llm.num_kv_heads);
	if (v->patch_size > v->image_size)
		return groma_error(GROMA_ERR_UNSUPPORTED, "\"%s\": vis_encoder_cfg patch_size %d exceeds image_size %d",
						   label, v->patch_size, v->image_size);
	if (mlp < 1.0 || mlp > MAX_WIDTH)
		return groma_error(GROMA_ERR_LIMIT, "\"%s\": vis_encoder_cfg MLP width %g is out of range",
						   label, mlp);
	v->mlp_hidden = (int) mlp;	/* Dinov2MLP: int(hidden_size * mlp_ratio) */
	v->grid_size = v->image_size / v->patch_size;
	if (cfg->vis_output_layer < -(v->num_layers + 1) || cfg->vis_output_layer > v->num_layers)
		return groma_error(GROMA_ERR_LIMIT, "\"%s\": perceiver_cfg.vis_output_layer %d names no layer",
						   label, cfg->vis_output_layer);
	cfg->vocab_size = cfg->llm.vocab_size + cfg->num_new_token;	/* as GromaConfig computes it */
	return groma_ok();
}

/*
 * Refuses settings that would change the model in ways groma does not
 * implement, naming the key: llm_cfg.rope_scaling other than null, and a
 * top-level vocab_size other than llm_cfg.vocab_size + num_new_token.
 */
static groma_status
check_unimplemented(const section *top, const groma_model_config *cfg)
{
	int			vocab = cfg->vocab_size;

	if (cfg->llm.rope_scaling)
		return groma_error(GROMA_ERR_UNSUPPORTED,
						   "\"%s\": llm_cfg.rope_scaling is set; groma implements unscaled RoPE only (null)",
						   top->label);
	GROMA_TRY(read_int(top, "vocab_size", 1, MAX_VOCAB, &vocab));
	if (vocab != cfg->vocab_size)
		return groma_error(GROMA_ERR_UNSUPPORTED,
						   "\"%s\": vocab_size %d disagrees with llm_cfg.vocab_size + num_new_token = %d",
						   top->label, vocab, cfg->vocab_size);
	return groma_ok();
}

/* Parses config.json text into cfg; see model_config.h. */
groma_status
groma_model_config_parse(const char *text, size_t len, const char *label,
						 groma_model_config *cfg)
{
	json_error_t jerr;
	json_t	   *root;
	section		top = {label ? label : "config.json", "", NULL};
	section		llm,
				perceiver,
				vision,
				ddetr;
	groma_status st = groma_ok();

	groma_model_config_set_defaults(cfg);
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return groma_error(GROMA_ERR_FORMAT, "\"%s\" is not valid JSON (line %d: %s)", top.label,
						   jerr.line, jerr.text);
	if (!json_is_object(root))
	{
		json_decref(root);
		return groma_error(GROMA_ERR_FORMAT, "\"%s\" is not a JSON object", top.label);
	}
	top.object = root;
	STEP(st, sub_section(&top, "llm_cfg", "llm_cfg.", &llm));
	STEP(st, sub_section(&top, "perceiver_cfg", "perceiver_cfg.", &perceiver));
	STEP(st, sub_section(&perceiver, "vis_encoder_cfg", "perceiver_cfg.vis_encoder_cfg.", &vision));
	STEP(st, sub_section(&perceiver, "ddetr_cfg", "perceiver_cfg.ddetr_cfg.", &ddetr));
	STEP(st, read_top(&top, cfg));
	STEP(st, read_llm(&llm, &cfg->llm));
	STEP(st, read_vision(&vision, &cfg->vision));
	STEP(st, read_ddetr(&ddetr, &cfg->ddetr));
	STEP(st, read_int(&perceiver, "vis_output_layer", -MAX_LAYERS - 1, MAX_LAYERS,
					  &cfg->vis_output_layer));
	STEP(st, finish_config(top.label, cfg));
	STEP(st, check_unimplemented(&top, cfg));
	json_decref(root);
	return st;
}

/* Reads and parses path, or path/config.json for a folder. */
groma_status
groma_model_config_load(const char *path, groma_model_config *cfg)
{
	struct stat sb;
	char		file[4096];
	char	   *text;
	FILE	   *f;
	size_t		got;
	groma_status st;

	groma_model_config_set_defaults(cfg);
	if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
		snprintf(file, sizeof(file), "%s/config.json", path);
	else
		snprintf(file, sizeof(file), "%s", path);
	f = fopen(file, "rb");
	if (f == NULL)
		return groma_error(GROMA_ERR_IO, "cannot open \"%s\": %s", file, strerror(errno));
	if (fstat(fileno(f), &sb) != 0 || sb.st_size > MAX_CONFIG_BYTES)
	{
		fclose(f);
		return groma_error(GROMA_ERR_LIMIT, "\"%s\" is larger than %u MiB", file,
						   MAX_CONFIG_BYTES >> 20);
	}
	text = malloc((size_t) sb.st_size + 1);
	if (text == NULL)
	{
		fclose(f);
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot read \"%s\"", file);
	}
	got = fread(text, 1, (size_t) sb.st_size, f);
	fclose(f);
	if (got != (size_t) sb.st_size)
		st = groma_error(GROMA_ERR_IO, "cannot read \"%s\"", file);
	else
		st = groma_model_config_parse(text, got, file, cfg);
	free(text);
	return st;
}
