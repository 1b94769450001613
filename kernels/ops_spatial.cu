/*
 * ops_spatial.cu - bilinear resize, multi-scale deformable attention
 * sampling and RoIAlign on the GPU, one thread per output value, with the
 * same PyTorch / torchvision semantics as the CPU twins (ops_spatial.h);
 * each kernel has a launcher taking a stream, the entry points check and
 * pass theirs.
 */
#include "cuda_common.h"

#define THREADS 256

/* Source coordinate of output index d (PyTorch's area_pixel_compute_source_index for linear modes). */
__device__ static inline float
source_index(float scale, int64_t d, bool align_corners)
{
	if (align_corners)
		return scale * (float) d;
	{
		float		s = fmaf(scale, (float) d + 0.5f, -0.5f);	/* fused, as the CPU's table */

		return s < 0.0f ? 0.0f : s;
	}
}

/* y[b, c, i, j] = bilinear sample of x[b, c] at the source of (i, j). */
__global__ static void
bilinear_kernel(const float *x, float *y, int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow,
				float sh, float sw, bool align_corners)
{
	int64_t		idx = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;
	int64_t		j = idx % ow,
				i = (idx / ow) % oh,
				p = idx / (ow * oh);
	float		fy,
				fx,
				ly,
				lx;
	int64_t		y0,
				x0,
				y1,
				x1;
	const float *src;

	if (idx >= planes * oh * ow)
		return;
	fy = source_index(sh, i, align_corners);
	fx = source_index(sw, j, align_corners);
	y0 = (int64_t) fy;
	x0 = (int64_t) fx;
	y1 = y0 < h - 1 ? y0 + 1 : y0;
	x1 = x0 < w - 1 ? x0 + 1 : x0;
	ly = fy - (float) y0;
	lx = fx - (float) x0;
	src = x + p * h * w;
	y[idx] = (1.0f - ly) * ((1.0f - lx) * src[y0 * w + x0] + lx * src[y0 * w + x1]) +
		ly * ((1.0f - lx) * src[y1 * w + x0] + lx * src[y1 * w + x1]);
}

/* Queues bilinear_kernel on stream: x [planes, h, w] resized to y [planes, oh, ow]. */
static groma_status
launch_bilinear(const float *x, float *y, int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow, float sh,
				float sw, bool align_corners, cudaStream_t stream)
{
	bilinear_kernel<<<groma_cuda_blocks(planes * oh * ow, THREADS), THREADS, 0, stream>>>(
		x, y, planes, h, w, oh, ow, sh, sw, align_corners);
	return groma_cuda_launched("resize_bilinear");
}

/* Bilinear resize of [B, C, H, W] to y's size; see ops_spatial.h. */
extern "C" groma_status
groma_cuda_resize_bilinear(const groma_tensor *x, bool align_corners, groma_tensor *y)
{
	int64_t		h,
				w,
				oh,
				ow,
				n;
	float		sh,
				sw;

	GROMA_TRY(groma_cuda_check_f32("resize_bilinear", "x", x));
	GROMA_TRY(groma_cuda_check_f32("resize_bilinear", "y", y));
	if (x->ndim != 4 || y->ndim != 4 || x->shape[0] != y->shape[0] || x->shape[1] != y->shape[1] ||
		x->shape[2] < 1 || x->shape[3] < 1 || y->shape[2] < 1 || y->shape[3] < 1)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "resize_bilinear: x [B,C,H,W] and y [B,C,Ho,Wo] do not fit");
	h = x->shape[2];
	w = x->shape[3];
	oh = y->shape[2];
	ow = y->shape[3];
	sh = align_corners ? (oh > 1 ? (float) (h - 1) / (float) (oh - 1) : 0.0f) : (float) h / (float) oh;
	sw = align_corners ? (ow > 1 ? (float) (w - 1) / (float) (ow - 1) : 0.0f) : (float) w / (float) ow;
	n = groma_tensor_numel(y);
	if (n == 0)
		return groma_ok();
	return launch_bilinear((const float *) x->data, (float *) y->data, x->shape[0] * x->shape[1], h, w, oh, ow, sh, sw,
						   align_corners, groma_cuda_stream());
}

/* Level geometry for the deformable attention kernel. */
struct msda_levels
{
	int64_t		h[8],
				w[8],
				start[8];
};

