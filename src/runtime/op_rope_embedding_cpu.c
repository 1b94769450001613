/*
 * op_rope_embedding_cpu.c - LLaMA rotary embedding and embedding lookup.
 */
#include <math.h>
#include <string.h>

#include "device_ops.h"
#include "op_check.h"
#include "ops.h"

/* RoPE's inverse frequency of pair i; see ops.h. */
float
groma_rope_inv_freq(float theta, int64_t i, int64_t dim)
{
	/* transformers: inv_freq = 1 / theta^(arange(0, D, 2) / D), in float32 */
	return (float) (1.0 / pow((double) theta, (double) (2 * i) / (double) dim));
}

/* Rotates x[B, T, H, D] in place (rotate_half layout); see ops.h. */
groma_status
groma_rope(groma_tensor *x, const int64_t *positions, int64_t start_pos, float theta)
{
	int64_t		batch,
				tokens,
				heads,
				dim,
				half;
	float		inv_freq[512];

	if (groma_on_device(x))
		return GROMA_DEVICE_CALL("rope", rope, x, positions, start_pos, theta);
	GROMA_TRY(groma_check_f32("rope", "x", x));
	GROMA_TRY(groma_check_ndim("rope", "x", x, 4));
	batch = x->shape[0];
	tokens = x->shape[1];
	heads = x->shape[2];
	dim = x->shape[3];
	half = dim / 2;
	if (dim % 2 != 0 || half > 512)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "rope: head dimension %lld must be even and <= 1024",
						   (long long) dim);
	/* transformers: inv_freq = 1 / theta^(arange(0, D, 2) / D), in float32 */
	for (int64_t i = 0; i < half; i++)
		inv_freq[i] = groma_rope_inv_freq(theta, i, dim);

	for (int64_t t = 0; t < tokens; t++)
	{
		float		pos = (float) (positions ? positions[t] : start_pos + t);

		for (int64_t i = 0; i < half; i++)
		{
			/* freqs = pos · inv_freq in float32, then cos/sin of that float, as torch does */
			float		angle = pos * inv_freq[i];
			float		c = cosf(angle),
						s = sinf(angle);

			for (int64_t b = 0; b < batch; b++)
				for (int64_t h = 0; h < heads; h++)
				{
					float	   *row = (float *) x->data + ((b * tokens + t) * heads + h) * dim;
					float		x1 = row[i],
								x2 = row[i + half];

					row[i] = x1 * c - x2 * s;
					row[i + half] = x2 * c + x1 * s;
				}
		}
	}
	return groma_ok();
}

/* y[T, D] = table[ids[t]]; see ops.h. */
groma_status
groma_embedding(const groma_tensor *ids, const groma_tensor *table, groma_tensor *y)
{
	int64_t		count,
				vocab,
				dim;

	if (groma_on_device(table))
		return GROMA_DEVICE_CALL("embedding", embedding, ids, table, y);
	if (ids->dtype != GROMA_I64 && ids->dtype != GROMA_I32)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "embedding: ids must be i32 or i64");
	if (table->ndim != 2 || !groma_tensor_is_contiguous(table) ||
		(table->dtype != GROMA_F32 && table->dtype != GROMA_BF16 && table->dtype != GROMA_F16))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "embedding: table must be a contiguous [V, D] float tensor");
	GROMA_TRY(groma_check_f32("embedding", "y", y));
	count = groma_tensor_numel(ids);
	vocab = table->shape[0];
	dim = table->shape[1];
	GROMA_TRY(groma_check_ndim("embedding", "y", y, 2));
	GROMA_TRY(groma_check_dim("embedding", "y", y, 0, count));
	GROMA_TRY(groma_check_dim("embedding", "y", y, 1, dim));
	for (int64_t t = 0; t < count; t++)
	{
		int64_t		id = ids->dtype == GROMA_I64 ? ((const int64_t *) ids->data)[t]
			: ((const int32_t *) ids->data)[t];
		float	   *out = (float *) y->data + t * dim;

		if (id < 0 || id >= vocab)
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "embedding: id %lld at %lld is outside 0..%lld",
							   (long long) id, (long long) t, (long long) vocab - 1);
		if (table->dtype == GROMA_F32)
			memcpy(out, (const float *) table->data + id * dim, (size_t) dim * sizeof(float));
		else
			for (int64_t i = 0; i < dim; i++)
			{
				uint16_t	bits = ((const uint16_t *) table->data)[id * dim + i];

				out[i] = table->dtype == GROMA_BF16 ? groma_bf16_to_f32(bits) : groma_f16_to_f32(bits);
			}
	}
	return groma_ok();
}
