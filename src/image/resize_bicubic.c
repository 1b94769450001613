/*
 * resize_bicubic.c - PIL's bicubic resampling of 8-bit RGB, bit for bit.
 */
#include "resize_bicubic.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CUBIC_A (-0.5)
#define CUBIC_SUPPORT 2.0

/* Returns the Keys cubic kernel with a = -0.5 at x. */
static double
cubic_kernel(double x)
{
	if (x < 0.0)
		x = -x;
	if (x < 1.0)
		return ((CUBIC_A + 2.0) * x - (CUBIC_A + 3.0)) * x * x + 1;
	if (x < 2.0)
		return (((x - 5) * x + 8) * x - 4) * CUBIC_A;
	return 0.0;
}

/* Rounds a normalised weight to fixed point away from zero, as Pillow does. */
static int32_t
weight_to_fixed(double w)
{
	if (w < 0)
		return (int32_t) (-0.5 + w * (1 << GROMA_RESAMPLE_PRECISION_BITS));
	return (int32_t) (0.5 + w * (1 << GROMA_RESAMPLE_PRECISION_BITS));
}

/* Builds the weight table for one axis; see resize_bicubic.h. */
groma_status
groma_resample_axis_build(int in_size, int out_size, groma_resample_axis *axis)
{
	double		scale,
				filterscale,
				support;
	double	   *w;

	memset(axis, 0, sizeof(*axis));
	if (in_size <= 0 || out_size <= 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "resize sizes must be positive (%d -> %d)",
						   in_size, out_size);
	filterscale = scale = (double) in_size / out_size;
	if (filterscale < 1.0)
		filterscale = 1.0;
	support = CUBIC_SUPPORT * filterscale;

	axis->in_size = in_size;
	axis->out_size = out_size;
	axis->taps = (int) ceil(support) * 2 + 1;
	axis->first = calloc((size_t) out_size, sizeof(int32_t));
	axis->count = calloc((size_t) out_size, sizeof(int32_t));
	axis->weights = calloc((size_t) out_size * axis->taps, sizeof(int32_t));
	w = calloc((size_t) axis->taps, sizeof(double));
	if (!axis->first || !axis->count || !axis->weights || !w)
	{
		free(w);
		groma_resample_axis_free(axis);
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate resize weights");
	}

	for (int xx = 0; xx < out_size; xx++)
	{
		double		center = (xx + 0.5) * scale;
		double		sum = 0.0;
		double		inv = 1.0 / filterscale;
		int			xmin = (int) (center - support + 0.5);
		int			xmax = (int) (center + support + 0.5);

		if (xmin < 0)
			xmin = 0;
		if (xmax > in_size)
			xmax = in_size;
		xmax -= xmin;
		for (int x = 0; x < xmax; x++)
		{
			w[x] = cubic_kernel((x + xmin - center + 0.5) * inv);
			sum += w[x];
		}
		for (int x = 0; x < xmax; x++)
		{
			double		normalised = sum != 0.0 ? w[x] / sum : w[x];

			axis->weights[(size_t) xx * axis->taps + x] = weight_to_fixed(normalised);
		}
		axis->first[xx] = xmin;
		axis->count[xx] = xmax;
	}
	free(w);
	return groma_ok();
}

/* Frees a weight table; safe on a zeroed one. */
void
groma_resample_axis_free(groma_resample_axis *axis)
{
	free(axis->first);
	free(axis->count);
	free(axis->weights);
	memset(axis, 0, sizeof(*axis));
}

/* Horizontal pass: rows [row0, row0 + rows) of src ([][in_w][3]) into dst ([rows][out_w][3]). */
static void
resample_rows(const uint8_t *src, int in_w, int row0, int rows,
			  const groma_resample_axis *ax, uint8_t *dst)
{
	int			out_w = ax->out_size;

	for (int y = 0; y < rows; y++)
	{
		const uint8_t *in = src + (size_t) (row0 + y) * in_w * 3;
		uint8_t    *out = dst + (size_t) y * out_w * 3;

		for (int xx = 0; xx < out_w; xx++)
		{
			const int32_t *k = ax->weights + (size_t) xx * ax->taps;
			const uint8_t *p = in + (size_t) ax->first[xx] * 3;
			int32_t		acc[3] = {1 << (GROMA_RESAMPLE_PRECISION_BITS - 1),
			1 << (GROMA_RESAMPLE_PRECISION_BITS - 1), 1 << (GROMA_RESAMPLE_PRECISION_BITS - 1)};

			for (int x = 0; x < ax->count[xx]; x++)
			{
				acc[0] += p[x * 3 + 0] * k[x];
				acc[1] += p[x * 3 + 1] * k[x];
				acc[2] += p[x * 3 + 2] * k[x];
			}
			out[xx * 3 + 0] = groma_resample_clip8(acc[0]);
			out[xx * 3 + 1] = groma_resample_clip8(acc[1]);
			out[xx * 3 + 2] = groma_resample_clip8(acc[2]);
		}
	}
}

/* Vertical pass: src ([][width][3], first row = input row row0) into dst ([out_h][width][3]). */
static void
resample_columns(const uint8_t *src, int width, int row0,
				 const groma_resample_axis *ay, uint8_t *dst)
{
	size_t		stride = (size_t) width * 3;

	for (int yy = 0; yy < ay->out_size; yy++)
	{
		const int32_t *k = ay->weights + (size_t) yy * ay->taps;
		const uint8_t *in = src + (size_t) (ay->first[yy] - row0) * stride;
		uint8_t    *out = dst + (size_t) yy * stride;

		for (size_t i = 0; i < stride; i++)
		{
			int32_t		acc = 1 << (GROMA_RESAMPLE_PRECISION_BITS - 1);

			for (int y = 0; y < ay->count[yy]; y++)
				acc += in[(size_t) y * stride + i] * k[y];
			out[i] = groma_resample_clip8(acc);
		}
	}
}

/* Resizes like PIL's Image.resize(..., BICUBIC); see resize_bicubic.h. */
groma_status
groma_resize_bicubic_rgb(const uint8_t *src, int in_w, int in_h,
						 uint8_t *dst, int out_w, int out_h)
{
	groma_resample_axis ax,
				ay;
	groma_status st;
	int			row_first,
				row_end;
	uint8_t    *tmp = NULL;

	if (in_w == out_w && in_h == out_h)
	{
		memcpy(dst, src, (size_t) in_w * in_h * 3);
		return groma_ok();
	}
	st = groma_resample_axis_build(in_w, out_w, &ax);
	if (st.code != GROMA_OK)
		return st;
	st = groma_resample_axis_build(in_h, out_h, &ay);
	if (st.code != GROMA_OK)
	{
		groma_resample_axis_free(&ax);
		return st;
	}

	if (in_h == out_h)
		resample_rows(src, in_w, 0, in_h, &ax, dst);
	else if (in_w == out_w)
		resample_columns(src, in_w, 0, &ay, dst);
	else
	{
		/* Only the input rows the vertical pass reads go through the horizontal pass. */
		row_first = ay.first[0];
		row_end = ay.first[out_h - 1] + ay.count[out_h - 1];
		tmp = malloc((size_t) (row_end - row_first) * out_w * 3);	/* [rows][out_w][3] */
		if (tmp == NULL)
			st = groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate the resize buffer");
		else
		{
			resample_rows(src, in_w, row_first, row_end - row_first, &ax, tmp);
			resample_columns(tmp, out_w, row_first, &ay, dst);
		}
	}
	free(tmp);
	groma_resample_axis_free(&ax);
	groma_resample_axis_free(&ay);
	return st;
}