/* out[b, q, h·Dh + d] = Σ over levels and points of weight · bilinear(value level, loc) (zero padding). */
__global__ static void
msda_kernel(const float *value, const float *loc, const float *attn, float *out, int64_t batch, int64_t q,
			int64_t heads, int64_t dh, int64_t s, int n_levels, int n_points, msda_levels lv)
{
	int64_t		idx = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;
	int64_t		d = idx % dh,
				h = (idx / dh) % heads,
				bq = idx / (dh * heads),
				b = bq / q;
	const float *lrow,
			   *arow;
	float		acc = 0.0f;

	if (idx >= batch * q * heads * dh)
		return;
	lrow = loc + (bq * heads + h) * n_levels * n_points * 2;
	arow = attn + (bq * heads + h) * n_levels * n_points;
	for (int l = 0; l < n_levels; l++)
	{
		int64_t		hl = lv.h[l],
					wl = lv.w[l];
		const float *vbase = value + (b * s + lv.start[l]) * heads * dh + h * dh + d;

		for (int p = 0; p < n_points; p++)
		{
			int			k = l * n_points + p;
			/* unnormalised as the CPU (and PyTorch's CPU grid sampler) does: ((2·loc - 1) + 1)·(size / 2) - 0.5 */
			float		him = ((2.0f * lrow[2 * k + 1] - 1.0f) + 1.0f) * ((float) hl / 2.0f) - 0.5f;
			float		wim = ((2.0f * lrow[2 * k] - 1.0f) + 1.0f) * ((float) wl / 2.0f) - 0.5f;
			float		val = 0.0f;

			if (him > -1.0f && wim > -1.0f && him < (float) hl && wim < (float) wl)
			{
				int64_t		y0 = (int64_t) floorf(him),
							x0 = (int64_t) floorf(wim);
				float		ly = him - (float) y0,
							lx = wim - (float) x0;

				for (int dy = 0; dy < 2; dy++)
					for (int dx = 0; dx < 2; dx++)
					{
						int64_t		yy = y0 + dy,
									xx = x0 + dx;
						float		wt = (dy ? ly : 1.0f - ly) * (dx ? lx : 1.0f - lx);

						if (yy >= 0 && yy < hl && xx >= 0 && xx < wl)
							val += wt * vbase[(yy * wl + xx) * heads * dh];
					}
			}
			acc += arow[k] * val;
		}
	}
	out[bq * heads * dh + h * dh + d] = acc;
}

/*
 * Queues msda_kernel on stream: out[batch, q, heads · dh] from value[batch,
 * s, heads, dh], loc[batch, q, heads, n_levels · n_points · 2] and
 * attn[batch, q, heads, n_levels · n_points].
 */
static groma_status
launch_msda(const float *value, const float *loc, const float *attn, float *out, int64_t batch, int64_t q,
			int64_t heads, int64_t dh, int64_t s, int n_levels, int n_points, msda_levels lv, cudaStream_t stream)
{
	msda_kernel<<<groma_cuda_blocks(batch * q * heads * dh, THREADS), THREADS, 0, stream>>>(
		value, loc, attn, out, batch, q, heads, dh, s, n_levels, n_points, lv);
	return groma_cuda_launched("ms_deform_attn");
}

/* Multi-scale deformable attention sampling; see ops_spatial.h. */
extern "C" groma_status
groma_cuda_ms_deform_attn(const groma_tensor *value, const int64_t *spatial_shapes, const int64_t *level_start,
						  int n_levels, int n_points, const groma_tensor *sampling_locations,
						  const groma_tensor *attention_weights, groma_tensor *out)
{
	msda_levels lv;
	int64_t		batch,
				s,
				heads,
				dh,
				q,
				n;

	if (spatial_shapes == NULL || level_start == NULL)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "ms_deform_attn: level shapes and starts are needed");
	GROMA_TRY(groma_cuda_check_f32("ms_deform_attn", "value", value));	/* before its shape is read */
	batch = value->shape[0];
	s = value->shape[1];
	heads = value->shape[2];
	dh = value->shape[3];

	GROMA_TRY(groma_cuda_check_f32("ms_deform_attn", "sampling_locations", sampling_locations));
	GROMA_TRY(groma_cuda_check_f32("ms_deform_attn", "attention_weights", attention_weights));
	GROMA_TRY(groma_cuda_check_f32("ms_deform_attn", "out", out));
	if (n_levels < 1 || n_levels > 8 || n_points < 1 || value->ndim != 4 || sampling_locations->ndim != 4 ||
		attention_weights->ndim != 4 || out->ndim != 3)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "ms_deform_attn: unsupported shapes or level count");
	q = sampling_locations->shape[1];
	if (sampling_locations->shape[0] != batch || sampling_locations->shape[2] != heads ||
		sampling_locations->shape[3] != (int64_t) n_levels * n_points * 2 ||
		attention_weights->shape[0] != batch || attention_weights->shape[1] != q ||
		attention_weights->shape[2] != heads ||
		attention_weights->shape[3] != (int64_t) n_levels * n_points || out->shape[0] != batch ||
		out->shape[1] != q || out->shape[2] != heads * dh)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "ms_deform_attn: operand shapes do not fit");
	for (int l = 0; l < n_levels; l++)
	{
		lv.h[l] = spatial_shapes[2 * l];
		lv.w[l] = spatial_shapes[2 * l + 1];
		lv.start[l] = level_start[l];
		if (lv.h[l] < 1 || lv.w[l] < 1 || lv.start[l] < 0 || lv.start[l] + lv.h[l] * lv.w[l] > s)
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "ms_deform_attn: level %d lies outside the values", l);
	}
	n = batch * q * heads * dh;
	if (n == 0)
		return groma_ok();
	return launch_msda((const float *) value->data, (const float *) sampling_locations->data,
					   (const float *) attention_weights->data, (float *) out->data, batch, q, heads, dh, s, n_levels,
					   n_points, lv, groma_cuda_stream());
}

