/*
 * jsonschema.c: js_validate, the JSON Schema (draft 7 subset) validator
 * declared in jsonschema.h, and what it shares with js_check (jscheck.c)
 * through jsonschema_int.h: the keyword table, the helpers that write
 * paths and messages, the tests of numbers and the resolution of local
 * $refs.
 *
 * One table of keywords, sorted by name, serves both halves: js_check
 * walks the schema and checks each keyword's value by its kind, and
 * js_validate walks schema and instance together and calls each
 * keyword's function.
 *
 * js_validate keeps two JSON pointers as it goes, into the instance and
 * into the schema, so that an error costs only the copying of both.
 * Errors are appended in the order of the schema's members.  A counter,
 * quiet, is raised while a combinator (anyOf, oneOf, not, if, contains,
 * propertyNames) tries a branch: then nothing is reported and the first
 * failure ends the branch.  Three bounds make every validation end on
 * any schema: steps on one instance location without descending (a $ref
 * loop), nesting in all, and steps in all (refs that branch); hitting one
 * aborts the whole validation with one error, whatever the combinators
 * above would have made of a failure.  Patterns are translated,
 * compiled and run by jsregex.c, each compiled once per call (its cache
 * is keyed by the address of the source text); formats are checked by
 * jsformat.c.  The growing string that holds paths and messages is
 * jsregex.h's, since the translation writes into one too.
 */
#include "config.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "jsformat.h"
#include "jsonschema.h"
#include "jsonschema_int.h"
#include "jsregex.h"
#include "log.h"
#include "util.h"

#define QUOTE_MAX 40 /* bytes of a value or name quoted in a message */
#define MAX_SAME 64  /* $ref and applicator steps on one instance node */
#define MAX_DEPTH 1000
#define MAX_STEPS 1000000L

/*
 * Paths and messages, on jsregex.h's growing string.
 */
static void buf_printf(struct jsr_buf *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
buf_printf(struct jsr_buf *b, const char *fmt, ...)
{
	va_list ap;
	char tmp[64];
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(tmp)) {
		jsr_buf_add(b, tmp, (size_t)n);
		return;
	}
	jsr_buf_add(b, "", 0);
	while (b->len + (size_t)n + 1 > b->cap) {
		b->cap *= 2;
		b->s = xrealloc(b->s, b->cap);
	}
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void
js_buf_trunc(struct jsr_buf *b, size_t len)
{
	b->len = len;
	if (b->s != NULL)
		b->s[len] = '\0';
}

void
js_buf_key(struct jsr_buf *b, const char *key)
{
	const char *p;

	jsr_buf_addc(b, '/');
	for (p = key; *p != '\0'; p++) {
		if (*p == '~')
			jsr_buf_add(b, "~0", 2);
		else if (*p == '/')
			jsr_buf_add(b, "~1", 2);
		else
			jsr_buf_addc(b, *p);
	}
}

void
js_buf_index(struct jsr_buf *b, size_t i)
{
	buf_printf(b, "/%zu", i);
}

void
js_buf_esc(struct jsr_buf *b, const char *src, size_t len, size_t max)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t i = 0, n;
	uint32_t cp;

	while (i < len) {
		if (i >= max) {
			jsr_buf_add(b, "...", 3);
			return;
		}
		if (s[i] == '"' || s[i] == '\\') {
			jsr_buf_addc(b, '\\');
			jsr_buf_addc(b, s[i++]);
		} else if (s[i] == '\n') {
			jsr_buf_add(b, "\\n", 2), i++;
		} else if (s[i] == '\r') {
			jsr_buf_add(b, "\\r", 2), i++;
		} else if (s[i] == '\t') {
			jsr_buf_add(b, "\\t", 2), i++;
		} else if (s[i] < 0x20 || s[i] == 0x7f) {
			buf_printf(b, "\\u%04x", s[i++]);
		} else if (s[i] < 0x80) {
			jsr_buf_addc(b, s[i++]);
		} else if ((n = utf8_decode(s + i, len - i, &cp)) == 0) {
			buf_printf(b, "\\x%02x", s[i++]);
		} else if (i + n > max) {
			jsr_buf_add(b, "...", 3);
			return;
		} else {
			if (cp > 0xffff)
				buf_printf(b, "\\u%04x\\u%04x",
				    0xd800 + ((cp - 0x10000) >> 10),
				    0xdc00 + ((cp - 0x10000) & 0x3ff));
			else
				buf_printf(b, "\\u%04x", cp);
			i += n;
		}
	}
}

void
js_buf_quote(struct jsr_buf *b, const char *s, size_t len)
{
	jsr_buf_addc(b, '"');
	js_buf_esc(b, s, len, QUOTE_MAX);
	jsr_buf_addc(b, '"');
}

/* Code points in len bytes of UTF-8 (bytes that are not continuations). */
static size_t
utf8_count(const char *s, size_t len)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			n++;
	return n;
}

/*
 * JSON values.  A NULL json_object is JSON null, as json-c has it.
 */
int
js_is_number(json_object *o)
{
	return json_object_is_type(o, json_type_int) ||
	    json_object_is_type(o, json_type_double);
}

static int
dbl_integral(double d)
{
	if (d != d)
		return 0;
	if (d >= 0x1p52 || d <= -0x1p52)
		return 1; /* no double that large has a fraction */
	return (double)(int64_t)d == d;
}

int
js_is_integer(json_object *o)
{
	if (json_object_is_type(o, json_type_int))
		return 1;
	return json_object_is_type(o, json_type_double) &&
	    dbl_integral(json_object_get_double(o));
}

