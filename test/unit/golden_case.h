/*
 * golden_case.h - reading the golden cases for model parity tests: aligned
 * copies of tensors, tolerances from manifest.json, and a comparison that
 * prints the max absolute and relative error of each stage.
 */
#ifndef GROMA_TEST_GOLDEN_CASE_H
#define GROMA_TEST_GOLDEN_CASE_H

#include <stdbool.h>
#include <stdint.h>

#include "../../src/io/safetensors.h"
#include "../../src/model/groma_model.h"
#include "../../src/text/tokenizer.h"

/* The three golden cases: image file and case name. */
typedef struct golden_case_name
{
	const char *image;
	const char *name;
} golden_case_name;

extern const golden_case_name golden_cases[3];

/* An opened case: the compact file (always) and the full one (when ../shared is present). */
typedef struct golden_case
{
	const char *name;
	groma_st_file *compact;
	groma_st_file *full;		/* NULL when absent */
} golden_case;

/* Opens case name; the test fails when the compact file is missing. */
bool		golden_case_open(const char *name, golden_case *c);

/* Closes both files. */
void		golden_case_close(golden_case *c);

/* Returns true when the compact or the full file holds tensor. */
bool		golden_has(const golden_case *c, const char *tensor);

/* Returns a malloc'd aligned copy of an F32 tensor (from compact, else full), NULL when absent; *numel its size. */
float	   *golden_f32(const golden_case *c, const char *tensor, int64_t *numel);

/* Returns a malloc'd aligned copy of an I64 tensor, NULL when absent. */
int64_t    *golden_i64(const golden_case *c, const char *tensor, int64_t *numel);

/*
 * Compares got[n] with the golden tensor under the manifest's tolerance for
 * it (atol/rtol, or exact), printing "case stage: max abs E, max rel R (n
 * values, tolerance ...)"; fails the test on a violation or a size mismatch.
 * Returns the max abs error (or -1 when the tensor is absent).
 */
double		golden_compare(const golden_case *c, const char *tensor, const float *got, int64_t n);

/* golden_compare of a contiguous tensor on the CPU or a device (copied to the host first). */
double		golden_compare_tensor(const golden_case *c, const char *tensor, const groma_tensor *got);

/* A malloc'd host copy of a contiguous f32 tensor on the CPU or a device (NULL with a failed check). */
float	   *golden_host_copy(const groma_tensor *t);

/* Copies n host floats into the contiguous f32 tensor dst, on the CPU or a device. */
bool		golden_fill_tensor(const float *host, groma_tensor *dst);

/* Checks that n int64 values equal the golden ones exactly, printing the outcome. */
bool		golden_compare_ids(const golden_case *c, const char *tensor, const int64_t *got, int64_t n);

/*
 * Every golden case through the vision stages (DINOv2 to region tokens) of
 * m, and every prompt through its decoder (12 greedy steps), comparing
 * each stage under the manifest's tolerances; m, act and the results may
 * live on the CPU or a device (host: host memory, act itself on the CPU).
 * Shared by the unit tests and build/gpu/test_golden_cuda.
 */
void		golden_vision_parity(const groma_model *m, groma_arena *act, groma_arena *host);
void		golden_llm_parity(const groma_model *m, groma_arena *act);

/*
 * The nine golden requests decoded together (test_decode_batch.c): at most
 * 1, 3 and 8 sequences per step, newcomers joining mid-flight, a KV pool
 * (on act's device) too small for all; each gets its golden greedy ids.
 */
void		golden_decode_batch_parity(const groma_model *m, groma_arena *act);

/* Returns the tiny golden model, loaded once for every test (NULL with a failed check). */
groma_model *golden_tiny_model(void);

/* Returns the tiny model's tokenizer, loaded once for every test (NULL with a failed check). */
groma_tokenizer *golden_tiny_tokenizer(void);

/*
 * Loads a fresh copy of the tiny model's tokenizer from source with the
 * legacy flag forced and no cross-check (free it); NULL with a failed check.
 */
groma_tokenizer *golden_tokenizer_with(groma_tokenizer_source source, groma_tokenizer_legacy legacy);

/* Decodes and preprocesses test/golden/images/<image> into pixels [3, 448, 448]; false with a failed check. */
bool		golden_image_pixels(const char *image, float *pixels);

/* Returns a fragility margin from manifest.json (case, dotted key), or a negative value when absent. */
double		golden_fragility(const char *case_name, const char *key);

#endif							/* GROMA_TEST_GOLDEN_CASE_H */
