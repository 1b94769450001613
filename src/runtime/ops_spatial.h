/*
 * ops_spatial.h - the spatial op API: resizing, multi-scale deformable
 * attention and the Deformable-DETR geometry helpers, RoIAlign, NMS, top-k
 * and inverse sigmoid.
 *
 * Conventions as in ops.h: inputs are contiguous f32 CPU tensors unless
 * stated; outputs are preallocated by the caller with the documented shape;
 * an op checks dtypes and shapes and returns GROMA_ERR_INVALID_ARGUMENT
 * naming them.  Outputs never alias inputs unless a comment says so.  Batch
 * is the leading dimension.  Each op reproduces the PyTorch function named in
 * its comment (GROMA.md steps 2, 4, 5 and 6 say where the model uses it).
 */
#ifndef GROMA_OPS_SPATIAL_H
#define GROMA_OPS_SPATIAL_H

#include <stdbool.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

/* ---- resizing (op_resize_cpu.c) ------------------------------------------ */

/*
 * y[B, C, Ho, Wo] = F.interpolate(x[B, C, H, W], size=(Ho, Wo),
 * mode='bilinear', align_corners) without antialias; same-size axes copy.
 */
groma_status groma_resize_bilinear(const groma_tensor *x, bool align_corners, groma_tensor *y);

/*
 * y[B, C, Ho, Wo] = F.interpolate(x[B, C, H, W], scale_factor=(scale_h,
 * scale_w), mode='bicubic', align_corners=False): cubic A = -0.75, source
 * coordinate (dst + 0.5) / scale - 0.5 from the GIVEN scale (transformers
 * 4.39's DINOv2 rule, scale 32.1/37), taps clamped to the border.  Ho must
 * be floor(H · scale_h) and Wo floor(W · scale_w), as PyTorch computes them.
 */
groma_status groma_resize_bicubic_scale(const groma_tensor *x, double scale_h, double scale_w,
										groma_tensor *y);

/*
 * y[B, C, Ho, Wo] = F.interpolate(x, size=(Ho, Wo), mode='bicubic',
 * align_corners=False): the size rule of newer transformers, scale = H / Ho.
 */
groma_status groma_resize_bicubic_size(const groma_tensor *x, groma_tensor *y);

/* ---- deformable attention and DETR geometry (op_deform_attn_cpu.c) ------- */

/*
 * out[B, Q, H·Dh] = multi-scale deformable attention sampling as in
 * Deformable-DETR's ms_deform_attn_core_pytorch: for every query and head,
 * the sum over levels l and points p of attention_weights[b, q, h, l·P + p]
 * times value level l (rows level_start[l] .. + h_l·w_l of value[B, S, H,
 * Dh], row-major h_l × w_l) sampled bilinearly at sampling_locations[b, q,
 * h, (l·P + p)·2 + {0: x, 1: y}] in [0, 1] (pixel = loc · size - 0.5,
 * grid_sample with zero padding and align_corners=False: taps outside the
 * map contribute 0).  spatial_shapes is [n_levels][2] (h, w) and level_start
 * [n_levels]; every level must lie inside S.
 */
groma_status groma_ms_deform_attn(const groma_tensor *value, const int64_t *spatial_shapes,
								  const int64_t *level_start, int n_levels, int n_points,
								  const groma_tensor *sampling_locations,
								  const groma_tensor *attention_weights, groma_tensor *out);

/*
 * Deformable-DETR's sampling locations for one level, in place of the
 * offsets: loc[B, Q, H, P·2] (contiguous) holds offsets on entry.  With
 * 2-d references ref[B, Q, 2] (x, y): loc = ref + offset / (map_w, map_h);
 * with 4-d boxes ref[B, Q, 4] (cx, cy, w, h): loc = ref.xy + offset /
 * points · ref.wh · 0.5, evaluated in that order (the GPU rounds the same).
 * ref may be strided.
 */
groma_status groma_deform_locations(const groma_tensor *ref, int64_t map_h, int64_t map_w, int points,
									groma_tensor *loc);

/* The argument checks of groma_deform_locations, shared with its GPU twin. */
groma_status groma_deform_locations_check(const groma_tensor *ref, int64_t map_h, int64_t map_w, int points,
										  const groma_tensor *loc);

/*
 * out[N, C] = value[C, H, W] sampled at loc[N, 2] ((x, y) in [0, 1]) with
 * the same bilinear, zero-padded rule as groma_ms_deform_attn (one level,
 * one head, weight 1): F.grid_sample(value, 2·loc - 1, align_corners=False).
 */
groma_status groma_grid_sample_points(const groma_tensor *value, const groma_tensor *loc,
									  groma_tensor *out);

/*
 * out[d_model, h, w] = DETR's sine position embedding of an all-valid h × w
 * mask (transformers' DeformableDetrSinePositionEmbedding with
 * embedding_dim = d_model / 2, normalize=True, scale 2π, temperature 10000,
 * eps 1e-6): channels [0, d/2) encode y, [d/2, d) encode x, each as sin on
 * even and cos on odd channels of (cumsum - 0.5) / (last + eps) · 2π /
 * 10000^(2·floor(i/2)/(d/2)).  d_model must be even and positive.
 */
