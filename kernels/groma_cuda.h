/*
 * groma_cuda.h - the CUDA entry points, and nothing else.
 *
 * Each entry point checks every CUDA call and returns a groma_status; none
 * aborts.  Only groma-server and the GPU tests link these; the PostgreSQL
 * backend never initialises CUDA.
 */
#ifndef GROMA_CUDA_H
#define GROMA_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C"
{
#endif

#include "../src/runtime/status.h"

/*
 * Returns the number of usable CUDA devices; when there are none it returns
 * 0 and writes why (the CUDA runtime's own words) into why[0..why_len).
 */
int			groma_cuda_device_count(char *why, size_t why_len);

/*
 * Creates the CUDA context (one stream, one cuBLAS handle) and registers
 * the CUDA ops in groma_cuda_ops, so ops on tensors in device memory run
 * on the GPU.  Fails with GROMA_ERR_DEVICE (the runtime's reason) where no
 * GPU is usable; calling it again is harmless.
 */
groma_status groma_cuda_register(void);

/*
 * True once a sticky CUDA error (illegal address, launch failure, ...) was
 * seen: the context is unusable, every later GPU call fails with
 * GROMA_ERR_DEVICE_LOST, and the process should exit so that its
 * supervisor restarts it.  Out-of-memory errors are not sticky: they fail
 * the call with GROMA_ERR_NO_MEMORY and leave the process usable.
 */
bool		groma_cuda_lost(void);

/*
 * The status groma gives the CUDA runtime error code `error` (a cudaError_t)
 * raised by `what`, applying the policy above (a sticky code marks the
 * process lost); exposed so the policy is testable without a GPU.
 */
groma_status groma_cuda_error_status(int error, const char *what);

/*
 * How many device allocations groma's ops and arenas have made so far: a
 * request after the first must not change it (no allocation in the steady
 * state).  groma_cuda_preprocess_rgb (the --decode path, outside the model)
 * allocates its own buffers per call and is not counted.
 */
uint64_t	groma_cuda_allocations(void);

/*
 * How many kernels groma has queued from the host so far, a replayed graph
 * counting once however many kernels it holds (cuBLAS's own kernels are
 * not counted): the launches of a decode step are the difference.
 */
uint64_t	groma_cuda_launch_count(void);

/* The attention kernels groma_cuda_attention can run. */
typedef enum groma_cuda_attention_path
{
	/*
	 * it chooses: for several queries cuBLAS GEMMs when the scratch arena
	 * holds one head's scores (and k and v are f32 or of the compute
	 * type), else for a bf16 compute type the flash kernel, else tiled for
	 * head dimensions up to 128, else per-query; a decode step goes to the
	 * warp-per-key kernel, its keys split over several blocks
	 */
	GROMA_ATTENTION_AUTO = 0,
	GROMA_ATTENTION_PER_QUERY,	/* one block per query, a decode step's keys split over blocks */
	GROMA_ATTENTION_TILED,		/* tiles of 16 queries against staged keys (head dimensions up to 128) */
	GROMA_ATTENTION_PER_QUERY_WHOLE,	/* one block per query, no key splits (the decode baseline) */
	GROMA_ATTENTION_GEMM,		/* cuBLAS GEMMs (fails when the scratch cannot hold one head's scores, or k and v are 16-bit of another type than the compute type) */
	GROMA_ATTENTION_WARP_PER_KEY,	/* a warp per key, a decode step's keys split over blocks */
	GROMA_ATTENTION_FLASH		/* tensor cores, no score matrix (bf16 q, k, v and probabilities; head dim 16..128 by 16) */
} groma_cuda_attention_path;

/* Forces one attention kernel for tests and benchmarks (GROMA_ATTENTION_AUTO: groma_cuda_attention chooses). */
void		groma_cuda_attention_kernel(groma_cuda_attention_path which);

/* True when the flash kernel takes a head dimension (a multiple of 16, at most 128). */
bool		groma_cuda_attention_flash_fits(int64_t dim);

/*
 * Turns off (false) or back on (true, the default) the kernel that a linear
 * with bf16 or i8 weights and at most 8 input rows takes instead of cuBLAS
 * (tests and benchmarks compare the two).
 */
void		groma_cuda_linear_gemv(bool on);

/* The 2-d convolution's method on the GPU (groma_cuda_conv_kernel). */
typedef enum groma_cuda_conv_path
{
	/*
	 * stride-1 kernels larger than 1x1 by kernel rows (kw shifted copies of
	 * the padded input and one cuBLAS GEMM per kernel row) when one image's
	 * copies fit the scratch, everything else by im2col
	 */
	GROMA_CONV_AUTO = 0,
	GROMA_CONV_IM2COL,			/* im2col in chunks of images (or bands of output rows) and cuBLAS */
	GROMA_CONV_IMPLICIT			/* an implicit GEMM on tensor cores, no scratch (bf16 weights; others as auto) */
} groma_cuda_conv_path;

/* Forces one convolution method for tests and benchmarks (GROMA_CONV_AUTO: conv2d chooses). */
void		groma_cuda_conv_kernel(groma_cuda_conv_path which);

/* The most distinct ops a profile tells apart (later ones are not counted). */
#define GROMA_CUDA_PROFILE_MAX_OPS 64

/* One op's GPU time in a profile, summed since the last take or reset. */
typedef struct groma_cuda_op_time
{
	const char *op;				/* the op's name, a static string */
	long		calls;
	double		ms;
} groma_cuda_op_time;

/*
 * With GROMA_CUDA_PROFILE=1 set before groma_cuda_register, every op
 * records its GPU time (CUDA events around its work on the stream).  Take
 * waits for the GPU, copies the totals per op since the last take or reset
 * into ops[0..max) (largest first), starts over, and returns how many it
 * copied; it returns -1 when profiling is off.  Reset discards the totals
 * (nothing when profiling is off).
 */
int			groma_cuda_profile_take(groma_cuda_op_time *ops, int max);
void		groma_cuda_profile_reset(void);

/* The free and total memory of device 0, in bytes. */
groma_status groma_cuda_memory(size_t *free_bytes, size_t *total_bytes);

/* Describes device 0 (name, memory, compute capability, cuBLAS version) into buf. */
groma_status groma_cuda_describe_device(char *buf, size_t buf_len);

/*
 * GPU twin of groma_preprocess_rgb: resizes rgb ([height][width][3]) to
 * 448x448 with PIL's bicubic arithmetic and normalises it.  resized
 * ([448][448][3]) may be NULL; pixel_values is [3][448][448].  Host
 * pointers in and out; the weight tables are built by the CPU code so both
 * devices give identical bytes.
 */
groma_status groma_cuda_preprocess_rgb(const uint8_t *rgb, int width, int height,
									   uint8_t *resized, float *pixel_values);

#ifdef __cplusplus
}
#endif

#endif							/* GROMA_CUDA_H */
