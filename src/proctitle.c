/*
 * proctitle.c: process titles ("llmqd: executor worker") on Linux.
 *
 * Linux shows /proc/PID/cmdline, which is the memory that held argv at
 * exec.  Like PostgreSQL's ps_status.c we move the environment strings
 * out of the way, so that argv and environ together form one contiguous
 * area we may overwrite, then write the title there and clear the rest.
 * proctitle_init() hands back copies of the arguments, since the
 * originals are overwritten by the first title.  The thread name (PR_SET_NAME,
 * 15 bytes) is set as well, for top(1).
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#ifdef HAVE_SYS_PRCTL_H
#include <sys/prctl.h>
#endif

#include "proctitle.h"
#include "util.h"

extern char **environ;

/* The copies; global so that leak checkers see them reachable. */
char **proctitle_argv;
static char *title_area;
static size_t title_size;

char **
proctitle_init(int argc, char **argv)
{
	char *end, **newenv, **newargv;
	int i, n;

	/* The caller goes on with copies; the originals become the title. */
	newargv = xcalloc(argc + 1, sizeof(*newargv));
	for (i = 0; i < argc; i++)
		newargv[i] = xstrdup(argv[i]);
	proctitle_argv = newargv;
	if (argc == 0 || argv[0] == NULL)
		return newargv;
	end = argv[0] + strlen(argv[0]) + 1;
	for (i = 1; i < argc; i++)
		if (argv[i] == end)
			end = argv[i] + strlen(argv[i]) + 1;
	for (n = 0; environ[n] != NULL; n++)
		if (environ[n] == end)
			end = environ[n] + strlen(environ[n]) + 1;

	/* Move the environment to the heap; it lives as long as we do. */
	newenv = xcalloc(n + 1, sizeof(*newenv));
	for (i = 0; i < n; i++)
		newenv[i] = xstrdup(environ[i]);
	environ = newenv;

	title_area = argv[0];
	title_size = end - argv[0];
	return newargv;
}

void
proctitle_set(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	size_t len;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
#ifdef HAVE_SYS_PRCTL_H
	{
		const char *p = strchr(buf, ' ');
		prctl(PR_SET_NAME, p != NULL ? p + 1 : buf, 0, 0, 0);
	}
#endif
	if (title_area == NULL || title_size < 2)
		return;
	len = strlen(buf);
	if (len >= title_size)
		len = title_size - 1;
	memcpy(title_area, buf, len);
	memset(title_area + len, '\0', title_size - len);
}
