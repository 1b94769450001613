/*
 * test_resize.c - properties of the PIL bicubic weight tables and resizer.
 */
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "../../src/image/resize_bicubic.h"

/* Weights of every output sample sum to about 1.0 in fixed point and stay inside the input. */
UNIT_TEST(test_axis_weights_normalised)
{
	static const int sizes[][2] = {{1000, 448}, {333, 448}, {448, 448}, {1, 448}, {5000, 448}, {449, 448}};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
	{
		groma_resample_axis a;
		groma_status st = groma_resample_axis_build(sizes[i][0], sizes[i][1], &a);

		CHECKF(st.code == GROMA_OK, "%s", st.message);
		if (st.code != GROMA_OK)
			continue;
		for (int o = 0; o < a.out_size; o++)
		{
			int64_t		sum = 0;

			CHECK(a.first[o] >= 0 && a.count[o] > 0 && a.first[o] + a.count[o] <= a.in_size);
			CHECK(a.count[o] <= a.taps);
			for (int k = 0; k < a.count[o]; k++)
				sum += a.weights[(size_t) o * a.taps + k];
			CHECKF(llabs(sum - (1 << GROMA_RESAMPLE_PRECISION_BITS)) <= a.taps,
				   "%d->%d output %d weights sum to %lld", sizes[i][0], sizes[i][1], o, (long long) sum);
		}
		groma_resample_axis_free(&a);
	}
}

/* A constant image stays constant at any size; a same-size resize is the identity. */
UNIT_TEST(test_resize_constant_and_identity)
{
	static const int sizes[][2] = {{7, 3}, {448, 448}, {1000, 20}, {1, 1}};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
	{
		int			w = sizes[i][0],
					h = sizes[i][1];
		uint8_t    *src = malloc((size_t) w * h * 3);
		uint8_t    *dst = malloc(448 * 448 * 3);
		groma_status st;
		int			bad = 0;

		for (size_t k = 0; k < (size_t) w * h * 3; k++)
			src[k] = (uint8_t) (k % 3 == 0 ? 200 : k % 3 == 1 ? 17 : 255);
		st = groma_resize_bicubic_rgb(src, w, h, dst, 448, 448);
		CHECKF(st.code == GROMA_OK, "%s", st.message);
		for (size_t k = 0; k < 448 * 448 * 3; k++)
			bad += dst[k] != (k % 3 == 0 ? 200 : k % 3 == 1 ? 17 : 255);
		CHECKF(bad == 0, "%dx%d constant image changed in %d samples", w, h, bad);
		free(src);
		free(dst);
	}

	{
		groma_resample_axis a;

		CHECK(groma_resample_axis_build(448, 448, &a).code == GROMA_OK);
		for (int o = 0; o < 448; o++)
		{
			int			hit = 0;

			for (int k = 0; k < a.count[o]; k++)
			{
				int32_t		w = a.weights[(size_t) o * a.taps + k];

				if (a.first[o] + k == o)
					hit = w == (1 << GROMA_RESAMPLE_PRECISION_BITS);
				else
					CHECKF(w == 0, "identity axis has weight %d off the diagonal", w);
			}
			CHECKF(hit, "identity axis output %d does not copy its input", o);
		}
		groma_resample_axis_free(&a);
	}
}

/* Bad sizes are refused with a status, not a crash. */
UNIT_TEST(test_resize_rejects_bad_sizes)
{
	groma_resample_axis a;

	CHECK(groma_resample_axis_build(0, 448, &a).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_resample_axis_build(10, -1, &a).code == GROMA_ERR_INVALID_ARGUMENT);
	groma_resample_axis_free(&a);
}
