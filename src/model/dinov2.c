/*
 * dinov2.c - the DINOv2 vision encoder as a script over ops.
 */
#include "dinov2.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/op_check.h"
#include "../runtime/ops.h"
#include "../runtime/ops_spatial.h"

/* Returns the number of tokens per image: 1 + (image / patch)². */
int
groma_dinov2_tokens(const groma_dinov2_config *cfg)
{
	int			n = cfg->image / cfg->patch;

	return 1 + n * n;
}

typedef struct position_job
{
	const groma_dinov2_config *cfg;
	const groma_tensor *pos_full;	/* [1 + g², C], host or device */
} position_job;

/* Builds resize_positions' table in the host tensor out[1 + n², C] from full[1 + g², C] (host), with scratch buf. */
static groma_status
positions_from(const groma_dinov2_config *cfg, const groma_tensor *full, float *buf, groma_tensor *out)
{
	int64_t		c = cfg->hidden,
				g = cfg->pos_grid,
				n = cfg->image / cfg->patch;
	double		scale = ((double) n + 0.1) / (double) g;
	groma_tensor chw_in = groma_f32_4d(buf, 1, c, g, g),
				chw_out = groma_f32_4d(buf + c * g * g, 1, c, n, n),
				patches,
				grid_in,
				grid_out,
				dst,
				cls_src,
				cls_dst;

	/* CLS position unchanged */
	GROMA_TRY(groma_tensor_narrow(full, 0, 0, 1, &cls_src));
	GROMA_TRY(groma_tensor_narrow(out, 0, 0, 1, &cls_dst));
	GROMA_TRY(groma_copy(&cls_src, &cls_dst));
	/* [g·g, C] → [1, C, g, g] */
	GROMA_TRY(groma_tensor_narrow(full, 0, 1, g * g, &patches));
	GROMA_TRY(groma_tensor_reshape(&patches, 4, (int64_t[]) {1, g, g, c}, &grid_in));
	GROMA_TRY(groma_tensor_permute(&grid_in, (int[]) {0, 3, 1, 2}, &grid_in));
	GROMA_TRY(groma_copy(&grid_in, &chw_in));
	GROMA_TRY(groma_resize_bicubic_scale(&chw_in, scale, scale, &chw_out));
	/* [1, C, n, n] → rows 1.. of out as [n·n, C] */
	GROMA_TRY(groma_tensor_permute(&chw_out, (int[]) {0, 2, 3, 1}, &grid_out));
	GROMA_TRY(groma_tensor_narrow(out, 0, 1, n * n, &dst));
	GROMA_TRY(groma_tensor_reshape(&dst, 4, (int64_t[]) {1, n, n, c}, &dst));
	return groma_copy(&grid_out, &dst);
}

/* Builds resize_positions' table in the host tensor out[1 + n², C]. */
static groma_status
resize_positions_host(void *ctx, groma_tensor *out)
{
	const position_job *j = ctx;
	int64_t		c = j->cfg->hidden,
				g = j->cfg->pos_grid,
				n = j->cfg->image / j->cfg->patch;
	float	   *buf = malloc((size_t) (c * g * g + c * n * n) * sizeof(float));	/* [C, g, g] + [C, n, n] */
	float	   *owned = NULL;
	groma_tensor full;
	groma_status st;

	if (buf == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "dinov2: cannot allocate the position tables");
	st = groma_host_image(j->pos_full, &full, &owned);
	if (st.code == GROMA_OK)
		st = positions_from(j->cfg, &full, buf, out);
	free(owned);
	free(buf);
	return st;
}

/*
 * Resizes the learned position table pos_full [1 + g·g, C] (g = pos_grid)
 * to out[1 + n·n, C] with transformers 4.39's rule: bicubic with
 * scale_factor = (n + 0.1) / g on the patch part; CLS position unchanged.
 * Computed on the host and placed wherever the weights live.
 */
