/*
 * op_nms_topk_cpu.c - greedy class-agnostic NMS (mmcv.ops.nms with offset
 * 0, as Groma's region selection calls it), top-k, and inverse sigmoid.
 *
 * Orders are made deterministic: equal scores keep the lower index first,
 * which is what groma's goldens record (GROMA.md step 5).  Arithmetic is in
 * float, in mmcv's operation order, so IoU ties with the threshold break the
 * same way.
 */
#include "ops_spatial.h"

#include <math.h>
#include <stdlib.h>

#include "device_ops.h"
#include "op_check.h"

/* A score with the index it came from, for sorting. */
typedef struct ranked
{
	float		score;
	int64_t		index;
} ranked;

/* qsort order: NaN first, then descending score, then ascending index (a total order). */
static int
ranked_cmp(const void *pa, const void *pb)
{
	const ranked *a = pa,
			   *b = pb;
	bool		na = isnan(a->score),
				nb = isnan(b->score);

	if (na != nb)
		return na ? -1 : 1;
	if (!na && a->score != b->score)
		return a->score > b->score ? -1 : 1;
	return a->index < b->index ? -1 : a->index > b->index ? 1 : 0;
}

/* Returns b when a < b, else a (std::max's rule, kept for NaN behaviour). */
static inline float
max_f(float a, float b)
{
	return a < b ? b : a;
}

/* Returns b when b < a, else a (std::min's rule). */
static inline float
min_f(float a, float b)
{
	return b < a ? b : a;
}

/* Returns true when IoU of boxes a and b (x1, y1, x2, y2; areas given) is over threshold, as mmcv's nms_cpu computes it. */
static bool
iou_over(const float *a, float area_a, const float *b, float area_b, float threshold)
{
	float		w = max_f(0.0f, min_f(a[2], b[2]) - max_f(a[0], b[0]));
	float		h = max_f(0.0f, min_f(a[3], b[3]) - max_f(a[1], b[1]));
	float		inter = w * h;
	float		ovr = inter / (area_a + area_b - inter);

	return ovr > threshold;
}

/* Checks NMS arguments; sets *n to the box count.  An empty [0, 4] input may have NULL data. */
static groma_status
check_nms(const groma_tensor *boxes, const groma_tensor *scores, int64_t *keep, int *n_keep, int64_t *n)
{
	const char *op = "nms";
	char		a[64],
				b[64];

	if (boxes == NULL || scores == NULL || keep == NULL || n_keep == NULL)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: boxes, scores, keep and n_keep are required", op);
	if (boxes->ndim != 2 || boxes->shape[1] != 4 || scores->ndim != 1 || scores->shape[0] != boxes->shape[0])
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: boxes %s must be [N,4] and scores %s [N]", op,
						   groma_tensor_shape_str(boxes, a, sizeof(a)), groma_tensor_shape_str(scores, b, sizeof(b)));
	*n = boxes->shape[0];
	if (*n > INT32_MAX)
		return groma_error(GROMA_ERR_LIMIT, "%s: %lld boxes is too many", op, (long long) *n);
	if (*n == 0)
		return groma_ok();
	GROMA_TRY(groma_check_f32(op, "boxes", boxes));
	GROMA_TRY(groma_check_f32(op, "scores", scores));
	return groma_ok();
}