/* Sign and magnitude of a json-c integer (int64 or uint64). */
static void
int_get(json_object *o, int *neg, uint64_t *mag)
{
	int64_t i = json_object_get_int64(o);

	if (i == INT64_MAX)
		*neg = 0, *mag = json_object_get_uint64(o);
	else if (i < 0)
		*neg = 1, *mag = (uint64_t)(-(i + 1)) + 1;
	else
		*neg = 0, *mag = (uint64_t)i;
}

/* Integers as sign and magnitude (0 is never negative): -1, 0 or 1. */
static int
mag_cmp(int an, uint64_t am, int bn, uint64_t bm)
{
	if (an != bn)
		return an ? -1 : 1;
	if (am == bm)
		return 0;
	return (am < bm) != an ? -1 : 1;
}

/* The integer (sign, magnitude) against the double d, exactly. */
static int
int_dbl_cmp(int neg, uint64_t mag, double d)
{
	double t;
	int c;

	if (d != d)
		return 0;
	if (d >= 0x1p64)
		return -1;
	if (d <= -0x1p64)
		return 1;
	/* The integral part, exact, then the fraction. */
	t = d >= 0x1p52 || d <= -0x1p52 ? d : (double)(int64_t)d;
	c = mag_cmp(neg, mag, t < 0, t < 0 ? (uint64_t)-t : (uint64_t)t);
	if (c != 0)
		return c;
	return d > t ? -1 : (d < t ? 1 : 0);
}

/*
 * Two numbers compared exactly, without the rounding of converting an
 * integer past 2^53 to a double: -1, 0 or 1.
 */
static int
num_cmp(json_object *a, json_object *b)
{
	int an, bn;
	uint64_t am, bm;
	double ad, bd;

	if (json_object_is_type(a, json_type_int)) {
		int_get(a, &an, &am);
		if (!json_object_is_type(b, json_type_int))
			return int_dbl_cmp(an, am, json_object_get_double(b));
		int_get(b, &bn, &bm);
		return mag_cmp(an, am, bn, bm);
	}
	if (json_object_is_type(b, json_type_int)) {
		int_get(b, &bn, &bm);
		return -int_dbl_cmp(bn, bm, json_object_get_double(a));
	}
	ad = json_object_get_double(a), bd = json_object_get_double(b);
	return ad < bd ? -1 : (ad > bd ? 1 : 0);
}

/* A count against a number: -1, 0 or 1. */
static int
count_cmp(size_t n, json_object *o)
{
	int on;
	uint64_t om;

	if (!json_object_is_type(o, json_type_int))
		return int_dbl_cmp(0, n, json_object_get_double(o));
	int_get(o, &on, &om);
	return mag_cmp(0, n, on, om);
}

/* o as an integer below 2^64 in magnitude: 1 with sign and magnitude. */
static int
int_parts(json_object *o, int *neg, uint64_t *mag)
{
	int64_t i;
	double d;

	if (json_object_is_type(o, json_type_int)) {
		int_get(o, neg, mag);
		return 1;
	}
	if (!json_object_is_type(o, json_type_double))
		return 0;
	d = json_object_get_double(o);
	if (!dbl_integral(d) || d >= 0x1p63 || d <= -0x1p63)
		return 0;
	i = (int64_t)d;
	*neg = i < 0;
	*mag = i < 0 ? (uint64_t)(-(i + 1)) + 1 : (uint64_t)i;
	return 1;
}

/*
 * x a multiple of m (> 0): exactly for integers; else x/m within the
 * rounding error of a double division of an integer.
 */
static int
multiple_of(json_object *x, json_object *m)
{
	uint64_t xm, mm;
	int xn, mn;
	double q, r, tol;

	if (int_parts(x, &xn, &xm) && int_parts(m, &mn, &mm) && mm != 0)
		return xm % mm == 0;
	q = json_object_get_double(x) / json_object_get_double(m);
	if (q != q || q - q != 0)
		return 0; /* NaN or infinite */
	if (q >= 0x1p52 || q <= -0x1p52)
		return 1;
	r = (double)(int64_t)q;
	if (q - r >= 0.5)
		r += 1;
	else if (r - q >= 0.5)
		r -= 1;
	tol = 64 * DBL_EPSILON * (q < 0 ? (q < -1 ? -q : 1) : (q > 1 ? q : 1));
	return (q > r ? q - r : r - q) <= tol;
}

/*
 * JSON equality: numbers by value, objects whatever their order.  *work
 * grows by the values and string bytes compared.
 */
static int
json_equal(json_object *a, json_object *b, long *work)
{
	enum json_type ta = json_object_get_type(a),
	               tb = json_object_get_type(b);
	size_t i, n;
	json_object *bv;

	*work += 1;
	if (js_is_number(a) && js_is_number(b))
		return num_cmp(a, b) == 0;
	if (ta != tb)
		return 0;
	switch (ta) {
	case json_type_null:
		return 1;
	case json_type_boolean:
		return !json_object_get_boolean(a) ==
		    !json_object_get_boolean(b);
	case json_type_string:
		*work += json_object_get_string_len(a) / 16;
		return json_object_get_string_len(a) ==
		    json_object_get_string_len(b) &&
		    memcmp(json_object_get_string(a), json_object_get_string(b),
		        (size_t)json_object_get_string_len(a)) == 0;
	case json_type_array:
		n = json_object_array_length(a);
		if (n != json_object_array_length(b))
			return 0;
		for (i = 0; i < n; i++)
			if (!json_equal(json_object_array_get_idx(a, i),
			        json_object_array_get_idx(b, i), work))
				return 0;
		return 1;
	case json_type_object:
		if (json_object_object_length(a) !=
		    json_object_object_length(b))
			return 0;
		json_object_object_foreach(a, k, av)
		{
			if (!json_object_object_get_ex(b, k, &bv) ||
			    !json_equal(av, bv, work))
				return 0;
		}
		return 1;
	default:
		return 0;
	}
}