static groma_status
resize_positions(const groma_dinov2_config *cfg, const groma_tensor *pos_full, groma_arena *weights,
				 groma_tensor *out)
{
	int64_t		n = cfg->image / cfg->patch;
	position_job j = {cfg, pos_full};

	GROMA_TRY(groma_arena_tensor(weights, GROMA_F32, 2, (int64_t[]) {1 + n * n, cfg->hidden}, out));
	return groma_fill_from_host(out, resize_positions_host, &j);
}

/* Binds one layer's weights. */
static groma_status
bind_layer(groma_dinov2_layer *l, const groma_dinov2_config *cfg, const groma_weight_source *src,
		   const char *prefix, int i, groma_arena *w)
{
	int64_t		c = cfg->hidden,
				m = cfg->mlp_hidden;
	const char *p = prefix;

	GROMA_TRY(groma_bind(src, w, &l->norm1_w, 1, (int64_t[]) {c}, "%sencoder.layer.%d.norm1.weight", p, i));
	GROMA_TRY(groma_bind(src, w, &l->norm1_b, 1, (int64_t[]) {c}, "%sencoder.layer.%d.norm1.bias", p, i));
	GROMA_TRY(groma_bind(src, w, &l->q_w, 2, (int64_t[]) {c, c}, "%sencoder.layer.%d.attention.attention.query.weight", p, i));
	GROMA_TRY(groma_bind(src, w, &l->q_b, 1, (int64_t[]) {c}, "%sencoder.layer.%d.attention.attention.query.bias", p, i));
	GROMA_TRY(groma_bind(src, w, &l->k_w, 2, (int64_t[]) {c, c}, "%sencoder.layer.%d.attention.attention.key.weight", p, i));
	GROMA_TRY(groma_bind(src, w, &l->k_b, 1, (int64_t[]) {c}, "%sencoder.layer.%d.attention.attention.key.bias", p, i));
	GROMA_TRY(groma_bind(src, w, &l->v_w, 2, (int64_t[]) {c, c}, "%sencoder.layer.%d.attention.attention.value.weight", p, i));
	GROMA_TRY(groma_bind(src, w, &l->v_b, 1, (int64_t[]) {c}, "%sencoder.layer.%d.attention.attention.value.bias", p, i));
	GROMA_TRY(groma_bind(src, w, &l->o_w, 2, (int64_t[]) {c, c}, "%sencoder.layer.%d.attention.output.dense.weight", p, i));
	GROMA_TRY(groma_bind(src, w, &l->o_b, 1, (int64_t[]) {c}, "%sencoder.layer.%d.attention.output.dense.bias", p, i));
	GROMA_TRY(groma_bind(src, w, &l->ls1, 1, (int64_t[]) {c}, "%sencoder.layer.%d.layer_scale1.lambda1", p, i));
	GROMA_TRY(groma_bind(src, w, &l->norm2_w, 1, (int64_t[]) {c}, "%sencoder.layer.%d.norm2.weight", p, i));
	GROMA_TRY(groma_bind(src, w, &l->norm2_b, 1, (int64_t[]) {c}, "%sencoder.layer.%d.norm2.bias", p, i));
	GROMA_TRY(groma_bind(src, w, &l->fc1_w, 2, (int64_t[]) {m, c}, "%sencoder.layer.%d.mlp.fc1.weight", p, i));
	GROMA_TRY(groma_bind(src, w, &l->fc1_b, 1, (int64_t[]) {m}, "%sencoder.layer.%d.mlp.fc1.bias", p, i));
	GROMA_TRY(groma_bind(src, w, &l->fc2_w, 2, (int64_t[]) {c, m}, "%sencoder.layer.%d.mlp.fc2.weight", p, i));
	GROMA_TRY(groma_bind(src, w, &l->fc2_b, 1, (int64_t[]) {c}, "%sencoder.layer.%d.mlp.fc2.bias", p, i));
	GROMA_TRY(groma_bind(src, w, &l->ls2, 1, (int64_t[]) {c}, "%sencoder.layer.%d.layer_scale2.lambda1", p, i));
	return groma_ok();
}

