/*
 * proposer_build.c - binding the region proposer's weights.
 */
#include "proposer.h"

#include <stdio.h>
#include <string.h>

#include "../runtime/op_check.h"

#define PFX "perceiver.ddetr_transformer."

/* Binds a LayerNorm's weight and bias of width n. */
static groma_status
bind_norm(const groma_weight_source *s, groma_arena *w, groma_tensor *wt, groma_tensor *bt, int64_t n,
		  const char *name)
{
	GROMA_TRY(groma_bind(s, w, wt, 1, (int64_t[]) {n}, "%s.weight", name));
	GROMA_TRY(groma_bind(s, w, bt, 1, (int64_t[]) {n}, "%s.bias", name));
	return groma_ok();
}

/* Binds a Linear(in, out) with bias. */
static groma_status
bind_linear(const groma_weight_source *s, groma_arena *w, groma_tensor *wt, groma_tensor *bt,
			int64_t out, int64_t in, const char *name)
{
	GROMA_TRY(groma_bind(s, w, wt, 2, (int64_t[]) {out, in}, "%s.weight", name));
	GROMA_TRY(groma_bind(s, w, bt, 1, (int64_t[]) {out}, "%s.bias", name));
	return groma_ok();
}

/* Binds a deformable attention block with one feature level. */
static groma_status
bind_msda(const groma_weight_source *s, groma_arena *w, groma_msda *a, int64_t d, int heads, int points,
		  const char *name)
{
	char		n[200];

	a->heads = heads;
	a->points = points;
	snprintf(n, sizeof(n), "%s.sampling_offsets", name);
	GROMA_TRY(bind_linear(s, w, &a->offsets_w, &a->offsets_b, (int64_t) heads * points * 2, d, n));
	snprintf(n, sizeof(n), "%s.attention_weights", name);
	GROMA_TRY(bind_linear(s, w, &a->weights_w, &a->weights_b, (int64_t) heads * points, d, n));
	snprintf(n, sizeof(n), "%s.value_proj", name);
	GROMA_TRY(bind_linear(s, w, &a->value_w, &a->value_b, d, d, n));
	snprintf(n, sizeof(n), "%s.output_proj", name);
	GROMA_TRY(bind_linear(s, w, &a->out_w, &a->out_b, d, d, n));
	return groma_ok();
}

/* Binds bbox_embed[i]: a 3-layer MLP d → hid → hid → 4. */
static groma_status
bind_box(const groma_weight_source *s, groma_arena *w, groma_box_mlp *m, int64_t d, int64_t hid, int i)
{
	char		n[200];
	const int64_t shapes[3][2] = {{hid, d}, {hid, hid}, {4, hid}};

	for (int k = 0; k < 3; k++)
	{
		snprintf(n, sizeof(n), PFX "bbox_embed.%d.layers.%d", i, k);
		GROMA_TRY(bind_linear(s, w, &m->w[k], &m->b[k], shapes[k][0], shapes[k][1], n));
	}
	return groma_ok();
}

/* Binds encoder layer i. */
static groma_status
bind_encoder_layer(const groma_weight_source *s, groma_arena *w, groma_proposer_encoder_layer *l,
				   const groma_proposer_config *c, int i)
{
	char		n[200];
	int64_t		d = c->d_model;

	snprintf(n, sizeof(n), PFX "encoder.layers.%d.self_attn", i);
	GROMA_TRY(bind_msda(s, w, &l->attn, d, c->encoder_heads, c->encoder_points, n));
	snprintf(n, sizeof(n), PFX "encoder.layers.%d.self_attn_layer_norm", i);
	GROMA_TRY(bind_norm(s, w, &l->attn_norm_w, &l->attn_norm_b, d, n));
	snprintf(n, sizeof(n), PFX "encoder.layers.%d.fc1", i);
	GROMA_TRY(bind_linear(s, w, &l->fc1_w, &l->fc1_b, c->encoder_ffn, d, n));
	snprintf(n, sizeof(n), PFX "encoder.layers.%d.fc2", i);
	GROMA_TRY(bind_linear(s, w, &l->fc2_w, &l->fc2_b, d, c->encoder_ffn, n));
	snprintf(n, sizeof(n), PFX "encoder.layers.%d.final_layer_norm", i);
	GROMA_TRY(bind_norm(s, w, &l->final_norm_w, &l->final_norm_b, d, n));
	return groma_ok();
}

