/*
 * region_encoder.c - the region encoder as a script over ops.
 */
#include "region_encoder.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../runtime/op_check.h"
#include "../runtime/ops.h"
#include "../runtime/ops_spatial.h"

#define PFX "region_encoder."

/* Reads a stored weight's shape without binding it. */
static groma_status
peek(const groma_weight_source *src, const char *name, groma_tensor *t)
{
	return src->find(src->ctx, name, t);
}

/* Binds the region encoder; widths come from the weights that define them. */
groma_status
groma_region_encoder_build(groma_region_encoder *e, int64_t c, const groma_weight_source *src,
						   groma_arena *w)
{
	groma_tensor t;
	int64_t		ee,
				p,
				mid,
				out;

	memset(e, 0, sizeof(*e));
	GROMA_TRY(peek(src, PFX "mlvl_fuse.input_conv.0.weight", &t));
	ee = t.ndim == 4 ? t.shape[0] : 0;
	GROMA_TRY(peek(src, PFX "roi_align.pos_embedd.0.weight", &t));
	p = t.ndim == 2 ? t.shape[0] : 0;
	GROMA_TRY(peek(src, PFX "roi_align.pos_embedd.3.weight", &t));
	mid = t.ndim == 2 ? t.shape[0] : 0;
	GROMA_TRY(peek(src, PFX "roi_align.updims.weight", &t));
	out = t.ndim == 2 ? t.shape[0] : 0;
	if (ee < 4 || ee % 4 != 0 || ee % 64 != 0 || p < 1 || mid < 1 || out < 1)
		return groma_error(GROMA_ERR_FORMAT, "region encoder: unusable widths (embed %lld, pos %lld, mid %lld, out %lld)",
						   (long long) ee, (long long) p, (long long) mid, (long long) out);
	e->in_channels = c;
	e->embed = ee;
	e->pos_hidden = p;
	e->mid = mid;
	e->out = out;
	e->groups = 64;
	for (int l = 0; l < GROMA_REGION_LEVELS; l++)
	{
		GROMA_TRY(groma_bind(src, w, &e->input_conv_w[l], 4, (int64_t[]) {ee, c + 2, 1, 1}, PFX "mlvl_fuse.input_conv.%d.weight", l));
		GROMA_TRY(groma_bind(src, w, &e->input_conv_b[l], 1, (int64_t[]) {ee}, PFX "mlvl_fuse.input_conv.%d.bias", l));
		GROMA_TRY(groma_bind(src, w, &e->pconv_w[l], 4, (int64_t[]) {ee, ee, 3, 3}, PFX "roi_align.pconvs.%d.weight", l));
		GROMA_TRY(groma_bind(src, w, &e->pconv_b[l], 1, (int64_t[]) {ee}, PFX "roi_align.pconvs.%d.bias", l));
	}
	for (int r = 0; r < GROMA_REGION_FUSE_ROUNDS; r++)
	{
		GROMA_TRY(groma_bind(src, w, &e->fuse_w[r], 4, (int64_t[]) {ee, ee, 3, 3}, PFX "mlvl_fuse.fuse_convs.%d.conv.weight", r));
		GROMA_TRY(groma_bind(src, w, &e->gn_w[r], 1, (int64_t[]) {ee}, PFX "mlvl_fuse.fuse_convs.%d.gn.weight", r));
		GROMA_TRY(groma_bind(src, w, &e->gn_b[r], 1, (int64_t[]) {ee}, PFX "mlvl_fuse.fuse_convs.%d.gn.bias", r));
	}
	GROMA_TRY(groma_bind(src, w, &e->pos0_w, 2, (int64_t[]) {p, 4}, PFX "roi_align.pos_embedd.0.weight"));
	GROMA_TRY(groma_bind(src, w, &e->pos0_b, 1, (int64_t[]) {p}, PFX "roi_align.pos_embedd.0.bias"));
	GROMA_TRY(groma_bind(src, w, &e->pos_ln0_w, 1, (int64_t[]) {p}, PFX "roi_align.pos_embedd.2.weight"));
	GROMA_TRY(groma_bind(src, w, &e->pos_ln0_b, 1, (int64_t[]) {p}, PFX "roi_align.pos_embedd.2.bias"));
	GROMA_TRY(groma_bind(src, w, &e->pos1_w, 2, (int64_t[]) {mid, p}, PFX "roi_align.pos_embedd.3.weight"));
	GROMA_TRY(groma_bind(src, w, &e->pos1_b, 1, (int64_t[]) {mid}, PFX "roi_align.pos_embedd.3.bias"));
	GROMA_TRY(groma_bind(src, w, &e->pos_ln1_w, 1, (int64_t[]) {mid}, PFX "roi_align.pos_embedd.5.weight"));
	GROMA_TRY(groma_bind(src, w, &e->pos_ln1_b, 1, (int64_t[]) {mid}, PFX "roi_align.pos_embedd.5.bias"));
	GROMA_TRY(groma_bind(src, w, &e->flat_w, 2, (int64_t[]) {mid, ee * GROMA_REGION_ROI_SIZE * GROMA_REGION_ROI_SIZE},
						 PFX "roi_align.flatten_linear.weight"));
	GROMA_TRY(groma_bind(src, w, &e->flat_b, 1, (int64_t[]) {mid}, PFX "roi_align.flatten_linear.bias"));
	GROMA_TRY(groma_bind(src, w, &e->up_w, 2, (int64_t[]) {out, mid}, PFX "roi_align.updims.weight"));
	GROMA_TRY(groma_bind(src, w, &e->up_b, 1, (int64_t[]) {out}, PFX "roi_align.updims.bias"));
	return groma_ok();
}

