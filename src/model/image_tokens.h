/*
 * image_tokens.h - image tokens for the language model (GROMA.md step 3):
 * the last DINOv2 layer without CLS as an n×n grid, 2×2 neighbours
 * concatenated along channels, then img_txt_bridge (Linear, GELU, Linear).
 */
#ifndef GROMA_IMAGE_TOKENS_H
#define GROMA_IMAGE_TOKENS_H

#include "../runtime/arena.h"
#include "../runtime/tensor.h"
#include "graph_cache.h"
#include "weight_source.h"

typedef struct groma_bridge
{
	groma_tensor fc1_w;			/* [D, 4C] */
	groma_tensor fc1_b;			/* [D] */
	groma_tensor fc2_w;			/* [D, D] */
	groma_tensor fc2_b;			/* [D] */
	groma_graph_cache *graphs;	/* where passes on the GPU are recorded (borrowed; NULL: none) */
} groma_bridge;

/* Binds img_txt_bridge.{0,2} for vision width c and language width d. */
groma_status groma_bridge_build(groma_bridge *b, int64_t c, int64_t d, const groma_weight_source *src,
								groma_arena *weights);

/*
 * merged[B, (n/2)², 4C] from last[B, 1 + n², C]: token (i, j) concatenates
 * grid cells (2i, 2j), (2i+1, 2j), (2i, 2j+1), (2i+1, 2j+1) in that order.
 */
groma_status groma_merge_neighbours(const groma_tensor *last, groma_tensor *merged);

/* features[B, N, D] = fc2(gelu(fc1(merged[B, N, 4C]))). */
groma_status groma_bridge_forward(const groma_bridge *b, const groma_tensor *merged,
								  groma_arena *act, groma_tensor *features);

/*
 * features[B, (n/2)², D] = the bridge of the merged neighbours of the last
 * DINOv2 state in hidden[L + 1, B, 1 + n², C]; scratch from act (released).
 * On the GPU, with b->graphs, a pass is recorded the second time it comes
 * with the same pointers and replayed after that.
 */
groma_status groma_image_tokens(const groma_bridge *b, const groma_tensor *hidden, groma_arena *act,
								groma_tensor *features);

#endif							/* GROMA_IMAGE_TOKENS_H */
