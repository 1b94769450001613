/*
 * groma_model.c - loading a Groma model from a checkpoint folder, or
 * building one with random weights.
 */
#include "groma_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/checkpoint_validate.h"
#include "../runtime/op_check.h"
#include "random_weights.h"

/* Finds a checkpoint tensor as a runtime view. */
static groma_status
checkpoint_find(void *ctx, const char *name, groma_tensor *out)
{
	return groma_checkpoint_view(ctx, name, out);
}

/* Returns a weight source over an opened checkpoint. */
groma_weight_source
groma_weight_source_checkpoint(groma_checkpoint *ckpt)
{
	groma_weight_source s = {.ctx = ckpt, .find = checkpoint_find};

	return s;
}

/* Bytes an arena gives a weight of numel elements in rows rows placed as dtype (i8: its row scales too). */
static uint64_t
placed_bytes(groma_dtype dtype, uint64_t numel, uint64_t rows)
{
	if (dtype == GROMA_I8)
		return numel + rows * sizeof(float) + 2 * GROMA_ARENA_ALIGN;
	return numel * groma_dtype_size(dtype) + GROMA_ARENA_ALIGN;
}

/*
 * Sets *out to the bytes the host copies need: every non-f32 tensor as
 * f32, an i8 one (matrix_dtype i8) with its scales, plus room for derived
 * tables; GROMA_ERR_LIMIT naming the tensor when that overflows.
 */
static groma_status
copies_size(const groma_checkpoint *ckpt, groma_dtype matrix_dtype, size_t *out)
{
	size_t		total = 16u << 20;

	for (size_t i = 0; i < groma_checkpoint_count(ckpt); i++)
	{
		const groma_ckpt_tensor *t = groma_checkpoint_tensor_at(ckpt, i);
		uint64_t	numel = (uint64_t) groma_ckpt_tensor_numel(t);
		groma_dtype dtype = groma_placed_dtype(matrix_dtype, GROMA_DEVICE_CPU, t->name, t->ndim);

		if (dtype == GROMA_F32 && t->dtype == GROMA_ST_F32 && groma_ckpt_tensor_is_contiguous(t) &&
			((uintptr_t) t->data % sizeof(float)) == 0)
			continue;
		if (numel > (SIZE_MAX - 2 * GROMA_ARENA_ALIGN - total) / sizeof(float) / 2)
			return groma_error(GROMA_ERR_LIMIT,
							   "\"%s\": tensor \"%s\" of %llu elements overflows the size of its f32 copy",
							   groma_checkpoint_path(ckpt), t->name, (unsigned long long) numel);
		total += (size_t) placed_bytes(dtype, numel, t->ndim > 0 ? (uint64_t) t->shape[0] : 1);
	}
	*out = total;
	return groma_ok();
}

