/*
 * golden_case.c - golden case files, manifest tolerances and comparisons.
 */
#include "golden_case.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "../../src/image/preprocess.h"
#include "../../src/runtime/ops.h"

const golden_case_name golden_cases[3] = {
	{"extreme_ironing.jpg", "extreme_ironing"},
	{"waterview.jpg", "waterview"},
	{"synthetic_333x251.jpg", "synthetic"},
};

/* Returns the parsed compact manifest (loaded once), or NULL. */
static json_t *
manifest(void)
{
	static json_t *root;
	static bool tried;

	if (!tried)
	{
		json_error_t err;

		tried = true;
		root = json_load_file(unit_path("test/golden/compact/manifest.json"), 0, &err);
		if (root == NULL)
			unit_fail(__FILE__, __LINE__, "cannot read manifest.json: %s", err.text);
	}
	return root;
}

/* Opens a case's compact file and, when present, its full file. */
bool
golden_case_open(const char *name, golden_case *c)
{
	char		path[4096];
	const char *env = getenv("GROMA_SHARED_GOLDEN");
	groma_status st;

	memset(c, 0, sizeof(*c));
	c->name = name;
	snprintf(path, sizeof(path), "%scase_%s.safetensors", unit_path("test/golden/compact/"), name);
	st = groma_st_open(path, &c->compact);
	CHECKF(st.code == GROMA_OK, "%s", st.message);
	if (env && *env)
		snprintf(path, sizeof(path), "%s/cases/case_%s.safetensors", env, name);
	else
		snprintf(path, sizeof(path), "%scase_%s.safetensors", unit_path("../shared/golden/cases/"), name);
	if (groma_st_open(path, &c->full).code != GROMA_OK)
		c->full = NULL;
	return st.code == GROMA_OK;
}

/* Closes both files. */
void
golden_case_close(golden_case *c)
{
	groma_st_close(c->compact);
	groma_st_close(c->full);
	memset(c, 0, sizeof(*c));
}

/* Finds a tensor in compact, else full. */
static bool
find(const golden_case *c, const char *tensor, groma_st_tensor *t)
{
	if (c->compact && groma_st_get(c->compact, tensor, t).code == GROMA_OK)
		return true;
	return c->full && groma_st_get(c->full, tensor, t).code == GROMA_OK;
}

/* Returns true when either file holds tensor. */
bool
golden_has(const golden_case *c, const char *tensor)
{
	groma_st_tensor t;

	return find(c, tensor, &t);
}

/* Returns an aligned copy of an F32 tensor. */
float *
golden_f32(const golden_case *c, const char *tensor, int64_t *numel)
{
	groma_st_tensor t;
	float	   *copy;

	*numel = 0;
	if (!find(c, tensor, &t) || t.dtype != GROMA_ST_F32)
		return NULL;
	copy = malloc(t.nbytes > 0 ? t.nbytes : 1);
	memcpy(copy, t.data, t.nbytes);
	*numel = (int64_t) (t.nbytes / 4);
	return copy;
}

/* Returns an aligned copy of an I64 tensor. */
int64_t *
golden_i64(const golden_case *c, const char *tensor, int64_t *numel)
{
	groma_st_tensor t;
	int64_t    *copy;

	*numel = 0;
	if (!find(c, tensor, &t) || t.dtype != GROMA_ST_I64)
		return NULL;
	copy = malloc(t.nbytes > 0 ? t.nbytes : 1);
	memcpy(copy, t.data, t.nbytes);
	*numel = (int64_t) (t.nbytes / 8);
	return copy;
}

/* Reads the manifest tolerance of a tensor: atol/rtol, or exact (both 0). */
static void
tolerance(const golden_case *c, const char *tensor, double *atol, double *rtol, const char **text)
{
	char		file[128];
	json_t	   *list;
	size_t		i;
	json_t	   *entry;

	*atol = 0;
	*rtol = 0;
	*text = "exact (not in manifest)";
	snprintf(file, sizeof(file), "case_%s.safetensors", c->name);
	list = manifest() ? json_object_get(json_object_get(json_object_get(manifest(), "files"), file), "tensors") : NULL;
	json_array_foreach(list, i, entry)
	{
		const char *name = json_string_value(json_object_get(entry, "name"));
		const char *tol = json_string_value(json_object_get(entry, "tolerance"));

		if (name && tol && strcmp(name, tensor) == 0)
		{
			const char *a = strstr(tol, "atol");
			const char *r = strstr(tol, "rtol");

			*text = tol;
			if (a)
				*atol = strtod(a + 4, NULL);
			if (r)
				*rtol = strtod(r + 4, NULL);
			return;
		}
	}
	/* tensors only in the full case: take the full manifest's rule of thumb for internals */
	*atol = 1e-4;
	*rtol = 1e-4;
	*text = "atol 1e-4, rtol 1e-4 (full-case internal)";
}

