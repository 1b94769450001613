/*
 * random_weights.c - the random weight source; see random_weights.h.
 */
#include "random_weights.h"

#include <string.h>

/* Answers a name with its expected shape and no data. */
static groma_status
random_find(void *ctx, const char *name, groma_tensor *out)
{
	const groma_random_weights *rw = ctx;

	for (size_t i = 0; i < rw->expected.count; i++)
	{
		const groma_expected_tensor *e = &rw->expected.items[i];

		if (strcmp(e->name, name) == 0)
		{
			*out = groma_tensor_view(NULL, GROMA_F32, e->ndim, e->shape);
			return groma_ok();
		}
	}
	return groma_error(GROMA_ERR_FORMAT, "weight \"%s\" is not implied by the configuration", name);
}

/* Builds the source; see random_weights.h. */
groma_status
groma_weight_source_random(const groma_model_config *cfg, groma_random_weights *rw, groma_weight_source *src)
{
	memset(rw, 0, sizeof(*rw));
	GROMA_TRY(groma_expected_tensors(cfg, &rw->expected));
	*src = (groma_weight_source) {.ctx = rw, .find = random_find};
	return groma_ok();
}

/* Frees the list; see random_weights.h. */
void
groma_random_weights_free(groma_random_weights *rw)
{
	groma_expected_list_free(&rw->expected);
	memset(rw, 0, sizeof(*rw));
}
