/*
 * emu_cuda.h - what a .cu file sees under the CPU emulator: the API of
 * emu_api.h and, in C++, the kernel language (qualifiers, thread indices,
 * __syncthreads, warp shuffles, bf16/f16, math intrinsics, launches).
 *
 * the .cu files of kernels/ are compiled unchanged by g++ after one rewrite
 * (`k<<<grid, block, shmem, stream>>>(args)` becomes
 * `groma_emu_launch(k, "k", grid, block, shmem, stream)(args)`, see the
 * Makefile).  Every block runs on one CPU thread; its GPU threads are
 * fibers that switch at barriers.
 */
#ifndef GROMA_EMU_CUDA_H
#define GROMA_EMU_CUDA_H

#include "emu_api.h"

#ifdef __cplusplus

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
/* one copy per block: blocks of one OS thread run one after another */
#define __shared__ static thread_local

struct uint3
{
	unsigned	x,
				y,
				z;
};

struct dim3
{
	unsigned	x,
				y,
				z;

	dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

/* 16-byte vectors, aligned as CUDA aligns them (one 16-byte load). */
struct alignas(16) uint4
{
	unsigned	x,
				y,
				z,
				w;
};

struct alignas(16) float4
{
	float		x,
				y,
				z,
				w;
};

/* The float with the bits of u. */
static inline float
__uint_as_float(unsigned u)
{
	float		f;

	std::memcpy(&f, &u, 4);
	return f;
}

struct float3
{
	float		x,
				y,
				z;
};

static inline float3
make_float3(float x, float y, float z)
{
	return float3{x, y, z};
}

/* The GPU thread now running on this OS thread, and its block (plain data: no TLS wrapper calls). */
struct groma_emu_thread_state
{
	uint3		thread_idx;
	uint3		block_idx;
	uint3		block_dim;
	uint3		grid_dim;
};
extern __thread groma_emu_thread_state groma_emu_now;

#define threadIdx (groma_emu_now.thread_idx)
#define blockIdx (groma_emu_now.block_idx)
#define blockDim (groma_emu_now.block_dim)
#define gridDim (groma_emu_now.grid_dim)

/* Waits until every thread of the block arrives (see emu_runtime.cpp). */
void		__syncthreads(void);

/* Hands v to the warp and returns the value of lane src_lane (the warp waits for all 32 lanes). */
uint64_t	groma_emu_shuffle(uint64_t bits, int src_lane);

/* The value of v held by lane (this lane ^ lane_mask). */
template <typename T>
static inline T
__shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32)
{
	uint64_t	bits = 0;
	T			r;

	(void) mask;
	(void) width;
	static_assert(sizeof(T) <= sizeof(bits), "shuffle of a value over 8 bytes");
	std::memcpy(&bits, &v, sizeof(T));
	bits = groma_emu_shuffle(bits, (int) ((threadIdx.x & 31) ^ (unsigned) lane_mask));
	std::memcpy(&r, &bits, sizeof(T));
	return r;
}

/* Waits until all 32 lanes of the warp arrive (a shuffle that carries nothing). */
static inline void
__syncwarp(unsigned mask = 0xffffffffu)
{
	(void) mask;
	groma_emu_shuffle(0, threadIdx.x & 31);
}

using std::isfinite;
using std::isinf;
using std::isnan;

template <typename A, typename B>
static inline auto
min(A a, B b) -> std::common_type_t<A, B>
{
	return b < a ? b : a;
}

template <typename A, typename B>
static inline auto
max(A a, B b) -> std::common_type_t<A, B>
{
	return a < b ? b : a;
}

static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }

/* bfloat16: the top 16 bits of a float. */
struct __nv_bfloat16
{
	uint16_t	bits;
};

