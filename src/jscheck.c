/*
 * jscheck.c: js_check, declared in jsonschema.h, which tells whether a
 * schema keeps to the subset of JSON Schema draft 7 that js_validate
 * (jsonschema.c) supports and, when it does not, what and where the
 * first problem is.
 *
 * It walks the schema and checks each keyword's value by the kind the
 * keyword table of jsonschema_int.h gives it; patterns are compiled by
 * jsregex.c, format names looked up in jsformat.c.  It collects the
 * $refs it meets and the members it does not know, and decides about
 * them only at the end: a $ref's target not reached as a schema is
 * checked as one where it is, and an unknown member is refused unless a
 * $ref points into it.  The first failure ends the walk and is the only
 * message; all that the walk allocates is freed before js_check returns.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "jsformat.h"
#include "jsonschema.h"
#include "jsonschema_int.h"
#include "jsregex.h"
#include "util.h"

#define PATH_MAX_MSG 200 /* bytes of a schema path in a message */

struct cref {
	char *to; /* canonical pointer of the target */
	json_object *target;
};

struct unknown {
	char *path;   /* of the member */
	char *schema; /* of the schema that has it */
	char *name;
};

struct chk {
	json_object *root;
	char *err;
	size_t errlen;
	int failed;
	struct jsr_buf path;
	json_object **seen;
	size_t nseen, capseen;
	struct cref *refs;
	size_t nrefs, caprefs;
	struct unknown *unk;
	size_t nunk, capunk;
	char *idpath; /* the first $id below the root */
	int targets;  /* walking the targets of $refs */
	struct jsr_buf quoted;
};

