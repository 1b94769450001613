/*
 * region_encoder.h - one language-model token per selected box (GROMA.md
 * step 6): multi-level features from the last three DINOv2 layers, fused by
 * five rounds of channel exchange + Conv3x3/GroupNorm/ReLU, RoIAlign per
 * level, per-level convs summed, flatten + linear, box position embedding,
 * up-projection.  Quirk kept: boxes reach RoIAlign as (cx, cy, w, h)·448 read
 * as corners, with spatial scales twice what the map sizes imply.
 */
#ifndef GROMA_REGION_ENCODER_H
#define GROMA_REGION_ENCODER_H

#include "../runtime/arena.h"
#include "../runtime/tensor.h"
#include "graph_cache.h"
#include "weight_source.h"

#define GROMA_REGION_LEVELS 3
#define GROMA_REGION_FUSE_ROUNDS 5
#define GROMA_REGION_ROI_SIZE 14

typedef struct groma_region_encoder
{
	int64_t		in_channels;	/* DINOv2 width C */
	int64_t		embed;			/* E: fused width (input_conv output) */
	int64_t		pos_hidden;		/* first pos_embedd width (256 real) */
	int64_t		mid;			/* flatten_linear / pos_embedd output (1024 real) */
	int64_t		out;			/* updims output: the LLM width */
	int			groups;			/* GroupNorm groups (64) */
	groma_tensor input_conv_w[GROMA_REGION_LEVELS];	/* [E, C + 2, 1, 1] */
	groma_tensor input_conv_b[GROMA_REGION_LEVELS];	/* [E] */
	groma_tensor fuse_w[GROMA_REGION_FUSE_ROUNDS];	/* [E, E, 3, 3] no bias */
	groma_tensor gn_w[GROMA_REGION_FUSE_ROUNDS];	/* [E] */
	groma_tensor gn_b[GROMA_REGION_FUSE_ROUNDS];	/* [E] */
	groma_tensor pconv_w[GROMA_REGION_LEVELS];	/* [E, E, 3, 3] */
	groma_tensor pconv_b[GROMA_REGION_LEVELS];	/* [E] */
	/* Winograd forms of fuse_w / pconv_w ([36, E, E]) once prepared for the CPU; data NULL until then */
	groma_tensor fuse_u[GROMA_REGION_FUSE_ROUNDS];
	groma_tensor pconv_u[GROMA_REGION_LEVELS];
	groma_tensor pos0_w,
				pos0_b,
				pos_ln0_w,
				pos_ln0_b;		/* [P, 4], [P], [P], [P] */
	groma_tensor pos1_w,
				pos1_b,
				pos_ln1_w,
				pos_ln1_b;		/* [mid, P], [mid], [mid], [mid] */
	groma_tensor flat_w,
				flat_b;			/* [mid, E·14·14], [mid] */
	groma_tensor up_w,
				up_b;			/* [out, mid], [out] */
	groma_tensor coords[GROMA_REGION_LEVELS];	/* [1, 2, s, s] x and y channels per level; data NULL until made */
	groma_graph_cache *graphs;	/* where fusions on the GPU are recorded (borrowed; NULL: none) */
} groma_region_encoder;

/* Bytes groma_region_encoder_prepare_cpu takes from its arena (alignment included). */
size_t		groma_region_encoder_cpu_bytes(const groma_region_encoder *e);

/*
 * Derives the Winograd forms of the 3x3 convolution weights into w, so the
 * CPU runs those convolutions with a quarter of the multiply-adds; needs
 * the weights in CPU memory.  Without it the encoder uses im2col convolutions.
 */
groma_status groma_region_encoder_prepare_cpu(groma_region_encoder *e, groma_arena *w);

/* Fused multi-level maps of a batch: level l is [B, E, n·2^(2-l), n·2^(2-l)]. */
typedef struct groma_region_maps
{
	groma_tensor level[GROMA_REGION_LEVELS];
} groma_region_maps;

/* Binds region_encoder.* for DINOv2 width c, taking the other widths from the weights. */
groma_status groma_region_encoder_build(groma_region_encoder *e, int64_t c,
										const groma_weight_source *src, groma_arena *weights);

/*
 * Makes the coordinate channels every level's input gets for an n x n map
 * (linspace(-1, 1) along x and y) in arena, once with the weights, so a
 * forward pass on such a map uploads none.
 */
groma_status groma_region_encoder_make_coords(groma_region_encoder *e, int64_t n, groma_arena *arena);

/*
 * Builds the fused maps from hidden[L + 1, B, 1 + n², C] (its last three
 * layers) into maps, carved from out_arena; scratch from act.  On the GPU,
 * with e->graphs, a fusion is recorded the second time it comes with the
 * same pointers and replayed after that.
 */
groma_status groma_region_fuse(const groma_region_encoder *e, const groma_tensor *hidden,
							   groma_arena *act, groma_arena *out_arena, groma_region_maps *maps);

/*
 * tokens[N, out] for boxes[N, 4] (normalised cx, cy, w, h) of batch image
 * batch_index, from its fused maps.  probe_rois[N, 5] receives the RoIAlign
 * boxes and probe_flat / probe_pos [N, mid] the flatten_linear and
 * pos_embedd outputs when not NULL (parity tests).  features [N, mid]
 * receives their sum, the region's feature before the up-projection into
 * the language model (groma_regions' embedding), when not NULL.
 */
groma_status groma_region_tokens(const groma_region_encoder *e, const groma_region_maps *maps,
								 int64_t batch_index, const float *boxes, int64_t n,
								 groma_arena *act, groma_tensor *tokens, float *probe_rois,
								 groma_tensor *probe_flat, groma_tensor *probe_pos,
								 groma_tensor *features);

#endif							/* GROMA_REGION_ENCODER_H */
