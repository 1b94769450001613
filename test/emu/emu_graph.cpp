/*
 * emu_graph.cpp - CUDA graphs for the CPU emulator: between
 * cudaStreamBeginCapture and cudaStreamEndCapture a stream's launches,
 * device copies, memsets and cuBLAS calls are recorded with their
 * arguments of the day, not run; cudaGraphLaunch runs them again in order.
 * What a GPU refuses while capturing (a synchronisation, an allocation, a
 * copy with pageable host memory, work on the legacy default stream)
 * invalidates the capture here too, so such code in groma fails on the
 * emulator first.  Work other threads queue on other streams is not
 * checked (groma's GPU work runs on one thread).
 */
#include "emu_cuda.h"

#include <map>
#include <mutex>
#include <vector>

#include <stdio.h>

/* A capture in progress: the work so far, and whether a refused call spoiled it. */
struct capture
{
	std::vector<std::function<void()>> work;
	bool		invalid;
};

struct groma_emu_graph
{
	std::vector<std::function<void()>> work;
};

struct groma_emu_graph_exec
{
	std::vector<std::function<void()>> work;
};

thread_local bool groma_emu_replaying;

static std::mutex capture_lock;
static std::map<cudaStream_t, capture> captures;

/* True while stream is being captured; see emu_cuda.h. */
bool
groma_emu_capturing(cudaStream_t stream)
{
	std::lock_guard<std::mutex> guard(capture_lock);

	return captures.count(stream) > 0;
}

/* True while any stream is being captured; see emu_cuda.h. */
bool
groma_emu_any_capture(void)
{
	std::lock_guard<std::mutex> guard(capture_lock);

	return !captures.empty();
}

/* Appends work to stream's capture; see emu_cuda.h. */
void
groma_emu_capture(cudaStream_t stream, std::function<void()> work)
{
	std::lock_guard<std::mutex> guard(capture_lock);
	auto		it = captures.find(stream);

	if (it != captures.end())
		it->second.work.push_back(std::move(work));
}

/* A call a capture cannot hold: every capture is spoiled; see emu_cuda.h. */
cudaError_t
groma_emu_capture_violation(const char *call)
{
	{
		std::lock_guard<std::mutex> guard(capture_lock);

		for (auto &c : captures)
			c.second.invalid = true;
	}
	fprintf(stderr, "groma CUDA emulator: %s while a stream is captured: the capture is invalidated\n", call);
	return groma_emu_error(cudaErrorStreamCaptureUnsupported);
}

/* Starts recording stream's work (the legacy default stream cannot be captured). */
extern "C" cudaError_t
cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode)
{
	std::lock_guard<std::mutex> guard(capture_lock);

	(void) mode;
	if (stream == NULL)
		return groma_emu_error(cudaErrorStreamCaptureUnsupported);
	if (captures.count(stream) > 0)
		return groma_emu_error(cudaErrorIllegalState);
	captures[stream] = capture{{}, false};
	return cudaSuccess;
}

/* Ends stream's capture: its graph, or NULL and cudaErrorStreamCaptureInvalidated when a refused call spoiled it. */
extern "C" cudaError_t
cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph)
{
	capture		c;

	{
		std::lock_guard<std::mutex> guard(capture_lock);
		auto		it = captures.find(stream);

		if (it == captures.end())
			return groma_emu_error(cudaErrorIllegalState);
		c = std::move(it->second);
		captures.erase(it);
	}
	*graph = NULL;
	if (c.invalid)
		return groma_emu_error(cudaErrorStreamCaptureInvalidated);
	*graph = new groma_emu_graph{std::move(c.work)};
	return cudaSuccess;
}

/* An executable copy of a graph. */
extern "C" cudaError_t
cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags)
{
	(void) flags;
	if (exec == NULL || graph == NULL)
		return groma_emu_error(cudaErrorInvalidValue);
	*exec = new groma_emu_graph_exec{graph->work};
	return cudaSuccess;
}

/* Runs a graph's work in order on stream (not while capturing it: no nested graphs here). */
extern "C" cudaError_t
cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream)
{
	cudaError_t err;

	if (exec == NULL)
		return groma_emu_error(cudaErrorInvalidValue);
	if (groma_emu_capturing(stream))
		return groma_emu_capture_violation("cudaGraphLaunch");
	groma_emu_replaying = true;
	for (auto &w : exec->work)
		w();
	groma_emu_replaying = false;
	err = cudaPeekAtLastError();
	return err == cudaErrorIllegalAddress || err == cudaErrorLaunchFailure ? err : cudaSuccess;
}

/* Frees a graph. */
extern "C" cudaError_t
cudaGraphDestroy(cudaGraph_t graph)
{
	delete graph;
	return cudaSuccess;
}

/* Frees an executable graph. */
extern "C" cudaError_t
cudaGraphExecDestroy(cudaGraphExec_t exec)
{
	delete exec;
	return cudaSuccess;
}
