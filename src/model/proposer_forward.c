/*
 * proposer_forward.c - the region proposer's forward pass as a script.
 */
#include "proposer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/op_check.h"
#include "../runtime/ops.h"
#include "../runtime/ops_spatial.h"
#include "deform_attention.h"

/* Applies LayerNorm to x[B, T, d] in place. */
static groma_status
norm_inplace(groma_tensor *x, const groma_tensor *w, const groma_tensor *b)
{
	return groma_layer_norm(x, w, b, 1e-5f, x);
}

/* y[..., 4] = box MLP of x[..., d]: Linear, ReLU, Linear, ReLU, Linear. */
static groma_status
box_mlp(const groma_box_mlp *m, const groma_tensor *x, groma_arena *act, groma_tensor *y)
{
	int64_t		rows = groma_tensor_numel(x) / x->shape[x->ndim - 1],
				hid = m->w[0].shape[0];
	groma_tensor h1,
				h2,
				x2,
				y2;
	size_t		mark = act->used;

	GROMA_TRY(groma_tensor_reshape(x, 2, (int64_t[]) {rows, x->shape[x->ndim - 1]}, &x2));
	GROMA_TRY(groma_tensor_reshape(y, 2, (int64_t[]) {rows, 4}, &y2));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {rows, hid}, &h1));	/* [R, hid] */
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {rows, hid}, &h2));
	GROMA_TRY(groma_linear(&x2, &m->w[0], &m->b[0], &h1));
	GROMA_TRY(groma_relu(&h1, &h1));
	GROMA_TRY(groma_linear(&h1, &m->w[1], &m->b[1], &h2));
	GROMA_TRY(groma_relu(&h2, &h2));
	GROMA_TRY(groma_linear(&h2, &m->w[2], &m->b[2], &y2));
	act->used = mark;
	return groma_ok();
}

/* x[B, T, d] = final_norm(x + fc2(relu(fc1(x)))). */
static groma_status
ffn_block(const groma_tensor *fc1_w, const groma_tensor *fc1_b, const groma_tensor *fc2_w,
		  const groma_tensor *fc2_b, const groma_tensor *norm_w, const groma_tensor *norm_b,
		  groma_tensor *x, groma_arena *act)
{
	groma_tensor mid,
				out;
	size_t		mark = act->used;

	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, (int64_t[]) {x->shape[0], x->shape[1], fc1_w->shape[0]}, &mid));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, (int64_t[]) {x->shape[0], x->shape[1], x->shape[2]}, &out));
	GROMA_TRY(groma_linear(x, fc1_w, fc1_b, &mid));
	GROMA_TRY(groma_relu(&mid, &mid));
	GROMA_TRY(groma_linear(&mid, fc2_w, fc2_b, &out));
	GROMA_TRY(groma_add(x, &out, x));
	GROMA_TRY(norm_inplace(x, norm_w, norm_b));
	act->used = mark;
	return groma_ok();
}

/* src[B, n·n, d] = input_proj(mean of the last four hidden states, CLS dropped) flattened row-major. */
static groma_status
project_input(const groma_proposer *p, const groma_tensor *hidden, int64_t n, groma_arena *act, groma_tensor *src)
{
	int64_t		layers = hidden->shape[0],
				batch = hidden->shape[1],
				t = hidden->shape[2],
				c = hidden->shape[3],
				d = p->cfg.d_model;
	groma_tensor mean,
				grid,
				chw,
				proj,
				tokens;

	/* mean[B, T, C] of hidden[L-3..L] (summed in layer order, then divided, as torch.mean) */
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, (int64_t[]) {batch, t, c}, &mean));
	GROMA_TRY(groma_fill(&mean, 0.0f));
	for (int64_t l = layers - 4; l < layers; l++)
	{
		groma_tensor h;

		GROMA_TRY(groma_tensor_narrow(hidden, 0, l, 1, &h));
		GROMA_TRY(groma_tensor_reshape(&h, 3, (int64_t[]) {batch, t, c}, &h));
		GROMA_TRY(groma_add(&mean, &h, &mean));
	}
	GROMA_TRY(groma_scale(&mean, 0.25f, 0.0f, &mean));
	/* [B, 1+n², C] → drop CLS → [B, C, n, n] */
	GROMA_TRY(groma_tensor_narrow(&mean, 1, 1, n * n, &grid));
	GROMA_TRY(groma_tensor_permute(&grid, (int[]) {0, 2, 1}, &grid));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, (int64_t[]) {batch, c, n * n}, &chw));
	GROMA_TRY(groma_copy(&grid, &chw));
	GROMA_TRY(groma_tensor_reshape(&chw, 4, (int64_t[]) {batch, c, n, n}, &chw));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 4, (int64_t[]) {batch, d, n, n}, &proj));	/* [B, d, n, n] */
	GROMA_TRY(groma_conv2d(&chw, &p->proj_w, &p->proj_b, 1, 0, act, &proj));
	GROMA_TRY(groma_layer_norm_channels(&proj, &p->proj_norm_w, &p->proj_norm_b, 1e-6f, &proj));
	GROMA_TRY(groma_tensor_reshape(&proj, 3, (int64_t[]) {batch, d, n * n}, &tokens));
	GROMA_TRY(groma_tensor_permute(&tokens, (int[]) {0, 2, 1}, &tokens));
	return groma_copy(&tokens, src);
}

