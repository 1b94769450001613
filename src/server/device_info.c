/*
 * device_info.c - groma-server --device-info.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#ifdef GROMA_WITH_CUDA
#include "../../kernels/groma_cuda.h"
#endif

/* Prints which compute devices this build can use, one JSON object; see cli.h. */
int
groma_cli_device_info(void)
{
#ifdef GROMA_WITH_CUDA
	char		why[256] = "";
	char		desc[256] = "";
	int			n = groma_cuda_device_count(why, sizeof(why));

	if (n == 0)
	{
		groma_cli_print_json(json_pack("{s:b, s:i, s:s}", "cuda_built", 1, "cuda_devices", 0, "reason", why), false);
		return 0;
	}
	{
		groma_status st = groma_cuda_describe_device(desc, sizeof(desc));

		if (st.code != GROMA_OK)
		{
			fprintf(stderr, "groma-server: error (%s): %s\n", groma_status_code_name(st.code), st.message);
			return 1;
		}
	}
	groma_cli_print_json(json_pack("{s:b, s:i, s:s}", "cuda_built", 1, "cuda_devices", n, "device0", desc), false);
#else
	groma_cli_print_json(json_pack("{s:b, s:i, s:s}", "cuda_built", 0, "cuda_devices", 0, "reason", "built with GROMA_CUDA=0"), false);
#endif
	return 0;
}
