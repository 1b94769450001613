/*
 * test_jpeg_work.c - issue 17 item 5: the decoding work a JPEG may ask for
 * is bounded before decoding (scans x pixels), and a decode in progress
 * stops when the calling thread's cancel flag is set.  The hostile streams
 * are cut from test/fixtures/many_scans.jpg (16x16, 3000 scans) here.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"
#include "../../src/image/jpeg_decode.h"
#include "../../src/runtime/cancel.h"

/* Returns the offset of the next marker at or after pos (0xFF then neither 0x00, 0xFF nor RSTn), or len. */
static size_t
next_marker(const uint8_t *d, size_t len, size_t pos)
{
	for (; pos + 1 < len; pos++)
		if (d[pos] == 0xFF && d[pos + 1] != 0x00 && d[pos + 1] != 0xFF &&
			!(d[pos + 1] >= 0xD0 && d[pos + 1] <= 0xD7))
			return pos;
	return len;
}

/*
 * Returns a malloc'd copy of many_scans.jpg with its frame set to width x
 * height and only its first scans scans, then EOI (*len: its size); NULL
 * with a failed check when the fixture cannot be read or cut.
 */
static uint8_t *
cut_many_scans(int width, int height, int scans, size_t *len)
{
	size_t		n,
				pos = 2,
				out = 0;
	uint8_t    *d = unit_read_file(unit_path("test/fixtures/many_scans.jpg"), &n);
	int			seen = 0;

	while (d != NULL && pos + 4 <= n && seen <= scans)
	{
		int			marker = d[pos + 1];
		size_t		seg = ((size_t) d[pos + 2] << 8 | d[pos + 3]) + 2;

		if (marker == 0xD9)
			break;
		if (marker == 0xC2)
		{
			d[pos + 5] = (uint8_t) (height >> 8);
			d[pos + 6] = (uint8_t) height;
			d[pos + 7] = (uint8_t) (width >> 8);
			d[pos + 8] = (uint8_t) width;
		}
		if (marker == 0xDA && ++seen > scans)
			break;
		out = marker == 0xDA ? next_marker(d, n, pos + seg) : pos + seg;
		pos = out;
	}
	if (d == NULL || seen < scans || out + 2 > n)
	{
		CHECKF(0, "many_scans.jpg could not be cut to %d scans", scans);
		free(d);
		return NULL;
	}
	d[out] = 0xFF;
	d[out + 1] = 0xD9;
	*len = out + 2;
	return d;
}

/* 450 scans over 7000x7000 (each under its own limit) are refused from the markers, before decoding. */
UNIT_TEST(test_jpeg_scan_work_budget)
{
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	groma_rgb_image img;
	groma_status st;
	size_t		len = 0;
	uint8_t    *data = cut_many_scans(7000, 7000, 450, &len);

	if (data == NULL)
		return;
	st = groma_jpeg_decode_rgb(data, len, &limits, &img);
	CHECKF(st.code == GROMA_ERR_LIMIT && strstr(st.message, "450 scans") != NULL && img.pixels == NULL,
		   "%s: %s", groma_status_code_name(st.code), st.message);
	groma_rgb_image_free(&img);
	free(data);
	/* The same 450 scans over the fixture's own 16x16 frame are cheap and decode. */
	data = cut_many_scans(16, 16, 450, &len);
	if (data == NULL)
		return;
	st = groma_jpeg_decode_rgb(data, len, &limits, &img);
	CHECKF(st.code == GROMA_OK && img.width == 16 && img.height == 16, "16x16: %s", st.message);
	groma_rgb_image_free(&img);
	free(data);
}

/* Returns a monotonic clock reading in seconds. */
static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A flag set when set_after's delay has passed (a pthread start routine). */
static void *
set_after(void *arg)
{
	usleep(50 * 1000);
	__atomic_store_n((volatile int *) arg, 1, __ATOMIC_RELAXED);
	return NULL;
}

/* A decode stops with GROMA_ERR_CANCELLED when the thread's cancel flag is set, before or during it. */
UNIT_TEST(test_jpeg_decode_cancelled)
{
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	groma_rgb_image img;
	volatile int flag = 1;
	groma_status st;
	size_t		len = 0;
	uint8_t    *data = unit_read_file(unit_path("test/golden/images/extreme_ironing.jpg"), &len);
	pthread_t	thread;
	double		t0;

	if (data == NULL)
		return;
	/* set before: nothing is decoded */
	groma_cancel_watch(&flag);
	st = groma_jpeg_decode_rgb(data, len, &limits, &img);
	CHECKF(st.code == GROMA_ERR_CANCELLED && img.pixels == NULL, "flag set: %s", st.message);
	flag = 0;
	st = groma_jpeg_decode_rgb(data, len, &limits, &img);
	CHECKF(st.code == GROMA_OK, "flag clear: %s", st.message);
	groma_rgb_image_free(&img);
	free(data);
	/* set 0.05 s into a decode of seconds (450 scans over 7000x7000, allowed by raised limits) */
	data = cut_many_scans(7000, 7000, 450, &len);
	limits.max_pixels = 1000L * 1000 * 1000;
	if (data != NULL && pthread_create(&thread, NULL, set_after, (void *) &flag) == 0)
	{
		t0 = now_s();
		st = groma_jpeg_decode_rgb(data, len, &limits, &img);
		pthread_join(thread, NULL);
		CHECKF(st.code == GROMA_ERR_CANCELLED && img.pixels == NULL, "flag set during: %s", st.message);
		CHECKF(now_s() - t0 < 3.0, "the decode stopped %.1f s after it started", now_s() - t0);
		groma_rgb_image_free(&img);
	}
	groma_cancel_watch(NULL);
	free(data);
}
