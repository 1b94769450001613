/*
 * op_norm_cpu.c - LayerNorm (last dim and channel-first), GroupNorm, RMSNorm.
 * Statistics are accumulated in double so results track PyTorch's closely.
 */
#include <math.h>

#include "cpu_parallel.h"
#include "device_ops.h"
#include "op_check.h"
#include "ops.h"

/* Checks an optional per-feature parameter vector of n values. */
static groma_status
check_param(const char *op, const char *what, const groma_tensor *p, int64_t n)
{
	if (p == NULL)
		return groma_ok();
	GROMA_TRY(groma_check_f32(op, what, p));
	if (groma_tensor_numel(p) != n)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: %s has %lld values, expected %lld", op, what,
						   (long long) groma_tensor_numel(p), (long long) n);
	return groma_ok();
}

/* Normalises rows of n values at stride `step`: y = (x - mean) / sqrt(var + eps) · w + b. */
static void
normalise_strided(const float *x, float *y, int64_t n, int64_t step, const float *w, const float *b,
				  float eps)
{
	double		sum = 0,
				sq = 0,
				mean,
				var;
	float		inv;

	for (int64_t i = 0; i < n; i++)
		sum += x[i * step];
	mean = sum / (double) n;
	for (int64_t i = 0; i < n; i++)
	{
		double		d = x[i * step] - mean;

		sq += d * d;
	}
	var = sq / (double) n;
	inv = (float) (1.0 / sqrt(var + (double) eps));
	for (int64_t i = 0; i < n; i++)
	{
		float		v = (float) (x[i * step] - mean) * inv;

		y[i * step] = v * (w ? w[i] : 1.0f) + (b ? b[i] : 0.0f);
	}
}

/* LayerNorm over the last dimension. */
groma_status
groma_layer_norm(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b, float eps,
				 groma_tensor *y)
{
	int64_t		d,
				rows;

	if (groma_on_device(x))
		return GROMA_DEVICE_CALL("layer_norm", layer_norm, x, w, b, eps, y);
	GROMA_TRY(groma_check_f32("layer_norm", "x", x));
	GROMA_TRY(groma_check_f32("layer_norm", "y", y));
	GROMA_TRY(groma_check_ndim("layer_norm", "x", x, -1));
	GROMA_TRY(groma_check_same_shape("layer_norm", x, y));
	d = x->shape[x->ndim - 1];
	GROMA_TRY(check_param("layer_norm", "w", w, d));
	GROMA_TRY(check_param("layer_norm", "b", b, d));
	rows = d > 0 ? groma_tensor_numel(x) / d : 0;
	for (int64_t r = 0; r < rows; r++)
		normalise_strided((const float *) x->data + r * d, (float *) y->data + r * d, d, 1,
						  w ? w->data : NULL, b ? b->data : NULL, eps);
	return groma_ok();
}

/* LayerNorm over channels at every pixel of [B, C, H, W]. */
groma_status
groma_layer_norm_channels(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b,
						  float eps, groma_tensor *y)
{
	int64_t		c,
				hw;

	if (groma_on_device(x))
		return GROMA_DEVICE_CALL("layer_norm_channels", layer_norm_channels, x, w, b, eps, y);
	GROMA_TRY(groma_check_f32("layer_norm_channels", "x", x));
	GROMA_TRY(groma_check_f32("layer_norm_channels", "y", y));
	GROMA_TRY(groma_check_ndim("layer_norm_channels", "x", x, 4));
	GROMA_TRY(groma_check_same_shape("layer_norm_channels", x, y));
	c = x->shape[1];
	hw = x->shape[2] * x->shape[3];
	GROMA_TRY(check_param("layer_norm_channels", "w", w, c));
	GROMA_TRY(check_param("layer_norm_channels", "b", b, c));
	for (int64_t n = 0; n < x->shape[0]; n++)
		for (int64_t p = 0; p < hw; p++)
			normalise_strided((const float *) x->data + n * c * hw + p, (float *) y->data + n * c * hw + p,
							  c, hw, w ? w->data : NULL, b ? b->data : NULL, eps);
	return groma_ok();
}

