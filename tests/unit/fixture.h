/*
 * fixture.h: the recorded bodies of tests/fixtures/ for the C unit tests
 * that read them (each includes it once, after util.h).  fixture_init()
 * finds the directory from LLMQ_SRCDIR, as tests/run sets it, or bails
 * out; fixture() reads one file whole, NUL-terminated.
 */
#ifndef LLMQ_FIXTURE_H
#define LLMQ_FIXTURE_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *fixdir;

static void
fixture_init(void)
{
	const char *src = getenv("LLMQ_SRCDIR");

	if (src == NULL || src[0] == '\0') {
		printf("Bail out! LLMQ_SRCDIR is not set: run through "
		       "tests/run or set it to the source tree\n");
		exit(1);
	}
	fixdir = xasprintf("%s/tests/fixtures", src);
}

static char *
fixture(const char *name, size_t *len)
{
	char *path, *buf = NULL;
	size_t cap = 0, n;
	FILE *f;

	path = xasprintf("%s/%s", fixdir, name);
	if ((f = fopen(path, "r")) == NULL) {
		printf("Bail out! could not open \"%s\": %s\n", path,
		    strerror(errno));
		exit(1);
	}
	*len = 0;
	do {
		if (*len + 4096 + 1 > cap)
			buf = xrealloc(buf, cap = *len + 8192);
		n = fread(buf + *len, 1, cap - *len - 1, f);
		*len += n;
	} while (n > 0);
	if (ferror(f)) {
		printf("Bail out! could not read \"%s\"\n", path);
		exit(1);
	}
	buf[*len] = '\0';
	fclose(f);
	free(path);
	return buf;
}

#endif