/* One post-norm encoder layer on x[B, S, d] in place. */
static groma_status
encoder_layer(const groma_proposer_encoder_layer *l, groma_tensor *x, const groma_tensor *pos,
			  const groma_tensor *ref, int64_t n, groma_arena *act)
{
	groma_tensor query,
				attn;
	size_t		mark = act->used;

	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, (int64_t[]) {x->shape[0], x->shape[1], x->shape[2]}, &query));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, (int64_t[]) {x->shape[0], x->shape[1], x->shape[2]}, &attn));
	GROMA_TRY(groma_add(x, pos, &query));
	GROMA_TRY(groma_msda_forward(&l->attn, &query, x, n, n, ref, act, &attn));
	GROMA_TRY(groma_add(x, &attn, x));
	GROMA_TRY(norm_inplace(x, &l->attn_norm_w, &l->attn_norm_b));
	GROMA_TRY(ffn_block(&l->fc1_w, &l->fc1_b, &l->fc2_w, &l->fc2_b, &l->final_norm_w, &l->final_norm_b, x, act));
	act->used = mark;
	return groma_ok();
}

/* Standard multi-head self-attention of the decoder: q = k = x + pos, v = x; adds into x and normalises. */
static groma_status
decoder_self_attention(const groma_proposer_decoder_layer *l, int heads, groma_tensor *x,
					   const groma_tensor *pos, groma_arena *act)
{
	int64_t		b = x->shape[0],
				k = x->shape[1],
				d = x->shape[2],
				dh = d / heads;
	groma_tensor qk_in,
				q,
				kk,
				v,
				ctx,
				out,
				qh,
				kh,
				vh,
				ch;
	const int64_t bkd[3] = {b, k, d};
	const int	perm[4] = {0, 2, 1, 3};
	size_t		mark = act->used;

	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, bkd, &qk_in));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, bkd, &q));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, bkd, &kk));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, bkd, &v));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, bkd, &ctx));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, bkd, &out));
	GROMA_TRY(groma_add(x, pos, &qk_in));
	GROMA_TRY(groma_linear(&qk_in, &l->q_w, &l->q_b, &q));
	GROMA_TRY(groma_linear(&qk_in, &l->k_w, &l->k_b, &kk));
	GROMA_TRY(groma_linear(x, &l->v_w, &l->v_b, &v));
	GROMA_TRY(groma_tensor_reshape(&q, 4, (int64_t[]) {b, k, heads, dh}, &qh));
	GROMA_TRY(groma_tensor_reshape(&kk, 4, (int64_t[]) {b, k, heads, dh}, &kh));
	GROMA_TRY(groma_tensor_reshape(&v, 4, (int64_t[]) {b, k, heads, dh}, &vh));
	GROMA_TRY(groma_tensor_reshape(&ctx, 4, (int64_t[]) {b, k, heads, dh}, &ch));
	GROMA_TRY(groma_tensor_permute(&qh, perm, &qh));
	GROMA_TRY(groma_tensor_permute(&kh, perm, &kh));
	GROMA_TRY(groma_tensor_permute(&vh, perm, &vh));
	GROMA_TRY(groma_tensor_permute(&ch, perm, &ch));
	GROMA_TRY(groma_attention_in(groma_compute_dtype(&l->q_w), &qh, &kh, &vh, 1.0f / sqrtf((float) dh), false, 0, act,
								 &ch));
	GROMA_TRY(groma_linear(&ctx, &l->o_w, &l->o_b, &out));
	GROMA_TRY(groma_add(x, &out, x));
	GROMA_TRY(norm_inplace(x, &l->self_norm_w, &l->self_norm_b));
	act->used = mark;
	return groma_ok();
}