/* Binds every weight and resizes the position table; see dinov2.h. */
groma_status
groma_dinov2_build(groma_dinov2 *m, const groma_dinov2_config *cfg, const groma_weight_source *src,
				   const char *prefix, groma_arena *weights)
{
	int64_t		c = cfg->hidden,
				p = cfg->patch,
				g = cfg->pos_grid;
	groma_tensor cls,
				pos_full;

	memset(m, 0, sizeof(*m));
	if (cfg->layers < 1 || cfg->layers > GROMA_DINOV2_MAX_LAYERS || cfg->heads < 1 ||
		cfg->hidden % cfg->heads != 0 || cfg->patch < 1 || cfg->image % cfg->patch != 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "dinov2: unsupported configuration (%d layers, %d heads, hidden %d, patch %d)",
						   cfg->layers, cfg->heads, cfg->hidden, cfg->patch);
	m->cfg = *cfg;
	GROMA_TRY(groma_bind(src, weights, &m->patch_w, 4, (int64_t[]) {c, 3, p, p},
						 "%sembeddings.patch_embeddings.projection.weight", prefix));
	GROMA_TRY(groma_bind(src, weights, &m->patch_b, 1, (int64_t[]) {c},
						 "%sembeddings.patch_embeddings.projection.bias", prefix));
	GROMA_TRY(groma_bind(src, weights, &cls, 3, (int64_t[]) {1, 1, c}, "%sembeddings.cls_token", prefix));
	GROMA_TRY(groma_tensor_reshape(&cls, 3, (int64_t[]) {1, 1, c}, &m->cls));
	GROMA_TRY(groma_bind(src, weights, &pos_full, 3, (int64_t[]) {1, 1 + g * g, c},
						 "%sembeddings.position_embeddings", prefix));
	GROMA_TRY(groma_tensor_reshape(&pos_full, 2, (int64_t[]) {1 + g * g, c}, &pos_full));
	GROMA_TRY(resize_positions(cfg, &pos_full, weights, &m->pos));
	for (int i = 0; i < cfg->layers; i++)
		GROMA_TRY(bind_layer(&m->layer[i], cfg, src, prefix, i, weights));
	return groma_ok();
}

/* Copies a [B, T, C] activation into a probe tensor when one is wanted. */
static groma_status
probe_copy(groma_tensor *dst, const groma_tensor *src)
{
	return dst ? groma_copy(src, dst) : groma_ok();
}

/*
 * Embeddings: x[B, T, C] = concat(CLS, patch conv of pixels flattened
 * row-major) + positions.
 */
static groma_status
embed(const groma_dinov2 *m, const groma_tensor *pixels, groma_arena *act, groma_tensor *x)
{
	int64_t		batch = pixels->shape[0],
				c = m->cfg.hidden,
				n = m->cfg.image / m->cfg.patch;
	groma_tensor conv,
				conv_tokens,
				dst;

	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 4, (int64_t[]) {batch, c, n, n}, &conv));	/* [B, C, n, n] */
	GROMA_TRY(groma_conv2d(pixels, &m->patch_w, &m->patch_b, m->cfg.patch, 0, act, &conv));
	GROMA_TRY(groma_tensor_reshape(&conv, 3, (int64_t[]) {batch, c, n * n}, &conv_tokens));
	GROMA_TRY(groma_tensor_permute(&conv_tokens, (int[]) {0, 2, 1}, &conv_tokens));	/* [B, n·n, C] view */
	for (int64_t b = 0; b < batch; b++)
	{
		groma_tensor xb,
					src;

		GROMA_TRY(groma_tensor_narrow(x, 0, b, 1, &xb));
		GROMA_TRY(groma_tensor_narrow(&xb, 1, 0, 1, &dst));
		GROMA_TRY(groma_copy(&m->cls, &dst));
		GROMA_TRY(groma_tensor_narrow(&xb, 1, 1, n * n, &dst));
		GROMA_TRY(groma_tensor_narrow(&conv_tokens, 0, b, 1, &src));
		GROMA_TRY(groma_copy(&src, &dst));
	}
	return groma_add(x, &m->pos, x);
}