/* Builds every network from the configuration; see groma_model.h. */
groma_status
groma_model_build(groma_model *m)
{
	const groma_model_config *c = &m->cfg;
	groma_dinov2_config vc = {
		.hidden = c->vision.hidden_size, .layers = c->vision.num_layers, .heads = c->vision.num_heads,
		.mlp_hidden = c->vision.mlp_hidden, .patch = c->vision.patch_size,
		.pos_grid = c->vision.grid_size, .image = 448, .eps = (float) c->vision.layer_norm_eps,
	};
	groma_proposer_config pc = {
		.in_channels = c->vision.hidden_size, .d_model = c->ddetr.d_model,
		.encoder_layers = c->ddetr.encoder_layers, .decoder_layers = c->ddetr.decoder_layers,
		.encoder_heads = c->ddetr.encoder_heads, .decoder_heads = c->ddetr.decoder_heads,
		.encoder_points = c->ddetr.encoder_n_points, .decoder_points = c->ddetr.decoder_n_points,
		.encoder_ffn = c->ddetr.encoder_ffn_dim, .decoder_ffn = c->ddetr.decoder_ffn_dim,
		.num_queries = c->ddetr.two_stage_num_proposals, .bbox_hidden = c->ddetr.box_head_width,
		.grid = c->vision.patch_size > 0 ? 448 / c->vision.patch_size : 0,
	};
	groma_llama_config lc = {
		.hidden = c->llm.hidden_size, .layers = c->llm.num_layers, .heads = c->llm.num_heads,
		.kv_heads = c->llm.num_kv_heads, .intermediate = c->llm.intermediate_size,
		.vocab = c->llm.vocab_size, .extra_vocab = c->num_new_token,
		.rms_eps = (float) c->llm.rms_norm_eps, .rope_theta = (float) c->llm.rope_theta,
	};

	if (c->max_region_num < 1 || c->max_region_num > 100)
		return groma_error(GROMA_ERR_UNSUPPORTED, "max_region_num %d: the vocabulary has region tokens <r0>..<r99> only",
						   c->max_region_num);
	if (c->ddetr.num_feature_levels != 1 || !c->ddetr.two_stage || !c->ddetr.with_box_refine)
		return groma_error(GROMA_ERR_UNSUPPORTED,
						   "the region proposer must be two-stage with box refinement and one feature level, as in Groma");
	GROMA_TRY(groma_dinov2_build(&m->vision, &vc, &m->src, "perceiver.vis_encoder.", &m->weights));
	GROMA_TRY(groma_bridge_build(&m->bridge, c->vision.hidden_size, c->llm.hidden_size, &m->src, &m->weights));
	GROMA_TRY(groma_proposer_build(&m->proposer, &pc, &m->src, &m->weights));
	GROMA_TRY(groma_region_encoder_build(&m->region, c->vision.hidden_size, &m->src, &m->weights));
	if (pc.grid > 0)
		GROMA_TRY(groma_region_encoder_make_coords(&m->region, pc.grid, &m->weights));
	GROMA_TRY(groma_llama_build(&m->llm, &lc, &m->src, &m->weights));
	for (int i = 0; i < GROMA_VISION_GRAPH_STAGES; i++)
		groma_graph_cache_init(&m->vision_graphs[i], "GROMA_VISION_GRAPHS");
	m->vision.graphs = &m->vision_graphs[0];
	m->proposer.graphs = &m->vision_graphs[1];
	m->region.graphs = &m->vision_graphs[2];
	m->bridge.graphs = &m->vision_graphs[3];
	m->select.nms_threshold = (float) c->nms_thres;
	m->select.score_threshold = (float) c->box_score_thres;
	m->select.max_regions = c->max_region_num;
	return groma_ok();
}

/* Sizes a weight arena: each weight at its placed width, plus the largest f32 staging copy. */
typedef struct device_sizer
{
	groma_dtype matrix_dtype;
	groma_device device;
	size_t		total;
	size_t		largest;		/* bytes of the largest weight as f32 */
} device_sizer;

/* Adds one weight of shape[ndim] to the sizer; GROMA_ERR_LIMIT naming it when the size overflows. */
static groma_status
size_weight(device_sizer *z, const char *name, int ndim, const int64_t *shape)
{
	size_t		f32;
	int64_t		numel = 1;

	for (int d = 0; d < ndim; d++)
		numel *= shape[d];
	/* 64 MiB of tables and the largest staging copy are added later: keep room for them. */
	if ((uint64_t) numel > (SIZE_MAX / 4 - (64u << 20) - 2 * GROMA_ARENA_ALIGN - z->total) / sizeof(float) / 2)
		return groma_error(GROMA_ERR_LIMIT, "tensor \"%s\" of %lld elements overflows the size of the weight arena",
						   name, (long long) numel);
	f32 = (size_t) numel * sizeof(float);
	z->total += (size_t) placed_bytes(groma_placed_dtype(z->matrix_dtype, z->device, name, ndim), (uint64_t) numel,
									  ndim > 0 ? (uint64_t) shape[0] : 1);
	if (f32 > z->largest)
		z->largest = f32;
	return groma_ok();
}

/* Bytes a device weight arena needs: every weight as placed, staging room and derived tables. */
static size_t
device_sizer_bytes(const device_sizer *z)
{
	return z->total + z->largest + GROMA_ARENA_ALIGN + (64u << 20);
}

/* Builds m's networks into its weight arena (on device) and, on the CPU, the derived Winograd weights. */
static groma_status
build_into(groma_model *m, groma_device device, size_t weight_bytes)
{
	GROMA_TRY(groma_arena_init_on(&m->weights, device, weight_bytes));
	GROMA_TRY(groma_model_build(m));
	if (device != GROMA_DEVICE_CPU)
		return groma_ok();
	GROMA_TRY(groma_arena_init(&m->derived, groma_region_encoder_cpu_bytes(&m->region)));
	return groma_region_encoder_prepare_cpu(&m->region, &m->derived);
}

/* Fails unless matrix_dtype is f32 or i8, or bf16/f16 for a model on the GPU. */
static groma_status
check_matrix_dtype(groma_device device, groma_dtype matrix_dtype)
{
	if (matrix_dtype == GROMA_F32 || matrix_dtype == GROMA_I8)
		return groma_ok();
	if (matrix_dtype != GROMA_BF16 && matrix_dtype != GROMA_F16)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "weights can be f32, bf16, f16 or i8, not %s",
						   groma_dtype_name(matrix_dtype));
	if (device == GROMA_DEVICE_CPU)
		return groma_error(GROMA_ERR_UNSUPPORTED, "%s weights need the GPU: the CPU computes in f32",
						   groma_dtype_name(matrix_dtype));
	return groma_ok();
}

