/*
 * groma_model.h - a loaded Groma model: its configuration, the checkpoint
 * its weights are mapped from, and every network built over them.
 */
#ifndef GROMA_MODEL_H
#define GROMA_MODEL_H

#include "../io/checkpoint.h"
#include "../io/model_config.h"
#include "../runtime/arena.h"
#include "box_select.h"
#include "dinov2.h"
#include "image_tokens.h"
#include "llama.h"
#include "proposer.h"
#include "region_encoder.h"
#include "weight_source.h"

/* Vision stages recorded as CUDA graphs, each with its own cache in groma_model. */
#define GROMA_VISION_GRAPH_STAGES 4

typedef struct groma_model
{
	groma_model_config cfg;
	groma_checkpoint *ckpt;
	groma_weight_source src;
	groma_arena weights;		/* converted copies and resized position tables */
	groma_arena derived;		/* CPU-only derived weights (Winograd forms) */
	groma_dinov2 vision;
	groma_bridge bridge;
	groma_proposer proposer;
	groma_region_encoder region;
	groma_llama llm;
	groma_graph_cache vision_graphs[GROMA_VISION_GRAPH_STAGES];	/* DINOv2, proposer, region fusion, bridge */
	groma_selection_params select;
	size_t		unused_tensors; /* tensors in the checkpoint the model does not use (reported, not fatal) */
} groma_model;

/* Returns a weight source over an opened checkpoint (which must outlive it). */
groma_weight_source groma_weight_source_checkpoint(groma_checkpoint *ckpt);

/*
 * Builds every network of m from m->cfg over m->src, with copies and derived
 * tables in m->weights (all three set by the caller).  Fails on the first
 * missing weight or shape mismatch, naming it.
 */
groma_status groma_model_build(groma_model *m);

/*
 * Loads the model in dir (config.json plus pytorch_model.bin or
 * model.safetensors): validates every expected tensor's name and shape
 * against the configuration (the first mismatch is the error), counts the
 * unused ones, then builds every network; *out is NULL on failure.
 */
groma_status groma_model_load(const char *dir, groma_model **out);

/*
 * groma_model_load with the weights on device: GROMA_DEVICE_CPU as above,
 * GROMA_DEVICE_CUDA uploads every weight once into one device arena (the
 * registered backend's memory): the linear-layer matrices in matrix_dtype
 * (f32, bf16 or f16; 16 bits only on the GPU), everything else f32.
 * Activations must then come from device arenas too.
 */
groma_status groma_model_load_on(const char *dir, groma_device device, groma_dtype matrix_dtype,
								 groma_model **out);

/*
 * Builds the networks cfg describes with random weights (see
 * random_weights.h) on device, for benchmarks at full size; no files.
 */
groma_status groma_model_random(const groma_model_config *cfg, groma_device device, groma_dtype matrix_dtype,
								groma_model **out);

/* Frees a model and unmaps its weights; safe on NULL. */
void		groma_model_free(groma_model *m);

#endif							/* GROMA_MODEL_H */
