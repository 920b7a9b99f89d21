/*
 * stream.c: the incremental parser of streamed chat replies declared in
 * stream.h, Ollama's NDJSON and the Server-Sent Events of OpenAI's
 * dialect, as a transfer delivers them.
 *
 * The caller owns the body: one buffer it appends to and hands over
 * whole on every call.  The parser consumes complete lines only and
 * remembers where it stopped (pos) and how far past that it has already
 * looked for a newline (scan), so a line that arrives a byte at a time
 * is still scanned once, and nothing of the body is copied but an SSE
 * event's data lines, which must be joined before they can be parsed.
 * The text and the event buffers grow by doubling.  Every record is
 * parsed with the same limits as provider.c's replies (nesting depth 64,
 * strict JSON, UTF-8 validated), and a NUL in the text, which no text
 * column holds, becomes U+FFFD.
 *
 * Two things end the parse for good, so that the caller sees one cause:
 * an error record (kept in st->error, in a shape provider.c's
 * error_info() reads) and a record that is not a JSON object (described
 * in st->bad).  Completion (st->done) does not: OpenAI sends the usage
 * chunk after the chunk with finish_reason.
 */
#include "config.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "log.h"
#include "stream.h"
#include "util.h"

#define JSON_DEPTH 64 /* nesting accepted in a record, as provider.c */
/* Text kept of an error that is not JSON: more than a row keeps (500). */
#define ERRTEXT_MAX 4096

void
stream_init(struct stream *st, enum stream_dialect d)
{
	memset(st, 0, sizeof(*st));
	st->dialect = d;
	st->prompt_tokens = st->completion_tokens = -1;
}

void
stream_free(struct stream *st)
{
	free(st->data);
	free(st->text);
	json_object_put(st->error);
	json_object_put(st->tool_calls);
	st->tool_calls = NULL;
	if (st->tok != NULL)
		json_tokener_free(st->tok);
	st->data = st->text = NULL;
	st->datalen = st->datacap = st->textlen = st->textcap = 0;
	st->error = NULL;
	st->tok = NULL;
}

static int
stopped(const struct stream *st)
{
	return st->error != NULL || st->bad[0] != '\0';
}

/* Room for need bytes in *b, growing by doubling. */
static void
reserve(char **b, size_t *cap, size_t need)
{
	size_t n;

	if (need <= *cap)
		return;
	for (n = *cap > 0 ? *cap : 256; n < need; n *= 2)
		if (n > SIZE_MAX / 2)
			fatalx("stream buffer of %zu bytes", need);
	*b = xrealloc(*b, n);
	*cap = n;
}

/*
 * Append the JSON string s to the reply text, each NUL as U+FFFD;
 * returns the bytes added.  The text exists from the first content on,
 * even an empty one, so that NULL means "no content at all".
 */
static size_t
add_text(struct stream *st, json_object *s)
{
	const char *p = json_object_get_string(s), *z;
	size_t len = (size_t)json_object_get_string_len(s), nul = 0, i;
	char *q;

	for (z = p; (z = memchr(z, '\0', len - (size_t)(z - p))) != NULL; z++)
		nul++;
	reserve(&st->text, &st->textcap, st->textlen + len + nul * 2 + 1);
	q = st->text + st->textlen;
	if (nul == 0) {
		memcpy(q, p, len);
		q += len;
	} else
		for (i = 0; i < len; i++) {
			if (p[i] == '\0') {
				/* U+FFFD REPLACEMENT CHARACTER */
				*q++ = (char)0xef;
				*q++ = (char)0xbf;
				*q++ = (char)0xbd;
			} else
				*q++ = p[i];
		}
	*q = '\0';
	len = (size_t)(q - (st->text + st->textlen));
	st->textlen += len;
	if (len > 0)
		st->deltas++;
	return len;
}

static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * Parse the len bytes at s as one JSON value.  NULL when they are not
 * exactly that, with *why and *at (the byte of s it concerns) set.
 */
static json_object *
parse(
    struct stream *st, const char *s, size_t len, const char **why, size_t *at)
{
	enum json_tokener_error jerr;
	json_object *o;
	size_t i;

