/*
 * cuda_backend.cu - the CUDA backend's context (groma_cuda_context: one
 * stream, one cuBLAS handle, the ops' growing buffers), memory entry points
 * and registration into groma_cuda_ops.
 */
#include "cuda_common.h"
#include "groma_cuda.h"
#include "profile.h"

#include <stdio.h>

/* The process's context; see cuda_common.h. */
static groma_cuda_context context = {.gemv = true, .conv_path = GROMA_CONV_AUTO, .attention_path = GROMA_ATTENTION_AUTO};

/* Returns the process's context. */
groma_cuda_context *
groma_cuda_ctx(void)
{
	return &context;
}

/* Returns the context's stream. */
cudaStream_t
groma_cuda_stream(void)
{
	return context.stream;
}

/* Returns the context's cuBLAS handle. */
cublasHandle_t
groma_cuda_blas(void)
{
	return context.blas;
}

/* Grows a context buffer; see cuda_common.h. */
void *
groma_cuda_buffer_reserve(groma_cuda_buffer *buf, size_t bytes, const char *what, groma_status *st)
{
	void	   *grown = NULL;

	*st = groma_ok();
	if (bytes <= buf->cap)
		return buf->data;
	if (context.capturing)
	{
		/* a recorded graph must not see a buffer move (nor may cudaMalloc run while recording) */
		*st = groma_error(GROMA_ERR_UNSUPPORTED, "%s: a buffer would grow while a graph is recorded", what);
		return NULL;
	}
	*st = groma_cuda_status(groma_cuda_malloc(&grown, bytes), what);
	if (st->code != GROMA_OK)
		return NULL;
	cudaFree(buf->data);
	buf->data = grown;
	buf->cap = bytes;
	context.generation++;
	return grown;
}

/* True for the errors that corrupt the CUDA context for the rest of the process. */
static bool
is_sticky(cudaError_t err)
{
	switch (err)
	{
		case cudaErrorIllegalAddress:
		case cudaErrorLaunchFailure:
		case cudaErrorHardwareStackError:
		case cudaErrorIllegalInstruction:
		case cudaErrorMisalignedAddress:
		case cudaErrorInvalidAddressSpace:
		case cudaErrorInvalidPc:
		case cudaErrorAssert:
		case cudaErrorLaunchTimeout:
		case cudaErrorECCUncorrectable:
		case cudaErrorContextIsDestroyed:
			return true;
		default:
			return false;
	}
}

/*
 * Maps a CUDA runtime error to a status: out of memory is GROMA_ERR_NO_MEMORY
 * and leaves the process usable (the error is cleared); a sticky error is
 * GROMA_ERR_DEVICE_LOST, and so is every later call (see groma_cuda.h).
 */
groma_status
groma_cuda_status(cudaError_t err, const char *what)
{
	if (context.lost)
		return groma_error(GROMA_ERR_DEVICE_LOST, "%s: the GPU was lost earlier; restart the process", what);
	if (err == cudaSuccess)
		return groma_ok();
	if (err == cudaErrorMemoryAllocation)
	{
		(void) cudaGetLastError();	/* not sticky: clear it so the next call starts clean */
		return groma_error(GROMA_ERR_NO_MEMORY, "%s: out of GPU memory", what);
	}
	if (is_sticky(err))
	{
		context.lost = true;
		return groma_error(GROMA_ERR_DEVICE_LOST, "%s: %s (%s); the GPU context is unusable, restart the process",
						   what, cudaGetErrorString(err), cudaGetErrorName(err));
	}
	return groma_error(GROMA_ERR_DEVICE, "%s: %s (%s)", what, cudaGetErrorString(err), cudaGetErrorName(err));
}

/* Maps a cuBLAS error to a status; any failure is checked for a sticky CUDA error behind it. */
groma_status
groma_cublas_status(cublasStatus_t st, const char *what)
{
	if (st == CUBLAS_STATUS_SUCCESS)
		return groma_ok();
	if (st == CUBLAS_STATUS_ALLOC_FAILED)
		return groma_error(GROMA_ERR_NO_MEMORY, "%s: cuBLAS is out of memory", what);
	{
		/* after a sticky fault cuBLAS fails in several ways: look at the CUDA error behind any failure */
		groma_status cuda = groma_cuda_status(cudaPeekAtLastError(), what);

		if (cuda.code == GROMA_ERR_DEVICE_LOST)
			return cuda;
	}
	return groma_error(GROMA_ERR_DEVICE, "%s: %s", what, cublasGetStatusString(st));
}

/* True once a sticky error was seen; see groma_cuda.h. */
extern "C" bool
groma_cuda_lost(void)
{
	return context.lost;
}

/* The status of a CUDA error code; see groma_cuda.h. */
extern "C" groma_status
groma_cuda_error_status(int error, const char *what)
{
	return groma_cuda_status((cudaError_t) error, what);
}

