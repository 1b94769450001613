/*
 * op_deform_attn_cpu.c - multi-scale deformable attention sampling and the
 * Deformable-DETR geometry it runs on (sine position embedding, encoder
 * reference points, two-stage output proposals).
 *
 * Sampling follows ms_deform_attn_core_pytorch: F.grid_sample(bilinear,
 * zeros padding, align_corners=False) at grid 2·loc - 1, so a location is
 * unnormalised the way PyTorch's CPU grid sampler does it, ((2·loc - 1) +
 * 1) · (size / 2) - 0.5, which is loc · size - 0.5 up to rounding.
 */
#include "device_ops.h"
#include "ops_spatial.h"

#include <math.h>
#include <string.h>

#include "op_check.h"

#define SINE_TEMPERATURE 10000.0f
#define SINE_EPS 1e-6f
#define PROPOSAL_SIZE 0.05f
#define PROPOSAL_MIN 0.01f
#define PROPOSAL_MAX 0.99f

/* The in-bounds bilinear taps of one sample: row-major pixel offsets and weights. */
typedef struct bilinear_taps
{
	int			n;				/* 0..4 */
	int64_t		offset[4];		/* y · w + x of each tap */
	float		weight[4];
} bilinear_taps;

/*
 * Fills taps for normalised location (lx, ly) in an h × w map: the corners
 * nw, ne, sw, se that lie inside the map with grid_sample's weights.  A
 * location whose every corner is outside (NaN included) gets no taps.
 */
static void
sample_taps(float lx, float ly, int64_t h, int64_t w, bilinear_taps *t)
{
	float		x = ((2.0f * lx - 1.0f) + 1.0f) * ((float) w / 2.0f) - 0.5f;
	float		y = ((2.0f * ly - 1.0f) + 1.0f) * ((float) h / 2.0f) - 0.5f;
	float		x0f,
				y0f,
				fx,
				fy;
	int64_t		x0,
				y0;
	float		wts[4];

	t->n = 0;
	if (!(x > -1.0f && x < (float) w && y > -1.0f && y < (float) h))
		return;
	x0f = floorf(x);
	y0f = floorf(y);
	fx = x - x0f;
	fy = y - y0f;
	x0 = (int64_t) x0f;
	y0 = (int64_t) y0f;
	wts[0] = (1.0f - fy) * (1.0f - fx);
	wts[1] = (1.0f - fy) * fx;
	wts[2] = fy * (1.0f - fx);
	wts[3] = fy * fx;
	for (int c = 0; c < 4; c++)
	{
		int64_t		cx = x0 + (c & 1),
					cy = y0 + (c >> 1);

		if (cx >= 0 && cx < w && cy >= 0 && cy < h)
		{
			t->offset[t->n] = cy * w + cx;
			t->weight[t->n] = wts[c];
			t->n++;
		}
	}
}

/* Checks the level tables against value's S; returns the failure, if any. */
static groma_status
check_levels(const groma_tensor *value, const int64_t *spatial_shapes, const int64_t *level_start,
			 int n_levels)
{
	char		buf[64];

	for (int l = 0; l < n_levels; l++)
	{
		int64_t		h = spatial_shapes[2 * l],
					w = spatial_shapes[2 * l + 1],
					s = level_start[l];

		if (h <= 0 || w <= 0 || s < 0 || h > value->shape[1] || w > value->shape[1] ||
			h * w > value->shape[1] - s)
			return groma_error(GROMA_ERR_INVALID_ARGUMENT,
							   "ms_deform_attn: level %d (%lld x %lld from row %lld) does not fit value %s", l,
							   (long long) h, (long long) w, (long long) s,
							   groma_tensor_shape_str(value, buf, sizeof(buf)));
	}
	return groma_ok();
}

