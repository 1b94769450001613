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

/* One operand as up to two batch dimensions over a row-major matrix (last dimension contiguous). */
struct matrix_view
{
	const float *data;
	int64_t		batch[2],
				bstride[2],
				rows,
				cols,
				ld;
};

/* Describes t (2..4 dims, contiguous last dimension, on the device). */
static groma_status
describe(const char *what, const groma_tensor *t, matrix_view *v)
{
	if (t->dtype != GROMA_F32 || t->device != GROMA_DEVICE_CUDA || t->ndim < 2 ||
		(t->stride[t->ndim - 1] != 1 && t->shape[t->ndim - 1] > 1))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "matmul: %s must be an f32 CUDA tensor of 2-4 dims, last contiguous", what);
	v->data = (const float *) t->data;
	for (int i = 0; i < 2; i++)
	{
		int			d = i - (2 - (t->ndim - 2));

		v->batch[i] = d >= 0 ? t->shape[d] : 1;
		v->bstride[i] = d >= 0 && t->shape[d] > 1 ? t->stride[d] : 0;
	}
	v->rows = t->shape[t->ndim - 2];
	v->cols = t->shape[t->ndim - 1];
	v->ld = t->shape[t->ndim - 2] > 1 ? t->stride[t->ndim - 2] : v->cols;
	if (v->ld < v->cols)
		v->ld = v->cols;
	return groma_ok();
}

/* c = alpha · op(a) · op(b) over up to two batch dimensions; see ops.h. */
extern "C" groma_status
groma_cuda_matmul(const groma_tensor *a, bool trans_a, const groma_tensor *b, bool trans_b, float alpha,
				  groma_tensor *c)
{
	matrix_view va,
				vb,
				vc;
	int64_t		m,
				k,
				n;
	const float zero = 0.0f;

	GROMA_TRY(describe("a", a, &va));
	GROMA_TRY(describe("b", b, &vb));
	GROMA_TRY(describe("c", c, &vc));
	m = trans_a ? va.cols : va.rows;
	k = trans_a ? va.rows : va.cols;
	n = trans_b ? vb.rows : vb.cols;
	if ((trans_b ? vb.cols : vb.rows) != k || vc.rows != m || vc.cols != n)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "matmul: op(a), op(b) and c do not fit");
	for (int i = 0; i < 2; i++)
		if ((va.batch[i] != 1 && va.batch[i] != vc.batch[i]) || (vb.batch[i] != 1 && vb.batch[i] != vc.batch[i]))
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "matmul: batch dimensions do not match c");
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
