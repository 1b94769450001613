/*
 * llama.c - the LLaMA decoder as a script over ops.
 */
#include "llama.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/op_check.h"
#include "../runtime/ops.h"

/* Binds layer i. */
static groma_status
bind_layer(groma_llama_layer *l, const groma_llama_config *c, const groma_weight_source *s,
		   groma_arena *w, int i)
{
	int64_t		d = c->hidden,
				f = c->intermediate;

	GROMA_TRY(groma_bind(s, w, &l->attn_norm, 1, (int64_t[]) {d}, "llm.model.layers.%d.input_layernorm.weight", i));
	GROMA_TRY(groma_bind(s, w, &l->q, 2, (int64_t[]) {d, d}, "llm.model.layers.%d.self_attn.q_proj.weight", i));
	GROMA_TRY(groma_bind(s, w, &l->k, 2, (int64_t[]) {d, d}, "llm.model.layers.%d.self_attn.k_proj.weight", i));
	GROMA_TRY(groma_bind(s, w, &l->v, 2, (int64_t[]) {d, d}, "llm.model.layers.%d.self_attn.v_proj.weight", i));
	GROMA_TRY(groma_bind(s, w, &l->o, 2, (int64_t[]) {d, d}, "llm.model.layers.%d.self_attn.o_proj.weight", i));
	GROMA_TRY(groma_bind(s, w, &l->mlp_norm, 1, (int64_t[]) {d}, "llm.model.layers.%d.post_attention_layernorm.weight", i));
	GROMA_TRY(groma_bind(s, w, &l->gate, 2, (int64_t[]) {f, d}, "llm.model.layers.%d.mlp.gate_proj.weight", i));
	GROMA_TRY(groma_bind(s, w, &l->up, 2, (int64_t[]) {f, d}, "llm.model.layers.%d.mlp.up_proj.weight", i));
	GROMA_TRY(groma_bind(s, w, &l->down, 2, (int64_t[]) {d, f}, "llm.model.layers.%d.mlp.down_proj.weight", i));
	return groma_ok();
}

/* Binds every decoder weight; see llama.h. */
groma_status
groma_llama_build(groma_llama *m, const groma_llama_config *cfg, const groma_weight_source *src,
				  groma_arena *w)
{
	int64_t		d = cfg->hidden;

	memset(m, 0, sizeof(*m));
	if (cfg->layers < 1 || cfg->layers > GROMA_LLAMA_MAX_LAYERS || cfg->heads < 1 || d % cfg->heads != 0 ||
		(d / cfg->heads) % 2 != 0 || cfg->vocab < 1 || cfg->extra_vocab < 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "llama: unsupported configuration (hidden %d, %d heads, %d layers)",
						   cfg->hidden, cfg->heads, cfg->layers);
	if (cfg->kv_heads != cfg->heads)
		return groma_error(GROMA_ERR_UNSUPPORTED, "llama: grouped-query attention (%d kv heads for %d heads) is not supported",
						   cfg->kv_heads, cfg->heads);
	m->cfg = *cfg;
	GROMA_TRY(groma_bind(src, w, &m->embed, 2, (int64_t[]) {cfg->vocab, d}, "llm.model.embed_tokens.weight"));
	GROMA_TRY(groma_bind(src, w, &m->extra_embed, 2, (int64_t[]) {cfg->extra_vocab, d}, "new_input_embs.weight"));
	for (int i = 0; i < cfg->layers; i++)
		GROMA_TRY(bind_layer(&m->layer[i], cfg, src, w, i));
	GROMA_TRY(groma_bind(src, w, &m->norm, 1, (int64_t[]) {d}, "llm.model.norm.weight"));
	GROMA_TRY(groma_bind(src, w, &m->lm_head, 2, (int64_t[]) {cfg->vocab, d}, "llm.lm_head.weight"));
	GROMA_TRY(groma_bind(src, w, &m->extra_head, 2, (int64_t[]) {cfg->extra_vocab, d}, "extra_lm_head.weight"));
	/* keys and values are kept as the attention multiplies them (PyTorch's cache holds the model's dtype) */
	m->cfg.kv_dtype = groma_compute_dtype(&m->layer[0].q);
	m->graphs = malloc(sizeof(*m->graphs));
	if (m->graphs == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "llama: out of memory");
	groma_graph_cache_init(m->graphs, "GROMA_DECODE_GRAPHS");
	return groma_ok();
}

