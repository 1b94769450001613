/*
 * test_checkpoint_convert.c - the converter, run in-process into /tmp: the
 * converted tiny checkpoint holds the same tensors (fp32: bit for bit), bf16
 * rounds to nearest even, views become contiguous copies, integer tensors
 * keep their dtype, and bad sources or destinations are refused.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt_fixture.h"
#include "unit.h"
#include "../../src/io/checkpoint_convert.h"
#include "../../src/io/checkpoint_validate.h"

/* Rounds float to bf16 bits the slow way: the nearer of the two neighbours, ties to the even one. */
static uint16_t
bf16_nearest(float x)
{
	uint32_t	bits;
	uint16_t	lo,
				hi;
	float		flo,
				fhi;
	uint32_t	wide;
	double		dlo,
				dhi;

	memcpy(&bits, &x, 4);
	lo = (uint16_t) (bits >> 16);	/* truncation: same sign, smaller or equal magnitude */
	hi = (uint16_t) (lo + 1);
	wide = (uint32_t) lo << 16;
	memcpy(&flo, &wide, 4);
	wide = (uint32_t) hi << 16;
	memcpy(&fhi, &wide, 4);
	dlo = fabs((double) x - flo);
	dhi = fabs((double) x - fhi);
	if (dlo < dhi)
		return lo;
	if (dhi < dlo)
		return hi;
	return (lo & 1) ? hi : lo;
}

/* Returns true when two files have the same bytes. */
static bool
same_file(const char *a, const char *b)
{
	size_t		la = 0,
				lb = 0;
	uint8_t    *da = unit_read_file(a, &la);
	uint8_t    *db = unit_read_file(b, &lb);
	bool		same = da != NULL && db != NULL && la == lb && memcmp(da, db, la) == 0;

	free(da);
	free(db);
	return same;
}

/* fp32: every tensor identical (name, shape, values) whichever form is loaded; aux files copied. */
UNIT_TEST(test_checkpoint_convert_fp32_round_trip)
{
	static const char *const files[] = {"config.json", "tokenizer.model", "tokenizer.json",
	"tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "generation_config.json",
	"preprocessor_config.json"};
	char		dir[64],
				a[256],
				b[256];
	groma_convert_summary summary;
	groma_checkpoint *orig = NULL,
			   *conv = NULL;
	groma_model_config cfg;
	groma_validation_report report;
	groma_status st;

	if (!fx_temp_dir("conv", dir, sizeof(dir)))
		return;
	st = groma_checkpoint_convert(unit_path("test/golden/tiny-groma"), dir, GROMA_ST_F32, &summary);
	CHECKF(st.code == GROMA_OK, "%s", st.message);
	CHECK(summary.tensors == 299 && summary.files_copied == 8 && summary.unused == 0);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
	{
		snprintf(a, sizeof(a), "%s", unit_path("test/golden/tiny-groma"));
		snprintf(a + strlen(a), sizeof(a) - strlen(a), "/%s", files[i]);
		snprintf(b, sizeof(b), "%s/%s", dir, files[i]);
		CHECKF(same_file(a, b), "%s copied", files[i]);
	}
	CHECK(groma_checkpoint_open(unit_path("test/golden/tiny-groma"), &orig).code == GROMA_OK);
	CHECK(groma_checkpoint_open(dir, &conv).code == GROMA_OK);
	if (orig != NULL && conv != NULL)
	{
		CHECK(groma_checkpoint_format(conv) == GROMA_CKPT_SAFETENSORS &&
			  groma_checkpoint_count(conv) == groma_checkpoint_count(orig));
		for (size_t i = 0; i < groma_checkpoint_count(orig); i++)
		{
			const groma_ckpt_tensor *t = groma_checkpoint_tensor_at(orig, i);
			const groma_ckpt_tensor *u = groma_checkpoint_find(conv, t->name);
			int64_t		n = groma_ckpt_tensor_numel(t);
			float	   *x = malloc((size_t) n * 4),
					   *y = malloc((size_t) n * 4);
			bool		same = u != NULL && u->dtype == GROMA_ST_F32 && u->ndim == t->ndim &&
				groma_ckpt_tensor_is_contiguous(u) && (uintptr_t) u->data % 4 == 0;

			for (int d = 0; same && d < t->ndim; d++)
				same = u->shape[d] == t->shape[d];
			same = same && groma_ckpt_tensor_read(t, 0, n, GROMA_ST_F32, x).code == GROMA_OK &&
				groma_ckpt_tensor_read(u, 0, n, GROMA_ST_F32, y).code == GROMA_OK &&
				memcmp(x, y, (size_t) n * 4) == 0;
			CHECKF(same, "tensor %s differs after conversion", t->name);
			free(x);
			free(y);
		}
		/* The converted folder validates against its (copied) config just as the original does. */
		CHECK(groma_model_config_load(dir, &cfg).code == GROMA_OK &&
			  groma_model_config_widths_from_checkpoint(&cfg, conv).code == GROMA_OK &&
			  groma_checkpoint_validate(conv, &cfg, &report).code == GROMA_OK &&
			  report.unused_count == 0);
		groma_validation_report_free(&report);
	}
	groma_checkpoint_close(orig);
	groma_checkpoint_close(conv);
	/* Converting the converted form again gives the same tensors, byte for byte. */
	{
		char		again[64];
		groma_checkpoint *c1 = NULL,
				   *c2 = NULL;

		if (fx_temp_dir("conv2", again, sizeof(again)))
		{
			CHECK(groma_checkpoint_convert(dir, again, GROMA_ST_F32, NULL).code == GROMA_OK);
			CHECK(groma_checkpoint_open(dir, &c1).code == GROMA_OK &&
				  groma_checkpoint_open(again, &c2).code == GROMA_OK);
			for (size_t i = 0; c1 && c2 && i < groma_checkpoint_count(c1); i++)
			{
				const groma_ckpt_tensor *t = groma_checkpoint_tensor_at(c1, i);
				const groma_ckpt_tensor *u = groma_checkpoint_find(c2, t->name);

				CHECKF(u != NULL && u->storage_bytes == t->storage_bytes &&
					   memcmp(u->data, t->data, t->storage_bytes) == 0, "%s", t->name);
			}
			groma_checkpoint_close(c1);
			groma_checkpoint_close(c2);
			fx_remove_dir(again);
		}
	}
	fx_remove_dir(dir);
}

