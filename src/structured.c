/*
 * structured.c: what a worker does with a reply that is meant to be
 * JSON: a request with a response_schema, or a reply of tool calls.  A
 * reply that merely looks like JSON is parsed as a courtesy, and stands
 * whether it parses or not.
 *
 * The reply text is parsed with jr_parse() (src/jsonreply.c), which
 * finds the one JSON value in it (inside a Markdown fence, or after some
 * prose); a failure is error kind parse_error with the byte position,
 * the tokener's message and the text around it.  The value is validated
 * against the schema with js_validate() (src/jsonschema.c); the errors,
 * each with the JSON path of the instance, go to validation_errors and
 * the request fails with validation_error.  Tool calls are normalised by
 * the provider code to {"id", "name", "arguments"}; here the arguments
 * (a text from OpenAI) are parsed and validated against the parameters
 * of the tool of that name.  What is valid goes to parsed_response:
 * the value of the reply, or {"tool_calls": [...]} (with "content" when
 * the text held a value too).
 *
 * Both failures may be mended by asking again: structured_reask()
 * gives the conversation of the next round, the call's messages with
 * the model's reply and a message naming what was wrong.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "jsonreply.h"
#include "jsonschema.h"
#include "provider.h"
#include "structured.h"
#include "util.h"

#define MAX_ERRORS 20  /* kept in validation_errors */
#define REASK_ERRORS 5 /* named in a re-ask */

