/*
 * ops.h - the dense op API (GEMM-based ops, norms, activations, attention,
 * rotary, embedding, elementwise).  Spatial ops (resize, deformable
 * attention, RoIAlign, NMS, top-k) are in ops_spatial.h.
 *
 * Conventions: inputs are f32 unless stated; outputs are preallocated by the
 * caller with the documented shape; an op checks dtypes and shapes and
 * returns GROMA_ERR_INVALID_ARGUMENT naming them; outputs may alias inputs
 * only where a comment says so.  Batch is the leading dimension.  This is the
 * CPU implementation (OpenBLAS for GEMM, plain C elsewhere); the CUDA one will
 * sit behind the same names.
 */
#ifndef GROMA_OPS_H
#define GROMA_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "status.h"
#include "tensor.h"

/*
 * y[..., N] = x[..., K] · w[N, K]^T (+ b[N]); x and y contiguous f32, b may
 * be NULL.  w may be bf16 or f16: the GPU then multiplies in that type on
 * tensor cores (x rounded to it, f32 accumulation); the CPU widens w per
 * call (a reference, not a fast path).  w may be i8 with row scales
 * (weight-only int8): a few rows of x are multiplied by the int8 values
 * directly on the GPU; more rows, and the CPU, dequantize w in blocks first.
 */
groma_status groma_linear(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b,
						  groma_tensor *y);

/*
 * y[i] = x · w[i]ᵀ (+ b[i]) for i < count (at most 4): the linears of
 * several weights of one shape and dtype on the same input (q, k and v;
 * gate and up).  b is NULL (no biases) or count entries, each NULL or
 * [N].  On the GPU a few rows of x take one launch for all, and more rows
 * round x to 16 bits once for all 16-bit (or i8) weights.
 */
groma_status groma_linear_many(const groma_tensor *x, int count, const groma_tensor *const *w,
							   const groma_tensor *const *b, groma_tensor *const *y);

/*
 * gate = silu(x · w_gateᵀ) ⊙ (x · w_upᵀ), LLaMA's MLP before its down
 * projection, for w_gate and w_up of one shape and dtype; up ([..., N]
 * like gate) is a work buffer whose contents are unspecified afterwards.
 * On the GPU a few rows with bf16 or i8 weights take one GEMV launch that
 * applies SiLU·mul as it writes (the bits of linear_many then silu_mul);
 * otherwise the two linears and silu_mul, as on the CPU.
 */
groma_status groma_linear_swiglu(const groma_tensor *x, const groma_tensor *w_gate, const groma_tensor *w_up,
								 groma_tensor *gate, groma_tensor *up);

/*
 * c[Bt, M, N] = alpha · op(a) · op(b), where op(a) is a[Bt, M, K] or, with
 * trans_a, a[Bt, K, M] transposed (likewise b: [Bt, K, N] or [Bt, N, K]).
 * 2-d operands are a batch of one.  Each operand's last dimension must be
 * contiguous; batch and row strides may be anything (views of heads work).
 */
groma_status groma_matmul(const groma_tensor *a, bool trans_a, const groma_tensor *b, bool trans_b,
						  float alpha, groma_tensor *c);

/*
 * y[B, O, Ho, Wo] = conv2d(x[B, C, H, W], w[O, C, kh, kw]) (+ b[O]) with
 * square stride and zero padding: Ho = (H + 2·pad - kh) / stride + 1.  The
 * working buffers (im2col, or on the GPU the shifted copies of a stride-1
 * convolution by kernel rows) come from scratch, released before returning.
 */
groma_status groma_conv2d(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b,
						  int stride, int padding, groma_arena *scratch, groma_tensor *y);

/* u[36, O, C] = the Winograd F(4x4, 3x3) transform G·g·Gᵀ of 3x3 weights w[O, C, 3, 3] (CPU). */
groma_status groma_winograd_weights(const groma_tensor *w, groma_tensor *u);

/*
 * y[B, O, H, W] = conv2d(x[B, C, H, W], w) (+ b[O]) with stride 1 and
 * padding 1, from u = groma_winograd_weights(w): a quarter of the direct
 * multiply-adds, rounding differs from groma_conv2d (CPU, contiguous).
 */
groma_status groma_conv3x3_winograd(const groma_tensor *x, const groma_tensor *u, const groma_tensor *b,
									groma_arena *scratch, groma_tensor *y);