/* One decoder layer on x[B, K, d] in place: self-attention, deformable cross-attention, FFN. */
static groma_status
decoder_layer(const groma_proposer *p, const groma_proposer_decoder_layer *l, groma_tensor *x,
			  const groma_tensor *query_pos, const groma_tensor *memory, int64_t n,
			  const groma_tensor *ref, groma_arena *act)
{
	groma_tensor query,
				attn;
	size_t		mark = act->used;

	GROMA_TRY(decoder_self_attention(l, p->cfg.decoder_heads, x, query_pos, act));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, (int64_t[]) {x->shape[0], x->shape[1], x->shape[2]}, &query));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, (int64_t[]) {x->shape[0], x->shape[1], x->shape[2]}, &attn));
	GROMA_TRY(groma_add(x, query_pos, &query));
	GROMA_TRY(groma_msda_forward(&l->cross, &query, memory, n, n, ref, act, &attn));
	GROMA_TRY(groma_add(x, &attn, x));
	GROMA_TRY(norm_inplace(x, &l->cross_norm_w, &l->cross_norm_b));
	GROMA_TRY(ffn_block(&l->fc1_w, &l->fc1_b, &l->fc2_w, &l->fc2_b, &l->final_norm_w, &l->final_norm_b, x, act));
	act->used = mark;
	return groma_ok();
}

/* Carves every output tensor of the forward pass. */
static groma_status
carve_outputs(const groma_proposer *p, int64_t batch, int64_t hw, groma_arena *a, groma_arena *host,
			  groma_proposer_outputs *o)
{
	int64_t		d = p->cfg.d_model,
				k = p->cfg.num_queries,
				l = p->cfg.decoder_layers;

	memset(o, 0, sizeof(*o));
	GROMA_TRY(groma_arena_tensor(a, GROMA_F32, 3, (int64_t[]) {batch, hw, d}, &o->memory));
	GROMA_TRY(groma_arena_tensor(a, GROMA_F32, 2, (int64_t[]) {batch, hw}, &o->enc_class));
	GROMA_TRY(groma_arena_tensor(a, GROMA_F32, 3, (int64_t[]) {batch, hw, 4}, &o->enc_coord_logits));
	o->topk = groma_arena_alloc(host, (size_t) (batch * k) * sizeof(int64_t));
	if (o->topk == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "proposer: host arena full");
	GROMA_TRY(groma_arena_tensor(a, GROMA_I32, 2, (int64_t[]) {batch, k}, &o->topk_rows));
	GROMA_TRY(groma_arena_tensor(a, GROMA_F32, 3, (int64_t[]) {batch, k, 4}, &o->init_ref));
	GROMA_TRY(groma_arena_tensor(a, GROMA_F32, 3, (int64_t[]) {batch, k, d}, &o->query_pos));
	GROMA_TRY(groma_arena_tensor(a, GROMA_F32, 4, (int64_t[]) {l, batch, k, d}, &o->dec_hidden));
	GROMA_TRY(groma_arena_tensor(a, GROMA_F32, 4, (int64_t[]) {l, batch, k, 4}, &o->inter_ref));
	GROMA_TRY(groma_arena_tensor(a, GROMA_F32, 3, (int64_t[]) {l, batch, k}, &o->logits_coco));
	GROMA_TRY(groma_arena_tensor(a, GROMA_F32, 3, (int64_t[]) {l, batch, k}, &o->logits_sa1b));
	GROMA_TRY(groma_arena_tensor(a, GROMA_F32, 4, (int64_t[]) {l, batch, k, 4}, &o->boxes));
	GROMA_TRY(groma_arena_tensor(host, GROMA_F32, 2, (int64_t[]) {batch, k}, &o->scores));
	return groma_ok();
}

/*
 * Two-stage selection: enc_class / enc_coord_logits for every pixel, then
 * the top-K proposals → init_ref (sigmoid) and query_pos (pos_trans).
 */
