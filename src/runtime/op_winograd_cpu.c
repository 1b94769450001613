/*
 * op_winograd_cpu.c - 3x3, stride 1, padding 1 convolution by Winograd
 * F(4x4, 3x3): each 4x4 output tile is Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A over a 6x6
 * input tile d, so the 36 element-wise products become 36 GEMMs over all
 * tiles with a quarter of im2col's multiply-adds.
 *
 * Tiles are laid out so that every inner loop runs over consecutive tiles
 * of a tile row (contiguous memory, vectorisable): the input plane is first
 * split into four column phases (x = 4k + phase - 1), which turns the
 * stride-4 tile reads into unit-stride reads.
 */
#include <string.h>

#include "cpu_parallel.h"
#include "cpu_simd.h"
#include "device_ops.h"
#include "op_check.h"
#include "ops.h"

#include <cblas.h>

#define TILE 4					/* outputs per tile side */
#define PATCH 6					/* inputs per tile side */
#define ELEMS (PATCH * PATCH)	/* Winograd-domain elements per tile */

/* G (6x3): the weight transform of F(4x4, 3x3) with points 0, ±1, ±2, ∞. */
static const double G[PATCH][3] = {
	{1.0 / 4, 0, 0},
	{-1.0 / 6, -1.0 / 6, -1.0 / 6},
	{-1.0 / 6, 1.0 / 6, -1.0 / 6},
	{1.0 / 24, 1.0 / 12, 1.0 / 6},
	{1.0 / 24, -1.0 / 12, 1.0 / 6},
	{0, 0, 1},
};

/* u[36, O, C] from w[O, C, 3, 3]; see ops.h. */
groma_status
groma_winograd_weights(const groma_tensor *w, groma_tensor *u)
{
	int64_t		o_n,
				c_n;

	GROMA_TRY(groma_check_f32("winograd_weights", "w", w));
	GROMA_TRY(groma_check_f32("winograd_weights", "u", u));
	GROMA_TRY(groma_check_ndim("winograd_weights", "w", w, 4));
	GROMA_TRY(groma_check_ndim("winograd_weights", "u", u, 3));
	if (w->device != GROMA_DEVICE_CPU || u->device != GROMA_DEVICE_CPU)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "winograd_weights: a CPU op");
	o_n = w->shape[0];
	c_n = w->shape[1];
	GROMA_TRY(groma_check_dim("winograd_weights", "w", w, 2, 3));
	GROMA_TRY(groma_check_dim("winograd_weights", "w", w, 3, 3));
	GROMA_TRY(groma_check_dim("winograd_weights", "u", u, 0, ELEMS));
	GROMA_TRY(groma_check_dim("winograd_weights", "u", u, 1, o_n));
	GROMA_TRY(groma_check_dim("winograd_weights", "u", u, 2, c_n));
	for (int64_t o = 0; o < o_n; o++)
		for (int64_t c = 0; c < c_n; c++)
		{
			const float *g = (const float *) w->data + (o * c_n + c) * 9;	/* [3, 3] */
			double		gt[PATCH][3];	/* G · g */

			for (int i = 0; i < PATCH; i++)
				for (int j = 0; j < 3; j++)
					gt[i][j] = G[i][0] * g[j] + G[i][1] * g[3 + j] + G[i][2] * g[6 + j];
			for (int i = 0; i < PATCH; i++)
				for (int j = 0; j < PATCH; j++)
					((float *) u->data)[((int64_t) (i * PATCH + j) * o_n + o) * c_n + c] =
						(float) (gt[i][0] * G[j][0] + gt[i][1] * G[j][1] + gt[i][2] * G[j][2]);
		}
	return groma_ok();
}

typedef struct winograd_job
{
	const groma_tensor *x,
			   *u,
			   *b;
	groma_tensor *y;
	int64_t		tiles_h,
				tiles_w,
				tiles,			/* batch · tiles_h · tiles_w: the GEMM width */
				ld;				/* row length of v and m: tiles padded off power-of-two strides */
	float	   *v;				/* [36, C, tiles] transformed inputs */
	float	   *m;				/* [36, O, tiles] products */
	float	   *work;			/* per-part rows, work_floats each */
	int64_t		work_floats;
} winograd_job;

