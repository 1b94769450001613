/*
 * emu_cublas.cpp - cuBLAS for the CPU emulator: the argument rules of
 * cublasSgemm/cublasGemmEx (cuBLAS's own INVALID_VALUE cases), operands
 * that must lie inside device allocations, and the products computed by
 * OpenBLAS (16-bit operands widened to f32 first, f32 accumulation).
 * While the handle's stream is captured, a product is recorded for the
 * graph instead (emu_graph.cpp).
 */
#include "emu_cuda.h"

#include <cblas.h>

#include <stdio.h>
#include <stdlib.h>

#include <vector>

struct groma_emu_blas
{
	cudaStream_t stream;
	cublasMath_t math;
};

/* A handle, when a device is present. */
extern "C" cublasStatus_t
cublasCreate(cublasHandle_t *handle)
{
	int			n;

	if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0)
		return CUBLAS_STATUS_NOT_INITIALIZED;
	*handle = new groma_emu_blas{NULL, CUBLAS_DEFAULT_MATH};
	return CUBLAS_STATUS_SUCCESS;
}

/* Frees a handle. */
extern "C" cublasStatus_t
cublasDestroy(cublasHandle_t handle)
{
	if (handle == NULL)
		return CUBLAS_STATUS_NOT_INITIALIZED;
	delete handle;
	return CUBLAS_STATUS_SUCCESS;
}

/* Records the stream (work runs at once anyway). */
extern "C" cublasStatus_t
cublasSetStream(cublasHandle_t handle, cudaStream_t stream)
{
	if (handle == NULL)
		return CUBLAS_STATUS_NOT_INITIALIZED;
	handle->stream = stream;
	return CUBLAS_STATUS_SUCCESS;
}

/* Records the math mode (the emulator always computes in f32). */
extern "C" cublasStatus_t
cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
{
	if (handle == NULL)
		return CUBLAS_STATUS_NOT_INITIALIZED;
	handle->math = mode;
	return CUBLAS_STATUS_SUCCESS;
}

/* Version 0: no real cuBLAS here. */
extern "C" cublasStatus_t
cublasGetVersion(cublasHandle_t handle, int *version)
{
	if (handle == NULL)
		return CUBLAS_STATUS_NOT_INITIALIZED;
	*version = 0;				/* no real cuBLAS here */
	return CUBLAS_STATUS_SUCCESS;
}

/* cuBLAS's name of a status. */
extern "C" const char *
cublasGetStatusString(cublasStatus_t status)
{
	switch (status)
	{
		case CUBLAS_STATUS_SUCCESS:
			return "CUBLAS_STATUS_SUCCESS";
		case CUBLAS_STATUS_NOT_INITIALIZED:
			return "CUBLAS_STATUS_NOT_INITIALIZED";
		case CUBLAS_STATUS_ALLOC_FAILED:
			return "CUBLAS_STATUS_ALLOC_FAILED";
		case CUBLAS_STATUS_INVALID_VALUE:
			return "CUBLAS_STATUS_INVALID_VALUE";
		case CUBLAS_STATUS_EXECUTION_FAILED:
			return "CUBLAS_STATUS_EXECUTION_FAILED";
		case CUBLAS_STATUS_NOT_SUPPORTED:
			return "CUBLAS_STATUS_NOT_SUPPORTED";
	}
	return "CUBLAS_STATUS_UNKNOWN";
}

/* Element size of a GEMM operand type, 0 for a type the emulator does not take. */
static size_t
type_bytes(cudaDataType_t t)
{
	return t == CUDA_R_32F ? 4 : t == CUDA_R_16F || t == CUDA_R_16BF ? 2 : 0;
}

/* True when the column-major [rows, cols] operand with leading dimension ld lies in one device allocation. */
static bool
operand_in_device(const char *call, const char *which, const void *p, int rows, int cols, int ld, size_t elem)
{
	size_t		bytes = ((size_t) (cols - 1) * (size_t) ld + (size_t) rows) * elem;

	if (groma_emu_is_device(p, bytes))
		return true;
	fprintf(stderr, "groma CUDA emulator: %s: %s %p ([%d x %d], ld %d) is not inside one device allocation; a GPU "
			"would fault\n", call, which, p, rows, cols, ld);
	return false;
}

