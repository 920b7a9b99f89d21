/*
 * test_stream.c: unit tests of stream.c, the parser of streamed replies.
 *
 * Each recorded stream in tests/fixtures (stream-*, found through
 * LLMQ_SRCDIR as in test_provider.c) is fed three ways, as a transfer
 * may deliver it: whole, one byte at a time, and in pieces of random
 * size (a fixed seed, so a failure repeats); the body grows in one
 * buffer as a caller's does.  The first result is checked against what
 * the fixture holds (text, completion, counts, the error, a malformed
 * record), and the others must be the same in every field.  Then the
 * cases a fixture cannot show well: a UTF-8 character split at every
 * byte, \u0000 in the text, records that are not JSON (with their byte
 * offsets), nesting past the depth limit, a 1 MiB delta fed a byte at a
 * time, an error that ends the parse, the last line or event without its
 * terminator, the SSE fields and the error shapes of each server, and
 * the token estimate.  Output is TAP, as test_cfg.c.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "log.h"
#include "stream.h"
#include "util.h"

#include "fixture.h"
#include "tap.h"



/* The caller's side: one body that grows as the transfer delivers it. */
struct body {
	char *buf;
	size_t len, cap;
};

static void
body_add(struct body *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		while (b->len + n + 1 > b->cap)
			b->cap = b->cap > 0 ? b->cap * 2 : 64;
		b->buf = xrealloc(b->buf, b->cap);
	}
	memcpy(b->buf + b->len, p, n);
	b->len += n;
	b->buf[b->len] = '\0';
}

static void
body_str(struct body *b, const char *s)
{
	body_add(b, s, strlen(s));
}

/* A linear congruential generator: the same pieces on every libc. */
static uint32_t seed = 20250115;

static uint32_t
rnd(void)
{
	seed = seed * 1103515245u + 12345u;
	return (seed >> 16) & 0x7fff;
}

enum mode { WHOLE, BYTES, RANDOM };
static const char *const mode_name[] = { "whole", "byte by byte",
	"random pieces" };

/*
 * Feed len bytes of src to a new st as mode says, then end it.  Returns
 * the sum of what the calls said they appended.
 */
static size_t
run(struct stream *st, enum stream_dialect d, const char *src, size_t len,
    enum mode m)
{
	struct body b = { NULL, 0, 0 };
	size_t off = 0, n, got = 0;

	stream_init(st, d);
	body_add(&b, "", 0);
	while (off < len) {
		if (m == WHOLE)
			n = len;
		else if (m == BYTES)
			n = 1;
		else /* mostly small pieces, sometimes a large one */
			n = 1 + rnd() % (rnd() % 4 == 0 ? 700 : 12);
		if (n > len - off)
			n = len - off;
		body_add(&b, src + off, n);
		off += n;
		got += stream_feed(st, b.buf, b.len);
	}
	got += stream_end(st, b.buf, b.len);
	free(b.buf);
	return got;
}

