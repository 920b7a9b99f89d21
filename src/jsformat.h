/*
 * jsformat.h: the values of JSON Schema's "format" keyword that
 * the validator asserts (jsonschema.c; jscheck.c knows their names).
 * Pure: no I/O, no state.
 *
 * Known formats: date-time, date, time (RFC 3339: full-date, full-time
 * with a required offset, "T" and "Z" in either case, months' lengths
 * and leap years, a leap second only at 23:59:60 UTC), email (a
 * dot-atom local part, at most 64 bytes, "@", a host name or [address
 * literal]; no quoted local parts), uri (RFC 3986 absolute URI with
 * scheme), uuid (8-4-4-4-12 hex digits), ipv4 (dotted quad, no leading
 * zeros), ipv6 (RFC 4291 text forms, no zone).  Checks read bytes,
 * whatever locale the process has; no string with a NUL byte is any of
 * them.
 */
#ifndef LLMQ_JSFORMAT_H
#define LLMQ_JSFORMAT_H

#include <stddef.h>

/* Whether name is a known format. */
int jsf_known(const char *name);

/*
 * Whether the len bytes at s (NUL-terminated or not) are a valid name:
 * 1 or 0; -1 when name is not a known format.
 */
int jsf_check(const char *name, const char *s, size_t len);

#endif
