/*
 * prompt_embed.h - the language model's input embeddings for an expanded
 * prompt: token embeddings, with image tokens, region tokens and refer-box
 * region tokens written over their placeholder positions (GROMA.md step 7).
 */
#ifndef GROMA_PROMPT_EMBED_H
#define GROMA_PROMPT_EMBED_H

#include "../text/prompt.h"
#include "llama.h"

/*
 * out[T, D] for expanded ids[T]: positions holding <image> take
 * image_tokens[N_img, D] in order, <region> positions take
 * region_tokens[N, D] in order, <refer_feat> positions take
 * region_tokens[refer_match[i]] in order; every other position its token
 * embedding.  Counts must match exactly.
 */
groma_status groma_prompt_embed(const groma_llama *m, const groma_prompt_tokens *pt,
								const int32_t *ids, size_t n, const groma_tensor *image_tokens,
								const groma_tensor *region_tokens, const int64_t *refer_match,
								int n_refer, groma_tensor *out);

#endif							/* GROMA_PROMPT_EMBED_H */
