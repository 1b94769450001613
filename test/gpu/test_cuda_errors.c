/*
 * test_cuda_errors.c - the CUDA error policy, which needs no GPU: out of
 * memory is reported and leaves the process usable; a sticky error (an
 * illegal address) is reported as a lost device, every later call says so,
 * and groma-server exits with status 3 for it so a supervisor restarts it.
 */
#include <stdio.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "../../kernels/groma_cuda.h"

#include "tap_check.h"

int
main(void)
{
	groma_status st;

	st = groma_cuda_error_status(cudaSuccess, "a call");
	check(st.code == GROMA_OK, "success is GROMA_OK");
	st = groma_cuda_error_status(cudaErrorMemoryAllocation, "cudaMalloc");
	check(st.code == GROMA_ERR_NO_MEMORY && strstr(st.message, "out of GPU memory"), "out of memory is GROMA_ERR_NO_MEMORY");
	check(!groma_cuda_lost(), "and leaves the process usable");
	st = groma_cuda_error_status(cudaErrorInvalidValue, "a launch");
	check(st.code == GROMA_ERR_DEVICE && !groma_cuda_lost(), "an ordinary error is GROMA_ERR_DEVICE, not sticky");
	st = groma_cuda_error_status(cudaErrorIllegalAddress, "a kernel");
	check(st.code == GROMA_ERR_DEVICE_LOST && strstr(st.message, "restart"), "an illegal address is a lost device");
	check(groma_cuda_lost(), "which marks the process lost");
	st = groma_cuda_error_status(cudaSuccess, "a later call");
	check(st.code == GROMA_ERR_DEVICE_LOST, "and every later call fails with GROMA_ERR_DEVICE_LOST");
	st = groma_cuda_error_status(cudaErrorMemoryAllocation, "a later allocation");
	check(st.code == GROMA_ERR_DEVICE_LOST, "an allocation failure after that too");
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
