/*
 * weight_source.c - binding named weights with shape checks.
 */
#include "weight_source.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/cancel.h"
#include "../runtime/op_check.h"
#include "../runtime/ops.h"

/* Matrix weights; see weight_source.h. */
bool
groma_is_matrix_weight(const char *name, int ndim)
{
	static const char *tables[] = {"embed_tokens.", "new_input_embs.", "query_position_embeddings.", "level_embed",
	"mask_token"};
	size_t		len = strlen(name);

	if ((ndim != 2 && ndim != 4) || len < 7 || strcmp(name + len - 7, ".weight") != 0)
		return false;
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		if (strstr(name, tables[i]) != NULL)
			return false;
	return true;
}

/* True for the language model's layer matrices, the ones --weights int8 stores in 8 bits. */
static bool
is_language_layer_matrix(const char *name, int ndim)
{
	return strncmp(name, "llm.model.layers.", 17) == 0 && groma_is_matrix_weight(name, ndim);
}

/* The dtype a weight is placed in; see weight_source.h. */
groma_dtype
groma_placed_dtype(groma_dtype matrix_dtype, groma_device device, const char *name, int ndim)
{
	if (matrix_dtype == GROMA_F32 || !groma_is_matrix_weight(name, ndim))
		return GROMA_F32;
	if (matrix_dtype == GROMA_I8 && is_language_layer_matrix(name, ndim))
		return GROMA_I8;
	if (device == GROMA_DEVICE_CPU)
		return GROMA_F32;
	return matrix_dtype == GROMA_I8 ? GROMA_BF16 : matrix_dtype;
}

/* The dtype a weight gets in copies (f32 without an arena). */
static groma_dtype
placed_dtype(const groma_weight_source *src, const groma_arena *copies, const char *name, int ndim)
{
	if (copies == NULL)
		return GROMA_F32;
	return groma_placed_dtype(src->matrix_dtype, copies->device, name, ndim);
}

/* A weight with no stored data (a random source): random values in copies, seeded by the name. */
static groma_status
bind_random(const char *name, groma_dtype dtype, groma_arena *copies, int ndim, const int64_t *shape,
			groma_tensor *out)
{
	uint64_t	seed = 1469598103934665603ull;	/* FNV-1a of the name */
	groma_status st;

	if (copies == NULL)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "weight \"%s\" has no data and there is no arena for it", name);
	for (const char *c = name; *c; c++)
		seed = (seed ^ (uint8_t) *c) * 1099511628211ull;
	st = groma_arena_tensor(copies, dtype, ndim, shape, out);
	if (st.code == GROMA_OK && dtype == GROMA_F32)
		st = groma_fill_random(out, seed, 0.02f);
	else if (st.code == GROMA_OK)
	{
		/* random f32 in a temporary after the weight, narrowed into it, then given back */
		size_t		mark = copies->used;
		groma_tensor wide;

		st = groma_arena_tensor(copies, GROMA_F32, ndim, shape, &wide);
		if (st.code == GROMA_OK)
			st = groma_fill_random(&wide, seed, 0.02f);
		if (st.code == GROMA_OK)
			st = groma_convert(&wide, out);
		copies->used = mark;
	}
	if (st.code != GROMA_OK)
		return groma_error(st.code, "weight \"%s\": %s", name, st.message);
	return groma_ok();
}

/* *host = stored as a contiguous f32 host tensor: stored itself, or a copy in *owned (the caller frees it). */
static groma_status
host_f32(const groma_tensor *stored, groma_tensor *host, float **owned)
{
	*owned = NULL;
	if (stored->dtype == GROMA_F32)
		return groma_host_image(stored, host, owned);
	GROMA_TRY(groma_widen_weight("load", stored, host));
	*owned = host->data;
	return groma_ok();
}

/*
 * Places a stored weight in copies as dtype: f32 uploaded as it is; a
 * narrower dtype on a device from an f32 temporary after it, narrowed or
 * quantized there; i8 in host memory quantized from the host image.
 */
static groma_status
bind_placed(const char *name, const groma_tensor *stored, groma_dtype dtype, groma_arena *copies, int ndim,
			const int64_t *shape, groma_tensor *out)
{
	groma_tensor host;
	float	   *owned = NULL;
	groma_status st = groma_arena_tensor(copies, dtype, ndim, shape, out);

	if (st.code != GROMA_OK)
		return groma_error(st.code, "weight \"%s\": %s", name, st.message);
	if (dtype != GROMA_F32 && copies->device != GROMA_DEVICE_CPU)
	{
		groma_tensor f32 = *out;
		size_t		mark = copies->used;

		st = groma_arena_tensor(copies, GROMA_F32, ndim, shape, &f32);
		if (st.code == GROMA_OK)
			st = bind_placed(name, stored, GROMA_F32, copies, ndim, shape, &f32);
		if (st.code == GROMA_OK)
			st = groma_convert(&f32, out);
		copies->used = mark;
		return st;
	}
	st = host_f32(stored, &host, &owned);
	if (st.code == GROMA_OK)
		st = dtype == GROMA_F32 ? groma_upload(host.data, out) : groma_convert(&host, out);
	free(owned);
	if (st.code != GROMA_OK)
		return groma_error(st.code, "weight \"%s\": %s", name, st.message);
	return groma_ok();
}