/* Fails unless t is a contiguous f32 tensor on the device. */
groma_status
groma_cuda_check_f32(const char *op, const char *what, const groma_tensor *t)
{
	char		buf[64];

	if (t == NULL || t->data == NULL)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: %s is missing", op, what);
	if (t->dtype != GROMA_F32 || t->device != GROMA_DEVICE_CUDA || !groma_tensor_is_contiguous(t))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: %s %s must be a contiguous f32 CUDA tensor", op, what,
						   groma_tensor_shape_str(t, buf, sizeof(buf)));
	return groma_ok();
}

/* Fails unless w is a contiguous f32, bf16 or f16 CUDA tensor (a weight of linear or conv2d). */
groma_status
groma_cuda_check_weight(const char *op, const groma_tensor *w)
{
	if (w == NULL || w->data == NULL || w->device != GROMA_DEVICE_CUDA || !groma_tensor_is_contiguous(w) ||
		(w->dtype != GROMA_F32 && w->dtype != GROMA_BF16 && w->dtype != GROMA_F16))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: w must be a contiguous f32, bf16 or f16 CUDA tensor", op);
	return groma_ok();
}

/* Kernels and graphs queued from the host; see groma_cuda.h. */
extern "C" uint64_t
groma_cuda_launch_count(void)
{
	return context.launches;
}

/* Every device allocation of the ops and arenas, counted (see groma_cuda_allocations). */
static uint64_t allocations;

/* cudaMalloc, counted when it succeeds. */
cudaError_t
groma_cuda_malloc(void **p, size_t bytes)
{
	cudaError_t err = cudaMalloc(p, bytes);

	if (err == cudaSuccess)
		allocations++;
	return err;
}

/* How many device allocations were made; see groma_cuda.h. */
extern "C" uint64_t
groma_cuda_allocations(void)
{
	return allocations;
}

/*
 * Allocates device memory; NULL on failure, which groma_cuda_status
 * classifies: out of memory is cleared, a pending sticky error (reported by
 * cudaMalloc too) marks the process lost (see groma_cuda_lost).
 */
static void *
device_alloc(size_t bytes)
{
	void	   *p = NULL;
	cudaError_t err = groma_cuda_malloc(&p, bytes);

	if (err != cudaSuccess || context.lost)
	{
		(void) groma_cuda_status(err, "cudaMalloc");
		if (err == cudaSuccess)
			cudaFree(p);
		return NULL;
	}
	return p;
}

/* Frees device memory. */
static void
device_free(void *p)
{
	cudaFree(p);
}

/* Copies host bytes to the device (synchronous). */
static groma_status
to_device(void *dst, const void *src, size_t bytes)
{
	return groma_cuda_status(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, context.stream) == cudaSuccess
							 ? cudaStreamSynchronize(context.stream) : cudaGetLastError(), "copy to the GPU");
}

/* Copies device bytes to the host (synchronous). */
static groma_status
to_host(void *dst, const void *src, size_t bytes)
{
	return groma_cuda_status(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, context.stream) == cudaSuccess
							 ? cudaStreamSynchronize(context.stream) : cudaGetLastError(), "copy from the GPU");
}

/* Waits for every queued op and reports the first asynchronous error. */
static groma_status
synchronize(void)
{
	return groma_cuda_status(cudaStreamSynchronize(context.stream), "GPU work");
}

/*
 * Creates the stream and cuBLAS handle and fills groma_cuda_ops; see
 * groma_cuda.h.  Call it once, before any other thread uses the ops.
 */