/* Bytes of the Winograd weights: eight [36, E, E] tensors. */
size_t
groma_region_encoder_cpu_bytes(const groma_region_encoder *e)
{
	return (size_t) (GROMA_REGION_FUSE_ROUNDS + GROMA_REGION_LEVELS) *
		((size_t) (36 * e->embed * e->embed) * sizeof(float) + GROMA_ARENA_ALIGN);
}

/* Derives the Winograd weights; see region_encoder.h. */
groma_status
groma_region_encoder_prepare_cpu(groma_region_encoder *e, groma_arena *w)
{
	int64_t		ee = e->embed;

	for (int i = 0; i < GROMA_REGION_FUSE_ROUNDS + GROMA_REGION_LEVELS; i++)
	{
		bool		fuse = i < GROMA_REGION_FUSE_ROUNDS;
		groma_tensor *u = fuse ? &e->fuse_u[i] : &e->pconv_u[i - GROMA_REGION_FUSE_ROUNDS];

		GROMA_TRY(groma_arena_tensor(w, GROMA_F32, 3, (int64_t[]) {36, ee, ee}, u));
		GROMA_TRY(groma_winograd_weights(fuse ? &e->fuse_w[i] : &e->pconv_w[i - GROMA_REGION_FUSE_ROUNDS], u));
	}
	return groma_ok();
}

/* host[1, 2, s, s] = the x and y coordinate channels, torch.linspace(-1, 1, s) along each axis. */
static groma_status
coordinates_host(void *ctx, groma_tensor *host)
{
	int64_t		s = host->shape[3];
	float	   *xc = host->data,
			   *yc = xc + s * s;

	for (int64_t i = 0; i < s; i++)
		for (int64_t j = 0; j < s; j++)
		{
			xc[i * s + j] = s > 1 ? -1.0f + 2.0f * (float) j / (float) (s - 1) : -1.0f;
			yc[i * s + j] = s > 1 ? -1.0f + 2.0f * (float) i / (float) (s - 1) : -1.0f;
		}
	return groma_ok();
}

/*
 * x[B, C + 2, s, s] = the hidden state as a map resized to s (bilinear,
 * align_corners) followed by x and y coordinate channels in [-1, 1], copied
 * from coords[1, 2, s, s] (the table built with the model) or, without it,
 * made on the host for the first image and copied to the others.
 */
static groma_status
level_input(const groma_tensor *h, int64_t n, int64_t s, const groma_tensor *coords, groma_arena *act,
			groma_tensor *x)
{
	int64_t		batch = h->shape[0],
				c = h->shape[2];
	groma_tensor grid,
				map,
				feat,
				first;

	/* [B, 1 + n², C] → [B, C, n, n] */
	GROMA_TRY(groma_tensor_narrow(h, 1, 1, n * n, &grid));
	GROMA_TRY(groma_tensor_permute(&grid, (int[]) {0, 2, 1}, &grid));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 4, (int64_t[]) {batch, c, n, n}, &map));
	{
		groma_tensor map3;

		GROMA_TRY(groma_tensor_reshape(&map, 3, (int64_t[]) {batch, c, n * n}, &map3));
		GROMA_TRY(groma_copy(&grid, &map3));
	}
	for (int64_t b = 0; b < batch; b++)
	{
		GROMA_TRY(groma_tensor_narrow(x, 0, b, 1, &feat));
		GROMA_TRY(groma_tensor_narrow(&feat, 1, 0, c, &feat));
		{
			groma_tensor src;

			GROMA_TRY(groma_tensor_narrow(&map, 0, b, 1, &src));
			GROMA_TRY(groma_resize_bilinear(&src, true, &feat));
		}
		GROMA_TRY(groma_tensor_narrow(x, 0, b, 1, &feat));
		GROMA_TRY(groma_tensor_narrow(&feat, 1, c, 2, &feat));
		if (coords != NULL && coords->data != NULL && coords->shape[3] == s)
			GROMA_TRY(groma_copy(coords, &feat));
		else if (b == 0)
			GROMA_TRY(groma_fill_from_host(&feat, coordinates_host, NULL));
		else
			GROMA_TRY(groma_copy(&first, &feat));
		if (b == 0)
			first = feat;
	}
	return groma_ok();
}