/* bf16: each element is the nearest bf16 (ties to even) of the fp32 original. */
UNIT_TEST(test_checkpoint_convert_bf16_rounding)
{
	char		dir[64];
	groma_checkpoint *orig = NULL,
			   *conv = NULL;
	size_t		ties = 0;
	groma_status st;

	if (!fx_temp_dir("bf16", dir, sizeof(dir)))
		return;
	st = groma_checkpoint_convert(unit_path("test/golden/tiny-groma"), dir, GROMA_ST_BF16, NULL);
	CHECKF(st.code == GROMA_OK, "%s", st.message);
	CHECK(groma_checkpoint_open(unit_path("test/golden/tiny-groma"), &orig).code == GROMA_OK);
	CHECK(groma_checkpoint_open(dir, &conv).code == GROMA_OK);
	for (size_t i = 0; orig != NULL && conv != NULL && i < groma_checkpoint_count(orig); i++)
	{
		const groma_ckpt_tensor *t = groma_checkpoint_tensor_at(orig, i);
		const groma_ckpt_tensor *u = groma_checkpoint_find(conv, t->name);
		int64_t		n = groma_ckpt_tensor_numel(t);
		float	   *x = malloc((size_t) n * 4);
		uint16_t   *y = malloc((size_t) n * 2);
		int64_t		wrong = 0;

		CHECKF(u != NULL && u->dtype == GROMA_ST_BF16 && (uintptr_t) u->data % 2 == 0, "%s", t->name);
		if (u != NULL && groma_ckpt_tensor_read(t, 0, n, GROMA_ST_F32, x).code == GROMA_OK &&
			groma_ckpt_tensor_read(u, 0, n, GROMA_ST_BF16, y).code == GROMA_OK)
			for (int64_t k = 0; k < n; k++)
			{
				uint32_t	bits;

				memcpy(&bits, &x[k], 4);
				ties += (bits & 0xFFFF) == 0x8000;
				wrong += y[k] != bf16_nearest(x[k]);
			}
		CHECKF(wrong == 0, "%s: %lld elements not nearest-even", t->name, (long long) wrong);
		free(x);
		free(y);
	}
	unit_note("bf16 conversion checked; %zu exact ties among the tiny weights", ties);
	groma_checkpoint_close(orig);
	groma_checkpoint_close(conv);
	fx_remove_dir(dir);
}

