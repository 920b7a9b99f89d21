/*
 * log.c: logging to stderr, syslog or a file, after OpenBSD's log.c.
 *
 * Each line is "TIMESTAMP IDENT[PID]: ROLE: message" on stderr and in a
 * file, and "ROLE: message" under syslog (which adds ident and pid).  A
 * log file is opened with O_APPEND so that the master and its children
 * can share one descriptor without interleaving inside a line: each line
 * goes out in a single write(2).  errno is preserved across every call,
 * so that a caller may log and then test errno.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

enum log_target { LT_STDERR, LT_SYSLOG, LT_FILE };

static enum log_target target = LT_STDERR;
static int level = LOG_INFO;
static int filefd = -1;
static char filepath[4096];
static char ident[32] = "llmq";
static char role[64] = "main";

/*
 * Open a log file for appending.  Not through a symbolic link, and only a
 * plain file with one link: the file may be given to the unprivileged
 * user, who must not be able to point root's writes elsewhere.
 */
static int
open_log(const char *path)
{
	struct stat st;
	int fd;

	fd = open(
	    path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd == -1)
		return -1;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
		close(fd);
		errno = EPERM;
		return -1;
	}
	return fd;
}

int
log_level_parse(const char *name)
{
	static const struct {
		const char *name;
		int level;
	} names[] = {
		{ "error", LOG_ERR },
		{ "warning", LOG_WARNING },
		{ "warn", LOG_WARNING },
		{ "notice", LOG_NOTICE },
		{ "info", LOG_INFO },
		{ "debug", LOG_DEBUG },
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i].name) == 0)
			return names[i].level;
	return -1;
}

int
log_init(const char *id, const char *to, int lvl)
{
	int fd;

	snprintf(ident, sizeof(ident), "%s", id);
	level = lvl;
	if (to == NULL || strcmp(to, "stderr") == 0) {
		log_close();
		target = LT_STDERR;
	} else if (strcmp(to, "syslog") == 0) {
		log_close();
		target = LT_SYSLOG;
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	} else {
		fd = open_log(to);
		if (fd == -1)
			return -1;
		log_close();
		target = LT_FILE;
		filefd = fd;
		snprintf(filepath, sizeof(filepath), "%s", to);
	}
	return 0;
}

int
log_reopen(void)
{
	int fd;

	if (target != LT_FILE)
		return 0;
	fd = open_log(filepath);
	if (fd == -1)
		return -1;
	if (filefd != -1)
		close(filefd);
	filefd = fd;
	return 0;
}

void
log_close(void)
{
	if (target == LT_FILE && filefd != -1) {
		close(filefd);
		filefd = -1;
	} else if (target == LT_SYSLOG)
		closelog();
	target = LT_STDERR;
}

int
log_fd(void)
{
	return target == LT_FILE ? filefd : -1;
}

void
log_set_role(const char *r)
{
	snprintf(role, sizeof(role), "%s", r);
}

void
log_set_level(int lvl)
{
	level = lvl;
}

void
vlog(int pri, const char *fmt, va_list ap)
{
	char msg[2048], line[2300], ts[32];
	struct timeval tv;
	struct tm tm;
	int saved = errno, n;

	if (pri > level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (target == LT_SYSLOG) {
		syslog(pri, "%s: %s", role, msg);
		errno = saved;
		return;
	}
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
	n = snprintf(line, sizeof(line), "%s.%03d %s[%d]: %s: %s\n", ts,
	    (int)(tv.tv_usec / 1000), ident, (int)getpid(), role, msg);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	if (write(target == LT_FILE ? filefd : STDERR_FILENO, line, n) == -1)
		(void)0; /* nowhere left to report it */
	errno = saved;
}

static void
logit(int pri, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(pri, fmt, ap);
	va_end(ap);
}

/* vlog() with ": strerror(errno)" appended when errno is set. */
static void
vlog_errno(int pri, const char *fmt, va_list ap)
{
	char buf[2048];
	int saved = errno;

	if (pri > level)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (saved != 0)
		logit(pri, "%s: %s", buf, strerror(saved));
	else
		logit(pri, "%s", buf);
	errno = saved;
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog_errno(LOG_WARNING, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_WARNING, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_INFO, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_DEBUG, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog_errno(LOG_CRIT, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap);
	va_end(ap);
	exit(1);
}