/* Builds the coordinate channels of every level for an n x n map; see region_encoder.h. */
groma_status
groma_region_encoder_make_coords(groma_region_encoder *e, int64_t n, groma_arena *arena)
{
	for (int l = 0; l < GROMA_REGION_LEVELS; l++)
	{
		int64_t		s = n << (GROMA_REGION_LEVELS - 1 - l);	/* 4n, 2n, n */

		GROMA_TRY(groma_arena_tensor(arena, GROMA_F32, 4, (int64_t[]) {1, 2, s, s}, &e->coords[l]));
		GROMA_TRY(groma_fill_from_host(&e->coords[l], coordinates_host, NULL));
	}
	return groma_ok();
}

/*
 * One exchange round for target level t: cat(own first E/2 channels, the
 * coarser level's last E/4, the finer level's third E/4 — both resized
 * bilinearly, align_corners — ) into out[B, E, s_t, s_t].
 */
static groma_status
exchange(const groma_region_maps *in, int t, int64_t e, groma_arena *act, groma_tensor *out)
{
	int			top = t + 1 < GROMA_REGION_LEVELS ? t + 1 : GROMA_REGION_LEVELS - 1;
	int			down = t > 0 ? t - 1 : 0;
	int64_t		half = e / 2,
				quarter = e / 4;
	groma_tensor own,
				dst,
				src;

	GROMA_TRY(groma_tensor_narrow(&in->level[t], 1, 0, half, &own));
	GROMA_TRY(groma_tensor_narrow(out, 1, 0, half, &dst));
	GROMA_TRY(groma_copy(&own, &dst));
	for (int part = 0; part < 2; part++)
	{
		const groma_tensor *from = &in->level[part == 0 ? top : down];
		int64_t		start = part == 0 ? half + quarter : half;
		groma_tensor cont;
		size_t		mark = act->used;

		GROMA_TRY(groma_tensor_narrow(from, 1, start, quarter, &src));
		GROMA_TRY(groma_tensor_narrow(out, 1, half + part * quarter, quarter, &dst));
		/* the resize op wants contiguous tensors: stage the channel slice and the result */
		GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 4, src.shape, &cont));
		GROMA_TRY(groma_copy(&src, &cont));
		{
			groma_tensor resized;

			GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 4, dst.shape, &resized));
			GROMA_TRY(groma_resize_bilinear(&cont, true, &resized));
			GROMA_TRY(groma_copy(&resized, &dst));
		}
		act->used = mark;
	}
	return groma_ok();
}

typedef struct fuse_job
{
	const groma_region_encoder *e;
	const groma_tensor *hidden;	/* [L + 1, B, 1 + n², C] */
	int64_t		n;
	groma_arena *act;
	const groma_region_maps *final;	/* the outputs, already carved */
} fuse_job;

