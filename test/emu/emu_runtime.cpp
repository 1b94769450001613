/*
 * emu_runtime.cpp - the CUDA runtime of the CPU emulator: device memory
 * (each allocation followed by a guard page, filled with NaN bytes),
 * errors (last and sticky, as CUDA keeps them), streams, copies, and kernel
 * launches that run every block's threads as fibers.
 *
 * What it checks that a GPU would only report as a crash or garbage:
 * launch configurations, pointer arguments that are not device memory,
 * copies that leave their allocation, reads past an allocation (the guard
 * page faults and the kernel, block and thread are printed), __syncthreads
 * that only some threads reach, shuffles in partial warps, and deadlocks.
 *
 * Environment: GROMA_EMU_MEMORY_MB (device size, default 8192),
 * GROMA_EMU_NO_DEVICE=1 (report no GPU), GROMA_EMU_FAULT_AT_LAUNCH=N (the
 * Nth launch raises a sticky illegal address; launches replayed from a
 * graph count too), GROMA_EMU_TRACE=1 (print every launch, "(graph)" after
 * a replayed one), GROMA_EMU_PROFILE=1 (print the time of each kernel at exit).
 */
#include "emu_cuda.h"
#include "emu_fiber.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <thread>
#include <map>
#include <string>
#include <mutex>
#include <set>
#include <vector>

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

__thread groma_emu_thread_state groma_emu_now;

/* ---- errors ------------------------------------------------------------- */

static thread_local cudaError_t last_error = cudaSuccess;
static cudaError_t sticky_error = cudaSuccess;

/* Records err as the last error (sticky ones for the rest of the process) and returns it. */
static cudaError_t
record(cudaError_t err)
{
	if (err == cudaErrorIllegalAddress || err == cudaErrorLaunchFailure)
		sticky_error = err;
	if (err != cudaSuccess)
		last_error = err;
	return err;
}

/* Records err as the last error (for emu_graph.cpp); see emu_cuda.h. */
cudaError_t
groma_emu_error(cudaError_t err)
{
	return record(err);
}

/* The error every call returns once the context is broken (cudaSuccess until then). */
static cudaError_t
broken(void)
{
	if (sticky_error != cudaSuccess)
		last_error = sticky_error;
	return sticky_error;
}

/* Breaks the context with a sticky illegal address; see emu_api.h. */
extern "C" void
groma_emu_illegal_address(void)
{
	record(cudaErrorIllegalAddress);
}