/* Bytes of stored weights bound so far in this process (load progress). */
static uint64_t bound_bytes;

/* Returns the bytes of stored weights bound so far; see weight_source.h. */
uint64_t
groma_weights_bound_bytes(void)
{
	return __atomic_load_n(&bound_bytes, __ATOMIC_RELAXED);
}

/* Binds the weight called name, found as stored; the body of groma_bind. */
static groma_status
bind_named(const groma_weight_source *src, groma_arena *copies, groma_tensor *out, int ndim, const int64_t *shape,
		   const char *name, groma_tensor stored)
{
	char		want[64],
				got[64];
	groma_tensor expect;
	groma_status st;

	expect = groma_tensor_view(NULL, GROMA_F32, ndim, shape);
	if (!groma_tensor_same_shape(&stored, &expect))
		return groma_error(GROMA_ERR_FORMAT, "weight \"%s\" has shape %s, expected %s", name,
						   groma_tensor_shape_str(&stored, got, sizeof(got)),
						   groma_tensor_shape_str(&expect, want, sizeof(want)));
	if (stored.data == NULL)
		return bind_random(name, placed_dtype(src, copies, name, ndim), copies, ndim, shape, out);
	if ((copies != NULL && copies->device != GROMA_DEVICE_CPU) || placed_dtype(src, copies, name, ndim) == GROMA_I8)
		return bind_placed(name, &stored, placed_dtype(src, copies, name, ndim), copies, ndim, shape, out);
	if (stored.dtype == GROMA_F32 && groma_tensor_is_contiguous(&stored) &&
		((uintptr_t) stored.data % sizeof(float)) == 0)
	{
		*out = stored;
		return groma_ok();
	}
	/* Converted (or realigned) copy in the weights arena. */
	st = groma_arena_tensor(copies, GROMA_F32, ndim, shape, out);
	if (st.code != GROMA_OK)
		return groma_error(st.code, "weight \"%s\": %s", name, st.message);
	if (stored.dtype == GROMA_F32 && groma_tensor_is_contiguous(&stored))
	{
		memcpy(out->data, stored.data, groma_tensor_nbytes(out));
		return groma_ok();
	}
	if (stored.dtype == GROMA_F32)
		return groma_copy(&stored, out);
	st = groma_convert(&stored, out);
	if (st.code != GROMA_OK)
		return groma_error(st.code, "weight \"%s\": %s", name, st.message);
	return groma_ok();
}

/* Binds one weight; see weight_source.h. */
groma_status
groma_bind(const groma_weight_source *src, groma_arena *copies, groma_tensor *out,
		   int ndim, const int64_t *shape, const char *fmt,...)
{
	char		name[256];
	groma_tensor stored;
	groma_status st;
	va_list		ap;

	/* a load is stopped between weights when the thread's cancel flag is set (a server shutting down) */
	GROMA_TRY(groma_cancel_check());
	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	st = src->find(src->ctx, name, &stored);
	if (st.code == GROMA_OK)
		st = bind_named(src, copies, out, ndim, shape, name, stored);
	if (st.code == GROMA_OK && stored.data != NULL)
		__atomic_add_fetch(&bound_bytes, (uint64_t) groma_tensor_nbytes(&stored), __ATOMIC_RELAXED);
	return st;
}

/* Finds a tensor in a safetensors file and returns it as a view. */
static groma_status
safetensors_find(void *ctx, const char *name, groma_tensor *out)
{
	groma_st_tensor t;
	groma_status st = groma_st_get(ctx, name, &t);
	groma_dtype dtype;

	if (st.code != GROMA_OK)
		return st;
	switch (t.dtype)
	{
		case GROMA_ST_F32:
			dtype = GROMA_F32;
			break;
		case GROMA_ST_BF16:
			dtype = GROMA_BF16;
			break;
		case GROMA_ST_F16:
			dtype = GROMA_F16;
			break;
		case GROMA_ST_I64:
			dtype = GROMA_I64;
			break;
		case GROMA_ST_I32:
			dtype = GROMA_I32;
			break;
		case GROMA_ST_U8:
			dtype = GROMA_U8;
			break;
		default:
			return groma_error(GROMA_ERR_UNSUPPORTED, "tensor \"%s\" has dtype %s", name,
							   groma_st_dtype_name(t.dtype));
	}
	if (t.ndim > GROMA_MAX_DIMS)
		return groma_error(GROMA_ERR_UNSUPPORTED, "tensor \"%s\" has %d dimensions", name, t.ndim);
	*out = groma_tensor_view((void *) t.data, dtype, t.ndim, t.shape);
	return groma_ok();
}

/* Returns a weight source over an opened safetensors file. */
groma_weight_source
groma_weight_source_safetensors(groma_st_file *file)
{
	groma_weight_source s = {.ctx = file, .find = safetensors_find};

	return s;
}
