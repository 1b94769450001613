/*
 * test_main.c - the list of unit tests and the runner's main().
 * Optional argument: a substring; only tests whose names contain it run.
 */
#include <stdlib.h>
#include <string.h>

#include "unit.h"

UNIT_TEST(test_golden_preprocess_parity);
UNIT_TEST(test_variant_preprocess_parity);
UNIT_TEST(test_not_jpeg_inputs);
UNIT_TEST(test_truncated_jpeg);
UNIT_TEST(test_header_limits);
UNIT_TEST(test_marker_walk_counts_scans);
UNIT_TEST(test_bit_flips_never_crash);
UNIT_TEST(test_axis_weights_normalised);
UNIT_TEST(test_resize_constant_and_identity);
UNIT_TEST(test_resize_rejects_bad_sizes);
UNIT_TEST(test_safetensors_round_trip);
UNIT_TEST(test_safetensors_malformed);

#define T(fn) {#fn, fn}
static const unit_test tests[] = {
	T(test_golden_preprocess_parity),
	T(test_variant_preprocess_parity),
	T(test_not_jpeg_inputs),
	T(test_truncated_jpeg),
	T(test_header_limits),
	T(test_marker_walk_counts_scans),
	T(test_bit_flips_never_crash),
	T(test_axis_weights_normalised),
	T(test_resize_constant_and_identity),
	T(test_resize_rejects_bad_sizes),
	T(test_safetensors_round_trip),
	T(test_safetensors_malformed),
};

/* Runs the (filtered) tests; exit status 1 when any failed. */
int
main(int argc, char **argv)
{
	int			passed = 0,
				failed = 0;

	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
	{
		if (argc > 1 && strstr(tests[i].name, argv[1]) == NULL)
			continue;
		unit_failures = 0;
		tests[i].fn();
		if (unit_failures == 0)
		{
			printf("ok - %s\n", tests[i].name);
			passed++;
		}
		else
		{
			printf("not ok - %s (%d failed checks)\n", tests[i].name, unit_failures);
			failed++;
		}
		fflush(stdout);
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
