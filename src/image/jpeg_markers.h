/*
 * jpeg_markers.h - a bounds-checked walk over a JPEG stream's marker segments.
 *
 * Written by hand because the TurboJPEG 2.1 API in Debian 12 reports neither
 * the sample precision, nor whether a stream is progressive, nor how many
 * scans it has (TurboJPEG 3 added TJPARAM_PRECISION/PROGRESSIVE/SCANLIMIT),
 * and groma must refuse streams with thousands of scans before decoding them.
 * The walk never decodes entropy-coded data; it only finds marker boundaries.
 */
#ifndef GROMA_JPEG_MARKERS_H
#define GROMA_JPEG_MARKERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../runtime/status.h"

/* What the marker walk learned about a stream. */
typedef struct groma_jpeg_layout
{
	int			sof_marker;		/* 0xC0..0xCF frame marker, 0 if none seen */
	int			precision;		/* bits per sample declared by the frame */
	int			width;			/* samples per line declared by the frame */
	int			height;			/* lines declared by the frame (0: DNL) */
	int			components;		/* components declared by the frame */
	bool		progressive;	/* SOF2, SOF6, SOF10 or SOF14 */
	bool		lossless;		/* SOF3, SOF7, SOF11 or SOF15 */
	bool		arithmetic;		/* SOF9..SOF15: arithmetic entropy coding */
	int			scans;			/* SOS markers seen before EOI */
	bool		has_eoi;		/* an EOI marker ends the stream */
} groma_jpeg_layout;

/*
 * Walks the marker segments of data[0..len).  With header_only it stops at
 * the first SOS (everything a header read needs); otherwise it walks every
 * scan up to EOI, counting scans and failing with GROMA_ERR_LIMIT once more
 * than max_scans are seen.  Returns GROMA_ERR_NOT_JPEG when the bytes do not
 * start with SOI (naming PNG/GIF/other signatures it recognises),
 * GROMA_ERR_TRUNCATED when the data ends inside a segment or before EOI, and
 * GROMA_ERR_CORRUPT for impossible structure (duplicate SOI or SOF, SOS
 * before SOF, bad segment lengths).
 */
groma_status groma_jpeg_walk(const uint8_t *data, size_t len, bool header_only,
							 int max_scans, groma_jpeg_layout *layout);

#endif							/* GROMA_JPEG_MARKERS_H */