/* Prints a diagnosis on stderr, prefixed with the running kernel when there is one. */
static void
complain(const char *fmt, ...)
{
	va_list		ap;

	fprintf(stderr, "groma CUDA emulator: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- device memory ------------------------------------------------------ */

struct allocation
{
	size_t		bytes;			/* as asked */
	char	   *map;			/* the mapping, guard page last */
	size_t		map_bytes;
};

static std::mutex memory_lock;
static std::map<uintptr_t, allocation> allocations;	/* by start address */
static size_t allocated;

/* The emulated device's size in bytes. */
static size_t
device_bytes(void)
{
	const char *mb = getenv("GROMA_EMU_MEMORY_MB");

	return (size_t) (mb && atol(mb) > 0 ? atol(mb) : 8192) << 20;
}

/* The allocation holding [p, p + bytes), or NULL; call with memory_lock held. */
static const allocation *
find_allocation(const void *p, size_t bytes, uintptr_t *start)
{
	uintptr_t	a = (uintptr_t) p;
	auto		it = allocations.upper_bound(a);

	if (it == allocations.begin())
		return NULL;
	--it;
	if (a < it->first || a + bytes > it->first + it->second.bytes || a + bytes < a)
		return NULL;
	*start = it->first;
	return &it->second;
}

/* True when [p, p + bytes) lies in one device allocation; see emu_api.h. */
extern "C" int
groma_emu_is_device(const void *p, size_t bytes)
{
	std::lock_guard<std::mutex> guard(memory_lock);
	uintptr_t	start;

	return find_allocation(p, bytes, &start) != NULL;
}

/* Maps bytes ending at a guard page, filled with NaN bytes; counts against GROMA_EMU_MEMORY_MB. */
extern "C" cudaError_t
cudaMalloc(void **ptr, size_t bytes)
{
	size_t		page = (size_t) sysconf(_SC_PAGESIZE);
	size_t		rounded = (bytes + 15) & ~(size_t) 15;	/* 16-byte aligned, so at most 15 bytes of slack */
	size_t		map_bytes = (rounded + page - 1) / page * page + page;
	char	   *map;

	if (ptr == NULL)
		return record(cudaErrorInvalidValue);
	*ptr = NULL;
	if (broken() != cudaSuccess)
		return sticky_error;
	if (groma_emu_any_capture())
		return groma_emu_capture_violation("cudaMalloc");
	if (bytes == 0)
		return cudaSuccess;
	{
		std::lock_guard<std::mutex> guard(memory_lock);

		if (bytes > device_bytes() - allocated)
			return record(cudaErrorMemoryAllocation);
		allocated += rounded;
	}
	map = (char *) mmap(NULL, map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (map == MAP_FAILED)
	{
		std::lock_guard<std::mutex> guard(memory_lock);

		allocated -= rounded;
		return record(cudaErrorMemoryAllocation);
	}
	mprotect(map + map_bytes - page, page, PROT_NONE);
	/* the allocation ends at the guard page; fresh device memory holds garbage, here NaN bytes */
	*ptr = map + map_bytes - page - rounded;
	memset(*ptr, 0xff, rounded);
	std::lock_guard<std::mutex> guard(memory_lock);
	allocations[(uintptr_t) *ptr] = allocation{bytes, map, map_bytes};
	return cudaSuccess;
}

/* Unmaps an allocation; a pointer that does not start one is refused and reported. */
extern "C" cudaError_t
cudaFree(void *ptr)
{
	allocation	a;

	if (ptr == NULL)
		return cudaSuccess;
	if (groma_emu_any_capture())
		return groma_emu_capture_violation("cudaFree");
	{
		std::lock_guard<std::mutex> guard(memory_lock);
		auto		it = allocations.find((uintptr_t) ptr);

		if (it == allocations.end())
		{
			complain("cudaFree(%p): not the start of a device allocation", ptr);
			return record(cudaErrorInvalidValue);
		}
		a = it->second;
		allocated -= (a.bytes + 15) & ~(size_t) 15;
		allocations.erase(it);
	}
	munmap(a.map, a.map_bytes);
	return broken();
}

/* The emulated device size and what the live allocations leave of it. */
extern "C" cudaError_t
cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes)
{
	std::lock_guard<std::mutex> guard(memory_lock);

	*total_bytes = device_bytes();
	*free_bytes = device_bytes() - allocated;
	return sticky_error;
}

/* ---- device, streams ---------------------------------------------------- */

struct groma_emu_stream
{
	unsigned	flags;
};

static std::set<cudaStream_t> streams;

/* True for the default stream and every stream created and not destroyed. */
static bool
valid_stream(cudaStream_t s)
{
	std::lock_guard<std::mutex> guard(memory_lock);

	return s == NULL || streams.count(s) > 0;
}

/* One device, or none with cudaErrorNoDevice under GROMA_EMU_NO_DEVICE=1. */
extern "C" cudaError_t
cudaGetDeviceCount(int *count)
{
	const char *none = getenv("GROMA_EMU_NO_DEVICE");

	if (none && strcmp(none, "1") == 0)
	{
		*count = 0;
		return record(cudaErrorNoDevice);
	}
	*count = 1;
	return cudaSuccess;
}

/* Describes the emulated device (its name says it is not a GPU). */
extern "C" cudaError_t
cudaGetDeviceProperties(cudaDeviceProp *prop, int device)
{
	if (device != 0)
		return record(cudaErrorInvalidValue);
	memset(prop, 0, sizeof(*prop));
	snprintf(prop->name, sizeof(prop->name), "groma CUDA emulator (CPU, not a GPU)");
	prop->totalGlobalMem = device_bytes();
	prop->major = 9;
	prop->minor = 0;
	prop->multiProcessorCount = 1;
	prop->maxThreadsPerBlock = 1024;
	prop->warpSize = 32;
	return cudaSuccess;
}

/* Device 0 is the only one. */
extern "C" cudaError_t
cudaSetDevice(int device)
{
	return device == 0 ? broken() : record(cudaErrorInvalidValue);
}

/* Creates a stream handle (work runs at launch, so a stream only needs to exist). */
extern "C" cudaError_t
cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags)
{
	if (broken() != cudaSuccess)
		return sticky_error;
	*stream = new groma_emu_stream{flags};
	std::lock_guard<std::mutex> guard(memory_lock);
	streams.insert(*stream);
	return cudaSuccess;
}

/* Creates a stream with the default flags. */
extern "C" cudaError_t
cudaStreamCreate(cudaStream_t *stream)
{
	return cudaStreamCreateWithFlags(stream, cudaStreamDefault);
}

/* Destroys a stream; an unknown handle is cudaErrorInvalidResourceHandle. */
extern "C" cudaError_t
cudaStreamDestroy(cudaStream_t stream)
{
	{
		std::lock_guard<std::mutex> guard(memory_lock);

		if (stream == NULL || streams.erase(stream) == 0)
			return record(cudaErrorInvalidResourceHandle);
	}
	delete stream;
	return cudaSuccess;
}

/* Work runs at launch, so waiting only reports a broken context. */
extern "C" cudaError_t
cudaStreamSynchronize(cudaStream_t stream)
{
	if (!valid_stream(stream))
		return record(cudaErrorInvalidResourceHandle);
	if (groma_emu_capturing(stream))
		return groma_emu_capture_violation("cudaStreamSynchronize");
	return broken();
}

/* Work runs at launch, so waiting only reports a broken context. */
extern "C" cudaError_t
cudaDeviceSynchronize(void)
{
	if (groma_emu_any_capture())
		return groma_emu_capture_violation("cudaDeviceSynchronize");
	return broken();
}

/* An event: the host time at which the work queued before it had run (work runs at launch). */
struct groma_emu_event
{
	bool		recorded;
	double		ms;
};

static std::set<cudaEvent_t> events;

/* True for every event created and not destroyed. */
static bool
valid_event(cudaEvent_t e)
{
	std::lock_guard<std::mutex> guard(memory_lock);

	return e != NULL && events.count(e) > 0;
}

/* Creates an event that has not been recorded. */
extern "C" cudaError_t
cudaEventCreate(cudaEvent_t *event)
{
	if (broken() != cudaSuccess)
		return broken();
	*event = new groma_emu_event{false, 0.0};
	std::lock_guard<std::mutex> guard(memory_lock);
	events.insert(*event);
	return cudaSuccess;
}

/* Destroys an event; an unknown handle is cudaErrorInvalidResourceHandle. */
extern "C" cudaError_t
cudaEventDestroy(cudaEvent_t event)
{
	{
		std::lock_guard<std::mutex> guard(memory_lock);

		if (event == NULL || events.erase(event) == 0)
			return record(cudaErrorInvalidResourceHandle);
	}
	delete event;
	return cudaSuccess;
}

/* Records the time now: everything queued on the stream before it has already run. */
extern "C" cudaError_t
cudaEventRecord(cudaEvent_t event, cudaStream_t stream)
{
	struct timespec ts;

	if (!valid_event(event) || !valid_stream(stream))
		return record(cudaErrorInvalidResourceHandle);
	if (groma_emu_capturing(stream))
		return groma_emu_capture_violation("cudaEventRecord");	/* groma records no events in a graph */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	event->recorded = true;
	event->ms = (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
	return broken();
}

/* The work before an event has run by the time it is recorded: waiting only checks the handle. */
extern "C" cudaError_t
cudaEventSynchronize(cudaEvent_t event)
{
	if (!valid_event(event))
		return record(cudaErrorInvalidResourceHandle);
	return broken();
}

/* Milliseconds between two recorded events; one not recorded yet is cudaErrorInvalidResourceHandle, as on a GPU. */
extern "C" cudaError_t
cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)
{
	if (!valid_event(start) || !valid_event(end) || !start->recorded || !end->recorded)
		return record(cudaErrorInvalidResourceHandle);
	*ms = (float) (end->ms - start->ms);
	return cudaSuccess;
}

/* Returns the last error and clears it (a sticky one stays). */
extern "C" cudaError_t
cudaGetLastError(void)
{
	cudaError_t err = last_error;

	last_error = sticky_error;
	return err;
}

/* Returns the last error without clearing it. */
extern "C" cudaError_t
cudaPeekAtLastError(void)
{
	return last_error;
}

/* The enumerator's name of an error code. */
extern "C" const char *
cudaGetErrorName(cudaError_t err)
{
	switch (err)
	{
#define NAME(e) case e: return #e
			NAME(cudaSuccess);
			NAME(cudaErrorInvalidValue);
			NAME(cudaErrorMemoryAllocation);
			NAME(cudaErrorInitializationError);
			NAME(cudaErrorInvalidConfiguration);
			NAME(cudaErrorInvalidDevicePointer);
			NAME(cudaErrorInvalidMemcpyDirection);
			NAME(cudaErrorNoDevice);
			NAME(cudaErrorECCUncorrectable);
			NAME(cudaErrorInvalidResourceHandle);
			NAME(cudaErrorIllegalAddress);
			NAME(cudaErrorLaunchTimeout);
			NAME(cudaErrorContextIsDestroyed);
			NAME(cudaErrorAssert);
			NAME(cudaErrorHardwareStackError);
			NAME(cudaErrorIllegalInstruction);
			NAME(cudaErrorMisalignedAddress);
			NAME(cudaErrorInvalidAddressSpace);
			NAME(cudaErrorInvalidPc);
			NAME(cudaErrorLaunchFailure);
			NAME(cudaErrorIllegalState);
			NAME(cudaErrorStreamCaptureUnsupported);
			NAME(cudaErrorStreamCaptureInvalidated);
#undef NAME
	}
	return "cudaErrorUnknown";
}

/* CUDA's wording of an error code. */
extern "C" const char *
cudaGetErrorString(cudaError_t err)
{
	switch (err)
	{
		case cudaSuccess:
			return "no error";
		case cudaErrorInvalidValue:
			return "invalid argument";
		case cudaErrorMemoryAllocation:
			return "out of memory";
		case cudaErrorInvalidConfiguration:
			return "invalid configuration argument";
		case cudaErrorNoDevice:
			return "no CUDA-capable device is detected";
		case cudaErrorInvalidResourceHandle:
			return "invalid resource handle";
		case cudaErrorIllegalAddress:
			return "an illegal memory access was encountered";
		case cudaErrorStreamCaptureUnsupported:
			return "operation not permitted when stream is capturing";
		case cudaErrorStreamCaptureInvalidated:
			return "operation failed due to a previous error during capture";
		default:
			return cudaGetErrorName(err);
	}
}

/* ---- copies ------------------------------------------------------------- */

/* Fails (and says why) unless [p, p + bytes) is inside one device allocation. */
static bool
device_range(const char *call, const char *which, const void *p, size_t bytes)
{
	if (groma_emu_is_device(p, bytes))
		return true;
	complain("%s: %s %p (%zu bytes) is not inside one device allocation", call, which, p, bytes);
	return false;
}

/* Copies at once after checking that each device side lies inside one allocation. */
extern "C" cudaError_t
cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream)
{
	bool		dst_dev,
				src_dev;

	if (broken() != cudaSuccess)
		return sticky_error;
	if (!valid_stream(stream))
		return record(cudaErrorInvalidResourceHandle);
	if (bytes == 0)
		return cudaSuccess;
	if (kind == cudaMemcpyDefault)
		kind = (cudaMemcpyKind) ((groma_emu_is_device(src, bytes) ? 2 : 0) + (groma_emu_is_device(dst, bytes) ? 1 : 0));
	dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
	src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
	if ((dst_dev && !device_range("cudaMemcpyAsync", "destination", dst, bytes)) ||
		(src_dev && !device_range("cudaMemcpyAsync", "source", src, bytes)))
		return record(cudaErrorInvalidValue);
	if ((!dst_dev && groma_emu_is_device(dst, 1)) || (!src_dev && groma_emu_is_device(src, 1)))
	{
		complain("cudaMemcpyAsync: kind %d names device memory as host memory", (int) kind);
		return record(cudaErrorInvalidValue);
	}
	if (stream == NULL && groma_emu_any_capture())
		return groma_emu_capture_violation("a copy on the legacy default stream");	/* it waits for captured work */
	if (groma_emu_capturing(stream))
	{
		/* groma's host memory is pageable: a GPU refuses to capture copies to or from it */
		if (kind != cudaMemcpyDeviceToDevice)
			return groma_emu_capture_violation("cudaMemcpyAsync to or from host memory");
		groma_emu_capture(stream, [=]() { memmove(dst, src, bytes); });
		return cudaSuccess;
	}
	memmove(dst, src, bytes);
	return cudaSuccess;
}