extern "C" groma_status
groma_cuda_register(void)
{
	char		why[256];
	bool		profile = groma_cuda_profile_wanted();

	if (groma_cuda_ops.name != NULL)
		return groma_ok();
	if (groma_cuda_device_count(why, sizeof(why)) == 0)
		return groma_error(GROMA_ERR_DEVICE, "no usable GPU: %s", why);
	{
		groma_status st = groma_cuda_status(cudaStreamCreateWithFlags(&context.stream, cudaStreamNonBlocking),
											"cudaStreamCreate");

		if (st.code == GROMA_OK)
			st = groma_cublas_status(cublasCreate(&context.blas), "cublasCreate");
		if (st.code == GROMA_OK)
			st = groma_cublas_status(cublasSetStream(context.blas, context.stream), "cublasSetStream");
		/* fp32 GEMMs stay fp32: no TF32 unless a caller asks for it */
		if (st.code == GROMA_OK)
			st = groma_cublas_status(cublasSetMathMode(context.blas, CUBLAS_PEDANTIC_MATH), "cublasSetMathMode");
		if (st.code != GROMA_OK)
		{
			if (context.blas)
				cublasDestroy(context.blas);
			if (context.stream)
				cudaStreamDestroy(context.stream);
			context.blas = NULL;
			context.stream = NULL;
			return st;
		}
	}
	/* with GROMA_CUDA_PROFILE set, each op records its GPU time (profile.cu) */
	groma_cuda_ops.alloc = device_alloc;
	groma_cuda_ops.free = device_free;
	groma_cuda_ops.to_device = groma_cuda_profiled<to_device>("to_device", profile);
	groma_cuda_ops.to_host = groma_cuda_profiled<to_host>("to_host", profile);
	groma_cuda_ops.synchronize = synchronize;
	groma_cuda_ops.linear = groma_cuda_profiled<groma_cuda_linear>("linear", profile);
	groma_cuda_ops.linear_many = groma_cuda_profiled<groma_cuda_linear_many>("linear_many", profile);
	groma_cuda_ops.linear_swiglu = groma_cuda_profiled<groma_cuda_linear_swiglu>("linear_swiglu", profile);
	groma_cuda_ops.matmul = groma_cuda_profiled<groma_cuda_matmul>("matmul", profile);
	groma_cuda_ops.unary = groma_cuda_profiled<groma_cuda_unary>("unary", profile);
	groma_cuda_ops.silu_mul = groma_cuda_profiled<groma_cuda_silu_mul>("silu_mul", profile);
	groma_cuda_ops.binary = groma_cuda_profiled<groma_cuda_binary>("binary", profile);
	groma_cuda_ops.scale = groma_cuda_profiled<groma_cuda_scale>("scale", profile);
	groma_cuda_ops.copy = groma_cuda_profiled<groma_cuda_copy>("copy", profile);
	groma_cuda_ops.fill = groma_cuda_profiled<groma_cuda_fill>("fill", profile);
	groma_cuda_ops.lost = groma_cuda_lost;
	groma_cuda_ops.convert = groma_cuda_profiled<groma_cuda_convert>("convert", profile);
	groma_cuda_ops.fill_random = groma_cuda_profiled<groma_cuda_fill_random>("fill_random", profile);
	groma_cuda_ops.inverse_sigmoid = groma_cuda_profiled<groma_cuda_inverse_sigmoid>("inverse_sigmoid", profile);
	groma_cuda_ops.softmax = groma_cuda_profiled<groma_cuda_softmax>("softmax", profile);
	groma_cuda_ops.layer_norm = groma_cuda_profiled<groma_cuda_layer_norm>("layer_norm", profile);
	groma_cuda_ops.rms_norm = groma_cuda_profiled<groma_cuda_rms_norm>("rms_norm", profile);
	groma_cuda_ops.add_rms_norm = groma_cuda_profiled<groma_cuda_add_rms_norm>("add_rms_norm", profile);
	groma_cuda_ops.argmax_rows = groma_cuda_profiled<groma_cuda_argmax_rows>("argmax_rows", profile);
	groma_cuda_ops.attention_decode_rows =
		groma_cuda_profiled<groma_cuda_attention_decode_rows>("attention_decode_rows", profile);
	groma_cuda_ops.rope = groma_cuda_profiled<groma_cuda_rope>("rope", profile);
	groma_cuda_ops.attention = groma_cuda_profiled<groma_cuda_attention>("attention", profile);
	groma_cuda_ops.attention_in = groma_cuda_profiled<groma_cuda_attention_in>("attention", profile);
	groma_cuda_ops.conv2d = groma_cuda_profiled<groma_cuda_conv2d>("conv2d", profile);
	groma_cuda_ops.group_norm = groma_cuda_profiled<groma_cuda_group_norm>("group_norm", profile);
	groma_cuda_ops.layer_norm_channels =
		groma_cuda_profiled<groma_cuda_layer_norm_channels>("layer_norm_channels", profile);
	groma_cuda_ops.embedding = groma_cuda_profiled<groma_cuda_embedding>("embedding", profile);
	groma_cuda_ops.resize_bilinear = groma_cuda_profiled<groma_cuda_resize_bilinear>("resize_bilinear", profile);
	groma_cuda_ops.ms_deform_attn = groma_cuda_profiled<groma_cuda_ms_deform_attn>("ms_deform_attn", profile);
	groma_cuda_ops.roi_align = groma_cuda_profiled<groma_cuda_roi_align>("roi_align", profile);
	groma_cuda_ops.deform_locations = groma_cuda_profiled<groma_cuda_deform_locations>("deform_locations", profile);
	groma_cuda_ops.topk_rows = groma_cuda_profiled<groma_cuda_topk_rows>("topk_rows", profile);
	groma_cuda_ops.proposal_queries = groma_cuda_profiled<groma_cuda_proposal_queries>("proposal_queries", profile);
	groma_cuda_register_graphs();
	groma_cuda_ops.name = "cuda";
	return groma_ok();
}