static const char *
json_text(json_object *o)
{
	return o == NULL ?
	    "(none)" :
	    json_object_to_json_string_ext(
	        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* Whether two parses of one stream came to the same in every field. */
static int
same(const struct stream *a, const struct stream *b)
{
	if (a->textlen != b->textlen || (a->text == NULL) != (b->text == NULL))
		return 0;
	if (a->text != NULL && memcmp(a->text, b->text, a->textlen) != 0)
		return 0;
	if (a->pos != b->pos || a->records != b->records ||
	    a->deltas != b->deltas || a->done != b->done ||
	    a->prompt_tokens != b->prompt_tokens ||
	    a->completion_tokens != b->completion_tokens ||
	    a->usage != b->usage || strcmp(a->bad, b->bad) != 0)
		return 0;
	if ((a->error == NULL) != (b->error == NULL))
		return 0;
	/* json_text's buffer belongs to the object: two live at once. */
	return a->error == NULL ||
	    strcmp(json_text(a->error), json_text(b->error)) == 0;
}

/*
 * An error record's message and type, read as strictly as provider.c's
 * error_info() reads them, so that a record of another shape fails the
 * test; NULL when absent.
 */
static const char *
error_field(json_object *o, const char *key)
{
	json_object *e, *v;

	if (o == NULL)
		return NULL;
	if (json_object_object_get_ex(o, "error", &e) &&
	    json_object_is_type(e, json_type_string))
		return strcmp(key, "message") == 0 ? json_object_get_string(e) :
		                                     NULL;
	if (!json_object_object_get_ex(o, "error", &e) ||
	    !json_object_is_type(e, json_type_object)) {
		if (!json_object_object_get_ex(o, "object", &v) ||
		    !json_object_is_type(v, json_type_string) ||
		    strcmp(json_object_get_string(v), "error") != 0)
			return NULL;
		e = o;
	}
	if (json_object_object_get_ex(e, key, &v) &&
	    json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return NULL;
}

static int
streq(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

struct expect {
	const char *name;
	enum stream_dialect dialect;
	const char *text; /* NULL: no content at all */
	int done, prompt, completion, usage, records, deltas;
	const char *error;   /* the error's message, or NULL for none */
	const char *errtype; /* its type, or NULL */
	const char *bad;     /* part of st->bad, or NULL for none */
};

static const struct expect fixtures[] = {
	{ "stream-ollama.ndjson", STREAM_NDJSON,
	    "The sky looks blue because air scatters short <wavelengths> "
	    "more \xe2\x80\x94 Rayleigh scattering.\n",
	    1, 31, 15, 1, 16, 15, NULL, NULL, NULL },
	{ "stream-ollama-error.ndjson", STREAM_NDJSON, "Once upon a", 0, -1, -1,
	    0, 4, 3,
	    "an error was encountered while running the model: CUDA error: "
	    "out of memory",
	    NULL, NULL },
	{ "stream-ollama-truncated.ndjson", STREAM_NDJSON, "Step one: open the",
	    0, -1, -1, 0, 5, 5, NULL, NULL, NULL },
	{ "stream-openai-usage.sse", STREAM_SSE,
	    "Hello! \xf0\x9f\x91\x8b How can I help you today?", 1, 19, 10, 1,
	    13, 10, NULL, NULL, NULL },
	{ "stream-openai.sse", STREAM_SSE,
	    "Paris, the capital of France.\n\nIt sits on the Seine.", 1, -1, -1,
	    0, 9, 7, NULL, NULL, NULL },
	{ "stream-llamacpp.sse", STREAM_SSE, "Hi there! Nice day.", 1, 14, 6, 1,
	    8, 6, NULL, NULL, NULL },
	{ "stream-llamacpp-error.sse", STREAM_SSE, "The answer", 0, -1, -1, 0,
	    4, 2,
	    "the request exceeds the available context size, try increasing "
	    "it",
	    "exceed_context_size_error", NULL },
	{ "stream-sse-event-error.sse", STREAM_SSE, "Sure, here", 0, -1, -1, 0,
	    3, 2, "upstream request timeout", "timeout_error", NULL },
	{ "stream-vllm-error.sse", STREAM_SSE, NULL, 0, -1, -1, 0, 1, 0,
	    "This model's maximum context length is 4096 tokens. However, "
	    "you requested 4597 tokens (3597 in the messages, 1000 in the "
	    "completion). Please reduce the length of the messages or "
	    "completion.",
	    "BadRequestError", NULL },
	{ "stream-sse-keepalive.sse", STREAM_SSE, "Keep-alive works.", 1, 12, 3,
	    1, 5, 3, NULL, NULL, NULL },
	{ "stream-openai-truncated.sse", STREAM_SSE, "Sure, the list", 0, -1,
	    -1, 0, 5, 4, NULL, NULL, "unexpected end of record" },
};

static void
test_fixture(const struct expect *x)
{
	struct stream st[5];
	size_t got[5], len, i;
	char *src;
	int ok;

	src = fixture(x->name, &len);
	got[0] = run(&st[0], x->dialect, src, len, WHOLE);
	got[1] = run(&st[1], x->dialect, src, len, BYTES);
	for (i = 2; i < nitems(st); i++)
		got[i] = run(&st[i], x->dialect, src, len, RANDOM);

	ok = streq(st[0].text, x->text);
	CHECK(ok, "%s: the text", x->name);
	if (!ok)
		printf("#   got \"%s\"\n",
		    st[0].text != NULL ? st[0].text : "(null)");
	CHECK(st[0].done == x->done && st[0].prompt_tokens == x->prompt &&
	        st[0].completion_tokens == x->completion &&
	        st[0].usage == x->usage,
	    "%s: done %d, tokens %d and %d, usage %d", x->name, x->done,
	    x->prompt, x->completion, x->usage);
	CHECK(st[0].records == x->records && st[0].deltas == x->deltas,
	    "%s: %d records, %d of them text", x->name, x->records, x->deltas);
	if (st[0].records != x->records || st[0].deltas != x->deltas ||
	    st[0].done != x->done || st[0].prompt_tokens != x->prompt ||
	    st[0].completion_tokens != x->completion)
		printf("#   got done %d, tokens %d and %d, usage %d, %d "
		       "records, %d deltas\n",
		    st[0].done, st[0].prompt_tokens, st[0].completion_tokens,
		    st[0].usage, st[0].records, st[0].deltas);
	ok = x->error == NULL ?
	    st[0].error == NULL :
	    streq(error_field(st[0].error, "message"), x->error) &&
	        streq(error_field(st[0].error, "type"), x->errtype);
	CHECK(ok, "%s: %s%s", x->name, x->error ? "error " : "no error",
	    x->error ? x->error : "");
	if (!ok)
		printf("#   got %s\n", json_text(st[0].error));
	ok = x->bad == NULL ? st[0].bad[0] == '\0' :
	                      strstr(st[0].bad, x->bad) != NULL;
	CHECK(ok, "%s: %s%s", x->name, x->bad ? "malformed: " : "well formed",
	    x->bad ? x->bad : "");
	if (!ok)
		printf("#   got \"%s\"\n", st[0].bad);
	/* Parsing stops at an error or a bad record, else eats it all. */
	CHECK(x->error != NULL || x->bad != NULL || st[0].pos == len,
	    "%s: every byte consumed", x->name);

	for (i = 0; i < nitems(st); i++) {
		CHECK(got[i] == st[i].textlen,
		    "%s, %s: the calls returned %zu bytes, the text's length",
		    x->name, mode_name[i < RANDOM ? i : RANDOM], got[i]);
		if (i > 0)
			CHECK(same(&st[0], &st[i]), "%s, %s: the same as whole",
			    x->name, mode_name[i < RANDOM ? i : RANDOM]);
	}
	printf("# %s: %zu bytes, %d records, %d deltas, %zu bytes of text\n",
	    x->name, len, st[0].records, st[0].deltas, st[0].textlen);
	for (i = 0; i < nitems(st); i++)
		stream_free(&st[i]);
	free(src);
}

/* Parse the string s whole as one stream (its end included) into st. */
static size_t
parse_all(struct stream *st, enum stream_dialect d, const char *s)
{
	return run(st, d, s, strlen(s), WHOLE);
}

static void
test_utf8_split(void)
{
	static const char nd[] = "{\"message\":{\"content\":\"\xc3\xa9\xe2\x82"
	                         "\xac\xf0\x9f\x98\x80\"},\"done\":false}\n";
	static const char sse[] = "data: {\"choices\":[{\"index\":0,\"delta\":{"
	                          "\"content\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f"
	                          "\x98\x80\"}}]}\n\n";
	static const char want[] = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
	const char *src[2] = { nd, sse };
	enum stream_dialect d[2] = { STREAM_NDJSON, STREAM_SSE };
	struct stream st;
	struct body b;
	size_t k, len, first, second, pos, t;
	int bad;

	for (t = 0; t < 2; t++) {
		len = strlen(src[t]);
		bad = 0;
		/* Cut the body at every byte, inside each character too. */
		for (k = 1; k < len; k++) {
			memset(&b, 0, sizeof(b));
			stream_init(&st, d[t]);
			body_add(&b, src[t], k);
			first = stream_feed(&st, b.buf, b.len);
			/* SSE: all but the blank line, the data line is read.
			 */
			pos = d[t] == STREAM_SSE && k == len - 1 ? k : 0;
			if (first != 0 || st.text != NULL || st.pos != pos)
				bad++;
			body_add(&b, src[t] + k, len - k);
			second = stream_feed(&st, b.buf, b.len);
			if (second != strlen(want) || st.text == NULL ||
			    strcmp(st.text, want) != 0 || st.bad[0] != '\0' ||
			    st.pos != len)
				bad++;
			stream_free(&st);
			free(b.buf);
		}
		CHECK(bad == 0,
		    "%s: a line cut at any of its %zu bytes, inside a "
		    "UTF-8 character too, waits for the rest",
		    t == 0 ? "ndjson" : "sse", len);
	}
}

static void
test_nul(void)
{
	struct stream st;
	size_t n;

	n = parse_all(&st, STREAM_NDJSON,
	    "{\"message\":{\"content\":\"a\\u0000b\\u0000\"}}\n");
	CHECK(n == 8 && st.textlen == 8 &&
	        memcmp(st.text,
	            "a\xef\xbf\xbd"
	            "b\xef\xbf\xbd",
	            9) == 0,
	    "ndjson: each \\u0000 becomes U+FFFD");
	stream_free(&st);
	n = parse_all(&st, STREAM_SSE,
	    "data: {\"choices\":[{\"delta\":{\"content\":\"\\u0000\"}}]}\n\n");
	CHECK(n == 3 && strcmp(st.text, "\xef\xbf\xbd") == 0 && st.deltas == 1,
	    "sse: \\u0000 becomes U+FFFD (no \"index\": choice 0)");
	stream_free(&st);
}

/*
 * s parsed whole as dialect d leaves st->bad beginning with want (the
 * byte, and where json-c's words are the same in every version, why).
 */
static void
expect_bad(
    enum stream_dialect d, const char *s, const char *want, const char *what)
{
	struct stream st;
	int ok;

	parse_all(&st, d, s);
	ok = strncmp(st.bad, want, strlen(want)) == 0 && st.records == 0;
	CHECK(ok, "%s: \"%s\"", what, want);
	if (!ok)
		printf("#   got \"%s\"\n", st.bad);
	stream_free(&st);
}

static void
test_bad(void)
{
	static const char l1[] = "{\"message\":{\"content\":\"a\"}}\n";
	struct stream st;
	struct body b = { NULL, 0, 0 };
	char *want;
	size_t n;

	/* The byte named is the body's: line 1, then the ',' of line 2. */
	want = xasprintf("invalid JSON at byte %zu: quoted object property "
	                 "name expected",
	    strlen(l1) + 1);
	stream_init(&st, STREAM_NDJSON);
	body_add(&b, l1, strlen(l1));
	body_str(&b, "{,}\n");
	n = stream_feed(&st, b.buf, b.len);
	CHECK(n == 1 && strcmp(st.text, "a") == 0 &&
	        strcmp(st.bad, want) == 0 && st.pos == b.len,
	    "ndjson: a bad line stops the parse: \"%s\"", want);
	if (strcmp(st.bad, want) != 0)
		printf("#   got \"%s\"\n", st.bad);
	body_str(&b, "{\"message\":{\"content\":\"b\"},\"done\":true}\n");
	n = stream_feed(&st, b.buf, b.len);
	n += stream_end(&st, b.buf, b.len);
	CHECK(n == 0 && strcmp(st.text, "a") == 0 && !st.done &&
	        st.pos == strlen(l1) + 4,
	    "ndjson: what follows a bad line is not read");
	stream_free(&st);
	free(b.buf);
	free(want);

	expect_bad(STREAM_NDJSON, "\n  [1,2]\n",
	    "record at byte 3 is not a JSON object", "ndjson: a list");
	/* json-c's strict mode itself calls trailing data unexpected. */
	expect_bad(STREAM_NDJSON, "{\"done\":true} x\n",
	    "invalid JSON at byte 14: ", "ndjson: trailing data");
	expect_bad(STREAM_NDJSON, "{\"done\":true}{\"done\":true}\n",
	    "invalid JSON at byte 13: ", "ndjson: two objects");
	expect_bad(STREAM_NDJSON, "{\"done\":true,\"x\":'y'}\n",
	    "invalid JSON at byte 17: unexpected character",
	    "ndjson: strict JSON");
#ifdef JSON_TOKENER_VALIDATE_UTF8
	expect_bad(STREAM_NDJSON, "{\"message\":{\"content\":\"\xff\"}}\n",
	    "invalid JSON at byte 23: invalid utf-8 string",
	    "ndjson: bytes that are not UTF-8");
#endif
	expect_bad(STREAM_NDJSON, "{\"message\":{\"content\":\"cut",
	    "invalid JSON at byte 26: unexpected end of record",
	    "ndjson: a last line cut short");
	expect_bad(STREAM_SSE, "data: not json\n\n",
	    "record at byte 6 is not a JSON object", "sse: data not JSON");
	expect_bad(STREAM_SSE, ": hi\r\ndata:  {\"choices\":[}\r\n\r\n",
	    "invalid JSON at byte 25: unexpected character",
	    "sse: the byte counts from the body");
	expect_bad(STREAM_SSE, "data: {\"choices\":\ndata: [}\n\n",
	    "invalid JSON in the event at byte 6: unexpected character at "
	    "byte 13 of its data",
	    "sse: an event of two data lines");
	expect_bad(STREAM_SSE, "data: {\"choices\":[]",
	    "invalid JSON at byte 19: unexpected end of record",
	    "sse: a last event cut short");
}

static char *
nested(int depth)
{
	struct body b = { NULL, 0, 0 };
	int i;

	/* depth objects in all: the record and depth - 1 within. */
	body_str(&b, "{\"done\":true,\"x\":");
	for (i = 2; i < depth; i++)
		body_str(&b, "{\"x\":");
	body_str(&b, "{}");
	for (i = 1; i < depth; i++)
		body_str(&b, "}");
	body_str(&b, "\n");
	return b.buf;
}

static void
test_depth(void)
{
	struct stream st;
	char *s;

	s = nested(64);
	parse_all(&st, STREAM_NDJSON, s);
	CHECK(st.bad[0] == '\0' && st.done, "64 levels of nesting are read");
	if (st.bad[0] != '\0')
		printf("#   got \"%s\"\n", st.bad);
	stream_free(&st);
	free(s);
	s = nested(65);
	parse_all(&st, STREAM_NDJSON, s);
	CHECK(strstr(st.bad, "nesting too deep") != NULL && !st.done,
	    "65 levels are refused: \"%s\"", st.bad);
	stream_free(&st);
	free(s);
	s = nested(100000);
	parse_all(&st, STREAM_NDJSON, s);
	CHECK(strstr(st.bad, "nesting too deep") != NULL,
	    "100000 levels are refused, without recursion");
	stream_free(&st);
	free(s);
}

/* A 1 MiB delta, fed a byte at a time: linear, not quadratic. */
static void
test_big(void)
{
	const size_t big = 1 << 20;
	struct body src = { NULL, 0, 0 };
	struct stream st;
	char *text;
	size_t i, got;
	int t, ok;

	text = xmalloc(big + 1);
	for (i = 0; i < big; i++)
		text[i] = "abcdefghijklmnopqrstuvwxyz .,\xc3\xa9"[i % 31];
	/* Not to end with half a character. */
	for (i = big; i > 0 && (text[i - 1] & 0x80) != 0; i--)
		text[i - 1] = '.';
	text[big] = '\0';
	for (t = 0; t < 2; t++) {
		src.len = 0;
		if (t == 0) {
			body_str(&src, "{\"message\":{\"content\":\"");
			body_add(&src, text, big);
			body_str(&src, "\"},\"done\":true}\n");
		} else {
			body_str(&src,
			    "data: {\"choices\":[{\"index\":0,"
			    "\"delta\":{\"content\":\"");
			body_add(&src, text, big);
			body_str(
			    &src, "\"},\"finish_reason\":\"length\"}]}\n\n");
		}
		/* Half the line: scanned once, and remembered as scanned. */
		stream_init(&st, t == 0 ? STREAM_NDJSON : STREAM_SSE);
		got = stream_feed(&st, src.buf, src.len / 2);
		CHECK(got == 0 && st.pos == 0 && st.scan == src.len / 2,
		    "%s: half a line of %zu bytes is scanned once",
		    t == 0 ? "ndjson" : "sse", src.len);
		stream_free(&st);
		got = run(&st, t == 0 ? STREAM_NDJSON : STREAM_SSE, src.buf,
		    src.len, BYTES);
		ok = got == big && st.textlen == big &&
		    memcmp(st.text, text, big) == 0 && st.deltas == 1 &&
		    st.done && st.bad[0] == '\0';
		CHECK(ok, "%s: a 1 MiB delta fed a byte at a time",
		    t == 0 ? "ndjson" : "sse");
		if (!ok)
			printf("#   got %zu bytes, bad \"%s\"\n", st.textlen,
			    st.bad);
		stream_free(&st);
	}
	free(src.buf);
	free(text);
}

static void
test_error_stops(void)
{
	struct stream st;
	struct body b = { NULL, 0, 0 };
	size_t len, n, pos;
	char *src;

	src = fixture("stream-ollama-error.ndjson", &len);
	stream_init(&st, STREAM_NDJSON);
	body_add(&b, src, len);
	stream_feed(&st, b.buf, b.len);
	pos = st.pos;
	body_str(&b,
	    "{\"message\":{\"content\":\" time\"},\"done\":true,"
	    "\"prompt_eval_count\":9,\"eval_count\":4}\n");
	n = stream_feed(&st, b.buf, b.len);
	n += stream_end(&st, b.buf, b.len);
	CHECK(n == 0 && pos == len && st.pos == len && !st.done &&
	        st.prompt_tokens == -1 && strcmp(st.text, "Once upon a") == 0,
	    "ndjson: nothing after an error line is read");
	stream_free(&st);
	stream_free(&st); /* twice: harmless */
	free(b.buf);
	free(src);
}

/* s parsed whole as SSE has an error whose message is want. */
static void
expect_error(const char *s, const char *want, const char *what)
{
	struct stream st;
	const char *got;

	parse_all(&st, STREAM_SSE, s);
	got = error_field(st.error, "message");
	CHECK(streq(got, want) && st.bad[0] == '\0' && !st.done,
	    "%s: error \"%s\"", what, want);
	if (!streq(got, want))
		printf("#   got %s\n", json_text(st.error));
	stream_free(&st);
}

static void
test_sse(void)
{
	static const char fin[] = "data: {\"choices\":[{\"index\":0,\"delta\":"
	                          "{\"content\":\"x\"},\"finish_reason\":"
	                          "\"stop\"}]}";
	struct stream st;
	struct body b = { NULL, 0, 0 };
	size_t n;

	/* The end of the body ends the event, with or without "\n". */
	stream_init(&st, STREAM_SSE);
	body_str(&b, fin);
	body_str(&b, "\n");
	n = stream_feed(&st, b.buf, b.len);
	CHECK(n == 0 && st.text == NULL && st.pos == b.len && !st.done,
	    "sse: an event waits for its blank line");
	n = stream_end(&st, b.buf, b.len);
	CHECK(n == 1 && strcmp(st.text, "x") == 0 && st.done,
	    "sse: the end of the body dispatches it");
	n = stream_end(&st, b.buf, b.len);
	CHECK(n == 0 && st.records == 1, "sse: a second end does nothing");
	stream_free(&st);
	n = parse_all(&st, STREAM_SSE, fin);
	CHECK(n == 1 && st.done, "sse: a last data line without \"\\n\"");
	stream_free(&st);
	n = parse_all(&st, STREAM_NDJSON,
	    "{\"message\":{\"content\":\"y\"},\"done\":true}");
	CHECK(n == 1 && strcmp(st.text, "y") == 0 && st.done,
	    "ndjson: a last line without \"\\n\"");
	stream_free(&st);

	parse_all(&st, STREAM_SSE,
	    "data: {\"choices\":[{\"index\":0,\n"
	    "data:\"delta\":{\"content\":\"joined\"}}]}\n\n");
	CHECK(st.text != NULL && strcmp(st.text, "joined") == 0,
	    "sse: data lines are joined by \"\\n\"");
	stream_free(&st);

	parse_all(&st, STREAM_SSE,
	    "\xef\xbb\xbf"
	    "data: {\"choices\":[{\"delta\":{\"content\":\"bom\"}}]}\n\n"
	    "data:\n\n"
	    "data: \n\n"
	    "nocolon\n"
	    "id: 7\n"
	    "retry: 10\n"
	    ":comment\n\n");
	CHECK(st.text != NULL && strcmp(st.text, "bom") == 0 &&
	        st.bad[0] == '\0' && st.records == 1,
	    "sse: a byte order mark, empty data, other fields: ignored");
	stream_free(&st);

	parse_all(&st, STREAM_SSE, "data: [DONE]\n\n");
	CHECK(st.done && st.records == 0 && st.text == NULL,
	    "sse: [DONE] alone completes, and is no record");
	stream_free(&st);

	parse_all(&st, STREAM_SSE,
	    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":0,"
	    "\"completion_tokens\":0,\"total_tokens\":0}}\n\n");
	CHECK(st.usage && st.prompt_tokens == 0 && st.completion_tokens == 0,
	    "sse: a usage count of 0 is a count");
	stream_free(&st);
	parse_all(&st, STREAM_NDJSON,
	    "{\"message\":{\"role\":\"assistant\",\"content\":\"\"},"
	    "\"done\":true,\"prompt_eval_count\":0,\"eval_count\":0}\n");
	CHECK(st.usage && st.prompt_tokens == -1 &&
	        st.completion_tokens == -1 && st.done && st.text != NULL &&
	        st.textlen == 0 && st.deltas == 0,
	    "ndjson: Ollama's 0 is unknown; empty content is text \"\"");
	stream_free(&st);

	parse_all(&st, STREAM_SSE,
	    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":"
	    "\"assistant\",\"content\":null}}]}\n\n");
	CHECK(st.text == NULL && st.records == 1 && !st.done,
	    "sse: content null is no text yet");
	stream_free(&st);

	parse_all(&st, STREAM_SSE,
	    "data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"no\"}},"
	    "{\"index\":0,\"delta\":{\"content\":\"yes\"},"
	    "\"finish_reason\":null}]}\n\n");
	CHECK(strcmp(st.text, "yes") == 0 && st.deltas == 1 && !st.done,
	    "sse: the text is choice 0's");
	stream_free(&st);

	parse_all(&st, STREAM_SSE,
	    "data: {\"error\":null,\"choices\":[{\"delta\":{\"content\":"
	    "\"ok\"}}]}\n\n"
	    "data: {\"error\":\"\",\"choices\":[]}\n\n");
	CHECK(st.error == NULL && strcmp(st.text, "ok") == 0,
	    "sse: \"error\": null or \"\" beside a chunk is no error");
	stream_free(&st);

	/* The error shapes of each server. */
	expect_error("data: {\"error\":{\"object\":\"error\",\"message\":\"m\","
	             "\"type\":\"BadRequestError\",\"param\":null,"
	             "\"code\":400}}\n\ndata: [DONE]\n\n",
	    "m", "sse: newer vLLM");
	expect_error(
	    "data: {\"error\":{\"message\":\"model is required\","
	    "\"type\":\"api_error\",\"param\":null,\"code\":null}}\n\n",
	    "model is required", "sse: Ollama's /v1");
	expect_error(
	    "data: {\"error\":\"bare\"}\n\n", "bare", "sse: a bare string");
	expect_error("event: error\ndata: model overloaded\n\n",
	    "model overloaded", "sse: event: error, data not JSON");
	expect_error(
	    "event: error\ndata: {\"type\":\"error\",\"error\":{"
	    "\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}"
	    "\n\n",
	    "Overloaded", "sse: event: error, Anthropic's shape");
	expect_error("event: error\ndata: \"quoted\"\n\n", "quoted",
	    "sse: event: error, a JSON string");
	expect_error("event: error\ndata: 503\n\n", "503",
	    "sse: event: error, a number");
	expect_error("event: error\ndata:\n\n", "error event with no message",
	    "sse: event: error, empty data");
	expect_error("error: upstream went away\n\n", "upstream went away",
	    "sse: llama.cpp's error field, not JSON");
	expect_error("error:{\"code\":500,\"message\":\"x\",\"type\":"
	             "\"server_error\"}\r\n\r\n",
	    "x", "sse: llama.cpp's error field, no space, CRLF");

	/* "event" names one event only. */
	parse_all(&st, STREAM_SSE,
	    "event: error\n\n"
	    "data: {\"choices\":[{\"delta\":{\"content\":\"fine\"}}]}\n\n");
	CHECK(st.error == NULL && strcmp(st.text, "fine") == 0,
	    "sse: an event name is forgotten at the blank line");
	stream_free(&st);

	/* The parser's own fields, for a caller that looks. */
	stream_init(&st, STREAM_SSE);
	free(b.buf);
	memset(&b, 0, sizeof(b));
	body_str(&b, "event: error\ndata: a\ndata: b\n");
	stream_feed(&st, b.buf, b.len);
	CHECK(st.event_error && st.datalen == 3 &&
	        memcmp(st.data, "a\nb", 3) == 0 && st.error == NULL,
	    "sse: the event being assembled is in st->data");
	stream_free(&st);
	free(b.buf);

	stream_init(&st, STREAM_NDJSON);
	stream_free(&st);
	CHECK(st.text == NULL && st.error == NULL,
	    "stream_free of a stream that read nothing");
}

static void
test_estimate(void)
{
	char *big = xcalloc(1, (size_t)1 << 20);

	CHECK(stream_estimate_tokens(NULL, 0) == 0 &&
	        stream_estimate_tokens("", 0) == 0,
	    "estimate: no text, no tokens");
	CHECK(stream_estimate_tokens("a", 1) == 1 &&
	        stream_estimate_tokens("abcd", 4) == 1 &&
	        stream_estimate_tokens("abcde", 5) == 2,
	    "estimate: 4 bytes a token, rounded up");
	CHECK(stream_estimate_tokens(
	          "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 9) == 3,
	    "estimate: three CJK characters, 9 bytes, 3 tokens");
	CHECK(stream_estimate_tokens(big, (size_t)1 << 20) == 262144,
	    "estimate: 1 MiB, 262144 tokens");
	free(big);
}

int
main(int argc, char **argv)
{
	size_t i;

	(void)argc;
	(void)argv;
	fixture_init();
	for (i = 0; i < nitems(fixtures); i++)
		test_fixture(&fixtures[i]);
	test_utf8_split();
	test_nul();
	test_bad();
	test_depth();
	test_big();
	test_error_stops();
	test_sse();
	test_estimate();
	free(fixdir);
	return tap_done();
}