int
js_resolve(json_object *root, const char *ref, json_object **out,
    struct jsr_buf *canon)
{
	struct jsr_buf dec = { NULL, 0, 0 }, tok = { NULL, 0, 0 };
	json_object *cur = root, *next;
	const char *p;
	size_t idx;
	int h1, h2, rc = -1;

	if (ref[0] != '#')
		return -1;
	jsr_buf_add(&dec, "", 0);
	for (p = ref + 1; *p != '\0'; p++) {
		if (*p != '%') {
			jsr_buf_addc(&dec, *p);
			continue;
		}
		if ((h1 = jsr_hexval((unsigned char)p[1])) < 0 ||
		    (h2 = jsr_hexval((unsigned char)p[2])) < 0 ||
		    h1 * 16 + h2 == 0)
			goto out;
		jsr_buf_addc(&dec, h1 * 16 + h2);
		p += 2;
	}
	if (dec.len > 0 && dec.s[0] != '/')
		goto out;
	for (p = dec.s; *p == '/';) {
		js_buf_trunc(&tok, 0);
		jsr_buf_add(&tok, "", 0);
		for (p++; *p != '\0' && *p != '/'; p++) {
			if (*p != '~') {
				jsr_buf_addc(&tok, *p);
			} else if (p[1] == '0' || p[1] == '1') {
				jsr_buf_addc(&tok, p[1] == '0' ? '~' : '/');
				p++;
			} else
				goto out;
		}
		if (json_object_is_type(cur, json_type_object)) {
			if (!json_object_object_get_ex(cur, tok.s, &next))
				goto out;
		} else if (json_object_is_type(cur, json_type_array)) {
			if (tok.len == 0 || tok.len > 9 ||
			    (tok.s[0] == '0' && tok.len > 1) ||
			    strspn(tok.s, "0123456789") != tok.len)
				goto out;
			idx = (size_t)strtoul(tok.s, NULL, 10);
			if (idx >= json_object_array_length(cur))
				goto out;
			next = json_object_array_get_idx(cur, idx);
		} else
			goto out;
		if (canon != NULL)
			js_buf_key(canon, tok.s);
		cur = next;
	}
	*out = cur;
	rc = 0;
out:
	free(dec.s);
	free(tok.s);
	return rc;
}

/*
 * The keyword table.
 */
static js_vfn v_additional_items, v_additional_props, v_all_of, v_any_of,
    v_const, v_contains, v_dependencies, v_enum, v_excl_max, v_excl_min,
    v_format, v_if, v_items, v_max_items, v_max_length, v_max_props, v_maximum,
    v_min_items, v_min_length, v_min_props, v_minimum, v_multiple_of, v_not,
    v_one_of, v_pattern, v_pattern_props, v_properties, v_property_names,
    v_required, v_type, v_unique_items;

/* Sorted by strcmp(), for bsearch(). */
static const struct js_keyword keywords[] = {
	{ "$comment", K_ANNOT, NULL },
	{ "$defs", K_SCHEMAMAP, NULL },
	{ "$id", K_ID, NULL },
	{ "$ref", K_REF, NULL },
	{ "$schema", K_ANNOT, NULL },
	{ "additionalItems", K_SCHEMA, v_additional_items },
	{ "additionalProperties", K_SCHEMA, v_additional_props },
	{ "allOf", K_SCHEMAS, v_all_of },
	{ "anyOf", K_SCHEMAS, v_any_of },
	{ "const", K_ANNOT, v_const },
	{ "contains", K_SCHEMA, v_contains },
	{ "contentEncoding", K_ANNOT, NULL },
	{ "contentMediaType", K_ANNOT, NULL },
	{ "default", K_ANNOT, NULL },
	{ "definitions", K_SCHEMAMAP, NULL },
	{ "dependencies", K_DEPS, v_dependencies },
	{ "description", K_ANNOT, NULL },
	{ "else", K_SCHEMA, NULL },
	{ "enum", K_ENUM, v_enum },
	{ "examples", K_ANNOT, NULL },
	{ "exclusiveMaximum", K_NUMBER, v_excl_max },
	{ "exclusiveMinimum", K_NUMBER, v_excl_min },
	{ "format", K_FORMAT, v_format },
	{ "if", K_SCHEMA, v_if },
	{ "items", K_ITEMS, v_items },
	{ "maxItems", K_COUNT, v_max_items },
	{ "maxLength", K_COUNT, v_max_length },
	{ "maxProperties", K_COUNT, v_max_props },
	{ "maximum", K_NUMBER, v_maximum },
	{ "minItems", K_COUNT, v_min_items },
	{ "minLength", K_COUNT, v_min_length },
	{ "minProperties", K_COUNT, v_min_props },
	{ "minimum", K_NUMBER, v_minimum },
	{ "multipleOf", K_POSITIVE, v_multiple_of },
	{ "not", K_SCHEMA, v_not },
	{ "oneOf", K_SCHEMAS, v_one_of },
	{ "pattern", K_PATTERN, v_pattern },
	{ "patternProperties", K_PATTERNMAP, v_pattern_props },
	{ "properties", K_SCHEMAMAP, v_properties },
	{ "propertyNames", K_SCHEMA, v_property_names },
	{ "readOnly", K_ANNOT, NULL },
	{ "required", K_NAMES, v_required },
	{ "then", K_SCHEMA, NULL },
	{ "title", K_ANNOT, NULL },
	{ "type", K_TYPE, v_type },
	{ "uniqueItems", K_BOOL, v_unique_items },
	{ "writeOnly", K_ANNOT, NULL },
};

