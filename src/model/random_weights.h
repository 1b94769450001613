/*
 * random_weights.h - a weight source with no file behind it: every tensor a
 * configuration implies, with random values generated where the weights
 * live (for benchmarks at full size without the 33 GB download).
 */
#ifndef GROMA_RANDOM_WEIGHTS_H
#define GROMA_RANDOM_WEIGHTS_H

#include "../io/model_tensors.h"
#include "weight_source.h"

/* The expected tensors of a configuration, served by name. */
typedef struct groma_random_weights
{
	groma_expected_list expected;
} groma_random_weights;

/*
 * Lists the tensors cfg implies into rw and returns a source over them in
 * *src: find() answers with the shape and no data, which groma_bind fills
 * with groma_fill_random (seeded by the name).  Free rw after building.
 */
groma_status groma_weight_source_random(const groma_model_config *cfg, groma_random_weights *rw,
										groma_weight_source *src);

/* Frees the list; safe on a zeroed one. */
void		groma_random_weights_free(groma_random_weights *rw);

#endif							/* GROMA_RANDOM_WEIGHTS_H */