/* Greedy NMS; see ops_spatial.h. */
groma_status
groma_nms(const groma_tensor *boxes, const groma_tensor *scores, float iou_threshold, float score_threshold,
		  int max_num, int64_t *keep, int *n_keep)
{
	const float *bx;
	const float *sc;
	ranked	   *order;			/* [n candidates] */
	float	   *area;			/* [n candidates] */
	bool	   *dropped;		/* [n candidates] */
	int64_t		n = 0,
				n_cand = 0;
	int			kept = 0;

	if (n_keep)
		*n_keep = 0;
	GROMA_TRY(check_nms(boxes, scores, keep, n_keep, &n));
	if (n == 0)
		return groma_ok();
	bx = (const float *) boxes->data;	/* [N, 4] */
	sc = (const float *) scores->data;	/* [N] */
	order = malloc((size_t) n * sizeof(ranked));
	area = malloc((size_t) n * sizeof(float));
	dropped = calloc((size_t) n, sizeof(bool));
	if (order == NULL || area == NULL || dropped == NULL)
	{
		free(order);
		free(area);
		free(dropped);
		return groma_error(GROMA_ERR_NO_MEMORY, "nms: cannot allocate scratch for %lld boxes", (long long) n);
	}
	for (int64_t i = 0; i < n; i++)
		if (!isnan(sc[i]) && (score_threshold <= 0.0f || sc[i] > score_threshold))
		{
			order[n_cand].score = sc[i];
			order[n_cand].index = i;
			n_cand++;
		}
	qsort(order, (size_t) n_cand, sizeof(ranked), ranked_cmp);
	for (int64_t i = 0; i < n_cand; i++)
	{
		const float *b = bx + order[i].index * 4;

		area[i] = (b[2] - b[0]) * (b[3] - b[1]);
	}
	for (int64_t i = 0; i < n_cand && (max_num <= 0 || kept < max_num); i++)
	{
		const float *bi = bx + order[i].index * 4;

		if (dropped[i])
			continue;
		keep[kept++] = order[i].index;
		for (int64_t j = i + 1; j < n_cand; j++)
			if (!dropped[j] && iou_over(bi, area[i], bx + order[j].index * 4, area[j], iou_threshold))
				dropped[j] = true;
	}
	*n_keep = kept;
	free(order);
	free(area);
	free(dropped);
	return groma_ok();
}

/* Top-k by descending value, ties by lower index; see ops_spatial.h. */
groma_status
groma_topk(const groma_tensor *x, int k, int64_t *indices, float *values)
{
	const char *op = "topk";
	char		a[64];
	const float *v;
	ranked	   *order;			/* [N] */
	int64_t		n;

	if (x == NULL || x->ndim != 1)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: x %s must be [N]", op,
						   x ? groma_tensor_shape_str(x, a, sizeof(a)) : "(missing)");
	n = x->shape[0];
	if (k < 0 || k > n)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: k = %d is outside [0, %lld] for x %s", op, k,
						   (long long) n, groma_tensor_shape_str(x, a, sizeof(a)));
	if (k == 0)
		return groma_ok();
	GROMA_TRY(groma_check_f32(op, "x", x));
	if (indices == NULL)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: indices is required", op);
	v = (const float *) x->data;	/* [N] */
	order = malloc((size_t) n * sizeof(ranked));
	if (order == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "%s: cannot allocate scratch for %lld values", op, (long long) n);
	for (int64_t i = 0; i < n; i++)
	{
		order[i].score = v[i];
		order[i].index = i;
	}
	qsort(order, (size_t) n, sizeof(ranked), ranked_cmp);
	for (int i = 0; i < k; i++)
	{
		indices[i] = order[i].index;
		if (values)
			values[i] = order[i].score;
	}
	free(order);
	return groma_ok();
}

/* Inverse sigmoid with clamping; see ops_spatial.h. */
groma_status
groma_inverse_sigmoid(const groma_tensor *x, float eps, groma_tensor *y)
{
	const char *op = "inverse_sigmoid";
	const float *in;
	float	   *out;
	int64_t		n;

	if (groma_on_device(x))
		return GROMA_DEVICE_CALL(op, inverse_sigmoid, x, eps, y);
	GROMA_TRY(groma_check_f32(op, "x", x));
	GROMA_TRY(groma_check_f32(op, "y", y));
	GROMA_TRY(groma_check_same_shape(op, x, y));
	in = (const float *) x->data;
	out = (float *) y->data;	/* may be x */
	n = groma_tensor_numel(x);
	for (int64_t i = 0; i < n; i++)
	{
		float		v = in[i];
		float		num,
					den;

		v = v < 0.0f ? 0.0f : v;
		v = v > 1.0f ? 1.0f : v;
		num = v < eps ? eps : v;
		den = 1.0f - v;
		den = den < eps ? eps : den;
		out[i] = logf(num / den);
	}
	return groma_ok();
}