static groma_status
two_stage(const groma_proposer *p, int64_t n, const groma_tensor *proposals, groma_arena *act, groma_arena *host,
		  groma_proposer_outputs *o)
{
	int64_t		batch = o->memory.shape[0],
				hw = n * n,
				d = p->cfg.d_model,
				k = p->cfg.num_queries;
	groma_tensor query,
				delta,
				logits,
				pos_in,
				pos_out;
	uint8_t    *valid;
	size_t		mark = act->used,
				host_mark = host->used;

	if (k > hw)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "proposer: %lld proposals from %lld pixels", (long long) k, (long long) hw);
	/* which proposals are valid, computed on the host (their logits are in the tables) */
	valid = groma_arena_alloc(host, (size_t) hw);
	if (valid == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "proposer: host arena full");
	{
		groma_tensor scratch;

		GROMA_TRY(groma_arena_tensor(host, GROMA_F32, 2, (int64_t[]) {hw, 4}, &scratch));
		GROMA_TRY(groma_output_proposals((int) n, (int) n, 0, &scratch, valid));
	}
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, (int64_t[]) {batch, hw, d}, &query));
	GROMA_TRY(groma_copy(&o->memory, &query));
	/* invalid proposals: their memory rows are zeroed (masked_fill), one fill per run of rows */
	for (int64_t b = 0; b < batch; b++)
		for (int64_t i = 0; i < hw;)
		{
			int64_t		run = 0;
			groma_tensor rows;

			while (i + run < hw && !valid[i + run])
				run++;
			if (run == 0)
			{
				i++;
				continue;
			}
			GROMA_TRY(groma_tensor_narrow(&query, 0, b, 1, &rows));
			GROMA_TRY(groma_tensor_narrow(&rows, 1, i, run, &rows));
			GROMA_TRY(groma_fill(&rows, 0.0f));
			i += run;
		}
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, (int64_t[]) {batch, hw, d}, &delta));
	GROMA_TRY(groma_linear(&query, &p->enc_output_w, &p->enc_output_b, &delta));
	GROMA_TRY(groma_layer_norm(&delta, &p->enc_norm_w, &p->enc_norm_b, 1e-5f, &query));
	GROMA_TRY(groma_tensor_reshape(&o->enc_class, 3, (int64_t[]) {batch, hw, 1}, &logits));
	GROMA_TRY(groma_linear(&query, &p->class_enc_w, &p->class_enc_b, &logits));
	GROMA_TRY(box_mlp(&p->box_enc, &query, act, &o->enc_coord_logits));
	GROMA_TRY(groma_add(&o->enc_coord_logits, proposals, &o->enc_coord_logits));

	/* top-K where the logits live; init_ref = sigmoid of the chosen logits, pos_in their sine embedding */
	GROMA_TRY(groma_topk_rows(&o->enc_class, (int) k, &o->topk_rows));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, (int64_t[]) {batch, k, 2 * d}, &pos_in));	/* [B, K, 2d] */
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, (int64_t[]) {batch, k, 2 * d}, &pos_out));
	GROMA_TRY(groma_proposal_queries(&o->enc_coord_logits, &o->topk_rows, &o->init_ref, &pos_in));
	GROMA_TRY(groma_linear(&pos_in, &p->pos_trans_w, &p->pos_trans_b, &pos_out));
	GROMA_TRY(groma_layer_norm(&pos_out, &p->pos_norm_w, &p->pos_norm_b, 1e-5f, &pos_out));
	{
		groma_tensor first;

		GROMA_TRY(groma_tensor_narrow(&pos_out, 2, 0, d, &first));	/* query_pos = first d channels */
		GROMA_TRY(groma_copy(&first, &o->query_pos));
	}
	act->used = mark;
	host->used = host_mark;
	return groma_ok();
}

/* sigmoid(delta + inverse_sigmoid(ref)) elementwise over [R, 4]. */
static groma_status
refine(const groma_tensor *delta, const groma_tensor *ref, groma_arena *act, groma_tensor *out)
{
	groma_tensor inv;
	size_t		mark = act->used;

	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, ref->ndim, ref->shape, &inv));
	GROMA_TRY(groma_inverse_sigmoid(ref, 1e-5f, &inv));
	GROMA_TRY(groma_add(delta, &inv, out));
	GROMA_TRY(groma_sigmoid(out, out));
	act->used = mark;
	return groma_ok();
}