/* Frees the recorded decode steps; see llama.h. */
void
groma_llama_free(groma_llama *m)
{
	if (m->graphs)
		groma_graph_cache_clear(m->graphs);
	free(m->graphs);
	m->graphs = NULL;
}

/* Bytes of a KV cache; see llama.h. */
size_t
groma_kv_cache_bytes(const groma_llama_config *cfg, int64_t capacity)
{
	/* K and V: [L, H, cap, Dh] each, that is L · cap · D values of kv_dtype */
	return 2 * (size_t) cfg->layers * (size_t) capacity * (size_t) cfg->hidden * groma_dtype_size(cfg->kv_dtype) +
		4 * GROMA_ARENA_ALIGN;
}

/* Carves a KV cache; see llama.h. */
groma_status
groma_kv_cache_init(groma_kv_cache *cache, const groma_llama_config *cfg, int64_t capacity,
					groma_arena *arena)
{
	int64_t		dh = cfg->hidden / cfg->heads;
	const int64_t shape[4] = {cfg->layers, cfg->heads, capacity, dh};

	memset(cache, 0, sizeof(*cache));
	if (capacity < 1)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "kv cache: capacity %lld", (long long) capacity);
	if (cfg->kv_dtype != GROMA_F32 && cfg->kv_dtype != GROMA_BF16 && cfg->kv_dtype != GROMA_F16)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "kv cache: values must be f32, bf16 or f16");
	GROMA_TRY(groma_arena_tensor(arena, cfg->kv_dtype, 4, shape, &cache->k));	/* [L, H, cap, Dh] */
	GROMA_TRY(groma_arena_tensor(arena, cfg->kv_dtype, 4, shape, &cache->v));
	cache->capacity = capacity;
	return groma_ok();
}

/* Input embeddings of ids; see llama.h. */
groma_status
groma_llama_embed(const groma_llama *m, const int64_t *ids, int64_t count, groma_tensor *out)
{
	int64_t		d = m->cfg.hidden;

	GROMA_TRY(groma_check_f32_anywhere("llama_embed", "out", out));
	GROMA_TRY(groma_check_ndim("llama_embed", "out", out, 2));
	GROMA_TRY(groma_check_dim("llama_embed", "out", out, 0, count));
	GROMA_TRY(groma_check_dim("llama_embed", "out", out, 1, d));
	for (int64_t t = 0; t < count; t++)
	{
		int64_t		id = ids[t];
		groma_tensor row,
					dst;

		if (id < 0 || id >= (int64_t) m->cfg.vocab + m->cfg.extra_vocab)
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "llama_embed: token id %lld is outside the vocabulary",
							   (long long) id);
		if (id < m->cfg.vocab)
			GROMA_TRY(groma_tensor_narrow(&m->embed, 0, id, 1, &row));
		else
			GROMA_TRY(groma_tensor_narrow(&m->extra_embed, 0, id - m->cfg.vocab, 1, &row));
		GROMA_TRY(groma_tensor_narrow(out, 0, t, 1, &dst));
		GROMA_TRY(groma_copy(&row, &dst));
	}
	return groma_ok();
}

/* Views layer l's cache rows [0, len) as [1, H, len, Dh]. */
static groma_status
cache_view(const groma_tensor *all, int64_t layer, int64_t len, groma_tensor *out)
{
	groma_tensor t;

	GROMA_TRY(groma_tensor_narrow(all, 0, layer, 1, &t));	/* [1, H, cap, Dh] */
	return groma_tensor_narrow(&t, 2, 0, len, out);
}

/* Writes k or v rows of the new positions, src[T, H·Dh], into the cache at `start`. */
static groma_status
cache_store(const groma_tensor *all, int64_t layer, int64_t start, const groma_tensor *src, int64_t heads)
{
	int64_t		t = src->shape[0],
				dh = src->shape[1] / heads;
	groma_tensor dst,
				srcv;

	GROMA_TRY(groma_tensor_narrow(all, 0, layer, 1, &dst));
	GROMA_TRY(groma_tensor_narrow(&dst, 2, start, t, &dst));	/* [1, H, T, Dh] */
	GROMA_TRY(groma_tensor_reshape(src, 4, (int64_t[]) {1, t, heads, dh}, &srcv));
	GROMA_TRY(groma_tensor_permute(&srcv, (int[]) {0, 2, 1, 3}, &srcv));
	return groma_copy(&srcv, &dst);
}