/* Multi-scale deformable attention; see ops_spatial.h. */
groma_status
groma_ms_deform_attn(const groma_tensor *value, const int64_t *spatial_shapes, const int64_t *level_start,
					 int n_levels, int n_points, const groma_tensor *sampling_locations,
					 const groma_tensor *attention_weights, groma_tensor *out)
{
	const char *op = "ms_deform_attn";
	char		a[64],
				b[64],
				c[64],
				d[64];
	int64_t		B,
				S,
				H,
				Dh,
				Q,
				LP;

	if (groma_on_device(value))
		return GROMA_DEVICE_CALL("ms_deform_attn", ms_deform_attn, value, spatial_shapes, level_start, n_levels, n_points,
								 sampling_locations, attention_weights, out);

	GROMA_TRY(groma_check_f32(op, "value", value));
	GROMA_TRY(groma_check_f32(op, "sampling_locations", sampling_locations));
	GROMA_TRY(groma_check_f32(op, "attention_weights", attention_weights));
	GROMA_TRY(groma_check_f32(op, "out", out));
	GROMA_TRY(groma_check_ndim(op, "value", value, 4));
	GROMA_TRY(groma_check_ndim(op, "sampling_locations", sampling_locations, 4));
	GROMA_TRY(groma_check_ndim(op, "attention_weights", attention_weights, 4));
	GROMA_TRY(groma_check_ndim(op, "out", out, 3));
	if (n_levels <= 0 || n_points <= 0 || spatial_shapes == NULL || level_start == NULL)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: %d levels and %d points (tables %s)", op, n_levels,
						   n_points, spatial_shapes && level_start ? "given" : "missing");
	B = value->shape[0];
	S = value->shape[1];
	H = value->shape[2];
	Dh = value->shape[3];
	Q = sampling_locations->shape[1];
	LP = (int64_t) n_levels * n_points;
	if (sampling_locations->shape[0] != B || sampling_locations->shape[2] != H ||
		sampling_locations->shape[3] != LP * 2 ||
		attention_weights->shape[0] != B || attention_weights->shape[1] != Q ||
		attention_weights->shape[2] != H || attention_weights->shape[3] != LP ||
		out->shape[0] != B || out->shape[1] != Q || out->shape[2] != H * Dh)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT,
						   "%s: value %s with %d levels x %d points needs locations [B,Q,H,%lld] and "
						   "weights [B,Q,H,%lld], out [B,Q,H*Dh]; got %s, %s, out %s", op,
						   groma_tensor_shape_str(value, a, sizeof(a)), n_levels, n_points,
						   (long long) (LP * 2), (long long) LP,
						   groma_tensor_shape_str(sampling_locations, b, sizeof(b)),
						   groma_tensor_shape_str(attention_weights, c, sizeof(c)),
						   groma_tensor_shape_str(out, d, sizeof(d)));
	GROMA_TRY(check_levels(value, spatial_shapes, level_start, n_levels));

	for (int64_t bq = 0; bq < B * Q; bq++)
	{
		const float *vb = (const float *) value->data + (bq / Q) * S * H * Dh;	/* [S, H, Dh] */

		for (int64_t h = 0; h < H; h++)
		{
			const float *loc = (const float *) sampling_locations->data + (bq * H + h) * LP * 2; /* [L*P, 2] */
			const float *aw = (const float *) attention_weights->data + (bq * H + h) * LP;	/* [L*P] */
			float	   *restrict o = (float *) out->data + (bq * H + h) * Dh;	/* [Dh] */

			memset(o, 0, (size_t) Dh * sizeof(float));
			for (int l = 0; l < n_levels; l++)
			{
				int64_t		lh = spatial_shapes[2 * l],
							lw = spatial_shapes[2 * l + 1];
				const float *vl = vb + level_start[l] * H * Dh + h * Dh;	/* pixel p at vl + p·H·Dh */

				for (int p = 0; p < n_points; p++)
				{
					int64_t		k = (int64_t) l * n_points + p;
					bilinear_taps t;

					sample_taps(loc[2 * k], loc[2 * k + 1], lh, lw, &t);
					for (int i = 0; i < t.n; i++)
					{
						const float *restrict v = vl + t.offset[i] * H * Dh;	/* [Dh] */
						float		wt = aw[k] * t.weight[i];

						for (int64_t d = 0; d < Dh; d++)
							o[d] += wt * v[d];
					}
				}
			}
		}
	}
	return groma_ok();
}

