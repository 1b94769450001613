/*
 * groma_pg.h - what the PostgreSQL-side files share: GUC variables and the
 * one place that turns a groma_status into an ereport.
 */
#ifndef GROMA_PG_H
#define GROMA_PG_H

#include "../runtime/status.h"
#include "../image/jpeg_decode.h"

/* groma.max_image_pixels */
extern int	groma_max_image_pixels;

/* Returns the JPEG limits in force for this session (from the GUCs). */
groma_jpeg_limits groma_pg_jpeg_limits(void);

/* Raises ERROR for a failed status with an errcode that fits its code; returns on success. */
void		groma_pg_check(groma_status st);

#endif							/* GROMA_PG_H */