/* The 1-d input transform Bᵀd of six rows d0..d5 (n values each) into t0..t5. */
GROMA_SIMD_CLONES static void
input_transform_1d(const float *restrict d0, const float *restrict d1, const float *restrict d2,
				   const float *restrict d3, const float *restrict d4, const float *restrict d5,
				   float *restrict t0, float *restrict t1, float *restrict t2, float *restrict t3,
				   float *restrict t4, float *restrict t5, int64_t n)
{
	for (int64_t k = 0; k < n; k++)
	{
		t0[k] = 4.0f * d0[k] - 5.0f * d2[k] + d4[k];
		t1[k] = -4.0f * (d1[k] + d2[k]) + d3[k] + d4[k];
		t2[k] = 4.0f * (d1[k] - d2[k]) - d3[k] + d4[k];
		t3[k] = 2.0f * (d3[k] - d1[k]) - d2[k] + d4[k];
		t4[k] = 2.0f * (d1[k] - d3[k]) - d2[k] + d4[k];
		t5[k] = 4.0f * d1[k] - 5.0f * d3[k] + d5[k];
	}
}

/* The 1-d output transform Aᵀm of six rows m0..m5 (n values each) into t0..t3. */
GROMA_SIMD_CLONES static void
output_transform_1d(const float *restrict m0, const float *restrict m1, const float *restrict m2,
					const float *restrict m3, const float *restrict m4, const float *restrict m5,
					float *restrict t0, float *restrict t1, float *restrict t2, float *restrict t3, int64_t n)
{
	for (int64_t k = 0; k < n; k++)
	{
		float		a = m1[k] + m2[k],
					b = m1[k] - m2[k],
					c = m3[k] + m4[k],
					d = m3[k] - m4[k];

		t0[k] = m0[k] + a + c;
		t1[k] = b + 2.0f * d;
		t2[k] = a + 4.0f * c;
		t3[k] = b + 8.0f * d + m5[k];
	}
}

/* Splits line[4n] into its four column phases: p_ph[k] = line[4k + ph]. */
GROMA_SIMD_CLONES static void
split_phases(const float *restrict line, float *restrict p0, float *restrict p1, float *restrict p2,
			 float *restrict p3, int64_t n)
{
	for (int64_t k = 0; k < n; k++)
	{
		p0[k] = line[4 * k];
		p1[k] = line[4 * k + 1];
		p2[k] = line[4 * k + 2];
		p3[k] = line[4 * k + 3];
	}
}

/* Interleaves four phases back into row[4n] = q_ph[k] + bias at 4k + ph. */
GROMA_SIMD_CLONES static void
merge_phases(const float *restrict q0, const float *restrict q1, const float *restrict q2,
			 const float *restrict q3, float bias, float *restrict row, int64_t n)
{
	for (int64_t k = 0; k < n; k++)
	{
		row[4 * k] = q0[k] + bias;
		row[4 * k + 1] = q1[k] + bias;
		row[4 * k + 2] = q2[k] + bias;
		row[4 * k + 3] = q3[k] + bias;
	}
}

/*
 * Input planes [begin, end) of (batch, channel): v[e, c, tile] = (Bᵀ d B)[e]
 * for every tile.  work holds the phase-split plane p[rows][4][tw + 1] and
 * the row-transformed plane h[rows][6][tw].
 */
static void
input_part(void *ctx, int64_t begin, int64_t end, int part)
{
	const winograd_job *j = ctx;
	int64_t		c_n = j->x->shape[1],
				height = j->x->shape[2],
				width = j->x->shape[3],
				th = j->tiles_h,
				tw = j->tiles_w,
				rows = TILE * th + 2,	/* input rows -1 .. 4·th */
				pw = tw + 1;
	float	   *p = j->work + part * j->work_floats;	/* [rows, 4, tw + 1] */
	float	   *h = p + rows * 4 * pw;	/* [rows, 6, tw] */

	for (int64_t plane = begin; plane < end; plane++)
	{
		int64_t		n = plane / c_n,
					c = plane % c_n;
		const float *xp = (const float *) j->x->data + plane * height * width;	/* [H, W] */

		/* p[r, ph, k] = x[r - 1, 4k + ph - 1], zero outside */
		for (int64_t r = 0; r < rows; r++)
		{
			int64_t		y = r - 1;
			float	   *line = h;	/* [4·(tw + 1)]: the padded row, staged in h's first row */

			memset(line, 0, (size_t) (4 * pw) * sizeof(float));
			if (y >= 0 && y < height)
				memcpy(line + 1, xp + y * width, (size_t) width * sizeof(float));
			split_phases(line, p + (r * 4 + 0) * pw, p + (r * 4 + 1) * pw, p + (r * 4 + 2) * pw,
						 p + (r * 4 + 3) * pw, pw);
		}
		/* h[r, q, k] = (d B)[q] of row r for tile column k; d[q] is phase q & 3 at k + q / 4 */
		for (int64_t r = 0; r < rows; r++)
		{
			const float *ph = p + r * 4 * pw;
			float	   *t = h + r * PATCH * tw;

			input_transform_1d(ph, ph + pw, ph + 2 * pw, ph + 3 * pw, ph + 1, ph + pw + 1,
							   t, t + tw, t + 2 * tw, t + 3 * tw, t + 4 * tw, t + 5 * tw, tw);
		}
		/* columns of each tile row, straight into v */
		for (int64_t ty = 0; ty < th; ty++)
			for (int q = 0; q < PATCH; q++)
			{
				const float *s[PATCH];
				float	   *t[PATCH];

				for (int i = 0; i < PATCH; i++)
				{
					s[i] = h + ((TILE * ty + i) * PATCH + q) * tw;
					t[i] = j->v + ((int64_t) (i * PATCH + q) * c_n + c) * j->ld + (n * th + ty) * tw;
				}
				input_transform_1d(s[0], s[1], s[2], s[3], s[4], s[5], t[0], t[1], t[2], t[3], t[4], t[5], tw);
			}
	}
}