/* torchvision's bilinear_interpolate: 0 outside [-1, H] × [-1, W], clamped to the border inside. */
__device__ static inline float
roi_bilinear(const float *f, int64_t h, int64_t w, float y, float x)
{
	int64_t		y0,
				x0,
				y1,
				x1;
	float		ly,
				lx;

	if (y < -1.0f || y > (float) h || x < -1.0f || x > (float) w)
		return 0.0f;
	if (y <= 0.0f)
		y = 0.0f;
	if (x <= 0.0f)
		x = 0.0f;
	y0 = (int64_t) y;
	x0 = (int64_t) x;
	if (y0 >= h - 1)
	{
		y1 = y0 = h - 1;
		y = (float) y0;
	}
	else
		y1 = y0 + 1;
	if (x0 >= w - 1)
	{
		x1 = x0 = w - 1;
		x = (float) x0;
	}
	else
		x1 = x0 + 1;
	ly = y - (float) y0;
	lx = x - (float) x0;
	return (1.0f - ly) * (1.0f - lx) * f[y0 * w + x0] + (1.0f - ly) * lx * f[y0 * w + x1] +
		ly * (1.0f - lx) * f[y1 * w + x0] + ly * lx * f[y1 * w + x1];
}

/* out[m, c, ph, pw] = average of the bin's sampling grid (torchvision roi_align). */
__global__ static void
roi_align_kernel(const float *feat, const float *rois, float *out, int64_t m_count, int64_t batch, int64_t channels,
				 int64_t h, int64_t w, int64_t oh, int64_t ow, float scale, int sampling_ratio, bool aligned)
{
	int64_t		idx = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;
	int64_t		pw = idx % ow,
				ph = (idx / ow) % oh,
				c = (idx / (ow * oh)) % channels,
				m = idx / (ow * oh * channels);
	const float *r;
	float		offset,
				x1,
				y1,
				x2,
				y2,
				rw,
				rh,
				bh,
				bw,
				sum = 0.0f;
	int			gh,
				gw;
	const float *f;

	if (idx >= m_count * channels * oh * ow)
		return;
	r = rois + m * 5;
	if (!(r[0] >= 0.0f && r[0] < (float) batch) || !isfinite(r[1]) || !isfinite(r[2]) || !isfinite(r[3]) ||
		!isfinite(r[4]))
	{
		out[idx] = 0.0f;		/* an invalid batch index or a non-finite box reads nothing (the CPU op refuses them) */
		return;
	}
	offset = aligned ? 0.5f : 0.0f;
	x1 = r[1] * scale - offset;
	y1 = r[2] * scale - offset;
	x2 = r[3] * scale - offset;
	y2 = r[4] * scale - offset;
	rw = x2 - x1;
	rh = y2 - y1;
	if (!aligned)
	{
		rw = fmaxf(rw, 1.0f);
		rh = fmaxf(rh, 1.0f);
	}
	bh = rh / (float) oh;
	bw = rw / (float) ow;
	gh = sampling_ratio > 0 ? sampling_ratio : (int) ceilf(rh / (float) oh);
	gw = sampling_ratio > 0 ? sampling_ratio : (int) ceilf(rw / (float) ow);
	f = feat + ((int64_t) r[0] * channels + c) * h * w;
	for (int iy = 0; iy < gh; iy++)
	{
		float		yy = y1 + (float) ph * bh + ((float) iy + 0.5f) * bh / (float) gh;

		for (int ix = 0; ix < gw; ix++)
		{
			float		xx = x1 + (float) pw * bw + ((float) ix + 0.5f) * bw / (float) gw;

			sum += roi_bilinear(f, h, w, yy, xx);
		}
	}
	out[idx] = sum / (float) max(gh * gw, 1);
}

