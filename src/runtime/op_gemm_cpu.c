/*
 * op_gemm_cpu.c - linear and batched matmul through OpenBLAS, split over the CPU pool.
 */
#include <stdlib.h>
#include <string.h>

#include "cpu_parallel.h"
#include "device_ops.h"
#include "matrix_view.h"
#include "op_check.h"
#include "ops.h"

/* linear with 16-bit weights: widens w to f32 for this call, then the f32 path. */
static groma_status
linear_widened(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b, groma_tensor *y)
{
	groma_tensor wide;
	groma_status st = groma_widen_weight("linear", w, &wide);

	if (st.code == GROMA_OK)
		st = groma_linear(x, &wide, b, y);
	free(wide.data);
	return st;
}

/* y[..., N] = x[..., K] · w[N, K]^T (+ b[N]). */
groma_status
groma_linear(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b, groma_tensor *y)
{
	int64_t		k,
				n,
				m;
	float	   *out;

	if (groma_on_device(x))
		return GROMA_DEVICE_CALL("linear", linear, x, w, b, y);
	if (w->dtype == GROMA_BF16 || w->dtype == GROMA_F16)
		return linear_widened(x, w, b, y);
	GROMA_TRY(groma_check_f32("linear", "x", x));
	if (w->dtype == GROMA_I8 && w->device == GROMA_DEVICE_CPU && w->data != NULL)
		GROMA_TRY(groma_check_ndim("linear", "w", w, 2));
	else
		GROMA_TRY(groma_check_f32("linear", "w", w));
	GROMA_TRY(groma_check_f32("linear", "y", y));
	GROMA_TRY(groma_check_ndim("linear", "x", x, -1));
	GROMA_TRY(groma_check_ndim("linear", "w", w, 2));
	k = x->shape[x->ndim - 1];
	n = w->shape[0];
	GROMA_TRY(groma_check_dim("linear", "w", w, 1, k));
	GROMA_TRY(groma_check_ndim("linear", "y", y, x->ndim));
	for (int d = 0; d < x->ndim - 1; d++)
		GROMA_TRY(groma_check_dim("linear", "y", y, d, x->shape[d]));
	GROMA_TRY(groma_check_dim("linear", "y", y, -1, n));
	if (b != NULL)
	{
		GROMA_TRY(groma_check_f32("linear", "b", b));
		if (groma_tensor_numel(b) != n)
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "linear: bias has %lld values for %lld outputs",
							   (long long) groma_tensor_numel(b), (long long) n);
	}
	m = k > 0 ? groma_tensor_numel(x) / k : 0;
	if (m == 0 || n == 0)
		return groma_ok();
	if (x->data == y->data)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "linear: y must not alias x");
	out = y->data;
	if (b != NULL)
		for (int64_t r = 0; r < m; r++)
			memcpy(out + r * n, b->data, (size_t) n * sizeof(float));
	if (k == 0)
	{
		if (b == NULL)
			memset(out, 0, (size_t) (m * n) * sizeof(float));
		return groma_ok();
	}
	if (w->dtype == GROMA_I8)
		return groma_linear_int8_cpu(x->data, w, b != NULL ? 1.0f : 0.0f, out, m, n, k);
	groma_sgemm(false, true, m, n, k, 1.0f, x->data, k, w->data, k, b != NULL ? 1.0f : 0.0f, out, n);
	return groma_ok();
}

/* y[i] = x · w[i]ᵀ (+ b[i]) for count weights; see ops.h. */
groma_status
groma_linear_many(const groma_tensor *x, int count, const groma_tensor *const *w, const groma_tensor *const *b,
				  groma_tensor *const *y)
{
	if (count < 0 || count > 4)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "linear_many: %d weights, at most 4", count);
	if (groma_on_device(x))
		return GROMA_DEVICE_CALL("linear_many", linear_many, x, count, w, b, y);
	for (int i = 0; i < count; i++)
		GROMA_TRY(groma_linear(x, w[i], b ? b[i] : NULL, y[i]));
	return groma_ok();
}

/* gate = silu(x · w_gateᵀ) ⊙ (x · w_upᵀ), up a work buffer; see ops.h. */
groma_status
groma_linear_swiglu(const groma_tensor *x, const groma_tensor *w_gate, const groma_tensor *w_up, groma_tensor *gate,
					groma_tensor *up)
{
	if (gate->data == up->data)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "linear_swiglu: gate and up must be separate buffers");
	if (w_gate->dtype != w_up->dtype || !groma_tensor_same_shape(w_gate, w_up))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "linear_swiglu: w_gate and w_up differ in shape or dtype");
	if (groma_on_device(x))
		return GROMA_DEVICE_CALL("linear_swiglu", linear_swiglu, x, w_gate, w_up, gate, up);
	GROMA_TRY(groma_linear_many(x, 2, (const groma_tensor *[]) {w_gate, w_up}, NULL, (groma_tensor *[]) {gate, up}));
	return groma_silu_mul(gate, up, gate);
}

/* c = alpha · op(a) · op(b) over up to two batch dimensions; see ops.h. */
groma_status
groma_matmul(const groma_tensor *a, bool trans_a, const groma_tensor *b, bool trans_b,
			 float alpha, groma_tensor *c)
{
	groma_matrix_view va,
				vb,
				vc;
	int64_t		m,
				k,
				n;

	if (groma_on_device(a))
		return GROMA_DEVICE_CALL("matmul", matmul, a, trans_a, b, trans_b, alpha, c);
	GROMA_TRY(groma_matrix_view_of("a", a, GROMA_DEVICE_CPU, &va));
	GROMA_TRY(groma_matrix_view_of("b", b, GROMA_DEVICE_CPU, &vb));
	GROMA_TRY(groma_matrix_view_of("c", c, GROMA_DEVICE_CPU, &vc));
	GROMA_TRY(groma_matrix_product_dims(&va, trans_a, &vb, trans_b, &vc, &m, &k, &n));
	for (int64_t i0 = 0; i0 < vc.batch[0]; i0++)
		for (int64_t i1 = 0; i1 < vc.batch[1]; i1++)
		{
			const float *pa = va.data + i0 * va.bstride[0] + i1 * va.bstride[1];
			const float *pb = vb.data + i0 * vb.bstride[0] + i1 * vb.bstride[1];
			float	   *pc = (float *) vc.data + i0 * vc.bstride[0] + i1 * vc.bstride[1];

			if (k == 0)
			{
				for (int64_t r = 0; r < m; r++)
					memset(pc + r * vc.ld, 0, (size_t) n * sizeof(float));
				continue;
			}
			groma_sgemm(trans_a, trans_b, m, n, k, alpha, pa, va.ld, pb, vb.ld, 0.0f, pc, vc.ld);
		}
	return groma_ok();
}
