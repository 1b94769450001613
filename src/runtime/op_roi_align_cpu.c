/*
 * op_roi_align_cpu.c - RoIAlign with average pooling, as torchvision's CPU
 * roi_align computes it (the detectron2/Caffe2 algorithm that mmcv's
 * RoIAlign also runs).
 *
 * For each roi the sample positions and bilinear weights of every bin are
 * computed once, in float and in torchvision's operation order, then applied
 * to every channel.  Samples that fall outside [-1, H] x [-1, W] read 0;
 * others clamp to the last row or column.
 */
#include "cpu_parallel.h"
#include "device_ops.h"
#include "ops_spatial.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op_check.h"

/* One bilinear sample: four pixel offsets into an [H, W] plane and their weights. */
typedef struct roi_sample
{
	int64_t		pos[4];
	float		w[4];
} roi_sample;

/*
 * Returns the sample at (y, x) of an h × w map (torchvision's
 * bilinear_interpolate as precomputed in pre_calc_for_bilinear_interpolate):
 * all-zero weights outside [-1, h] × [-1, w] (or for NaN).
 */
static roi_sample
make_sample(float y, float x, int64_t h, int64_t w)
{
	roi_sample	s;
	int64_t		y_low,
				x_low,
				y_high,
				x_high;
	float		ly,
				lx,
				hy,
				hx;

	memset(&s, 0, sizeof(s));
	if (!(y >= -1.0f && y <= (float) h && x >= -1.0f && x <= (float) w))
		return s;
	if (y <= 0.0f)
		y = 0.0f;
	if (x <= 0.0f)
		x = 0.0f;
	y_low = (int64_t) y;
	x_low = (int64_t) x;
	if (y_low >= h - 1)
	{
		y_high = y_low = h - 1;
		y = (float) y_low;
	}
	else
		y_high = y_low + 1;
	if (x_low >= w - 1)
	{
		x_high = x_low = w - 1;
		x = (float) x_low;
	}
	else
		x_high = x_low + 1;
	ly = y - (float) y_low;
	lx = x - (float) x_low;
	hy = 1.0f - ly;
	hx = 1.0f - lx;
	s.pos[0] = y_low * w + x_low;
	s.pos[1] = y_low * w + x_high;
	s.pos[2] = y_high * w + x_low;
	s.pos[3] = y_high * w + x_high;
	s.w[0] = hy * hx;
	s.w[1] = hy * lx;
	s.w[2] = ly * hx;
	s.w[3] = ly * lx;
	return s;
}

/* Geometry of one roi: start, bin size and grid per axis, and the divisor. */
typedef struct roi_geometry
{
	int64_t		batch;
	float		start_h,
				start_w,
				bin_h,
				bin_w;
	int			grid_h,
				grid_w;
	float		count;
}			roi_geometry;

/*
 * Returns the adaptive grid ceil(size / pooled), or 0 where that is not
 * positive (a reversed roi: torchvision samples nothing there either); sets
 * *over past GROMA_ROI_ALIGN_MAX_GRID.
 */
static int
adaptive_grid(float size, int64_t pooled, bool *over)
{
	float		g = ceilf(size / (float) pooled);

	if (g > (float) GROMA_ROI_ALIGN_MAX_GRID)
	{
		*over = true;
		return 0;
	}
	return g > 0.0f ? (int) g : 0;
}

