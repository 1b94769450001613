/*
 * model_tensors.c - the tensor names and shapes of a Groma state dict.
 *
 * Each block mirrors one module of the original code, in registration order
 * (which is state-dict order).  Shapes are [out, in] for Linear weights and
 * [out, in, kh, kw] for Conv2d weights, as PyTorch stores them.
 */
#include "model_tensors.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends to a list under a name prefix; the first failure sticks and later adds do nothing. */
typedef struct builder
{
	groma_expected_list *list;
	groma_status status;
	char		prefix[GROMA_EXPECTED_NAME_MAX];
} builder;

/* Sets the prefix every following name starts with (printf-style). */
static void
set_prefix(builder *b, const char *fmt,...) __attribute__((format(printf, 2, 3)));

static void
set_prefix(builder *b, const char *fmt,...)
{
	va_list		ap;
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(b->prefix, sizeof(b->prefix), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t) n >= sizeof(b->prefix))
		b->status = groma_error(GROMA_ERR_LIMIT, "tensor name prefix \"%s\" is too long", b->prefix);
}

/* Appends prefix + suffix with shape dims[0..ndim). */
static void
add(builder *b, const char *suffix, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
	groma_expected_list *l = b->list;
	groma_expected_tensor *t;
	int			n;

	if (b->status.code != GROMA_OK)
		return;
	if (l->count == l->cap)
	{
		size_t		cap = l->cap ? l->cap * 2 : 256;
		groma_expected_tensor *items = realloc(l->items, cap * sizeof(*items));

		if (items == NULL)
		{
			b->status = groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate the expected tensor list");
			return;
		}
		l->items = items;
		l->cap = cap;
	}
	t = &l->items[l->count];
	n = snprintf(t->name, sizeof(t->name), "%s%s", b->prefix, suffix);
	if (n < 0 || (size_t) n >= sizeof(t->name))
	{
		b->status = groma_error(GROMA_ERR_LIMIT, "tensor name \"%s%s\" is too long", b->prefix, suffix);
		return;
	}
	t->ndim = ndim;
	t->shape[0] = d0;
	t->shape[1] = d1;
	t->shape[2] = d2;
	t->shape[3] = d3;
	l->count++;
}

/* Appends name.weight [out, in] and, when bias, name.bias [out] (an nn.Linear). */
static void
add_linear(builder *b, const char *name, int64_t out, int64_t in, bool bias)
{
	char		suffix[GROMA_EXPECTED_NAME_MAX];

	snprintf(suffix, sizeof(suffix), "%s.weight", name);
	add(b, suffix, 2, out, in, 0, 0);
	if (bias)
	{
		snprintf(suffix, sizeof(suffix), "%s.bias", name);
		add(b, suffix, 1, out, 0, 0, 0);
	}
}

/* Appends name.weight [width] and name.bias [width] (a LayerNorm or GroupNorm). */
static void
add_norm(builder *b, const char *name, int64_t width)
{
	char		suffix[GROMA_EXPECTED_NAME_MAX];

	snprintf(suffix, sizeof(suffix), "%s.weight", name);
	add(b, suffix, 1, width, 0, 0, 0);
	snprintf(suffix, sizeof(suffix), "%s.bias", name);
	add(b, suffix, 1, width, 0, 0, 0);
}

/* Appends name.weight [out, in, k, k] and, when bias, name.bias [out] (an nn.Conv2d). */
static void
add_conv(builder *b, const char *name, int64_t out, int64_t in, int64_t k, bool bias)
{
	char		suffix[GROMA_EXPECTED_NAME_MAX];

	snprintf(suffix, sizeof(suffix), "%s.weight", name);
	add(b, suffix, 4, out, in, k, k);
	if (bias)
	{
		snprintf(suffix, sizeof(suffix), "%s.bias", name);
		add(b, suffix, 1, out, 0, 0, 0);
	}
}

