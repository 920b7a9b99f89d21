/*
 * jsonreply.c: find the JSON value in a model's reply and parse it, as
 * jsonreply.h declares, with the byte offset and the reason when the
 * reply is not valid JSON.
 *
 * The region to search is a fence's content when the reply has a fence
 * tagged json (else a bare one), else the whole reply.  In it, candidate
 * starts ('{' and '[') are tried in order.  One that fails at its first
 * token was a brace in prose, and the next candidate is the first at or
 * past the point of failure; one that fails further in was the JSON,
 * broken or cut off, and the search ends with its error, because any
 * later candidate would be a piece of it (the {"b": 2} of a reply
 * {"a": [1,], "b": 2}) and not the answer.  Attempts never read the same
 * bytes twice, so the work is linear in the length of the reply;
 * JR_TRIES bounds the attempts all the same, so that a reply full of
 * "{placeholders}" costs little and errs about an early one.
 *
 * json-c parses, in its strict mode, with provider.c's depth limit, and
 * with trailing characters allowed so that prose may follow the value.
 * Its strict mode (0.16) still lets through what RFC 8259 forbids:
 * single-quoted strings, control characters in strings, NaN and
 * Infinity, "1.", "-.5" and leading zeros ("-025").  scan() looks for
 * those in the bytes json-c accepted, and in the bytes before a json-c
 * error, where it finds an earlier or more exact one.  It validates the
 * UTF-8 too (RFC 3629: no overlong forms, no surrogates), at the byte
 * where the bad sequence begins; json-c's JSON_TOKENER_VALIDATE_UTF8 is
 * not used, because it lets overlong forms and surrogates by, reports a
 * bad sequence a byte or more after it begins, and rejects valid UTF-8
 * right after the value ('{"a":1}\xe3\x80\x82', a Chinese full stop).
 * A string's \u0000 is kept, as json-c stores strings with their
 * length.  Every position is a byte offset into the caller's text, which
 * is never read past len.
 */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json.h>

#include "jsonreply.h"
#include "log.h"
#include "util.h"

#define CONTEXT 40        /* bytes of text shown either side of pos */
#define SIDE_MAX 70       /* escaped bytes kept of each side */
#define MARK " <<HERE>> " /* where pos is, in the preview */
#define NO_VALUE "no JSON value in the reply"

enum fence_kind { FENCE_OTHER, FENCE_JSON, FENCE_BARE };

/* The outcome of searching one region. */
enum found { FOUND, FAILED, NONE };

/* A failed attempt: where it started, where it failed and why. */
struct failure {
	size_t start, pos;
	const char *msg;
};

static int
is_blank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Narrow [*a, *b) to exclude white space at both ends. */
static void
trim(const char *t, size_t *a, size_t *b)
{
	while (*a < *b && is_blank((unsigned char)t[*a]))
		(*a)++;
	while (*b > *a && is_blank((unsigned char)t[*b - 1]))
		(*b)--;
}

/* The end of the line that starts at p: its '\n', or len. */
static size_t
line_end(const char *t, size_t p, size_t len)
{
	const char *nl = memchr(t + p, '\n', len - p);

	return nl == NULL ? len : (size_t)(nl - t);
}

/*
 * The run of backticks that begins the line [p, q) after blanks: its
 * length when three or more (a fence), else 0; *after is its end.
 */
static size_t
ticks(const char *t, size_t p, size_t q, size_t *after)
{
	size_t n;

	while (p < q && (t[p] == ' ' || t[p] == '\t'))
		p++;
	for (n = 0; p + n < q && t[p + n] == '`'; n++)
		;
	*after = p + n;
	return n >= 3 ? n : 0;
}

/*
 * What the info string [p, q) of an opening fence names: its first word
 * json, JSON or jsonc (FENCE_JSON), nothing (FENCE_BARE) or anything
 * else.  An info string with a backtick makes no fence (CommonMark); the
 * caller has already seen that.
 */
static enum fence_kind
fence_kind(const char *t, size_t p, size_t q)
{
	size_t w;

	trim(t, &p, &q);
	if (p == q)
		return FENCE_BARE;
	for (w = p; w < q && !is_blank((unsigned char)t[w]); w++)
		;
	if ((w - p == 4 && strncasecmp(t + p, "json", 4) == 0) ||
	    (w - p == 5 && strncasecmp(t + p, "jsonc", 5) == 0))
		return FENCE_JSON;
	return FENCE_OTHER;
}

/*
 * The fence that opens on the line starting at p, if one does: returns
 * 1 with its kind, its content [*cs, *ce) (to len when no line closes
 * it) and *next, the start of the line after the closing one.  A closing
 * line is at least as many backticks as opened the fence, alone on it.
 */
