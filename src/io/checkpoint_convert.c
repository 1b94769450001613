/*
 * checkpoint_convert.c - writing the converted form of a Groma checkpoint.
 */
#include "checkpoint_convert.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint_validate.h"
#include "element_convert.h"
#include "model_config.h"

/* Files copied beside model.safetensors when the source folder has them (config.json is required). */
static const char *const aux_files[] = {
	"config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.model",
	"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
};

/* The tensors being written, in file order, with the checkpoint views behind them. */
typedef struct write_plan
{
	const groma_ckpt_tensor **sources;
	groma_st_tensor *targets;
	int			count;
} write_plan;

/* Produces bytes [offset, offset + len) of target index (a groma_st_fill_fn). */
static groma_status
fill_tensor(int index, size_t offset, void *dst, size_t len, void *arg)
{
	const write_plan *plan = arg;
	size_t		elsize = groma_st_dtype_size(plan->targets[index].dtype);

	return groma_ckpt_tensor_read(plan->sources[index], (int64_t) (offset / elsize),
								  (int64_t) (len / elsize), plan->targets[index].dtype, dst);
}

/* Builds the plan: targets sorted by decreasing element size, stable within a size. */
static groma_status
build_plan(const groma_checkpoint *ckpt, groma_st_dtype float_dtype, write_plan *plan)
{
	size_t		count = groma_checkpoint_count(ckpt);
	static const size_t sizes[] = {8, 4, 2, 1};

	if (count > INT_MAX)
		return groma_error(GROMA_ERR_LIMIT, "\"%s\" has too many tensors", groma_checkpoint_path(ckpt));
	plan->sources = calloc(count ? count : 1, sizeof(*plan->sources));
	plan->targets = calloc(count ? count : 1, sizeof(*plan->targets));
	plan->count = 0;
	if (plan->sources == NULL || plan->targets == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "out of memory planning the conversion");
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
		for (size_t i = 0; i < count; i++)
		{
			const groma_ckpt_tensor *t = groma_checkpoint_tensor_at(ckpt, i);
			groma_st_dtype dtype = groma_convert_is_float(t->dtype) ? float_dtype : t->dtype;
			groma_st_tensor *out = &plan->targets[plan->count];

			if (groma_st_dtype_size(dtype) != sizes[s])
				continue;
			if (t->ndim > GROMA_ST_MAX_DIMS)
				return groma_error(GROMA_ERR_UNSUPPORTED, "tensor \"%s\" has too many dimensions for safetensors",
								   t->name);
			out->name = t->name;
			out->dtype = dtype;
			out->ndim = t->ndim;
			memcpy(out->shape, t->shape, sizeof(int64_t) * (size_t) t->ndim);
			out->nbytes = (size_t) groma_ckpt_tensor_numel(t) * sizes[s];	/* fits: checked at open */
			plan->sources[plan->count++] = t;
		}
	return groma_ok();
}

/* Writes ckpt to path as safetensors; see checkpoint_convert.h. */
groma_status
groma_checkpoint_write_safetensors(const groma_checkpoint *ckpt, const char *path,
								   groma_st_dtype float_dtype)
{
	const char *meta[] = {"format", "pt", "groma.converted_from", groma_checkpoint_path(ckpt),
	"groma.float_dtype", groma_st_dtype_name(float_dtype)};
	write_plan	plan = {0};
	char	   *tmp;
	groma_status st;

	if (float_dtype != GROMA_ST_F32 && float_dtype != GROMA_ST_F16 && float_dtype != GROMA_ST_BF16)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "conversion dtype must be F32, F16 or BF16");
	tmp = malloc(strlen(path) + 5);
	if (tmp == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "out of memory");
	sprintf(tmp, "%s.tmp", path);
	st = build_plan(ckpt, float_dtype, &plan);
	if (st.code == GROMA_OK)
		st = groma_st_write_filled(tmp, plan.targets, plan.count, meta, 3, fill_tensor, &plan);
	if (st.code == GROMA_OK && rename(tmp, path) != 0)
		st = groma_error(GROMA_ERR_IO, "cannot rename \"%s\" to \"%s\": %s", tmp, path, strerror(errno));
	if (st.code != GROMA_OK)
		unlink(tmp);
	free(tmp);
	free(plan.sources);
	free(plan.targets);
	return st;
}