/*
 * Attention of one sequence's new positions: q, k, v, ctx are [T, D] rows
 * of that sequence (T new positions after cache->length); rotates q and k,
 * appends k and v to the cache of layer index and writes the attention
 * output into ctx.
 */
static groma_status
attend_sequence(const groma_llama *m, int64_t index, groma_kv_cache *cache, const groma_tensor *q,
				const groma_tensor *k, const groma_tensor *v, groma_tensor *ctx, groma_arena *act)
{
	int64_t		t = q->shape[0],
				heads = m->cfg.heads,
				dh = m->cfg.hidden / heads,
				start = cache->length;
	groma_tensor q4,
				k4,
				qh,
				ch,
				kc,
				vc;

	GROMA_TRY(groma_tensor_reshape(q, 4, (int64_t[]) {1, t, heads, dh}, &q4));	/* [1, T, H, Dh] */
	GROMA_TRY(groma_tensor_reshape(k, 4, (int64_t[]) {1, t, heads, dh}, &k4));
	GROMA_TRY(groma_rope(&q4, NULL, start, m->cfg.rope_theta));
	GROMA_TRY(groma_rope(&k4, NULL, start, m->cfg.rope_theta));
	GROMA_TRY(groma_tensor_permute(&q4, (int[]) {0, 2, 1, 3}, &qh));	/* [1, H, T, Dh] */
	GROMA_TRY(cache_store(&cache->k, index, start, k, heads));
	GROMA_TRY(cache_store(&cache->v, index, start, v, heads));
	GROMA_TRY(cache_view(&cache->k, index, start + t, &kc));	/* [1, H, start + T, Dh] */
	GROMA_TRY(cache_view(&cache->v, index, start + t, &vc));
	GROMA_TRY(groma_tensor_reshape(ctx, 4, (int64_t[]) {1, t, heads, dh}, &ch));
	GROMA_TRY(groma_tensor_permute(&ch, (int[]) {0, 2, 1, 3}, &ch));	/* [1, H, T, Dh] */
	/* with 16-bit (or i8) matrices the prompt's attention products run in bf16/f16 on a GPU's tensor cores */
	return groma_attention_in(groma_compute_dtype(&m->layer[index].q), &qh, &kc, &vc, 1.0f / sqrtf((float) dh), true,
							  start, act, &ch);
}

/* Sequences whose decode tokens one groma_attention_decode_rows call takes. */
#define DECODE_ROWS_CHUNK 64

/*
 * Attention of sequences [0, n) that each add one token (rows 0..n-1 of q,
 * k, v, ctx [T, D]), all at once: groma_attention_decode_rows over their
 * layer `index` caches, DECODE_ROWS_CHUNK sequences a call.
 */
static groma_status
attend_decode_rows(const groma_llama *m, int64_t index, groma_kv_cache *const *caches, int64_t n,
				   const groma_tensor *positions, const groma_tensor *q, const groma_tensor *k, const groma_tensor *v,
				   groma_tensor *ctx, groma_arena *act)
{
	int64_t		dh = m->cfg.hidden / m->cfg.heads;

	for (int64_t first = 0; first < n; first += DECODE_ROWS_CHUNK)
	{
		int64_t		count = n - first < DECODE_ROWS_CHUNK ? n - first : DECODE_ROWS_CHUNK;
		groma_tensor kc[DECODE_ROWS_CHUNK],
					vc[DECODE_ROWS_CHUNK],
					pr,
					qr,
					kr,
					vr,
					cr;
		groma_tensor *kp[DECODE_ROWS_CHUNK],
				   *vp[DECODE_ROWS_CHUNK];

		for (int64_t b = 0; b < count; b++)
		{
			groma_kv_cache *c = caches[first + b];

			GROMA_TRY(groma_tensor_narrow(&c->k, 0, index, 1, &kc[b]));	/* [1, H, cap, Dh] */
			GROMA_TRY(groma_tensor_narrow(&c->v, 0, index, 1, &vc[b]));
			kp[b] = &kc[b];
			vp[b] = &vc[b];
		}
		GROMA_TRY(groma_tensor_narrow(positions, 0, first, count, &pr));	/* [count] */
		GROMA_TRY(groma_tensor_narrow(q, 0, first, count, &qr));	/* [count, D] */
		GROMA_TRY(groma_tensor_narrow(k, 0, first, count, &kr));
		GROMA_TRY(groma_tensor_narrow(v, 0, first, count, &vr));
		GROMA_TRY(groma_tensor_narrow(ctx, 0, first, count, &cr));
		GROMA_TRY(groma_attention_decode_rows(&qr, &kr, &vr, m->cfg.heads, kp, vp, &pr, m->cfg.rope_theta,
											  1.0f / sqrtf((float) dh), act, &cr));
	}
	return groma_ok();
}

