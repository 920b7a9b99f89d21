/*
 * jsformat.c: the format checks of jsformat.h, one function a format
 * and a table from names to them.
 *
 * Each check takes the whole string, without NUL bytes (jsf_check
 * refuses those before it looks further), and reads it by bytes with
 * its own character classes rather than <ctype.h>'s, so that the
 * process's locale cannot widen them.  ipv6 is inet_pton()'s; email
 * and uri use ipv4 and ipv6 for their address literals.
 */
#include "config.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <string.h>

#include "jsformat.h"
#include "util.h"

static int
is_alnum(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z');
}

static int
is_hex(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	    (c >= 'A' && c <= 'F');
}

static int
digits(const char *s, int n)
{
	int v = 0, i;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static int
mdays(int y, int m)
{
	static const int d[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30,
		31 };

	if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
		return 29;
	return d[m - 1];
}

/* RFC 3339 full-date at s: its length (10), or 0. */
static size_t
fmt_fulldate(const char *s, size_t len)
{
	int y, m, d;

	if (len < 10 || s[4] != '-' || s[7] != '-')
		return 0;
	y = digits(s, 4), m = digits(s + 5, 2), d = digits(s + 8, 2);
	if (y < 0 || m < 1 || m > 12 || d < 1 || d > mdays(y, m))
		return 0;
	return 10;
}

/* RFC 3339 full-time, the whole of s; a leap second at 23:59:60 UTC. */
static int
fmt_fulltime(const char *s, size_t len)
{
	int h, m, sec, oh = 0, om = 0, utc;
	size_t i = 8;

	if (len < 9 || s[2] != ':' || s[5] != ':')
		return 0;
	h = digits(s, 2), m = digits(s + 3, 2), sec = digits(s + 6, 2);
	if (h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec > 60)
		return 0;
	if (s[i] == '.') {
		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++)
			;
		if (i == 9)
			return 0;
	}
	if (i + 1 == len && (s[i] == 'Z' || s[i] == 'z')) {
		/* UTC */
	} else if (i + 6 == len && (s[i] == '+' || s[i] == '-') &&
	    s[i + 3] == ':') {
		oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
		if (oh < 0 || oh > 23 || om < 0 || om > 59)
			return 0;
		if (s[i] == '-')
			oh = -oh, om = -om;
	} else
		return 0;
	utc = ((h * 60 + m - oh * 60 - om) % 1440 + 1440) % 1440;
	return sec < 60 || utc == 23 * 60 + 59;
}

static int
fmt_date(const char *s, size_t len)
{
	return len == 10 && fmt_fulldate(s, len) == 10;
}

static int
fmt_time(const char *s, size_t len)
{
	return fmt_fulltime(s, len);
}

static int
fmt_datetime(const char *s, size_t len)
{
	return fmt_fulldate(s, len) == 10 && len > 11 &&
	    (s[10] == 'T' || s[10] == 't') && fmt_fulltime(s + 11, len - 11);
}

static int
fmt_ipv4(const char *s, size_t len)
{
	size_t i = 0, start;
	int part, v;

	for (part = 0; part < 4; part++) {
		if (part > 0 && (i >= len || s[i++] != '.'))
			return 0;
		for (start = i, v = 0; i < len && s[i] >= '0' && s[i] <= '9';
		     i++)
			if ((v = v * 10 + (s[i] - '0')) > 255)
				return 0;
		if (i == start || i - start > 3 ||
		    (s[start] == '0' && i - start > 1))
			return 0;
	}
	return i == len;
}

static int
fmt_ipv6(const char *s, size_t len)
{
	char tmp[INET6_ADDRSTRLEN];
	unsigned char addr[16];

	if (len >= sizeof(tmp))
		return 0;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	return inet_pton(AF_INET6, tmp, addr) == 1;
}

static int
fmt_uuid(const char *s, size_t len)
{
	size_t i;

	if (len != 36)
		return 0;
	for (i = 0; i < len; i++)
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!is_hex((unsigned char)s[i]))
			return 0;
	return 1;
}

/* A host name: dot-separated labels of letters, digits and hyphens. */
static int
hostname(const char *s, size_t len)
{
	size_t i, start = 0;

	if (len == 0 || len > 253)
		return 0;
	for (i = 0; i <= len; i++) {
		if (i < len && s[i] != '.') {
			if (!is_alnum((unsigned char)s[i]) && s[i] != '-')
				return 0;
			continue;
		}
		if (i == start || i - start > 63 || s[start] == '-' ||
		    s[i - 1] == '-')
			return 0;
		start = i + 1;
	}
	return 1;
}

