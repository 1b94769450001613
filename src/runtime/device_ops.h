/*
 * device_ops.h - the accelerator implementation of the op API, as a table
 * of entry points.  The CPU ops dispatch to it when their tensors live on a
 * CUDA device; kernels/ fills it in (groma_cuda_register) in builds that
 * link CUDA.  Entries left NULL make such calls fail with a clear error, so
 * library code never needs CUDA symbols to link.
 */
#ifndef GROMA_DEVICE_OPS_H
#define GROMA_DEVICE_OPS_H

#include <stdbool.h>
#include <stddef.h>

#include "tensor.h"

/* Scratch memory for ops that need it (a device arena for device ops). */
typedef struct groma_arena *groma_arena_ref;

/* Elementwise functions of one tensor. */
typedef enum groma_unary_kind
{
	GROMA_UNARY_RELU,
	GROMA_UNARY_GELU,
	GROMA_UNARY_SILU,
	GROMA_UNARY_SIGMOID
} groma_unary_kind;

typedef struct groma_device_ops
{
	const char *name;			/* "cuda" once registered */
	/* memory */
	void	   *(*alloc) (size_t bytes);	/* NULL when out of memory */
	void		(*free) (void *ptr);
	groma_status (*to_device) (void *dst, const void *src, size_t bytes);
	groma_status (*to_host) (void *dst, const void *src, size_t bytes);
	groma_status (*synchronize) (void);
	bool		(*lost) (void);	/* true once the device hit a sticky error (restart the process) */
	/* recorded work (groma_graph): begin and end a recording, replay one, ask whether it is current, free it */
	groma_status (*graph_begin) (void);
	groma_status (*graph_end) (void **graph);
	groma_status (*graph_replay) (void *graph);
	bool		(*graph_current) (const void *graph);
	void		(*graph_free) (void *graph);
	/* ops, same contracts as ops.h */
	groma_status (*linear) (const groma_tensor *x, const groma_tensor *w, const groma_tensor *b, groma_tensor *y);
	groma_status (*linear_many) (const groma_tensor *x, int count, const groma_tensor *const *w,
								 const groma_tensor *const *b, groma_tensor *const *y);
	groma_status (*linear_swiglu) (const groma_tensor *x, const groma_tensor *w_gate, const groma_tensor *w_up,
								   groma_tensor *gate, groma_tensor *up);
	groma_status (*matmul) (const groma_tensor *a, bool trans_a, const groma_tensor *b, bool trans_b,
							float alpha, groma_tensor *c);
	groma_status (*unary) (groma_unary_kind kind, const groma_tensor *x, groma_tensor *y);
	groma_status (*binary) (bool multiply, const groma_tensor *a, const groma_tensor *b, groma_tensor *y);
	groma_status (*scale) (const groma_tensor *x, float s, float t, groma_tensor *y);
	groma_status (*softmax) (const groma_tensor *x, groma_tensor *y);
	groma_status (*layer_norm) (const groma_tensor *x, const groma_tensor *w, const groma_tensor *b, float eps,
								groma_tensor *y);
	groma_status (*rms_norm) (const groma_tensor *x, const groma_tensor *w, float eps, groma_tensor *y);
	groma_status (*add_rms_norm) (groma_tensor *x, const groma_tensor *delta, const groma_tensor *w, float eps,
								  groma_tensor *y);
	groma_status (*silu_mul) (const groma_tensor *gate, const groma_tensor *up, groma_tensor *y);
	groma_status (*argmax_rows) (const groma_tensor *a, const groma_tensor *b, groma_tensor *idx);
	groma_status (*attention_decode_rows) (groma_tensor *q, groma_tensor *k, const groma_tensor *v, int64_t heads,
										   groma_tensor *const *k_cache, groma_tensor *const *v_cache,
										   const groma_tensor *positions, float theta, float scale, groma_arena_ref scratch,
										   groma_tensor *ctx);
	groma_status (*rope) (groma_tensor *x, const int64_t *positions, int64_t start_pos, float theta);
	groma_status (*copy) (const groma_tensor *src, groma_tensor *dst);
	groma_status (*fill) (groma_tensor *t, float v);
	groma_status (*fill_random) (groma_tensor *t, uint64_t seed, float scale);
	groma_status (*inverse_sigmoid) (const groma_tensor *x, float eps, groma_tensor *y);
	groma_status (*convert) (const groma_tensor *src, groma_tensor *dst);
	groma_status (*attention) (const groma_tensor *q, const groma_tensor *k, const groma_tensor *v, float scale,
							   bool causal, int64_t q_offset, groma_arena_ref scratch, groma_tensor *out);
	groma_status (*attention_in) (groma_dtype compute, const groma_tensor *q, const groma_tensor *k,
								  const groma_tensor *v, float scale, bool causal, int64_t q_offset,
								  groma_arena_ref scratch, groma_tensor *out);
	groma_status (*conv2d) (const groma_tensor *x, const groma_tensor *w, const groma_tensor *b, int stride,
							int padding, groma_arena_ref scratch, groma_tensor *y);
	groma_status (*group_norm) (const groma_tensor *x, int groups, const groma_tensor *w, const groma_tensor *b,
								float eps, bool relu, groma_tensor *y);
	groma_status (*layer_norm_channels) (const groma_tensor *x, const groma_tensor *w, const groma_tensor *b,
										 float eps, groma_tensor *y);
	groma_status (*embedding) (const groma_tensor *ids, const groma_tensor *table, groma_tensor *y);
	groma_status (*resize_bilinear) (const groma_tensor *x, bool align_corners, groma_tensor *y);
	groma_status (*ms_deform_attn) (const groma_tensor *value, const int64_t *spatial_shapes,
									const int64_t *level_start, int n_levels, int n_points,
									const groma_tensor *sampling_locations, const groma_tensor *attention_weights,
									groma_tensor *out);
	groma_status (*roi_align) (const groma_tensor *feat, const groma_tensor *rois, float spatial_scale,
							   int sampling_ratio, bool aligned, groma_tensor *out);
	groma_status (*topk_rows) (const groma_tensor *x, int k, groma_tensor *indices);
	groma_status (*proposal_queries) (const groma_tensor *coords, const groma_tensor *indices, groma_tensor *ref,
									  groma_tensor *pos);
	groma_status (*deform_locations) (const groma_tensor *ref, int64_t map_h, int64_t map_w, int points,
									  groma_tensor *loc);
} groma_device_ops;

/* The CUDA entry points; all NULL until groma_cuda_register() runs. */
extern groma_device_ops groma_cuda_ops;

/* Returns true when t lives on the accelerator. */
static inline bool
groma_on_device(const groma_tensor *t)
{
	return t != NULL && t->device == GROMA_DEVICE_CUDA;
}

/* Returns the error for an op called on device tensors that no registered backend implements. */
groma_status groma_no_device_op(const char *op);

/* Runs the device entry fn with the arguments that follow, or fails naming op when it is missing. */
#define GROMA_DEVICE_CALL(op, fn, ...) \
	(groma_cuda_ops.fn ? groma_cuda_ops.fn(__VA_ARGS__) : groma_no_device_op(op))

#endif							/* GROMA_DEVICE_OPS_H */