/* Samples value[C, H, W] at loc[N, 2] into out[N, C]; see ops_spatial.h. */
groma_status
groma_grid_sample_points(const groma_tensor *value, const groma_tensor *loc, groma_tensor *out)
{
	const char *op = "grid_sample_points";
	char		a[64],
				b[64],
				c[64];
	int64_t		C,
				H,
				W,
				N;

	GROMA_TRY(groma_check_f32(op, "value", value));
	GROMA_TRY(groma_check_f32(op, "loc", loc));
	GROMA_TRY(groma_check_f32(op, "out", out));
	GROMA_TRY(groma_check_ndim(op, "value", value, 3));
	GROMA_TRY(groma_check_ndim(op, "loc", loc, 2));
	GROMA_TRY(groma_check_ndim(op, "out", out, 2));
	C = value->shape[0];
	H = value->shape[1];
	W = value->shape[2];
	N = loc->shape[0];
	if (loc->shape[1] != 2 || out->shape[0] != N || out->shape[1] != C)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: value %s and loc %s need out [N,C]; got %s", op,
						   groma_tensor_shape_str(value, a, sizeof(a)), groma_tensor_shape_str(loc, b, sizeof(b)),
						   groma_tensor_shape_str(out, c, sizeof(c)));
	for (int64_t n = 0; n < N; n++)
	{
		const float *ln = (const float *) loc->data + n * 2;	/* [2] */
		float	   *on = (float *) out->data + n * C;	/* [C] */
		bilinear_taps t;

		sample_taps(ln[0], ln[1], H, W, &t);
		for (int64_t ch = 0; ch < C; ch++)
		{
			const float *plane = (const float *) value->data + ch * H * W;	/* [H, W] */
			float		acc = 0.0f;

			for (int i = 0; i < t.n; i++)
				acc += plane[t.offset[i]] * t.weight[i];
			on[ch] = acc;
		}
	}
	return groma_ok();
}

/* Checks an f32 output [d0, d1(, d2)] for a geometry helper; returns the failure, if any. */
static groma_status
check_geometry_out(const char *op, const groma_tensor *out, int ndim, int64_t d0, int64_t d1, int64_t d2)
{
	char		buf[64];

	GROMA_TRY(groma_check_f32(op, "out", out));
	if (out->ndim != ndim || out->shape[0] != d0 || out->shape[1] != d1 || (ndim == 3 && out->shape[2] != d2))
	{
		if (ndim == 3)
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: out %s must be [%lld,%lld,%lld]", op,
							   groma_tensor_shape_str(out, buf, sizeof(buf)), (long long) d0, (long long) d1,
							   (long long) d2);
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: out %s must be [%lld,%lld]", op,
						   groma_tensor_shape_str(out, buf, sizeof(buf)), (long long) d0, (long long) d1);
	}
	return groma_ok();
}

/* Writes one half (y or x) of the sine embedding: n_feats channels of a [h, w] map varying along rows or columns. */
static void
sine_half(float *restrict dst /* [n_feats, h, w] */ , int h, int w, int n_feats, bool along_y)
{
	int			len = along_y ? h : w;
	float		last = (float) len + SINE_EPS;
	float		scale = (float) (2.0 * M_PI);

	for (int k = 0; k < n_feats; k++)
	{
		float		expo = (2.0f * (float) (k / 2)) / (float) n_feats;
		float		dim_t = powf(SINE_TEMPERATURE, expo);
		float	   *plane = dst + (size_t) k * h * w;	/* [h, w] */

		for (int i = 0; i < len; i++)
		{
			float		embed = ((float) (i + 1) - 0.5f) / last * scale;
			float		arg = embed / dim_t;
			float		v = (k % 2 == 0) ? sinf(arg) : cosf(arg);

			if (along_y)
				for (int x = 0; x < w; x++)
					plane[(size_t) i * w + x] = v;
			else
				for (int y = 0; y < h; y++)
					plane[(size_t) y * w + i] = v;
		}
	}
}

/* DETR sine position embedding; see ops_spatial.h. */
groma_status
groma_sine_position_embedding(int h, int w, int d_model, groma_tensor *out)
{
	const char *op = "sine_position_embedding";

	if (h <= 0 || w <= 0 || d_model <= 0 || d_model % 2 != 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: size %d x %d and d_model %d (must be positive, even)",
						   op, h, w, d_model);
	GROMA_TRY(check_geometry_out(op, out, 3, d_model, h, w));
	sine_half((float *) out->data, h, w, d_model / 2, true);
	sine_half((float *) out->data + (size_t) (d_model / 2) * h * w, h, w, d_model / 2, false);
	return groma_ok();
}

/* Encoder reference points at pixel centres; see ops_spatial.h. */
groma_status
groma_encoder_reference_points(int h, int w, groma_tensor *out)
{
	const char *op = "encoder_reference_points";
	float	   *o;

	if (h <= 0 || w <= 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: size %d x %d must be positive", op, h, w);
	GROMA_TRY(check_geometry_out(op, out, 2, (int64_t) h * w, 2, 0));
	o = (float *) out->data;	/* [h*w, 2] */
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++)
		{
			o[((size_t) y * w + x) * 2 + 0] = ((float) x + 0.5f) / (float) w;
			o[((size_t) y * w + x) * 2 + 1] = ((float) y + 0.5f) / (float) h;
		}
	return groma_ok();
}