static int
kw_cmp(const void *key, const void *elt)
{
	return strcmp(key, ((const struct js_keyword *)elt)->name);
}

const struct js_keyword *
js_kw_find(const char *name)
{
	return bsearch(
	    name, keywords, nitems(keywords), sizeof(keywords[0]), kw_cmp);
}

static const char *const type_names[] = { "array", "boolean", "integer", "null",
	"number", "object", "string" };

int
js_type_known(const char *name)
{
	size_t i;

	for (i = 0; i < nitems(type_names); i++)
		if (strcmp(type_names[i], name) == 0)
			return 1;
	return 0;
}

/*
 * js_validate.
 */
struct val {
	json_object *root, *errs;
	int max, nerr;
	int quiet; /* > 0: trying a branch, report nothing */
	int depth;
	long steps;
	json_object *abort; /* the error that ended the validation */
	struct jsr_buf ipath, spath;
	struct jsr_cache rx;
	struct jsr_buf shows[3];
	int nshow;
};

/* Whether an error would be reported now. */
static int
loud(struct val *v)
{
	return v->quiet == 0 && v->nerr < v->max && v->abort == NULL;
}

/* Whether to stop after a failure. */
static int
stop(struct val *v)
{
	return v->abort != NULL || v->quiet > 0 || v->nerr >= v->max;
}

static json_object *
mkerr(struct val *v, const char *msg)
{
	json_object *e = json_object_new_object();

	json_object_object_add(e, "path",
	    json_object_new_string_len(v->ipath.s, (int)v->ipath.len));
	json_object_object_add(e, "schema_path",
	    json_object_new_string_len(v->spath.s, (int)v->spath.len));
	json_object_object_add(e, "message", json_object_new_string(msg));
	return e;
}

static int fail(struct val *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
static int fail_at(struct val *, const char *, const char *, ...)
    __attribute__((format(printf, 3, 4)));

static void
report(struct val *v, const char *fmt, va_list ap)
{
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (v->errs != NULL)
		json_object_array_add(v->errs, mkerr(v, msg));
	v->nerr++;
}

/* Report an error at the current paths (when loud); returns 1. */
static int
fail(struct val *v, const char *fmt, ...)
{
	va_list ap;

	if (!loud(v))
		return 1;
	va_start(ap, fmt);
	report(v, fmt, ap);
	va_end(ap);
	return 1;
}

/* The same about the member name of the instance (present or not). */
static int
fail_at(struct val *v, const char *name, const char *fmt, ...)
{
	size_t im = v->ipath.len;
	va_list ap;

	if (!loud(v))
		return 1;
	js_buf_key(&v->ipath, name);
	va_start(ap, fmt);
	report(v, fmt, ap);
	va_end(ap);
	js_buf_trunc(&v->ipath, im);
	return 1;
}

/* End the validation with this error, reported whatever quiet says. */
static int
vabort(struct val *v, const char *msg)
{
	if (v->abort == NULL)
		v->abort = mkerr(v, msg);
	return 1;
}

/* o for a message: a value cut and escaped, or what it is. */
static const char *
show(struct val *v, json_object *o)
{
	struct jsr_buf *b = &v->shows[v->nshow++ % nitems(v->shows)];
	const char *s;

	js_buf_trunc(b, 0);
	jsr_buf_add(b, "", 0);
	switch (json_object_get_type(o)) {
	case json_type_string:
		js_buf_quote(b, json_object_get_string(o),
		    (size_t)json_object_get_string_len(o));
		break;
	case json_type_array:
		jsr_buf_str(b, "an array");
		break;
	case json_type_object:
		jsr_buf_str(b, "an object");
		break;
	default:
		s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
		js_buf_esc(b, s, strlen(s), QUOTE_MAX);
		break;
	}
	return b->s;
}

static const char *
vquote(struct val *v, const char *s)
{
	struct jsr_buf *b = &v->shows[v->nshow++ % nitems(v->shows)];

	js_buf_trunc(b, 0);
	js_buf_quote(b, s, strlen(s));
	return b->s;
}

static const char *
type_of(json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "boolean";
	case json_type_int:
		return "integer";
	case json_type_double:
		return js_is_integer(o) ? "integer" : "number";
	case json_type_string:
		return "string";
	case json_type_array:
		return "array";
	case json_type_object:
		return "object";
	}
	return "value";
}

/*
 * Count n steps of work: a step is a schema applied to a value, a value
 * compared, a regexec, 16 bytes of a string scanned.  Past MAX_STEPS the
 * validation ends; returns 1 then.
 */
static int
spend(struct val *v, long n)
{
	v->steps += n;
	if (v->steps <= MAX_STEPS)
		return 0;
	return vabort(v, "validation takes more than 1000000 steps");
}

static int
tick(struct val *v)
{
	return spend(v, 1);
}

/* JSON equality, its work counted; not equal once aborted. */
static int
equal(struct val *v, json_object *a, json_object *b)
{
	long work = 0;
	int r = json_equal(a, b, &work);

	return spend(v, work) ? 0 : r;
}

/* Whether pattern src matches s; -1 when it does not compile. */
static int
rx_match(struct val *v, const char *src, const char *s, size_t len)
{
	regex_t *re = jsr_cache_get(&v->rx, src);

	if (spend(v, 1 + (long)(len / 16)))
		return 0;
	return re == NULL ? -1 : jsr_search(re, s, len);
}

static int validate(struct val *, json_object *, json_object *, int);