/* Computes roi m's geometry from r[5]; fails on a bad batch index, non-finite values or an oversized grid. */
static groma_status
roi_geometry_of(const float *r, int64_t m, int64_t batches, float spatial_scale, int sampling_ratio,
				bool aligned, int64_t oh, int64_t ow, roi_geometry *g)
{
	float		offset = aligned ? 0.5f : 0.0f;
	float		start_w,
				start_h,
				end_w,
				end_h,
				roi_w,
				roi_h;
	bool		over = false;

	for (int k = 0; k < 5; k++)
		if (!isfinite(r[k]))
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "roi_align: roi %lld has a non-finite value (%g)",
							   (long long) m, (double) r[k]);
	if (r[0] < 0.0f || r[0] >= (float) batches || r[0] != floorf(r[0]))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "roi_align: roi %lld has batch index %g, feat has %lld",
						   (long long) m, (double) r[0], (long long) batches);
	start_w = r[1] * spatial_scale - offset;
	start_h = r[2] * spatial_scale - offset;
	end_w = r[3] * spatial_scale - offset;
	end_h = r[4] * spatial_scale - offset;
	roi_w = end_w - start_w;
	roi_h = end_h - start_h;
	if (!aligned)
	{
		roi_w = fmaxf(roi_w, 1.0f);
		roi_h = fmaxf(roi_h, 1.0f);
	}
	if (!isfinite(roi_w) || !isfinite(roi_h))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "roi_align: roi %lld is too large once scaled",
						   (long long) m);
	g->batch = (int64_t) r[0];
	g->start_h = start_h;
	g->start_w = start_w;
	g->bin_h = roi_h / (float) oh;
	g->bin_w = roi_w / (float) ow;
	g->grid_h = sampling_ratio > 0 ? sampling_ratio : adaptive_grid(roi_h, oh, &over);
	g->grid_w = sampling_ratio > 0 ? sampling_ratio : adaptive_grid(roi_w, ow, &over);
	if (over)
		return groma_error(GROMA_ERR_LIMIT,
						   "roi_align: roi %lld (%g x %g after scaling) needs over %d samples per bin side",
						   (long long) m, (double) roi_w, (double) roi_h, GROMA_ROI_ALIGN_MAX_GRID);
	g->count = (float) (g->grid_h * g->grid_w > 1 ? g->grid_h * g->grid_w : 1);	/* grids are >= 0 here */
	return groma_ok();
}

/* Fills samples[oh·ow·gh·gw] for one roi, bin-major then grid row then grid column. */
static void
roi_samples(const roi_geometry *g, int64_t oh, int64_t ow, int64_t h, int64_t w, roi_sample *samples)
{
	size_t		k = 0;

	for (int64_t ph = 0; ph < oh; ph++)
		for (int64_t pw = 0; pw < ow; pw++)
			for (int iy = 0; iy < g->grid_h; iy++)
			{
				float		y = g->start_h + (float) ph * g->bin_h +
					(float) (iy + 0.5f) * g->bin_h / (float) g->grid_h;

				for (int ix = 0; ix < g->grid_w; ix++)
				{
					float		x = g->start_w + (float) pw * g->bin_w +
						(float) (ix + 0.5f) * g->bin_w / (float) g->grid_w;

					samples[k++] = make_sample(y, x, h, w);
				}
			}
}

/* Pools every channel of one roi from plane set feat_b ([C, H, W]) into out_m ([C, oh, ow]). */
static void
roi_pool(const float *feat_b, int64_t C, int64_t hw, int64_t bins, int64_t per_bin, float count,
		 const roi_sample *samples, float *out_m)
{
	for (int64_t c = 0; c < C; c++)
	{
		const float *restrict in = feat_b + c * hw;	/* [H, W] */
		float	   *restrict o = out_m + c * bins;	/* [oh, ow] */

		for (int64_t bin = 0; bin < bins; bin++)
		{
			const roi_sample *s = samples + bin * per_bin;
			float		acc = 0.0f;

			for (int64_t k = 0; k < per_bin; k++)
			{
				float		val = s[k].w[0] * in[s[k].pos[0]] + s[k].w[1] * in[s[k].pos[1]] +
					s[k].w[2] * in[s[k].pos[2]] + s[k].w[3] * in[s[k].pos[3]];

				acc += val;
			}
			o[bin] = acc / count;
		}
	}
}

typedef struct roi_pool_job
{
	const float *feat_b;		/* [C, H, W] */
	int64_t		hw,
				bins,
				per_bin;
	float		count;
	const roi_sample *samples;
	float	   *out_m;			/* [C, oh, ow] */
} roi_pool_job;

/* Pools channels [begin, end) of one roi. */
static void
roi_pool_part(void *ctx, int64_t begin, int64_t end, int part)
{
	const roi_pool_job *j = ctx;

	roi_pool(j->feat_b + begin * j->hw, end - begin, j->hw, j->bins, j->per_bin, j->count, j->samples,
			 j->out_m + begin * j->bins);
}