/* cudaMemcpyAsync on the default stream. */
extern "C" cudaError_t
cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
	return cudaMemcpyAsync(dst, src, bytes, kind, NULL);
}

/* Sets bytes of one device allocation. */
extern "C" cudaError_t
cudaMemsetAsync(void *ptr, int value, size_t bytes, cudaStream_t stream)
{
	return cudaMemset2DAsync(ptr, bytes, value, bytes, 1, stream);
}

/* Sets height rows of width bytes, pitch apart, inside one device allocation. */
extern "C" cudaError_t
cudaMemset2DAsync(void *ptr, size_t pitch, int value, size_t width, size_t height, cudaStream_t stream)
{
	if (broken() != cudaSuccess)
		return sticky_error;
	if (!valid_stream(stream))
		return record(cudaErrorInvalidResourceHandle);
	if (width == 0 || height == 0)
		return cudaSuccess;
	if (pitch < width)
		return record(cudaErrorInvalidValue);
	if (!device_range("cudaMemset2DAsync", "region", ptr, pitch * (height - 1) + width))
		return record(cudaErrorInvalidValue);
	if (stream == NULL && groma_emu_any_capture())
		return groma_emu_capture_violation("a memset on the legacy default stream");
	if (groma_emu_capturing(stream))
	{
		groma_emu_capture(stream, [=]() {
			for (size_t r = 0; r < height; r++)
				memset((char *) ptr + r * pitch, value, width);
		});
		return cudaSuccess;
	}
	for (size_t r = 0; r < height; r++)
		memset((char *) ptr + r * pitch, value, width);
	return cudaSuccess;
}

