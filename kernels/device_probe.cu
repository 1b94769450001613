/*
 * device_probe.cu - is there a GPU, and what is it (CUDA runtime + cuBLAS).
 */
#include "groma_cuda.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <unistd.h>

/* Returns the number of usable CUDA devices, or 0 with the runtime's reason in why. */
extern "C" int
groma_cuda_device_count(char *why, size_t why_len)
{
	int			n = 0;
	cudaError_t err = cudaGetDeviceCount(&n);

	if (err != cudaSuccess)
	{
		/* without the NVIDIA driver the runtime blames the driver's version: say what is really missing */
		if (access("/dev/nvidiactl", F_OK) != 0)
			snprintf(why, why_len, "no GPU found: no NVIDIA driver is loaded (/dev/nvidiactl is missing; "
					 "cudaGetDeviceCount: %s)", cudaGetErrorString(err));
		else
			snprintf(why, why_len, "cudaGetDeviceCount: %s", cudaGetErrorString(err));
		return 0;
	}
	if (n == 0)
		snprintf(why, why_len, "cudaGetDeviceCount found no CUDA device");
	return n;
}

/* Describes device 0 and the cuBLAS library it will use into buf. */
extern "C" groma_status
groma_cuda_describe_device(char *buf, size_t buf_len)
{
	cudaDeviceProp prop;
	cublasHandle_t handle = NULL;
	cublasStatus_t bst;
	cudaError_t err = cudaGetDeviceProperties(&prop, 0);
	int			version = 0;

	if (err != cudaSuccess)
		return groma_error(GROMA_ERR_DEVICE, "cudaGetDeviceProperties: %s", cudaGetErrorString(err));
	bst = cublasCreate(&handle);
	if (bst != CUBLAS_STATUS_SUCCESS)
		return groma_error(GROMA_ERR_DEVICE, "cublasCreate: %s", cublasGetStatusString(bst));
	bst = cublasGetVersion(handle, &version);
	cublasDestroy(handle);
	if (bst != CUBLAS_STATUS_SUCCESS)
		return groma_error(GROMA_ERR_DEVICE, "cublasGetVersion: %s", cublasGetStatusString(bst));
	snprintf(buf, buf_len, "%s, %.1f GiB, compute %d.%d, cuBLAS %d", prop.name,
			 prop.totalGlobalMem / 1073741824.0, prop.major, prop.minor, version);
	return groma_ok();
}

/* Free and total memory of device 0; see groma_cuda.h. */
extern "C" groma_status
groma_cuda_memory(size_t *free_bytes, size_t *total_bytes)
{
	cudaError_t err = cudaMemGetInfo(free_bytes, total_bytes);

	if (err != cudaSuccess)
		return groma_cuda_error_status((int) err, "cudaMemGetInfo");
	return groma_ok();
}