/* Binds decoder layer i with its class heads and box head. */
static groma_status
bind_decoder_layer(const groma_weight_source *s, groma_arena *w, groma_proposer_decoder_layer *l,
				   const groma_proposer_config *c, int i)
{
	char		n[200];
	int64_t		d = c->d_model;

	snprintf(n, sizeof(n), PFX "decoder.layers.%d.self_attn.q_proj", i);
	GROMA_TRY(bind_linear(s, w, &l->q_w, &l->q_b, d, d, n));
	snprintf(n, sizeof(n), PFX "decoder.layers.%d.self_attn.k_proj", i);
	GROMA_TRY(bind_linear(s, w, &l->k_w, &l->k_b, d, d, n));
	snprintf(n, sizeof(n), PFX "decoder.layers.%d.self_attn.v_proj", i);
	GROMA_TRY(bind_linear(s, w, &l->v_w, &l->v_b, d, d, n));
	snprintf(n, sizeof(n), PFX "decoder.layers.%d.self_attn.out_proj", i);
	GROMA_TRY(bind_linear(s, w, &l->o_w, &l->o_b, d, d, n));
	snprintf(n, sizeof(n), PFX "decoder.layers.%d.self_attn_layer_norm", i);
	GROMA_TRY(bind_norm(s, w, &l->self_norm_w, &l->self_norm_b, d, n));
	snprintf(n, sizeof(n), PFX "decoder.layers.%d.encoder_attn", i);
	GROMA_TRY(bind_msda(s, w, &l->cross, d, c->decoder_heads, c->decoder_points, n));
	snprintf(n, sizeof(n), PFX "decoder.layers.%d.encoder_attn_layer_norm", i);
	GROMA_TRY(bind_norm(s, w, &l->cross_norm_w, &l->cross_norm_b, d, n));
	snprintf(n, sizeof(n), PFX "decoder.layers.%d.fc1", i);
	GROMA_TRY(bind_linear(s, w, &l->fc1_w, &l->fc1_b, c->decoder_ffn, d, n));
	snprintf(n, sizeof(n), PFX "decoder.layers.%d.fc2", i);
	GROMA_TRY(bind_linear(s, w, &l->fc2_w, &l->fc2_b, d, c->decoder_ffn, n));
	snprintf(n, sizeof(n), PFX "decoder.layers.%d.final_layer_norm", i);
	GROMA_TRY(bind_norm(s, w, &l->final_norm_w, &l->final_norm_b, d, n));
	snprintf(n, sizeof(n), PFX "class_embed_coco.%d", i);
	GROMA_TRY(bind_linear(s, w, &l->coco_w, &l->coco_b, 1, d, n));
	snprintf(n, sizeof(n), PFX "class_embed_sa1b.%d", i);
	GROMA_TRY(bind_linear(s, w, &l->sa1b_w, &l->sa1b_b, 1, d, n));
	GROMA_TRY(bind_box(s, w, &l->box, d, c->bbox_hidden, i));
	return groma_ok();
}

/* Binds every weight of the proposer; see proposer.h. */
groma_status
groma_proposer_build(groma_proposer *p, const groma_proposer_config *cfg,
					 const groma_weight_source *src, groma_arena *weights)
{
	int64_t		d = cfg->d_model;

	memset(p, 0, sizeof(*p));
	if (cfg->encoder_layers < 1 || cfg->encoder_layers > GROMA_PROPOSER_MAX_LAYERS ||
		cfg->decoder_layers < 1 || cfg->decoder_layers > GROMA_PROPOSER_MAX_LAYERS ||
		cfg->encoder_heads < 1 || cfg->decoder_heads < 1 || d % cfg->encoder_heads != 0 ||
		d % cfg->decoder_heads != 0 || d % 2 != 0 || cfg->num_queries < 1)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "proposer: unsupported configuration (d_model %d, %d/%d layers)",
						   cfg->d_model, cfg->encoder_layers, cfg->decoder_layers);
	p->cfg = *cfg;
	GROMA_TRY(groma_bind(src, weights, &p->proj_w, 4, (int64_t[]) {d, cfg->in_channels, 1, 1}, "perceiver.input_proj.0.0.weight"));
	GROMA_TRY(groma_bind(src, weights, &p->proj_b, 1, (int64_t[]) {d}, "perceiver.input_proj.0.0.bias"));
	GROMA_TRY(bind_norm(src, weights, &p->proj_norm_w, &p->proj_norm_b, d, "perceiver.input_proj.0.1"));
	GROMA_TRY(groma_bind(src, weights, &p->level_embed, 2, (int64_t[]) {1, d}, PFX "level_embed"));
	for (int i = 0; i < cfg->encoder_layers; i++)
		GROMA_TRY(bind_encoder_layer(src, weights, &p->enc[i], cfg, i));
	for (int i = 0; i < cfg->decoder_layers; i++)
		GROMA_TRY(bind_decoder_layer(src, weights, &p->dec[i], cfg, i));
	GROMA_TRY(bind_linear(src, weights, &p->enc_output_w, &p->enc_output_b, d, d, PFX "enc_output"));
	GROMA_TRY(bind_norm(src, weights, &p->enc_norm_w, &p->enc_norm_b, d, PFX "enc_output_norm"));
	GROMA_TRY(bind_linear(src, weights, &p->pos_trans_w, &p->pos_trans_b, 2 * d, 2 * d, PFX "pos_trans"));
	GROMA_TRY(bind_norm(src, weights, &p->pos_norm_w, &p->pos_norm_b, 2 * d, PFX "pos_trans_norm"));
	GROMA_TRY(groma_bind(src, weights, &p->query_embed, 2, (int64_t[]) {cfg->num_queries, d},
						 PFX "query_position_embeddings.weight"));
	GROMA_TRY(bind_linear(src, weights, &p->class_enc_w, &p->class_enc_b, 1, d, PFX "class_embed_enc"));
	GROMA_TRY(bind_box(src, weights, &p->box_enc, d, cfg->bbox_hidden, cfg->decoder_layers));
	p->tables.n = 0;
	if (cfg->grid > 0 && weights != NULL)
		GROMA_TRY(groma_proposer_make_tables(p, cfg->grid, weights, &p->tables));
	return groma_ok();
}