/*
 * y = conv2d(x, w) (+ b) with stride 1 and padding 1, the way x's device
 * does it best: Winograd from u when u holds groma_winograd_weights(w)
 * (u->data not NULL) and x is in host memory, else groma_conv2d.  Model
 * code calls this without asking where x lives.
 */
groma_status groma_conv3x3(const groma_tensor *x, const groma_tensor *w, const groma_tensor *u,
						   const groma_tensor *b, groma_arena *scratch, groma_tensor *y);

/* y = LayerNorm over the last dimension of x[..., D] with w[D], b[D] (b may be NULL); y may be x. */
groma_status groma_layer_norm(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b,
							  float eps, groma_tensor *y);

/* y[B, C, H, W] = LayerNorm over channels at every pixel of x[B, C, H, W]; y may be x. */
groma_status groma_layer_norm_channels(const groma_tensor *x, const groma_tensor *w,
									   const groma_tensor *b, float eps, groma_tensor *y);

/* y[B, C, H, W] = GroupNorm(groups) of x with per-channel w[C], b[C]; C % groups == 0; y may be x. */
groma_status groma_group_norm(const groma_tensor *x, int groups, const groma_tensor *w,
							  const groma_tensor *b, float eps, groma_tensor *y);

/* groma_group_norm, then ReLU of every output in the same pass (the region encoder's fuse blocks); y may be x. */
groma_status groma_group_norm_relu(const groma_tensor *x, int groups, const groma_tensor *w,
								   const groma_tensor *b, float eps, groma_tensor *y);

/* y = x / sqrt(mean(x²) + eps) · w over the last dimension of x[..., D] (LLaMA RMSNorm); y may be x. */
groma_status groma_rms_norm(const groma_tensor *x, const groma_tensor *w, float eps, groma_tensor *y);

/*
 * x += delta, then y = RMSNorm(x) · w over the last dimension (a residual
 * add and the next norm in one pass, as groma_add then groma_rms_norm
 * compute them): x, delta and y are contiguous f32 [..., D] of one shape,
 * y distinct from x.
 */
groma_status groma_add_rms_norm(groma_tensor *x, const groma_tensor *delta, const groma_tensor *w, float eps,
								groma_tensor *y);

/* Elementwise activations over contiguous tensors of equal shape; y may be x. */
groma_status groma_gelu(const groma_tensor *x, groma_tensor *y);	/* exact erf form */
groma_status groma_relu(const groma_tensor *x, groma_tensor *y);
groma_status groma_silu(const groma_tensor *x, groma_tensor *y);
groma_status groma_sigmoid(const groma_tensor *x, groma_tensor *y);

/* y = silu(gate) · up elementwise (LLaMA's MLP gate), as groma_silu then groma_mul compute it; y may be gate or up. */
groma_status groma_silu_mul(const groma_tensor *gate, const groma_tensor *up, groma_tensor *y);

/*
 * The greedy pick of each row of a[R, Na] followed by b[R, Nb] (b may be
 * NULL): idx[r] (i32 [R], on a's device) gets the index, in the
 * concatenated row, of the first largest value (a NaN counts as the largest
 * and the first NaN wins, as torch.argmax).  On the device the rows are
 * reduced there and 4 bytes a row are left to download.
 */
groma_status groma_argmax_rows(const groma_tensor *a, const groma_tensor *b, groma_tensor *idx);

/* Fails unless groma_argmax_rows' operands fit (the CUDA entry shares the check). */
groma_status groma_argmax_rows_check(const groma_tensor *a, const groma_tensor *b, const groma_tensor *idx);

/* y = softmax over the last dimension of x[..., N]; y may be x. */
groma_status groma_softmax(const groma_tensor *x, groma_tensor *y);

/*
 * out[B, H, Tq, D] = softmax(scale · q · kᵀ (+ causal mask)) · v for
 * q[B, H, Tq, D], k and v [B, H, Tk, D] (any strides with contiguous last
 * dimension, so head views of [B, T, H·D] buffers and KV-cache views work).
 * With causal, query i sits at absolute position q_offset + i and sees keys
 * j <= q_offset + i (a KV cache passes its first q_offset + Tq rows).  Scores
 * are computed a block of queries at a time from scratch: the full
 * [Tq, Tk] matrix is never held for long prompts.  q and out are f32; k
 * and v are f32, or both bf16 or f16 (a 16-bit KV cache): the CPU widens
 * one head at a time into scratch (exactly) and computes in f32; on the
 * GPU the f32 kernels widen each value as they load it.
 */