/* Winograd elements [begin, end): m[e] = u[e] · v[e]. */
static void
product_part(void *ctx, int64_t begin, int64_t end, int part)
{
	const winograd_job *j = ctx;
	int64_t		o_n = j->u->shape[1],
				c_n = j->u->shape[2];

	for (int64_t e = begin; e < end; e++)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int) o_n, (int) j->tiles, (int) c_n, 1.0f,
					(const float *) j->u->data + e * o_n * c_n, (int) c_n, j->v + e * c_n * j->ld,
					(int) j->ld, 0.0f, j->m + e * o_n * j->ld, (int) j->ld);
}

/*
 * Output planes [begin, end) of (batch, out channel): y = Aᵀ m A + bias.
 * work holds the column-transformed rows g[4][6][tw] and one output row
 * strip q[4][tw] plus its interleaved copy row[4·tw].
 */
static void
output_part(void *ctx, int64_t begin, int64_t end, int part)
{
	const winograd_job *j = ctx;
	int64_t		o_n = j->y->shape[1],
				height = j->y->shape[2],
				width = j->y->shape[3],
				th = j->tiles_h,
				tw = j->tiles_w;
	float	   *g = j->work + part * j->work_floats;	/* [4, 6, tw] */
	float	   *q = g + TILE * PATCH * tw;	/* [4, tw] */
	float	   *row = q + TILE * tw;	/* [4·tw] */

	for (int64_t plane = begin; plane < end; plane++)
	{
		int64_t		n = plane / o_n,
					o = plane % o_n;
		float		bias = j->b ? ((const float *) j->b->data)[o] : 0.0f;
		float	   *yp = (float *) j->y->data + plane * height * width;	/* [H, W] */

		for (int64_t ty = 0; ty < th; ty++)
		{
			/* g[i, col] = Σ_i' Aᵀ[i, i'] m[i'·6 + col] over the tile row */
			for (int col = 0; col < PATCH; col++)
			{
				const float *s[PATCH];
				float	   *t[TILE];

				for (int i = 0; i < PATCH; i++)
					s[i] = j->m + ((int64_t) (i * PATCH + col) * o_n + o) * j->ld + (n * th + ty) * tw;
				for (int i = 0; i < TILE; i++)
					t[i] = g + (i * PATCH + col) * tw;
				output_transform_1d(s[0], s[1], s[2], s[3], s[4], s[5], t[0], t[1], t[2], t[3], tw);
			}
			for (int i = 0; i < TILE && TILE * ty + i < height; i++)
			{
				const float *s[PATCH];
				float	   *t[TILE];

				for (int col = 0; col < PATCH; col++)
					s[col] = g + (i * PATCH + col) * tw;
				for (int jj = 0; jj < TILE; jj++)
					t[jj] = q + jj * tw;
				output_transform_1d(s[0], s[1], s[2], s[3], s[4], s[5], t[0], t[1], t[2], t[3], tw);
				merge_phases(q, q + tw, q + 2 * tw, q + 3 * tw, bias, row, tw);
				memcpy(yp + (TILE * ty + i) * width, row, (size_t) width * sizeof(float));
			}
		}
	}
}

/* A 3x3 convolution the best way for x's device; see ops.h. */
groma_status
groma_conv3x3(const groma_tensor *x, const groma_tensor *w, const groma_tensor *u, const groma_tensor *b,
			  groma_arena *scratch, groma_tensor *y)
{
	if (u != NULL && u->data != NULL && !groma_on_device(x))
		return groma_conv3x3_winograd(x, u, b, scratch, y);
	return groma_conv2d(x, w, b, 1, 1, scratch, y);
}

