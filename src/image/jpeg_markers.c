/*
 * jpeg_markers.c - a bounds-checked walk over a JPEG stream's marker segments.
 */
#include "jpeg_markers.h"

#include <string.h>

#define MARKER_SOI 0xD8
#define MARKER_EOI 0xD9
#define MARKER_SOS 0xDA
#define MARKER_TEM 0x01

/* Returns true for the frame markers SOF0..SOF15 (not DHT, JPG or DAC). */
static bool
is_sof_marker(int m)
{
	return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
}

/* Returns a failure naming the format of well-known non-JPEG signatures. */
static groma_status
not_jpeg_error(const uint8_t *data, size_t len)
{
	if (len == 0)
		return groma_error(GROMA_ERR_NOT_JPEG, "image data is empty");
	if (len >= 8 && memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0)
		return groma_error(GROMA_ERR_NOT_JPEG, "image data is a PNG file, not a JPEG");
	if (len >= 6 && (memcmp(data, "GIF87a", 6) == 0 || memcmp(data, "GIF89a", 6) == 0))
		return groma_error(GROMA_ERR_NOT_JPEG, "image data is a GIF file, not a JPEG");
	if (len >= 12 && memcmp(data, "RIFF", 4) == 0 && memcmp(data + 8, "WEBP", 4) == 0)
		return groma_error(GROMA_ERR_NOT_JPEG, "image data is a WebP file, not a JPEG");
	if (len >= 2 && data[0] == 'B' && data[1] == 'M')
		return groma_error(GROMA_ERR_NOT_JPEG, "image data is a BMP file, not a JPEG");
	if (len < 2 || data[0] != 0xFF || data[1] != MARKER_SOI)
		return groma_error(GROMA_ERR_NOT_JPEG, "image data does not start with a JPEG SOI marker");
	return groma_ok();
}

/*
 * Skips the entropy-coded data that follows an SOS header starting at *pos.
 * Stuffed 0xFF00 bytes, RSTn markers and fill bytes belong to the scan; any
 * other marker ends it.  Leaves *pos on that marker's 0xFF.  Returns
 * GROMA_ERR_TRUNCATED when the data ends first.
 */
static groma_status
skip_entropy_data(const uint8_t *data, size_t len, size_t *pos)
{
	size_t		p = *pos;

	while (p < len)
	{
		const uint8_t *ff = memchr(data + p, 0xFF, len - p);
		uint8_t		next;

		if (ff == NULL)
			break;
		p = (size_t) (ff - data);
		if (p + 1 >= len)
			break;
		next = data[p + 1];
		if (next == 0x00 || (next >= 0xD0 && next <= 0xD7))
			p += 2;
		else if (next == 0xFF)
			p += 1;
		else
		{
			*pos = p;
			return groma_ok();
		}
	}
	return groma_error(GROMA_ERR_TRUNCATED, "JPEG data ends inside a scan (premature end of data)");
}

/* Reads the frame header of an SOF segment whose payload starts at p. */
static groma_status
read_frame_header(const uint8_t *data, size_t p, unsigned seglen, int marker,
				  groma_jpeg_layout *layout)
{
	if (layout->sof_marker != 0)
		return groma_error(GROMA_ERR_CORRUPT, "JPEG data has more than one frame header");
	if (seglen < 8)
		return groma_error(GROMA_ERR_CORRUPT, "JPEG frame header is too short (%u bytes)", seglen);
	layout->sof_marker = marker;
	layout->precision = data[p];
	layout->height = (data[p + 1] << 8) | data[p + 2];
	layout->width = (data[p + 3] << 8) | data[p + 4];
	layout->components = data[p + 5];
	layout->progressive = marker == 0xC2 || marker == 0xC6 || marker == 0xCA || marker == 0xCE;
	layout->lossless = marker == 0xC3 || marker == 0xC7 || marker == 0xCB || marker == 0xCF;
	layout->arithmetic = marker >= 0xC9;
	if (seglen < 8u + 3u * (unsigned) layout->components)
		return groma_error(GROMA_ERR_CORRUPT,
						   "JPEG frame header is too short for %d components", layout->components);
	return groma_ok();
}

/* Walks the marker segments; see jpeg_markers.h for the contract. */
groma_status
groma_jpeg_walk(const uint8_t *data, size_t len, bool header_only,
				int max_scans, groma_jpeg_layout *layout)
{
	size_t		pos = 2;
	groma_status st;

	memset(layout, 0, sizeof(*layout));
	st = not_jpeg_error(data, len);
	if (st.code != GROMA_OK)
		return st;

	for (;;)
	{
		int			marker;
		unsigned	seglen;

		/* Find the next 0xFF, tolerating garbage as libjpeg does, then skip fill bytes. */
		while (pos < len && data[pos] != 0xFF)
			pos++;
		while (pos < len && data[pos] == 0xFF)
			pos++;
		if (pos >= len)
			return groma_error(GROMA_ERR_TRUNCATED,
							   layout->scans == 0 ? "JPEG data ends before the image data starts"
							   : "JPEG data ends without an EOI marker (premature end of data)");
		marker = data[pos++];

		if (marker == MARKER_EOI)
		{
			if (layout->scans == 0)
				return groma_error(GROMA_ERR_CORRUPT, "JPEG data has no scans before EOI");
			layout->has_eoi = true;
			return groma_ok();
		}
		if (marker == MARKER_SOI)
			return groma_error(GROMA_ERR_CORRUPT, "JPEG data has a second SOI marker");
		if (marker == MARKER_TEM || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x00)
			continue;			/* standalone markers carry no length */
		if ((marker >= 0x02 && marker <= 0xBF) || (marker >= 0xF0 && marker <= 0xFD))
			return groma_error(GROMA_ERR_CORRUPT, "JPEG data has a reserved marker 0x%02X", marker);

		if (pos + 2 > len)
			return groma_error(GROMA_ERR_TRUNCATED, "JPEG data ends inside marker 0x%02X", marker);
		seglen = ((unsigned) data[pos] << 8) | data[pos + 1];
		if (seglen < 2)
			return groma_error(GROMA_ERR_CORRUPT, "JPEG marker 0x%02X has a bad length %u", marker, seglen);
		if (pos + seglen > len)
			return groma_error(GROMA_ERR_TRUNCATED, "JPEG data ends inside marker 0x%02X", marker);

		if (is_sof_marker(marker))
		{
			st = read_frame_header(data, pos + 2, seglen, marker, layout);
			if (st.code != GROMA_OK)
				return st;
		}
		pos += seglen;

		if (marker == MARKER_SOS)
		{
			if (layout->sof_marker == 0)
				return groma_error(GROMA_ERR_CORRUPT, "JPEG scan starts before the frame header");
			layout->scans++;
			if (header_only)
				return groma_ok();
			if (layout->scans > max_scans)
				return groma_error(GROMA_ERR_LIMIT, "JPEG data has more than %d scans", max_scans);
			st = skip_entropy_data(data, len, &pos);
			if (st.code != GROMA_OK)
				return st;
		}
	}
}
