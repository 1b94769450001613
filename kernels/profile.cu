/*
 * profile.cu - per-op GPU time, for finding where a stage's time goes:
 * with GROMA_CUDA_PROFILE=1 in the environment, groma_cuda_register wraps
 * every op entry point so that it records a CUDA event before and after
 * its work on the stream, and groma_cuda_profile_take returns the elapsed
 * times summed per op (groma-server --bench prints them).  Recording events costs the host a little per op, so
 * wall-clock figures taken while profiling read slightly slow.  An op's
 * time runs from its start event to its end event on the GPU, so it also
 * holds any wait for the host to launch the op's kernels: tiny ops read as
 * their launch cost.
 */
#include "cuda_common.h"
#include "groma_cuda.h"
#include "profile.h"

#include <stdlib.h>

#define MAX_PENDING 4096		/* event pairs recorded before they are read back */
#define MAX_OPS GROMA_CUDA_PROFILE_MAX_OPS	/* distinct op names */

/* One op's totals since the last report. */
struct op_total
{
	const char *name;
	long		calls;
	double		ms;
};

static cudaEvent_t starts[MAX_PENDING],
			ends[MAX_PENDING];
static const char *pending_name[MAX_PENDING];
static int	pending,
			depth,
			n_ops;
static bool events_made,
			events_failed;			/* creating the events failed once: profile nothing */
static op_total totals[MAX_OPS];

/* True when GROMA_CUDA_PROFILE asks for per-op times. */
bool
groma_cuda_profile_wanted(void)
{
	const char *v = getenv("GROMA_CUDA_PROFILE");

	return v != NULL && v[0] != '\0' && v[0] != '0';
}

/* Adds ms to the totals of the op called name (each op's name is one static string: compared by address). */
static void
add_total(const char *name, double ms)
{
	int			i;

	for (i = 0; i < n_ops; i++)
		if (totals[i].name == name)
			break;
	if (i == n_ops)
	{
		if (n_ops == MAX_OPS)
			return;
		totals[n_ops++] = op_total{name, 0, 0.0};
	}
	totals[i].calls++;
	totals[i].ms += ms;
}

/* Reads back every recorded event pair into the totals (waits for the GPU). */
static void
drain(void)
{
	if (pending == 0)
		return;
	cudaEventSynchronize(ends[pending - 1]);
	for (int i = 0; i < pending; i++)
	{
		float		ms = 0.0f;

		if (cudaEventElapsedTime(&ms, starts[i], ends[i]) == cudaSuccess)
			add_total(pending_name[i], ms);
	}
	cudaGetLastError();			/* a failed read is a lost figure, not an op error */
	pending = 0;
}

/* Records the start of op name on the stream; returns the slot for groma_cuda_profile_end (-1: not recorded). */
int
groma_cuda_profile_begin(const char *name)
{
	if (depth++ > 0)
		return -1;				/* an op called from another op counts in its caller */
	if (events_failed)
		return -1;
	if (!events_made)
	{
		for (int i = 0; i < MAX_PENDING; i++)
			if (cudaEventCreate(&starts[i]) != cudaSuccess || cudaEventCreate(&ends[i]) != cudaSuccess)
			{
				cudaGetLastError();
				for (int j = 0; j <= i; j++)
				{
					if (starts[j])
						cudaEventDestroy(starts[j]);
					if (ends[j])
						cudaEventDestroy(ends[j]);
				}
				events_failed = true;
				return -1;
			}
		events_made = true;
	}
	if (pending == MAX_PENDING)
		drain();
	pending_name[pending] = name;
	if (cudaEventRecord(starts[pending], groma_cuda_stream()) != cudaSuccess)
	{
		cudaGetLastError();
		return -1;
	}
	return pending++;
}

/* Records the end of the op whose start took slot. */
void
groma_cuda_profile_end(int slot)
{
	depth--;
	if (slot < 0)
		return;
	if (cudaEventRecord(ends[slot], groma_cuda_stream()) != cudaSuccess)
	{
		cudaGetLastError();
		pending = slot;			/* drop the pair */
	}
}

/* Discards the per-op totals so far; see groma_cuda.h. */
extern "C" void
groma_cuda_profile_reset(void)
{
	if (!groma_cuda_profile_wanted())
		return;
	drain();
	n_ops = 0;
}

/* Copies the per-op totals since the last take, largest first, and starts over; see groma_cuda.h. */
extern "C" int
groma_cuda_profile_take(groma_cuda_op_time *ops, int max)
{
	int			n;

	if (!groma_cuda_profile_wanted())
		return -1;
	drain();
	/* largest first */
	for (int i = 1; i < n_ops; i++)
		for (int j = i; j > 0 && totals[j].ms > totals[j - 1].ms; j--)
		{
			op_total	t = totals[j];

			totals[j] = totals[j - 1];
			totals[j - 1] = t;
		}
	n = n_ops < max ? n_ops : max;
	for (int i = 0; i < n; i++)
		ops[i] = groma_cuda_op_time{totals[i].name, totals[i].calls, totals[i].ms};
	n_ops = 0;
	return n;
}
