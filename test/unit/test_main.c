/*
 * test_main.c - the runner's main(): runs every registered test in name
 * order.  Optional argument: a substring; only tests whose names contain it run.
 */
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#define MAX_TESTS 1024

static unit_test registry[MAX_TESTS];
static int	registered;

/* Adds a test to the registry. */
void
unit_register(const char *name, void (*fn) (void))
{
	if (registered < MAX_TESTS)
		registry[registered++] = (unit_test) {name, fn};
}

/* Orders tests by name so runs are reproducible whatever the link order. */
static int
by_name(const void *a, const void *b)
{
	return strcmp(((const unit_test *) a)->name, ((const unit_test *) b)->name);
}

/* Runs the (filtered) tests; exit status 1 when any failed. */
int
main(int argc, char **argv)
{
	int			passed = 0,
				failed = 0;

	qsort(registry, (size_t) registered, sizeof(unit_test), by_name);
	for (int i = 0; i < registered; i++)
	{
		if (argc > 1 && strstr(registry[i].name, argv[1]) == NULL)
			continue;
		unit_failures = 0;
		registry[i].fn();
		if (unit_failures == 0)
		{
			printf("ok - %s\n", registry[i].name);
			passed++;
		}
		else
		{
			printf("not ok - %s (%d failed checks)\n", registry[i].name, unit_failures);
			failed++;
		}
		fflush(stdout);
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