static int
fence_at(const char *t, size_t len, size_t p, enum fence_kind *kind, size_t *cs,
    size_t *ce, size_t *next)
{
	size_t q, e, n, after;

	q = line_end(t, p, len);
	if ((n = ticks(t, p, q, &after)) == 0 ||
	    memchr(t + after, '`', q - after) != NULL)
		return 0;
	*kind = fence_kind(t, after, q);
	*cs = p = q < len ? q + 1 : len;
	for (; p < len; p = q < len ? q + 1 : len) {
		q = line_end(t, p, len);
		if (ticks(t, p, q, &after) >= n) {
			e = q;
			trim(t, &after, &e);
			if (after == e)
				break;
		}
	}
	*ce = p;
	q = p < len ? line_end(t, p, len) : len;
	*next = q < len ? q + 1 : len;
	return 1;
}

/*
 * Whether the bare fence's content [a, b) may be JSON: it begins with
 * '{', '[', '"', '-' or a digit, or it is true, false or null, all of it
 * (a shell command may well begin with 't' or 'f').
 */
static int
may_be_json(const char *t, size_t a, size_t b)
{
	trim(t, &a, &b);
	if (a == b)
		return 0;
	if (t[a] != '\0' && strchr("{[\"-0123456789", t[a]) != NULL)
		return 1;
	return (b - a == 4 &&
	           (memcmp(t + a, "true", 4) == 0 ||
	               memcmp(t + a, "null", 4) == 0)) ||
	    (b - a == 5 && memcmp(t + a, "false", 5) == 0);
}

/*
 * The content of the first fence tagged json, else of the first bare
 * fence that may hold JSON (not "```\nls -l\n```"): 1 and [*cs, *ce), or
 * 0 when there is neither.  Fences of other languages are skipped whole,
 * so that their closing line is not taken for an opening one.
 */
static int
find_fence(const char *t, size_t len, size_t *cs, size_t *ce)
{
	enum fence_kind kind;
	size_t p, c0, c1, next;
	int bare = 0;

	for (p = 0; p < len;) {
		if (!fence_at(t, len, p, &kind, &c0, &c1, &next)) {
			p = line_end(t, p, len);
			p = p < len ? p + 1 : len;
			continue;
		}
		if (kind == FENCE_JSON) {
			*cs = c0;
			*ce = c1;
			return 1;
		}
		if (kind == FENCE_BARE && !bare && may_be_json(t, c0, c1)) {
			*cs = c0;
			*ce = c1;
			bare = 1;
		}
		p = next;
	}
	return bare;
}

/*
 * Length of the UTF-8 sequence at s, n bytes available: its length when
 * valid (RFC 3629: no overlong forms, no surrogates, nothing past
 * U+10FFFF), 0 when invalid, -1 when valid so far but cut short by n.
 * As util.c's utf8_len, which says 0 to a sequence cut short.
 */
