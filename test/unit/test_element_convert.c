/*
 * test_element_convert.c - float to half rounding (checked over every half
 * value and every midpoint between neighbours) and strided conversions.
 */
#include <math.h>
#include <string.h>

#include "unit.h"
#include "../../src/io/element_convert.h"
#include "../../src/runtime/tensor.h"

/* Known values: the largest half, overflow, the smallest subnormal, signed zero, NaN. */
UNIT_TEST(test_convert_f16_known_values)
{
	CHECK(groma_convert_f32_to_f16(1.0f) == 0x3C00);
	CHECK(groma_convert_f32_to_f16(-2.0f) == 0xC000);
	CHECK(groma_convert_f32_to_f16(0.1f) == 0x2E66);
	CHECK(groma_convert_f32_to_f16(65504.0f) == 0x7BFF);
	CHECK(groma_convert_f32_to_f16(65519.99f) == 0x7BFF);
	CHECK(groma_convert_f32_to_f16(65520.0f) == 0x7C00);	/* halfway past the max: to even = inf */
	CHECK(groma_convert_f32_to_f16(1e10f) == 0x7C00 && groma_convert_f32_to_f16(-INFINITY) == 0xFC00);
	CHECK(groma_convert_f32_to_f16(ldexpf(1, -24)) == 0x0001);
	CHECK(groma_convert_f32_to_f16(ldexpf(1, -25)) == 0x0000);	/* tie to even zero */
	CHECK(groma_convert_f32_to_f16(ldexpf(1.5f, -25)) == 0x0001);
	CHECK(groma_convert_f32_to_f16(ldexpf(1, -26)) == 0x0000);
	CHECK(groma_convert_f32_to_f16(-0.0f) == 0x8000);
	CHECK((groma_convert_f32_to_f16(NAN) & 0x7C00) == 0x7C00 && (groma_convert_f32_to_f16(NAN) & 0x3FF) != 0);
}

/* Every finite half survives f16 -> f32 -> f16; every finite midpoint rounds to the even neighbour. */
UNIT_TEST(test_convert_f16_exhaustive)
{
	int			bad_round_trip = 0,
				bad_midpoint = 0,
				bad_near = 0;

	for (uint32_t h = 0; h < 0x7C00; h++)
	{
		float		v = groma_f16_to_f32((uint16_t) h);
		float		next = groma_f16_to_f32((uint16_t) (h + 1));
		float		mid = (v + next) / 2;	/* exact: halves have few mantissa bits */
		uint16_t	even = (h & 1) ? (uint16_t) (h + 1) : (uint16_t) h;

		bad_round_trip += groma_convert_f32_to_f16(v) != h;
		bad_round_trip += groma_convert_f32_to_f16(-v) != (h | 0x8000);
		if (h == 0x7BFF)
			break;				/* the midpoint past 65504 is 65520, checked in known values */
		bad_midpoint += groma_convert_f32_to_f16(mid) != even;
		/* Just below and above the midpoint go to the nearer neighbour. */
		bad_near += groma_convert_f32_to_f16(nextafterf(mid, 0)) != h;
		bad_near += groma_convert_f32_to_f16(nextafterf(mid, INFINITY)) != h + 1;
	}
	CHECKF(bad_round_trip == 0 && bad_midpoint == 0 && bad_near == 0, "%d %d %d", bad_round_trip,
		   bad_midpoint, bad_near);
}

/* Strided, unaligned sources convert element by element; unsupported pairs are reported. */
UNIT_TEST(test_convert_strided_runs)
{
	uint8_t		raw[1 + 6 * 4];
	float		src[6] = {1.5f, -2.25f, 3.0f, 1e-3f, 65536.0f, -0.0f};
	float		back[3];
	uint16_t	half[3],
				bf[3];
	double		wide[3];

	memcpy(raw + 1, src, sizeof(src));	/* unaligned on purpose */
	groma_convert_elements(GROMA_ST_F32, raw + 1, 2, GROMA_ST_F16, half, 3);
	CHECK(half[0] == groma_convert_f32_to_f16(1.5f) && half[1] == groma_convert_f32_to_f16(3.0f) &&
		  half[2] == 0x7C00);
	groma_convert_elements(GROMA_ST_F32, raw + 1, 2, GROMA_ST_BF16, bf, 3);
	CHECK(bf[0] == 0x3FC0 && bf[1] == 0x4040 && bf[2] == 0x4780);
	groma_convert_elements(GROMA_ST_BF16, bf, 1, GROMA_ST_F64, wide, 3);
	CHECK(wide[0] == 1.5 && wide[1] == 3.0 && wide[2] == 65536.0);
	groma_convert_elements(GROMA_ST_F32, raw + 1 + 20, -1, GROMA_ST_F32, back, 3);
	CHECK(signbit(back[0]) && back[0] == 0.0f && back[1] == 65536.0f && back[2] == 1e-3f);
	CHECK(groma_convert_supported(GROMA_ST_I64, GROMA_ST_I64) &&
		  !groma_convert_supported(GROMA_ST_I64, GROMA_ST_F32) &&
		  !groma_convert_supported(GROMA_ST_F32, GROMA_ST_I32) &&
		  groma_convert_supported(GROMA_ST_F64, GROMA_ST_BF16));
}
