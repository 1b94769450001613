/*
 * cuda_common.h - what the CUDA op files share: the stream and cuBLAS
 * handle every op runs on, error mapping, and shape helpers.  Internal to
 * kernels/.
 */
#ifndef GROMA_CUDA_COMMON_H
#define GROMA_CUDA_COMMON_H

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

extern "C"
{
#include "../src/runtime/arena.h"
#include "../src/runtime/device_ops.h"
#include "../src/runtime/matrix_view.h"
#include "../src/runtime/ops_spatial.h"
#include "../src/runtime/tensor.h"
}
#include "groma_cuda.h"

/* A device buffer that grows to the largest request and never shrinks (no steady-state allocation). */
typedef struct groma_cuda_buffer
{
	void	   *data;
	size_t		cap;			/* bytes */
} groma_cuda_buffer;

/*
 * Everything the CUDA backend keeps between calls, in one place: the
 * stream and cuBLAS handle every op runs on, whether the device was lost,
 * the scratch buffers ops grow, and the kernel choices tests may force.
 * One per process (groma_cuda_register fills it in).
 */
typedef struct groma_cuda_context
{
	cudaStream_t stream;		/* every op's stream (non-blocking) */
	cublasHandle_t blas;		/* on stream; pedantic math: f32 GEMMs stay f32 */
	bool		lost;			/* a sticky error was seen: unusable until the process restarts */
	groma_cuda_buffer narrow;	/* linear: activations rounded to 16 bits for tensor cores */
	groma_cuda_buffer widened;	/* linear: the bf16 copy of an i8 weight for many rows */
	groma_cuda_buffer splits;	/* attention: the key splits' partial results of a decode query */
	groma_cuda_buffer gn_partials;	/* GroupNorm: partial sums of groups split over blocks */
	groma_cuda_buffer rope_table;	/* RoPE: inv_freq[rope_dim / 2] of rope_theta (groma_cuda_rope_table) */
	float		rope_theta;
	int64_t		rope_dim;
	uint64_t	generation;		/* bumped whenever a buffer moves: recorded graphs of older ones are stale */
	bool		capturing;		/* a graph is being recorded on stream (cuda_graph.cu) */
	uint64_t	launches;		/* kernels and graphs queued from the host (groma_cuda_launch_count) */
	bool		gemv;			/* few-rows linears take the GEMV kernels (groma_cuda_linear_gemv) */
	groma_cuda_conv_path conv_path;	/* groma_cuda_conv_kernel */
	groma_cuda_attention_path attention_path;	/* groma_cuda_attention_kernel */
} groma_cuda_context;

/* The process's context. */
groma_cuda_context *groma_cuda_ctx(void);

/*
 * Returns buf's memory grown to at least bytes (the old contents are not
 * kept), or NULL with *st set, naming what (GROMA_ERR_NO_MEMORY when the
 * GPU is full: the buffer keeps its old size).
 */
void	   *groma_cuda_buffer_reserve(groma_cuda_buffer *buf, size_t bytes, const char *what, groma_status *st);

/*
 * RoPE's inverse frequencies inv_freq[dim / 2] of theta on the device
 * (groma_rope_inv_freq's float32 values, so the kernels need no double
 * pow): uploaded once per (theta, dim), then the same pointer; NULL with
 * *st set on failure.
 */
const float *groma_cuda_rope_table(float theta, int64_t dim, groma_status *st);

/* The stream and cuBLAS handle of this process's context. */
cudaStream_t groma_cuda_stream(void);
cublasHandle_t groma_cuda_blas(void);

/* cudaMalloc, counted by groma_cuda_allocations (every device allocation of the ops goes through it). */
cudaError_t groma_cuda_malloc(void **p, size_t bytes);

/* Returns a status for a CUDA runtime error (GROMA_OK for cudaSuccess). */
groma_status groma_cuda_status(cudaError_t err, const char *what);

/* Returns a status for a cuBLAS error. */
groma_status groma_cublas_status(cublasStatus_t st, const char *what);

/* Counts the kernel just queued and returns its launch error, if any. */
static inline groma_status
groma_cuda_launched(const char *what)
{
	groma_cuda_ctx()->launches++;
	return groma_cuda_status(cudaGetLastError(), what);
}

