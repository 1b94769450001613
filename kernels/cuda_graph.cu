/*
 * cuda_graph.cu - recorded device work for groma_graph (ops.h): the
 * context's stream captured into a CUDA graph, instantiated once and
 * launched again at each replay.  A recording remembers the context's
 * buffer generation: when an op's buffer moves, replaying it would read
 * freed memory, so it reports itself stale instead.
 */
#include "cuda_common.h"
#include "profile.h"

#include <stdlib.h>

/* One recording: the executable graph and the buffer generation it saw. */
typedef struct cuda_graph
{
	cudaGraphExec_t exec;
	uint64_t	generation;
} cuda_graph;

/*
 * Starts capturing the context's stream.  The capture belongs to the
 * stream: work any thread queues on it is recorded, not run, so groma's
 * GPU work must stay on one thread (it does: the serve loop's); the
 * thread-local mode only keeps other threads' unrelated calls (cudaMalloc)
 * from spoiling it.
 */
static groma_status
graph_begin(void)
{
	groma_cuda_context *ctx = groma_cuda_ctx();
	groma_status st;

	if (groma_cuda_profile_wanted())
		return groma_error(GROMA_ERR_UNSUPPORTED, "graph: GROMA_CUDA_PROFILE times each op as it runs; no graphs");
	if (ctx->capturing)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "graph: a recording is already open");
	st = groma_cuda_status(cudaStreamBeginCapture(ctx->stream, cudaStreamCaptureModeThreadLocal), "graph capture");
	if (st.code == GROMA_OK)
		ctx->capturing = true;
	return st;
}

/* Ends the capture and instantiates it; a spoiled capture leaves no error pending for the next op. */
static groma_status
graph_end(void **out)
{
	groma_cuda_context *ctx = groma_cuda_ctx();
	cudaGraph_t graph = NULL;
	cudaGraphExec_t exec = NULL;
	cudaError_t err;
	cuda_graph *g;

	*out = NULL;
	if (!ctx->capturing)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "graph: no recording is open");
	err = cudaStreamEndCapture(ctx->stream, &graph);
	ctx->capturing = false;
	/* a refused call during the capture left its error as the last one: the next launch check must not see it */
	(void) cudaGetLastError();
	if (err != cudaSuccess)
	{
		if (graph)
			cudaGraphDestroy(graph);
		return groma_cuda_status(err, "graph capture");
	}
	err = cudaGraphInstantiate(&exec, graph, 0);
	cudaGraphDestroy(graph);
	if (err != cudaSuccess)
	{
		(void) cudaGetLastError();
		return groma_cuda_status(err, "graph instantiate");
	}
	g = (cuda_graph *) malloc(sizeof(*g));
	if (g == NULL)
	{
		cudaGraphExecDestroy(exec);
		return groma_error(GROMA_ERR_NO_MEMORY, "graph: out of memory");
	}
	g->exec = exec;
	g->generation = ctx->generation;
	*out = g;
	return groma_ok();
}

/* True while no buffer the recording reads has moved. */
static bool
graph_current(const void *graph)
{
	return graph != NULL && ((const cuda_graph *) graph)->generation == groma_cuda_ctx()->generation;
}

/* Launches the recording on the stream: one launch for all its kernels. */
static groma_status
graph_replay(void *graph)
{
	groma_cuda_context *ctx = groma_cuda_ctx();

	if (!graph_current(graph))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "graph: the recording is stale (a device buffer moved)");
	ctx->launches++;
	return groma_cuda_status(cudaGraphLaunch(((cuda_graph *) graph)->exec, ctx->stream), "graph launch");
}

/* Frees a recording. */
static void
graph_free(void *graph)
{
	if (graph == NULL)
		return;
	cudaGraphExecDestroy(((cuda_graph *) graph)->exec);
	free(graph);
}

/* Fills the graph entries of groma_cuda_ops. */
void
groma_cuda_register_graphs(void)
{
	groma_cuda_ops.graph_begin = graph_begin;
	groma_cuda_ops.graph_end = graph_end;
	groma_cuda_ops.graph_replay = graph_replay;
	groma_cuda_ops.graph_current = graph_current;
	groma_cuda_ops.graph_free = graph_free;
}
