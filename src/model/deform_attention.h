/*
 * deform_attention.h - one multi-scale deformable attention block
 * (transformers' DeformableDetrMultiscaleDeformableAttention) over a single
 * feature level, with 2-d (encoder) or 4-d (decoder) reference points.
 */
#ifndef GROMA_DEFORM_ATTENTION_H
#define GROMA_DEFORM_ATTENTION_H

#include "proposer.h"

/*
 * out[B, Q, d] = output_proj(sample(value_proj(input), query)) where
 * query[B, Q, d] already includes its position embedding, input[B, S, d] is
 * the n_h × n_w map the block attends to (S = n_h·n_w), and ref[B, Q, 2|4]
 * are reference points: (x, y) — locations are ref + offset / (n_w, n_h) —
 * or boxes (cx, cy, w, h) — locations are ref.xy + offset / P · ref.wh / 2.
 */
groma_status groma_msda_forward(const groma_msda *a, const groma_tensor *query,
								const groma_tensor *input, int64_t n_h, int64_t n_w,
								const groma_tensor *ref, groma_arena *act, groma_tensor *out);

#endif							/* GROMA_DEFORM_ATTENTION_H */