/* Fills the graph entries of groma_cuda_ops (cuda_graph.cu). */
void		groma_cuda_register_graphs(void);

/* Fails unless t is a contiguous f32 tensor on the device. */
groma_status groma_cuda_check_f32(const char *op, const char *what, const groma_tensor *t);

/* Fails unless w is a contiguous f32, bf16 or f16 CUDA tensor (a weight of linear or conv2d). */
groma_status groma_cuda_check_weight(const char *op, const groma_tensor *w);

/* Fails with GROMA_ERR_LIMIT when a GEMM dimension does not fit cuBLAS's int. */
static inline groma_status
groma_cuda_gemm_dims(const char *op, int64_t m, int64_t n, int64_t k)
{
	if (m > 2147483647 || n > 2147483647 || k > 2147483647)
		return groma_error(GROMA_ERR_LIMIT, "%s: a dimension over 2^31 - 1 (%lld x %lld x %lld)", op, (long long) m,
						   (long long) n, (long long) k);
	return groma_ok();
}

/* True when p is 16-byte aligned (float4 / uint4 loads). */
static inline bool
groma_cuda_aligned16(const void *p)
{
	return ((uintptr_t) p & 15) == 0;
}

/* Blocks of threads for n elements. */
static inline unsigned
groma_cuda_blocks(int64_t n, int threads)
{
	return (unsigned) ((n + threads - 1) / threads);
}


