/*
 * test_model_hostile.c - loading copies of the tiny model with one tensor
 * added or reshaped (written as torch.save archives with ckpt_fixture.c):
 * the error must name the tensor that is wrong.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt_fixture.h"
#include "unit.h"
#include "../../src/io/checkpoint.h"
#include "../../src/io/checkpoint_convert.h"
#include "../../src/model/groma_model.h"

#define TINY "test/golden/tiny-groma"

/* Returns the torch storage type name of a dtype (only those the tiny model and these tests use). */
static const char *
storage_type(groma_st_dtype dtype)
{
	switch (dtype)
	{
		case GROMA_ST_F16:
			return "HalfStorage";
		case GROMA_ST_BF16:
			return "BFloat16Storage";
		case GROMA_ST_I64:
			return "LongStorage";
		default:
			return "FloatStorage";
	}
}

/* A tensor replacing (same name) or added to the tiny model's: its record and storage bytes. */
typedef struct edit
{
	fx_tensor	t;
	const void *data;
	size_t		len;
}			edit;

/*
 * Writes dir/pytorch_model.bin (every tiny tensor, contiguous, one storage
 * each, except those edits replace) plus the edits, and copies config.json;
 * false (with a failed check) when anything cannot be written.
 */
static bool
write_model_copy(const char *dir, const edit *edits, int n_edits)
{
	groma_checkpoint *ckpt = NULL;
	size_t		n,
				len;
	fx_tensor  *ts;
	fx_storage *ss;
	char	  (*keys)[16];
	void	  **bufs;
	int			count = 0;
	fx_pickle	p = {0};
	char		path[256];
	uint8_t    *config;
	bool		ok;

	if (groma_checkpoint_open(unit_path(TINY "/pytorch_model.bin"), &ckpt).code != GROMA_OK)
	{
		CHECK(!"the tiny checkpoint opens");
		return false;
	}
	n = groma_checkpoint_count(ckpt) + (size_t) n_edits;
	ts = calloc(n, sizeof(*ts));
	ss = calloc(n, sizeof(*ss));
	keys = calloc(n, sizeof(*keys));
	bufs = calloc(n, sizeof(*bufs));
	for (size_t i = 0; i < groma_checkpoint_count(ckpt); i++)
	{
		const groma_ckpt_tensor *t = groma_checkpoint_tensor_at(ckpt, i);
		int64_t		numel = groma_ckpt_tensor_numel(t);
		int64_t		stride = 1;
		bool		replaced = false;

		for (int e = 0; e < n_edits; e++)
			replaced = replaced || strcmp(edits[e].t.name, t->name) == 0;
		if (replaced)
			continue;
		snprintf(keys[count], sizeof(keys[count]), "%d", count);
		ts[count] = (fx_tensor) {.name = t->name, .storage_type = storage_type(t->dtype), .key = keys[count],
			.storage_numel = numel, .offset = 0, .ndim = t->ndim};
		for (int d = t->ndim - 1; d >= 0; d--)
		{
			ts[count].shape[d] = t->shape[d];
			ts[count].stride[d] = stride;
			stride *= t->shape[d];
		}
		bufs[count] = malloc((size_t) (numel ? numel : 1) * groma_st_dtype_size(t->dtype));
		CHECK(groma_ckpt_tensor_read(t, 0, numel, t->dtype, bufs[count]).code == GROMA_OK);
		ss[count] = (fx_storage) {keys[count], bufs[count], (size_t) numel * groma_st_dtype_size(t->dtype)};
		count++;
	}
	for (int e = 0; e < n_edits; e++, count++)
	{
		snprintf(keys[count], sizeof(keys[count]), "%d", count);
		ts[count] = edits[e].t;
		ts[count].key = keys[count];
		ss[count] = (fx_storage) {keys[count], edits[e].data, edits[e].len};
	}
	fx_pk_state_dict(&p, ts, count);
	snprintf(path, sizeof(path), "%s/pytorch_model.bin", dir);
	ok = fx_write_checkpoint(path, "pytorch_model", &p, ss, count, false);
	fx_pk_free(&p);
	groma_checkpoint_close(ckpt);
	config = unit_read_file(unit_path(TINY "/config.json"), &len);
	snprintf(path, sizeof(path), "%s/config.json", dir);
	ok = ok && config != NULL && fx_write_file(path, config, len);
	free(config);
	for (int i = 0; i < count; i++)
		free(bufs[i]);
	free(bufs);
	free(keys);
	free(ss);
	free(ts);
	CHECK(ok);
	return ok;
}

