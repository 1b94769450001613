/*
 * op_activation_cpu.c - GELU (erf), ReLU, SiLU, sigmoid and softmax.
 */
#include <math.h>

#include "cpu_math.h"
#include "cpu_parallel.h"
#include "cpu_simd.h"
#include "device_ops.h"
#include "op_check.h"
#include "ops.h"

/* Checks x and y for an elementwise op and returns the element count in *n. */
static groma_status
check_unary(const char *op, const groma_tensor *x, const groma_tensor *y, int64_t *n)
{
	GROMA_TRY(groma_check_f32(op, "x", x));
	GROMA_TRY(groma_check_f32(op, "y", y));
	GROMA_TRY(groma_check_same_shape(op, x, y));
	*n = groma_tensor_numel(x);
	return groma_ok();
}

typedef struct unary_job
{
	groma_unary_kind kind;
	const float *in;
	float	   *out;
} unary_job;

/* Applies one activation to elements [begin, end). */
static void
unary_part(void *ctx, int64_t begin, int64_t end, int part)
{
	const unary_job *j = ctx;
	const float *in = j->in;
	float	   *out = j->out;

	/* one loop per kind, so each stays a plain loop the compiler can vectorise */
	switch (j->kind)
	{
		case GROMA_UNARY_GELU:
			for (int64_t i = begin; i < end; i++)
				out[i] = 0.5f * in[i] * (1.0f + erff(in[i] * (float) M_SQRT1_2));
			break;
		case GROMA_UNARY_RELU:
			for (int64_t i = begin; i < end; i++)
				out[i] = in[i] > 0.0f ? in[i] : 0.0f;
			break;
		case GROMA_UNARY_SILU:
			for (int64_t i = begin; i < end; i++)
				out[i] = in[i] / (1.0f + expf(-in[i]));
			break;
		case GROMA_UNARY_SIGMOID:
			for (int64_t i = begin; i < end; i++)
				out[i] = 1.0f / (1.0f + expf(-in[i]));
			break;
	}
}

/* y = f(x) elementwise for one activation, on the device that holds x; y may be x. */
static groma_status
activation(const char *op, groma_unary_kind kind, const groma_tensor *x, groma_tensor *y)
{
	int64_t		n;
	unary_job	j = {kind, x->data, y->data};

	if (groma_on_device(x))
		return GROMA_DEVICE_CALL(op, unary, kind, x, y);
	GROMA_TRY(check_unary(op, x, y, &n));
	groma_parallel_for(n, 1 << 15, unary_part, &j);
	return groma_ok();
}

/* y = x · Φ(x) with the exact erf form (PyTorch's default GELU). */
groma_status
groma_gelu(const groma_tensor *x, groma_tensor *y)
{
	return activation("gelu", GROMA_UNARY_GELU, x, y);
}

/* y = max(x, 0). */
groma_status
groma_relu(const groma_tensor *x, groma_tensor *y)
{
	return activation("relu", GROMA_UNARY_RELU, x, y);
}

/* y = x · sigmoid(x). */
groma_status
groma_silu(const groma_tensor *x, groma_tensor *y)
{
	return activation("silu", GROMA_UNARY_SILU, x, y);
}

/* y = 1 / (1 + exp(-x)). */
groma_status
groma_sigmoid(const groma_tensor *x, groma_tensor *y)
{
	return activation("sigmoid", GROMA_UNARY_SIGMOID, x, y);
}

typedef struct silu_mul_job
{
	const float *gate;
	const float *up;
	float	   *out;
} silu_mul_job;

/* silu(gate) · up for elements [begin, end). */
static void
silu_mul_part(void *ctx, int64_t begin, int64_t end, int part)
{
	const silu_mul_job *j = ctx;

	for (int64_t i = begin; i < end; i++)
	{
		float		s = j->gate[i] / (1.0f + expf(-j->gate[i]));

		j->out[i] = s * j->up[i];
	}
}

/* y = silu(gate) · up; see ops.h. */
groma_status
groma_silu_mul(const groma_tensor *gate, const groma_tensor *up, groma_tensor *y)
{
	int64_t		n;
	silu_mul_job j = {gate->data, up->data, y->data};

	if (groma_on_device(gate))
		return GROMA_DEVICE_CALL("silu_mul", silu_mul, gate, up, y);
	GROMA_TRY(check_unary("silu_mul", gate, y, &n));
	GROMA_TRY(groma_check_f32("silu_mul", "up", up));
	GROMA_TRY(groma_check_same_shape("silu_mul", gate, up));
	groma_parallel_for(n, 1 << 15, silu_mul_part, &j);
	return groma_ok();
}

#define LANES 8

/* Softmax of one row in place, the loops behind groma_softmax_row. */
GROMA_SIMD_CLONES static void
softmax_row_lanes(float *row, int64_t n)
{
	float		lane_max[LANES],
				max = -INFINITY;
	double		lane_sum[LANES],
				sum = 0.0;
	int64_t		body = n / LANES * LANES;

	/* eight running maxima and (double) sums, so both passes vectorise */
	for (int l = 0; l < LANES; l++)
		lane_max[l] = -INFINITY;
	for (int64_t i = 0; i < body; i += LANES)
		for (int l = 0; l < LANES; l++)
			lane_max[l] = row[i + l] > lane_max[l] ? row[i + l] : lane_max[l];
	for (int l = 0; l < LANES; l++)
		max = lane_max[l] > max ? lane_max[l] : max;
	for (int64_t i = body; i < n; i++)
		max = row[i] > max ? row[i] : max;
	if (max == -INFINITY)
	{
		for (int64_t i = 0; i < n; i++)
			row[i] = 0.0f;		/* a fully masked row: no weight anywhere */
		return;
	}
	for (int l = 0; l < LANES; l++)
		lane_sum[l] = 0.0;
	for (int64_t i = 0; i < body; i += LANES)
		for (int l = 0; l < LANES; l++)
		{
			row[i + l] = groma_exp_lanes(row[i + l] - max);
			lane_sum[l] += row[i + l];
		}
	for (int64_t i = body; i < n; i++)
	{
		row[i] = groma_exp_lanes(row[i] - max);
		sum += row[i];
	}
	for (int l = 0; l < LANES; l++)
		sum += lane_sum[l];
	for (int64_t i = 0; i < n; i++)
		row[i] = (float) (row[i] / sum);
}

/* Softmax of one row in place (max-subtracted; an all -inf row becomes zeros). */
void
groma_softmax_row(float *row, int64_t n)
{
	/* a plain symbol in front of the per-CPU copies, which other files cannot name portably */
	softmax_row_lanes(row, n);
}

/* Softmax over the last dimension. */
groma_status
groma_softmax(const groma_tensor *x, groma_tensor *y)
{
	int64_t		n,
				d;

	if (groma_on_device(x))
		return GROMA_DEVICE_CALL("softmax", softmax, x, y);
	GROMA_TRY(check_unary("softmax", x, y, &n));
	GROMA_TRY(groma_check_ndim("softmax", "x", x, -1));
	d = x->shape[x->ndim - 1];
	for (int64_t r = 0; d > 0 && r < n / d; r++)
	{
		float	   *out = (float *) y->data + r * d;

		if (out != (const float *) x->data + r * d)
			for (int64_t i = 0; i < d; i++)
				out[i] = ((const float *) x->data)[r * d + i];
		groma_softmax_row(out, d);
	}
	return groma_ok();
}