	if (len > INT_MAX) {
		*why = "record too long", *at = 0;
		return NULL;
	}
	if (st->tok == NULL) {
		if ((st->tok = json_tokener_new_ex(JSON_DEPTH)) == NULL)
			fatalx("out of memory (json tokener)");
#ifdef JSON_TOKENER_VALIDATE_UTF8
		json_tokener_set_flags(
		    st->tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
#else
		json_tokener_set_flags(st->tok, JSON_TOKENER_STRICT);
#endif
	} else
		json_tokener_reset(st->tok);
	o = json_tokener_parse_ex(st->tok, s, (int)len);
	jerr = json_tokener_get_error(st->tok);
	if (o == NULL || jerr != json_tokener_success) {
		json_object_put(o);
		if (jerr == json_tokener_continue) {
			*why = "unexpected end of record", *at = len;
		} else {
			*why = json_tokener_error_desc(jerr);
			*at = json_tokener_get_parse_end(st->tok);
		}
		return NULL;
	}
	for (i = json_tokener_get_parse_end(st->tok); i < len; i++)
		if (!is_space(s[i])) {
			json_object_put(o);
			*why = "trailing data", *at = i;
			return NULL;
		}
	return o;
}

/*
 * The record of len bytes at s (white space trimmed), found at byte off
 * of the body, as a JSON object; NULL with st->bad set when it is not
 * one.  exact: s is the body there, so an error's byte is known in the
 * body; else s is the joined data of an SSE event of several lines.
 */
static json_object *
record(struct stream *st, const char *s, size_t len, size_t off, int exact)
{
	json_object *o;
	const char *why;
	size_t at;

