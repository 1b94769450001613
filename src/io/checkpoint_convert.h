/*
 * checkpoint_convert.h - turning an original Groma checkpoint folder into
 * the converted form: one model.safetensors (contiguous copies of every
 * tensor under its original name) plus the config and tokenizer files.
 */
#ifndef GROMA_CHECKPOINT_CONVERT_H
#define GROMA_CHECKPOINT_CONVERT_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/status.h"
#include "checkpoint.h"

/* What a conversion wrote. */
typedef struct groma_convert_summary
{
	size_t		tensors;		/* tensors written (aliases become separate copies) */
	uint64_t	tensor_bytes;	/* their data bytes */
	size_t		unused;			/* tensors present but not used by the model (kept) */
	size_t		files_copied;	/* config and tokenizer files copied */
} groma_convert_summary;

/*
 * Writes every tensor of ckpt to path as safetensors: contiguous row-major
 * copies, original names, floating-point tensors as float_dtype (F32, F16 or
 * BF16, rounded to nearest even) and other tensors unchanged.  Tensors are
 * laid out by decreasing element size so each is aligned to its element.
 * The file appears atomically (written as path.tmp, then renamed).
 */
groma_status groma_checkpoint_write_safetensors(const groma_checkpoint *ckpt, const char *path,
												groma_st_dtype float_dtype);

/*
 * Converts the checkpoint folder (or weights file) src into dst_dir (made if
 * missing, and not src's own folder): checks the tensors against
 * config.json first, then writes dst_dir/model.safetensors and copies
 * config.json (required) and the tokenizer and auxiliary json files present.
 * summary may be NULL.
 */
groma_status groma_checkpoint_convert(const char *src, const char *dst_dir,
									  groma_st_dtype float_dtype, groma_convert_summary *summary);

#endif							/* GROMA_CHECKPOINT_CONVERT_H */
