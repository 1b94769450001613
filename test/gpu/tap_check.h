/*
 * tap_check.h - the one-line TAP check of the small GPU test programs (C
 * and C++): include once per program; main prints "N passed, N failed".
 */
#ifndef GROMA_TAP_CHECK_H
#define GROMA_TAP_CHECK_H

#include <stdbool.h>
#include <stdio.h>

static int	passed,
			failed;

/* Prints one TAP line and counts it. */
static void
check(bool ok, const char *what)
{
	printf("%s - %s\n", ok ? "ok" : "not ok", what);
	if (ok)
		passed++;
	else
		failed++;
}

#endif							/* GROMA_TAP_CHECK_H */
