/*
 * checkpoint_torch.c - binding a torch.save archive's state dict to views.
 *
 * data.pkl names, for each tensor, a storage key, dtype, shape, strides and
 * offset; the storage's bytes are the stored entry <prefix>/data/<key>.  Each
 * view is checked against its storage before it is handed out.
 */
#include "checkpoint_internal.h"

#include <stdlib.h>
#include <string.h>

/* Storages hold host-order bytes; torch.save on the supported hosts is little-endian. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "groma reads PyTorch checkpoints on little-endian hosts only"
#endif

/* Finds the one "<prefix>/data.pkl" entry; *prefix_len is the length of "<prefix>/". */
static groma_status
find_data_pkl(const groma_zip *zip, const groma_zip_entry **out, size_t *prefix_len)
{
	static const char suffix[] = "/data.pkl";
	size_t		suffix_len = sizeof(suffix) - 1;

	*out = NULL;
	for (size_t i = 0; i < groma_zip_entry_count(zip); i++)
	{
		const groma_zip_entry *e = groma_zip_entry_at(zip, i);
		size_t		len = strlen(e->name);

		/* Only a top-level folder's data.pkl: "prefix/data.pkl" with one slash. */
		if (len <= suffix_len || strcmp(e->name + len - suffix_len, suffix) != 0 ||
			memchr(e->name, '/', len - suffix_len) != NULL)
			continue;
		if (*out != NULL)
			return groma_error(GROMA_ERR_FORMAT, "\"%s\" holds several data.pkl entries",
							   groma_zip_label(zip));
		*out = e;
		*prefix_len = len - suffix_len + 1;
	}
	if (*out == NULL)
		return groma_error(GROMA_ERR_FORMAT,
						   "\"%s\" has no <name>/data.pkl entry (not a torch.save checkpoint)",
						   groma_zip_label(zip));
	return groma_ok();
}

/* Returns a malloc'd "<prefix><middle><tail>" (prefix given by length), or NULL. */
static char *
entry_name(const char *prefix, size_t prefix_len, const char *middle, const char *tail)
{
	size_t		middle_len = strlen(middle),
				tail_len = strlen(tail);
	char	   *name = malloc(prefix_len + middle_len + tail_len + 1);

	if (name != NULL)
	{
		memcpy(name, prefix, prefix_len);
		memcpy(name + prefix_len, middle, middle_len);
		memcpy(name + prefix_len + middle_len, tail, tail_len + 1);
	}
	return name;
}

/* Refuses archives whose <prefix>/byteorder says big-endian (absent means little, as torch < 1.10 wrote). */
static groma_status
check_byteorder(const groma_zip *zip, const char *prefix, size_t prefix_len)
{
	char	   *name = entry_name(prefix, prefix_len, "byteorder", "");
	const groma_zip_entry *e;
	const uint8_t *data;
	uint64_t	size;
	groma_status st;

	if (name == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "out of memory");
	e = groma_zip_find(zip, name);
	free(name);
	if (e == NULL)
		return groma_ok();
	st = groma_zip_checked_data(zip, e, &data, &size);
	if (st.code != GROMA_OK)
		return st;
	if (size == 6 && memcmp(data, "little", 6) == 0)
		return groma_ok();
	if (size == 3 && memcmp(data, "big", 3) == 0)
		return groma_error(GROMA_ERR_UNSUPPORTED,
						   "\"%s\" was saved on a big-endian machine; groma reads little-endian checkpoints",
						   groma_zip_label(zip));
	return groma_error(GROMA_ERR_FORMAT, "\"%s\" has an unreadable byteorder entry",
					   groma_zip_label(zip));
}

/*
 * Checks that the view's element count times its element size fits in
 * size_t, that the count is at most storage_numel (a view with more elements
 * than its storage repeats some through a zero stride, which no checkpoint
 * groma reads has and which would let a few stored bytes expand without
 * bound when converted or copied), and that its last element,
 * offset + sum((shape - 1) * stride), lies inside the storage.
 */
static groma_status
check_view_bounds(const char *label, const groma_ckpt_tensor *t, uint64_t storage_numel)
{
	uint64_t	max_elements = SIZE_MAX / groma_st_dtype_size(t->dtype);
	uint64_t	numel = 1,
				last = (uint64_t) t->storage_offset;
	bool		empty = false;

	for (int d = 0; d < t->ndim; d++)
		empty = empty || t->shape[d] == 0;
	for (int d = 0; d < t->ndim && !empty; d++)
	{
		if ((uint64_t) t->shape[d] > max_elements / numel)
			return groma_error(GROMA_ERR_FORMAT,
							   "\"%s\": tensor \"%s\" has a shape whose size overflows size_t",
							   label, t->name);
		numel *= (uint64_t) t->shape[d];
	}
	if (empty)
	{
		if (last > storage_numel)
			return groma_error(GROMA_ERR_FORMAT,
							   "\"%s\": tensor \"%s\" starts past the end of storage \"%s\"",
							   label, t->name, t->storage_key);
		return groma_ok();
	}
	for (int d = 0; d < t->ndim; d++)
	{
		uint64_t	steps = (uint64_t) t->shape[d] - 1;
		uint64_t	stride = (uint64_t) t->stride[d];

		if (stride != 0 && steps > (UINT64_MAX - last) / stride)
			return groma_error(GROMA_ERR_FORMAT,
							   "\"%s\": tensor \"%s\" has strides that overflow", label, t->name);
		last += steps * stride;
	}
	if (last >= storage_numel)
		return groma_error(GROMA_ERR_FORMAT,
						   "\"%s\": tensor \"%s\" reaches element %llu of storage \"%s\", which holds %llu",
						   label, t->name, (unsigned long long) last, t->storage_key,
						   (unsigned long long) storage_numel);
	if (numel > storage_numel)
		return groma_error(GROMA_ERR_FORMAT,
						   "\"%s\": tensor \"%s\" has %llu elements but its storage \"%s\" holds %llu "
						   "(a view repeating elements is refused)",
						   label, t->name, (unsigned long long) numel, t->storage_key,
						   (unsigned long long) storage_numel);
	return groma_ok();
}

