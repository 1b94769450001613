/*
 * unit.h - a minimal test runner: register test functions, count checks,
 * print one TAP-like line per test and end with "N passed, N failed".
 */
#ifndef GROMA_UNIT_H
#define GROMA_UNIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Number of failed checks in the running test. */
extern int	unit_failures;

/* Records a failed check with its location and a formatted reason. */
void		unit_fail(const char *file, int line, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));

/* Prints a note that shows in the test log without failing anything. */
void		unit_note(const char *fmt,...) __attribute__((format(printf, 1, 2)));

/* Fills n floats with a reproducible pseudo-random sequence in [-scale, scale) (a linear congruence from seed). */
void		unit_fill_random(float *x, int64_t n, uint32_t seed, float scale);

#define CHECK(cond) do { if (!(cond)) unit_fail(__FILE__, __LINE__, "%s", #cond); } while (0)
#define CHECKF(cond, ...) do { if (!(cond)) unit_fail(__FILE__, __LINE__, __VA_ARGS__); } while (0)

/* Path of a file under the repository root ($GROMA_SOURCE_DIR, default "."); static buffer. */
const char *unit_path(const char *relative);

/* Reads a whole file (malloc); NULL with a failed check when it cannot. */
uint8_t    *unit_read_file(const char *path, size_t *len);

/* A test in the registry. */
typedef struct unit_test
{
	const char *name;
	void		(*fn) (void);
} unit_test;

/* Adds a test to the registry (called by UNIT_TEST before main runs). */
void		unit_register(const char *name, void (*fn) (void));

/*
 * Defines a test function and registers it before main() runs, so a new test
 * file needs no list to be edited:  UNIT_TEST(test_something) { CHECK(...); }
 */
#define UNIT_TEST(name) \
	static void name(void); \
	__attribute__((constructor)) static void name##_register(void) { unit_register(#name, name); } \
	static void name(void)

#endif							/* GROMA_UNIT_H */
