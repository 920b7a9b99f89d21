/*
 * util.h: small helpers shared by every llmq program.
 *
 * Allocation failure is fatal here and nowhere else: callers of x*alloc()
 * never check for NULL.  Time helpers return milliseconds or microseconds
 * as int64_t so that arithmetic on them cannot overflow in practice.
 */
#ifndef LLMQ_UTIL_H
#define LLMQ_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t);
void *xcalloc(size_t, size_t);
void *xrealloc(void *, size_t);
void *xreallocarray(void *, size_t, size_t);
char *xstrdup(const char *);
char *xstrndup(const char *, size_t);
char *xasprintf(const char *, ...) __attribute__((format(printf, 1, 2)));

/* Monotonic clock. */
int64_t mono_ms(void);
int64_t mono_us(void);
/* Wall clock, microseconds since the epoch. */
int64_t wall_us(void);

int fd_nonblock(int);
int fd_cloexec(int);

/*
 * The valid UTF-8 sequence at s (at most n bytes): its length, with its
 * code point in *cp; 0 when it is not one (cut short, overlong, a
 * surrogate, past U+10FFFF).  n must be at least 1.
 */
size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/*
 * Copy at most max bytes of src into a new string with control bytes,
 * backslashes and non-UTF-8 bytes escaped (\n, \x01, ...), so that text
 * from a provider or a request row is safe on one log line.
 */
char *str_escape(const char *src, size_t len, size_t max);

/* Host name, cached; never NULL. */
const char *host_name(void);

#endif