/* Binds one pickle record to its storage entry and checks the view. */
static groma_status
bind_tensor(const groma_zip *zip, const char *prefix, size_t prefix_len,
			const groma_pickle_tensor *rec, groma_ckpt_tensor *t)
{
	const char *label = groma_zip_label(zip);
	size_t		elsize = groma_st_dtype_size(rec->dtype);
	char	   *name = entry_name(prefix, prefix_len, "data/", rec->storage_key);
	const groma_zip_entry *e;
	const uint8_t *bytes;
	uint64_t	size;
	groma_status st;

	if (name == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "out of memory");
	e = groma_zip_find(zip, name);
	free(name);
	if (e == NULL)
		return groma_error(GROMA_ERR_FORMAT, "\"%s\": storage \"%s\" of tensor \"%s\" is missing",
						   label, rec->storage_key, rec->name);
	st = groma_zip_stored_data(zip, e, &bytes, &size);
	if (st.code != GROMA_OK)
		return st;
	if ((uint64_t) rec->storage_numel > UINT64_MAX / elsize ||
		(uint64_t) rec->storage_numel * elsize != size)
		return groma_error(GROMA_ERR_FORMAT,
						   "\"%s\": storage \"%s\" of tensor \"%s\" holds %llu bytes, not %lld %s elements",
						   label, rec->storage_key, rec->name, (unsigned long long) size,
						   (long long) rec->storage_numel, groma_st_dtype_name(rec->dtype));
	t->name = rec->name;
	t->dtype = rec->dtype;
	t->ndim = rec->ndim;
	memcpy(t->shape, rec->shape, sizeof(t->shape));
	memcpy(t->stride, rec->stride, sizeof(t->stride));
	t->storage_offset = rec->storage_offset;
	t->storage = bytes;
	t->storage_bytes = size;
	t->storage_key = rec->storage_key;
	st = check_view_bounds(label, t, (uint64_t) rec->storage_numel);
	if (st.code != GROMA_OK)
		return st;
	/* In range: checked above, or an empty view whose offset is at most the storage length. */
	t->data = bytes + (size_t) t->storage_offset * elsize;
	return groma_ok();
}

/* Reads data.pkl and binds every tensor; see checkpoint_internal.h. */
groma_status
groma_ckpt_bind_torch_zip(groma_checkpoint *ckpt)
{
	const groma_zip_entry *pkl;
	const uint8_t *pkl_data;
	uint64_t	pkl_size;
	size_t		prefix_len = 0;
	groma_status st = find_data_pkl(ckpt->zip, &pkl, &prefix_len);

	if (st.code == GROMA_OK)
		st = check_byteorder(ckpt->zip, pkl->name, prefix_len);
	if (st.code == GROMA_OK && pkl->uncompressed_size > GROMA_PICKLE_MAX_BYTES)
		st = groma_error(GROMA_ERR_LIMIT, "\"%s\": data.pkl of %llu bytes exceeds %u MiB",
						 ckpt->path, (unsigned long long) pkl->uncompressed_size,
						 GROMA_PICKLE_MAX_BYTES >> 20);
	if (st.code == GROMA_OK)
		st = groma_zip_checked_data(ckpt->zip, pkl, &pkl_data, &pkl_size);
	if (st.code == GROMA_OK)
		st = groma_pickle_read_state_dict(pkl_data, (size_t) pkl_size, ckpt->path,
										  &ckpt->state_dict);
	if (st.code != GROMA_OK)
		return st;
	ckpt->tensors = calloc(ckpt->state_dict.count ? ckpt->state_dict.count : 1,
						   sizeof(*ckpt->tensors));
	if (ckpt->tensors == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "\"%s\": out of memory", ckpt->path);
	for (size_t i = 0; i < ckpt->state_dict.count; i++)
	{
		st = bind_tensor(ckpt->zip, pkl->name, prefix_len, &ckpt->state_dict.tensors[i],
						 &ckpt->tensors[i]);
		if (st.code != GROMA_OK)
			return st;
		ckpt->count = i + 1;
	}
	return groma_ok();
}
