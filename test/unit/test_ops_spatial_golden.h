/*
 * test_ops_spatial_golden.h - helpers shared by the spatial op tests:
 * aligned copies of golden tensors from test/golden/compact/ops.safetensors,
 * tolerance checks that note the max error, and one stored zip entry.
 */
#ifndef GROMA_TEST_OPS_SPATIAL_GOLDEN_H
#define GROMA_TEST_OPS_SPATIAL_GOLDEN_H

#include <stdint.h>

#include "../../src/io/safetensors.h"

/* Opens the vendored ops golden; NULL (with a failed check) when it cannot. */
groma_st_file *spatial_golden_open(void);

/*
 * Returns a malloc'd copy of F32 tensor name (aligned, unlike the mapping),
 * NULL with a failed check when absent, not F32 or not expect_numel
 * elements (expect_numel < 0: any).
 */
float	   *spatial_golden_f32(const groma_st_file *f, const char *name, int64_t expect_numel);

/* Returns a malloc'd copy of I64 tensor name and its element count in *numel; NULL on failure. */
int64_t    *spatial_golden_i64(const groma_st_file *f, const char *name, int64_t *numel);

/*
 * Checks |got - want| <= atol + rtol·|want| elementwise (NaN only matches
 * NaN, inf only the same inf), notes "label: max abs error E over N values"
 * and fails naming the first violation; returns the max abs error.
 */
double		spatial_expect_close(const char *label, const float *got, const float *want, int64_t n,
								 double atol, double rtol);

/*
 * Returns a malloc'd copy of a stored (uncompressed) entry of a zip file
 * found through its central directory, with its size in *size; NULL with a
 * failed check when absent or compressed.
 */
uint8_t    *spatial_zip_entry(const char *path, const char *entry, size_t *size);

#endif							/* GROMA_TEST_OPS_SPATIAL_GOLDEN_H */
