/*
 * test_real_graph.c - the model code builds the real groma-7b-finetune
 * graph from the real hyper-parameters (test/golden/real_config.json)
 * without any weights: a shape-only source serves the names and shapes of
 * test/golden/real_shapes.json, every weight the networks bind must be one
 * of them with the same shape, and every listed tensor must be used except
 * the ones Groma's inference never reads.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "../../src/model/groma_model.h"

/* A shape-only weight source over real_shapes.json that records what was bound. */
typedef struct shape_source
{
	json_t	   *tensors;		/* array of {name, shape} */
	bool	   *used;			/* [count] */
	size_t		count;
	float	   *small[2048];	/* zeroed buffers for tensors whose data is read at build time */
	int			n_small;
} shape_source;

/* Storage standing in for weights that the build only binds, never reads. */
static float never_read[16] __attribute__((aligned(64)));

/* Finds name in real_shapes.json and returns an f32 view of its shape. */
static groma_status
shape_find(void *ctx, const char *name, groma_tensor *out)
{
	shape_source *s = ctx;

	for (size_t i = 0; i < s->count; i++)
	{
		json_t	   *e = json_array_get(s->tensors, i);
		json_t	   *shape = json_object_get(e, "shape");
		int64_t		dims[GROMA_MAX_DIMS];
		int			nd = (int) json_array_size(shape);
		int64_t		numel = 1;

		if (strcmp(json_string_value(json_object_get(e, "name")), name) != 0)
			continue;
		if (nd > GROMA_MAX_DIMS)
			return groma_error(GROMA_ERR_UNSUPPORTED, "%s has %d dimensions", name, nd);
		for (int d = 0; d < nd; d++)
			numel *= dims[d] = json_integer_value(json_array_get(shape, (size_t) d));
		s->used[i] = true;
		/* Position tables are resized, and the level embedding added into one, at build time: real (zero) memory. */
		if ((strstr(name, "position_embeddings") != NULL || strstr(name, "level_embed") != NULL) && s->n_small < 2048)
		{
			s->small[s->n_small] = calloc((size_t) numel, sizeof(float));
			*out = groma_tensor_view(s->small[s->n_small++], GROMA_F32, nd, dims);
		}
		else
			*out = groma_tensor_view(never_read, GROMA_F32, nd, dims);
		return groma_ok();
	}
	return groma_error(GROMA_ERR_FORMAT, "weight \"%s\" is not in real_shapes.json", name);
}

/* Returns true for tensors of the release that Groma's inference never reads. */
static bool
unused_by_inference(const char *name)
{
	static const char *unused[] = {
		"perceiver.vis_encoder.embeddings.mask_token",	/* masked image modelling only */
		"perceiver.vis_encoder.layernorm.",		/* the final LayerNorm is not applied (GROMA.md step 2) */
		"perceiver.ddetr_transformer.decoder.bbox_embed.",	/* aliases of ddetr_transformer.bbox_embed */
		"perceiver.ddetr_transformer.decoder.class_embed_",	/* aliases of the class heads */
	};

	for (size_t i = 0; i < sizeof(unused) / sizeof(unused[0]); i++)
		if (strncmp(name, unused[i], strlen(unused[i])) == 0)
			return true;
	return false;
}

/* The networks build from the real hyper-parameters and bind exactly the real tensors. */
UNIT_TEST(test_real_graph_builds_from_real_shapes)
{
	json_error_t err;
	json_t	   *root = json_load_file(unit_path("test/golden/real_shapes.json"), 0, &err);
	shape_source src = {0};
	groma_model *m = calloc(1, sizeof(*m));
	groma_status st;
	size_t		unused = 0,
				bound = 0;

	CHECKF(root != NULL, "real_shapes.json: %s", err.text);
	if (root == NULL)
		return;
	src.tensors = json_object_get(root, "tensors");
	src.count = json_array_size(src.tensors);
	src.used = calloc(src.count, sizeof(bool));
	CHECK(src.count == 1177);
	st = groma_model_config_load(unit_path("test/golden/real_config.json"), &m->cfg);
	CHECKF(st.code == GROMA_OK, "%s", st.message);
	m->src = (groma_weight_source) {.ctx = &src, .find = shape_find};
	CHECK(groma_arena_init(&m->weights, (size_t) 64 << 20).code == GROMA_OK);
	st = groma_model_build(m);
	CHECKF(st.code == GROMA_OK, "building the real graph: %s", st.message);

	/* the widths the build derived are the real ones */
	CHECK(m->vision.cfg.hidden == 1024 && m->vision.cfg.layers == 24 && m->vision.cfg.heads == 16);
	CHECK(m->vision.pos.shape[0] == 1025 && m->vision.pos.shape[1] == 1024);
	CHECK(m->proposer.cfg.d_model == 256 && m->proposer.cfg.num_queries == 300 &&
		  m->proposer.cfg.encoder_layers == 6 && m->proposer.cfg.decoder_layers == 6);
	CHECK(m->region.embed == 1024 && m->region.pos_hidden == 256 && m->region.mid == 1024 && m->region.out == 4096);
	CHECK(m->llm.cfg.hidden == 4096 && m->llm.cfg.layers == 32 && m->llm.cfg.intermediate == 11008 &&
		  m->llm.cfg.vocab == 32000 && m->llm.cfg.extra_vocab == 114);
	CHECK(m->select.max_regions == 100 && m->select.nms_threshold > 0.59f && m->select.score_threshold > 0.14f);

	for (size_t i = 0; i < src.count; i++)
	{
		const char *name = json_string_value(json_object_get(json_array_get(src.tensors, i), "name"));

		if (src.used[i])
			bound++;
		else if (unused_by_inference(name))
			unused++;
		else
			CHECKF(false, "real tensor %s is never bound by the model code", name);
	}
	unit_note("real graph: %zu tensors bound, %zu unused by inference (mask token, final LayerNorm, decoder aliases)",
			  bound, unused);
	for (int i = 0; i < src.n_small; i++)
		free(src.small[i]);
	free(src.used);
	groma_llama_free(&m->llm);
	groma_arena_free(&m->weights);
	free(m);
	json_decref(root);
}