/* Dinov2Model: embeddings, encoder layers (LayerScale, GELU MLP), final layernorm. */
static void
add_vision(builder *b, const groma_vision_config *v)
{
	int64_t		h = v->hidden_size;
	int64_t		grid = v->grid_size;

	set_prefix(b, "perceiver.vis_encoder.embeddings.");
	add(b, "cls_token", 3, 1, 1, h, 0);
	add(b, "mask_token", 2, 1, h, 0, 0);
	add(b, "position_embeddings", 3, 1, grid * grid + 1, h, 0);
	add_conv(b, "patch_embeddings.projection", h, v->num_channels, v->patch_size, true);
	for (int i = 0; i < v->num_layers; i++)
	{
		set_prefix(b, "perceiver.vis_encoder.encoder.layer.%d.", i);
		add_norm(b, "norm1", h);
		add_linear(b, "attention.attention.query", h, h, v->qkv_bias);
		add_linear(b, "attention.attention.key", h, h, v->qkv_bias);
		add_linear(b, "attention.attention.value", h, h, v->qkv_bias);
		add_linear(b, "attention.output.dense", h, h, true);
		add(b, "layer_scale1.lambda1", 1, h, 0, 0, 0);
		add_norm(b, "norm2", h);
		add_linear(b, "mlp.fc1", v->mlp_hidden, h, true);
		add_linear(b, "mlp.fc2", h, v->mlp_hidden, true);
		add(b, "layer_scale2.lambda1", 1, h, 0, 0, 0);
	}
	set_prefix(b, "perceiver.vis_encoder.");
	add_norm(b, "layernorm", h);
}

/* A multi-scale deformable attention block (sampling offsets, weights, value and output projections). */
static void
add_deformable_attention(builder *b, const char *name, const groma_ddetr_config *d, int heads,
						 int points)
{
	char		sub[GROMA_EXPECTED_NAME_MAX];
	int64_t		samples = (int64_t) heads * d->num_feature_levels * points;

	snprintf(sub, sizeof(sub), "%s.sampling_offsets", name);
	add_linear(b, sub, samples * 2, d->d_model, true);
	snprintf(sub, sizeof(sub), "%s.attention_weights", name);
	add_linear(b, sub, samples, d->d_model, true);
	snprintf(sub, sizeof(sub), "%s.value_proj", name);
	add_linear(b, sub, d->d_model, d->d_model, true);
	snprintf(sub, sizeof(sub), "%s.output_proj", name);
	add_linear(b, sub, d->d_model, d->d_model, true);
}

/* The box head MLP: d_model -> width -> width -> 4 (three Linears with bias). */
static void
add_box_head(builder *b, const char *name, const groma_ddetr_config *d)
{
	char		sub[GROMA_EXPECTED_NAME_MAX];
	int64_t		w = d->box_head_width;

	snprintf(sub, sizeof(sub), "%s.layers.0", name);
	add_linear(b, sub, w, d->d_model, true);
	snprintf(sub, sizeof(sub), "%s.layers.1", name);
	add_linear(b, sub, w, w, true);
	snprintf(sub, sizeof(sub), "%s.layers.2", name);
	add_linear(b, sub, 4, w, true);
}

/* The class heads: class_embed_enc, then class_embed_coco.N and class_embed_sa1b.N per decoder layer. */
static void
add_class_heads(builder *b, const groma_ddetr_config *d)
{
	char		sub[GROMA_EXPECTED_NAME_MAX];

	add_linear(b, "class_embed_enc", d->num_labels, d->d_model, true);
	for (int i = 0; i < d->decoder_layers; i++)
	{
		snprintf(sub, sizeof(sub), "class_embed_coco.%d", i);
		add_linear(b, sub, d->num_labels, d->d_model, true);
	}
	for (int i = 0; i < d->decoder_layers; i++)
	{
		snprintf(sub, sizeof(sub), "class_embed_sa1b.%d", i);
		add_linear(b, sub, d->num_labels, d->d_model, true);
	}
}

/* Returns how many bbox_embed heads exist: one per decoder layer, plus the proposal head with box refinement. */
static int
box_head_count(const groma_ddetr_config *d)
{
	return d->with_box_refine ? d->decoder_layers + 1 : d->decoder_layers;
}