static void cfail(struct chk *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/* Fail with the message, then " at " and the path (as a JSON pointer). */
static void
cfail(struct chk *c, const char *fmt, ...)
{
	struct jsr_buf m = { NULL, 0, 0 };
	va_list ap;
	char tmp[256];

	if (c->failed)
		return;
	c->failed = 1;
	if (c->err == NULL || c->errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	jsr_buf_str(&m, tmp);
	jsr_buf_str(&m, " at ");
	if (c->path.len == 0)
		jsr_buf_str(&m, "the root");
	else
		js_buf_esc(&m, c->path.s, c->path.len, PATH_MAX_MSG);
	snprintf(c->err, c->errlen, "%s", m.s);
	free(m.s);
}

/* s quoted, escaped and cut for a message (valid until the next call). */
static const char *
cquote(struct chk *c, const char *s)
{
	js_buf_trunc(&c->quoted, 0);
	js_buf_quote(&c->quoted, s, strlen(s));
	return c->quoted.s;
}

static void chk_schema(struct chk *, json_object *);

static void
chk_push(struct chk *c, const char *key, size_t *mark)
{
	*mark = c->path.len;
	js_buf_key(&c->path, key);
}

static void
chk_pop(struct chk *c, size_t mark)
{
	js_buf_trunc(&c->path, mark);
}

/* Each item of the array v as a schema. */
static void
chk_schema_array(struct chk *c, json_object *v)
{
	size_t i, n = json_object_array_length(v), mark;

	for (i = 0; i < n && !c->failed; i++) {
		mark = c->path.len;
		js_buf_index(&c->path, i);
		chk_schema(c, json_object_array_get_idx(v, i));
		chk_pop(c, mark);
	}
}

static int
is_count(json_object *o)
{
	return js_is_integer(o) && json_object_get_double(o) >= 0;
}

static int
chk_names(struct chk *c, json_object *v, const char *what)
{
	size_t i, n;

	if (!json_object_is_type(v, json_type_array)) {
		cfail(c, "%s must be an array of strings", what);
		return -1;
	}
	n = json_object_array_length(v);
	for (i = 0; i < n; i++)
		if (!json_object_is_type(
		        json_object_array_get_idx(v, i), json_type_string)) {
			cfail(c, "%s must be an array of strings", what);
			return -1;
		}
	return 0;
}

static void
chk_pattern(struct chk *c, const char *src)
{
	char msg[160];
	regex_t *re;

	if ((re = jsr_compile(src, msg, sizeof(msg))) == NULL) {
		cfail(c, "pattern %s: %s", cquote(c, src), msg);
		return;
	}
	jsr_free(re);
}

static void
chk_ref(struct chk *c, json_object *v)
{
	struct jsr_buf canon = { NULL, 0, 0 };
	json_object *target;
	const char *ref;

	if (!json_object_is_type(v, json_type_string)) {
		cfail(c, "\"$ref\" must be a string");
		return;
	}
	ref = json_object_get_string(v);
	if (ref[0] != '#' ||
	    (ref[1] != '\0' && ref[1] != '/' && ref[1] != '%')) {
		cfail(c, "$ref %s is not a local JSON pointer (unsupported)",
		    cquote(c, ref));
		return;
	}
	jsr_buf_add(&canon, "", 0);
	if (js_resolve(c->root, ref, &target, &canon) < 0) {
		cfail(c, "$ref %s does not resolve", cquote(c, ref));
		free(canon.s);
		return;
	}
	if (!json_object_is_type(target, json_type_object) &&
	    !json_object_is_type(target, json_type_boolean)) {
		cfail(c, "$ref %s names a value that is not a schema",
		    cquote(c, ref));
		free(canon.s);
		return;
	}
	if (c->nrefs == c->caprefs) {
		c->caprefs = c->caprefs > 0 ? c->caprefs * 2 : 8;
		c->refs = xreallocarray(c->refs, c->caprefs, sizeof(*c->refs));
	}
	c->refs[c->nrefs].to = canon.s;
	c->refs[c->nrefs].target = target;
	c->nrefs++;
}

/* The value v of keyword kw in schema s; c->path is the keyword's. */
static void
chk_keyword(
    struct chk *c, json_object *s, const struct js_keyword *kw, json_object *v)
{
	size_t i, n, mark;
	json_object *e;

	switch (kw->kind) {
	case K_ANNOT:
		break;
	case K_SCHEMA:
		chk_schema(c, v);
		break;
	case K_SCHEMAS:
		if (!json_object_is_type(v, json_type_array) ||
		    json_object_array_length(v) == 0) {
			cfail(c, "\"%s\" must be a non-empty array of schemas",
			    kw->name);
			break;
		}
		chk_schema_array(c, v);
		break;
	case K_SCHEMAMAP:
	case K_PATTERNMAP: {
		if (!json_object_is_type(v, json_type_object)) {
			cfail(c, "\"%s\" must be an object", kw->name);
			break;
		}
		json_object_object_foreach(v, key, sub)
		{
			chk_push(c, key, &mark);
			if (kw->kind == K_PATTERNMAP)
				chk_pattern(c, key);
			chk_schema(c, sub);
			chk_pop(c, mark);
			if (c->failed)
				break;
		}
		break;
	}
	case K_COUNT:
		if (!is_count(v))
			cfail(c, "\"%s\" must be a non-negative integer",
			    kw->name);
		break;
	case K_NUMBER:
		if (!js_is_number(v))
			cfail(c, "\"%s\" must be a number", kw->name);
		break;
	case K_POSITIVE:
		if (!js_is_number(v) || !(json_object_get_double(v) > 0) ||
		    json_object_get_double(v) - json_object_get_double(v) != 0)
			cfail(c, "\"%s\" must be a number greater than 0",
			    kw->name);
		break;
	case K_BOOL:
		if (!json_object_is_type(v, json_type_boolean))
			cfail(c, "\"%s\" must be a boolean", kw->name);
		break;
	case K_TYPE:
		if (json_object_is_type(v, json_type_string)) {
			if (!js_type_known(json_object_get_string(v)))
				cfail(c, "%s is not a type name",
				    cquote(c, json_object_get_string(v)));
			break;
		}
		if (!json_object_is_type(v, json_type_array) ||
		    (n = json_object_array_length(v)) == 0) {
			cfail(c,
			    "\"type\" must be a type name or a non-empty "
			    "array of them");
			break;
		}
		for (i = 0; i < n; i++) {
			e = json_object_array_get_idx(v, i);
			if (!json_object_is_type(e, json_type_string) ||
			    !js_type_known(json_object_get_string(e))) {
				cfail(c,
				    "\"type\" must be a type name or a "
				    "non-empty array of them");
				break;
			}
		}
		break;
	case K_ENUM:
		if (!json_object_is_type(v, json_type_array))
			cfail(c, "\"enum\" must be an array");
		break;
	case K_PATTERN:
		if (!json_object_is_type(v, json_type_string))
			cfail(c, "\"pattern\" must be a string");
		else
			chk_pattern(c, json_object_get_string(v));
		break;
	case K_ITEMS:
		if (!json_object_is_type(v, json_type_array)) {
			chk_schema(c, v);
			break;
		}
		chk_schema_array(c, v);
		break;
	case K_NAMES:
		chk_names(c, v, "\"required\"");
		break;
	case K_DEPS: {
		if (!json_object_is_type(v, json_type_object)) {
			cfail(c, "\"dependencies\" must be an object");
			break;
		}
		json_object_object_foreach(v, key, dep)
		{
			chk_push(c, key, &mark);
			if (json_object_is_type(dep, json_type_array))
				chk_names(c, dep, "a dependency");
			else
				chk_schema(c, dep);
			chk_pop(c, mark);
			if (c->failed)
				break;
		}
		break;
	}
	case K_FORMAT:
		if (!json_object_is_type(v, json_type_string))
			cfail(c, "\"format\" must be a string");
		else if (!jsf_known(json_object_get_string(v)))
			cfail(c, "unsupported format %s",
			    cquote(c, json_object_get_string(v)));
		break;
	case K_REF:
		chk_ref(c, v);
		break;
	case K_ID:
		if (!json_object_is_type(v, json_type_string))
			cfail(c, "\"$id\" must be a string");
		else if (s != c->root && c->idpath == NULL)
			c->idpath = xstrdup(c->path.s);
		break;
	}
}

static int
chk_seen(struct chk *c, json_object *s)
{
	size_t i;

	for (i = 0; i < c->nseen; i++)
		if (c->seen[i] == s)
			return 1;
	return 0;
}

/* The schema s; c->path is its path. */
static void
chk_schema(struct chk *c, json_object *s)
{
	const struct js_keyword *kw;
	struct unknown *u;
	size_t mark;

	if (c->failed || json_object_is_type(s, json_type_boolean))
		return;
	if (!json_object_is_type(s, json_type_object)) {
		cfail(c, "expected a schema (an object or a boolean)");
		return;
	}
	/* In the tree each schema is met once; a target may be met again. */
	if (c->targets && chk_seen(c, s))
		return;
	if (c->nseen == c->capseen) {
		c->capseen = c->capseen > 0 ? c->capseen * 2 : 32;
		c->seen = xreallocarray(c->seen, c->capseen, sizeof(*c->seen));
	}
	c->seen[c->nseen++] = s;
	json_object_object_foreach(s, key, v)
	{
		chk_push(c, key, &mark);
		if ((kw = js_kw_find(key)) != NULL) {
			chk_keyword(c, s, kw, v);
		} else {
			if (c->nunk == c->capunk) {
				c->capunk = c->capunk > 0 ? c->capunk * 2 : 8;
				c->unk = xreallocarray(
				    c->unk, c->capunk, sizeof(*c->unk));
			}
			u = &c->unk[c->nunk++];
			u->path = xstrdup(c->path.s);
			u->schema = xstrndup(c->path.s, mark);
			u->name = xstrdup(key);
		}
		chk_pop(c, mark);
		if (c->failed)
			return;
	}
}

/* Whether a $ref points at or into the member at path. */
static int
chk_referenced(struct chk *c, const char *path)
{
	size_t i, n = strlen(path);

	for (i = 0; i < c->nrefs; i++)
		if (strncmp(c->refs[i].to, path, n) == 0 &&
		    (c->refs[i].to[n] == '\0' || c->refs[i].to[n] == '/'))
			return 1;
	return 0;
}

int
js_check(json_object *schema, char *err, size_t errlen)
{
	struct chk c;
	size_t i;

	memset(&c, 0, sizeof(c));
	c.root = schema;
	c.err = err;
	c.errlen = errlen;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	jsr_buf_add(&c.path, "", 0);
	chk_schema(&c, schema);
	/* The targets of $refs that the walk did not reach as schemas. */
	c.targets = 1;
	for (i = 0; i < c.nrefs && !c.failed; i++)
		if (!chk_seen(&c, c.refs[i].target)) {
			js_buf_trunc(&c.path, 0);
			jsr_buf_str(&c.path, c.refs[i].to);
			chk_schema(&c, c.refs[i].target);
		}
	for (i = 0; i < c.nunk && !c.failed; i++)
		if (!chk_referenced(&c, c.unk[i].path)) {
			js_buf_trunc(&c.path, 0);
			jsr_buf_str(&c.path, c.unk[i].schema);
			cfail(&c, "unsupported keyword %s",
			    cquote(&c, c.unk[i].name));
		}
	if (!c.failed && c.idpath != NULL && c.nrefs > 0) {
		js_buf_trunc(&c.path, 0);
		jsr_buf_str(&c.path, c.idpath);
		cfail(&c,
		    "\"$id\" below the root with \"$ref\" in the schema "
		    "is unsupported");
	}
	for (i = 0; i < c.nrefs; i++)
		free(c.refs[i].to);
	for (i = 0; i < c.nunk; i++) {
		free(c.unk[i].path);
		free(c.unk[i].schema);
		free(c.unk[i].name);
	}
	free(c.refs);
	free(c.unk);
	free(c.seen);
	free(c.idpath);
	free(c.path.s);
	free(c.quoted.s);
	return c.failed ? -1 : 0;
}