/*
 * One decoder layer on x[T, D] in place.  The rows belong to n_seq
 * sequences in order: rows[b] consecutive rows are the new positions of
 * caches[b] (its whole prompt at a prefill, one token at a decode step).
 * h[T, D] holds RMSNorm(x) with this layer's attention norm on entry and,
 * on return, RMSNorm(x) with next_norm (the next layer's attention norm;
 * NULL for the last layer, which leaves h as scratch): each residual add
 * runs fused with the norm that follows it.  The leading sequences that add
 * one token each (a decode step, batched or alone) take their attention in
 * one groma_attention_decode_rows call, which reads their first new
 * positions from positions[n_seq] (i32 on x's device: each cache's length
 * before the step) where they live; the others (prefills), one by one.
 */
static groma_status
layer_forward(const groma_llama *m, const groma_llama_layer *l, int64_t index, groma_kv_cache *const *caches,
			  const int64_t *rows, int64_t n_seq, const groma_tensor *positions, const groma_tensor *next_norm,
			  groma_tensor *x, groma_tensor *h, groma_arena *act)
{
	int64_t		t = x->shape[0],
				d = m->cfg.hidden,
				first = 0,
				decoding = 0;
	groma_tensor q,
				k,
				v,
				ctx,
				out,
				gate,
				up;
	size_t		mark = act->used;

	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {t, d}, &q));	/* [T, D] */
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {t, d}, &k));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {t, d}, &v));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {t, d}, &ctx));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {t, d}, &out));

	/* attention: x += o(attn(rope(q), rope(k), v)) of h = rmsnorm(x) */
	GROMA_TRY(groma_linear_many(h, 3, (const groma_tensor *[]) {&l->q, &l->k, &l->v}, NULL,
								(groma_tensor *[]) {&q, &k, &v}));
	/* the leading sequences that add one token each (the decoding ones come first) share one call */
	while (decoding < n_seq && rows[decoding] == 1)
		decoding++;
	if (decoding >= 1)
	{
		groma_tensor pd;

		GROMA_TRY(groma_tensor_narrow(positions, 0, 0, decoding, &pd));	/* [decoding] */
		GROMA_TRY(attend_decode_rows(m, index, caches, decoding, &pd, &q, &k, &v, &ctx, act));
	}
	first = decoding;
	for (int64_t b = decoding; b < n_seq; b++)
	{
		groma_tensor qb,
					kb,
					vb,
					cb;

		GROMA_TRY(groma_tensor_narrow(&q, 0, first, rows[b], &qb));	/* [rows[b], D] */
		GROMA_TRY(groma_tensor_narrow(&k, 0, first, rows[b], &kb));
		GROMA_TRY(groma_tensor_narrow(&v, 0, first, rows[b], &vb));
		GROMA_TRY(groma_tensor_narrow(&ctx, 0, first, rows[b], &cb));
		GROMA_TRY(attend_sequence(m, index, caches[b], &qb, &kb, &vb, &cb, act));
		first += rows[b];
	}
	GROMA_TRY(groma_linear(&ctx, &l->o, NULL, &out));
	GROMA_TRY(groma_add_rms_norm(x, &out, &l->mlp_norm, m->cfg.rms_eps, h));

	/* MLP: x += down(silu(gate(h)) · up(h)) of h = rmsnorm(x) */
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {t, m->cfg.intermediate}, &gate));	/* [T, I] */
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {t, m->cfg.intermediate}, &up));
	GROMA_TRY(groma_linear_swiglu(h, &l->gate, &l->up, &gate, &up));
	GROMA_TRY(groma_linear(&gate, &l->down, NULL, &out));
	if (next_norm)
		GROMA_TRY(groma_add_rms_norm(x, &out, next_norm, m->cfg.rms_eps, h));
	else
		GROMA_TRY(groma_add(x, &out, x));
	act->used = mark;
	return groma_ok();
}