/* One pre-norm transformer layer on x[B, T, C] in place. */
static groma_status
layer_forward(const groma_dinov2 *m, const groma_dinov2_layer *l, groma_tensor *x, groma_arena *act,
			  const groma_dinov2_probe *probe)
{
	int64_t		batch = x->shape[0],
				t = x->shape[1],
				c = m->cfg.hidden,
				heads = m->cfg.heads,
				dh = c / heads;
	groma_tensor h,
				q,
				k,
				v,
				ctx,
				qh,
				kh,
				vh,
				ctxh,
				mid,
				out;
	size_t		mark = act->used;
	const int64_t btc[3] = {batch, t, c};
	const int	to_heads[4] = {0, 2, 1, 3};

	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, btc, &h));	/* [B, T, C] */
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, btc, &q));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, btc, &k));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, btc, &v));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, btc, &ctx));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, btc, &out));

	/* attention block: x += ls1 · dense(attn(norm1(x))) */
	GROMA_TRY(groma_layer_norm(x, &l->norm1_w, &l->norm1_b, m->cfg.eps, &h));
	GROMA_TRY(probe_copy(probe ? probe->l0_norm1 : NULL, &h));
	/* one call: on a GPU with 16-bit matrices h is rounded once for the three */
	GROMA_TRY(groma_linear_many(&h, 3, (const groma_tensor *[]) {&l->q_w, &l->k_w, &l->v_w},
								(const groma_tensor *[]) {&l->q_b, &l->k_b, &l->v_b}, (groma_tensor *[]) {&q, &k, &v}));
	/* [B, T, C] as [B, T, H, Dh] viewed as [B, H, T, Dh] */
	GROMA_TRY(groma_tensor_reshape(&q, 4, (int64_t[]) {batch, t, heads, dh}, &qh));
	GROMA_TRY(groma_tensor_reshape(&k, 4, (int64_t[]) {batch, t, heads, dh}, &kh));
	GROMA_TRY(groma_tensor_reshape(&v, 4, (int64_t[]) {batch, t, heads, dh}, &vh));
	GROMA_TRY(groma_tensor_reshape(&ctx, 4, (int64_t[]) {batch, t, heads, dh}, &ctxh));
	GROMA_TRY(groma_tensor_permute(&qh, to_heads, &qh));
	GROMA_TRY(groma_tensor_permute(&kh, to_heads, &kh));
	GROMA_TRY(groma_tensor_permute(&vh, to_heads, &vh));
	GROMA_TRY(groma_tensor_permute(&ctxh, to_heads, &ctxh));
	/* with 16-bit matrices the two attention products run in that type on a GPU's tensor cores */
	GROMA_TRY(groma_attention_in(groma_compute_dtype(&l->q_w), &qh, &kh, &vh, 1.0f / sqrtf((float) dh), false, 0, act,
								 &ctxh));
	GROMA_TRY(groma_linear(&ctx, &l->o_w, &l->o_b, &out));
	GROMA_TRY(probe_copy(probe ? probe->l0_attn_out : NULL, &out));
	GROMA_TRY(groma_mul(&out, &l->ls1, &out));
	GROMA_TRY(groma_add(x, &out, x));
	GROMA_TRY(probe_copy(probe ? probe->l0_after_attn : NULL, x));

	/* MLP block: x += ls2 · fc2(gelu(fc1(norm2(x)))) */
	GROMA_TRY(groma_layer_norm(x, &l->norm2_w, &l->norm2_b, m->cfg.eps, &h));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, (int64_t[]) {batch, t, m->cfg.mlp_hidden}, &mid));	/* [B, T, M] */
	GROMA_TRY(groma_linear(&h, &l->fc1_w, &l->fc1_b, &mid));
	GROMA_TRY(groma_gelu(&mid, &mid));
	GROMA_TRY(groma_linear(&mid, &l->fc2_w, &l->fc2_b, &out));
	GROMA_TRY(probe_copy(probe ? probe->l0_mlp_out : NULL, &out));
	GROMA_TRY(groma_mul(&out, &l->ls2, &out));
	GROMA_TRY(groma_add(x, &out, x));
	act->used = mark;
	return groma_ok();
}