/* Loads a copy of the tiny model with edits; returns the load's status (the model is freed). */
static groma_status
load_edited(const char *tag, const edit *edits, int n_edits)
{
	char		dir[64];
	groma_model *m = NULL;
	groma_status st = groma_error(GROMA_ERR_IO, "the model copy could not be written");

	if (!fx_temp_dir(tag, dir, sizeof(dir)))
		return st;
	if (write_model_copy(dir, edits, n_edits))
		st = groma_model_load(dir, &m);
	groma_model_free(m);
	fx_remove_dir(dir);
	return st;
}

/* The unchanged copy loads (the helper itself is sound). */
UNIT_TEST(test_model_hostile_copy_loads)
{
	groma_status st = load_edited("copy", NULL, 0);

	CHECKF(st.code == GROMA_OK, "%s", st.message);
}

/*
 * Issue 17 item 3: an unused f16 tensor of about 2^62 elements (stride 0 over
 * one element) made the f32 copy size wrap, and loading failed with "arena
 * full"; the failure must name the tensor.
 */
UNIT_TEST(test_model_hostile_copy_size_overflow)
{
	static const uint16_t one = 0x3c00;
	edit		e = {{"unused.huge", "HalfStorage", NULL, 1, 0, 1, {(INT64_C(1) << 62) - (INT64_C(1) << 22)}, {0}},
	&one, sizeof(one)};
	groma_status st = load_edited("wrap", &e, 1);

	CHECKF(st.code != GROMA_OK && strstr(st.message, "unused.huge") != NULL &&
		   strstr(st.message, "arena") == NULL, "%s", st.message);
}

/*
 * Issue 17 item 2: an unused tensor of shape [2^28] with stride 0 over 4
 * bytes made groma-convert write a 1.1 GB file.  Converting refuses it by
 * name and leaves no output behind.
 */
UNIT_TEST(test_model_hostile_convert_expansion)
{
	static const float one = 1.0f;
	edit		e = {{"unused.expanded", "FloatStorage", NULL, 1, 0, 1, {INT64_C(1) << 28}, {0}},
	&one, sizeof(one)};
	char		src[64],
				dst[64],
				path[128];
	groma_status st = groma_error(GROMA_ERR_IO, "not run");

	if (!fx_temp_dir("expsrc", src, sizeof(src)) || !fx_temp_dir("expdst", dst, sizeof(dst)))
		return;
	if (write_model_copy(src, &e, 1))
		st = groma_checkpoint_convert(src, dst, GROMA_ST_F32, NULL);
	CHECKF(st.code == GROMA_ERR_FORMAT && strstr(st.message, "unused.expanded") != NULL, "%s", st.message);
	snprintf(path, sizeof(path), "%s/model.safetensors", dst);
	CHECK(access(path, F_OK) != 0);
	fx_remove_dir(src);
	fx_remove_dir(dst);
}

/*
 * Issue 17 smaller item: a flatten_linear.weight with the wrong first
 * dimension was reported as pos_embedd.3.weight (the region width was read
 * from it); the error must name flatten_linear.weight itself.
 */
UNIT_TEST(test_model_hostile_flatten_linear_shape)
{
	const char *name = "region_encoder.roi_align.flatten_linear.weight";
	groma_checkpoint *ckpt = NULL;
	const groma_ckpt_tensor *t;
	edit		e = {{0}, NULL, 0};
	float	   *zeros;
	groma_status st;

	if (groma_checkpoint_open(unit_path(TINY "/pytorch_model.bin"), &ckpt).code != GROMA_OK ||
		(t = groma_checkpoint_find(ckpt, name)) == NULL || t->ndim != 2)
	{
		CHECK(!"the tiny checkpoint has a 2-D flatten_linear.weight");
		groma_checkpoint_close(ckpt);
		return;
	}
	e.t = (fx_tensor) {.name = name, .storage_type = "FloatStorage", .storage_numel = (t->shape[0] + 1) * t->shape[1],
	.ndim = 2, .shape = {t->shape[0] + 1, t->shape[1]}, .stride = {t->shape[1], 1}};
	groma_checkpoint_close(ckpt);
	zeros = calloc((size_t) e.t.storage_numel, sizeof(float));
	e.data = zeros;
	e.len = (size_t) e.t.storage_numel * sizeof(float);
	st = load_edited("flat", &e, 1);
	CHECKF(st.code == GROMA_ERR_FORMAT && strstr(st.message, "\"region_encoder.roi_align.flatten_linear.weight\"") != NULL,
		   "%s", st.message);
	free(zeros);
}