/* Validate a member or item: the paths grow by key (or index). */
static int
validate_child(struct val *v, json_object *s, json_object *inst,
    const char *key, size_t idx, const char *skey)
{
	size_t im = v->ipath.len, sm = v->spath.len;
	int r;

	if (key != NULL)
		js_buf_key(&v->ipath, key);
	else
		js_buf_index(&v->ipath, idx);
	if (skey != NULL)
		js_buf_key(&v->spath, skey);
	r = validate(v, s, inst, 0);
	js_buf_trunc(&v->ipath, im);
	js_buf_trunc(&v->spath, sm);
	return r;
}

/* Validate an applicator's subschema i (or skey) on the same instance. */
static int
validate_sub(struct val *v, json_object *s, json_object *inst, int same,
    const char *skey, size_t i)
{
	size_t sm = v->spath.len;
	int r;

	if (skey != NULL)
		js_buf_key(&v->spath, skey);
	else
		js_buf_index(&v->spath, i);
	r = validate(v, s, inst, same + 1);
	js_buf_trunc(&v->spath, sm);
	return r;
}

/* Try a branch: nothing reported; 0 when it matches. */
static int
try(struct val *v, json_object *s, json_object *inst, int same)
{
	int r;

	v->quiet++;
	r = validate(v, s, inst, same + 1);
	v->quiet--;
	return r;
}

static int
type_is(const char *name, json_object *inst)
{
	if (strcmp(name, "integer") == 0)
		return js_is_integer(inst);
	if (strcmp(name, "number") == 0)
		return js_is_number(inst);
	return strcmp(name, type_of(inst)) == 0;
}

static int
v_type(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	struct jsr_buf want = { NULL, 0, 0 };
	size_t i, n;
	const char *t;
	int r;

	if (json_object_is_type(kv, json_type_string))
		return js_type_known(json_object_get_string(kv)) &&
		    !type_is(json_object_get_string(kv), inst) &&
		    fail(v, "expected %s, got %s", json_object_get_string(kv),
		        type_of(inst));
	if (!json_object_is_type(kv, json_type_array))
		return 0;
	n = json_object_array_length(kv);
	for (i = 0; i < n; i++) {
		t = json_object_get_string(json_object_array_get_idx(kv, i));
		if (t == NULL || !js_type_known(t))
			continue;
		if (type_is(t, inst)) {
			free(want.s);
			return 0;
		}
		if (i > 0)
			jsr_buf_str(&want, i + 1 == n ? " or " : ", ");
		jsr_buf_str(&want, t);
	}
	r = fail(v, "expected %s, got %s", want.s != NULL ? want.s : "nothing",
	    type_of(inst));
	free(want.s);
	return r;
}

static int
v_enum(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	size_t i, n;

	if (!json_object_is_type(kv, json_type_array))
		return 0;
	n = json_object_array_length(kv);
	for (i = 0; i < n && v->abort == NULL; i++)
		if (equal(v, json_object_array_get_idx(kv, i), inst))
			return 0;
	return loud(v) ? fail(v, "%s is not one of the %zu values of enum",
	                     show(v, inst), n) :
	                 1;
}

static int
v_const(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	if (equal(v, kv, inst))
		return 0;
	return loud(v) ? fail(v, "%s is not the const value %s", show(v, inst),
	                     show(v, kv)) :
	                 1;
}

static int
v_multiple_of(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	if (!js_is_number(inst) || !js_is_number(kv) ||
	    !(json_object_get_double(kv) > 0) || multiple_of(inst, kv))
		return 0;
	return loud(v) ?
	    fail(v, "%s is not a multiple of %s", show(v, inst), show(v, kv)) :
	    1;
}

/* A number instance against a bound: upper (maximum) or not, excl. */
static int
v_bound(struct val *v, json_object *kv, json_object *inst, int excl, int upper)
{
	int c;

	if (!js_is_number(inst) || !js_is_number(kv))
		return 0;
	c = num_cmp(inst, kv);
	if (upper ? (excl ? c < 0 : c <= 0) : (excl ? c > 0 : c >= 0))
		return 0;
	if (!loud(v))
		return 1;
	if (upper)
		return excl ? fail(v, "%s is not less than %s", show(v, inst),
		                  show(v, kv)) :
		              fail(v, "%s is greater than the maximum %s",
		                  show(v, inst), show(v, kv));
	return excl ?
	    fail(v, "%s is not greater than %s", show(v, inst), show(v, kv)) :
	    fail(v, "%s is less than the minimum %s", show(v, inst),
	        show(v, kv));
}

static int
v_maximum(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	return v_bound(v, kv, inst, 0, 1);
}

static int
v_excl_max(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	return v_bound(v, kv, inst, 1, 1);
}

static int
v_minimum(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	return v_bound(v, kv, inst, 0, 0);
}

static int
v_excl_min(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	return v_bound(v, kv, inst, 1, 0);
}

/* A size against a count keyword: upper (max*) or lower (min*). */
static int
size_ok(size_t n, json_object *kv, int upper)
{
	if (!js_is_number(kv))
		return 1;
	return upper ? count_cmp(n, kv) <= 0 : count_cmp(n, kv) >= 0;
}

/* A string's length in characters: maxLength (upper) or minLength. */
static int
v_length(struct val *v, json_object *kv, json_object *inst, int upper)
{
	size_t n;

	if (!json_object_is_type(inst, json_type_string))
		return 0;
	n = (size_t)json_object_get_string_len(inst);
	if (spend(v, (long)(n / 16)))
		return 1;
	n = utf8_count(json_object_get_string(inst), n);
	return !size_ok(n, kv, upper) &&
	    fail(v,
	        upper ? "string of %zu characters is longer than %s" :
	                "string of %zu characters is shorter than %s",
	        n, show(v, kv));
}