	if (len == 0 || s[0] != '{') {
		snprintf(st->bad, sizeof(st->bad),
		    "record at byte %zu is not a JSON object", off);
		return NULL;
	}
	if ((o = parse(st, s, len, &why, &at)) != NULL) {
		st->records++;
		return o;
	}
	if (exact)
		snprintf(st->bad, sizeof(st->bad),
		    "invalid JSON at byte %zu: %s", off + at, why);
	else
		snprintf(st->bad, sizeof(st->bad),
		    "invalid JSON in the event at byte %zu: %s at byte %zu "
		    "of its data",
		    off, why, at);
	return NULL;
}

/*
 * Whether o is an error record, read as provider.c's error_info() reads
 * a reply: {"error":"..."} (Ollama), {"error":{...}} (OpenAI, llama.cpp,
 * vLLM), {"object":"error",...} (older vLLM); "error": null or "" is
 * none.
 */
static int
is_error(json_object *o)
{
	json_object *e;

	if (json_object_object_get_ex(o, "error", &e)) {
		if (json_object_is_type(e, json_type_string))
			return json_object_get_string_len(e) > 0;
		if (json_object_is_type(e, json_type_object))
			return 1;
	}
	return json_object_object_get_ex(o, "object", &e) &&
	    json_object_is_type(e, json_type_string) &&
	    strcmp(json_object_get_string(e), "error") == 0;
}

/*
 * A record the server itself called an error (SSE "event: error",
 * llama.cpp's "error:" field) is one whatever it holds: kept as it is
 * when it reads as an error record, else wrapped, {"error": value}, and
 * when it is not JSON at all its text is the message, so that the
 * caller has one shape to read.
 */
static void
named_error(struct stream *st, const char *s, size_t len)
{
	json_object *o = NULL, *w;
	const char *why;
	size_t at;

	while (len > 0 && is_space(*s))
		s++, len--;
	while (len > 0 && is_space(s[len - 1]))
		len--;
	if (len > 0)
		o = parse(st, s, len, &why, &at);
	if (o != NULL && is_error(o)) {
		st->error = o;
	} else {
		if (o == NULL && len == 0)
			o = json_object_new_string(
			    "error event with no message");
		else if (o == NULL)
			o = json_object_new_string_len(
			    s, (int)(len < ERRTEXT_MAX ? len : ERRTEXT_MAX));
		else if (!json_object_is_type(o, json_type_object) &&
		    !json_object_is_type(o, json_type_string)) {
			/* A bare number or list: its text is the message. */
			w = json_object_new_string(
			    json_object_to_json_string_ext(
			        o, JSON_C_TO_STRING_PLAIN));
			json_object_put(o);
			o = w;
		}
		w = json_object_new_object();
		json_object_object_add(w, "error", o);
		st->error = w;
	}
	st->records++;
}

/* A token count, -1 when absent or negative; 0 too when zero_unknown. */
static int
get_count(json_object *o, const char *key, int zero_unknown)
{
	json_object *v;
	int n;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		return -1;
	n = json_object_get_int(v);
	return n < 0 || (n == 0 && zero_unknown) ? -1 : n;
}

/* Take the counts of o that are known; keep the others as they are. */
static void
take_counts(struct stream *st, json_object *o, const char *prompt,
    const char *completion, int zero_unknown)
{
	int n;

	if ((n = get_count(o, prompt, zero_unknown)) != -1)
		st->prompt_tokens = n;
	if ((n = get_count(o, completion, zero_unknown)) != -1)
		st->completion_tokens = n;
}

/*
 * Ollama: {"model":..,"message":{"role":..,"content":".."},"done":false}
 * per token, then "done":true with the counts.  Ollama leaves a count of
 * zero out (prompt_eval_count after a prompt-cache hit), so neither its
 * absence nor a 0 is a count to trust: both are unknown, as in
 * provider.c.
 */
static size_t
ndjson_record(struct stream *st, json_object *o)
{
	json_object *msg = NULL, *v;
	size_t added = 0;

	if (is_error(o)) {
		st->error = json_object_get(o);
		return 0;
	}
	if (json_object_object_get_ex(o, "message", &msg) &&
	    json_object_is_type(msg, json_type_object) &&
	    json_object_object_get_ex(msg, "content", &v) &&
	    json_object_is_type(v, json_type_string))
		added = add_text(st, v);
	/* Ollama sends each tool call whole, in one chunk. */
	if (msg != NULL && json_object_is_type(msg, json_type_object) &&
	    json_object_object_get_ex(msg, "tool_calls", &v))
		stream_tool_calls(&st->tool_calls, v);
	if (json_object_object_get_ex(o, "done", &v) &&
	    json_object_is_type(v, json_type_boolean) &&
	    json_object_get_boolean(v))
		st->done = 1;
	if (json_object_object_get_ex(o, "prompt_eval_count", NULL) ||
	    json_object_object_get_ex(o, "eval_count", NULL)) {
		st->usage = 1;
		take_counts(st, o, "prompt_eval_count", "eval_count", 1);
	}
	return added;
}

/*
 * OpenAI: {"choices":[{"index":0,"delta":{"content":".."},
 * "finish_reason":null}],...} per token; a non-null finish_reason says
 * the reply is complete, and with stream_options.include_usage one more
 * chunk follows, "choices":[] and the "usage" counts, before [DONE]
 * (llama.cpp puts its usage in the finish chunk itself).  Here a count
 * of 0 is a count.  Only choice 0's text is the reply: llmq never asks
 * for n > 1.
 */
/*
 * Tool calls, in one shape for both dialects: {"id": ID or null,
 * "name": NAME, "arguments": ARGS}, ARGS as the provider gave them (a
 * JSON value from Ollama, the text of one from OpenAI).
 */
static json_object *
tool_call_new(json_object *id, json_object *name, json_object *args)
{
	json_object *t = json_object_new_object();

	json_object_object_add(t, "id",
	    id != NULL && json_object_is_type(id, json_type_string) ?
	        json_object_get(id) :
	        NULL);
	json_object_object_add(t, "name",
	    name != NULL && json_object_is_type(name, json_type_string) ?
	        json_object_get(name) :
	        json_object_new_string(""));
	json_object_object_add(t, "arguments",
	    args != NULL ? json_object_get(args) : json_object_new_string(""));
	return t;
}

void
stream_tool_calls(json_object **calls, json_object *tc)
{
	json_object *c, *f, *id, *name, *args;
	size_t i, n;

	if (tc == NULL || !json_object_is_type(tc, json_type_array))
		return;
	n = json_object_array_length(tc);
	for (i = 0; i < n; i++) {
		c = json_object_array_get_idx(tc, i);
		if (!json_object_is_type(c, json_type_object) ||
		    !json_object_object_get_ex(c, "function", &f) ||
		    !json_object_is_type(f, json_type_object))
			continue;
		id = name = args = NULL;
		json_object_object_get_ex(c, "id", &id);
		json_object_object_get_ex(f, "name", &name);
		json_object_object_get_ex(f, "arguments", &args);
		if (*calls == NULL)
			*calls = json_object_new_array();
		json_object_array_add(*calls, tool_call_new(id, name, args));
	}
}

/* The pieces of a streamed call's arguments, until they are joined. */
#define PIECES "_pieces"

/*
 * OpenAI streams a tool call in pieces: the first delta of an index
 * names it, the next ones carry pieces of its arguments' text.
 */
static void
tool_call_pieces(struct stream *st, json_object *tc)
{
	json_object *c, *f, *v, *t, *old;
	size_t i, n;
	int index;

	if (!json_object_is_type(tc, json_type_array))
		return;
	n = json_object_array_length(tc);
	for (i = 0; i < n; i++) {
		c = json_object_array_get_idx(tc, i);
		if (!json_object_is_type(c, json_type_object))
			continue;
		index = json_object_object_get_ex(c, "index", &v) &&
		        json_object_is_type(v, json_type_int) ?
		    json_object_get_int(v) :
		    0;
		if (index < 0 || index > 127)
			continue;
		if (st->tool_calls == NULL)
			st->tool_calls = json_object_new_array();
		while ((int)json_object_array_length(st->tool_calls) <= index)
			json_object_array_add(st->tool_calls,
			    tool_call_new(NULL, NULL, NULL));
		t = json_object_array_get_idx(st->tool_calls, (size_t)index);
		if (json_object_object_get_ex(c, "id", &v) &&
		    json_object_is_type(v, json_type_string))
			json_object_object_add(t, "id", json_object_get(v));
		if (!json_object_object_get_ex(c, "function", &f) ||
		    !json_object_is_type(f, json_type_object))
			continue;
		if (json_object_object_get_ex(f, "name", &v) &&
		    json_object_is_type(v, json_type_string))
			json_object_object_add(t, "name", json_object_get(v));
		/*
		 * The pieces are kept apart and joined once at the end
		 * (tool_calls_join()): joining each as it comes would copy
		 * the arguments again for every piece.
		 */
		if (json_object_object_get_ex(f, "arguments", &v) &&
		    json_object_is_type(v, json_type_string)) {
			if (!json_object_object_get_ex(t, PIECES, &old)) {
				old = json_object_new_array();
				json_object_object_add(t, PIECES, old);
			}
			json_object_array_add(old, json_object_get(v));
		}
	}
}

/* Join the pieces of each streamed tool call's arguments. */
static void
tool_calls_join(struct stream *st)
{
	json_object *t, *pieces, *p;
	size_t i, j, n, len;
	char *s;

	for (i = 0; st->tool_calls != NULL &&
	     i < json_object_array_length(st->tool_calls);
	     i++) {
		t = json_object_array_get_idx(st->tool_calls, i);
		if (!json_object_object_get_ex(t, PIECES, &pieces))
			continue;
		n = json_object_array_length(pieces);
		for (len = 0, j = 0; j < n; j++)
			len += (size_t)json_object_get_string_len(
			    json_object_array_get_idx(pieces, j));
		s = xmalloc(len + 1);
		for (len = 0, j = 0; j < n; j++) {
			p = json_object_array_get_idx(pieces, j);
			memcpy(s + len, json_object_get_string(p),
			    (size_t)json_object_get_string_len(p));
			len += (size_t)json_object_get_string_len(p);
		}
		json_object_object_add(
		    t, "arguments", json_object_new_string_len(s, (int)len));
		json_object_object_del(t, PIECES);
		free(s);
	}
}

/* Keep the start of a refusal, for the message of the failure. */
static void
add_refusal(struct stream *st, json_object *v)
{
	size_t have = strlen(st->refusal), room = sizeof(st->refusal) - 1;
	size_t n = (size_t)json_object_get_string_len(v);

	if (have >= room)
		return;
	if (n > room - have)
		n = room - have;
	memcpy(st->refusal + have, json_object_get_string(v), n);
	st->refusal[have + n] = '\0';
}

static size_t
sse_record(struct stream *st, json_object *o)
{
	json_object *choices, *c, *v, *delta = NULL, *usage;
	size_t added = 0, i, n;
	int index;

	if (is_error(o)) {
		st->error = json_object_get(o);
		return 0;
	}
	if (json_object_object_get_ex(o, "choices", &choices) &&
	    json_object_is_type(choices, json_type_array)) {
		n = json_object_array_length(choices);
		for (i = 0; i < n; i++) {
			c = json_object_array_get_idx(choices, i);
			if (!json_object_is_type(c, json_type_object))
				continue;
			index = 0;
			if (json_object_object_get_ex(c, "index", &v) &&
			    json_object_is_type(v, json_type_int))
				index = json_object_get_int(v);
			if (index == 0 &&
			    json_object_object_get_ex(c, "delta", &delta) &&
			    json_object_is_type(delta, json_type_object) &&
			    json_object_object_get_ex(delta, "content", &v) &&
			    json_object_is_type(v, json_type_string))
				added += add_text(st, v);
			if (index == 0 && delta != NULL &&
			    json_object_object_get_ex(delta, "tool_calls", &v))
				tool_call_pieces(st, v);
			/* OpenAI's refusal comes in pieces too. */
			if (index == 0 && delta != NULL &&
			    json_object_object_get_ex(delta, "refusal", &v) &&
			    json_object_is_type(v, json_type_string))
				add_refusal(st, v);
			/* get_ex gives NULL for a JSON null. */
			if (json_object_object_get_ex(c, "finish_reason", &v) &&
			    v != NULL)
				st->done = 1;
		}
	}
	if (json_object_object_get_ex(o, "usage", &usage) &&
	    json_object_is_type(usage, json_type_object)) {
		st->usage = 1;
		take_counts(st, usage, "prompt_tokens", "completion_tokens", 0);
	}
	return added;
}

/* One NDJSON line (no newline) of n bytes at byte start of buf. */
static size_t
ndjson_line(struct stream *st, const char *buf, size_t start, size_t n)
{
	const char *s = buf + start;
	json_object *o;
	size_t added;

	while (n > 0 && is_space(*s))
		s++, n--;
	while (n > 0 && is_space(s[n - 1]))
		n--;
	if (n == 0)
		return 0;
	if ((o = record(st, s, n, (size_t)(s - buf), 1)) == NULL)
		return 0;
	added = ndjson_record(st, o);
	json_object_put(o);
	return added;
}

/*
 * The end of an SSE event (a blank line, or the end of the body): its
 * data is an error when "event: error" named it, completion when it is
 * "[DONE]", a chunk otherwise.  Empty data is a keep-alive.
 */
static size_t
sse_dispatch(struct stream *st)
{
	json_object *o;
	const char *s = st->data;
	size_t n = st->datalen, off, added = 0;
	int exact = st->datalines == 1;

	if (st->datalines > 0) {
		while (n > 0 && is_space(*s))
			s++, n--;
		while (n > 0 && is_space(s[n - 1]))
			n--;
		/* One data line is the body itself, from evpos on. */
		off = st->evpos + (exact ? (size_t)(s - st->data) : 0);
		if (st->event_error)
			named_error(st, s, n);
		else if (n == 6 && memcmp(s, "[DONE]", 6) == 0)
			st->done = 1;
		else if (n > 0 && (o = record(st, s, n, off, exact)) != NULL) {
			added = sse_record(st, o);
			json_object_put(o);
		}
	}
	st->datalines = 0;
	st->datalen = 0;
	st->event_error = 0;
	return added;
}

/*
 * One SSE line (no newline) of n bytes at byte start of buf: "field:
 * value", one space after the colon dropped; a line that begins with ':'
 * is a comment (a keep-alive), a blank one ends the event.  The fields:
 * data (joined by "\n"), event (only "error" matters) and llama.cpp's
 * own "error", whose value is an error record at once; id, retry and
 * any other are ignored.
 */
static size_t
sse_line(struct stream *st, const char *buf, size_t start, size_t n)
{
	const char *s = buf + start, *colon, *v;
	size_t flen, vlen;

	/* A byte order mark may open the stream (WHATWG, 9.2.5). */
	if (start == 0 && n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
		s += 3, n -= 3;
	if (n == 0)
		return sse_dispatch(st);
	if (s[0] == ':')
		return 0;
	if ((colon = memchr(s, ':', n)) != NULL) {
		flen = (size_t)(colon - s);
		v = colon + 1;
	} else {
		flen = n;
		v = s + n;
	}
	vlen = n - (size_t)(v - s);
	if (vlen > 0 && *v == ' ')
		v++, vlen--;
	if (flen == 4 && memcmp(s, "data", 4) == 0) {
		if (st->datalines == 0) {
			st->evpos = (size_t)(v - buf);
			st->datalen = 0;
		} else {
			reserve(&st->data, &st->datacap, st->datalen + 2);
			st->data[st->datalen++] = '\n';
		}
		reserve(&st->data, &st->datacap, st->datalen + vlen + 1);
		memcpy(st->data + st->datalen, v, vlen);
		st->datalen += vlen;
		st->data[st->datalen] = '\0';
		st->datalines++;
	} else if (flen == 5 && memcmp(s, "event", 5) == 0)
		st->event_error = vlen == 5 && memcmp(v, "error", 5) == 0;
	else if (flen == 5 && memcmp(s, "error", 5) == 0)
		named_error(st, v, vlen);
	return 0;
}

/*
 * Parse the lines of buf from st->pos: the complete ones, and at the
 * end of the body (end) a last one without a newline.  A line ends with
 * "\n" or "\r\n".
 */
static size_t
lines(struct stream *st, const char *buf, size_t len, int end)
{
	const char *nl;
	size_t start, eol, n, added = 0;

	if (len < st->pos)
		fatalx(
		    "stream body shrank from %zu to %zu bytes", st->pos, len);
	while (!stopped(st) && st->pos < len) {
		start = st->pos;
		nl = memchr(
		    buf + start + st->scan, '\n', len - start - st->scan);
		if (nl != NULL) {
			eol = (size_t)(nl - buf);
			st->pos = eol + 1;
		} else if (end) {
			eol = st->pos = len;
		} else {
			st->scan = len - start;
			break;
		}
		st->scan = 0;
		n = eol - start;
		if (n > 0 && buf[start + n - 1] == '\r')
			n--;
		if (st->dialect == STREAM_NDJSON)
			added += ndjson_line(st, buf, start, n);
		else
			added += sse_line(st, buf, start, n);
	}
	return added;
}

size_t
stream_feed(struct stream *st, const char *buf, size_t len)
{
	return lines(st, buf, len, 0);
}

size_t
stream_end(struct stream *st, const char *buf, size_t len)
{
	size_t added;

	added = lines(st, buf, len, 1);
	if (st->dialect == STREAM_SSE && !stopped(st))
		added += sse_dispatch(st);
	tool_calls_join(st);
	return added;
}

/*
 * About four bytes of English make a token in the BPE vocabularies of
 * current models.  Bytes rather than characters: a CJK character is
 * three bytes and about one token, so counting bytes errs less for such
 * text than counting characters would, and it costs no decoding.
 */
int
stream_estimate_tokens(const char *s, size_t len)
{
	size_t n;

	(void)s;
	n = len / 4 + (len % 4 != 0);
	return n > INT_MAX ? INT_MAX : (int)n;
}