/* ---- launches ----------------------------------------------------------- */

enum fiber_state
{
	RUNNING,
	AT_BLOCK_BARRIER,
	AT_WARP_SHUFFLE,
	DONE
};

struct fiber
{
	void	   *sp;
	fiber_state state;
	int			src_lane;
	uint64_t	give;
	uint64_t	take;
};

/* The block now running on this OS thread. */
struct block_run
{
	const char *name;
	void		(*fn) (void *);
	void	   *closure;
	bool		fibers;			/* false: threads run as plain calls (no barrier seen in block 0) */
	bool		saw_barrier;
	int			current;
	void	   *scheduler_sp;
	std::vector<fiber> threads;
};

static thread_local block_run *running;
static thread_local std::vector<char *> stacks;
static const size_t stack_bytes = 256 << 10;

/* The kernel, block and thread of this OS thread as text, for diagnoses. */
static void
where(char *buf, size_t len)
{
	if (running == NULL)
	{
		snprintf(buf, len, "outside any kernel");
		return;
	}
	snprintf(buf, len, "kernel %s, block (%u,%u,%u), thread (%u,%u,%u)", running->name, blockIdx.x, blockIdx.y,
			 blockIdx.z, threadIdx.x, threadIdx.y, threadIdx.z);
}

/* Stops the process with a diagnosis: a kernel did what a GPU would hang or corrupt on. */
[[noreturn]] static void
kernel_bug(const char *what)
{
	char		buf[256];

	where(buf, sizeof(buf));
	complain("%s: %s", buf, what);
	abort();
}

