/*
 * checkpoint.c - opening a Groma checkpoint in either form and finding its
 * tensors by name.
 */
#include "checkpoint_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Unmaps and frees a checkpoint; safe on NULL. */
void
groma_checkpoint_close(groma_checkpoint *ckpt)
{
	if (ckpt == NULL)
		return;
	groma_zip_close(ckpt->zip);
	groma_st_close(ckpt->st);
	groma_pickle_state_dict_free(&ckpt->state_dict);
	free(ckpt->tensors);
	free(ckpt->by_name);
	free(ckpt->path);
	free(ckpt->dir);
	free(ckpt);
}

/* Returns a malloc'd "dir/name", or NULL when out of memory. */
static char *
join_path(const char *dir, const char *name)
{
	size_t		len = strlen(dir) + 1 + strlen(name) + 1;
	char	   *path = malloc(len);

	if (path != NULL)
		snprintf(path, len, "%s/%s", dir, name);
	return path;
}

/* Returns true when path names an existing regular file. */
static bool
is_file(const char *path)
{
	struct stat sb;

	return path != NULL && stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Orders tensor pointers by name. */
static int
compare_tensor_names(const void *a, const void *b)
{
	return strcmp((*(const groma_ckpt_tensor *const *) a)->name,
				  (*(const groma_ckpt_tensor *const *) b)->name);
}

/* Builds ckpt->by_name; GROMA_ERR_FORMAT when a name appears twice. */
static groma_status
index_names(groma_checkpoint *ckpt)
{
	ckpt->by_name = malloc((ckpt->count ? ckpt->count : 1) * sizeof(*ckpt->by_name));
	if (ckpt->by_name == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "\"%s\": out of memory", ckpt->path);
	for (size_t i = 0; i < ckpt->count; i++)
		ckpt->by_name[i] = &ckpt->tensors[i];
	qsort(ckpt->by_name, ckpt->count, sizeof(*ckpt->by_name), compare_tensor_names);
	for (size_t i = 1; i < ckpt->count; i++)
		if (strcmp(ckpt->by_name[i - 1]->name, ckpt->by_name[i]->name) == 0)
			return groma_error(GROMA_ERR_FORMAT, "\"%s\": tensor \"%s\" appears twice",
							   ckpt->path, ckpt->by_name[i]->name);
	return groma_ok();
}

/* Appends one safetensors tensor to the checkpoint (a groma_st_foreach callback). */
static groma_status
bind_safetensors_tensor(const char *name, void *arg)
{
	groma_checkpoint *ckpt = arg;
	groma_ckpt_tensor *t = &ckpt->tensors[ckpt->count];
	groma_st_tensor st_tensor;
	groma_status st = groma_st_get(ckpt->st, name, &st_tensor);
	int64_t		stride = 1;

	if (st.code != GROMA_OK)
		return st;
	if (st_tensor.ndim > GROMA_CKPT_MAX_DIMS)
		return groma_error(GROMA_ERR_UNSUPPORTED,
						   "\"%s\": tensor \"%s\" has %d dimensions (groma takes at most %d)",
						   ckpt->path, name, st_tensor.ndim, GROMA_CKPT_MAX_DIMS);
	t->name = st_tensor.name;
	t->dtype = st_tensor.dtype;
	t->ndim = st_tensor.ndim;
	for (int d = t->ndim - 1; d >= 0; d--)
	{
		t->shape[d] = st_tensor.shape[d];
		t->stride[d] = stride;
		stride *= st_tensor.shape[d];	/* the reader checked the product fits */
	}
	t->data = st_tensor.data;
	t->storage = st_tensor.data;
	t->storage_bytes = st_tensor.nbytes;
	ckpt->count++;
	return groma_ok();
}

/* Counts tensors (a groma_st_foreach callback). */
static groma_status
count_tensor(const char *name, void *arg)
{
	(*(size_t *) arg)++;
	return groma_ok();
}

/* Opens a safetensors weights file into ckpt. */
static groma_status
open_safetensors(groma_checkpoint *ckpt)
{
	size_t		count = 0;
	groma_status st = groma_st_open(ckpt->path, &ckpt->st);

	if (st.code != GROMA_OK)
		return st;
	(void) groma_st_foreach(ckpt->st, count_tensor, &count);
	ckpt->tensors = calloc(count ? count : 1, sizeof(*ckpt->tensors));
	if (ckpt->tensors == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "\"%s\": out of memory", ckpt->path);
	ckpt->format = GROMA_CKPT_SAFETENSORS;
	return groma_st_foreach(ckpt->st, bind_safetensors_tensor, ckpt);
}

/* Opens a PyTorch zip weights file into ckpt. */
static groma_status
open_torch_zip(groma_checkpoint *ckpt)
{
	groma_status st = groma_zip_open(ckpt->path, &ckpt->zip);

	if (st.code != GROMA_OK)
		return st;
	ckpt->format = GROMA_CKPT_PYTORCH_ZIP;
	return groma_ckpt_bind_torch_zip(ckpt);
}

/* Opens ckpt->path by its first bytes: a zip archive, a legacy torch pickle, or safetensors. */
static groma_status
open_weights_file(groma_checkpoint *ckpt)
{
	uint8_t		magic[4] = {0};
	int			fd = open(ckpt->path, O_RDONLY | O_CLOEXEC);
	ssize_t		got;

	if (fd < 0)
		return groma_error(GROMA_ERR_IO, "cannot open \"%s\": %s", ckpt->path, strerror(errno));
	got = read(fd, magic, sizeof(magic));
	close(fd);
	if (got == 4 && magic[0] == 'P' && magic[1] == 'K')
		return open_torch_zip(ckpt);
	/* Legacy files start with a pickled magic number: PROTO n, LONG1 of 10 bytes. */
	if (got == 4 && magic[0] == 0x80 && magic[2] == 0x8a && magic[3] == 0x0a)
		return groma_error(GROMA_ERR_UNSUPPORTED,
						   "\"%s\" is in the legacy torch.save format (before torch 1.6); re-save it with a newer torch",
						   ckpt->path);
	return open_safetensors(ckpt);
}

/* Sets ckpt->path and ckpt->dir from a folder or a weights file path. */
static groma_status
resolve_paths(const char *path, groma_checkpoint *ckpt)
{
	static const char *const sharded[] = {"model.safetensors.index.json",
	"pytorch_model.bin.index.json"};
	struct stat sb;

	if (stat(path, &sb) != 0)
		return groma_error(GROMA_ERR_IO, "cannot open \"%s\": %s", path, strerror(errno));
	if (!S_ISDIR(sb.st_mode))
	{
		const char *slash = strrchr(path, '/');

		ckpt->path = strdup(path);
		ckpt->dir = slash == NULL ? strdup(".") : strndup(path, slash == path ? 1 : (size_t) (slash - path));
		return ckpt->path && ckpt->dir ? groma_ok() :
			groma_error(GROMA_ERR_NO_MEMORY, "out of memory");
	}
	ckpt->dir = strdup(path);
	if (ckpt->dir == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "out of memory");
	/* The converted form wins: it is what groma-convert made from the original. */
	ckpt->path = join_path(path, "model.safetensors");
	if (is_file(ckpt->path))
		return groma_ok();
	free(ckpt->path);
	ckpt->path = join_path(path, "pytorch_model.bin");
	if (is_file(ckpt->path))
		return groma_ok();
	for (size_t i = 0; i < sizeof(sharded) / sizeof(sharded[0]); i++)
	{
		char	   *index = join_path(path, sharded[i]);
		bool		found = is_file(index);

		free(index);
		if (found)
			return groma_error(GROMA_ERR_UNSUPPORTED,
							   "\"%s\" holds a sharded checkpoint (%s); groma reads one weights file",
							   path, sharded[i]);
	}
	return groma_error(GROMA_ERR_IO, "\"%s\" holds neither model.safetensors nor pytorch_model.bin",
					   path);
}

/* Finishes an open: builds the name index, or closes on failure. */
static groma_status
finish_open(groma_checkpoint *ckpt, groma_status st, groma_checkpoint **out)
{
	if (st.code == GROMA_OK)
		st = index_names(ckpt);
	if (st.code != GROMA_OK)
	{
		groma_checkpoint_close(ckpt);
		return st;
	}
	*out = ckpt;
	return st;
}

/* Opens a checkpoint folder or weights file; see checkpoint.h. */
groma_status
groma_checkpoint_open(const char *path, groma_checkpoint **out)
{
	groma_checkpoint *ckpt = calloc(1, sizeof(*ckpt));
	groma_status st;

	*out = NULL;
	if (ckpt == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate a checkpoint");
	st = resolve_paths(path, ckpt);
	if (st.code == GROMA_OK)
		st = open_weights_file(ckpt);
	return finish_open(ckpt, st, out);
}

/* Opens a PyTorch zip checkpoint in caller memory; see checkpoint.h. */
groma_status
groma_checkpoint_open_memory(const void *data, size_t size, const char *label,
							 groma_checkpoint **out)
{
	groma_checkpoint *ckpt = calloc(1, sizeof(*ckpt));
	groma_status st;

	*out = NULL;
	if (ckpt == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate a checkpoint");
	ckpt->path = strdup(label ? label : "(memory)");
	if (ckpt->path == NULL)
		st = groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate a checkpoint");
	else
		st = groma_zip_open_memory(data, size, ckpt->path, &ckpt->zip);
	ckpt->format = GROMA_CKPT_PYTORCH_ZIP;
	if (st.code == GROMA_OK)
		st = groma_ckpt_bind_torch_zip(ckpt);
	return finish_open(ckpt, st, out);
}

/* Returns which form the weights were read from. */
groma_ckpt_format
groma_checkpoint_format(const groma_checkpoint *ckpt)
{
	return ckpt->format;
}

/* Returns the weights file path or memory label. */
const char *
groma_checkpoint_path(const groma_checkpoint *ckpt)
{
	return ckpt->path;
}

/* Returns the folder holding config.json, or NULL for memory checkpoints. */
const char *
groma_checkpoint_dir(const groma_checkpoint *ckpt)
{
	return ckpt->dir;
}

/* Returns the number of named tensors. */
size_t
groma_checkpoint_count(const groma_checkpoint *ckpt)
{
	return ckpt->count;
}

/* Returns tensor index in file order, or NULL past the end. */
const groma_ckpt_tensor *
groma_checkpoint_tensor_at(const groma_checkpoint *ckpt, size_t index)
{
	return index < ckpt->count ? &ckpt->tensors[index] : NULL;
}

/* Returns the tensor named name (binary search), or NULL. */
const groma_ckpt_tensor *
groma_checkpoint_find(const groma_checkpoint *ckpt, const char *name)
{
	size_t		low = 0,
				high = ckpt->count;

	while (low < high)
	{
		size_t		mid = low + (high - low) / 2;
		const groma_ckpt_tensor *t = ckpt->by_name[mid];
		int			cmp = strcmp(name, t->name);

		if (cmp == 0)
			return t;
		if (cmp < 0)
			high = mid;
		else
			low = mid + 1;
	}
	return NULL;
}

/* Finds a tensor by name; GROMA_ERR_FORMAT naming it when absent. */
groma_status
groma_checkpoint_get(const groma_checkpoint *ckpt, const char *name,
					 const groma_ckpt_tensor **out)
{
	*out = groma_checkpoint_find(ckpt, name);
	if (*out == NULL)
		return groma_error(GROMA_ERR_FORMAT, "\"%s\" has no tensor \"%s\"", ckpt->path, name);
	return groma_ok();
}

/* Maps a checkpoint dtype to the runtime's; false when the runtime has no such dtype. */
static bool
runtime_dtype(groma_st_dtype dtype, groma_dtype *out)
{
	switch (dtype)
	{
		case GROMA_ST_F32:
			*out = GROMA_F32;
			return true;
		case GROMA_ST_F16:
			*out = GROMA_F16;
			return true;
		case GROMA_ST_BF16:
			*out = GROMA_BF16;
			return true;
		case GROMA_ST_I32:
			*out = GROMA_I32;
			return true;
		case GROMA_ST_I64:
			*out = GROMA_I64;
			return true;
		case GROMA_ST_U8:
			*out = GROMA_U8;
			return true;
		default:
			return false;
	}
}

/* Returns a runtime view of a named tensor; see checkpoint.h. */
groma_status
groma_checkpoint_view(const groma_checkpoint *ckpt, const char *name, groma_tensor *out)
{
	const groma_ckpt_tensor *t;
	groma_status st = groma_checkpoint_get(ckpt, name, &t);

	memset(out, 0, sizeof(*out));
	if (st.code != GROMA_OK)
		return st;
	if (t->ndim > GROMA_MAX_DIMS)
		return groma_error(GROMA_ERR_UNSUPPORTED, "\"%s\": tensor \"%s\" has %d dimensions (views take %d)",
						   ckpt->path, name, t->ndim, GROMA_MAX_DIMS);
	if (!runtime_dtype(t->dtype, &out->dtype))
		return groma_error(GROMA_ERR_UNSUPPORTED, "\"%s\": tensor \"%s\" has dtype %s, which the runtime lacks",
						   ckpt->path, name, groma_st_dtype_name(t->dtype));
	if ((uintptr_t) t->data % groma_st_dtype_size(t->dtype) != 0)
		return groma_error(GROMA_ERR_UNSUPPORTED,
						   "\"%s\": tensor \"%s\" is not aligned to its element size; convert the checkpoint with groma-convert",
						   ckpt->path, name);
	out->data = (void *) t->data;	/* read-only mapping: see checkpoint.h */
	out->device = GROMA_DEVICE_CPU;
	out->ndim = t->ndim;
	for (int d = 0; d < t->ndim; d++)
	{
		out->shape[d] = t->shape[d];
		out->stride[d] = t->stride[d];
	}
	return groma_ok();
}

/* Starts kernel read-ahead of the whole weights file. */
void
groma_checkpoint_prefetch(const groma_checkpoint *ckpt)
{
	if (ckpt->zip != NULL)
		groma_zip_prefetch(ckpt->zip, 0, groma_zip_size(ckpt->zip));
	if (ckpt->st != NULL)
		groma_st_prefetch(ckpt->st);
}