/*
 * Runs x[T, D] through every decoder layer in place (rows, caches and
 * positions as layer_forward); scratch from act.
 */
static groma_status
run_layers(const groma_llama *m, groma_kv_cache *const *caches, const int64_t *rows, int64_t n_seq,
		   const groma_tensor *positions, groma_tensor *x, groma_arena *act)
{
	groma_tensor h;
	size_t		mark = act->used;

	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {x->shape[0], m->cfg.hidden}, &h));	/* [T, D] */
	GROMA_TRY(groma_rms_norm(x, &m->layer[0].attn_norm, m->cfg.rms_eps, &h));
	for (int i = 0; i < m->cfg.layers; i++)
		GROMA_TRY(layer_forward(m, &m->layer[i], i, caches, rows, n_seq, positions,
								i + 1 < m->cfg.layers ? &m->layer[i + 1].attn_norm : NULL, x, &h, act));
	act->used = mark;
	return groma_ok();
}

/* positions[n] (i32 on device, from act) = each cache's length: the first position of its next step. */
static groma_status
cache_positions(groma_kv_cache *const *caches, int64_t n, groma_device device, groma_arena *act,
				groma_tensor *positions)
{
	int32_t    *host = malloc((size_t) n * sizeof(int32_t));
	groma_status st;

	if (host == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "llama: out of memory");
	for (int64_t b = 0; b < n; b++)
		host[b] = (int32_t) caches[b]->length;
	st = groma_arena_tensor(act, GROMA_I32, 1, (int64_t[]) {n}, positions);
	if (st.code == GROMA_OK && positions->device != device)
		st = groma_error(GROMA_ERR_INVALID_ARGUMENT, "llama: the activations are not where x lives");
	if (st.code == GROMA_OK)
		st = groma_upload((const float *) host, positions);
	free(host);
	return st;
}

/* groma_llama_forward's work; its scratch stays carved from act (the caller rewinds). */
static groma_status
forward_in(const groma_llama *m, groma_kv_cache *cache, const groma_tensor *x_in, groma_arena *act, float *logits,
		   groma_tensor *final_hidden)
{
	int64_t		t,
				d = m->cfg.hidden;
	groma_tensor x,
				positions,
				last,
				normed,
				head_out;

	GROMA_TRY(groma_check_f32_anywhere("llama", "x", x_in));
	GROMA_TRY(groma_check_ndim("llama", "x", x_in, 2));
	GROMA_TRY(groma_check_dim("llama", "x", x_in, 1, d));
	t = x_in->shape[0];
	if (t < 1 || cache->length + t > cache->capacity)
		return groma_error(GROMA_ERR_LIMIT, "llama: %lld positions after %lld exceed the cache of %lld",
						   (long long) t, (long long) cache->length, (long long) cache->capacity);
	GROMA_TRY(cache_positions(&cache, 1, x_in->device, act, &positions));	/* [1] */
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {t, d}, &x));	/* [T, D] residual stream */
	GROMA_TRY(groma_copy(x_in, &x));
	GROMA_TRY(run_layers(m, &cache, &t, 1, &positions, &x, act));
	cache->length += t;
	GROMA_TRY(groma_rms_norm(&x, &m->norm, m->cfg.rms_eps, &x));
	if (final_hidden)
		GROMA_TRY(groma_copy(&x, final_hidden));
	if (logits)
	{
		GROMA_TRY(groma_tensor_narrow(&x, 0, t - 1, 1, &last));
		GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {1, d}, &normed));
		GROMA_TRY(groma_copy(&last, &normed));
		/* both heads where the activations live, then [V + X] into the caller's host array */
		GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {1, m->cfg.vocab}, &head_out));
		GROMA_TRY(groma_linear(&normed, &m->lm_head, NULL, &head_out));
		GROMA_TRY(groma_download(&head_out, logits));
		GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {1, m->cfg.extra_vocab}, &head_out));
		GROMA_TRY(groma_linear(&normed, &m->extra_head, NULL, &head_out));
		GROMA_TRY(groma_download(&head_out, logits + m->cfg.vocab));
	}
	return groma_ok();
}