/* Sets groma_emu_now.thread_idx for linear thread t of the block. */
static void
set_thread(int t)
{
	uint3		b = groma_emu_now.block_dim;

	groma_emu_now.thread_idx = uint3{t % b.x, (t / b.x) % b.y, t / (b.x * b.y)};
}

/* Switches from fiber f (just parked or finished) to the next running fiber of the round, or to the scheduler. */
static void
leave(block_run *r, fiber *f)
{
	for (int t = r->current + 1; t < (int) r->threads.size(); t++)
		if (r->threads[t].state == RUNNING)
		{
			r->current = t;
			set_thread(t);
			groma_emu_switch(&f->sp, r->threads[t].sp);
			return;
		}
	groma_emu_switch(&f->sp, r->scheduler_sp);
}

/* Parks the running fiber in state s until the scheduler releases it. */
static void
park(fiber_state s)
{
	fiber	   *f;

	if (running == NULL)
		kernel_bug("a barrier outside a kernel");
	if (!running->fibers)
		kernel_bug("a barrier in a block after block 0 reached none (the emulator ran this kernel without fibers)");
	running->saw_barrier = true;
	f = &running->threads[running->current];
	f->state = s;
	leave(running, f);
}

/* Parks this thread until every thread of the block arrives. */
void
__syncthreads(void)
{
	park(AT_BLOCK_BARRIER);
}

/* Parks this lane until the warp's 32 lanes arrive, then returns lane src_lane's bits. */
uint64_t
groma_emu_shuffle(uint64_t bits, int src_lane)
{
	fiber	   *f;

	if (running && running->fibers)
	{
		f = &running->threads[running->current];
		f->give = bits;
		f->src_lane = src_lane;
	}
	park(AT_WARP_SHUFFLE);
	return running->threads[running->current].take;
}

/* First code of every fiber: the thread's body, then back to the scheduler for good. */
static void
fiber_main(void)
{
	block_run  *r = running;

	r->fn(r->closure);
	r->threads[r->current].state = DONE;
	leave(r, &r->threads[r->current]);
	abort();					/* a finished fiber is never resumed */
}

