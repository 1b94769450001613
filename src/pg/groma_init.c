/*
 * groma_init.c - module load: GUC definitions.
 *
 * Works both when loaded on first use and from shared_preload_libraries.
 * The launcher background worker that runs groma-server is registered here
 * once the server protocol exists; no CUDA is ever initialised in PostgreSQL.
 */
#include "postgres.h"


#include "fmgr.h"
#include "utils/guc.h"

#include "groma_pg.h"

PG_MODULE_MAGIC;

int			groma_max_image_pixels = (int) GROMA_DEFAULT_MAX_IMAGE_PIXELS;

/* The largest value the setting accepts: 16384 x 16384, 768 MiB of RGB decoded in a backend. */
#define GROMA_MAX_IMAGE_PIXELS_LIMIT (16384 * 16384)

void		_PG_init(void);

/* Defines the groma.* settings and reserves the prefix. */
void
_PG_init(void)
{
	DefineCustomIntVariable("groma.max_image_pixels",
							"Largest image, in pixels (width times height), that groma decodes.",
							"Images with more pixels are refused from their header, before any decoding.",
							&groma_max_image_pixels,
							(int) GROMA_DEFAULT_MAX_IMAGE_PIXELS,
							1, GROMA_MAX_IMAGE_PIXELS_LIMIT,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);
	MarkGUCPrefixReserved("groma");
}

/* Returns the JPEG limits in force for this session. */
groma_jpeg_limits
groma_pg_jpeg_limits(void)
{
	groma_jpeg_limits limits = groma_jpeg_default_limits();

	limits.max_pixels = groma_max_image_pixels;
	return limits;
}