/* Rounds to the nearest bf16, ties to even; NaN stays NaN. */
static inline __nv_bfloat16
__float2bfloat16_rn(float f)
{
	uint32_t	u;
	__nv_bfloat16 r;

	std::memcpy(&u, &f, 4);
	if ((u & 0x7fffffffu) > 0x7f800000u)
		r.bits = (uint16_t) ((u >> 16) | 0x40);
	else
		r.bits = (uint16_t) ((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
	return r;
}

static inline float
__bfloat162float(__nv_bfloat16 h)
{
	uint32_t	u = (uint32_t) h.bits << 16;
	float		f;

	std::memcpy(&f, &u, 4);
	return f;
}

/* IEEE half precision (GCC's _Float16 converts with round to nearest even). */
struct __half
{
	_Float16	value;
};

static inline __half __float2half_rn(float f) { return __half{(_Float16) f}; }
static inline float __half2float(__half h) { return (float) h.value; }

/* Runs fn(closure) as the body of every thread of grid x block (see emu_runtime.cpp). */
void		groma_emu_run(const char *name, dim3 grid, dim3 block, size_t shmem, cudaStream_t stream,
						  const void *kernel, void (*fn) (void *), void *closure);

/* ---- graph capture (emu_graph.cpp) ---- */

/* True while stream is being captured: its work is recorded for a graph, not run. */
bool		groma_emu_capturing(cudaStream_t stream);

/* True while any stream is being captured. */
bool		groma_emu_any_capture(void);

/* Appends work (run at each replay, in order) to stream's capture. */
void		groma_emu_capture(cudaStream_t stream, std::function<void()> work);

/*
 * A call a capture cannot hold (a synchronisation, an allocation, a copy
 * with pageable host memory): says so, invalidates every capture and
 * returns cudaErrorStreamCaptureUnsupported, as the runtime does.
 */
cudaError_t groma_emu_capture_violation(const char *call);

/* True on the thread while it replays a graph (GROMA_EMU_TRACE marks those launches "(graph)"). */
extern thread_local bool groma_emu_replaying;

/* Records err as the last error and returns it (sticky ones break the context). */
cudaError_t groma_emu_error(cudaError_t err);

/* Fails the launch (cudaErrorInvalidValue) when a pointer argument is not device memory. */
bool		groma_emu_check_argument(const char *name, int index, const void *p);

/* One kernel argument converted to its parameter type as a launch would (NULL, an integer 0, to a pointer). */
template <typename P, typename A>
static inline P
groma_emu_argument(A &&a)
{
	if constexpr (std::is_pointer<P>::value && std::is_integral<typename std::decay<A>::type>::value)
		return a == 0 ? (P) nullptr : (P) (uintptr_t) a;
	else
		return static_cast<P>(std::forward<A>(a));
}

/* A launch of kernel with its configuration, waiting for its arguments. */
template <typename... P>
struct groma_emu_launcher
{
	void		(*kernel) (P...);
	const char *name;
	dim3		grid,
				block;
	size_t		shmem;
	cudaStream_t stream;

	/* Copies args into the kernel's parameter types (as a launch does) and runs the grid. */
	template <typename... A>
	void operator()(A &&... args)
	{
		std::tuple<P...> params(groma_emu_argument<P>(std::forward<A>(args))...);
		bool		ok = true;
		int			index = 0;

		std::apply([&](auto &... p) {
			((ok = check_one(index++, p) && ok), ...);
		}, params);
		if (!ok)
			return;
		if (groma_emu_capturing(stream))
		{
			/* a graph keeps the arguments of the day: pointers and scalars by value */
			groma_emu_launcher<P...> self = *this;

			groma_emu_capture(stream, [self, params]() { self.run(params); });
			return;
		}
		run(params);
	}

	/* Runs the grid over converted parameters. */
	void run(const std::tuple<P...> &params) const
	{
		auto body = [&]() { std::apply(kernel, params); };

		groma_emu_run(name, grid, block, shmem, stream, (const void *) kernel,
					  [](void *c) { (*static_cast<decltype(body) *>(c))(); }, &body);
	}

	template <typename T>
	bool check_one(int index, const T &p)
	{
		if constexpr (std::is_pointer<T>::value)
			return groma_emu_check_argument(name, index, (const void *) p);
		return true;
	}
};

template <typename... P>
static inline groma_emu_launcher<P...>
groma_emu_launch(void (*kernel) (P...), const char *name, dim3 grid, dim3 block, size_t shmem = 0,
				 cudaStream_t stream = 0)
{
	return groma_emu_launcher<P...>{kernel, name, grid, block, shmem, stream};
}

#endif							/* __cplusplus */

#endif							/* GROMA_EMU_CUDA_H */
