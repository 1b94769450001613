/*
 * op_conv_cpu.c - 2-d convolution as im2col + GEMM.
 */
#include <stdlib.h>
#include <string.h>

#include "cpu_parallel.h"
#include "device_ops.h"
#include "op_check.h"
#include "ops.h"

/*
 * Unfolds one image x[C, H, W] into col[C·kh·kw, Ho·Wo]: row (c, i, j)
 * holds x[c, oy·stride - pad + i, ox·stride - pad + j], zero outside.
 */
static void
im2col(const float *x, int64_t c_in, int64_t h, int64_t w, int64_t kh, int64_t kw,
	   int stride, int pad, int64_t ho, int64_t wo, float *col)
{
	for (int64_t c = 0; c < c_in; c++)
		for (int64_t i = 0; i < kh; i++)
			for (int64_t j = 0; j < kw; j++)
			{
				float	   *row = col + ((c * kh + i) * kw + j) * ho * wo;

				for (int64_t oy = 0; oy < ho; oy++)
				{
					int64_t		iy = oy * stride - pad + i;
					float	   *dst = row + oy * wo;

					if (iy < 0 || iy >= h)
					{
						memset(dst, 0, (size_t) wo * sizeof(float));
						continue;
					}
					if (stride == 1)
					{
						/* columns ox with 0 <= ox - pad + j < w form one contiguous run */
						int64_t		lo = pad - j > 0 ? pad - j : 0;
						int64_t		hi = w + pad - j < wo ? w + pad - j : wo;

						if (hi < lo)
							hi = lo;
						memset(dst, 0, (size_t) lo * sizeof(float));
						memcpy(dst + lo, x + (c * h + iy) * w + (lo - pad + j), (size_t) (hi - lo) * sizeof(float));
						memset(dst + hi, 0, (size_t) (wo - hi) * sizeof(float));
						continue;
					}
					for (int64_t ox = 0; ox < wo; ox++)
					{
						int64_t		ix = ox * stride - pad + j;

						dst[ox] = ix >= 0 && ix < w ? x[(c * h + iy) * w + ix] : 0.0f;
					}
				}
			}
}

/* y = conv2d(x, w) (+ b); see ops.h. */
groma_status
groma_conv2d(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b,
			 int stride, int padding, groma_arena *scratch, groma_tensor *y)
{
	int64_t		batch,
				c_in,
				h,
				wd,
				c_out,
				kh,
				kw,
				ho,
				wo,
				kdim;
	bool		direct;
	size_t		mark;
	float	   *col = NULL;

	if (groma_on_device(x))
		return GROMA_DEVICE_CALL("conv2d", conv2d, x, w, b, stride, padding, scratch, y);
	if (w->dtype == GROMA_BF16 || w->dtype == GROMA_F16)
	{
		/* 16-bit weights: widened to f32 for this call, then the f32 path */
		groma_tensor wide;
		groma_status st = groma_widen_weight("conv2d", w, &wide);

		if (st.code == GROMA_OK)
			st = groma_conv2d(x, &wide, b, stride, padding, scratch, y);
		free(wide.data);
		return st;
	}
	GROMA_TRY(groma_check_f32("conv2d", "x", x));
	GROMA_TRY(groma_check_f32("conv2d", "w", w));
	GROMA_TRY(groma_check_f32("conv2d", "y", y));
	GROMA_TRY(groma_check_ndim("conv2d", "x", x, 4));
	GROMA_TRY(groma_check_ndim("conv2d", "w", w, 4));
	GROMA_TRY(groma_check_ndim("conv2d", "y", y, 4));
	if (stride < 1 || padding < 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "conv2d: stride %d, padding %d", stride, padding);
	batch = x->shape[0];
	c_in = x->shape[1];
	h = x->shape[2];
	wd = x->shape[3];
	c_out = w->shape[0];
	kh = w->shape[2];
	kw = w->shape[3];
	GROMA_TRY(groma_check_dim("conv2d", "w", w, 1, c_in));
	if (h + 2 * padding < kh || wd + 2 * padding < kw)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "conv2d: kernel larger than the padded input");
	ho = (h + 2 * padding - kh) / stride + 1;
	wo = (wd + 2 * padding - kw) / stride + 1;
	GROMA_TRY(groma_check_dim("conv2d", "y", y, 0, batch));
	GROMA_TRY(groma_check_dim("conv2d", "y", y, 1, c_out));
	GROMA_TRY(groma_check_dim("conv2d", "y", y, 2, ho));
	GROMA_TRY(groma_check_dim("conv2d", "y", y, 3, wo));
	if (b != NULL)
	{
		GROMA_TRY(groma_check_f32("conv2d", "b", b));
		if (groma_tensor_numel(b) != c_out)
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "conv2d: bias size differs from %lld outputs",
							   (long long) c_out);
	}
	kdim = c_in * kh * kw;
	direct = kh == 1 && kw == 1 && stride == 1 && padding == 0;
	mark = scratch ? scratch->used : 0;
	if (!direct)
	{
		if (scratch == NULL)
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "conv2d: a scratch arena is needed for %lldx%lld kernels",
							   (long long) kh, (long long) kw);
		col = groma_arena_alloc(scratch, (size_t) (kdim * ho * wo) * sizeof(float));	/* [C·kh·kw, Ho·Wo] */
		if (col == NULL)
			return groma_error(GROMA_ERR_NO_MEMORY, "conv2d: scratch arena too small for im2col (%lld floats)",
							   (long long) (kdim * ho * wo));
	}

	for (int64_t n = 0; n < batch; n++)
	{
		const float *xn = (const float *) x->data + n * c_in * h * wd;	/* [C, H, W] */
		float	   *yn = (float *) y->data + n * c_out * ho * wo;	/* [O, Ho·Wo] */

		if (!direct)
			im2col(xn, c_in, h, wd, kh, kw, stride, padding, ho, wo, col);
		for (int64_t o = 0; o < c_out; o++)
		{
			float		bias = b ? ((const float *) b->data)[o] : 0.0f;

			for (int64_t p = 0; p < ho * wo; p++)
				yn[o * ho * wo + p] = bias;
		}
		groma_sgemm(false, false, c_out, ho * wo, kdim, 1.0f, w->data, kdim, direct ? xn : col, ho * wo, 1.0f, yn,
					ho * wo);
	}
	if (scratch)
		scratch->used = mark;
	return groma_ok();
}