static int
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned int cp;
	size_t len, i;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (s[0] == 0xc0 || s[0] == 0xc1 || s[0] >= 0xf5)
		return 0; /* overlong, or past U+10FFFF, whatever follows */
	for (i = 1; i < len; i++) {
		if (i == n)
			return -1;
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
		/*
		 * Reject an overlong or out-of-range form as soon as its
		 * leading bits show it, so that a cut-off sequence is not
		 * mistaken for the start of a valid one.
		 */
		if (i == 1 &&
		    ((len == 3 && (cp < 0x20 || (cp >= 0x360 && cp < 0x380))) ||
		        (len == 4 && (cp < 0x10 || cp > 0x10f))))
			return 0;
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
	    (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return (int)len;
}

static int
is_digit(const char *t, size_t i, size_t e)
{
	return i < e && t[i] >= '0' && t[i] <= '9';
}

/*
 * Whether the digit at t[i] begins the integer part of a number (not a
 * fraction's or an exponent's digits, which may start with 0).
 */
static int
leading(const unsigned char *t, size_t s, size_t i)
{
	if (i > s && t[i - 1] == '-')
		i--;
	return i == s ||
	    !((t[i - 1] >= '0' && t[i - 1] <= '9') || t[i - 1] == '.' ||
	        t[i - 1] == 'e' || t[i - 1] == 'E' || t[i - 1] == '+');
}

/*
 * Look in text[s, e) for what RFC 8259 forbids but json-c's strict mode
 * accepts (see the top of the file).  end: e is the end of a value, not
 * only of what may be read, so a number cut at e is complete.  Returns
 * 0, or -1 with the first such byte's offset in *pos and why in *msg.
 * Outside strings only the bytes of JSON's grammar may appear; json-c
 * has checked how they go together.
 */
static int
scan(const char *text, size_t s, size_t e, int end, size_t *pos,
    const char **msg)
{
	const unsigned char *t = (const unsigned char *)text;
	size_t i;
	int n, instr = 0;

	for (i = s; i < e; i++) {
		if (t[i] >= 0x80) {
			if ((n = utf8_seq(t + i, e - i)) < 0)
				return 0; /* the rest is not ours to read */
			if (n == 0) {
				*msg = "invalid utf-8 string";
				break;
			}
			if (!instr) {
				*msg = "unexpected character";
				break;
			}
			i += (size_t)n - 1;
		} else if (instr) {
			if (t[i] == '"')
				instr = 0;
			else if (t[i] == '\\')
				i++;
			else if (t[i] < 0x20) {
				*msg = "unescaped control character in string";
				break;
			}
		} else if (t[i] == '"')
			instr = 1;
		else if (t[i] == '\'') {
			*msg = "single-quoted string";
			break;
		} else if ((t[i] == '-' || t[i] == '.') &&
		    !is_digit(text, i + 1, e) && (i + 1 < e || end)) {
			*msg = "number expected";
			break;
		} else if (t[i] == '0' && is_digit(text, i + 1, e) &&
		    leading(t, s, i)) {
			*msg = "leading zero in a number";
			break;
		} else if (t[i] == '\0' ||
		    strchr(" \t\r\n{}[]:,+-.0123456789eEtrufalsn", t[i]) ==
		        NULL) {
			*msg = "unexpected character";
			break;
		}
	}
	if (i >= e)
		return 0;
	*pos = i;
	return -1;
}

/*
 * Parse the value that starts at text[s], reading no further than b:
 * 0 with the value (NULL for the JSON null) and its end, or -1 with the
 * failure.  Running out of bytes is "unexpected end of data" at b but
 * for a number or a literal, which may end there: json-c cannot tell
 * until it sees the byte after, so it is given a NUL.
 */
static int
attempt(struct json_tokener *tok, const char *text, size_t s, size_t b,
    json_object **out, size_t *vend, struct failure *f)
{
	json_object *o;
	enum json_tokener_error jerr;
	size_t e, q;
	const char *qmsg;

	json_tokener_reset(tok);
	o = json_tokener_parse_ex(tok, text + s, (int)(b - s));
	jerr = json_tokener_get_error(tok);
	e = s + json_tokener_get_parse_end(tok);
	if (jerr == json_tokener_continue) {
		o = json_tokener_parse_ex(tok, "", 1);
		jerr = json_tokener_get_error(tok);
		e = b;
	}
	f->start = s;
	if (jerr == json_tokener_success) {
		/* json-c counts the white space after the value. */
		while (e > s && is_blank((unsigned char)text[e - 1]))
			e--;
		if (scan(text, s, e, 1, &q, &qmsg) == 0) {
			*out = o;
			*vend = e;
			return 0;
		}
		json_object_put(o);
		f->pos = q;
		f->msg = qmsg;
		return -1;
	}
	json_object_put(o);
	f->pos = e;
	f->msg = json_tokener_error_desc(jerr);
	/*
	 * An earlier error json-c let by, or the same one placed better
	 * (json-c flags bad UTF-8 up to three bytes after it begins), or
	 * said better than json-c's vaguer words: it takes a NUL byte for
	 * the end of the data, and any character outside a string for bad
	 * UTF-8.
	 */
	if (scan(text, s, b - e > 4 ? e + 4 : b, 0, &q, &qmsg) == -1 &&
	    (q < e ||
	        (q == e &&
	            (jerr == json_tokener_error_parse_eof ||
	                jerr == json_tokener_error_parse_unexpected ||
	                jerr == json_tokener_error_parse_utf8_string)))) {
		f->pos = q;
		f->msg = qmsg;
	}
	return -1;
}

/* The next '{' or '[' in text[p, b), or b. */
static size_t
next_start(const char *t, size_t p, size_t b)
{
	for (; p < b; p++)
		if (t[p] == '{' || t[p] == '[')
			break;
	return p;
}

/*
 * Where the first token inside the '{' or '[' at text[s] begins.  An
 * attempt that fails there was prose ("{name}", "[see below]"); one
 * that fails further on was the JSON, broken, and searching on would
 * offer a piece of it ({"b": 2} of {"a": [1,], "b": 2}) as the answer.
 */
static size_t
first_token(const char *t, size_t s, size_t b)
{
	for (s++; s < b && is_blank((unsigned char)t[s]); s++)
		;
	return s;
}

/*
 * Search the region [a, b), already trimmed, as jr_parse() says: FOUND
 * with r's value set, FAILED with r->pos and r->message, or NONE when
 * nothing in it could begin a value.  A bare scalar's error counts only
 * for a string: prose may well begin with a digit, "-" or "true".
 */
static enum found
search(struct json_tokener *tok, const char *text, size_t a, size_t b,
    struct jr_result *r)
{
	struct failure f, best = { 0, 0, NULL };
	json_object *o = NULL;
	size_t s, vend;
	int tries, broken;

	if (a == b)
		return NONE;
	if (text[a] != '{' && text[a] != '[') {
		if (attempt(tok, text, a, b, &o, &vend, &f) == 0) {
			if (vend == b) {
				r->value = o;
				r->start = a;
				r->end = b;
				return FOUND;
			}
			json_object_put(o);
		} else if (text[a] == '"')
			best = f;
	}
	for (s = next_start(text, a, b), tries = 0; s < b && tries < JR_TRIES;
	     s = next_start(text, s, b), tries++) {
		if (attempt(tok, text, s, b, &o, &vend, &f) == 0) {
			r->value = o;
			r->start = s;
			r->end = vend;
			return FOUND;
		}
		broken = f.pos > first_token(text, s, b);
		if (broken || best.msg == NULL ||
		    f.pos - f.start > best.pos - best.start)
			best = f;
		if (broken)
			break;
		s = f.pos > s ? f.pos : s + 1;
	}
	if (best.msg == NULL)
		return NONE;
	r->pos = best.pos;
	snprintf(r->message, sizeof(r->message), "%s", best.msg);
	return FAILED;
}

/*
 * r->preview: up to CONTEXT bytes either side of r->pos, escaped, each
 * side narrowed until its escaped form fits SIDE_MAX bytes, so that the
 * whole fits the buffer; cut on character boundaries.
 */
static void
preview(struct jr_result *r, const char *text, size_t len)
{
	const unsigned char *t = (const unsigned char *)text;
	size_t pos = r->pos, b, n, k;
	char *before, *after;

	n = pos < CONTEXT ? pos : CONTEXT;
	for (;;) {
		/* Not from the middle of a character (at most 3 bytes). */
		for (b = pos - n, k = 0;
		     k < 3 && b < pos && (t[b] & 0xc0) == 0x80; k++)
			b++;
		before = str_escape(text + b, pos - b, pos - b);
		if (strlen(before) <= SIDE_MAX || n == 0)
			break;
		free(before);
		n = pos - b - 1;
	}
	/* str_escape cuts on a character boundary and adds "...". */
	for (n = CONTEXT;; n--) {
		after = str_escape(text + pos, len - pos, n);
		if (strlen(after) <= SIDE_MAX + 3 || n == 0)
			break;
		free(after);
	}
	snprintf(r->preview, sizeof(r->preview), "%s%s%s%s", b > 0 ? "..." : "",
	    before, MARK, after);
	free(before);
	free(after);
}

int
jr_looks_like_json(const char *text, size_t len)
{
	enum fence_kind kind;
	size_t a = 0, b = len, next;

	trim(text, &a, &b);
	if (a < b && text[a] == '`') {
		if (!fence_at(text, len, a, &kind, &a, &b, &next) ||
		    kind == FENCE_OTHER)
			return 0;
		trim(text, &a, &b);
	}
	return a < b && (text[a] == '{' || text[a] == '[') &&
	    (text[b - 1] == '}' || text[b - 1] == ']');
}

int
jr_parse(const char *text, size_t len, struct jr_result *r)
{
	struct json_tokener *tok;
	enum found found = NONE;
	size_t a, b;

	memset(r, 0, sizeof(*r));
	if (len > INT_MAX) {
		/* json-c takes an int; no reply is anywhere near. */
		snprintf(r->message, sizeof(r->message), "reply too long");
		preview(r, text, len);
		return -1;
	}
	if ((tok = json_tokener_new_ex(JR_DEPTH)) == NULL)
		fatalx("out of memory (json tokener)");
	/* Not JSON_TOKENER_VALIDATE_UTF8: scan() does it (see the top). */
	json_tokener_set_flags(
	    tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
	if (find_fence(text, len, &a, &b)) {
		trim(text, &a, &b);
		found = search(tok, text, a, b, r);
	}
	if (found == NONE) {
		a = 0;
		b = len;
		trim(text, &a, &b);
		found = search(tok, text, a, b, r);
	}
	json_tokener_free(tok);
	if (found == FOUND)
		return 0;
	if (found == NONE) {
		r->pos = a;
		snprintf(r->message, sizeof(r->message), "%s", NO_VALUE);
	}
	preview(r, text, len);
	return -1;
}