/* Views become contiguous copies with the same values; int64 keeps its dtype; every tensor aligned. */
UNIT_TEST(test_checkpoint_convert_views_and_dtypes)
{
	char		dir[64],
				path[128];
	groma_checkpoint *orig = NULL,
			   *conv = NULL;
	groma_status st;

	if (!fx_temp_dir("views", dir, sizeof(dir)))
		return;
	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	CHECK(groma_checkpoint_open(unit_path("test/golden/compact/dtype_ckpt.pt"), &orig).code == GROMA_OK);
	if (orig == NULL)
		return;
	st = groma_checkpoint_write_safetensors(orig, path, GROMA_ST_F16);
	CHECKF(st.code == GROMA_OK, "%s", st.message);
	CHECK(groma_checkpoint_write_safetensors(orig, path, GROMA_ST_I64).code == GROMA_ERR_INVALID_ARGUMENT);
	CHECK(groma_checkpoint_open(path, &conv).code == GROMA_OK);
	for (size_t i = 0; conv != NULL && i < groma_checkpoint_count(orig); i++)
	{
		const groma_ckpt_tensor *t = groma_checkpoint_tensor_at(orig, i);
		const groma_ckpt_tensor *u = groma_checkpoint_find(conv, t->name);
		int64_t		n = groma_ckpt_tensor_numel(t);
		double		x[24],
					y[24];

		CHECKF(u != NULL && groma_ckpt_tensor_is_contiguous(u) && u->ndim == t->ndim &&
			   (uintptr_t) u->data % groma_st_dtype_size(u->dtype) == 0, "%s", t->name);
		if (u == NULL)
			continue;
		if (t->dtype == GROMA_ST_I64)
		{
			CHECK(u->dtype == GROMA_ST_I64 && memcmp(u->data, t->data, 96) == 0);
			continue;
		}
		CHECK(u->dtype == GROMA_ST_F16);
		/* Every value in the golden is exactly representable in f16. */
		CHECK(groma_ckpt_tensor_read(t, 0, n, GROMA_ST_F64, x).code == GROMA_OK &&
			  groma_ckpt_tensor_read(u, 0, n, GROMA_ST_F64, y).code == GROMA_OK &&
			  memcmp(x, y, (size_t) n * sizeof(double)) == 0);
	}
	CHECK(conv == NULL || groma_checkpoint_find(conv, "view_t")->storage !=
		  groma_checkpoint_find(conv, "base")->storage);
	groma_checkpoint_close(orig);
	groma_checkpoint_close(conv);
	fx_remove_dir(dir);
}

/* Refusals: the source folder as destination, a checkpoint its config does not describe, no config. */
UNIT_TEST(test_checkpoint_convert_refusals)
{
	char		dir[64],
				out[64],
				path[256];
	char		real_bin[4096];
	groma_status st;

	st = groma_checkpoint_convert(unit_path("test/golden/tiny-groma"),
								  unit_path("test/golden/tiny-groma"), GROMA_ST_F32, NULL);
	CHECKF(st.code == GROMA_ERR_INVALID_ARGUMENT && strstr(st.message, "source folder"), "%s", st.message);
	if (!fx_temp_dir("src", dir, sizeof(dir)) || !fx_temp_dir("out", out, sizeof(out)))
		return;
	snprintf(path, sizeof(path), "%s/pytorch_model.bin", dir);
	if (realpath(unit_path("test/golden/tiny-groma/pytorch_model.bin"), real_bin) == NULL ||
		symlink(real_bin, path) != 0)
	{
		CHECK(!"symlink");
		return;
	}
	st = groma_checkpoint_convert(dir, out, GROMA_ST_F32, NULL);
	CHECKF(st.code == GROMA_ERR_IO && strstr(st.message, "config.json"), "%s", st.message);
	snprintf(path, sizeof(path), "%s/config.json", dir);
	{
		static const char wrong[] = "{\"llm_cfg\": {\"hidden_size\": 32, \"num_attention_heads\": 4},"
			"\"perceiver_cfg\": {\"ddetr_cfg\": {\"num_feature_levels\": 1}}}";

		CHECK(fx_write_file(path, wrong, strlen(wrong)));
	}
	st = groma_checkpoint_convert(dir, out, GROMA_ST_F32, NULL);
	CHECKF(st.code == GROMA_ERR_FORMAT && strstr(st.message, "has shape"), "%s", st.message);
	snprintf(path, sizeof(path), "%s/model.safetensors", out);
	CHECK(access(path, F_OK) != 0);
	fx_remove_dir(dir);
	fx_remove_dir(out);
}