groma_status groma_attention(const groma_tensor *q, const groma_tensor *k, const groma_tensor *v,
							 float scale, bool causal, int64_t q_offset, groma_arena *scratch,
							 groma_tensor *out);

/*
 * groma_attention with its two products in compute on the GPU (bf16 or
 * f16: q, k, v and the probabilities rounded to it on tensor cores, f32
 * scores, softmax and outputs) when it takes the GEMM path (several
 * queries, scores that fit scratch, and k and v f32 or already of the
 * compute type, which the GEMMs then read in place) or, for bf16 when
 * the scores do not fit, the flash kernel (which rounds k and v to bf16,
 * an f16 cache included); f32 is groma_attention, and the CPU always
 * computes in f32 (a reference, as linear with 16-bit weights).
 */
groma_status groma_attention_in(groma_dtype compute, const groma_tensor *q, const groma_tensor *k,
								const groma_tensor *v, float scale, bool causal, int64_t q_offset,
								groma_arena *scratch, groma_tensor *out);

/* The compute type for attention next to weight w: bf16 or f16 as w (bf16 for i8 weights), else f32. */
groma_dtype groma_compute_dtype(const groma_tensor *w);

/*
 * One decode token of each of n sequences at once (a batched decode step's
 * attention in one decoder layer): row b of q, k and v [n, H·Dh] is
 * sequence b's new token, k_cache[b] and v_cache[b] [1, H, cap, Dh] are its
 * caches of this layer and positions[b] (i32 [n] on q's device, each
 * below cap) the position the token takes.  Rotates q (in place) and k (RoPE, theta), writes k and v at that
 * position, and ctx[n, H·Dh] = causal attention of each q row over
 * positions [0, positions[b]] of its own caches (scale).  The caches are
 * f32, bf16 or f16 (all of one type; 16-bit ones store k and v rounded to
 * nearest even, as groma_copy does).  The CPU runs each
 * row as groma_rope, groma_copy and groma_attention (bit-equal to a
 * sequence alone) and fails on a position outside its cache; a device
 * runs all rows in three launches (RoPE and the cache writes; attention
 * with each cache's keys split over blocks, as many as its size asks, so
 * a row's bits do not depend on the others; the splits' combination), its
 * cache pointers passed by value and the positions read where they live
 * (so a recorded step replays with the positions of the day: see
 * groma_graph), the splits' partial results in scratch (fewer rows a
 * launch when it has no room for all, one block per head when not even
 * one row's fit), and gives a row whose position is outside its cache
 * zeros, writing nothing into its cache (the caller checks).  k may be
 * left rotated or not.
 */
groma_status groma_attention_decode_rows(groma_tensor *q, groma_tensor *k, const groma_tensor *v, int64_t heads,
										 groma_tensor *const *k_cache, groma_tensor *const *v_cache,
										 const groma_tensor *positions, float theta, float scale, groma_arena *scratch,
										 groma_tensor *ctx);

/*
 * Rotary position embedding in LLaMA's layout (rotate_half: dimension i
 * pairs with i + D/2) on x[B, T, H, D] in place, token t at position
 * positions[t] (or start_pos + t when positions is NULL); inv_freq_i =
 * theta^(-2i/D) computed as transformers does.
 */
groma_status groma_rope(groma_tensor *x, const int64_t *positions, int64_t start_pos, float theta);

/* RoPE's inverse frequency of pair i of a head of dim: transformers' 1 / theta^(2i/D), computed in double, as float32. */
float		groma_rope_inv_freq(float theta, int64_t i, int64_t dim);

/* y[T, D] = table[ids[t], :] for ids (i32 or i64) [T] and an f32/bf16/f16 table[V, D]; ids checked. */
groma_status groma_embedding(const groma_tensor *ids, const groma_tensor *table, groma_tensor *y);

/*
 * y = a + b, a · b elementwise.  b may have fewer dimensions or size-1
 * dimensions (broadcast, aligned to the right); a and y have y's shape; y
 * may be a.
 */
