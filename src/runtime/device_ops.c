/*
 * device_ops.c - the (initially empty) table of accelerator entry points.
 */
#include "device_ops.h"

groma_device_ops groma_cuda_ops;

/* Returns the error for a device op without a registered implementation. */
groma_status
groma_no_device_op(const char *op)
{
	return groma_error(GROMA_ERR_UNSUPPORTED, "%s: tensors are on a CUDA device but %s", op,
					   groma_cuda_ops.name ? "this op has no CUDA implementation yet"
					   : "no CUDA backend is registered (CPU-only build, or groma_cuda_register() not called)");
}