/* Returns log(p / (1 - p)) in float, as torch computes the proposals' inverse sigmoid. */
static float
logit(float p)
{
	return logf(p / (1.0f - p));
}

/* Returns true when p lies strictly inside the proposal validity range. */
static bool
proposal_in_range(float p)
{
	return p > PROPOSAL_MIN && p < PROPOSAL_MAX;
}

/* Two-stage output proposals; see ops_spatial.h. */
groma_status
groma_output_proposals(int h, int w, int level, groma_tensor *out, uint8_t *valid)
{
	const char *op = "output_proposals";
	float	   *o;
	float		size;

	if (h <= 0 || w <= 0 || level < 0 || level > 30)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: size %d x %d must be positive and level %d in [0, 30]",
						   op, h, w, level);
	GROMA_TRY(check_geometry_out(op, out, 2, (int64_t) h * w, 4, 0));
	o = (float *) out->data;	/* [h*w, 4] */
	size = PROPOSAL_SIZE * (float) (1 << level);
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++)
		{
			size_t		i = (size_t) y * w + x;
			float		p[4] = {((float) x + 0.5f) / (float) w, ((float) y + 0.5f) / (float) h, size, size};
			bool		ok = true;

			for (int k = 0; k < 4; k++)
				ok = ok && proposal_in_range(p[k]);
			for (int k = 0; k < 4; k++)
				o[i * 4 + k] = ok ? logit(p[k]) : INFINITY;
			if (valid)
				valid[i] = ok;
		}
	return groma_ok();
}

/* Fails unless ref [B, Q, 2|4] and loc [B, Q, H, P·2] (contiguous) fit each other on one device. */
groma_status
groma_deform_locations_check(const groma_tensor *ref, int64_t map_h, int64_t map_w, int points,
							 const groma_tensor *loc)
{
	const char *op = "deform_locations";

	if (ref == NULL || loc == NULL || ref->data == NULL || loc->data == NULL || ref->dtype != GROMA_F32 ||
		loc->dtype != GROMA_F32 || ref->device != loc->device)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: ref and loc must be f32 tensors on one device", op);
	if (ref->ndim != 3 || (ref->shape[2] != 2 && ref->shape[2] != 4) || loc->ndim != 4 ||
		loc->shape[0] != ref->shape[0] || loc->shape[1] != ref->shape[1] || points <= 0 ||
		loc->shape[3] != 2 * (int64_t) points || !groma_tensor_is_contiguous(loc))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT,
						   "%s: ref [B, Q, 2|4] and contiguous loc [B, Q, H, %d·2] do not fit", op, points);
	if (ref->shape[2] == 2 && (map_h <= 0 || map_w <= 0))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: a %lldx%lld map", op, (long long) map_h,
						   (long long) map_w);
	return groma_ok();
}

/* Sampling locations in place of the offsets; see ops_spatial.h. */
groma_status
groma_deform_locations(const groma_tensor *ref, int64_t map_h, int64_t map_w, int points, groma_tensor *loc)
{
	int64_t		samples,
				rdim;

	GROMA_TRY(groma_deform_locations_check(ref, map_h, map_w, points, loc));
	if (groma_on_device(loc))
		return GROMA_DEVICE_CALL("deform_locations", deform_locations, ref, map_h, map_w, points, loc);
	samples = loc->shape[2] * points;	/* heads · points per query */
	rdim = ref->shape[2];
	for (int64_t b = 0; b < loc->shape[0]; b++)
		for (int64_t q = 0; q < loc->shape[1]; q++)
		{
			const float *r = (const float *) ref->data + b * ref->stride[0] + q * ref->stride[1];
			float		r0 = r[0],
						r1 = r[ref->stride[2]];
			float	   *l = (float *) loc->data + (b * loc->shape[1] + q) * samples * 2;

			for (int64_t k = 0; k < samples; k++)
				if (rdim == 2)
				{
					l[2 * k] = r0 + l[2 * k] / (float) map_w;
					l[2 * k + 1] = r1 + l[2 * k + 1] / (float) map_h;
				}
				else
				{
					l[2 * k] = r0 + l[2 * k] / (float) points * r[2 * ref->stride[2]] * 0.5f;
					l[2 * k + 1] = r1 + l[2 * k + 1] / (float) points * r[3 * ref->stride[2]] * 0.5f;
				}
		}
	return groma_ok();
}