groma_status groma_add(const groma_tensor *a, const groma_tensor *b, groma_tensor *y);
groma_status groma_mul(const groma_tensor *a, const groma_tensor *b, groma_tensor *y);

/* y = x · s + t elementwise; y may be x. */
groma_status groma_scale(const groma_tensor *x, float s, float t, groma_tensor *y);

/* t = v everywhere (f32, any strides; contiguous on the accelerator). */
groma_status groma_fill(groma_tensor *t, float v);

/*
 * t[i] = uniform in [-scale, scale), from a hash of (seed, i): the same
 * values on every device and thread count (contiguous f32).  For random
 * weights in benchmarks.
 */
groma_status groma_fill_random(groma_tensor *t, uint64_t seed, float scale);

/* Waits until the work queued on device has finished (nothing to wait for on the CPU). */
groma_status groma_synchronize(groma_device device);

/*
 * Recorded device work (a CUDA graph).  Between groma_graph_begin and
 * groma_graph_end the ops called on device tensors are recorded, not run:
 * only device work may be queued then (no upload, download or wait; such a
 * call fails and spoils the recording).  groma_graph_replay runs the
 * recording again with the arguments it was recorded with (pointers,
 * shapes, scalars), reading whatever device memory holds at that time, in
 * one launch.  A recording goes stale when the backend moves one of its
 * own buffers (groma_graph_current turns false); replaying a stale one
 * fails.  The CPU records nothing (GROMA_ERR_UNSUPPORTED), and neither
 * does a GPU timing each op (GROMA_CUDA_PROFILE).
 */
typedef struct groma_graph groma_graph;

/* Starts recording the ops queued on device. */
groma_status groma_graph_begin(groma_device device);

/*
 * Ends the recording begun on device: *graph gets it, or NULL with the
 * device's reason when a call during the recording spoiled it (nothing
 * recorded has run; the device is usable again either way).
 */
groma_status groma_graph_end(groma_device device, groma_graph **graph);

/* Runs a recording again; see groma_graph_begin. */
groma_status groma_graph_replay(const groma_graph *graph);

/* False once the recording is stale (see groma_graph_begin). */
bool		groma_graph_current(const groma_graph *graph);

/* Frees a recording; safe on NULL. */
void		groma_graph_free(groma_graph *graph);

/* Copies numel(t) floats (or i32 values) from host memory into the contiguous tensor t, wherever t lives. */
groma_status groma_upload(const float *host, groma_tensor *t);

/* Copies the contiguous f32 (or i32) tensor t, wherever it lives, into host memory. */
groma_status groma_download(const groma_tensor *t, float *host);

/* Computes a tensor's values on the host: fn fills `host`, shaped like the destination. */
typedef groma_status (*groma_host_fill_fn) (void *ctx, groma_tensor *host);

/*
 * Runs fn on dst itself when dst is host memory, else on a temporary host
 * tensor of dst's shape that is then uploaded (dst contiguous).  Model code
 * uses it for small tables built on the CPU (coordinates, rois, masks); on
 * the accelerator each use is a synchronising copy, so it is kept for small
 * data.
 */
groma_status groma_fill_from_host(groma_tensor *dst, groma_host_fill_fn fn, void *ctx);

/*
 * *host = a contiguous host tensor with t's values: t itself when it is
 * contiguous host memory (*owned = NULL), else a copy in *owned, which the
 * caller frees.
 */
groma_status groma_host_image(const groma_tensor *t, groma_tensor *host, float **owned);

/*
 * Copies src (any strides) into dst of the same shape (any strides): makes
 * permuted views contiguous.  f32, bf16 and f16 on either side, converted
 * (rounded to nearest even when narrowed); between host and device,
 * contiguous f32 only.
 */
groma_status groma_copy(const groma_tensor *src, groma_tensor *dst);

/* Concatenates n tensors along dim into y (every other dimension equal). */
groma_status groma_concat(const groma_tensor *parts, int n, int dim, groma_tensor *y);

/*
 * Converts f32/bf16/f16 to f32, or f32 to bf16/f16 (contiguous, same shape,
 * both on one device).  f32 to i8 quantizes each index of dim 0 (a row)
 * with one symmetric scale, max |row| / 127, into dst->scale, values
 * rounded to nearest even; i8 to f32 multiplies them back.
 */
groma_status groma_convert(const groma_tensor *src, groma_tensor *dst);

#endif							/* GROMA_OPS_H */
