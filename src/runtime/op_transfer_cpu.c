/*
 * op_transfer_cpu.c - filling tensors and moving data between host memory
 * and tensors that may live on the accelerator, so model code never writes
 * through a tensor's data pointer itself.
 */
#include <stdlib.h>
#include <string.h>

#include "cpu_parallel.h"
#include "device_ops.h"
#include "random_hash.h"
#include "op_check.h"
#include "ops.h"

/* t = v everywhere; see ops.h.  On the CPU: a copy from v seen through all-zero strides. */
groma_status
groma_fill(groma_tensor *t, float v)
{
	groma_tensor value;

	if (groma_on_device(t))
		return GROMA_DEVICE_CALL("fill", fill, t, v);
	if (t->dtype != GROMA_F32 || (t->data == NULL && groma_tensor_numel(t) > 0))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "fill: an f32 tensor is needed");
	if (groma_tensor_numel(t) == 0)
		return groma_ok();
	value = groma_tensor_view(&v, GROMA_F32, t->ndim, t->shape);
	for (int d = 0; d < t->ndim; d++)
		value.stride[d] = 0;
	return groma_copy(&value, t);
}

typedef struct random_job
{
	float	   *data;
	uint64_t	seed;
	float		scale;
} random_job;

/* Fills elements [begin, end) of a random fill. */
static void
random_part(void *ctx, int64_t begin, int64_t end, int part)
{
	const random_job *j = ctx;

	for (int64_t i = begin; i < end; i++)
		j->data[i] = groma_random_uniform(j->seed, (uint64_t) i, j->scale);
}

/* Random values; see ops.h. */
groma_status
groma_fill_random(groma_tensor *t, uint64_t seed, float scale)
{
	random_job	j;

	if (groma_on_device(t))
		return GROMA_DEVICE_CALL("fill_random", fill_random, t, seed, scale);
	GROMA_TRY(groma_check_f32("fill_random", "t", t));
	j = (random_job) {t->data, seed, scale};
	groma_parallel_for(groma_tensor_numel(t), 1 << 16, random_part, &j);
	return groma_ok();
}

/* Checks that t is a contiguous f32 (or i32: 4-byte values all the same) tensor with data, for a transfer. */
static groma_status
check_transfer(const char *op, const groma_tensor *t)
{
	if ((t->dtype != GROMA_F32 && t->dtype != GROMA_I32) || (t->data == NULL && groma_tensor_numel(t) > 0) ||
		!groma_tensor_is_contiguous(t))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "%s: a contiguous f32 or i32 tensor is needed", op);
	return groma_ok();
}

/* Host floats into t; see ops.h. */
groma_status
groma_upload(const float *host, groma_tensor *t)
{
	size_t		bytes = groma_tensor_nbytes(t);

	GROMA_TRY(check_transfer("upload", t));
	if (bytes == 0)
		return groma_ok();
	if (groma_on_device(t))
		return GROMA_DEVICE_CALL("upload", to_device, t->data, host, bytes);
	memmove(t->data, host, bytes);
	return groma_ok();
}

/* t into host floats; see ops.h. */
groma_status
groma_download(const groma_tensor *t, float *host)
{
	size_t		bytes = groma_tensor_nbytes(t);

	GROMA_TRY(check_transfer("download", t));
	if (bytes == 0)
		return groma_ok();
	if (groma_on_device(t))
		return GROMA_DEVICE_CALL("download", to_host, host, t->data, bytes);
	memmove(host, t->data, bytes);
	return groma_ok();
}

/* Waits for device's queued work; see ops.h. */
groma_status
groma_synchronize(groma_device device)
{
	if (device == GROMA_DEVICE_CPU)
		return groma_ok();
	return GROMA_DEVICE_CALL("synchronize", synchronize);
}

/* Fills dst through a host tensor of its shape; see ops.h. */
groma_status
groma_fill_from_host(groma_tensor *dst, groma_host_fill_fn fn, void *ctx)
{
	groma_tensor host;
	groma_status st;
	float	   *buf;

	if (!groma_on_device(dst))
		return fn(ctx, dst);
	GROMA_TRY(check_transfer("host round trip", dst));
	buf = malloc(groma_tensor_nbytes(dst) > 0 ? groma_tensor_nbytes(dst) : 1);
	if (buf == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "host round trip: cannot allocate %zu bytes", groma_tensor_nbytes(dst));
	host = groma_tensor_view(buf, GROMA_F32, dst->ndim, dst->shape);
	st = fn(ctx, &host);
	if (st.code == GROMA_OK)
		st = groma_upload(buf, dst);
	free(buf);
	return st;
}

/* A host image of t; see ops.h. */
groma_status
groma_host_image(const groma_tensor *t, groma_tensor *host, float **owned)
{
	*owned = NULL;
	if (!groma_on_device(t) && groma_tensor_is_contiguous(t))
	{
		*host = *t;
		return groma_ok();
	}
	if (t->dtype != GROMA_F32)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "host image: f32 tensors only");
	*owned = malloc(groma_tensor_nbytes(t) > 0 ? groma_tensor_nbytes(t) : 1);
	if (*owned == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "host image: cannot allocate %zu bytes", groma_tensor_nbytes(t));
	*host = groma_tensor_view(*owned, GROMA_F32, t->ndim, t->shape);
	{
		groma_status st = groma_on_device(t) ? groma_download(t, *owned) : groma_copy(t, host);

		if (st.code != GROMA_OK)
		{
			free(*owned);
			*owned = NULL;
		}
		return st;
	}
}
