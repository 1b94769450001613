/*
 * device_info.c - groma-server --device-info.
 */
#include <stdio.h>

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
		printf("{\"cuda_built\": true, \"cuda_devices\": 0, \"reason\": \"%s\"}\n", why);
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
	printf("{\"cuda_built\": true, \"cuda_devices\": %d, \"device0\": \"%s\"}\n", n, desc);
#else
	printf("{\"cuda_built\": false, \"cuda_devices\": 0, \"reason\": \"built with GROMA_CUDA=0\"}\n");
#endif
	return 0;
}