static int
v_max_length(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	return v_length(v, kv, inst, 1);
}

static int
v_min_length(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	return v_length(v, kv, inst, 0);
}

static int
v_pattern(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	const char *pat = json_object_get_string(kv);
	int m;

	if (!json_object_is_type(inst, json_type_string) ||
	    !json_object_is_type(kv, json_type_string))
		return 0;
	m = rx_match(v, pat, json_object_get_string(inst),
	    (size_t)json_object_get_string_len(inst));
	if (m == 1)
		return 0;
	if (!loud(v))
		return 1;
	if (m < 0)
		return fail(v, "pattern %s does not compile", vquote(v, pat));
	return fail(v, "%s does not match the pattern %s", show(v, inst),
	    vquote(v, pat));
}

static int
v_format(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	const char *name;
	size_t len;

	if (!json_object_is_type(inst, json_type_string) ||
	    !json_object_is_type(kv, json_type_string))
		return 0;
	if (!jsf_known(name = json_object_get_string(kv)))
		return 0;
	len = (size_t)json_object_get_string_len(inst);
	if (spend(v, 1 + (long)(len / 16)))
		return 1;
	if (jsf_check(name, json_object_get_string(inst), len) == 1)
		return 0;
	return loud(v) ? fail(v, "%s is not a valid %s", show(v, inst), name) :
	                 1;
}

static int
v_items(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	size_t i, n, k, sm;
	int failed = 0, r;

	if (!json_object_is_type(inst, json_type_array))
		return 0;
	n = json_object_array_length(inst);
	if (json_object_is_type(kv, json_type_array)) {
		k = json_object_array_length(kv);
		for (i = 0; i < n && i < k; i++) {
			sm = v->spath.len;
			js_buf_index(&v->spath, i);
			r = validate_child(v, json_object_array_get_idx(kv, i),
			    json_object_array_get_idx(inst, i), NULL, i, NULL);
			js_buf_trunc(&v->spath, sm);
			if (r) {
				failed = 1;
				if (stop(v))
					break;
			}
		}
		return failed;
	}
	for (i = 0; i < n; i++)
		if (validate_child(v, kv, json_object_array_get_idx(inst, i),
		        NULL, i, NULL)) {
			failed = 1;
			if (stop(v))
				break;
		}
	return failed;
}

static int
v_additional_items(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	json_object *items;
	size_t i, n, k;
	int failed = 0;

	if (!json_object_is_type(inst, json_type_array) ||
	    !json_object_object_get_ex(s, "items", &items) ||
	    !json_object_is_type(items, json_type_array))
		return 0;
	n = json_object_array_length(inst);
	k = json_object_array_length(items);
	if (n <= k)
		return 0;
	if (json_object_is_type(kv, json_type_boolean))
		return !json_object_get_boolean(kv) &&
		    fail(v, "array has %zu items, more than the %zu of items",
		        n, k);
	for (i = k; i < n; i++)
		if (validate_child(v, kv, json_object_array_get_idx(inst, i),
		        NULL, i, NULL)) {
			failed = 1;
			if (stop(v))
				break;
		}
	return failed;
}

/* An array's item count: maxItems (upper) or minItems. */
static int
v_nitems(struct val *v, json_object *kv, json_object *inst, int upper)
{
	size_t n;

	if (!json_object_is_type(inst, json_type_array))
		return 0;
	n = json_object_array_length(inst);
	return !size_ok(n, kv, upper) &&
	    fail(v,
	        upper ? "array has %zu items, more than %s" :
	                "array has %zu items, fewer than %s",
	        n, show(v, kv));
}

static int
v_max_items(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	return v_nitems(v, kv, inst, 1);
}

static int
v_min_items(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	return v_nitems(v, kv, inst, 0);
}

static int
v_unique_items(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	size_t i, j, n;

	if (!json_object_is_type(inst, json_type_array) ||
	    !json_object_get_boolean(kv))
		return 0;
	n = json_object_array_length(inst);
	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++) {
			if (v->abort != NULL)
				return 1;
			if (equal(v, json_object_array_get_idx(inst, i),
			        json_object_array_get_idx(inst, j)))
				return fail(
				    v, "items %zu and %zu are equal", i, j);
		}
	return 0;
}

static int
v_contains(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	size_t i, n, im;
	int r;

	if (!json_object_is_type(inst, json_type_array))
		return 0;
	n = json_object_array_length(inst);
	for (i = 0; i < n; i++) {
		im = v->ipath.len;
		js_buf_index(&v->ipath, i);
		v->quiet++;
		r = validate(v, kv, json_object_array_get_idx(inst, i), 0);
		v->quiet--;
		js_buf_trunc(&v->ipath, im);
		if (v->abort != NULL)
			return 1;
		if (r == 0)
			return 0;
	}
	return fail(v, "no item matches the schema of contains");
}

/* An object's property count: maxProperties (upper) or minProperties. */
static int
v_nprops(struct val *v, json_object *kv, json_object *inst, int upper)
{
	size_t n;

	if (!json_object_is_type(inst, json_type_object))
		return 0;
	n = (size_t)json_object_object_length(inst);
	return !size_ok(n, kv, upper) &&
	    fail(v,
	        upper ? "object has %zu properties, more than %s" :
	                "object has %zu properties, fewer than %s",
	        n, show(v, kv));
}

static int
v_max_props(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	return v_nprops(v, kv, inst, 1);
}

static int
v_min_props(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	return v_nprops(v, kv, inst, 0);
}

