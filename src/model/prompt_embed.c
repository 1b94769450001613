/*
 * prompt_embed.c - input embeddings of an expanded prompt.
 */
#include "prompt_embed.h"

#include "../runtime/op_check.h"
#include "../runtime/ops.h"

/* Assembles the input embeddings; see prompt_embed.h. */
groma_status
groma_prompt_embed(const groma_llama *m, const groma_prompt_tokens *pt, const int32_t *ids, size_t n,
				   const groma_tensor *image_tokens, const groma_tensor *region_tokens,
				   const int64_t *refer_match, int n_refer, groma_tensor *out)
{
	int64_t		d = m->cfg.hidden,
				n_img = image_tokens->shape[0],
				n_reg = region_tokens->shape[0];
	int64_t		img = 0,
				reg = 0,
				ref = 0;

	GROMA_TRY(groma_check_f32_anywhere("prompt_embed", "out", out));
	GROMA_TRY(groma_check_dim("prompt_embed", "out", out, 0, (int64_t) n));
	GROMA_TRY(groma_check_dim("prompt_embed", "out", out, 1, d));
	GROMA_TRY(groma_check_dim("prompt_embed", "image tokens", image_tokens, 1, d));
	GROMA_TRY(groma_check_dim("prompt_embed", "region tokens", region_tokens, 1, d));
	for (size_t t = 0; t < n; t++)
	{
		const groma_tensor *table = NULL;	/* image or region features [N, D] */
		int64_t		row = -1;
		groma_tensor src,
					dst;

		GROMA_TRY(groma_tensor_narrow(out, 0, (int64_t) t, 1, &dst));
		if (ids[t] == pt->image)
		{
			table = image_tokens;
			row = img < n_img ? img++ : -1;
		}
		else if (ids[t] == pt->region)
		{
			table = region_tokens;
			row = reg < n_reg ? reg++ : -1;
		}
		else if (ids[t] == pt->refer_feat)
		{
			int64_t		k = ref < n_refer ? refer_match[ref++] : -1;

			table = region_tokens;
			row = k >= 0 && k < n_reg ? k : -1;
		}
		else
		{
			int64_t		id = ids[t];

			GROMA_TRY(groma_llama_embed(m, &id, 1, &dst));
			continue;
		}
		if (row < 0)
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "prompt_embed: more placeholders than features at position %zu", t);
		GROMA_TRY(groma_tensor_narrow(table, 0, row, 1, &src));
		GROMA_TRY(groma_copy(&src, &dst));
	}
	if (img != n_img || reg != n_reg || ref != n_refer)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT,
						   "prompt_embed: %lld of %lld image, %lld of %lld region and %lld of %d refer features used",
						   (long long) img, (long long) n_img, (long long) reg, (long long) n_reg, (long long) ref, n_refer);
	return groma_ok();
}
