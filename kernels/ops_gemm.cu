/*
 * ops_gemm.cu - linear and batched matmul through cuBLAS (fp32).
 *
 * Row-major operands are handed to column-major cuBLAS as their transposes:
 * C = op(A)·op(B) is computed as Cᵀ = op(B)ᵀ·op(A)ᵀ.
 */
#include "cuda_common.h"

/* y[r, :] = b for every row r (b may be NULL: zeros). */
__global__ static void
fill_rows_kernel(float *y, const float *b, int64_t rows, int64_t n)
{
	int64_t		i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i < rows * n)
		y[i] = b ? b[i % n] : 0.0f;
}

/* y[..., N] = x[..., K] · w[N, K]ᵀ (+ b[N]); see ops.h. */
extern "C" groma_status
groma_cuda_linear(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b, groma_tensor *y)
{
	const float one = 1.0f;
	float		beta;
	int64_t		k,
				n,
				m;

	GROMA_TRY(groma_cuda_check_f32("linear", "x", x));
	GROMA_TRY(groma_cuda_check_f32("linear", "w", w));
	GROMA_TRY(groma_cuda_check_f32("linear", "y", y));
	if (b)
		GROMA_TRY(groma_cuda_check_f32("linear", "b", b));
	k = x->shape[x->ndim - 1];
	n = w->shape[0];
	if (w->ndim != 2 || w->shape[1] != k || y->shape[y->ndim - 1] != n ||
		groma_tensor_numel(y) / (n > 0 ? n : 1) != groma_tensor_numel(x) / (k > 0 ? k : 1) ||
		(b && groma_tensor_numel(b) != n))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "linear: shapes do not fit x[..., K] · w[N, K]ᵀ = y[..., N]");
	m = k > 0 ? groma_tensor_numel(x) / k : 0;
	if (m == 0 || n == 0)
		return groma_ok();
	beta = 0.0f;
	if (b || k == 0)
	{
		fill_rows_kernel<<<groma_cuda_blocks(m * n, 256), 256, 0, groma_cuda_stream()>>>(
			(float *) y->data, b ? (const float *) b->data : NULL, m, n);
		GROMA_TRY(groma_cuda_launched("linear bias"));
		beta = 1.0f;
	}
	if (k == 0)
		return groma_ok();
	return groma_cublas_status(cublasSgemm(groma_cuda_blas(), CUBLAS_OP_T, CUBLAS_OP_N, (int) n, (int) m, (int) k,
										   &one, (const float *) w->data, (int) k, (const float *) x->data, (int) k,
										   &beta, (float *) y->data, (int) n), "linear: cublasSgemm");
}

/* c = alpha · op(a) · op(b) over up to two batch dimensions; see ops.h. */
extern "C" groma_status
groma_cuda_matmul(const groma_tensor *a, bool trans_a, const groma_tensor *b, bool trans_b, float alpha,
				  groma_tensor *c)
{
	groma_matrix_view va,
				vb,
				vc;
	int64_t		m,
				k,
				n;
	const float zero = 0.0f;

	GROMA_TRY(groma_matrix_view_of("a", a, GROMA_DEVICE_CUDA, &va));
	GROMA_TRY(groma_matrix_view_of("b", b, GROMA_DEVICE_CUDA, &vb));
	GROMA_TRY(groma_matrix_view_of("c", c, GROMA_DEVICE_CUDA, &vc));
	GROMA_TRY(groma_matrix_product_dims(&va, trans_a, &vb, trans_b, &vc, &m, &k, &n));
	for (int64_t i0 = 0; i0 < vc.batch[0]; i0++)
		for (int64_t i1 = 0; i1 < vc.batch[1]; i1++)
		{
			const float *pa = va.data + i0 * va.bstride[0] + i1 * va.bstride[1];
			const float *pb = vb.data + i0 * vb.bstride[0] + i1 * vb.bstride[1];
			float	   *pc = (float *) vc.data + i0 * vc.bstride[0] + i1 * vc.bstride[1];

			GROMA_TRY(groma_cublas_status(cublasSgemm(groma_cuda_blas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
													  trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, (int) n, (int) m, (int) k,
													  &alpha, pb, (int) vb.ld, pa, (int) va.ld, &zero, pc, (int) vc.ld),
										  "matmul: cublasSgemm"));
		}
	return groma_ok();
}