/* Runs new positions through the decoder; see llama.h.  act is rewound whatever happens. */
groma_status
groma_llama_forward(const groma_llama *m, groma_kv_cache *cache, const groma_tensor *x_in,
					groma_arena *act, float *logits, groma_tensor *final_hidden)
{
	size_t		mark = act->used;
	groma_status st = forward_in(m, cache, x_in, act, logits, final_hidden);

	act->used = mark;
	return st;
}

/* One groma_llama_step's operands, for its device work (step_device_work). */
typedef struct step_job
{
	const groma_llama *m;
	groma_kv_cache *const *caches;
	const int64_t *rows;
	int64_t		n,
				t;				/* sequences; rows in all */
	const groma_tensor *x_in;	/* [t, D] */
	const groma_tensor *positions;	/* [n] i32: each cache's length */
	groma_tensor *picks;		/* [n] i32: each sequence's greedy id */
	groma_arena *act;
} step_job;

/*
 * The device work of a step: the layers over all rows, each sequence's last
 * row through the final norm and both heads, and each row's pick over
 * [V + X] into picks, where the scores live.  Queues device work only (no
 * transfer, no wait), so a decode step can be recorded (graph_cache.h);
 * rewinds act.
 */
static groma_status
step_device_work(void *ctx)
{
	step_job   *j = ctx;
	const groma_llama *m = j->m;
	int64_t		d = m->cfg.hidden,
				extra = m->cfg.extra_vocab;
	groma_tensor x,
				last,
				head_out,
				extra_out;
	groma_arena *act = j->act;
	size_t		mark = act->used;
	groma_status st;

	st = groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {j->t, d}, &x);	/* [T, D] residual stream */
	if (st.code == GROMA_OK)
		st = groma_copy(j->x_in, &x);
	if (st.code == GROMA_OK)
		st = run_layers(m, j->caches, j->rows, j->n, j->positions, &x, act);
	if (st.code == GROMA_OK)
		st = groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {j->n, d}, &last);	/* [n, D] */
	for (int64_t b = 0, end = 0; st.code == GROMA_OK && b < j->n; b++)
	{
		groma_tensor src,
					dst;

		end += j->rows[b];
		st = groma_tensor_narrow(&x, 0, end - 1, 1, &src);	/* [1, D] */
		if (st.code == GROMA_OK)
			st = groma_tensor_narrow(&last, 0, b, 1, &dst);
		if (st.code == GROMA_OK)
			st = groma_copy(&src, &dst);
	}
	if (st.code == GROMA_OK)
		st = groma_rms_norm(&last, &m->norm, m->cfg.rms_eps, &last);
	if (st.code == GROMA_OK)
		st = groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {j->n, m->cfg.vocab}, &head_out);	/* [n, V] */
	if (st.code == GROMA_OK)
		st = groma_linear(&last, &m->lm_head, NULL, &head_out);
	if (st.code == GROMA_OK && extra > 0)
		st = groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {j->n, extra}, &extra_out);	/* [n, X] */
	if (st.code == GROMA_OK && extra > 0)
		st = groma_linear(&last, &m->extra_head, NULL, &extra_out);
	if (st.code == GROMA_OK)
		st = groma_argmax_rows(&head_out, extra > 0 ? &extra_out : NULL, j->picks);
	act->used = mark;
	return st;
}

/* Checks a step's sequences and rows; *t gets the rows in all. */
static groma_status
check_step(groma_kv_cache *const *caches, const int64_t *rows, int64_t n, const groma_tensor *x_in, int64_t d,
		   int64_t *t)
{
	GROMA_TRY(groma_check_f32_anywhere("llama_step", "x", x_in));
	GROMA_TRY(groma_check_ndim("llama_step", "x", x_in, 2));
	GROMA_TRY(groma_check_dim("llama_step", "x", x_in, 1, d));
	if (n < 1)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "llama_step: %lld sequences", (long long) n);
	*t = 0;
	for (int64_t b = 0; b < n; b++)
	{
		if (rows[b] < 1)
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "llama_step: sequence %lld has %lld new positions",
							   (long long) b, (long long) rows[b]);
		if (caches[b]->length + rows[b] > caches[b]->capacity)
			return groma_error(GROMA_ERR_LIMIT, "llama: sequence %lld: %lld positions after %lld exceed its cache "
							   "of %lld", (long long) b, (long long) rows[b], (long long) caches[b]->length,
							   (long long) caches[b]->capacity);
		*t += rows[b];
	}
	if (x_in->shape[0] != *t)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "llama_step: x has %lld rows, the sequences %lld",
						   (long long) x_in->shape[0], (long long) *t);
	return groma_ok();
}

