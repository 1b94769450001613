/*
 * cli_errors.c - how groma-server reports a failed command.
 */
#include <stdio.h>

#include "cli.h"

/* Prints a failed status; see cli.h. */
int
groma_cli_fail(groma_status st)
{
	fprintf(stderr, "groma-server: error (%s): %s\n", groma_status_code_name(st.code), st.message);
	return st.code == GROMA_ERR_DEVICE_LOST ? GROMA_CLI_EXIT_DEVICE_LOST : 1;
}