static const char *
json_text(json_object *o)
{
	return json_object_to_json_string_ext(
	    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* errs: validation errors so far; prefix each new one's path. */
static void
prefix_paths(json_object *errs, size_t from, const char *prefix)
{
	json_object *e, *p;
	size_t i;
	char *s;

	for (i = from; i < json_object_array_length(errs); i++) {
		e = json_object_array_get_idx(errs, i);
		if (!json_object_object_get_ex(e, "path", &p))
			continue;
		s = xasprintf("%s%s", prefix, json_object_get_string(p));
		json_object_object_add(e, "path", json_object_new_string(s));
		free(s);
	}
}

static void
add_error(json_object *errs, const char *path, const char *msg)
{
	json_object *e = json_object_new_object();

	json_object_object_add(e, "path", json_object_new_string(path));
	json_object_object_add(e, "schema_path", json_object_new_string(""));
	json_object_object_add(e, "message", json_object_new_string(msg));
	json_object_array_add(errs, e);
}

static int
blank(const char *s)
{
	return s[strspn(s, " \t\r\n")] == '\0';
}

/* The tool of that name among the request's, or NULL. */
static json_object *
find_tool(json_object *tools, const char *name)
{
	json_object *t, *f, *n;
	size_t i;

	for (i = 0; tools != NULL && i < json_object_array_length(tools);
	     i++) {
		t = json_object_array_get_idx(tools, i);
		if (json_object_object_get_ex(t, "function", &f) &&
		    json_object_object_get_ex(f, "name", &n) &&
		    json_object_is_type(n, json_type_string) &&
		    strcmp(json_object_get_string(n), name) == 0)
			return f;
	}
	return NULL;
}

/*
 * PostgreSQL's jsonb holds no \u0000: a NUL in a string of the value
 * becomes U+FFFD, as in the reply's text (provider.c).  Keys too.
 */
static json_object *
scrub(json_object *o)
{
	const char *p;
	char *t, *q;
	size_t i, len, n = 0;
	json_object *v, *out;

	switch (json_object_get_type(o)) {
	case json_type_string:
		p = json_object_get_string(o);
		len = (size_t)json_object_get_string_len(o);
		if (memchr(p, '\0', len) == NULL)
			return o;
		for (i = 0; i < len; i++)
			n += p[i] == '\0';
		q = t = xmalloc(len + n * 2 + 1);
		for (i = 0; i < len; i++)
			if (p[i] == '\0')
				*q++ = (char)0xef, *q++ = (char)0xbf,
				*q++ = (char)0xbd;
			else
				*q++ = p[i];
		v = json_object_new_string_len(t, (int)(q - t));
		free(t);
		json_object_put(o);
		return v;
	case json_type_array:
		for (i = 0; i < json_object_array_length(o); i++) {
			v = json_object_get(json_object_array_get_idx(o, i));
			json_object_array_put_idx(o, i, scrub(v));
		}
		return o;
	case json_type_object:
		out = json_object_new_object();
		json_object_object_foreach(o, key, val)
		{
			v = scrub(json_object_get(val));
			/* A key with a NUL was cut there by json-c already. */
			json_object_object_add(out, key, v);
		}
		json_object_put(o);
		return out;
	default:
		return o;
	}
}

static void
parse_failed(struct call *c, const char *what, const struct jr_result *r)
{
	provider_call_fail(c, "parse_error",
	    "%s not valid JSON at byte %zu: %s: %s", what, r->pos, r->message,
	    r->preview);
}

/*
 * The tool calls: arguments parsed, each checked against its tool.
 * Returns the normalised array (new), or NULL after failing c.
 */
static json_object *
check_tools(struct call *c, json_object *errs)
{
	json_object *out, *t, *name, *args, *tool, *params, *n;
	struct jr_result r;
	size_t i, before;
	char what[160], *path;
	const char *nm;

	out = json_object_new_array();
	for (i = 0; i < json_object_array_length(c->tool_calls); i++) {
		t = json_object_array_get_idx(c->tool_calls, i);
		json_object_object_get_ex(t, "name", &name);
		json_object_object_get_ex(t, "arguments", &args);
		nm = name != NULL ? json_object_get_string(name) : "";
		n = json_object_new_object();
		json_object_object_add(n, "id",
		    json_object_object_get_ex(t, "id", &tool) ?
		        json_object_get(tool) :
		        NULL);
		json_object_object_add(n, "name", json_object_new_string(nm));
		if (args != NULL && json_object_is_type(args, json_type_string) &&
		    blank(json_object_get_string(args))) {
			/* No arguments at all: none, as an empty object. */
			json_object_object_add(
			    n, "arguments", json_object_new_object());
		} else if (args != NULL &&
		    json_object_is_type(args, json_type_string)) {
			/* OpenAI: the text of the arguments. */
			memset(&r, 0, sizeof(r));
			if (jr_parse(json_object_get_string(args),
			        (size_t)json_object_get_string_len(args),
			        &r) == -1) {
				snprintf(what, sizeof(what),
				    "the arguments of tool call %zu (%.64s) are",
				    i, nm);
				parse_failed(c, what, &r);
				json_object_put(n);
				json_object_put(out);
				return NULL;
			}
			json_object_object_add(n, "arguments", scrub(r.value));
		} else
			json_object_object_add(n, "arguments",
			    args != NULL ? scrub(json_object_get(args)) :
			                   json_object_new_object());
		json_object_array_add(out, n);
		if (c->tools == NULL)
			continue;
		path = xasprintf("/tool_calls/%zu", i);
		if ((tool = find_tool(c->tools, nm)) == NULL) {
			snprintf(what, sizeof(what), "no tool named \"%.64s\"",
			    nm);
			free(path);
			path = xasprintf("/tool_calls/%zu/name", i);
			add_error(errs, path, what);
		} else if (json_object_object_get_ex(
		               tool, "parameters", &params)) {
			before = json_object_array_length(errs);
			json_object_object_get_ex(n, "arguments", &args);
			if (before < MAX_ERRORS)
				js_validate(params, args, errs,
				    MAX_ERRORS - (int)before);
			free(path);
			path = xasprintf("/tool_calls/%zu/arguments", i);
			prefix_paths(errs, before, path);
		}
		free(path);
	}
	return out;
}

int
structured_usable(const struct call *c, char *err, size_t errlen)
{
	json_object *t, *f, *params;
	char why[256];
	size_t i;

	if (c->schema != NULL && js_check(c->schema, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "response_schema: %s", why);
		return -1;
	}
	for (i = 0; c->tools != NULL && i < json_object_array_length(c->tools);
	     i++) {
		t = json_object_array_get_idx(c->tools, i);
		if (json_object_object_get_ex(t, "function", &f) &&
		    json_object_object_get_ex(f, "parameters", &params) &&
		    js_check(params, why, sizeof(why)) == -1) {
			snprintf(err, errlen, "tools: %zu: parameters: %s", i, why);
			return -1;
		}
	}
	return 0;
}

int
structured_check(struct call *c)
{
	json_object *errs, *value = NULL, *calls = NULL, *out, *e, *p, *m;
	struct jr_result r;
	size_t len = c->text != NULL ? strlen(c->text) : 0, before, n;
	int looks;

	if (!c->ok)
		return 0;
	looks = len > 0 && jr_looks_like_json(c->text, len);
	/*
	 * Without a schema, tool calls or tools asked for, a reply that
	 * looks like JSON is parsed as a courtesy: "[Verse 1] ... [Chorus]"
	 * is a fine reply to a request that never asked for JSON.
	 */
	if (c->schema == NULL && c->tool_calls == NULL && !c->expect_tools) {
		if (looks && jr_parse(c->text, len, &r) == 0) {
			json_object_put(c->parsed);
			c->parsed = scrub(r.value);
		}
		return 0;
	}
	errs = json_object_new_array();
	if (c->tool_calls != NULL &&
	    (calls = check_tools(c, errs)) == NULL) {
		json_object_put(errs);
		return -1;
	}
	/* Asked again about its tool calls, it answered without any. */
	if (c->tool_calls == NULL && c->expect_tools && c->schema == NULL)
		add_error(errs, "/tool_calls", "expected tool calls");
	/*
	 * The text: with a schema, unless the reply is tool calls and no
	 * text (the agent's "call a tool, or answer in the schema"); with
	 * tool calls only, when it looks like JSON.
	 */
	if ((c->schema != NULL && (calls == NULL || len > 0)) ||
	    (calls != NULL && looks)) {
		memset(&r, 0, sizeof(r));
		if (jr_parse(c->text, len, &r) == -1) {
			parse_failed(c, "the reply is", &r);
			json_object_put(calls);
			json_object_put(errs);
			return -1;
		}
		value = scrub(r.value);
		if (c->schema != NULL) {
			before = json_object_array_length(errs);
			if (before < MAX_ERRORS)
				js_validate(c->schema, value, errs,
				    MAX_ERRORS - (int)before);
			if (calls != NULL)
				prefix_paths(errs, before, "/content");
		}
	}
	if ((n = json_object_array_length(errs)) > 0) {
		e = json_object_array_get_idx(errs, 0);
		json_object_object_get_ex(e, "path", &p);
		json_object_object_get_ex(e, "message", &m);
		provider_call_fail(c, "validation_error",
		    "the reply does not match its schema: %zu error%s, the "
		    "first at \"%s\": %s",
		    n, n == 1 ? "" : "s", json_object_get_string(p),
		    json_object_get_string(m));
		json_object_put(c->verrors);
		c->verrors = errs;
		json_object_put(value);
		json_object_put(calls);
		return -1;
	}
	if (calls != NULL) {
		out = json_object_new_object();
		json_object_object_add(out, "tool_calls", calls);
		if (value != NULL)
			json_object_object_add(out, "content", value);
	} else
		out = value;
	/* json-c's null is NULL: a reply of null leaves the column null. */
	json_object_put(c->parsed);
	c->parsed = out;
	json_object_put(errs);
	return 0;
}

/* Append s to the growing text buf (len used, cap allocated); frees s. */
static void
append(char **buf, size_t *len, size_t *cap, char *s)
{
	size_t n = strlen(s);

	if (*len + n + 1 > *cap) {
		*cap = (*len + n + 1) * 2;
		*buf = xrealloc(*buf, *cap);
	}
	memcpy(*buf + *len, s, n + 1);
	*len += n;
	free(s);
}

char *
structured_reask(const struct call *c)
{
	json_object *msgs, *m, *e, *p, *s;
	struct json_tokener *tok;
	const char *reply;
	char *out, *text = NULL;
	size_t i, n, len = 0, cap = 0;

	if ((tok = json_tokener_new_ex(64)) == NULL)
		return NULL;
	msgs = json_tokener_parse_ex(
	    tok, provider_call_messages(c), (int)c->prompt_bytes);
	json_tokener_free(tok);
	if (msgs == NULL || !json_object_is_type(msgs, json_type_array)) {
		json_object_put(msgs);
		return NULL;
	}
	/* The model's reply as it was: its text, or its tool calls. */
	if (c->text != NULL && c->text[0] != '\0')
		reply = c->text;
	else if (c->tool_calls != NULL)
		reply = json_text(c->tool_calls);
	else
		reply = "";
	m = json_object_new_object();
	json_object_object_add(m, "role", json_object_new_string("assistant"));
	json_object_object_add(m, "content", json_object_new_string(reply));
	json_object_array_add(msgs, m);

	/* What was wrong: the parse error, or the first few errors. */
	append(&text, &len, &cap, xstrdup("Your reply could not be used.\n"));
	if (c->verrors != NULL) {
		n = json_object_array_length(c->verrors);
		for (i = 0; i < n && i < REASK_ERRORS; i++) {
			e = json_object_array_get_idx(c->verrors, i);
			p = s = NULL;
			json_object_object_get_ex(e, "path", &p);
			json_object_object_get_ex(e, "message", &s);
			append(&text, &len, &cap,
			    xasprintf("At \"%s\": %s.\n",
			        p != NULL ? json_object_get_string(p) : "",
			        s != NULL ? json_object_get_string(s) : ""));
		}
		if (n > REASK_ERRORS)
			append(&text, &len, &cap,
			    xasprintf("And %zu more.\n", n - REASK_ERRORS));
	} else if (c->error_message != NULL)
		append(&text, &len, &cap, xasprintf("%s.\n", c->error_message));
	append(&text, &len, &cap,
	    xstrdup(c->tool_calls != NULL || c->expect_tools ?
	            "Call the tools again with arguments that fix this." :
	            "Reply again with only the corrected JSON, nothing "
	            "before or after it."));
	m = json_object_new_object();
	json_object_object_add(m, "role", json_object_new_string("user"));
	json_object_object_add(m, "content", json_object_new_string(text));
	json_object_array_add(msgs, m);
	free(text);
	out = xstrdup(json_text(msgs));
	json_object_put(msgs);
	return out;
}
