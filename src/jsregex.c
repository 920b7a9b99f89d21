/*
 * jsregex.c: the ECMA-262 to POSIX ERE translation of jsregex.h, and the
 * compiling, caching and running of the result for jsonschema.c.
 *
 * The translation reads the pattern once, left to right, and writes the
 * ERE as it goes; it keeps a cost per open group, the atoms it holds
 * with counted repetitions multiplied out, to refuse a pattern that
 * regcomp would expand past RE_COST_MAX atoms ("(a{255}){255}").  Every
 * atom it emits matches whole UTF-8 characters, never half of one.
 * regcomp and regexec run in the C locale, whatever locale the process
 * has, so that the translation's byte classes mean what they say; the
 * caller's locale is put back after each call.
 */
#include "config.h"

#include <locale.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsregex.h"
#include "util.h"

#define RE_DUP_LIMIT 255 /* POSIX's minimum RE_DUP_MAX */
#define RE_COST_MAX 10000

/*
 * The text primitives that the validator (jsonschema.c, jscheck.c)
 * shares.
 */
void
jsr_buf_add(struct jsr_buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		while (b->len + n + 1 > b->cap)
			b->cap = b->cap > 0 ? b->cap * 2 : 64;
		b->s = xrealloc(b->s, b->cap);
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void
jsr_buf_str(struct jsr_buf *b, const char *s)
{
	jsr_buf_add(b, s, strlen(s));
}

void
jsr_buf_addc(struct jsr_buf *b, int c)
{
	char ch = (char)c;

	jsr_buf_add(b, &ch, 1);
}

static void
utf8_enc(struct jsr_buf *b, uint32_t cp)
{
	if (cp < 0x80) {
		jsr_buf_addc(b, (int)cp);
	} else if (cp < 0x800) {
		jsr_buf_addc(b, 0xc0 | (int)(cp >> 6));
		jsr_buf_addc(b, 0x80 | (int)(cp & 0x3f));
	} else if (cp < 0x10000) {
		jsr_buf_addc(b, 0xe0 | (int)(cp >> 12));
		jsr_buf_addc(b, 0x80 | (int)((cp >> 6) & 0x3f));
		jsr_buf_addc(b, 0x80 | (int)(cp & 0x3f));
	} else {
		jsr_buf_addc(b, 0xf0 | (int)(cp >> 18));
		jsr_buf_addc(b, 0x80 | (int)((cp >> 12) & 0x3f));
		jsr_buf_addc(b, 0x80 | (int)((cp >> 6) & 0x3f));
		jsr_buf_addc(b, 0x80 | (int)(cp & 0x3f));
	}
}

int
jsr_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * The translation.  A frame per open group, for the cost bound.
 */
struct frame {
	long total; /* atoms in the group so far */
	long last;  /* the last atom's, 0 when nothing can be repeated */
};

struct tr {
	const char *src, *p;
	struct jsr_buf out;
	struct frame *fr;
	size_t nfr, capfr;
	char *err;
	size_t errlen;
	int failed;
};

static int tr_fail(struct tr *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static int
tr_fail(struct tr *t, const char *fmt, ...)
{
	va_list ap;

	if (!t->failed && t->err != NULL && t->errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(t->err, t->errlen, fmt, ap);
		va_end(ap);
	}
	t->failed = 1;
	return -1;
}

static int
tr_atom(struct tr *t, long cost)
{
	struct frame *f = &t->fr[t->nfr - 1];

	f->total += cost;
	f->last = cost;
	if (f->total > RE_COST_MAX)
		return tr_fail(t, "pattern would expand to more than %d atoms",
		    RE_COST_MAX);
	return 0;
}

/* n hex digits at p, or -1. */
static long
hexn(const char *p, int n)
{
	long v = 0;
	int i, h;

	for (i = 0; i < n; i++) {
		if ((h = jsr_hexval((unsigned char)p[i])) < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

static int
is_alnum(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z');
}

/* \u escape at t->p (just past "\u"): the code point, or -1. */
static long
tr_unicode(struct tr *t)
{
	const char *p = t->p;
	long cp, lo;

	if (*p == '{') {
		for (cp = 0, p++; jsr_hexval((unsigned char)*p) >= 0; p++)
			if ((cp = cp * 16 + jsr_hexval((unsigned char)*p)) >
			    0x10ffff)
				return tr_fail(t, "\\u{...} past U+10FFFF");
		if (*p != '}' || p == t->p + 1)
			return tr_fail(t, "malformed \\u{...} escape");
		t->p = p + 1;
	} else {
		if ((cp = hexn(p, 4)) < 0)
			return tr_fail(t, "malformed \\u escape");
		t->p = p + 4;
		if (cp >= 0xd800 && cp <= 0xdbff && t->p[0] == '\\' &&
		    t->p[1] == 'u' && (lo = hexn(t->p + 2, 4)) >= 0xdc00 &&
		    lo <= 0xdfff) {
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			t->p += 6;
		}
	}
	if (cp >= 0xd800 && cp <= 0xdfff)
		return tr_fail(t, "lone surrogate \\u%04lx", cp);
	return cp;
}

enum { ESC_CHAR, ESC_CLASS };

/*
 * The escape at t->p, just past a backslash: ESC_CHAR with the code
 * point in *cp, or ESC_CLASS with the letter (d D w W s S) in *cp; -1
 * when unsupported.  In a class, \b is a backspace.
 */
static int
tr_escape(struct tr *t, int inclass, long *cp)
{
	unsigned char c = (unsigned char)*t->p;
	uint32_t u;
	size_t n;

	if (c == '\0')
		return tr_fail(t, "pattern ends with a backslash");
	t->p++;
	switch (c) {
	case 'd':
	case 'D':
	case 'w':
	case 'W':
	case 's':
	case 'S':
		*cp = c;
		return ESC_CLASS;
	case 'n':
		*cp = '\n';
		return ESC_CHAR;
	case 'r':
		*cp = '\r';
		return ESC_CHAR;
	case 't':
		*cp = '\t';
		return ESC_CHAR;
	case 'f':
		*cp = '\f';
		return ESC_CHAR;
	case 'v':
		*cp = '\v';
		return ESC_CHAR;
	case 'b':
		if (inclass) {
			*cp = '\b';
			return ESC_CHAR;
		}
		/* FALLTHROUGH */
	case 'B':
		return tr_fail(t, "\\%c (word boundary) is unsupported", c);
	case 'x':
		if ((*cp = hexn(t->p, 2)) < 0)
			return tr_fail(t, "malformed \\x escape");
		t->p += 2;
		break;
	case 'u':
		if ((*cp = tr_unicode(t)) < 0)
			return -1;
		break;
	case 'c':
		return tr_fail(t, "\\c (control escape) is unsupported");
	case 'k':
		return tr_fail(t, "\\k (named backreference) is unsupported");
	case 'p':
	case 'P':
		return tr_fail(
		    t, "\\%c{...} (Unicode property) is unsupported", c);
	default:
		if (c >= '0' && c <= '9')
			return tr_fail(
			    t, "\\%c (backreference or NUL) is unsupported", c);
		if (is_alnum(c))
			return tr_fail(t, "unknown escape \\%c", c);
		if (c >= 0x80) {
			n = utf8_decode((const unsigned char *)t->p - 1,
			    strlen(t->p - 1), &u);
			if (n == 0)
				return tr_fail(t, "pattern is not UTF-8");
			t->p += n - 1;
			*cp = u;
		} else
			*cp = c;
		return ESC_CHAR;
	}
	if (*cp == 0)
		return tr_fail(t, "NUL in a pattern is unsupported");
	return ESC_CHAR;
}

/* Add the class letter's ASCII members to set. */
static void
class_add(unsigned char *set, int letter)
{
	int i;

	switch (letter | 0x20) {
	case 'd':
		memset(&set['0'], 1, 10);
		break;
	case 'w':
		memset(&set['0'], 1, 10);
		memset(&set['A'], 1, 26);
		memset(&set['a'], 1, 26);
		set['_'] = 1;
		break;
	case 's':
		for (i = '\t'; i <= '\r'; i++)
			set[i] = 1;
		set[' '] = 1;
		break;
	}
}

static int
set_special(int c)
{
	return c == ']' || c == '-' || c == '^' || c == '[';
}

/*
 * Emit the ASCII set (no NUL) as a bracket expression.  Negated, the
 * atom is "one code point not in set": an ASCII byte not in it, or a
 * lead byte and its continuation bytes, so that it never matches half
 * of a character.  POSIX wants ']' first, '-' first or last, '^' not
 * first, and no '[' before ':', '.' or '='.
 */
static void
emit_set(struct jsr_buf *o, const unsigned char *set, int neg)
{
	int i, j, k, n = 0;

	for (i = 1; i < 128; i++)
		n += set[i] && !set_special(i);
	if (!neg && n == 0 && set['^'] && !set[']'] && !set['-'] && !set['[']) {
		jsr_buf_add(o, "\\^", 2);
		return;
	}
	jsr_buf_str(o, neg ? "([^" : "[");
	if (set[']'])
		jsr_buf_addc(o, ']');
	else if (set['-'])
		jsr_buf_addc(o, '-');
	for (i = 1; i < 128; i = j) {
		if (!set[i] || set_special(i)) {
			j = i + 1;
			continue;
		}
		for (j = i; j < 128 && set[j] && !set_special(j); j++)
			;
		if (j - i >= 3) {
			jsr_buf_addc(o, i);
			jsr_buf_addc(o, '-');
			jsr_buf_addc(o, j - 1);
		} else
			for (k = i; k < j; k++)
				jsr_buf_addc(o, k);
	}
	if (neg)
		jsr_buf_str(o, "\x80-\xff");
	if (set['['])
		jsr_buf_addc(o, '[');
	if (set['^'])
		jsr_buf_addc(o, '^');
	if (set[']'] && set['-'])
		jsr_buf_addc(o, '-');
	jsr_buf_addc(o, ']');
	if (neg)
		jsr_buf_str(o, "|[\xc0-\xff][\x80-\xbf]*)");
}

/* One member of a bracket expression: ESC_CHAR or ESC_CLASS, or -1. */
static int
tr_class_atom(struct tr *t, unsigned char *set, long *cp)
{
	int k;

	if (*t->p == '\\') {
		t->p++;
		if ((k = tr_escape(t, 1, cp)) < 0)
			return -1;
		if (k == ESC_CLASS) {
			if (*cp >= 'A' && *cp <= 'Z')
				return tr_fail(t,
				    "\\%c inside brackets is unsupported",
				    (int)*cp);
			class_add(set, (int)*cp);
			return ESC_CLASS;
		}
	} else
		*cp = (unsigned char)*t->p++;
	if (*cp >= 0x80)
		return tr_fail(
		    t, "non-ASCII character inside brackets is unsupported");
	return ESC_CHAR;
}

static int
tr_bracket(struct tr *t)
{
	unsigned char set[128];
	int neg = 0, k;
	long lo, hi;

	memset(set, 0, sizeof(set));
	t->p++;
	if (*t->p == '^')
		neg = 1, t->p++;
	if (*t->p == ']')
		return tr_fail(t, "empty class [] or [^] is unsupported");
	while (*t->p != ']') {
		if (*t->p == '\0')
			return tr_fail(t, "unterminated [");
		if ((k = tr_class_atom(t, set, &lo)) < 0)
			return -1;
		if (k == ESC_CHAR && t->p[0] == '-' && t->p[1] != ']' &&
		    t->p[1] != '\0') {
			t->p++;
			if ((k = tr_class_atom(t, set, &hi)) < 0)
				return -1;
			if (k != ESC_CHAR)
				return tr_fail(t, "class escape ends a range");
			if (lo > hi)
				return tr_fail(t, "range out of order in []");
			memset(set + lo, 1, (size_t)(hi - lo + 1));
		} else if (k == ESC_CHAR)
			set[lo] = 1;
	}
	t->p++;
	emit_set(&t->out, set, neg);
	return tr_atom(t, 1);
}

/* A literal character as one atom. */
static int
tr_literal(struct tr *t, long cp)
{
	if (cp >= 0x80) {
		jsr_buf_addc(&t->out, '(');
		utf8_enc(&t->out, (uint32_t)cp);
		jsr_buf_addc(&t->out, ')');
	} else {
		if (strchr(".[\\()*+?{|^$", (int)cp) != NULL)
			jsr_buf_addc(&t->out, '\\');
		jsr_buf_addc(&t->out, (int)cp);
	}
	return tr_atom(t, 1);
}

/* A decimal count of a quantifier at t->p; -1 when there is none. */
static long
tr_count(const char **pp)
{
	const char *p = *pp;
	long n = 0;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++)
		if (n <= RE_DUP_LIMIT)
			n = n * 10 + (*p - '0');
	*pp = p;
	return n;
}

/*
 * A quantifier "{n}", "{n,}" or "{n,m}" at t->p; 0 when "{" is not one
 * (ECMA-262 then reads it as a literal), 1 when emitted, -1 on error.
 */
static int
tr_brace(struct tr *t)
{
	const char *p = t->p + 1;
	struct frame *f = &t->fr[t->nfr - 1];
	long n, m, k;

	if ((n = tr_count(&p)) < 0)
		return 0;
	m = n;
	if (*p == ',') {
		p++;
		m = *p == '}' ? -1 : tr_count(&p);
		if (m < -1 || (m == -1 && *p != '}'))
			return 0;
	}
	if (*p != '}')
		return 0;
	if (n > RE_DUP_LIMIT || m > RE_DUP_LIMIT)
		return tr_fail(t, "repetition count over %d", RE_DUP_LIMIT);
	if (m >= 0 && n > m)
		return tr_fail(t, "repetition {%ld,%ld} out of order", n, m);
	if (f->last == 0)
		return tr_fail(t, "nothing to repeat before {");
	jsr_buf_add(&t->out, t->p, (size_t)(p + 1 - t->p));
	t->p = p + 1;
	k = m >= 0 ? m : n + 1;
	if (k > 1) {
		f->total += f->last * (k - 1);
		if (f->total > RE_COST_MAX)
			return tr_fail(t,
			    "pattern would expand to more than %d atoms",
			    RE_COST_MAX);
	}
	f->last = 0;
	return 1;
}

static int
tr_group(struct tr *t)
{
	const char *p = t->p + 1;

	if (*p == '?') {
		if (p[1] == ':') {
			p += 2;
		} else if (p[1] == '=' || p[1] == '!') {
			return tr_fail(
			    t, "lookahead (?%c is unsupported", p[1]);
		} else if (p[1] == '<' && (p[2] == '=' || p[2] == '!')) {
			return tr_fail(
			    t, "lookbehind (?<%c is unsupported", p[2]);
		} else if (p[1] == '<') {
			for (p += 2; is_alnum((unsigned char)*p) || *p == '_' ||
			     *p == '$';
			     p++)
				;
			if (*p != '>' || p == t->p + 3)
				return tr_fail(t, "malformed group name");
			p++;
		} else
			return tr_fail(t, "unsupported group (?%c",
			    p[1] > ' ' && p[1] < 0x7f ? p[1] : '.');
	}
	t->p = p;
	jsr_buf_addc(&t->out, '(');
	if (t->nfr == t->capfr) {
		t->capfr *= 2;
		t->fr = xreallocarray(t->fr, t->capfr, sizeof(*t->fr));
	}
	t->fr[t->nfr].total = t->fr[t->nfr].last = 0;
	t->nfr++;
	return 0;
}

static int
tr_step(struct tr *t)
{
	unsigned char c = (unsigned char)*t->p;
	unsigned char set[128];
	struct frame *f = &t->fr[t->nfr - 1];
	long cp, cost;
	uint32_t u;
	size_t n;
	int k;

	switch (c) {
	case '\\':
		t->p++;
		if ((k = tr_escape(t, 0, &cp)) < 0)
			return -1;
		if (k == ESC_CHAR)
			return tr_literal(t, cp);
		memset(set, 0, sizeof(set));
		class_add(set, (int)cp);
		emit_set(&t->out, set, cp >= 'A' && cp <= 'Z');
		return tr_atom(t, 1);
	case '.':
		t->p++;
		memset(set, 0, sizeof(set));
		set['\n'] = set['\r'] = 1;
		emit_set(&t->out, set, 1);
		return tr_atom(t, 1);
	case '[':
		return tr_bracket(t);
	case '(':
		return tr_group(t);
	case ')':
		if (t->nfr == 1)
			return tr_fail(t, "unmatched )");
		t->p++;
		jsr_buf_addc(&t->out, ')');
		cost = f->total > 0 ? f->total : 1;
		t->nfr--;
		return tr_atom(t, cost);
	case '|':
	case '^':
	case '$':
		t->p++;
		jsr_buf_addc(&t->out, c);
		f->last = 0;
		return 0;
	case '*':
	case '+':
	case '?':
		if (f->last == 0)
			return tr_fail(t, "nothing to repeat before %c", c);
		t->p++;
		jsr_buf_addc(&t->out, c);
		f->last = 0;
		break;
	case '{':
		if ((k = tr_brace(t)) != 0)
			break;
		t->p++;
		return tr_literal(t, '{');
	default:
		if (c < 0x80) {
			t->p++;
			return tr_literal(t, c);
		}
		if ((n = utf8_decode(
		         (const unsigned char *)t->p, strlen(t->p), &u)) == 0)
			return tr_fail(t, "pattern is not UTF-8");
		t->p += n;
		return tr_literal(t, u);
	}
	if (t->failed)
		return -1;
	/* Lazy quantifiers: greedy finds a match exactly when lazy does. */
	if (*t->p == '?')
		t->p++;
	return 0;
}

char *
js_pattern_ere(const char *src, char *err, size_t errlen)
{
	struct tr t;

	memset(&t, 0, sizeof(t));
	t.src = t.p = src;
	t.err = err;
	t.errlen = errlen;
	t.capfr = 8;
	t.fr = xcalloc(t.capfr, sizeof(*t.fr));
	t.nfr = 1;
	jsr_buf_add(&t.out, "", 0);
	while (*t.p != '\0')
		if (tr_step(&t) < 0)
			break;
	if (!t.failed && t.nfr > 1)
		tr_fail(&t, "unmatched (");
	free(t.fr);
	if (t.failed) {
		free(t.out.s);
		return NULL;
	}
	return t.out.s;
}

/*
 * The C locale for regcomp and regexec, made once; the caller's is put
 * back after each call.
 */
static locale_t
c_locale_enter(void)
{
	static locale_t c;

	if (c == (locale_t)0)
		c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	return c == (locale_t)0 ? (locale_t)0 : uselocale(c);
}

static void
c_locale_leave(locale_t old)
{
	if (old != (locale_t)0)
		uselocale(old);
}

regex_t *
jsr_compile(const char *src, char *err, size_t errlen)
{
	regex_t *re;
	locale_t old;
	char *ere, msg[128];
	int r;

	if ((ere = js_pattern_ere(src, err, errlen)) == NULL)
		return NULL;
	re = xmalloc(sizeof(*re));
	old = c_locale_enter();
	r = regcomp(re, ere, REG_EXTENDED | REG_NOSUB);
	if (r != 0)
		regerror(r, re, msg, sizeof(msg));
	c_locale_leave(old);
	free(ere);
	if (r != 0) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s", msg);
		free(re);
		return NULL;
	}
	return re;
}

void
jsr_free(regex_t *re)
{
	if (re == NULL)
		return;
	regfree(re);
	free(re);
}

int
jsr_search(regex_t *re, const char *s, size_t len)
{
	locale_t old;
	int r;
#ifdef REG_STARTEND
	regmatch_t m[1];

	m[0].rm_so = 0;
	m[0].rm_eo = (regoff_t)(len > INT32_MAX ? INT32_MAX : len);
	old = c_locale_enter();
	r = regexec(re, s, 1, m, REG_STARTEND);
#else
	(void)len;
	old = c_locale_enter();
	r = regexec(re, s, 0, NULL, 0);
#endif
	c_locale_leave(old);
	return r == 0;
}

/*
 * The cache.
 */
struct jsr_ent {
	const char *src;
	regex_t *re; /* NULL: does not compile */
};

regex_t *
jsr_cache_get(struct jsr_cache *c, const char *src)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (c->ent[i].src == src)
			return c->ent[i].re;
	if (c->n == c->cap) {
		c->cap = c->cap > 0 ? c->cap * 2 : 8;
		c->ent = xreallocarray(c->ent, c->cap, sizeof(*c->ent));
	}
	c->ent[c->n].src = src;
	c->ent[c->n].re = jsr_compile(src, NULL, 0);
	return c->ent[c->n++].re;
}

void
jsr_cache_free(struct jsr_cache *c)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		jsr_free(c->ent[i].re);
	free(c->ent);
	c->ent = NULL;
	c->n = c->cap = 0;
}