/* ---- op entry points (each in its own .cu), registered by cuda_backend.cu ---- */
extern "C"
{
groma_status groma_cuda_linear(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b, groma_tensor *y);
groma_status groma_cuda_linear_many(const groma_tensor *x, int count, const groma_tensor *const *w,
									const groma_tensor *const *b, groma_tensor *const *y);
groma_status groma_cuda_matmul(const groma_tensor *a, bool trans_a, const groma_tensor *b, bool trans_b,
							   float alpha, groma_tensor *c);
groma_status groma_cuda_unary(groma_unary_kind kind, const groma_tensor *x, groma_tensor *y);
groma_status groma_cuda_silu_mul(const groma_tensor *gate, const groma_tensor *up, groma_tensor *y);
groma_status groma_cuda_linear_swiglu(const groma_tensor *x, const groma_tensor *w_gate, const groma_tensor *w_up,
									  groma_tensor *gate, groma_tensor *up);
groma_status groma_cuda_binary(bool multiply, const groma_tensor *a, const groma_tensor *b, groma_tensor *y);
groma_status groma_cuda_scale(const groma_tensor *x, float s, float t, groma_tensor *y);
groma_status groma_cuda_copy(const groma_tensor *src, groma_tensor *dst);
groma_status groma_cuda_fill(groma_tensor *t, float v);
groma_status groma_cuda_convert(const groma_tensor *src, groma_tensor *dst);
groma_status groma_cuda_convert_int8(const groma_tensor *src, groma_tensor *dst);
groma_status groma_cuda_check_int8_weight(const char *op, const groma_tensor *w);
groma_status groma_cuda_int8_as_bf16(const groma_tensor *w, groma_tensor *wide);
groma_status groma_cuda_fill_random(groma_tensor *t, uint64_t seed, float scale);
groma_status groma_cuda_inverse_sigmoid(const groma_tensor *x, float eps, groma_tensor *y);
groma_status groma_cuda_softmax(const groma_tensor *x, groma_tensor *y);
groma_status groma_cuda_layer_norm(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b, float eps,
								   groma_tensor *y);
groma_status groma_cuda_rms_norm(const groma_tensor *x, const groma_tensor *w, float eps, groma_tensor *y);
groma_status groma_cuda_attention_decode_rows(groma_tensor *q, groma_tensor *k, const groma_tensor *v, int64_t heads,
											  groma_tensor *const *k_cache, groma_tensor *const *v_cache,
											  const groma_tensor *positions, float theta, float scale,
											  groma_arena_ref scratch, groma_tensor *ctx);
groma_status groma_cuda_argmax_rows(const groma_tensor *a, const groma_tensor *b, groma_tensor *idx);
groma_status groma_cuda_add_rms_norm(groma_tensor *x, const groma_tensor *delta, const groma_tensor *w, float eps,
									 groma_tensor *y);
groma_status groma_cuda_rope(groma_tensor *x, const int64_t *positions, int64_t start_pos, float theta);
groma_status groma_cuda_attention(const groma_tensor *q, const groma_tensor *k, const groma_tensor *v, float scale,
								  bool causal, int64_t q_offset, groma_arena_ref scratch, groma_tensor *out);
groma_status groma_cuda_attention_in(groma_dtype compute, const groma_tensor *q, const groma_tensor *k,
									 const groma_tensor *v, float scale, bool causal, int64_t q_offset,
									 groma_arena_ref scratch, groma_tensor *out);
groma_status groma_cuda_attention_gemm(const groma_tensor *q, const groma_tensor *k, const groma_tensor *v, float scale,
									   bool causal, int64_t q_offset, groma_dtype compute, groma_arena_ref scratch,
									   groma_tensor *out, bool *done);
groma_status groma_cuda_attention_decode(const groma_tensor *q, const groma_tensor *k, const groma_tensor *v,
										 float scale, bool causal, int64_t q_offset, int64_t splits, int64_t split_len,
										 float *part, groma_tensor *out);
/* One [B, H, T, D] attention operand: its data, element type (f32; keys and values also bf16 or f16) and strides (elements; D contiguous). */
struct bhtd
{
	const void *data;
	groma_dtype type;
	int64_t		sb,
				sh,
				st;
};

/*
 * out[b·ob + h·oh + d] for b < batch, h < heads from the partial results of
 * key splits, part[batch·heads, splits, D + 2] (each split's max, sum and
 * unnormalised output; an empty split's max is -inf), queued on the stream.
 */
groma_status groma_cuda_attention_combine(const float *part, int64_t splits, float *out, int64_t ob, int64_t oh,
										  int64_t batch, int64_t heads, int64_t dim);
/*
 * The tensor-core attention of ops_attention_flash.cu into out (the shape
 * of q), for operands groma_cuda_attention_in has checked; tk keys.
 */
groma_status groma_cuda_attention_flash(bhtd q, bhtd k, bhtd v, groma_tensor *out, int64_t tk, float scale,
										bool causal, int64_t q_offset);
groma_status groma_cuda_conv2d(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b, int stride,
							   int padding, groma_arena_ref scratch, groma_tensor *y);
/* True when the implicit-GEMM convolution takes weights w (bf16) for an Ho x Wo output. */
bool		groma_cuda_conv_implicit_fits(const groma_tensor *w, int64_t ho, int64_t wo);
/* y = conv2d(x, w) + b (b may be NULL) by the implicit GEMM on tensor cores, for checked operands that fit. */
groma_status groma_cuda_conv_implicit(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b, int stride,
									  int padding, groma_tensor *y);
groma_status groma_cuda_group_norm(const groma_tensor *x, int groups, const groma_tensor *w, const groma_tensor *b,
								   float eps, bool relu, groma_tensor *y);
groma_status groma_cuda_layer_norm_channels(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b,
											float eps, groma_tensor *y);
groma_status groma_cuda_embedding(const groma_tensor *ids, const groma_tensor *table, groma_tensor *y);
groma_status groma_cuda_resize_bilinear(const groma_tensor *x, bool align_corners, groma_tensor *y);
groma_status groma_cuda_ms_deform_attn(const groma_tensor *value, const int64_t *spatial_shapes,
									   const int64_t *level_start, int n_levels, int n_points,
									   const groma_tensor *sampling_locations, const groma_tensor *attention_weights,
									   groma_tensor *out);
groma_status groma_cuda_roi_align(const groma_tensor *feat, const groma_tensor *rois, float spatial_scale,
								  int sampling_ratio, bool aligned, groma_tensor *out);
groma_status groma_cuda_topk_rows(const groma_tensor *x, int k, groma_tensor *indices);
groma_status groma_cuda_proposal_queries(const groma_tensor *coords, const groma_tensor *indices, groma_tensor *ref,
										 groma_tensor *pos);
groma_status groma_cuda_deform_locations(const groma_tensor *ref, int64_t map_h, int64_t map_w, int points,
										 groma_tensor *loc);
}

/* A tensor's shape and strides padded on the left to four dimensions. */
struct groma_dims4
{
	int64_t		shape[4];
	int64_t		stride[4];
};

