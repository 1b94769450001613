/*
 * convert_main.c - groma-convert: turn an original Groma checkpoint folder
 * (pytorch_model.bin + config and tokenizer files) into the converted form
 * (model.safetensors + the same files), which groma loads faster and with
 * every tensor aligned.
 *
 *   groma-convert SRC_DIR DST_DIR [--dtype bf16|fp16|fp32]
 *
 * Floating-point tensors become the chosen dtype (default fp32, lossless;
 * bf16 and fp16 round to nearest even); integer tensors keep theirs.
 */
#include <stdio.h>
#include <string.h>

#include "checkpoint_convert.h"

/* Prints usage to stderr; returns the exit status for a usage error. */
static int
usage(void)
{
	fprintf(stderr, "usage: groma-convert SRC_DIR DST_DIR [--dtype bf16|fp16|fp32]\n");
	return 2;
}

/* Parses a --dtype value; returns 0 when unknown. */
static int
parse_dtype(const char *text, groma_st_dtype *out)
{
	if (strcmp(text, "bf16") == 0)
		*out = GROMA_ST_BF16;
	else if (strcmp(text, "fp16") == 0 || strcmp(text, "f16") == 0)
		*out = GROMA_ST_F16;
	else if (strcmp(text, "fp32") == 0 || strcmp(text, "f32") == 0)
		*out = GROMA_ST_F32;
	else
		return 0;
	return 1;
}

/* Runs the conversion; exit status 0 on success, 1 on failure, 2 on bad usage. */
int
main(int argc, char **argv)
{
	groma_st_dtype dtype = GROMA_ST_F32;
	const char *paths[2] = {NULL, NULL};
	int			npaths = 0;
	groma_convert_summary summary;
	groma_status st;

	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--dtype") == 0 && i + 1 < argc)
		{
			if (!parse_dtype(argv[++i], &dtype))
				return usage();
		}
		else if (strncmp(argv[i], "--dtype=", 8) == 0)
		{
			if (!parse_dtype(argv[i] + 8, &dtype))
				return usage();
		}
		else if (argv[i][0] == '-' || npaths == 2)
			return usage();
		else
			paths[npaths++] = argv[i];
	}
	if (npaths != 2)
		return usage();
	st = groma_checkpoint_convert(paths[0], paths[1], dtype, &summary);
	if (st.code != GROMA_OK)
	{
		fprintf(stderr, "groma-convert: %s: %s\n", groma_status_code_name(st.code), st.message);
		return 1;
	}
	printf("wrote %s/model.safetensors: %zu tensors, %.3f GB as %s; %zu unused by the model (kept); %zu files copied\n",
		   paths[1], summary.tensors, (double) summary.tensor_bytes / 1e9, groma_st_dtype_name(dtype),
		   summary.unused, summary.files_copied);
	return 0;
}
