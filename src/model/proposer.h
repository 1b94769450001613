/*
 * proposer.h - the Deformable-DETR region proposer (GROMA.md step 4).
 *
 * Input: the mean of the last four DINOv2 layers (no CLS) as an n×n map.
 * input_proj (1×1 conv + channel LayerNorm), sine positions + level
 * embedding, a post-norm deformable encoder, two-stage proposals with top-k,
 * then a decoder whose reference points are never updated between layers
 * (Groma's quirk).  Output: normalised (cx, cy, w, h) boxes and fused
 * coco/sa1b scores for every query.
 */
#ifndef GROMA_PROPOSER_H
#define GROMA_PROPOSER_H

#include "../runtime/arena.h"
#include "../runtime/tensor.h"
#include "graph_cache.h"
#include "weight_source.h"

#define GROMA_PROPOSER_MAX_LAYERS 12

typedef struct groma_proposer_config
{
	int			in_channels;	/* DINOv2 width C */
	int			d_model;		/* d: 256 real, 64 tiny */
	int			encoder_layers;
	int			decoder_layers;
	int			encoder_heads;
	int			decoder_heads;
	int			encoder_points;
	int			decoder_points;
	int			encoder_ffn;
	int			decoder_ffn;
	int			num_queries;	/* two_stage_num_proposals: top-k kept */
	int			bbox_hidden;	/* box MLP width, fixed at 256 in the original */
	int			grid;			/* side of the feature map the position tables are built for (0: none) */
} groma_proposer_config;

/* The tables the proposer needs for an n x n feature map, which depend on n only. */
typedef struct groma_proposer_tables
{
	int64_t		n;				/* map side (0: not built) */
	groma_tensor pos;			/* [n², d] sine position embedding + level embedding */
	groma_tensor ref;			/* [n², 2] encoder reference points */
	groma_tensor proposals;		/* [n², 4] proposal logits (inf where invalid) */
} groma_proposer_tables;

/* A multi-scale deformable attention block (one feature level). */
typedef struct groma_msda
{
	groma_tensor offsets_w,
				offsets_b;		/* [H·P·2, d], [H·P·2] */
	groma_tensor weights_w,
				weights_b;		/* [H·P, d], [H·P] */
	groma_tensor value_w,
				value_b;		/* [d, d], [d] */
	groma_tensor out_w,
				out_b;			/* [d, d], [d] */
	int			heads;
	int			points;
} groma_msda;

/* The box head: Linear(d, hid), ReLU, Linear(hid, hid), ReLU, Linear(hid, 4). */
typedef struct groma_box_mlp
{
	groma_tensor w[3];			/* [hid, d], [hid, hid], [4, hid] */
	groma_tensor b[3];
} groma_box_mlp;

typedef struct groma_proposer_encoder_layer
{
	groma_msda	attn;
	groma_tensor attn_norm_w,
				attn_norm_b;	/* [d] */
	groma_tensor fc1_w,
				fc1_b,
				fc2_w,
				fc2_b;			/* [F, d], [F], [d, F], [d] */
	groma_tensor final_norm_w,
				final_norm_b;	/* [d] */
} groma_proposer_encoder_layer;

typedef struct groma_proposer_decoder_layer
{
	groma_tensor q_w,
				q_b,
				k_w,
				k_b,
				v_w,
				v_b,
				o_w,
				o_b;			/* self-attention [d, d], [d] */
	groma_tensor self_norm_w,
				self_norm_b;
	groma_msda	cross;
	groma_tensor cross_norm_w,
				cross_norm_b;
	groma_tensor fc1_w,
				fc1_b,
				fc2_w,
				fc2_b;
	groma_tensor final_norm_w,
				final_norm_b;
	groma_tensor coco_w,
				coco_b,
				sa1b_w,
				sa1b_b;			/* [1, d], [1] class heads of this layer */
	groma_box_mlp box;			/* bbox_embed[layer] */
} groma_proposer_decoder_layer;