/* The fusion's device work for a fuse_job; act is as it was on return, failed or not. */
static groma_status
fuse_work(void *ctx)
{
	fuse_job   *j = ctx;
	const groma_region_encoder *e = j->e;
	groma_arena *act = j->act;
	int64_t		layers = j->hidden->shape[0],
				batch = j->hidden->shape[1],
				c = j->hidden->shape[3],
				n = j->n,
				ee = e->embed;
	groma_region_maps cur,
				next;
	size_t		mark = act->used;
	groma_status st = groma_ok();

	for (int l = 0; l < GROMA_REGION_LEVELS && st.code == GROMA_OK; l++)
	{
		int64_t		s = n << (GROMA_REGION_LEVELS - 1 - l);	/* 4n, 2n, n */
		groma_tensor h,
					x;

		st = groma_tensor_narrow(j->hidden, 0, layers - 3 + l, 1, &h);
		if (st.code == GROMA_OK)
			st = groma_tensor_reshape(&h, 3, (int64_t[]) {batch, n * n + 1, c}, &h);
		if (st.code == GROMA_OK)
			st = groma_arena_tensor(act, GROMA_F32, 4, (int64_t[]) {batch, c + 2, s, s}, &x);
		if (st.code == GROMA_OK)
			st = level_input(&h, n, s, &e->coords[l], act, &x);
		if (st.code == GROMA_OK)
			st = groma_arena_tensor(act, GROMA_F32, 4, (int64_t[]) {batch, ee, s, s}, &cur.level[l]);
		if (st.code == GROMA_OK)
			st = groma_conv2d(&x, &e->input_conv_w[l], &e->input_conv_b[l], 1, 0, act, &cur.level[l]);
	}
	for (int r = 0; r < GROMA_REGION_FUSE_ROUNDS && st.code == GROMA_OK; r++)
	{
		for (int l = 0; l < GROMA_REGION_LEVELS && st.code == GROMA_OK; l++)
		{
			groma_tensor mixed;

			st = groma_arena_tensor(act, GROMA_F32, 4, cur.level[l].shape, &mixed);
			if (st.code == GROMA_OK)
				st = exchange(&cur, l, ee, act, &mixed);
			if (r == GROMA_REGION_FUSE_ROUNDS - 1)
				next.level[l] = j->final->level[l];
			else if (st.code == GROMA_OK)
				st = groma_arena_tensor(act, GROMA_F32, 4, cur.level[l].shape, &next.level[l]);
			if (st.code == GROMA_OK)
				st = groma_conv3x3(&mixed, &e->fuse_w[r], &e->fuse_u[r], NULL, act, &next.level[l]);
			if (st.code == GROMA_OK)
				st = groma_group_norm_relu(&next.level[l], e->groups, &e->gn_w[r], &e->gn_b[r], 1e-5f,
										   &next.level[l]);
		}
		cur = next;
	}
	act->used = mark;
	return st;
}

/* Builds the fused maps; see region_encoder.h. */
groma_status
groma_region_fuse(const groma_region_encoder *e, const groma_tensor *hidden, groma_arena *act,
				  groma_arena *out_arena, groma_region_maps *maps)
{
	int64_t		batch = hidden->shape[1],
				c = hidden->shape[3],
				n = (int64_t) llround(sqrt((double) (hidden->shape[2] - 1))),
				ee = e->embed;
	groma_region_maps final;
	fuse_job	job = {e, hidden, n, act, &final};
	groma_stage_key key;
	bool		coords_made = true;

	GROMA_TRY(groma_check_f32_anywhere("region_fuse", "hidden", hidden));
	if (hidden->shape[0] < 3 || c != e->in_channels || n * n + 1 != hidden->shape[2])
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "region_fuse: hidden states do not fit the encoder");
	/* The outputs come first, so they survive when out_arena is act. */
	for (int l = 0; l < GROMA_REGION_LEVELS; l++)
	{
		int64_t		s = n << (GROMA_REGION_LEVELS - 1 - l);

		GROMA_TRY(groma_arena_tensor(out_arena, GROMA_F32, 4, (int64_t[]) {batch, ee, s, s}, &final.level[l]));
		coords_made = coords_made && e->coords[l].data != NULL && e->coords[l].shape[3] == s;
	}
	key = groma_stage_key_of(3, batch, hidden->shape[0], hidden->data, final.level[0].data, act);
	/* on the GPU the fusion is recorded once per batch and place, and replayed (its coordinates made, no upload) */
	GROMA_TRY(e->graphs && coords_made && groma_tensor_is_contiguous(hidden)
			  ? groma_graph_cache_run(e->graphs, hidden->device, &key, sizeof(key), fuse_work, &job)
			  : fuse_work(&job));
	*maps = final;
	return groma_ok();
}

/* pos[N, mid] = LN(ReLU(Linear(LN(ReLU(Linear(boxes)))))) of the normalised boxes. */
static groma_status
box_position(const groma_region_encoder *e, const groma_tensor *boxes, groma_arena *act, groma_tensor *pos)
{
	groma_tensor h;
	size_t		mark = act->used;

	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {boxes->shape[0], e->pos_hidden}, &h));
	GROMA_TRY(groma_linear(boxes, &e->pos0_w, &e->pos0_b, &h));
	GROMA_TRY(groma_relu(&h, &h));
	GROMA_TRY(groma_layer_norm(&h, &e->pos_ln0_w, &e->pos_ln0_b, 1e-5f, &h));
	GROMA_TRY(groma_linear(&h, &e->pos1_w, &e->pos1_b, pos));
	GROMA_TRY(groma_relu(pos, pos));
	GROMA_TRY(groma_layer_norm(pos, &e->pos_ln1_w, &e->pos_ln1_b, 1e-5f, pos));
	act->used = mark;
	return groma_ok();
}

