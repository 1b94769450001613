/*
 * arena.c - activation memory: one allocation carved per request.
 */
#include "arena.h"

#include "device_ops.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Bytes of physical memory on this machine (0 when unknown). */
static size_t
physical_memory(void)
{
	long		pages = sysconf(_SC_PHYS_PAGES),
				page = sysconf(_SC_PAGESIZE);

	return pages > 0 && page > 0 ? (size_t) pages * (size_t) page : 0;
}

/* Allocates a CPU arena of size bytes. */
groma_status
groma_arena_init(groma_arena *arena, size_t size)
{
	size_t		ram = physical_memory();

	memset(arena, 0, sizeof(*arena));
	/* overcommit would hand out more than exists and the process would be killed when it is used */
	if (ram > 0 && size > ram)
		return groma_error(GROMA_ERR_NO_MEMORY, "an arena of %.1f GB is more than this machine's %.1f GB of memory",
						   (double) size / 1e9, (double) ram / 1e9);
	size = groma_arena_round(size);
	arena->base = aligned_alloc(GROMA_ARENA_ALIGN, size > 0 ? size : GROMA_ARENA_ALIGN);
	if (arena->base == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate an arena of %zu bytes", size);
	arena->size = size;
	arena->device = GROMA_DEVICE_CPU;
	return groma_ok();
}

/* Allocates an arena in accelerator memory. */
groma_status
groma_device_arena_init(groma_arena *arena, size_t size)
{
	memset(arena, 0, sizeof(*arena));
	if (groma_cuda_ops.alloc == NULL)
		return groma_error(GROMA_ERR_UNSUPPORTED, "no accelerator backend is available");
	size = groma_arena_round(size);
	arena->base = groma_cuda_ops.alloc(size > 0 ? size : GROMA_ARENA_ALIGN);
	if (arena->base == NULL && groma_cuda_ops.lost && groma_cuda_ops.lost())
		return groma_error(GROMA_ERR_DEVICE_LOST, "cannot allocate %zu bytes of device memory: the GPU was lost to a "
						   "sticky error; restart the process", size);
	if (arena->base == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "cannot allocate %zu bytes of device memory", size);
	arena->size = size;
	arena->device = GROMA_DEVICE_CUDA;
	return groma_ok();
}

/* An arena in the memory of device; see arena.h. */
groma_status
groma_arena_init_on(groma_arena *arena, groma_device device, size_t size)
{
	return device == GROMA_DEVICE_CPU ? groma_arena_init(arena, size) : groma_device_arena_init(arena, size);
}

/* Frees the arena's memory (host or device); safe on a zeroed arena. */
void
groma_arena_free(groma_arena *arena)
{
	if (arena->device == GROMA_DEVICE_CUDA && arena->base && groma_cuda_ops.free)
		groma_cuda_ops.free(arena->base);
	else
		free(arena->base);
	memset(arena, 0, sizeof(*arena));
}

/* Forgets every allocation. */
void
groma_arena_reset(groma_arena *arena)
{
	arena->used = 0;
}

/* Returns size bytes aligned to GROMA_ARENA_ALIGN, or NULL when full. */
void *
groma_arena_alloc(groma_arena *arena, size_t size)
{
	size_t		rounded = groma_arena_round(size);
	void	   *p;

	if (rounded < size || rounded > arena->size - arena->used)
		return NULL;
	p = arena->base + arena->used;
	arena->used += rounded;
	if (arena->used > arena->high_water)
		arena->high_water = arena->used;
	return p;
}

/* Carves a contiguous tensor from the arena. */
groma_status
groma_arena_tensor(groma_arena *arena, groma_dtype dtype, int ndim, const int64_t *shape,
				   groma_tensor *out)
{
	size_t		elem = groma_dtype_size(dtype);
	size_t		n = 1;
	groma_tensor t;
	char		buf[64];

	if (ndim < 0 || ndim > GROMA_MAX_DIMS)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "tensor with %d dimensions", ndim);
	/* Check the element count before any stride arithmetic can overflow. */
	for (int d = 0; d < ndim; d++)
	{
		if (shape[d] < 0 || (shape[d] > 0 && n > SIZE_MAX / elem / (size_t) shape[d]))
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "bad tensor shape: dimension %d is %lld",
							   d, (long long) shape[d]);
		n *= (size_t) shape[d];
	}
	t = groma_tensor_view(NULL, dtype, ndim, shape);
	t.data = groma_arena_alloc(arena, n * elem);
	if (t.data == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "arena full: %s %s needs %zu bytes, %zu of %zu left",
						   groma_dtype_name(dtype), groma_tensor_shape_str(&t, buf, sizeof(buf)),
						   n * elem, arena->size - arena->used, arena->size);
	t.device = arena->device;
	if (dtype == GROMA_I8 && ndim > 0)
	{
		/* the row scales follow the values */
		t.scale = groma_arena_alloc(arena, (size_t) shape[0] * sizeof(float));
		if (t.scale == NULL)
			return groma_error(GROMA_ERR_NO_MEMORY, "arena full: the %lld row scales of i8 %s, %zu of %zu bytes left",
							   (long long) shape[0], groma_tensor_shape_str(&t, buf, sizeof(buf)),
							   arena->size - arena->used, arena->size);
	}
	*out = t;
	return groma_ok();
}