/* Widens a column-major [rows, cols] operand of type t (ld-strided) into a packed f32 copy. */
static std::vector<float>
widen(const void *p, cudaDataType_t t, int rows, int cols, int ld)
{
	std::vector<float> out((size_t) rows * cols);

	for (int c = 0; c < cols; c++)
		for (int r = 0; r < rows; r++)
		{
			size_t		i = (size_t) c * ld + r;

			out[(size_t) c * rows + r] = t == CUDA_R_32F ? ((const float *) p)[i]
				: t == CUDA_R_16BF ? __bfloat162float(((const __nv_bfloat16 *) p)[i])
				: __half2float(((const __half *) p)[i]);
		}
	return out;
}

/* The common body of Sgemm and GemmEx: checks like cuBLAS, then C = alpha op(A) op(B) + beta C. */
static cublasStatus_t
gemm(const char *call, cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
	 float alpha, const void *a, cudaDataType_t at, int lda, const void *b, cudaDataType_t bt, int ldb, float beta,
	 float *c, int ldc)
{
	int			a_rows = ta == CUBLAS_OP_N ? m : k,
				a_cols = ta == CUBLAS_OP_N ? k : m,
				b_rows = tb == CUBLAS_OP_N ? k : n,
				b_cols = tb == CUBLAS_OP_N ? n : k;

	if (handle == NULL)
		return CUBLAS_STATUS_NOT_INITIALIZED;
	if (m < 0 || n < 0 || k < 0 || lda < (a_rows > 1 ? a_rows : 1) || ldb < (b_rows > 1 ? b_rows : 1) ||
		ldc < (m > 1 ? m : 1) || (ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) || (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T))
		return CUBLAS_STATUS_INVALID_VALUE;
	if (groma_emu_capturing(handle->stream))
	{
		/* checked now, as cuBLAS checks while capturing; recorded with today's operands and run at each replay */
		if (m > 0 && n > 0 &&
			((k > 0 && (!operand_in_device(call, "A", a, a_rows, a_cols, lda, type_bytes(at)) ||
						!operand_in_device(call, "B", b, b_rows, b_cols, ldb, type_bytes(bt)))) ||
			 !operand_in_device(call, "C", c, m, n, ldc, 4)))
		{
			groma_emu_illegal_address();
			return CUBLAS_STATUS_EXECUTION_FAILED;
		}
		groma_emu_capture(handle->stream, [=]() {
			(void) gemm(call, handle, ta, tb, m, n, k, alpha, a, at, lda, b, bt, ldb, beta, c, ldc);
		});
		return CUBLAS_STATUS_SUCCESS;
	}
	if (cudaPeekAtLastError() == cudaErrorIllegalAddress)
		return CUBLAS_STATUS_EXECUTION_FAILED;
	if (m == 0 || n == 0)
		return CUBLAS_STATUS_SUCCESS;
	if ((k > 0 && (!operand_in_device(call, "A", a, a_rows, a_cols, lda, type_bytes(at)) ||
				   !operand_in_device(call, "B", b, b_rows, b_cols, ldb, type_bytes(bt)))) ||
		!operand_in_device(call, "C", c, m, n, ldc, 4))
	{
		groma_emu_illegal_address();
		return CUBLAS_STATUS_EXECUTION_FAILED;
	}
	if (k == 0)
	{
		for (int j = 0; j < n; j++)
			for (int i = 0; i < m; i++)
				c[(size_t) j * ldc + i] = beta == 0.0f ? 0.0f : beta * c[(size_t) j * ldc + i];
		return CUBLAS_STATUS_SUCCESS;
	}
	if (beta == 0.0f)			/* cuBLAS does not read C when beta is zero: it may hold NaN */
		for (int j = 0; j < n; j++)
			for (int i = 0; i < m; i++)
				c[(size_t) j * ldc + i] = 0.0f;
	{
		std::vector<float> wa = widen(a, at, a_rows, a_cols, lda);
		std::vector<float> wb = widen(b, bt, b_rows, b_cols, ldb);

		cblas_sgemm(CblasColMajor, ta == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
					tb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, m, n, k, alpha, wa.data(), a_rows, wb.data(),
					b_rows, beta, c, ldc);
	}
	return CUBLAS_STATUS_SUCCESS;
}