typedef struct rois_job
{
	const float *boxes;			/* [N, 4] normalised (cx, cy, w, h) */
	float	   *probe_rois;		/* [N, 5] copy for tests, or NULL */
	int64_t		batch_index;
} rois_job;

/* host[N, 5] = (0, box·448) per box, the original's RoIAlign input; the probe gets the batch index. */
static groma_status
rois_host(void *ctx, groma_tensor *host)
{
	const rois_job *j = ctx;
	int64_t		n = host->shape[0];
	float	   *r = host->data;

	for (int64_t i = 0; i < n; i++)
	{
		r[i * 5] = 0.0f;		/* one image's maps are passed below */
		for (int k = 0; k < 4; k++)
			r[i * 5 + 1 + k] = j->boxes[i * 4 + k] * 448.0f;	/* quirk: (cx, cy, w, h)·448 read as corners */
	}
	if (j->probe_rois)
		for (int64_t i = 0; i < n; i++)
		{
			memcpy(j->probe_rois + i * 5, r + i * 5, 5 * sizeof(float));
			j->probe_rois[i * 5] = (float) j->batch_index;
		}
	return groma_ok();
}

/* Region tokens for the boxes of one image; see region_encoder.h. */
groma_status
groma_region_tokens(const groma_region_encoder *e, const groma_region_maps *maps, int64_t batch_index,
					const float *boxes, int64_t n, groma_arena *act, groma_tensor *tokens,
					float *probe_rois, groma_tensor *probe_flat, groma_tensor *probe_pos,
					groma_tensor *features)
{
	const int64_t rs = GROMA_REGION_ROI_SIZE;
	int64_t		ee = e->embed;
	groma_tensor rois,
				tboxes,
				pooled,
				summed,
				conv,
				flat,
				pos;
	size_t		mark = act->used;

	if (n < 1)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "region tokens: no boxes");
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {n, 5}, &rois));	/* [N, 5] */
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {n, 4}, &tboxes));	/* [N, 4] */
	{
		rois_job	j = {boxes, probe_rois, batch_index};

		GROMA_TRY(groma_fill_from_host(&rois, rois_host, &j));
	}
	GROMA_TRY(groma_upload(boxes, &tboxes));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 4, (int64_t[]) {n, ee, rs, rs}, &pooled));	/* [N, E, 14, 14] */
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 4, (int64_t[]) {n, ee, rs, rs}, &conv));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 4, (int64_t[]) {n, ee, rs, rs}, &summed));
	GROMA_TRY(groma_fill(&summed, 0.0f));
	for (int l = 0; l < GROMA_REGION_LEVELS; l++)
	{
		groma_tensor map;
		/* spatial scales 8/14, 4/14, 2/14: mmcv strides 14/8, 14/4, 14/2 */
		float		scale = (float) (1.0 / (14.0 / (double) (8 >> l)));

		GROMA_TRY(groma_tensor_narrow(&maps->level[l], 0, batch_index, 1, &map));
		GROMA_TRY(groma_roi_align(&map, &rois, scale, 2, true, &pooled));
		GROMA_TRY(groma_conv3x3(&pooled, &e->pconv_w[l], &e->pconv_u[l], &e->pconv_b[l], act, &conv));
		GROMA_TRY(groma_add(&summed, &conv, &summed));
	}
	GROMA_TRY(groma_relu(&summed, &summed));
	GROMA_TRY(groma_tensor_reshape(&summed, 2, (int64_t[]) {n, ee * rs * rs}, &summed));
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {n, e->mid}, &flat));	/* [N, mid] */
	GROMA_TRY(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {n, e->mid}, &pos));
	GROMA_TRY(groma_linear(&summed, &e->flat_w, &e->flat_b, &flat));
	GROMA_TRY(box_position(e, &tboxes, act, &pos));
	if (probe_flat)
		GROMA_TRY(groma_copy(&flat, probe_flat));
	if (probe_pos)
		GROMA_TRY(groma_copy(&pos, probe_pos));
	GROMA_TRY(groma_add(&flat, &pos, &flat));
	if (features)
		GROMA_TRY(groma_copy(&flat, features));
	GROMA_TRY(groma_linear(&flat, &e->up_w, &e->up_b, tokens));
	act->used = mark;
	return groma_ok();
}
