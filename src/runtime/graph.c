/*
 * graph.c - recorded device work (groma_graph, see ops.h): the device
 * backend records and replays; this file keeps the handle and refuses on
 * the CPU, where there is nothing to launch.
 */
#include <stdlib.h>

#include "device_ops.h"
#include "ops.h"

struct groma_graph
{
	groma_device device;
	void	   *handle;			/* the backend's recording */
};

/* Starts recording; see ops.h. */
groma_status
groma_graph_begin(groma_device device)
{
	if (device != GROMA_DEVICE_CUDA)
		return groma_error(GROMA_ERR_UNSUPPORTED, "graph: the CPU runs ops as they come; nothing to record");
	return GROMA_DEVICE_CALL("graph_begin", graph_begin);
}

/* Ends a recording; see ops.h. */
groma_status
groma_graph_end(groma_device device, groma_graph **graph)
{
	void	   *handle = NULL;
	groma_status st;

	*graph = NULL;
	if (device != GROMA_DEVICE_CUDA)
		return groma_error(GROMA_ERR_UNSUPPORTED, "graph: the CPU runs ops as they come; nothing to record");
	st = GROMA_DEVICE_CALL("graph_end", graph_end, &handle);
	if (st.code != GROMA_OK)
		return st;
	*graph = malloc(sizeof(**graph));
	if (*graph == NULL)
	{
		groma_cuda_ops.graph_free(handle);
		return groma_error(GROMA_ERR_NO_MEMORY, "graph: out of memory");
	}
	(*graph)->device = device;
	(*graph)->handle = handle;
	return groma_ok();
}

/* Replays a recording; see ops.h. */
groma_status
groma_graph_replay(const groma_graph *graph)
{
	if (graph == NULL)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "graph: nothing to replay");
	/* the device refuses a stale recording itself (it keeps the buffer generation) */
	return GROMA_DEVICE_CALL("graph_replay", graph_replay, graph->handle);
}

/* Whether a recording is still current; see ops.h. */
bool
groma_graph_current(const groma_graph *graph)
{
	return graph != NULL && groma_cuda_ops.graph_current != NULL && groma_cuda_ops.graph_current(graph->handle);
}

/* Frees a recording; see ops.h. */
void
groma_graph_free(groma_graph *graph)
{
	if (graph == NULL)
		return;
	if (groma_cuda_ops.graph_free)
		groma_cuda_ops.graph_free(graph->handle);
	free(graph);
}
