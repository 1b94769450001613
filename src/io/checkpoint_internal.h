/*
 * checkpoint_internal.h - what checkpoint*.c share: the checkpoint struct
 * and the step that binds a PyTorch zip archive's state dict to views.
 */
#ifndef GROMA_CHECKPOINT_INTERNAL_H
#define GROMA_CHECKPOINT_INTERNAL_H

#include "checkpoint.h"
#include "zip_reader.h"

struct groma_checkpoint
{
	groma_ckpt_format format;
	char	   *path;			/* weights file, or the memory label */
	char	   *dir;			/* folder with config.json; NULL for memory */
	groma_zip  *zip;			/* PyTorch form */
	groma_pickle_state_dict state_dict; /* PyTorch form: owns names and keys */
	groma_st_file *st;			/* safetensors form: owns names */
	groma_ckpt_tensor *tensors; /* file order */
	size_t		count;
	const groma_ckpt_tensor **by_name;	/* tensors sorted by name */
};

/*
 * Reads data.pkl of ckpt->zip and fills ckpt->tensors with views into the
 * archive's storages, each checked to lie inside its storage.
 */
groma_status groma_ckpt_bind_torch_zip(groma_checkpoint *ckpt);

#endif							/* GROMA_CHECKPOINT_INTERNAL_H */