/* Compares got with a golden tensor under its manifest tolerance. */
double
golden_compare(const golden_case *c, const char *tensor, const float *got, int64_t n)
{
	int64_t		count,
				bad = 0,
				first = -1;
	float	   *want = golden_f32(c, tensor, &count);
	double		atol,
				rtol,
				max_abs = 0,
				max_rel = 0;
	const char *tol;

	if (want == NULL)
	{
		unit_fail(__FILE__, __LINE__, "%s: golden tensor %s is missing", c->name, tensor);
		return -1;
	}
	tolerance(c, tensor, &atol, &rtol, &tol);
	if (count != n)
	{
		unit_fail(__FILE__, __LINE__, "%s %s: %lld values, golden has %lld", c->name, tensor,
				  (long long) n, (long long) count);
		free(want);
		return -1;
	}
	for (int64_t i = 0; i < n; i++)
	{
		double		d = fabs((double) got[i] - want[i]);

		if (!(d <= atol + rtol * fabs(want[i])) && bad++ == 0)
			first = i;
		if (d > max_abs || isnan(d))
			max_abs = isnan(d) ? INFINITY : d;
		if (fabs(want[i]) > 1e-3 && d / fabs(want[i]) > max_rel)
			max_rel = d / fabs(want[i]);
	}
	unit_note("%-16s %-36s max abs %.2e  max rel %.2e  (%lld values, %s)", c->name, tensor, max_abs, max_rel,
			  (long long) n, tol);
	CHECKF(bad == 0, "%s %s: %lld values outside tolerance, first at %lld (%g vs %g)", c->name, tensor,
		   (long long) bad, (long long) first, first >= 0 ? got[first] : 0.0, first >= 0 ? want[first] : 0.0);
	free(want);
	return max_abs;
}

/* Checks int64 values exactly. */
bool
golden_compare_ids(const golden_case *c, const char *tensor, const int64_t *got, int64_t n)
{
	int64_t		count;
	int64_t    *want = golden_i64(c, tensor, &count);
	bool		same = want != NULL && count == n;

	for (int64_t i = 0; same && i < n; i++)
		same = got[i] == want[i];
	unit_note("%-16s %-36s %s (%lld values)", c->name, tensor, same ? "identical" : "DIFFERENT", (long long) n);
	CHECKF(same, "%s %s: ids differ from the golden ones", c->name, tensor);
	free(want);
	return same;
}

/* Returns a fragility margin, or -1. */
double
golden_fragility(const char *case_name, const char *key)
{
	json_t	   *node = manifest() ? json_object_get(json_object_get(manifest(), "fragility"), case_name) : NULL;
	char		buf[256];
	char	   *save = NULL;

	if (node && json_is_number(json_object_get(node, key)))
		return json_number_value(json_object_get(node, key));	/* keys such as "prompt.gcap.min_top1_top2_margin" */
	snprintf(buf, sizeof(buf), "%s", key);
	for (char *part = strtok_r(buf, ".", &save); part && node; part = strtok_r(NULL, ".", &save))
		node = json_object_get(node, part);
	return json_is_number(node) ? json_number_value(node) : -1.0;
}

/* Returns the tiny golden model, loaded once. */
groma_model *
golden_tiny_model(void)
{
	static groma_model *m;
	static bool tried;

	if (!tried)
	{
		groma_status st = groma_model_load(unit_path("test/golden/tiny-groma"), &m);

		tried = true;
		CHECKF(st.code == GROMA_OK, "loading the tiny model: %s", st.message);
	}
	if (m == NULL)
		unit_fail(__FILE__, __LINE__, "the tiny model is not available");
	return m;
}