static int
v_required(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	size_t i, n;
	const char *name;
	int failed = 0;

	if (!json_object_is_type(inst, json_type_object) ||
	    !json_object_is_type(kv, json_type_array))
		return 0;
	n = json_object_array_length(kv);
	if (spend(v, (long)n))
		return 1;
	for (i = 0; i < n; i++) {
		name = json_object_get_string(json_object_array_get_idx(kv, i));
		if (name == NULL || json_object_object_get_ex(inst, name, NULL))
			continue;
		failed = 1;
		if (loud(v))
			fail_at(v, name, "required property %s is missing",
			    vquote(v, name));
		if (stop(v))
			break;
	}
	return failed;
}

static int
v_properties(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	json_object *child;
	int failed = 0;

	if (!json_object_is_type(inst, json_type_object) ||
	    !json_object_is_type(kv, json_type_object))
		return 0;
	if (spend(v, json_object_object_length(kv)))
		return 1;
	json_object_object_foreach(kv, name, sub)
	{
		if (!json_object_object_get_ex(inst, name, &child))
			continue;
		if (validate_child(v, sub, child, name, 0, name)) {
			failed = 1;
			if (stop(v))
				break;
		}
	}
	return failed;
}

static int
v_pattern_props(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	int failed = 0;

	if (!json_object_is_type(inst, json_type_object) ||
	    !json_object_is_type(kv, json_type_object))
		return 0;
	json_object_object_foreach(inst, name, child)
	{
		json_object_object_foreach(kv, pat, sub)
		{
			if (rx_match(v, pat, name, strlen(name)) != 1)
				continue;
			if (validate_child(v, sub, child, name, 0, pat)) {
				failed = 1;
				if (stop(v))
					return 1;
			}
		}
	}
	return failed;
}

/* Whether name is matched by properties or patternProperties of s. */
static int
prop_known(struct val *v, json_object *s, const char *name)
{
	json_object *props, *pats;

	if (tick(v))
		return 1;
	if (json_object_object_get_ex(s, "properties", &props) &&
	    json_object_is_type(props, json_type_object) &&
	    json_object_object_get_ex(props, name, NULL))
		return 1;
	if (!json_object_object_get_ex(s, "patternProperties", &pats) ||
	    !json_object_is_type(pats, json_type_object))
		return 0;
	json_object_object_foreach(pats, pat, sub)
	{
		(void)sub;
		if (rx_match(v, pat, name, strlen(name)) == 1)
			return 1;
	}
	return 0;
}

static int
v_additional_props(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	int failed = 0, r;

	if (!json_object_is_type(inst, json_type_object))
		return 0;
	json_object_object_foreach(inst, name, child)
	{
		if (prop_known(v, s, name))
			continue;
		if (!json_object_is_type(kv, json_type_boolean))
			r = validate_child(v, kv, child, name, 0, NULL);
		else if (json_object_get_boolean(kv))
			r = 0;
		else if (loud(v))
			r = fail_at(v, name,
			    "additional property %s is not allowed",
			    vquote(v, name));
		else
			r = 1;
		if (r) {
			failed = 1;
			if (stop(v))
				break;
		}
	}
	return failed;
}

static int
v_dependencies(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	size_t i, n, sm;
	const char *need;
	int failed = 0, r;

	if (!json_object_is_type(inst, json_type_object) ||
	    !json_object_is_type(kv, json_type_object))
		return 0;
	if (spend(v, json_object_object_length(kv)))
		return 1;
	json_object_object_foreach(kv, name, dep)
	{
		if (!json_object_object_get_ex(inst, name, NULL))
			continue;
		if (!json_object_is_type(dep, json_type_array)) {
			r = validate_sub(v, dep, inst, same, name, 0);
		} else {
			sm = v->spath.len;
			js_buf_key(&v->spath, name);
			n = json_object_array_length(dep);
			r = spend(v, (long)n);
			for (i = 0; i < n && v->abort == NULL; i++) {
				need = json_object_get_string(
				    json_object_array_get_idx(dep, i));
				if (need == NULL ||
				    json_object_object_get_ex(inst, need, NULL))
					continue;
				r = 1;
				if (loud(v))
					fail_at(v, need,
					    "property %s requires property %s",
					    vquote(v, name), vquote(v, need));
				if (stop(v))
					break;
			}
			js_buf_trunc(&v->spath, sm);
		}
		if (r) {
			failed = 1;
			if (stop(v))
				break;
		}
	}
	return failed;
}

static int
v_property_names(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	json_object *key;
	int failed = 0, r;

	if (!json_object_is_type(inst, json_type_object))
		return 0;
	json_object_object_foreach(inst, name, child)
	{
		(void)child;
		key = json_object_new_string(name);
		v->quiet++;
		r = validate(v, kv, key, 0);
		v->quiet--;
		json_object_put(key);
		if (v->abort != NULL)
			return 1;
		if (r == 0)
			continue;
		failed = 1;
		if (loud(v))
			fail_at(v, name,
			    "property name %s does not match propertyNames",
			    vquote(v, name));
		if (stop(v))
			break;
	}
	return failed;
}

static int
v_all_of(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	size_t i, n;
	int failed = 0;

	if (!json_object_is_type(kv, json_type_array))
		return 0;
	n = json_object_array_length(kv);
	for (i = 0; i < n; i++)
		if (validate_sub(v, json_object_array_get_idx(kv, i), inst,
		        same, NULL, i)) {
			failed = 1;
			if (stop(v))
				break;
		}
	return failed;
}