/* RoIAlign (average); see ops_spatial.h. */
groma_status
groma_roi_align(const groma_tensor *feat, const groma_tensor *rois, float spatial_scale, int sampling_ratio,
				bool aligned, groma_tensor *out)
{
	const char *op = "roi_align";
	char		a[64],
				b[64],
				c[64];
	int64_t		B,
				C,
				H,
				W,
				M,
				oh,
				ow;
	roi_sample *samples = NULL;
	size_t		capacity = 0;

	if (groma_on_device(feat))
		return GROMA_DEVICE_CALL("roi_align", roi_align, feat, rois, spatial_scale, sampling_ratio, aligned, out);

	GROMA_TRY(groma_check_f32(op, "feat", feat));
	GROMA_TRY(groma_check_f32(op, "rois", rois));
	GROMA_TRY(groma_check_f32(op, "out", out));
	GROMA_TRY(groma_check_ndim(op, "feat", feat, 4));
	GROMA_TRY(groma_check_ndim(op, "rois", rois, 2));
	GROMA_TRY(groma_check_ndim(op, "out", out, 4));
	B = feat->shape[0];
	C = feat->shape[1];
	H = feat->shape[2];
	W = feat->shape[3];
	M = rois->shape[0];
	oh = out->shape[2];
	ow = out->shape[3];
	if (rois->shape[1] != 5 || out->shape[0] != M || out->shape[1] != C || oh <= 0 || ow <= 0 ||
		H <= 0 || W <= 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT,
						   "%s: feat %s and rois %s need out [M,C,oh,ow] with a positive output size; got %s", op,
						   groma_tensor_shape_str(feat, a, sizeof(a)), groma_tensor_shape_str(rois, b, sizeof(b)),
						   groma_tensor_shape_str(out, c, sizeof(c)));
	if (!isfinite(spatial_scale))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: spatial_scale %g is not finite", op,
						   (double) spatial_scale);
	if (sampling_ratio > GROMA_ROI_ALIGN_MAX_GRID)
		return groma_error(GROMA_ERR_LIMIT, "%s: sampling_ratio %d is over %d", op, sampling_ratio,
						   GROMA_ROI_ALIGN_MAX_GRID);

	for (int64_t m = 0; m < M; m++)
	{
		const float *r = (const float *) rois->data + m * 5;	/* [5] */
		float	   *out_m = (float *) out->data + m * C * oh * ow;	/* [C, oh, ow] */
		roi_geometry g = {0};
		int64_t		per_bin;
		size_t		need;
		groma_status st = roi_geometry_of(r, m, B, spatial_scale, sampling_ratio, aligned, oh, ow, &g);

		if (st.code != GROMA_OK)
		{
			free(samples);
			return st;
		}
		per_bin = g.grid_h > 0 && g.grid_w > 0 ? (int64_t) g.grid_h * g.grid_w : 0;
		if (per_bin == 0)
		{
			memset(out_m, 0, (size_t) (C * oh * ow) * sizeof(float));	/* empty grid: 0 / 1 */
			continue;
		}
		need = (size_t) (oh * ow * per_bin);
		if (need > capacity)
		{
			roi_sample *grown = realloc(samples, need * sizeof(roi_sample));

			if (grown == NULL)
			{
				free(samples);
				return groma_error(GROMA_ERR_NO_MEMORY, "%s: cannot allocate %zu samples", op, need);
			}
			samples = grown;
			capacity = need;
		}
		roi_samples(&g, oh, ow, H, W, samples);
		{
			roi_pool_job j = {(const float *) feat->data + g.batch * C * H * W, H * W, oh * ow, per_bin, g.count,
			samples, out_m};

			/* channels split over the pool: ~4 loads per sample, per_bin samples per bin */
			groma_parallel_for(C, 1 + (1 << 13) / (oh * ow * per_bin), roi_pool_part, &j);
		}
	}
	free(samples);
	return groma_ok();
}