/* Decoder layers and per-layer heads and boxes, device work only (scores_to_host reads the last layer's). */
static groma_status
decode(const groma_proposer *p, int64_t n, groma_arena *act, groma_proposer_outputs *o)
{
	int64_t		batch = o->memory.shape[0],
				d = p->cfg.d_model,
				k = p->cfg.num_queries,
				layers = p->cfg.decoder_layers;
	groma_tensor x,
				delta;
	size_t		mark = act->used;

	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, (int64_t[]) {batch, k, d}, &x));	/* [B, K, d] */
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 3, (int64_t[]) {batch, k, 4}, &delta));
	for (int64_t b = 0; b < batch; b++)
	{
		groma_tensor xb,
					embed;

		GROMA_TRY(groma_tensor_narrow(&x, 0, b, 1, &xb));
		GROMA_TRY(groma_tensor_reshape(&p->query_embed, 3, (int64_t[]) {1, k, d}, &embed));
		GROMA_TRY(groma_copy(&embed, &xb));
	}
	for (int64_t l = 0; l < layers; l++)
	{
		const groma_proposer_decoder_layer *dl = &p->dec[l];
		groma_tensor slot,
					ref_l,
					box_l,
					prev,
					logit_slot;

		/* Quirk: every layer attends with the initial reference points. */
		GROMA_TRY(decoder_layer(p, dl, &x, &o->query_pos, &o->memory, n, &o->init_ref, act));
		GROMA_TRY(groma_tensor_narrow(&o->dec_hidden, 0, l, 1, &slot));
		GROMA_TRY(groma_tensor_reshape(&slot, 3, (int64_t[]) {batch, k, d}, &slot));
		GROMA_TRY(groma_copy(&x, &slot));
		GROMA_TRY(box_mlp(&dl->box, &x, act, &delta));
		/* the layer's refined reference: always against the initial points */
		GROMA_TRY(groma_tensor_narrow(&o->inter_ref, 0, l, 1, &ref_l));
		GROMA_TRY(groma_tensor_reshape(&ref_l, 3, (int64_t[]) {batch, k, 4}, &ref_l));
		GROMA_TRY(refine(&delta, &o->init_ref, act, &ref_l));
		/* the layer's output box: against the previous layer's refined reference */
		GROMA_TRY(groma_tensor_narrow(&o->boxes, 0, l, 1, &box_l));
		GROMA_TRY(groma_tensor_reshape(&box_l, 3, (int64_t[]) {batch, k, 4}, &box_l));
		if (l == 0)
			prev = o->init_ref;
		else
		{
			GROMA_TRY(groma_tensor_narrow(&o->inter_ref, 0, l - 1, 1, &prev));
			GROMA_TRY(groma_tensor_reshape(&prev, 3, (int64_t[]) {batch, k, 4}, &prev));
		}
		GROMA_TRY(refine(&delta, &prev, act, &box_l));
		GROMA_TRY(groma_tensor_narrow(&o->logits_coco, 0, l, 1, &logit_slot));
		GROMA_TRY(groma_tensor_reshape(&logit_slot, 3, (int64_t[]) {batch, k, 1}, &logit_slot));
		GROMA_TRY(groma_linear(&x, &dl->coco_w, &dl->coco_b, &logit_slot));
		GROMA_TRY(groma_tensor_narrow(&o->logits_sa1b, 0, l, 1, &logit_slot));
		GROMA_TRY(groma_tensor_reshape(&logit_slot, 3, (int64_t[]) {batch, k, 1}, &logit_slot));
		GROMA_TRY(groma_linear(&x, &dl->sa1b_w, &dl->sa1b_b, &logit_slot));
	}
	act->used = mark;
	return groma_ok();
}

/*
 * score = sigmoid(coco)^0.4 · sigmoid(sa1b)^0.6 of the last layer, on the
 * host, with the top-k indices: three downloads after the device work.
 */
static groma_status
scores_to_host(const groma_proposer *p, groma_arena *host, groma_proposer_outputs *o)
{
	int64_t		batch = o->memory.shape[0],
				k = p->cfg.num_queries,
				layers = p->cfg.decoder_layers;
	groma_tensor coco,
				sa1b;
	float	   *coco_host,
			   *sa1b_host;
	int32_t    *topk_host;
	size_t		host_mark = host->used;
	groma_status st = groma_ok();

	coco_host = groma_arena_alloc(host, (size_t) (batch * k) * sizeof(float));
	sa1b_host = groma_arena_alloc(host, (size_t) (batch * k) * sizeof(float));
	topk_host = groma_arena_alloc(host, (size_t) (batch * k) * sizeof(int32_t));
	if (coco_host == NULL || sa1b_host == NULL || topk_host == NULL)
		st = groma_error(GROMA_ERR_NO_MEMORY, "proposer: host arena full");
	if (st.code == GROMA_OK)
		st = groma_tensor_narrow(&o->logits_coco, 0, layers - 1, 1, &coco);
	if (st.code == GROMA_OK)
		st = groma_tensor_narrow(&o->logits_sa1b, 0, layers - 1, 1, &sa1b);
	if (st.code == GROMA_OK)
		st = groma_download(&coco, coco_host);
	if (st.code == GROMA_OK)
		st = groma_download(&sa1b, sa1b_host);
	if (st.code == GROMA_OK)
		st = groma_download(&o->topk_rows, (float *) topk_host);
	for (int64_t i = 0; st.code == GROMA_OK && i < batch * k; i++)
	{
		o->topk[i] = topk_host[i];
		((float *) o->scores.data)[i] = powf(1.0f / (1.0f + expf(-coco_host[i])), 0.4f) *
			powf(1.0f / (1.0f + expf(-sa1b_host[i])), 0.6f);
	}
	host->used = host_mark;
	return st;
}