groma_status groma_sine_position_embedding(int h, int w, int d_model, groma_tensor *out);

/*
 * out[h·w, 2] = the encoder reference points of one level with no padding:
 * pixel centres ((x + 0.5) / w, (y + 0.5) / h), row-major.
 */
groma_status groma_encoder_reference_points(int h, int w, groma_tensor *out);

/*
 * out[h·w, 4] = two-stage output proposals of one level with no padding:
 * logit of (cx, cy, s, s) with (cx, cy) the pixel centre and s = 0.05 ·
 * 2^level, as gen_encoder_output_proposals computes them; a proposal with
 * any coordinate outside (0.01, 0.99) is +inf in every coordinate and gets
 * valid[i] = 0 (valid[h·w] may be NULL; the model zeroes those queries).
 */
groma_status groma_output_proposals(int h, int w, int level, groma_tensor *out, uint8_t *valid);

/* ---- RoIAlign (op_roi_align_cpu.c) --------------------------------------- */

/*
 * out[M, C, oh, ow] = torchvision.ops.roi_align(feat[B, C, H, W], rois[M, 5]
 * as (batch_idx, x1, y1, x2, y2), (oh, ow), spatial_scale, sampling_ratio,
 * aligned), average pooling: aligned subtracts 0.5 pixel, otherwise roi
 * sizes are clamped to >= 1; reversed (negative-size), degenerate, outside
 * and huge boxes are allowed; sampling_ratio <= 0 samples ceil(roi_size /
 * out) points per bin; samples with y < -1, y > H, x < -1 or x > W read 0,
 * others clamp to the border; each bin is the sum over its grid divided by
 * max(grid count, 1).  A batch index that is not an integer in [0, B) or a
 * non-finite coordinate is an error, and so is an adaptive grid over
 * GROMA_ROI_ALIGN_MAX_GRID samples per bin side.
 */
#define GROMA_ROI_ALIGN_MAX_GRID 128
groma_status groma_roi_align(const groma_tensor *feat, const groma_tensor *rois, float spatial_scale,
							 int sampling_ratio, bool aligned, groma_tensor *out);

/* ---- NMS, top-k, inverse sigmoid (op_nms_topk_cpu.c) --------------------- */

/*
 * Class-agnostic greedy NMS as mmcv.ops.nms (offset 0) runs it in GROMA.md
 * step 5: candidates are boxes[N, 4] (x1, y1, x2, y2) with scores[N] >
 * score_threshold (strict, in float; a threshold <= 0 filters nothing, as
 * mmcv does, but NaN scores are never candidates), visited in descending
 * score order with ties by lower index; a candidate is dropped when IoU =
 * inter / (area_i + area_j - inter) with an already kept box is >
 * iou_threshold, where area = (x2 - x1)·(y2 - y1) is not clamped (a
 * reversed box has a positive area) and inter = max(0, min x2 - max x1) ·
 * max(0, min y2 - max y1).  Writes the kept indices in score order to
 * keep[N] and their count (at most max_num when max_num > 0) to *n_keep.
 * N may be 0.
 */
groma_status groma_nms(const groma_tensor *boxes, const groma_tensor *scores, float iou_threshold,
					   float score_threshold, int max_num, int64_t *keep, int *n_keep);

/*
 * The k largest entries of x[N] in descending order, ties by lower index
 * (NaN ranks above every number, as torch.topk does): indices[k] and
 * values[k] (values may be NULL).  k must be in [0, N].
 */
groma_status groma_topk(const groma_tensor *x, int k, int64_t *indices, float *values);

/*
 * indices[B, K] (i32) = groma_topk of every row of x[B, N], on x's device
 * (K at most 4096).
 */
groma_status groma_topk_rows(const groma_tensor *x, int k, groma_tensor *indices);

/*
 * The two-stage proposer's queries from the proposals indices[B, K] (i32)
 * picks out of coords[B, N, 4] (box logits): ref[B, K, 4] = their sigmoid,
 * pos[B, K, 4F] = for each coordinate c, F features sin/cos(sigmoid(c) ·
 * 2π / 10000^(2·floor(i/2)/F)) interleaved (transformers'
 * get_proposal_pos_embed with num_pos_feats = F), on coords' device.
 */
groma_status groma_proposal_queries(const groma_tensor *coords, const groma_tensor *indices, groma_tensor *ref,
									groma_tensor *pos);

/* The argument checks of groma_topk_rows and groma_proposal_queries, shared with the GPU's entry points. */
groma_status groma_topk_rows_check(const groma_tensor *x, int k, const groma_tensor *indices);
groma_status groma_proposal_queries_check(const groma_tensor *coords, const groma_tensor *indices,
										  const groma_tensor *ref, const groma_tensor *pos);

/*
 * y = log(max(x', eps) / max(1 - x', eps)) with x' = x clamped to [0, 1]
 * (transformers' inverse_sigmoid); NaN stays NaN; any shape; y may be x.
 */
groma_status groma_inverse_sigmoid(const groma_tensor *x, float eps, groma_tensor *y);

#endif							/* GROMA_OPS_SPATIAL_H */