typedef struct groma_proposer
{
	groma_proposer_config cfg;
	groma_tensor proj_w,
				proj_b;			/* [d, C, 1, 1], [d] */
	groma_tensor proj_norm_w,
				proj_norm_b;	/* [d] channel LayerNorm, eps 1e-6 */
	groma_tensor level_embed;	/* [1, d] */
	groma_proposer_encoder_layer enc[GROMA_PROPOSER_MAX_LAYERS];
	groma_proposer_decoder_layer dec[GROMA_PROPOSER_MAX_LAYERS];
	groma_tensor enc_output_w,
				enc_output_b,
				enc_norm_w,
				enc_norm_b;		/* [d, d], [d], [d], [d] */
	groma_tensor pos_trans_w,
				pos_trans_b,
				pos_norm_w,
				pos_norm_b;		/* [2d, 2d], [2d], [2d], [2d] */
	groma_tensor query_embed;	/* [K, d] decoder targets */
	groma_tensor class_enc_w,
				class_enc_b;	/* [1, d], [1] */
	groma_box_mlp box_enc;		/* bbox_embed[decoder_layers] */
	groma_proposer_tables tables;	/* for cfg.grid, built with the weights (uploaded once) */
	groma_graph_cache *graphs;	/* where passes on the GPU are recorded (borrowed; NULL: none) */
} groma_proposer;

/* Everything the proposer computes that later steps or parity tests read (batch-first). */
typedef struct groma_proposer_outputs
{
	groma_tensor memory;		/* [B, HW, d] encoder output */
	groma_tensor enc_class;		/* [B, HW] class_embed_enc logits */
	groma_tensor enc_coord_logits;	/* [B, HW, 4] */
	int64_t    *topk;			/* [B·K] proposal indices, descending logit (host memory) */
	groma_tensor topk_rows;		/* [B, K] i32, the same indices where the outputs live */
	groma_tensor init_ref;		/* [B, K, 4] sigmoid of the top-k logits */
	groma_tensor query_pos;		/* [B, K, d] */
	groma_tensor dec_hidden;	/* [L, B, K, d] */
	groma_tensor inter_ref;		/* [L, B, K, 4] */
	groma_tensor logits_coco;	/* [L, B, K] */
	groma_tensor logits_sa1b;	/* [L, B, K] */
	groma_tensor boxes;			/* [L, B, K, 4] box of each decoder layer */
	groma_tensor scores;		/* [B, K] coco^0.4 · sa1b^0.6 of the last layer (host memory) */
} groma_proposer_outputs;

/*
 * Carves the tables for an n x n map from arena and fills them (through
 * host copies: on a device, one upload each); a temporary is given back.
 */
groma_status groma_proposer_make_tables(const groma_proposer *p, int64_t n, groma_arena *arena,
										groma_proposer_tables *t);

/* Binds every weight under "perceiver." and checks widths against cfg; builds the tables for cfg->grid. */
groma_status groma_proposer_build(groma_proposer *p, const groma_proposer_config *cfg,
								  const groma_weight_source *src, groma_arena *weights);

/*
 * Runs the proposer on hidden[L + 1, B, 1 + n², C] (all DINOv2 states; the
 * last four are averaged).  Outputs are carved from out_arena (topk and
 * scores from host, which must be host memory; the same arena on the CPU)
 * and stay valid until it is reset; scratch space comes from act and host
 * and is released.  On the GPU, with p->graphs, the device work of a pass
 * (all but the last three downloads) is recorded the second time it comes
 * with the same pointers and replayed after that.
 */
groma_status groma_proposer_forward(const groma_proposer *p, const groma_tensor *hidden,
									groma_arena *act, groma_arena *out_arena, groma_arena *host,
									groma_proposer_outputs *out);

#endif							/* GROMA_PROPOSER_H */