typedef struct forward_job
{
	const groma_proposer *p;
	const groma_tensor *hidden;	/* [L + 1, B, 1 + n², C] */
	int64_t		n;
	const groma_proposer_tables *tables;	/* for n */
	groma_arena *act;
	groma_arena *host;			/* for the host-side mask of valid proposals */
	groma_proposer_outputs *out;
} forward_job;

/*
 * The proposer's device work for a forward_job, into outputs already
 * carved: act and host are as they were on return, failed or not.
 */
static groma_status
forward_work(void *ctx)
{
	forward_job *j = ctx;
	const groma_proposer *p = j->p;
	int64_t		batch = j->hidden->shape[1],
				n = j->n;
	groma_tensor ref;
	size_t		mark = j->act->used,
				host_mark = j->host->used;
	groma_status st = project_input(p, j->hidden, n, j->act, &j->out->memory);

	/* every image attends from the same reference points: [B, n², 2] with batch stride 0 */
	ref = j->tables->ref;
	ref.ndim = 3;
	ref.shape[0] = batch;
	ref.shape[1] = n * n;
	ref.shape[2] = 2;
	ref.stride[0] = 0;
	ref.stride[1] = 2;
	ref.stride[2] = 1;
	for (int i = 0; i < p->cfg.encoder_layers && st.code == GROMA_OK; i++)
		st = encoder_layer(&p->enc[i], &j->out->memory, &j->tables->pos, &ref, n, j->act);
	if (st.code == GROMA_OK)
		st = two_stage(p, n, &j->tables->proposals, j->act, j->host, j->out);
	if (st.code == GROMA_OK)
		st = decode(p, n, j->act, j->out);
	j->act->used = mark;
	j->host->used = host_mark;
	return st;
}

/* Runs the proposer; see proposer.h. */
groma_status
groma_proposer_forward(const groma_proposer *p, const groma_tensor *hidden, groma_arena *act,
					   groma_arena *out_arena, groma_arena *host, groma_proposer_outputs *out)
{
	int64_t		n;
	groma_proposer_tables tables;
	forward_job job;
	groma_stage_key key;
	size_t		mark;
	groma_status st;

	GROMA_TRY(groma_check_f32_anywhere("proposer", "hidden", hidden));
	GROMA_TRY(groma_check_ndim("proposer", "hidden", hidden, 4));
	if (hidden->shape[0] < 4)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "proposer: needs at least 4 hidden states");
	GROMA_TRY(groma_check_dim("proposer", "hidden", hidden, 3, p->cfg.in_channels));
	n = (int64_t) llround(sqrt((double) (hidden->shape[2] - 1)));
	if (n * n + 1 != hidden->shape[2])
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "proposer: %lld tokens are not CLS plus a square grid",
						   (long long) hidden->shape[2]);
	GROMA_TRY(carve_outputs(p, hidden->shape[1], n * n, out_arena, host, out));
	mark = act->used;			/* outputs stay when out_arena is act */
	tables = p->tables;
	st = tables.n == n ? groma_ok() : groma_proposer_make_tables(p, n, act, &tables);	/* a map the model was not built for */
	job = (forward_job) {p, hidden, n, &tables, act, host, out};
	key = groma_stage_key_of(2, hidden->shape[1], hidden->shape[0], hidden->data, out->memory.data, act);
	/* on the GPU the device work is recorded once per batch and place, and replayed */
	if (st.code == GROMA_OK)
		st = p->graphs && tables.n == p->tables.n && groma_tensor_is_contiguous(hidden)
			? groma_graph_cache_run(p->graphs, hidden->device, &key, sizeof(key), forward_work, &job)
			: forward_work(&job);
	if (st.code == GROMA_OK)
		st = scores_to_host(p, host, out);
	act->used = mark;
	return st;
}