/* Queues roi_align_kernel on stream: out[M, C, oh, ow] from feat[B, C, h, w] and rois[M, 5] (M = m_count). */
static groma_status
launch_roi_align(const float *feat, const float *rois, float *out, int64_t m_count, int64_t batch, int64_t channels,
				 int64_t h, int64_t w, int64_t oh, int64_t ow, float scale, int sampling_ratio, bool aligned,
				 cudaStream_t stream)
{
	roi_align_kernel<<<groma_cuda_blocks(m_count * channels * oh * ow, THREADS), THREADS, 0, stream>>>(
		feat, rois, out, m_count, batch, channels, h, w, oh, ow, scale, sampling_ratio, aligned);
	return groma_cuda_launched("roi_align");
}

/* torchvision roi_align on the GPU (rois in device memory; a box with an invalid batch index gives zeros). */
extern "C" groma_status
groma_cuda_roi_align(const groma_tensor *feat, const groma_tensor *rois, float spatial_scale, int sampling_ratio,
					 bool aligned, groma_tensor *out)
{
	int64_t		n;

	GROMA_TRY(groma_cuda_check_f32("roi_align", "feat", feat));
	GROMA_TRY(groma_cuda_check_f32("roi_align", "rois", rois));
	GROMA_TRY(groma_cuda_check_f32("roi_align", "out", out));
	if (feat->ndim != 4 || rois->ndim != 2 || rois->shape[1] != 5 || out->ndim != 4 ||
		out->shape[0] != rois->shape[0] || out->shape[1] != feat->shape[1] || feat->shape[2] <= 0 ||
		feat->shape[3] <= 0 || out->shape[2] <= 0 || out->shape[3] <= 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT,
						   "roi_align: feat [B,C,H,W], rois [M,5] and out [M,C,oh,ow] with positive sizes do not fit");
	if (sampling_ratio <= 0)
		return groma_error(GROMA_ERR_UNSUPPORTED, "roi_align: adaptive sampling is not supported on the GPU");
	if (sampling_ratio > GROMA_ROI_ALIGN_MAX_GRID || !isfinite(spatial_scale))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "roi_align: sampling_ratio over %d or a non-finite scale",
						   GROMA_ROI_ALIGN_MAX_GRID);
	n = groma_tensor_numel(out);
	if (n == 0)
		return groma_ok();
	return launch_roi_align((const float *) feat->data, (const float *) rois->data, (float *) out->data, out->shape[0],
							feat->shape[0], feat->shape[1], feat->shape[2], feat->shape[3], out->shape[2],
							out->shape[3], spatial_scale, sampling_ratio, aligned, groma_cuda_stream());
}

/* loc[i] for sample i of query (b, q): reference plus scaled offset, in the CPU's order (no FMA here). */
__global__ static void
deform_locations_kernel(const float *ref, int64_t rs0, int64_t rs1, int64_t rs2, int64_t rdim, int64_t queries,
						int64_t samples, int64_t map_h, int64_t map_w, int points, float *loc, int64_t n)
{
	int64_t		idx = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (idx >= n)
		return;
	{
		int64_t		row = idx / samples,
					b = row / queries,
					q = row % queries;
		const float *r = ref + b * rs0 + q * rs1;
		float	   *l = loc + idx * 2;

		if (rdim == 2)
		{
			l[0] = r[0] + l[0] / (float) map_w;
			l[1] = r[rs2] + l[1] / (float) map_h;
		}
		else
		{
			l[0] = r[0] + l[0] / (float) points * r[2 * rs2] * 0.5f;
			l[1] = r[rs2] + l[1] / (float) points * r[3 * rs2] * 0.5f;
		}
	}
}

/* Queues deform_locations_kernel on stream over the n samples of loc (n / samples query rows of ref). */
static groma_status
launch_deform_locations(const float *ref, int64_t rs0, int64_t rs1, int64_t rs2, int64_t rdim, int64_t queries,
						int64_t samples, int64_t map_h, int64_t map_w, int points, float *loc, int64_t n,
						cudaStream_t stream)
{
	deform_locations_kernel<<<groma_cuda_blocks(n, THREADS), THREADS, 0, stream>>>(
		ref, rs0, rs1, rs2, rdim, queries, samples, map_h, map_w, points, loc, n);
	return groma_cuda_launched("deform_locations");
}

/* Deformable-DETR sampling locations on the GPU; see ops_spatial.h. */
extern "C" groma_status
groma_cuda_deform_locations(const groma_tensor *ref, int64_t map_h, int64_t map_w, int points, groma_tensor *loc)
{
	int64_t		samples,
				n;

	GROMA_TRY(groma_deform_locations_check(ref, map_h, map_w, points, loc));
	samples = loc->shape[2] * points;
	n = loc->shape[0] * loc->shape[1] * samples;
	if (n == 0)
		return groma_ok();
	return launch_deform_locations((const float *) ref->data, ref->stride[0], ref->stride[1], ref->stride[2],
								   ref->shape[2], loc->shape[1], samples, map_h, map_w, points, (float *) loc->data, n,
								   groma_cuda_stream());
}