static int
fmt_email(const char *s, size_t len)
{
	const char *at = memchr(s, '@', len);
	size_t i, l, d;

	if (at == NULL || (l = (size_t)(at - s)) == 0 || l > 64)
		return 0;
	d = len - l - 1;
	for (i = 0; i < l; i++) {
		if (s[i] == '.') {
			if (i == 0 || i == l - 1 || s[i - 1] == '.')
				return 0;
		} else if (!is_alnum((unsigned char)s[i]) &&
		    strchr("!#$%&'*+/=?^_`{|}~-", s[i]) == NULL)
			return 0;
	}
	at++;
	if (d >= 2 && at[0] == '[' && at[d - 1] == ']') {
		if (d > 7 && strncmp(at + 1, "IPv6:", 5) == 0)
			return fmt_ipv6(at + 6, d - 7);
		return fmt_ipv4(at + 1, d - 2);
	}
	return hostname(at, d);
}

static int
uri_unreserved(int c)
{
	return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static int
uri_subdelim(int c)
{
	return c != '\0' && strchr("!$&'()*+,;=", c) != NULL;
}

/* Bytes at s..e that are unreserved, sub-delims, pct-encoded or extra. */
static int
uri_chars(const char *s, const char *e, const char *extra)
{
	for (; s < e; s++) {
		if (*s == '%') {
			if (e - s < 3 || !is_hex((unsigned char)s[1]) ||
			    !is_hex((unsigned char)s[2]))
				return 0;
			s += 2;
		} else if (!uri_unreserved((unsigned char)*s) &&
		    !uri_subdelim((unsigned char)*s) &&
		    strchr(extra, *s) == NULL)
			return 0;
	}
	return 1;
}

/* RFC 3986 URI: scheme ":" hier-part ["?" query] ["#" fragment]. */
static int
fmt_uri(const char *s, size_t len)
{
	const char *p = s, *e = s + len, *a, *h, *q;

	if (len == 0 || !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
		return 0;
	while (p < e &&
	    (is_alnum((unsigned char)*p) || *p == '+' || *p == '-' ||
	        *p == '.'))
		p++;
	if (p == e || *p++ != ':')
		return 0;
	if (e - p >= 2 && p[0] == '/' && p[1] == '/') {
		p += 2;
		for (a = p; a < e && *a != '/' && *a != '?' && *a != '#'; a++)
			;
		/* authority p..a: [userinfo "@"] host [":" port] */
		for (h = a; h > p && h[-1] != '@'; h--)
			;
		if (h > p && !uri_chars(p, h - 1, ":"))
			return 0;
		if (h < a && *h == '[') {
			for (q = h; q < a && *q != ']'; q++)
				;
			if (q == a || !fmt_ipv6(h + 1, (size_t)(q - h - 1)))
				return 0;
			q++;
		} else {
			for (q = h; q < a && *q != ':'; q++)
				;
			if (!uri_chars(h, q, ""))
				return 0;
		}
		if (q < a &&
		    (*q++ != ':' || strspn(q, "0123456789") < (size_t)(a - q)))
			return 0;
		p = a;
	}
	for (q = p; q < e && *q != '?' && *q != '#'; q++)
		;
	if (!uri_chars(p, q, ":@/"))
		return 0;
	if (q < e && *q == '?') {
		for (p = ++q; q < e && *q != '#'; q++)
			;
		if (!uri_chars(p, q, ":@/?"))
			return 0;
	}
	if (q < e && *q == '#' && !uri_chars(q + 1, e, ":@/?"))
		return 0;
	return 1;
}

static const struct format {
	const char *name;
	int (*ok)(const char *, size_t);
} formats[] = {
	{ "date", fmt_date },
	{ "date-time", fmt_datetime },
	{ "email", fmt_email },
	{ "ipv4", fmt_ipv4 },
	{ "ipv6", fmt_ipv6 },
	{ "time", fmt_time },
	{ "uri", fmt_uri },
	{ "uuid", fmt_uuid },
};

static const struct format *
format_find(const char *name)
{
	size_t i;

	for (i = 0; i < nitems(formats); i++)
		if (strcmp(formats[i].name, name) == 0)
			return &formats[i];
	return NULL;
}

int
jsf_known(const char *name)
{
	return format_find(name) != NULL;
}

int
jsf_check(const char *name, const char *s, size_t len)
{
	const struct format *f = format_find(name);

	if (f == NULL)
		return -1;
	return memchr(s, '\0', len) == NULL && f->ok(s, len);
}