/* Copies src to dst (through dst.tmp and a rename). */
static groma_status
copy_file(const char *src, const char *dst)
{
	char		tmp[PATH_MAX + 8];
	char		buf[1 << 16];
	FILE	   *in = fopen(src, "rb");
	FILE	   *out;
	size_t		n;
	int			ok = 1;

	if (in == NULL)
		return groma_error(GROMA_ERR_IO, "cannot open \"%s\": %s", src, strerror(errno));
	snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
	out = fopen(tmp, "wb");
	if (out == NULL)
	{
		fclose(in);
		return groma_error(GROMA_ERR_IO, "cannot create \"%s\": %s", tmp, strerror(errno));
	}
	while (ok && (n = fread(buf, 1, sizeof(buf), in)) > 0)
		ok = fwrite(buf, 1, n, out) == n;
	ok = ok && !ferror(in);
	fclose(in);
	if (fclose(out) != 0)
		ok = 0;
	if (!ok || rename(tmp, dst) != 0)
	{
		unlink(tmp);
		return groma_error(GROMA_ERR_IO, "cannot copy \"%s\" to \"%s\"", src, dst);
	}
	return groma_ok();
}

/* Copies the config and tokenizer files present in src_dir; config.json must be there. */
static groma_status
copy_aux_files(const char *src_dir, const char *dst_dir, size_t *copied)
{
	for (size_t i = 0; i < sizeof(aux_files) / sizeof(aux_files[0]); i++)
	{
		char		from[PATH_MAX],
					to[PATH_MAX];
		struct stat sb;
		groma_status st;

		snprintf(from, sizeof(from), "%s/%s", src_dir, aux_files[i]);
		snprintf(to, sizeof(to), "%s/%s", dst_dir, aux_files[i]);
		if (stat(from, &sb) != 0 || !S_ISREG(sb.st_mode))
			continue;			/* config.json was loaded already, so it exists */
		st = copy_file(from, to);
		if (st.code != GROMA_OK)
			return st;
		(*copied)++;
	}
	return groma_ok();
}

/* Makes dst_dir when missing; refuses the source's own folder. */
static groma_status
prepare_destination(const char *src_dir, const char *dst_dir)
{
	char		a[PATH_MAX],
				b[PATH_MAX];

	if (mkdir(dst_dir, 0755) != 0 && errno != EEXIST)
		return groma_error(GROMA_ERR_IO, "cannot make \"%s\": %s", dst_dir, strerror(errno));
	if (realpath(src_dir, a) == NULL || realpath(dst_dir, b) == NULL)
		return groma_error(GROMA_ERR_IO, "cannot resolve \"%s\" or \"%s\"", src_dir, dst_dir);
	if (strcmp(a, b) == 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT,
						   "destination \"%s\" is the source folder; choose another one", dst_dir);
	return groma_ok();
}

/* Validates ckpt against the config.json in its folder; *unused receives the count of unused tensors. */
static groma_status
validate_source(const groma_checkpoint *ckpt, size_t *unused)
{
	groma_model_config cfg;
	groma_validation_report report;
	groma_status st = groma_model_config_load(groma_checkpoint_dir(ckpt), &cfg);

	if (st.code == GROMA_OK)
		st = groma_model_config_widths_from_checkpoint(&cfg, ckpt);
	if (st.code == GROMA_OK)
		st = groma_checkpoint_validate(ckpt, &cfg, &report);
	if (st.code != GROMA_OK)
		return st;
	*unused = report.unused_count;
	groma_validation_report_free(&report);
	return groma_ok();
}

/* Converts a checkpoint folder; see checkpoint_convert.h. */
groma_status
groma_checkpoint_convert(const char *src, const char *dst_dir, groma_st_dtype float_dtype,
						 groma_convert_summary *summary)
{
	groma_convert_summary local = {0};
	groma_checkpoint *ckpt = NULL;
	char		path[PATH_MAX];
	groma_status st = groma_checkpoint_open(src, &ckpt);

	if (summary == NULL)
		summary = &local;
	memset(summary, 0, sizeof(*summary));
	if (st.code == GROMA_OK)
		st = validate_source(ckpt, &summary->unused);
	if (st.code == GROMA_OK)
		st = prepare_destination(groma_checkpoint_dir(ckpt), dst_dir);
	if (st.code == GROMA_OK)
	{
		snprintf(path, sizeof(path), "%s/model.safetensors", dst_dir);
		st = groma_checkpoint_write_safetensors(ckpt, path, float_dtype);
	}
	if (st.code == GROMA_OK)
		st = copy_aux_files(groma_checkpoint_dir(ckpt), dst_dir, &summary->files_copied);
	if (st.code == GROMA_OK)
	{
		summary->tensors = groma_checkpoint_count(ckpt);
		for (size_t i = 0; i < summary->tensors; i++)
		{
			const groma_ckpt_tensor *t = groma_checkpoint_tensor_at(ckpt, i);
			groma_st_dtype dtype = groma_convert_is_float(t->dtype) ? float_dtype : t->dtype;

			summary->tensor_bytes += (uint64_t) groma_ckpt_tensor_numel(t) * groma_st_dtype_size(dtype);
		}
	}
	groma_checkpoint_close(ckpt);
	return st;
}