/* Returns t's shape/strides as four dimensions (leading ones of size 1, stride 0). */
static inline groma_dims4
groma_cuda_dims4(const groma_tensor *t)
{
	groma_dims4 d;

	for (int i = 0; i < 4; i++)
	{
		int			k = i - (4 - t->ndim);

		d.shape[i] = k >= 0 ? t->shape[k] : 1;
		d.stride[i] = k >= 0 ? t->stride[k] : 0;
	}
	return d;
}

/* Returns the offset of element `index` (row-major over shape) under strides. */
__device__ static inline int64_t
groma_offset4(int64_t index, const groma_dims4 &shape_of, const groma_dims4 &strides_of)
{
	int64_t		off = 0;

	for (int i = 3; i >= 0; i--)
	{
		int64_t		coord = index % shape_of.shape[i];

		index /= shape_of.shape[i];
		off += coord * strides_of.stride[i];
	}
	return off;
}

/*
 * groma_offset4 for a launch of at most 2^31 - 1 elements (so every
 * dimension fits 32 bits): 32-bit divisions, several times cheaper on a GPU
 * than 64-bit ones.
 */
__device__ static inline int64_t
groma_offset4_32(unsigned index, const groma_dims4 &shape_of, const groma_dims4 &strides_of)
{
	int64_t		off = 0;

	for (int i = 3; i >= 0; i--)
	{
		unsigned	size = (unsigned) shape_of.shape[i],
					next = index / size;

		off += (int64_t) (index - next * size) * strides_of.stride[i];
		index = next;
	}
	return off;
}

/* The offset of element i of n under strides: 32-bit arithmetic when n allows. */
__device__ static inline int64_t
groma_offset_of(int64_t i, int64_t n, const groma_dims4 &shape_of, const groma_dims4 &strides_of)
{
	return n <= 0x7fffffff ? groma_offset4_32((unsigned) i, shape_of, strides_of)
		: groma_offset4(i, shape_of, strides_of);
}

/* Sum of v over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it. */
__device__ static inline float
groma_block_sum(float v, float *scratch)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	if ((threadIdx.x & 31) == 0)
		scratch[threadIdx.x >> 5] = v;
	__syncthreads();
	v = threadIdx.x < (blockDim.x >> 5) ? scratch[threadIdx.x] : 0.0f;
	if (threadIdx.x < 32)
		for (int o = 16; o > 0; o >>= 1)
			v += __shfl_xor_sync(0xffffffffu, v, o);
	if (threadIdx.x == 0)
		scratch[0] = v;
	__syncthreads();
	v = scratch[0];
	__syncthreads();
	return v;
}

/* Max of v over the block; every thread gets it. */
__device__ static inline float
groma_block_max(float v, float *scratch)
{
	for (int o = 16; o > 0; o >>= 1)
		v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	if ((threadIdx.x & 31) == 0)
		scratch[threadIdx.x >> 5] = v;
	__syncthreads();
	v = threadIdx.x < (blockDim.x >> 5) ? scratch[threadIdx.x] : -INFINITY;
	if (threadIdx.x < 32)
		for (int o = 16; o > 0; o >>= 1)
			v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	if (threadIdx.x == 0)
		scratch[0] = v;
	__syncthreads();
	v = scratch[0];
	__syncthreads();
	return v;
}

/* Element i of p, an f32, bf16 or f16 array (type), as f32. */
__device__ static inline float
groma_load_f32(const void *p, int64_t i, groma_dtype type)
{
	if (type == GROMA_BF16)
		return __bfloat162float(((const __nv_bfloat16 *) p)[i]);
	if (type == GROMA_F16)
		return __half2float(((const __half *) p)[i]);
	return ((const float *) p)[i];
}

/* Element i of p, an f32, bf16 or f16 array (type), = x rounded to nearest even. */
__device__ static inline void
groma_store_f32(void *p, int64_t i, groma_dtype type, float x)
{
	if (type == GROMA_BF16)
		((__nv_bfloat16 *) p)[i] = __float2bfloat16_rn(x);
	else if (type == GROMA_F16)
		((__half *) p)[i] = __float2half_rn(x);
	else
		((float *) p)[i] = x;
}

#endif							/* GROMA_CUDA_COMMON_H */