/* y = conv2d(x, w, b, stride 1, padding 1) from u = winograd_weights(w); see ops.h. */
groma_status
groma_conv3x3_winograd(const groma_tensor *x, const groma_tensor *u, const groma_tensor *b,
					   groma_arena *scratch, groma_tensor *y)
{
	int64_t		batch,
				c_n,
				o_n,
				height,
				width,
				rows;
	int			parts = groma_cpu_threads();
	size_t		mark;
	winograd_job j;

	GROMA_TRY(groma_check_f32("conv3x3_winograd", "x", x));
	GROMA_TRY(groma_check_f32("conv3x3_winograd", "u", u));
	GROMA_TRY(groma_check_f32("conv3x3_winograd", "y", y));
	GROMA_TRY(groma_check_ndim("conv3x3_winograd", "x", x, 4));
	GROMA_TRY(groma_check_ndim("conv3x3_winograd", "u", u, 3));
	GROMA_TRY(groma_check_ndim("conv3x3_winograd", "y", y, 4));
	if (x->device != GROMA_DEVICE_CPU || u->device != GROMA_DEVICE_CPU || y->device != GROMA_DEVICE_CPU)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "conv3x3_winograd: a CPU op");
	if (!groma_tensor_is_contiguous(x) || !groma_tensor_is_contiguous(u) || !groma_tensor_is_contiguous(y))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "conv3x3_winograd: tensors must be contiguous");
	batch = x->shape[0];
	c_n = x->shape[1];
	height = x->shape[2];
	width = x->shape[3];
	o_n = u->shape[1];
	GROMA_TRY(groma_check_dim("conv3x3_winograd", "u", u, 0, ELEMS));
	GROMA_TRY(groma_check_dim("conv3x3_winograd", "u", u, 2, c_n));
	GROMA_TRY(groma_check_dim("conv3x3_winograd", "y", y, 0, batch));
	GROMA_TRY(groma_check_dim("conv3x3_winograd", "y", y, 1, o_n));
	GROMA_TRY(groma_check_dim("conv3x3_winograd", "y", y, 2, height));
	GROMA_TRY(groma_check_dim("conv3x3_winograd", "y", y, 3, width));
	if (b != NULL)
	{
		GROMA_TRY(groma_check_f32("conv3x3_winograd", "b", b));
		if (groma_tensor_numel(b) != o_n)
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "conv3x3_winograd: bias size differs from %lld outputs",
							   (long long) o_n);
	}
	if (scratch == NULL)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "conv3x3_winograd: a scratch arena is needed");
	if (batch == 0 || o_n == 0 || height == 0 || width == 0)
		return groma_ok();

	memset(&j, 0, sizeof(j));
	j.x = x;
	j.u = u;
	j.b = b;
	j.y = y;
	j.tiles_h = (height + TILE - 1) / TILE;
	j.tiles_w = (width + TILE - 1) / TILE;
	j.tiles = batch * j.tiles_h * j.tiles_w;
	/* rows 64 bytes apart in cache sets: the 36 streams of a plane do not evict each other */
	j.ld = (j.tiles + 15) / 16 * 16 + 16;
	rows = TILE * j.tiles_h + 2;
	/* per part: the larger of the input (p + h) and output (g + q + row) working sets */
	j.work_floats = rows * 4 * (j.tiles_w + 1) + rows * PATCH * j.tiles_w;
	if (j.work_floats < (TILE * PATCH + 2 * TILE) * j.tiles_w)
		j.work_floats = (TILE * PATCH + 2 * TILE) * j.tiles_w;
	mark = scratch->used;
	j.v = groma_arena_alloc(scratch, (size_t) (ELEMS * c_n * j.ld) * sizeof(float));
	j.m = groma_arena_alloc(scratch, (size_t) (ELEMS * o_n * j.ld) * sizeof(float));
	j.work = groma_arena_alloc(scratch, (size_t) (parts * j.work_floats) * sizeof(float));
	if (j.v == NULL || j.m == NULL || j.work == NULL)
	{
		scratch->used = mark;
		return groma_error(GROMA_ERR_NO_MEMORY, "conv3x3_winograd: scratch arena too small for %lld tiles",
						   (long long) j.tiles);
	}
	if (c_n == 0)
		memset(j.m, 0, (size_t) (ELEMS * o_n * j.ld) * sizeof(float));
	else
	{
		groma_parallel_for(batch * c_n, 1, input_part, &j);
		groma_parallel_for(ELEMS, 1, product_part, &j);
	}
	groma_parallel_for(batch * o_n, 1, output_part, &j);
	scratch->used = mark;
	return groma_ok();
}