typedef struct forward_job
{
	const groma_dinov2 *m;
	const groma_tensor *pixels;	/* [B, 3, image, image] */
	groma_arena *act;
	groma_tensor *hidden;		/* [L + 1, B, T, C] */
	const groma_dinov2_probe *probe;
} forward_job;

/* The encoder's device work for a forward_job (checked by the caller); act is as it was on return, failed or not. */
static groma_status
forward_work(void *ctx)
{
	forward_job *j = ctx;
	const groma_dinov2 *m = j->m;
	int64_t		batch = j->pixels->shape[0],
				t = groma_dinov2_tokens(&m->cfg),
				c = m->cfg.hidden;
	groma_tensor x,
				slot;
	size_t		mark = j->act->used;
	groma_status st = groma_arena_tensor(j->act, GROMA_F32, 3, (int64_t[]) {batch, t, c}, &x);	/* [B, T, C] */

	if (st.code == GROMA_OK)
		st = embed(m, j->pixels, j->act, &x);
	for (int i = 0; i <= m->cfg.layers && st.code == GROMA_OK; i++)
	{
		if (i > 0)
			st = layer_forward(m, &m->layer[i - 1], &x, j->act, i == 1 ? j->probe : NULL);
		if (st.code == GROMA_OK)
			st = groma_tensor_narrow(j->hidden, 0, i, 1, &slot);
		if (st.code == GROMA_OK)
			st = groma_tensor_reshape(&slot, 3, (int64_t[]) {batch, t, c}, &slot);
		if (st.code == GROMA_OK)
			st = groma_copy(&x, &slot);
	}
	j->act->used = mark;
	return st;
}

/* Runs the encoder, keeping every layer's output; see dinov2.h. */
groma_status
groma_dinov2_forward(const groma_dinov2 *m, const groma_tensor *pixels, groma_arena *act,
					 groma_tensor *hidden, const groma_dinov2_probe *probe)
{
	int64_t		t = groma_dinov2_tokens(&m->cfg),
				c = m->cfg.hidden;
	forward_job job = {m, pixels, act, hidden, probe};
	groma_stage_key key;

	GROMA_TRY(groma_check_f32_anywhere("dinov2", "pixels", pixels));
	GROMA_TRY(groma_check_ndim("dinov2", "pixels", pixels, 4));
	GROMA_TRY(groma_check_dim("dinov2", "pixels", pixels, 1, 3));
	GROMA_TRY(groma_check_dim("dinov2", "pixels", pixels, 2, m->cfg.image));
	GROMA_TRY(groma_check_dim("dinov2", "pixels", pixels, 3, m->cfg.image));
	GROMA_TRY(groma_check_f32_anywhere("dinov2", "hidden", hidden));
	GROMA_TRY(groma_check_ndim("dinov2", "hidden", hidden, 4));
	GROMA_TRY(groma_check_dim("dinov2", "hidden", hidden, 0, m->cfg.layers + 1));
	GROMA_TRY(groma_check_dim("dinov2", "hidden", hidden, 1, pixels->shape[0]));
	GROMA_TRY(groma_check_dim("dinov2", "hidden", hidden, 2, t));
	GROMA_TRY(groma_check_dim("dinov2", "hidden", hidden, 3, c));
	if (m->graphs == NULL || probe != NULL || !groma_tensor_is_contiguous(hidden))
		return forward_work(&job);
	key = groma_stage_key_of(1, pixels->shape[0], 0, pixels->data, hidden->data, act);
	return groma_graph_cache_run(m->graphs, pixels->device, &key, sizeof(key), forward_work, &job);
}