/* DeformableDetrTransformer (Groma's): encoder, decoder with head aliases, two-stage parts, heads. */
static void
add_ddetr(builder *b, const groma_ddetr_config *d)
{
	int64_t		dm = d->d_model;
	char		sub[GROMA_EXPECTED_NAME_MAX];

	set_prefix(b, "perceiver.ddetr_transformer.");
	add(b, "level_embed", 2, d->num_feature_levels, dm, 0, 0);
	for (int i = 0; i < d->encoder_layers; i++)
	{
		set_prefix(b, "perceiver.ddetr_transformer.encoder.layers.%d.", i);
		add_deformable_attention(b, "self_attn", d, d->encoder_heads, d->encoder_n_points);
		add_norm(b, "self_attn_layer_norm", dm);
		add_linear(b, "fc1", d->encoder_ffn_dim, dm, true);
		add_linear(b, "fc2", dm, d->encoder_ffn_dim, true);
		add_norm(b, "final_layer_norm", dm);
	}
	for (int i = 0; i < d->decoder_layers; i++)
	{
		set_prefix(b, "perceiver.ddetr_transformer.decoder.layers.%d.", i);
		add_linear(b, "self_attn.k_proj", dm, dm, true);
		add_linear(b, "self_attn.v_proj", dm, dm, true);
		add_linear(b, "self_attn.q_proj", dm, dm, true);
		add_linear(b, "self_attn.out_proj", dm, dm, true);
		add_norm(b, "self_attn_layer_norm", dm);
		add_deformable_attention(b, "encoder_attn", d, d->decoder_heads, d->decoder_n_points);
		add_norm(b, "encoder_attn_layer_norm", dm);
		add_linear(b, "fc1", d->decoder_ffn_dim, dm, true);
		add_linear(b, "fc2", dm, d->decoder_ffn_dim, true);
		add_norm(b, "final_layer_norm", dm);
	}
	/* Aliases the decoder holds: the box heads (with refinement), the class heads (two-stage). */
	set_prefix(b, "perceiver.ddetr_transformer.decoder.");
	for (int i = 0; d->with_box_refine && i < box_head_count(d); i++)
	{
		snprintf(sub, sizeof(sub), "bbox_embed.%d", i);
		add_box_head(b, sub, d);
	}
	if (d->two_stage)
		add_class_heads(b, d);
	set_prefix(b, "perceiver.ddetr_transformer.");
	add(b, "query_position_embeddings.weight", 2, d->num_queries, d->two_stage ? dm : 2 * dm, 0, 0);
	if (d->two_stage)
	{
		add_linear(b, "enc_output", dm, dm, true);
		add_norm(b, "enc_output_norm", dm);
		add_linear(b, "pos_trans", 2 * dm, 2 * dm, true);
		add_norm(b, "pos_trans_norm", 2 * dm);
	}
	else
		add_linear(b, "reference_points", 2, dm, true);
	add_class_heads(b, d);
	for (int i = 0; i < box_head_count(d); i++)
	{
		snprintf(sub, sizeof(sub), "bbox_embed.%d", i);
		add_box_head(b, sub, d);
	}
}

/* LlamaForCausalLM: embeddings, decoder layers, final norm, untied lm_head. */
static void
add_llm(builder *b, const groma_llm_config *l)
{
	int64_t		h = l->hidden_size;
	int64_t		head_dim = h / l->num_heads;
	int64_t		kv = head_dim * l->num_kv_heads;

	set_prefix(b, "llm.model.");
	add(b, "embed_tokens.weight", 2, l->vocab_size, h, 0, 0);
	for (int i = 0; i < l->num_layers; i++)
	{
		set_prefix(b, "llm.model.layers.%d.", i);
		add_linear(b, "self_attn.q_proj", head_dim * l->num_heads, h, l->attention_bias);
		add_linear(b, "self_attn.k_proj", kv, h, l->attention_bias);
		add_linear(b, "self_attn.v_proj", kv, h, l->attention_bias);
		add_linear(b, "self_attn.o_proj", h, h, l->attention_bias);
		add_linear(b, "mlp.gate_proj", l->intermediate_size, h, false);
		add_linear(b, "mlp.up_proj", l->intermediate_size, h, false);
		add_linear(b, "mlp.down_proj", h, l->intermediate_size, false);
		add(b, "input_layernorm.weight", 1, h, 0, 0, 0);
		add(b, "post_attention_layernorm.weight", 1, h, 0, 0, 0);
	}
	set_prefix(b, "llm.");
	add(b, "model.norm.weight", 1, h, 0, 0, 0);
	add(b, "lm_head.weight", 2, l->vocab_size, h, 0, 0);
}

