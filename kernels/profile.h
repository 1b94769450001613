/*
 * profile.h - the per-op GPU timer behind GROMA_CUDA_PROFILE (profile.cu),
 * and the wrapper that groma_cuda_register puts around each op entry point
 * when it is on.  Internal to kernels/.
 */
#ifndef GROMA_CUDA_PROFILE_H
#define GROMA_CUDA_PROFILE_H

#include "../src/runtime/status.h"

/* True when GROMA_CUDA_PROFILE asks for per-op times. */
bool		groma_cuda_profile_wanted(void);

/* Records the start of op name on the stream; returns the slot for groma_cuda_profile_end (-1: not recorded). */
int			groma_cuda_profile_begin(const char *name);

/* Records the end of the op whose start took slot. */
void		groma_cuda_profile_end(int slot);

/* An op entry point Fn, timed under the name given to groma_cuda_profiled. */
template <auto Fn> struct groma_profiled_op;
template <typename... Args, groma_status (*Fn) (Args...)>
struct groma_profiled_op<Fn>
{
	static const char *name;

	/* Calls Fn between two events. */
	static groma_status
	call(Args... args)
	{
		int			slot = groma_cuda_profile_begin(name);
		groma_status st = Fn(args...);

		groma_cuda_profile_end(slot);
		return st;
	}
};
template <typename... Args, groma_status (*Fn) (Args...)>
const char *groma_profiled_op<Fn>::name = "";

/* Returns Fn itself, or Fn timed under name when profiling is on. */
template <auto Fn>
static inline decltype(Fn)
groma_cuda_profiled(const char *name, bool on)
{
	groma_profiled_op<Fn>::name = name;
	return on ? &groma_profiled_op<Fn>::call : Fn;
}

#endif							/* GROMA_CUDA_PROFILE_H */