/*
 * What a recorded decode step baked in: the batch's caches, its input rows
 * and where its scratch starts (and how much the arena holds: a replay
 * checks no bounds).
 */
typedef struct groma_decode_key
{
	int64_t		n;				/* sequences, each adding one token */
	const void *x;				/* the step's input rows [n, D] */
	const void *scratch;		/* the activation arena's first free byte */
	size_t		scratch_size;	/* the activation arena's size */
	const void *k[GROMA_DECODE_GRAPH_ROWS];	/* each sequence's K and V caches */
	const void *v[GROMA_DECODE_GRAPH_ROWS];
	int64_t		capacity[GROMA_DECODE_GRAPH_ROWS];	/* and the positions they hold */
} groma_decode_key;

/* The key of a step whose n sequences add one token each: what a recording of its device work bakes in. */
static groma_decode_key
decode_key(groma_kv_cache *const *caches, int64_t n, const groma_tensor *x_in, const groma_arena *act)
{
	groma_decode_key key;

	memset(&key, 0, sizeof(key));
	key.n = n;
	key.x = x_in->data;
	key.scratch = act->base + act->used;
	key.scratch_size = act->size;
	for (int64_t b = 0; b < n && b < GROMA_DECODE_GRAPH_ROWS; b++)
	{
		key.k[b] = caches[b]->k.data;
		key.v[b] = caches[b]->v.data;
		key.capacity[b] = caches[b]->capacity;
	}
	return key;
}

/* One step of several sequences, each with its own new positions; see llama.h. */
groma_status
groma_llama_step(const groma_llama *m, groma_kv_cache *const *caches, const int64_t *rows, int64_t n,
				 const groma_tensor *x_in, groma_arena *act, int64_t *next)
{
	step_job	job = {.m = m, .caches = caches, .rows = rows, .n = n, .x_in = x_in, .act = act};
	groma_tensor positions,
				picks;
	size_t		mark = act->used;
	int32_t    *ids = NULL;
	bool		decoding = true;
	groma_status st;

	GROMA_TRY(check_step(caches, rows, n, x_in, m->cfg.hidden, &job.t));
	for (int64_t b = 0; b < n; b++)
		decoding = decoding && rows[b] == 1;
	job.positions = &positions;
	job.picks = &picks;
	st = cache_positions(caches, n, x_in->device, act, &positions);	/* [n] */
	if (st.code == GROMA_OK)
		st = groma_arena_tensor(act, GROMA_I32, 1, (int64_t[]) {n}, &picks);	/* [n] */
	if (st.code == GROMA_OK)
	{
		/* a step of decode tokens only is recorded once per shape and replayed (graph_cache.h) */
		groma_decode_key key = decode_key(caches, n, x_in, act);

		st = decoding && n <= GROMA_DECODE_GRAPH_ROWS && m->graphs
			? groma_graph_cache_run(m->graphs, x_in->device, &key, sizeof(key), step_device_work, &job)
			: step_device_work(&job);
	}
	if (st.code == GROMA_OK && (ids = malloc((size_t) n * sizeof(int32_t))) == NULL)
		st = groma_error(GROMA_ERR_NO_MEMORY, "llama_step: out of memory");
	if (st.code == GROMA_OK)
		st = groma_download(&picks, (float *) ids);	/* 4 bytes a sequence come back, not V + X scores */
	for (int64_t b = 0; st.code == GROMA_OK && b < n; b++)
		next[b] = ids[b];
	free(ids);
	act->used = mark;
	if (st.code != GROMA_OK)
		return st;
	/* only a whole step moves the caches on: a failed one leaves them as they were, to be run again */
	for (int64_t b = 0; b < n; b++)
		caches[b]->length += rows[b];
	return groma_ok();
}

/* Returns the first index of the largest value; a NaN counts as the largest, as in torch.argmax. */
int64_t
groma_argmax(const float *logits, int64_t n)
{
	int64_t		best = 0;

	for (int64_t i = 0; i < n; i++)
	{
		if (isnan(logits[i]))
			return i;
		if (logits[i] > logits[best])
			best = i;
	}
	return best;
}
