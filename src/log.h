/*
 * log.h: the log_* / fatal* family (after OpenBSD's log.c).
 *
 * Every line carries the program, the process role and the pid.  The _x
 * forms do not append strerror(errno).  fatal() and fatalx() log at the
 * error level and exit(1); they are for conditions the process cannot
 * recover from.
 */
#ifndef LLMQ_LOG_H
#define LLMQ_LOG_H

#include <stdarg.h>
#include <syslog.h>

/*
 * target: "stderr", "syslog" or a file path (appended to).  level: a
 * syslog level (LOG_ERR .. LOG_DEBUG).  Returns 0, or -1 with errno set
 * when a file cannot be opened (the previous target is kept).
 */
int log_init(const char *ident, const char *target, int level);
/* Reopen a log file (SIGUSR1); no-op for stderr and syslog. */
int log_reopen(void);
void log_set_role(const char *role);
void log_set_level(int level);
int log_level_parse(const char *name); /* -1 when unknown */
/* Close the file or syslog; later lines go to stderr. */
void log_close(void);
/* The fd of the log file, or -1 (children keep it across fork). */
int log_fd(void);

void log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void vlog(int pri, const char *fmt, va_list ap);

#endif
