/*
 * gpu_skip.h - the start of every GPU test program: where no GPU is usable
 * it prints why and a summary of one skip, so the runner counts a skip, not
 * a pass.
 */
#ifndef GROMA_GPU_SKIP_H
#define GROMA_GPU_SKIP_H

#include <stdbool.h>
#include <stdio.h>

#include "../../kernels/groma_cuda.h"

/* Prints the skip lines for test `what` and returns true when no GPU is usable (the CUDA runtime's reason). */
static inline bool
gpu_test_skipped(const char *what)
{
	char		why[256] = "";

	if (groma_cuda_device_count(why, sizeof(why)) != 0)
		return false;
	printf("# SKIP %s: no usable GPU (%s)\n", what, why);
	printf("0 passed, 0 failed, 1 skipped\n");
	return true;
}

#endif							/* GROMA_GPU_SKIP_H */