/* Releases the warps whose live lanes all wait in a shuffle; true if any. */
static bool
release_warps(block_run *r)
{
	int			n = (int) r->threads.size();
	bool		released = false;

	for (int w = 0; w * 32 < n; w++)
	{
		int			lanes = n - w * 32 < 32 ? n - w * 32 : 32,
					waiting = 0,
					done = 0;
		fiber	   *lane = &r->threads[w * 32];

		for (int l = 0; l < lanes; l++)
		{
			waiting += lane[l].state == AT_WARP_SHUFFLE;
			done += lane[l].state == DONE;
		}
		if (waiting == 0 || waiting + done < lanes)
			continue;
		r->current = w * 32;
		set_thread(w * 32);
		if (done > 0 || lanes < 32)
			kernel_bug("a full-mask warp shuffle in a warp with missing lanes");
		for (int l = 0; l < lanes; l++)
		{
			if (lane[l].src_lane < 0 || lane[l].src_lane >= 32)
				kernel_bug("a shuffle from a lane outside the warp");
			lane[l].take = lane[lane[l].src_lane].give;
		}
		for (int l = 0; l < lanes; l++)
			lane[l].state = RUNNING;
		released = true;
	}
	return released;
}

/* Runs every thread of the current block as a fiber until all finish. */
static void
run_block_fibers(block_run *r)
{
	int			n = (int) r->threads.size();

	while (stacks.size() < (size_t) n)
	{
		size_t		page = (size_t) sysconf(_SC_PAGESIZE);
		char	   *s = (char *) mmap(NULL, stack_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (s == MAP_FAILED)
			kernel_bug("no memory for fiber stacks");
		mprotect(s, page, PROT_NONE);	/* a stack overflow faults instead of corrupting a neighbour */
		stacks.push_back(s);
	}
	for (int t = 0; t < n; t++)
		r->threads[t] = fiber{groma_emu_fiber_stack(stacks[t], stack_bytes, fiber_main), RUNNING, 0, 0, 0};
	for (;;)
	{
		int			done = 0,
					at_barrier = 0;

		/* one round: each running fiber runs to its next barrier, then hands over to the next (see leave) */
		for (int t = 0; t < n; t++)
			if (r->threads[t].state == RUNNING)
			{
				r->current = t;
				set_thread(t);
				groma_emu_switch(&r->scheduler_sp, r->threads[t].sp);
				break;
			}
		for (int t = 0; t < n; t++)
		{
			done += r->threads[t].state == DONE;
			at_barrier += r->threads[t].state == AT_BLOCK_BARRIER;
		}
		if (done == n)
			return;
		if (release_warps(r))
			continue;
		if (at_barrier + done == n)
		{
			if (done > 0)
			{
				for (int t = 0; t < n; t++)
					if (r->threads[t].state == DONE)
					{
						r->current = t;
						set_thread(t);
						break;
					}
				kernel_bug("__syncthreads reached by some threads of the block after this one returned");
			}
			for (int t = 0; t < n; t++)
				r->threads[t].state = RUNNING;
			continue;
		}
		kernel_bug("deadlock: threads wait at different barriers (a shuffle or __syncthreads in divergent code)");
	}
}

/* The fault handler's diagnosis: where, and which allocation the address is just past. */
static void
on_fault(int sig, siginfo_t *info, void *)
{
	char		buf[512],
				at[256];
	uintptr_t	a = (uintptr_t) info->si_addr;
	size_t		page = (size_t) sysconf(_SC_PAGESIZE);
	int			len;

	where(at, sizeof(at));
	len = snprintf(buf, sizeof(buf), "groma CUDA emulator: %s: invalid access at %p", at, info->si_addr);
	for (auto &kv : allocations)
		if (a >= kv.first + kv.second.bytes && a < kv.first + kv.second.bytes + page + 16)
			len += snprintf(buf + len, sizeof(buf) - len, ", %zu bytes past the end of a %zu-byte allocation",
							(size_t) (a - kv.first - kv.second.bytes), kv.second.bytes);
	len += snprintf(buf + len, sizeof(buf) - len, "\n");
	if (write(2, buf, (size_t) len) < 0)
		_exit(139);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Installs the fault handler once, and an alternate stack per OS thread (fiber stacks may be what overflowed). */
static void
install_fault_handler(void)
{
	static std::once_flag handler;
	static thread_local bool have_stack;

	if (!have_stack)
	{
		stack_t		ss;

		ss.ss_sp = malloc(1 << 16);
		ss.ss_size = 1 << 16;
		ss.ss_flags = 0;
		sigaltstack(&ss, NULL);
		have_stack = true;
	}
	std::call_once(handler, [] {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = on_fault;
		sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
		sigaction(SIGSEGV, &sa, NULL);
		sigaction(SIGBUS, &sa, NULL);
	});
}

static std::set<const void *> kernels_with_barriers;
static long launches;

/* Seconds spent in each kernel (GROMA_EMU_PROFILE=1 prints them at exit). */
static std::map<std::string, std::pair<long, double>> profile;

/* Prints the profile, most expensive kernel first. */
static void
print_profile(void)
{
	std::vector<std::pair<double, std::string>> rows;

	for (auto &kv : profile)
		rows.push_back({kv.second.second, kv.first});
	std::sort(rows.rbegin(), rows.rend());
	for (auto &r : rows)
		fprintf(stderr, "groma CUDA emulator: %-36s %8ld launches %10.1f ms\n", r.second.c_str(),
				profile[r.second].first, r.first * 1e3);
}

/* Seconds of a monotonic clock. */
static double
seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Fails the launch when the configuration is one CUDA refuses. */
static bool
valid_configuration(dim3 grid, dim3 block, size_t shmem)
{
	uint64_t	threads = (uint64_t) block.x * block.y * block.z;

	return threads >= 1 && threads <= 1024 && block.x <= 1024 && block.y <= 1024 && block.z <= 64 &&
		grid.x >= 1 && grid.x <= 2147483647u && grid.y >= 1 && grid.y <= 65535 && grid.z >= 1 &&
		grid.z <= 65535 && shmem <= 48 * 1024;
}

/* One launch, shared by the OS threads that run its blocks. */
struct launch_job
{
	const char *name;
	void		(*fn) (void *);
	void	   *closure;
	dim3		grid,
				block;
	uint64_t	blocks;
	bool		fibers;			/* false: no barrier in block 0, threads run as plain calls */
	std::atomic<uint64_t> next;
};

/* Runs block b of job on this OS thread; returns whether a thread reached a barrier. */
static bool
run_block(launch_job *job, uint64_t b)
{
	static thread_local block_run r;

	r.name = job->name;
	r.fn = job->fn;
	r.closure = job->closure;
	r.threads.resize((size_t) job->block.x * job->block.y * job->block.z);
	r.fibers = job->fibers;
	r.saw_barrier = false;
	groma_emu_now.block_dim = uint3{job->block.x, job->block.y, job->block.z};
	groma_emu_now.grid_dim = uint3{job->grid.x, job->grid.y, job->grid.z};
	groma_emu_now.block_idx = uint3{(unsigned) (b % job->grid.x), (unsigned) (b / job->grid.x % job->grid.y),
									(unsigned) (b / job->grid.x / job->grid.y)};
	running = &r;
	if (r.fibers)
		run_block_fibers(&r);
	else
		for (int t = 0; t < (int) r.threads.size(); t++)
		{
			r.current = t;
			set_thread(t);
			r.fn(r.closure);
		}
	running = NULL;
	return r.saw_barrier;
}

/* Takes blocks of job until none is left. */
static void
drain(launch_job *job)
{
	for (uint64_t b; (b = job->next.fetch_add(1)) < job->blocks;)
		run_block(job, b);
}

/*
 * Never destroyed: detached workers may still wait on them while the
 * process exits.  A forked child has none of the workers, so it starts a
 * pool of its own (see forget_pool).
 */
static std::mutex *pool_lock_p = new std::mutex;
static std::condition_variable *pool_wake_p = new std::condition_variable,
		   *pool_idle_p = new std::condition_variable;
#define pool_lock (*pool_lock_p)
#define pool_wake (*pool_wake_p)
#define pool_idle (*pool_idle_p)
static launch_job *pool_job;
static uint64_t pool_generation;
static int	pool_busy;
static int	pool_size = -1;

/* A worker: waits for each new launch and helps drain it. */
static void
worker(void)
{
	uint64_t	seen = 0;

	install_fault_handler();
	for (;;)
	{
		launch_job *job;

		{
			std::unique_lock<std::mutex> lock(pool_lock);

			pool_wake.wait(lock, [&] { return pool_generation != seen; });
			seen = pool_generation;
			job = pool_job;
		}
		drain(job);
		std::lock_guard<std::mutex> lock(pool_lock);

		if (--pool_busy == 0)
			pool_idle.notify_all();
	}
}

/* In a forked child: the parent's workers are not there; the next launch starts new ones. */
static void
forget_pool(void)
{
	pool_lock_p = new std::mutex;
	pool_wake_p = new std::condition_variable;
	pool_idle_p = new std::condition_variable;
	pool_size = -1;
	pool_busy = 0;
}

/* Runs blocks 1.. of job on this thread and the workers (GROMA_EMU_THREADS, default: the cores, at most 8). */
static void
run_on_workers(launch_job *job)
{
	if (pool_size < 0)
	{
		static std::once_flag at_fork;
		const char *env = getenv("GROMA_EMU_THREADS");

		std::call_once(at_fork, [] { pthread_atfork(NULL, NULL, forget_pool); });
		int			n = env && atoi(env) > 0 ? atoi(env) : (int) std::thread::hardware_concurrency();

		pool_size = (n < 1 ? 1 : n > 8 ? 8 : n) - 1;
		for (int i = 0; i < pool_size; i++)
			std::thread(worker).detach();
	}
	job->next = 1;
	if (pool_size > 0 && job->blocks > 2)
	{
		std::lock_guard<std::mutex> lock(pool_lock);

		pool_job = job;
		pool_busy = pool_size;
		pool_generation++;
		pool_wake.notify_all();
	}
	else
	{
		drain(job);
		return;
	}
	drain(job);
	std::unique_lock<std::mutex> lock(pool_lock);

	pool_idle.wait(lock, [] { return pool_busy == 0; });
}

/* Checks a launch like CUDA does, then runs block 0 here and the other blocks on the workers. */
void
groma_emu_run(const char *name, dim3 grid, dim3 block, size_t shmem, cudaStream_t stream, const void *kernel,
			  void (*fn) (void *), void *closure)
{
	const char *fault_at = getenv("GROMA_EMU_FAULT_AT_LAUNCH");
	const char *trace = getenv("GROMA_EMU_TRACE");
	static launch_job job;
	static int	profiling = -1;
	double		start;

	if (broken() != cudaSuccess)
		return;
	if (!valid_stream(stream))
	{
		record(cudaErrorInvalidResourceHandle);
		return;
	}
	if (!valid_configuration(grid, block, shmem))
	{
		complain("launch of %s with grid (%u,%u,%u), block (%u,%u,%u), %zu bytes of shared memory: invalid", name,
				 grid.x, grid.y, grid.z, block.x, block.y, block.z, shmem);
		record(cudaErrorInvalidConfiguration);
		return;
	}
	launches++;
	if (trace && strcmp(trace, "1") == 0)
		fprintf(stderr, "groma CUDA emulator: launch %ld: %s grid (%u,%u,%u) block (%u,%u,%u)%s\n", launches, name,
				grid.x, grid.y, grid.z, block.x, block.y, block.z, groma_emu_replaying ? " (graph)" : "");
	if (fault_at && atol(fault_at) == launches)
	{
		complain("launch %ld (%s): injected illegal address (GROMA_EMU_FAULT_AT_LAUNCH)", launches, name);
		record(cudaErrorIllegalAddress);
		return;
	}
	install_fault_handler();
	if (profiling < 0)
	{
		const char *p = getenv("GROMA_EMU_PROFILE");

		profiling = p && strcmp(p, "1") == 0;
		if (profiling)
			atexit(print_profile);
	}
	start = seconds();
	job.name = name;
	job.fn = fn;
	job.closure = closure;
	job.grid = grid;
	job.block = block;
	job.blocks = (uint64_t) grid.x * grid.y * grid.z;
	/* block 0 here first: it tells whether the kernel needs fibers (a barrier) */
	job.fibers = true;
	if (run_block(&job, 0))
		kernels_with_barriers.insert(kernel);
	job.fibers = kernels_with_barriers.count(kernel) > 0;
	if (job.blocks > 1)
		run_on_workers(&job);
	if (profiling)
	{
		profile[name].first++;
		profile[name].second += seconds() - start;
	}
}

/* Fails the launch (a sticky illegal address) when pointer argument index is not device memory. */
bool
groma_emu_check_argument(const char *name, int index, const void *p)
{
	if (p == NULL || groma_emu_is_device(p, 0))
		return true;
	complain("launch of %s: pointer argument %d (%p) is not device memory; a GPU would fault", name, index, p);
	groma_emu_illegal_address();
	return false;
}