typedef struct group_norm_job
{
	const groma_tensor *x,
			   *w,
			   *b;
	groma_tensor *y;
	int			groups;
	int64_t		per,			/* channels per group */
				hw;
	float		eps;
	bool		relu;			/* ReLU of each output, in the same pass */
} group_norm_job;

/* Normalises (batch, group) items [begin, end); sums in double, four running sums per pass. */
static void
group_norm_part(void *ctx, int64_t begin, int64_t end, int part)
{
	const group_norm_job *j = ctx;
	int64_t		per = j->per,
				hw = j->hw,
				count = per * hw;

	for (int64_t item = begin; item < end; item++)
	{
		int64_t		g = item % j->groups,
					first = item * per;	/* first channel of the group, batch included */
		const float *xs = (const float *) j->x->data + first * hw;	/* [per, H·W] */
		float	   *ys = (float *) j->y->data + first * hw;
		double		lane[4] = {0, 0, 0, 0},
					mean,
					sq;
		int64_t		body = count / 4 * 4;
		float		inv;

		for (int64_t i = 0; i < body; i += 4)
			for (int l = 0; l < 4; l++)
				lane[l] += xs[i + l];
		for (int64_t i = body; i < count; i++)
			lane[0] += xs[i];
		mean = (lane[0] + lane[1] + lane[2] + lane[3]) / (double) count;
		for (int l = 0; l < 4; l++)
			lane[l] = 0;
		for (int64_t i = 0; i < body; i += 4)
			for (int l = 0; l < 4; l++)
				lane[l] += (xs[i + l] - mean) * (xs[i + l] - mean);
		for (int64_t i = body; i < count; i++)
			lane[0] += (xs[i] - mean) * (xs[i] - mean);
		sq = lane[0] + lane[1] + lane[2] + lane[3];
		inv = (float) (1.0 / sqrt(sq / (double) count + (double) j->eps));
		for (int64_t ch = 0; ch < per; ch++)
		{
			float		scale = j->w ? ((const float *) j->w->data)[g * per + ch] : 1.0f;
			float		shift = j->b ? ((const float *) j->b->data)[g * per + ch] : 0.0f;

			for (int64_t p = 0; p < hw; p++)
			{
				float		v = (float) (xs[ch * hw + p] - mean) * inv * scale + shift;

				ys[ch * hw + p] = j->relu ? (v > 0.0f ? v : 0.0f) : v;
			}
		}
	}
}

/* GroupNorm of [B, C, H, W] with per-channel affine parameters, then ReLU when relu is set. */
static groma_status
group_norm(const groma_tensor *x, int groups, const groma_tensor *w, const groma_tensor *b, float eps, bool relu,
		   groma_tensor *y)
{
	int64_t		c,
				hw;

	if (groma_on_device(x))
		return GROMA_DEVICE_CALL("group_norm", group_norm, x, groups, w, b, eps, relu, y);
	GROMA_TRY(groma_check_f32("group_norm", "x", x));
	GROMA_TRY(groma_check_f32("group_norm", "y", y));
	GROMA_TRY(groma_check_ndim("group_norm", "x", x, 4));
	GROMA_TRY(groma_check_same_shape("group_norm", x, y));
	c = x->shape[1];
	hw = x->shape[2] * x->shape[3];
	if (groups < 1 || c % groups != 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "group_norm: %lld channels in %d groups",
						   (long long) c, groups);
	GROMA_TRY(check_param("group_norm", "w", w, c));
	GROMA_TRY(check_param("group_norm", "b", b, c));
	{
		group_norm_job j = {x, w, b, y, groups, c / groups, hw, eps, relu};

		groma_parallel_for(x->shape[0] * groups, 1 + (1 << 14) / (j.per * hw > 0 ? j.per * hw : 1), group_norm_part, &j);
	}
	return groma_ok();
}

