/*
 * tap.h: the Test Anything Protocol output of the C unit tests, shared
 * by every tests/unit/test_*.c (each includes it once).  check() prints
 * "ok N - ..." or "not ok N - ..."; tap_done() prints the plan and the
 * summary line that tests/run reads, and returns the exit status.
 */
#ifndef LLMQ_TAP_H
#define LLMQ_TAP_H

#include <stdarg.h>
#include <stdio.h>

static int ntest, npass, nfail;

static void check(int, const char *, ...) __attribute__((format(printf, 2, 3)));

static void
check(int ok, const char *fmt, ...)
{
	va_list ap;

	ntest++;
	if (ok)
		npass++;
	else
		nfail++;
	printf("%sok %d - ", ok ? "" : "not ", ntest);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

#define CHECK(cond, ...) check((cond) != 0, __VA_ARGS__)

static int
tap_done(void)
{
	printf("1..%d\n", ntest);
	printf("# %d passed, %d failed\n", npass, nfail);
	return nfail == 0 ? 0 : 1;
}

#endif
