/*
 * pickle_reader.h - a restricted unpickler for PyTorch state dicts.
 *
 * data.pkl inside a torch.save archive is a pickle of an (Ordered)dict that
 * maps names to tensors.  Each tensor is a call of
 * torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...) whose
 * storage is a persistent id ('storage', torch.FloatStorage, key, location,
 * numel) naming the archive entry data/<key>.  This reader interprets only
 * the opcodes such a pickle uses and only an allow-list of globals; anything
 * else is refused with a message naming it.  Nothing is ever executed.
 * Memo size, stack depth, string lengths and object counts are bounded.
 */
#ifndef GROMA_PICKLE_READER_H
#define GROMA_PICKLE_READER_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/status.h"
#include "safetensors.h"

/* Tensors with more dimensions are refused (groma's models use at most 4). */
#define GROMA_PICKLE_MAX_DIMS 8

/* Pickles larger than this are refused (a 1177-tensor state dict needs ~200 KB). */
#define GROMA_PICKLE_MAX_BYTES (64u * 1024u * 1024u)

/* One tensor of a state dict, as the pickle describes it (no data yet). */
typedef struct groma_pickle_tensor
{
	char	   *name;			/* state dict key */
	groma_st_dtype dtype;		/* from the storage type, e.g. FloatStorage -> F32 */
	int			ndim;
	int64_t		shape[GROMA_PICKLE_MAX_DIMS];
	int64_t		stride[GROMA_PICKLE_MAX_DIMS];	/* in elements */
	int64_t		storage_offset; /* in elements */
	char	   *storage_key;	/* archive entry <prefix>/data/<key> */
	int64_t		storage_numel;	/* storage length the persistent id declares, in elements */
} groma_pickle_tensor;

/* The tensors of a state dict in pickle order (aliases appear once per name). */
typedef struct groma_pickle_state_dict
{
	groma_pickle_tensor *tensors;
	size_t		count;
} groma_pickle_state_dict;

/*
 * Interprets a state-dict pickle; label names the source in messages.  On
 * failure *out is empty and the status says what was refused: a forbidden
 * global (GROMA_ERR_FORMAT, 'forbidden pickle global "os.system"'), an
 * unsupported opcode or protocol (GROMA_ERR_UNSUPPORTED), a limit
 * (GROMA_ERR_LIMIT) or malformed bytes (GROMA_ERR_FORMAT).
 */
groma_status groma_pickle_read_state_dict(const uint8_t *data, size_t size, const char *label,
										  groma_pickle_state_dict *out);

/* Frees what groma_pickle_read_state_dict returned; safe on an empty or zeroed value. */
void		groma_pickle_state_dict_free(groma_pickle_state_dict *sd);

#endif							/* GROMA_PICKLE_READER_H */