/* GroupNorm of [B, C, H, W]; see ops.h. */
groma_status
groma_group_norm(const groma_tensor *x, int groups, const groma_tensor *w, const groma_tensor *b, float eps,
				 groma_tensor *y)
{
	return group_norm(x, groups, w, b, eps, false, y);
}

/* GroupNorm then ReLU in one pass; see ops.h. */
groma_status
groma_group_norm_relu(const groma_tensor *x, int groups, const groma_tensor *w, const groma_tensor *b, float eps,
					  groma_tensor *y)
{
	return group_norm(x, groups, w, b, eps, true, y);
}

/* yr[d] = xr / sqrt(mean(xr²) + eps) · w (the sum of squares in double); yr may be xr. */
static void
rms_norm_row(const float *xr, const groma_tensor *w, int64_t d, float eps, float *yr)
{
	double		sq = 0;
	float		inv;

	for (int64_t i = 0; i < d; i++)
		sq += (double) xr[i] * xr[i];
	inv = (float) (1.0 / sqrt(sq / (double) d + (double) eps));
	for (int64_t i = 0; i < d; i++)
		yr[i] = xr[i] * inv * (w ? ((const float *) w->data)[i] : 1.0f);
}

/* RMSNorm over the last dimension (LLaMA: normalise in f32, then multiply by w). */
groma_status
groma_rms_norm(const groma_tensor *x, const groma_tensor *w, float eps, groma_tensor *y)
{
	int64_t		d,
				rows;

	if (groma_on_device(x))
		return GROMA_DEVICE_CALL("rms_norm", rms_norm, x, w, eps, y);
	GROMA_TRY(groma_check_f32("rms_norm", "x", x));
	GROMA_TRY(groma_check_f32("rms_norm", "y", y));
	GROMA_TRY(groma_check_ndim("rms_norm", "x", x, -1));
	GROMA_TRY(groma_check_same_shape("rms_norm", x, y));
	d = x->shape[x->ndim - 1];
	GROMA_TRY(check_param("rms_norm", "w", w, d));
	rows = d > 0 ? groma_tensor_numel(x) / d : 0;
	for (int64_t r = 0; r < rows; r++)
		rms_norm_row((const float *) x->data + r * d, w, d, eps, (float *) y->data + r * d);
	return groma_ok();
}

/* Residual add, then RMSNorm of the sum; see ops.h. */
groma_status
groma_add_rms_norm(groma_tensor *x, const groma_tensor *delta, const groma_tensor *w, float eps, groma_tensor *y)
{
	int64_t		d,
				rows;

	if (groma_on_device(x))
		return GROMA_DEVICE_CALL("add_rms_norm", add_rms_norm, x, delta, w, eps, y);
	GROMA_TRY(groma_check_f32("add_rms_norm", "x", x));
	GROMA_TRY(groma_check_f32("add_rms_norm", "delta", delta));
	GROMA_TRY(groma_check_f32("add_rms_norm", "y", y));
	GROMA_TRY(groma_check_ndim("add_rms_norm", "x", x, -1));
	GROMA_TRY(groma_check_same_shape("add_rms_norm", x, delta));
	GROMA_TRY(groma_check_same_shape("add_rms_norm", x, y));
	if (y->data == x->data)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "add_rms_norm: y must not be x");
	d = x->shape[x->ndim - 1];
	GROMA_TRY(check_param("add_rms_norm", "w", w, d));
	rows = d > 0 ? groma_tensor_numel(x) / d : 0;
	for (int64_t r = 0; r < rows; r++)
	{
		float	   *xr = (float *) x->data + r * d;
		const float *dr = (const float *) delta->data + r * d;

		for (int64_t i = 0; i < d; i++)
			xr[i] = xr[i] + dr[i];
		rms_norm_row(xr, w, d, eps, (float *) y->data + r * d);
	}
	return groma_ok();
}
