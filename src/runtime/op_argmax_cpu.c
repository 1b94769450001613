/*
 * op_argmax_cpu.c - the greedy pick of each row of scores (the first
 * largest value; a NaN counts as the largest, the first NaN wins, as
 * torch.argmax), so a decode step downloads ids instead of every score.
 */
#include <math.h>

#include "device_ops.h"
#include "op_check.h"
#include "ops.h"

/* The first largest of each row; see ops.h. */
groma_status
groma_argmax_rows(const groma_tensor *x, groma_arena *scratch, int64_t *idx, float *val)
{
	int64_t		rows,
				n;

	if (groma_on_device(x))
		return GROMA_DEVICE_CALL("argmax_rows", argmax_rows, x, scratch, idx, val);
	GROMA_TRY(groma_check_f32("argmax_rows", "x", x));
	GROMA_TRY(groma_check_ndim("argmax_rows", "x", x, 2));
	rows = x->shape[0];
	n = x->shape[1];
	if (n < 1)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "argmax_rows: rows of %lld values", (long long) n);
	for (int64_t r = 0; r < rows; r++)
	{
		const float *row = (const float *) x->data + r * n;
		int64_t		best = 0;

		for (int64_t i = 0; i < n; i++)
		{
			if (isnan(row[i]))
			{
				best = i;
				break;
			}
			if (row[i] > row[best])
				best = i;
		}
		idx[r] = best;
		val[r] = row[best];
	}
	return groma_ok();
}
