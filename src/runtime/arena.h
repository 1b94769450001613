/*
 * arena.h - activation memory: one allocation carved per request.
 *
 * An arena is allocated once, hands out aligned tensors by bumping an
 * offset, and is reset between requests; nothing is freed one by one.
 * high_water records the most ever used, to size arenas.
 */
#ifndef GROMA_ARENA_H
#define GROMA_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

#define GROMA_ARENA_ALIGN 64

/* size rounded up to GROMA_ARENA_ALIGN, as an allocation takes it (0 on overflow). */
static inline size_t
groma_arena_round(size_t size)
{
	return (size + GROMA_ARENA_ALIGN - 1) & ~(size_t) (GROMA_ARENA_ALIGN - 1);
}

typedef struct groma_arena
{
	uint8_t    *base;
	size_t		size;
	size_t		used;
	size_t		high_water;
	groma_device device;
} groma_arena;

/* Allocates a CPU arena of size bytes; more than the machine's physical memory is refused (GROMA_ERR_NO_MEMORY). */
groma_status groma_arena_init(groma_arena *arena, size_t size);

/* Allocates an arena of size bytes in accelerator memory (GROMA_ERR_UNSUPPORTED without a backend). */
groma_status groma_device_arena_init(groma_arena *arena, size_t size);

/* groma_arena_init or groma_device_arena_init, for the memory of device. */
groma_status groma_arena_init_on(groma_arena *arena, groma_device device, size_t size);

/* Frees the arena's memory (host or device); safe on a zeroed arena. */
void		groma_arena_free(groma_arena *arena);

/* Forgets every allocation (memory is kept for the next request). */
void		groma_arena_reset(groma_arena *arena);

/* Returns size bytes aligned to GROMA_ARENA_ALIGN, or NULL when the arena is full. */
void	   *groma_arena_alloc(groma_arena *arena, size_t size);

/*
 * Carves a contiguous tensor (an i8 one with room for its row scales after
 * it); fails with GROMA_ERR_NO_MEMORY naming the request and what is left
 * when the arena is full.
 */
groma_status groma_arena_tensor(groma_arena *arena, groma_dtype dtype, int ndim,
								const int64_t *shape, groma_tensor *out);

#endif							/* GROMA_ARENA_H */