/* Loads the model in dir for the CPU; see groma_model.h. */
groma_status
groma_model_load(const char *dir, groma_model **out)
{
	return groma_model_load_on(dir, GROMA_DEVICE_CPU, GROMA_F32, out);
}

/* Loads the model in dir with its weights on device; see groma_model.h. */
groma_status
groma_model_load_on(const char *dir, groma_device device, groma_dtype matrix_dtype, groma_model **out)
{
	groma_model *m = calloc(1, sizeof(*m));
	char		path[4096];
	groma_status st;

	*out = NULL;
	if (m == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate the model");
	st = check_matrix_dtype(device, matrix_dtype);
	if (st.code != GROMA_OK)
	{
		free(m);
		return st;
	}
	snprintf(path, sizeof(path), "%s/config.json", dir);
	st = groma_model_config_load(path, &m->cfg);
	if (st.code == GROMA_OK)
		st = groma_checkpoint_open(dir, &m->ckpt);
	if (st.code == GROMA_OK)
		st = groma_model_config_widths_from_checkpoint(&m->cfg, m->ckpt);
	if (st.code == GROMA_OK)
	{
		groma_validation_report report = {0};

		st = groma_checkpoint_validate(m->ckpt, &m->cfg, &report);
		m->unused_tensors = report.unused_count;
		groma_validation_report_free(&report);
	}
	if (st.code == GROMA_OK)
	{
		device_sizer z = {matrix_dtype, device, 0, 0};
		size_t		weight_bytes;

		/* on the CPU f32 weights stay mapped and only converted copies need room */
		for (size_t i = 0; device != GROMA_DEVICE_CPU && st.code == GROMA_OK && i < groma_checkpoint_count(m->ckpt); i++)
		{
			const groma_ckpt_tensor *t = groma_checkpoint_tensor_at(m->ckpt, i);

			st = size_weight(&z, t->name, t->ndim, t->shape);
		}
		weight_bytes = device_sizer_bytes(&z);
		m->src = groma_weight_source_checkpoint(m->ckpt);
		m->src.matrix_dtype = matrix_dtype;
		if (st.code == GROMA_OK && device == GROMA_DEVICE_CPU)
			st = copies_size(m->ckpt, matrix_dtype, &weight_bytes);
		if (st.code == GROMA_OK)
			st = build_into(m, device, weight_bytes);
	}
	if (st.code != GROMA_OK)
	{
		groma_model_free(m);
		return st;
	}
	*out = m;
	return groma_ok();
}

/* Builds a model with random weights; see groma_model.h. */
groma_status
groma_model_random(const groma_model_config *cfg, groma_device device, groma_dtype matrix_dtype, groma_model **out)
{
	groma_model *m = calloc(1, sizeof(*m));
	groma_random_weights rw = {0};
	groma_status st;

	*out = NULL;
	if (m == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate the model");
	m->cfg = *cfg;
	st = check_matrix_dtype(device, matrix_dtype);
	if (st.code == GROMA_OK)
		st = groma_weight_source_random(&m->cfg, &rw, &m->src);
	m->src.matrix_dtype = matrix_dtype;
	if (st.code == GROMA_OK)
	{
		device_sizer z = {matrix_dtype, device, 0, 0};

		for (size_t i = 0; i < rw.expected.count && st.code == GROMA_OK; i++)
			st = size_weight(&z, rw.expected.items[i].name, rw.expected.items[i].ndim, rw.expected.items[i].shape);
		if (st.code == GROMA_OK)
			st = build_into(m, device, device_sizer_bytes(&z));
	}
	groma_random_weights_free(&rw);
	m->src = (groma_weight_source) {0};
	if (st.code != GROMA_OK)
	{
		groma_model_free(m);
		return st;
	}
	*out = m;
	return groma_ok();
}

/* Frees a model; safe on NULL. */
void
groma_model_free(groma_model *m)
{
	if (m == NULL)
		return;
	groma_llama_free(&m->llm);	/* the recordings first: they point into the arenas */
	for (int i = 0; i < GROMA_VISION_GRAPH_STAGES; i++)
		groma_graph_cache_clear(&m->vision_graphs[i]);
	groma_arena_free(&m->weights);
	groma_arena_free(&m->derived);
	groma_checkpoint_close(m->ckpt);
	free(m);
}