/* C = alpha op(A) op(B) + beta C in f32, column-major. */
extern "C" cublasStatus_t
cublasSgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
			const float *alpha, const float *a, int lda, const float *b, int ldb, const float *beta, float *c,
			int ldc)
{
	return gemm("cublasSgemm", handle, transa, transb, m, n, k, *alpha, a, CUDA_R_32F, lda, b, CUDA_R_32F, ldb,
				*beta, c, ldc);
}

/* cublasSgemm over batch matrices stride_a/b/c elements apart (a stride may be 0). */
extern "C" cublasStatus_t
cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
						  int k, const float *alpha, const float *a, int lda, long long stride_a, const float *b,
						  int ldb, long long stride_b, const float *beta, float *c, int ldc, long long stride_c,
						  int batch)
{
	if (batch < 0)
		return CUBLAS_STATUS_INVALID_VALUE;
	for (int i = 0; i < batch; i++)
	{
		cublasStatus_t st = gemm("cublasSgemmStridedBatched", handle, transa, transb, m, n, k, *alpha,
								 a + i * stride_a, CUDA_R_32F, lda, b + i * stride_b, CUDA_R_32F, ldb, *beta,
								 c + i * stride_c, ldc);

		if (st != CUBLAS_STATUS_SUCCESS)
			return st;
	}
	return CUBLAS_STATUS_SUCCESS;
}

/* cublasSgemm with 16-bit A and B (widened to f32) and an f32 C; other types are NOT_SUPPORTED. */
extern "C" cublasStatus_t
cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
			 const void *alpha, const void *a, cudaDataType_t atype, int lda, const void *b, cudaDataType_t btype,
			 int ldb, const void *beta, void *c, cudaDataType_t ctype, int ldc, cublasComputeType_t compute,
			 cublasGemmAlgo_t algo)
{
	(void) algo;
	if (ctype != CUDA_R_32F || compute != CUBLAS_COMPUTE_32F || type_bytes(atype) == 0 || atype != btype)
		return CUBLAS_STATUS_NOT_SUPPORTED;
	return gemm("cublasGemmEx", handle, transa, transb, m, n, k, *(const float *) alpha, a, atype, lda, b, btype,
				ldb, *(const float *) beta, (float *) c, ldc);
}

/* cublasGemmEx over a batch of strided operands (a stride of 0 shares an operand); same types as cublasGemmEx. */
extern "C" cublasStatus_t
cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
						   int k, const void *alpha, const void *a, cudaDataType_t atype, int lda, long long stride_a,
						   const void *b, cudaDataType_t btype, int ldb, long long stride_b, const void *beta, void *c,
						   cudaDataType_t ctype, int ldc, long long stride_c, int batch, cublasComputeType_t compute,
						   cublasGemmAlgo_t algo)
{
	(void) algo;
	if (ctype != CUDA_R_32F || compute != CUBLAS_COMPUTE_32F || type_bytes(atype) == 0 || atype != btype)
		return CUBLAS_STATUS_NOT_SUPPORTED;
	if (batch < 0)
		return CUBLAS_STATUS_INVALID_VALUE;
	for (int i = 0; i < batch; i++)
	{
		cublasStatus_t st = gemm("cublasGemmStridedBatchedEx", handle, transa, transb, m, n, k,
								 *(const float *) alpha, (const char *) a + i * stride_a * type_bytes(atype), atype,
								 lda, (const char *) b + i * stride_b * type_bytes(btype), btype, ldb,
								 *(const float *) beta, (float *) c + i * stride_c, ldc);

		if (st != CUBLAS_STATUS_SUCCESS)
			return st;
	}
	return CUBLAS_STATUS_SUCCESS;
}