/* Returns the tiny model's tokenizer, loaded once. */
groma_tokenizer *
golden_tiny_tokenizer(void)
{
	static groma_tokenizer *tok;
	static bool tried;

	if (!tried)
	{
		groma_status st = groma_tokenizer_load(unit_path("test/golden/tiny-groma"), &tok);

		tried = true;
		CHECKF(st.code == GROMA_OK, "loading the tiny tokenizer: %s", st.message);
	}
	if (tok == NULL)
		unit_fail(__FILE__, __LINE__, "the tiny tokenizer is not available");
	return tok;
}

/* Loads the tiny tokenizer with a forced source and legacy flag. */
groma_tokenizer *
golden_tokenizer_with(groma_tokenizer_source source, groma_tokenizer_legacy legacy)
{
	groma_tokenizer_options o = groma_tokenizer_default_options();
	groma_tokenizer *tok = NULL;
	groma_status st;

	o.source = source;
	o.legacy = legacy;
	o.cross_check = false;
	st = groma_tokenizer_load_with(unit_path("test/golden/tiny-groma"), &o, &tok);
	CHECKF(st.code == GROMA_OK, "load: %s", st.message);
	return tok;
}

/* Decodes and preprocesses a golden image into pixels [3, 448, 448]. */
bool
golden_image_pixels(const char *image, float *pixels)
{
	char		path[4096];
	size_t		len;
	uint8_t    *data;
	int			w,
				h;
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	groma_status st;

	snprintf(path, sizeof(path), "%s%s", unit_path("test/golden/images/"), image);
	data = unit_read_file(path, &len);
	if (data == NULL)
		return false;
	st = groma_preprocess_jpeg(data, len, &limits, NULL, pixels, &w, &h);
	free(data);
	CHECKF(st.code == GROMA_OK, "%s: %s", image, st.message);
	return st.code == GROMA_OK;
}

/* A malloc'd host copy of a contiguous tensor; see golden_case.h. */
float *
golden_host_copy(const groma_tensor *t)
{
	int64_t		n = groma_tensor_numel(t);
	float	   *host = malloc((size_t) (n > 0 ? n : 1) * sizeof(float));
	groma_tensor view;
	groma_status st;

	if (t->dtype != GROMA_F32 || !groma_tensor_is_contiguous(t))
	{
		unit_fail(__FILE__, __LINE__, "a host copy needs a contiguous f32 tensor");
		free(host);
		return NULL;
	}
	if (host == NULL)
	{
		unit_fail(__FILE__, __LINE__, "no memory for a host copy of %lld values", (long long) n);
		return NULL;
	}
	if (t->device == GROMA_DEVICE_CPU)
	{
		memcpy(host, t->data, (size_t) n * sizeof(float));
		return host;
	}
	view = groma_tensor_view(host, GROMA_F32, t->ndim, t->shape);
	st = groma_copy(t, &view);
	if (st.code != GROMA_OK)
	{
		unit_fail(__FILE__, __LINE__, "copying a device tensor to the host: %s", st.message);
		free(host);
		return NULL;
	}
	return host;
}

/* Copies host floats into dst; see golden_case.h. */
bool
golden_fill_tensor(const float *host, groma_tensor *dst)
{
	groma_tensor view = groma_tensor_view((void *) host, GROMA_F32, dst->ndim, dst->shape);
	groma_status st;

	if (dst->dtype != GROMA_F32 || !groma_tensor_is_contiguous(dst))
	{
		unit_fail(__FILE__, __LINE__, "filling needs a contiguous f32 tensor");
		return false;
	}
	if (dst->device == GROMA_DEVICE_CPU)
	{
		memcpy(dst->data, host, (size_t) groma_tensor_numel(dst) * sizeof(float));
		return true;
	}
	st = groma_copy(&view, dst);
	CHECKF(st.code == GROMA_OK, "copying host values to the device: %s", st.message);
	return st.code == GROMA_OK;
}

/* golden_compare of a tensor anywhere; see golden_case.h. */
double
golden_compare_tensor(const golden_case *c, const char *tensor, const groma_tensor *got)
{
	float	   *host;
	double		err;

	if (got->device == GROMA_DEVICE_CPU)
		return golden_compare(c, tensor, got->data, groma_tensor_numel(got));
	host = golden_host_copy(got);
	if (host == NULL)
		return -1;
	err = golden_compare(c, tensor, host, groma_tensor_numel(got));
	free(host);
	return err;
}