/*
 * MLVLROIQueryModule(image width C, LLM width): input convs and fuse convs
 * (C wide, from the config), RoI convs, then the original's hard-coded
 * widths: pos_embedd 4 -> pos_width -> region_width, flatten_linear
 * C*14*14 -> region_width, updims region_width -> the LLM width.
 */
static void
add_region_encoder(builder *b, const groma_model_config *cfg)
{
	const groma_region_config *r = &cfg->region;
	int64_t		c = cfg->vision.hidden_size;
	int64_t		s = r->roi_output_size;
	char		sub[GROMA_EXPECTED_NAME_MAX];

	set_prefix(b, "region_encoder.mlvl_fuse.");
	for (int i = 0; i < r->num_levels; i++)
	{
		snprintf(sub, sizeof(sub), "input_conv.%d", i);
		add_conv(b, sub, c, c + 2, 1, true);
	}
	for (int i = 0; i < r->num_fuse; i++)
	{
		/* ConvModule with GroupNorm: the conv has no bias. */
		snprintf(sub, sizeof(sub), "fuse_convs.%d.conv", i);
		add_conv(b, sub, c, c, 3, false);
		snprintf(sub, sizeof(sub), "fuse_convs.%d.gn", i);
		add_norm(b, sub, c);
	}
	set_prefix(b, "region_encoder.roi_align.");
	for (int i = 0; i < r->num_levels; i++)
	{
		snprintf(sub, sizeof(sub), "pconvs.%d", i);
		add_conv(b, sub, c, c, 3, true);
	}
	add_linear(b, "pos_embedd.0", r->pos_width, 4, true);
	add_norm(b, "pos_embedd.2", r->pos_width);
	add_linear(b, "pos_embedd.3", r->region_width, r->pos_width, true);
	add_norm(b, "pos_embedd.5", r->region_width);
	add_linear(b, "updims", cfg->llm.hidden_size, r->region_width, true);
	add_linear(b, "flatten_linear", r->region_width, c * s * s, true);
}

/* Builds the whole expected list; see model_tensors.h. */
groma_status
groma_expected_tensors(const groma_model_config *cfg, groma_expected_list *out)
{
	builder		b = {.list = out, .status = groma_ok()};
	int64_t		h = cfg->llm.hidden_size;
	int64_t		dm = cfg->ddetr.d_model;

	memset(out, 0, sizeof(*out));
	if (cfg->vision.use_swiglu_ffn)
		return groma_error(GROMA_ERR_UNSUPPORTED, "DINOv2 with a SwiGLU FFN is not supported");
	if (cfg->ddetr.num_feature_levels != 1)
		return groma_error(GROMA_ERR_UNSUPPORTED,
						   "%d deformable feature levels are not supported (Groma uses 1)",
						   cfg->ddetr.num_feature_levels);
	add_vision(&b, &cfg->vision);
	add_ddetr(&b, &cfg->ddetr);
	/* CustomDDETRModel.input_proj for one level: Conv 1x1 + channel LayerNorm. */
	set_prefix(&b, "perceiver.input_proj.0.");
	add_conv(&b, "0", dm, cfg->vision.hidden_size, 1, true);
	add_norm(&b, "1", dm);
	add_llm(&b, &cfg->llm);
	/* GromaModel: bridge (Linear, GELU, Linear) from 2x2-merged image tokens. */
	set_prefix(&b, "img_txt_bridge.");
	add_linear(&b, "0", h, 4 * (int64_t) cfg->vision.hidden_size, true);
	add_linear(&b, "2", h, h, true);
	add_region_encoder(&b, cfg);
	set_prefix(&b, "%s", "");
	add_linear(&b, "extra_lm_head", cfg->num_new_token, h, false);
	add_linear(&b, "new_input_embs", cfg->num_new_token, h, false);
	if (b.status.code != GROMA_OK)
		groma_expected_list_free(out);
	return b.status;
}

/* Frees the list's items. */
void
groma_expected_list_free(groma_expected_list *list)
{
	free(list->items);
	memset(list, 0, sizeof(*list));
}
