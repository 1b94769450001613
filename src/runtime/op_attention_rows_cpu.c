/*
 * op_attention_rows_cpu.c - the attention of a batched decode step: one
 * new token of each of several sequences, each over its own KV cache.  The
 * CPU runs each row as a decoder layer runs one sequence (RoPE, the cache
 * writes, causal attention); a device runs all rows in three launches.
 */
#include "device_ops.h"
#include "op_check.h"
#include "ops.h"

/* Views row b of x[n, H·Dh] as [1, H, 1, Dh]. */
static groma_status
head_row(const groma_tensor *x, int64_t b, int64_t heads, groma_tensor *out)
{
	int64_t		dh = x->shape[1] / heads;

	GROMA_TRY(groma_tensor_narrow(x, 0, b, 1, out));	/* [1, H·Dh] */
	GROMA_TRY(groma_tensor_reshape(out, 4, (int64_t[]) {1, 1, heads, dh}, out));
	return groma_tensor_permute(out, (int[]) {0, 2, 1, 3}, out);	/* [1, H, 1, Dh] */
}

/*
 * Checks one sequence's cache view [1, H, cap, Dh] against the rows' heads
 * and depth and, on the CPU (pos >= 0 known), its position.
 */
static groma_status
check_cache(const char *what, const groma_tensor *c, int64_t heads, int64_t dh, bool host, int64_t pos)
{
	if (c == NULL || c->ndim != 4 || c->shape[0] != 1 || c->shape[1] != heads || c->shape[3] != dh)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "attention_decode_rows: %s must be [1, %lld, cap, %lld]", what,
						   (long long) heads, (long long) dh);
	if (host && (pos < 0 || pos >= c->shape[2]))
		return groma_error(GROMA_ERR_LIMIT, "attention_decode_rows: position %lld is outside a %s of %lld",
						   (long long) pos, what, (long long) c->shape[2]);
	return groma_ok();
}

/* One decode token per sequence through RoPE, the cache writes and attention; see ops.h. */
groma_status
groma_attention_decode_rows(groma_tensor *q, groma_tensor *k, const groma_tensor *v, int64_t heads,
							groma_tensor *const *k_cache, groma_tensor *const *v_cache, const groma_tensor *positions,
							float theta, float scale, groma_arena *scratch, groma_tensor *ctx)
{
	int64_t		n,
				dh;
	bool		host;
	const int32_t *pos_of;

	GROMA_TRY(groma_check_f32_anywhere("attention_decode_rows", "q", q));
	GROMA_TRY(groma_check_ndim("attention_decode_rows", "q", q, 2));
	GROMA_TRY(groma_check_same_shape("attention_decode_rows", q, k));
	GROMA_TRY(groma_check_same_shape("attention_decode_rows", q, v));
	GROMA_TRY(groma_check_same_shape("attention_decode_rows", q, ctx));
	n = q->shape[0];
	if (heads < 1 || q->shape[1] % heads != 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "attention_decode_rows: %lld heads do not divide %lld",
						   (long long) heads, (long long) q->shape[1]);
	dh = q->shape[1] / heads;
	if (positions == NULL || positions->data == NULL || positions->dtype != GROMA_I32 || positions->ndim != 1 ||
		positions->shape[0] != n || !groma_tensor_is_contiguous(positions) || positions->device != q->device)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT,
						   "attention_decode_rows: positions must be a contiguous i32 [%lld] beside q", (long long) n);
	host = !groma_on_device(q);
	pos_of = (const int32_t *) positions->data;
	for (int64_t b = 0; b < n; b++)
	{
		GROMA_TRY(check_cache("K cache", k_cache[b], heads, dh, host, host ? pos_of[b] : 0));
		GROMA_TRY(check_cache("V cache", v_cache[b], heads, dh, host, host ? pos_of[b] : 0));
	}
	if (groma_on_device(q))
		return GROMA_DEVICE_CALL("attention_decode_rows", attention_decode_rows, q, k, v, heads, k_cache, v_cache,
								 positions, theta, scale, scratch, ctx);
	for (int64_t b = 0; b < n; b++)
	{
		groma_tensor qh,
					kh,
					vh,
					ch,
					slot,
					kc,
					vc;
		int64_t		pos = pos_of[b];

		GROMA_TRY(head_row(q, b, heads, &qh));	/* [1, H, 1, Dh] */
		GROMA_TRY(head_row(k, b, heads, &kh));
		GROMA_TRY(head_row(v, b, heads, &vh));
		GROMA_TRY(head_row(ctx, b, heads, &ch));
		/* RoPE takes [B, T, H, D]: the row's [1, 1, H, Dh] view */
		GROMA_TRY(groma_tensor_permute(&qh, (int[]) {0, 2, 1, 3}, &slot));
		GROMA_TRY(groma_rope(&slot, NULL, pos, theta));
		GROMA_TRY(groma_tensor_permute(&kh, (int[]) {0, 2, 1, 3}, &slot));
		GROMA_TRY(groma_rope(&slot, NULL, pos, theta));
		GROMA_TRY(groma_tensor_narrow(k_cache[b], 2, pos, 1, &slot));	/* [1, H, 1, Dh] */
		GROMA_TRY(groma_copy(&kh, &slot));
		GROMA_TRY(groma_tensor_narrow(v_cache[b], 2, pos, 1, &slot));
		GROMA_TRY(groma_copy(&vh, &slot));
		GROMA_TRY(groma_tensor_narrow(k_cache[b], 2, 0, pos + 1, &kc));	/* [1, H, pos + 1, Dh] */
		GROMA_TRY(groma_tensor_narrow(v_cache[b], 2, 0, pos + 1, &vc));
		GROMA_TRY(groma_attention(&qh, &kc, &vc, scale, true, pos, scratch, &ch));
	}
	return groma_ok();
}
