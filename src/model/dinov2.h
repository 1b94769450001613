/*
 * dinov2.h - the DINOv2 vision encoder (GROMA.md step 2).
 *
 * 14x14 patches of the 448x448 image give 32x32 = 1024 patch tokens plus
 * CLS; the learned 37x37 position grid is resized to 32x32 once, at build
 * time, with transformers 4.39's bicubic rule.  The forward pass keeps every
 * layer's output (hidden_states[0..L]); the final LayerNorm is not applied.
 */
#ifndef GROMA_DINOV2_H
#define GROMA_DINOV2_H

#include "../runtime/arena.h"
#include "../runtime/tensor.h"
#include "graph_cache.h"
#include "weight_source.h"

#define GROMA_DINOV2_MAX_LAYERS 48

typedef struct groma_dinov2_config
{
	int			hidden;			/* C: 1024 real, 128 tiny */
	int			layers;			/* L: 24 real */
	int			heads;			/* 16 real */
	int			mlp_hidden;		/* mlp_ratio · C */
	int			patch;			/* 14 */
	int			pos_grid;		/* image_size / patch of the position table: 518 / 14 = 37 */
	int			image;			/* input side: 448 */
	float		eps;			/* LayerNorm eps: 1e-6 */
} groma_dinov2_config;

/* One transformer layer's weights (f32 views). */
typedef struct groma_dinov2_layer
{
	groma_tensor norm1_w,
				norm1_b;		/* [C] */
	groma_tensor q_w,
				k_w,
				v_w,
				o_w;			/* [C, C] */
	groma_tensor q_b,
				k_b,
				v_b,
				o_b;			/* [C] */
	groma_tensor ls1,
				ls2;			/* [C] LayerScale */
	groma_tensor norm2_w,
				norm2_b;		/* [C] */
	groma_tensor fc1_w;			/* [M, C] */
	groma_tensor fc1_b;			/* [M] */
	groma_tensor fc2_w;			/* [C, M] */
	groma_tensor fc2_b;			/* [C] */
} groma_dinov2_layer;

typedef struct groma_dinov2
{
	groma_dinov2_config cfg;
	groma_tensor patch_w;		/* [C, 3, p, p] */
	groma_tensor patch_b;		/* [C] */
	groma_tensor cls;			/* [1, 1, C] */
	groma_tensor pos;			/* [1 + n·n, C] resized position embeddings, n = image / patch */
	groma_dinov2_layer layer[GROMA_DINOV2_MAX_LAYERS];
	groma_graph_cache *graphs;	/* where forward passes on the GPU are recorded (borrowed; NULL: none) */
} groma_dinov2;

/* Optional per-layer internals of layer 0, for parity tests (NULL when not wanted). */
typedef struct groma_dinov2_probe
{
	groma_tensor *l0_norm1;		/* [B, T, C] */
	groma_tensor *l0_attn_out;	/* [B, T, C] attention output before LayerScale */
	groma_tensor *l0_after_attn;	/* [B, T, C] */
	groma_tensor *l0_mlp_out;	/* [B, T, C] MLP output before LayerScale */
} groma_dinov2_probe;

/* Returns the number of tokens per image: 1 + (image / patch)². */
int			groma_dinov2_tokens(const groma_dinov2_config *cfg);

/*
 * Binds every weight under prefix (e.g. "perceiver.vis_encoder.") and
 * resizes the position table into the weights arena.
 */
groma_status groma_dinov2_build(groma_dinov2 *m, const groma_dinov2_config *cfg,
								const groma_weight_source *src, const char *prefix,
								groma_arena *weights);

/*
 * Runs pixels [B, 3, image, image] through the encoder, writing
 * hidden[L + 1, B, T, C] (allocated by the caller; hidden[0] is the
 * embedding output).  Activations come from act and are released on return.
 * On the GPU, with m->graphs and no probe, a pass is recorded the second
 * time it comes with the same pointers and replayed after that.
 */
groma_status groma_dinov2_forward(const groma_dinov2 *m, const groma_tensor *pixels,
								  groma_arena *act, groma_tensor *hidden,
								  const groma_dinov2_probe *probe);

#endif							/* GROMA_DINOV2_H */