static int
v_any_of(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	size_t i, n;

	if (!json_object_is_type(kv, json_type_array))
		return 0;
	n = json_object_array_length(kv);
	for (i = 0; i < n; i++) {
		if (try(v, json_object_array_get_idx(kv, i), inst, same) == 0)
			return 0;
		if (v->abort != NULL)
			return 1;
	}
	return fail(v, "matches none of the %zu schemas of anyOf", n);
}

static int
v_one_of(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	size_t i, n, first = 0, matched = 0;

	if (!json_object_is_type(kv, json_type_array))
		return 0;
	n = json_object_array_length(kv);
	for (i = 0; i < n; i++) {
		if (try(v, json_object_array_get_idx(kv, i), inst, same) != 0) {
			if (v->abort != NULL)
				return 1;
			continue;
		}
		if (matched++ > 0)
			return fail(v,
			    "matches schemas %zu and %zu of oneOf, not one",
			    first, i);
		first = i;
	}
	if (matched == 1)
		return 0;
	return fail(v, "matches none of the %zu schemas of oneOf", n);
}

static int
v_not(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	if (try(v, kv, inst, same) != 0)
		return v->abort != NULL;
	return fail(v, "matches the schema of not");
}

static int
v_if(
    struct val *v, json_object *s, json_object *kv, json_object *inst, int same)
{
	json_object *branch;
	const char *name;
	size_t sm = v->spath.len;
	int r;

	r = try(v, kv, inst, same);
	if (v->abort != NULL)
		return 1;
	name = r == 0 ? "then" : "else";
	if (!json_object_object_get_ex(s, name, &branch))
		return 0;
	/* The branch is the sibling of "if": swap the last token. */
	js_buf_trunc(&v->spath, sm - 3);
	r = validate_sub(v, branch, inst, same, name, 0);
	js_buf_trunc(&v->spath, sm - 3);
	jsr_buf_str(&v->spath, "/if");
	return r;
}

static int
v_ref(struct val *v, json_object *ref, json_object *inst, int same)
{
	struct jsr_buf saved = { NULL, 0, 0 };
	json_object *target;
	const char *str = json_object_get_string(ref);
	int r;

	if (str == NULL || !json_object_is_type(ref, json_type_string))
		return 0;
	jsr_buf_add(&saved, v->spath.s, v->spath.len);
	js_buf_trunc(&v->spath, 0);
	if (js_resolve(v->root, str, &target, &v->spath) < 0) {
		js_buf_trunc(&v->spath, 0);
		jsr_buf_add(&v->spath, saved.s, saved.len);
		jsr_buf_str(&v->spath, "/$ref");
		r = loud(v) ?
		    fail(v, "$ref %s does not resolve", vquote(v, str)) :
		    1;
	} else
		r = validate(v, target, inst, same + 1);
	js_buf_trunc(&v->spath, 0);
	jsr_buf_add(&v->spath, saved.s, saved.len);
	free(saved.s);
	return r;
}

/*
 * Validate inst against the schema s; v->spath is the path of s.  same:
 * $ref and applicator steps taken on inst so far.  Returns 0 when inst
 * is valid, 1 when not, with errors reported when loud.
 */
static int
validate(struct val *v, json_object *s, json_object *inst, int same)
{
	const struct js_keyword *kw;
	json_object *ref;
	size_t sm;
	int failed = 0;

	if (v->abort != NULL)
		return 1;
	if (json_object_is_type(s, json_type_boolean))
		return !json_object_get_boolean(s) &&
		    fail(v, "no value is allowed here (false schema)");
	if (!json_object_is_type(s, json_type_object))
		return 0;
	if (tick(v))
		return 1;
	if (same > MAX_SAME)
		return vabort(v,
		    "more than 64 $ref and applicator steps at one place "
		    "in the instance (a recursive schema?)");
	if (v->depth >= MAX_DEPTH)
		return vabort(
		    v, "schema and instance nest more than 1000 steps deep");
	v->depth++;
	if (json_object_object_get_ex(s, "$ref", &ref)) {
		/* Draft 7: the members beside $ref are ignored. */
		failed = v_ref(v, ref, inst, same);
		v->depth--;
		return failed;
	}
	json_object_object_foreach(s, key, kv)
	{
		if ((kw = js_kw_find(key)) == NULL || kw->fn == NULL)
			continue;
		sm = v->spath.len;
		js_buf_key(&v->spath, key);
		if (kw->fn(v, s, kv, inst, same))
			failed = 1;
		js_buf_trunc(&v->spath, sm);
		if (failed && stop(v))
			break;
	}
	v->depth--;
	return failed;
}

int
js_validate(json_object *schema, json_object *instance, json_object *errs,
    int max_errors)
{
	struct val v;
	size_t i;
	int r;

	memset(&v, 0, sizeof(v));
	v.root = schema;
	v.errs = errs;
	v.max = max_errors < 1 ? 1 : max_errors;
	jsr_buf_add(&v.ipath, "", 0);
	jsr_buf_add(&v.spath, "", 0);
	r = validate(&v, schema, instance, 0);
	if (v.abort != NULL && v.nerr < v.max) {
		if (v.errs != NULL)
			json_object_array_add(v.errs, v.abort);
		else
			json_object_put(v.abort);
		v.nerr++;
	} else {
		json_object_put(v.abort);
		if (r != 0 && v.nerr == 0) {
			/* Cannot happen: a failure always reports. */
			if (v.errs != NULL)
				json_object_array_add(
				    v.errs, mkerr(&v, "invalid"));
			v.nerr++;
		}
	}
	jsr_cache_free(&v.rx);
	for (i = 0; i < nitems(v.shows); i++)
		free(v.shows[i].s);
	free(v.ipath.s);
	free(v.spath.s);
	return v.nerr;
}
