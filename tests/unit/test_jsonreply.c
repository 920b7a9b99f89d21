/*
 * test_jsonreply.c: unit tests of jsonreply.c, which finds and parses
 * the JSON value in a model's reply.
 *
 * Every reply is copied into a buffer of exactly its length, without a
 * NUL, so that under the sanitizers a read past len fails the test.
 * The cases: fences with and without an info string (and CRLF, other
 * languages, bare fences of code, an unterminated one), prose before
 * and after, braces in strings and in the prose, truncated or broken
 * JSON (its error, at the exact byte, and never a nested object of it
 * taken for the answer), what json-c's strict mode lets through but
 * JSON forbids (single quotes, control characters, NaN, "1.", leading
 * zeros), two values, top-level scalars, nesting 64 and 65 deep,
 * invalid UTF-8, \u0000 kept, NUL bytes, len as the end of the text,
 * the bound on candidate starts, jr_looks_like_json, 1 MiB replies, and
 * the preview: escaped, cut on character boundaries, within its buffer.
 * Output is TAP, as test_cfg.c.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "jsonreply.h"
#include "util.h"

#include "tap.h"

/* jr_parse on an exact copy of s[0, n): no NUL after it. */
static int
parse_n(const char *s, size_t n, struct jr_result *r)
{
	char *buf = xmalloc(n > 0 ? n : 1);
	int rc;

	memcpy(buf, s, n);
	rc = jr_parse(buf, n, r);
	free(buf);
	return rc;
}

static int
parse(const char *s, struct jr_result *r)
{
	return parse_n(s, strlen(s), r);
}

static int
looks(const char *s)
{
	size_t n = strlen(s);
	char *buf = xmalloc(n > 0 ? n : 1);
	int rc;

	memcpy(buf, s, n);
	rc = jr_looks_like_json(buf, n);
	free(buf);
	return rc;
}

static const char *
plain(json_object *o)
{
	return json_object_to_json_string_ext(
	    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/*
 * s parses to the value whose plain form is want, found at the bytes
 * span (NULL: the same as want) of s.
 */
static void
expect_ok(const char *what, const char *s, const char *want, const char *span)
{
	struct jr_result r;
	int rc, ok;

	if (span == NULL)
		span = want;
	rc = parse(s, &r);
	ok = rc == 0 && r.value != NULL && strcmp(plain(r.value), want) == 0 &&
	    r.end - r.start == strlen(span) &&
	    memcmp(s + r.start, span, strlen(span)) == 0;
	CHECK(ok, "%s", what);
	if (!ok) {
		if (rc == 0)
			printf("#   got %s at [%zu, %zu)\n",
			    r.value != NULL ? plain(r.value) : "NULL", r.start,
			    r.end);
		else
			printf("#   failed at %zu: %s: %s\n", r.pos, r.message,
			    r.preview);
	}
	json_object_put(r.value);
}

/* s fails at byte pos with a message that holds msg. */
static void
expect_fail(const char *what, const char *s, size_t pos, const char *msg)
{
	struct jr_result r;
	int rc, ok;

	rc = parse(s, &r);
	ok = rc == -1 && r.value == NULL && r.pos == pos &&
	    strstr(r.message, msg) != NULL && strstr(r.preview, "<<HERE>>");
	CHECK(ok, "%s: \"%s\" at %zu", what, msg, pos);
	if (!ok) {
		if (rc == 0)
			printf("#   got %s\n", plain(r.value));
		else
			printf("#   failed at %zu: %s: %s\n", r.pos, r.message,
			    r.preview);
	}
	json_object_put(r.value);
}

static void
test_fences(void)
{
	expect_ok("fence tagged json, prose around it",
	    "Here is the plan:\n```json\n{\"steps\": [1, 2]}\n```\n"
	    "Let me know!",
	    "{\"steps\":[1,2]}", "{\"steps\": [1, 2]}");
	expect_ok("fence without an info string",
	    "Sure.\n```\n[true, null]\n```", "[true,null]", "[true, null]");
	expect_ok(
	    "fence tagged JSON", "```JSON\n{\"a\":1}\n```", "{\"a\":1}", NULL);
	expect_ok("fence tagged jsonc, with more words after",
	    "```jsonc title=\"x\"\n{\"a\":1}\n```", "{\"a\":1}", NULL);
	expect_ok("fence of four backticks, indented",
	    "  ````json\n  {\"a\":1}\n  ````\n", "{\"a\":1}", NULL);
	expect_ok("CRLF lines",
	    "Here:\r\n```json\r\n{\"a\":\r\n1}\r\n```\r\nBye", "{\"a\":1}",
	    "{\"a\":\r\n1}");
	expect_ok("unterminated fence: its content runs to the end",
	    "```json\n{\"a\":1}\n", "{\"a\":1}", NULL);
	expect_fail("unterminated fence, truncated JSON",
	    "```json\n{\"a\": [1,", 17, "unexpected end of data");
	expect_ok("a python fence first is skipped, closing line and all",
	    "```python\nx = {'a': 1}\n```\n```json\n{\"b\":2}\n```",
	    "{\"b\":2}", NULL);
	expect_ok("a json fence wins over an earlier bare one",
	    "Run:\n```\ncurl -d '{\"q\":1}'\n```\nResult:\n```json\n"
	    "{\"r\":2}\n```",
	    "{\"r\":2}", NULL);
	expect_ok("a fence without a value: the whole text is searched",
	    "```\nls -l\n```\nThe answer: {\"a\":1}", "{\"a\":1}", NULL);
	expect_ok("a bare fence of code is skipped for one of JSON",
	    "```\nmake install\n```\nthen:\n```\n{\"a\":1}\n```", "{\"a\":1}",
	    NULL);
	expect_ok(
	    "a bare fence holding a scalar", "```\nfalse\n```", "false", NULL);
	expect_ok("closing fence on the value's line: prose after a value",
	    "```json\n{\"a\":1}```\nDone.", "{\"a\":1}", NULL);
	expect_fail("error positions are offsets in the whole reply",
	    "Result:\n```json\n{\"a\": 1,}\n```", 24, "unexpected character");
	expect_ok("inline ``` is no fence", "Use ```json``` like {\"a\":1}",
	    "{\"a\":1}", NULL);
}

static void
test_prose(void)
{
	expect_ok("prose before and after",
	    "The result is {\"ok\": true} as requested.", "{\"ok\":true}",
	    "{\"ok\": true}");
	expect_ok("an array after prose", "Sure! [1, 2, 3]\nAnything else?",
	    "[1,2,3]", "[1, 2, 3]");
	expect_ok("braces and brackets in strings",
	    "x {\"s\": \"}{][\", \"t\": [1, {\"u\": \"]\\\"}\"}]} y",
	    "{\"s\":\"}{][\",\"t\":[1,{\"u\":\"]\\\"}\"}]}",
	    "{\"s\": \"}{][\", \"t\": [1, {\"u\": \"]\\\"}\"}]}");
	expect_ok("braces in the prose before the value",
	    "use {braces} like this: {\"a\":1}", "{\"a\":1}", NULL);
	expect_ok("prose in brackets, then a value", "[see below] {\"b\": 2}",
	    "{\"b\":2}", "{\"b\": 2}");
	expect_ok("two values: the first wins", "{\"a\":1}\n{\"b\":2}",
	    "{\"a\":1}", NULL);
	expect_ok("white space around the value is not part of it",
	    "\n\t {\"a\":1} \n", "{\"a\":1}", NULL);
	expect_ok(
	    "a value that ends the text", "{\"a\":[]}", "{\"a\":[]}", NULL);
	expect_ok("non-ASCII prose right after the value",
	    "{\"a\":1}\xe3\x80\x82\xe8\xb0\xa2\xe8\xb0\xa2", "{\"a\":1}", NULL);
	expect_ok("invalid UTF-8 in the prose does not matter",
	    "caf\xe9 {\"a\":\"\xc3\xa9\"}", "{\"a\":\"\xc3\xa9\"}", NULL);
}

static void
test_errors(void)
{
	expect_fail("truncated object: at the end, end of data",
	    "Sure: {\"a\": [1, 2", 17, "end of data");
	expect_fail("truncated: a complete nested object is not the answer",
	    "{\"a\": {\"b\": 1}, \"c\": [", 22, "end of data");
	expect_fail(
	    "truncated in a string", "{\"a\": \"abc", 10, "end of data");
	expect_fail("truncated after prose braces: the longest attempt",
	    "use {braces} then {\"a\": [1, 2", 29, "end of data");
	expect_fail("trailing comma", "{\"a\": 1,}", 8, "unexpected character");
	expect_fail(
	    "trailing comma in an array", "[1, 2,]", 6, "unexpected character");
	expect_fail("single quotes", "{'a': 1}", 1, "single-quoted");
	expect_fail("single-quoted value", "{\"a\": 'x'}", 6, "single-quoted");
	expect_fail("unquoted key", "{a: 1}", 1, "property name");
	expect_fail("raw newline in a string", "{\"a\": \"x\ny\"}", 8,
	    "control character");
	expect_fail(
	    "raw tab in a string", "[\"x\ty\"]", 3, "control character");
	expect_fail("NaN", "{\"a\": NaN}", 6, "unexpected character");
	expect_fail("-Infinity", "[-Infinity]", 1, "number expected");
	expect_fail("1.", "[1.]", 2, "number expected");
	expect_fail("-.5", "[-.5]", 1, "number expected");
	expect_fail("leading zero", "{\"a\": -025}", 7, "leading zero");
	expect_ok("zeros that may lead: fraction, exponent",
	    "[0, -0.05, 1e05, 1E-05, 10]", "[0,-0.05,1e05,1E-05,10]",
	    "[0, -0.05, 1e05, 1E-05, 10]");
	expect_fail(
	    "comment", "{\"a\": 1 /* one */}", 8, "separator ',' expected");
	expect_fail("empty reply", "", 0, "no JSON value in the reply");
	expect_fail("only white space", " \n\t", 3, "no JSON value");
	expect_fail("prose only", "  I cannot help with that.", 2,
	    "no JSON value in the reply");
	expect_fail("a Markdown list is no number", "- first\n- second", 0,
	    "no JSON value");
	expect_fail("an empty json fence", "```json\n```", 0, "no JSON value");
	expect_fail("broken JSON: its error, not a later start",
	    "{\"a\": 1, \"b\" 2} and {\"c\": 3}", 13, "separator ':' expected");
	expect_fail("trailing comma: not the next object in the array",
	    "[{\"a\": 1,}, {\"b\": 2}]", 9, "unexpected character");
	expect_fail("single quotes inside: not the next object",
	    "{\"a\": {'x': 1}, \"b\": {\"c\": 2}}", 7, "single-quoted");
	expect_fail("prose braces: the error of the longest attempt",
	    "{x} {  y} {z}", 7, "property name");
}

static void
test_scalars(void)
{
	struct jr_result r;

	expect_ok("a number alone", "42", "42", NULL);
	expect_ok("a number with white space", "\n -1.5e3 \n", "-1.5e3", NULL);
	expect_ok("a string alone", "\"hello\"", "\"hello\"", NULL);
	expect_ok("true alone", "true", "true", NULL);
	expect_ok(
	    "a number in a fence", "Answer:\n```json\n7\n```\n", "7", NULL);
	CHECK(parse("null", &r) == 0 && r.value == NULL && r.start == 0 &&
	        r.end == 4,
	    "null alone: success, and the value is NULL");
	expect_fail("a number in prose is no JSON value", "42 apples", 0,
	    "no JSON value");
	expect_fail("a string then prose is no JSON value", "\"Hi\" she said",
	    0, "no JSON value");
	expect_fail("an unterminated string", "\"abc", 4, "end of data");
	expect_fail("bad escape in a string", "\"a\\qb\"", 3,
	    "invalid string sequence");
	expect_ok("a scalar then an object: the object", "3 items: [1, 2, 3]",
	    "[1,2,3]", "[1, 2, 3]");
	expect_ok("a string holding braces, alone", "\"{\\\"a\\\":1}\"",
	    "\"{\\\"a\\\":1}\"", NULL);
	expect_ok("numbers: exponents, too large for a double",
	    "[1e400, -0.5, 1E+2]", "[1e400,-0.5,1E+2]", "[1e400, -0.5, 1E+2]");
}

/* "[[[...[]...]]]": depth arrays, one in another. */
static char *
nested(int depth)
{
	char *s = xmalloc((size_t)depth * 2 + 1);
	int i;

	for (i = 0; i < depth; i++) {
		s[i] = '[';
		s[depth + i] = ']';
	}
	s[depth * 2] = '\0';
	return s;
}

static void
test_depth(void)
{
	struct jr_result r;
	char *s;
	int rc;

	s = nested(64);
	rc = parse(s, &r);
	CHECK(rc == 0 && r.end == 128, "64 levels of nesting are read");
	json_object_put(r.value);
	free(s);
	s = nested(65);
	rc = parse(s, &r);
	CHECK(rc == -1 && strstr(r.message, "nesting too deep") != NULL &&
	        r.pos == 64,
	    "65 levels are refused, at the 65th: %zu %s", r.pos, r.message);
	json_object_put(r.value);
	free(s);
	/* Not the 64 levels inside, as a later candidate. */
	s = nested(70);
	rc = parse(s, &r);
	CHECK(rc == -1 && r.pos == 64,
	    "70 levels are refused, not taken from the 7th: %zu %s", r.pos,
	    r.message);
	json_object_put(r.value);
	free(s);
}

static void
test_utf8(void)
{
	struct jr_result r;
	size_t n;

	expect_ok("UTF-8 in strings",
	    "{\"k\": \"\xe2\x82\xac \xf0\x9f\x91\x8b\"}",
	    "{\"k\":\"\xe2\x82\xac \xf0\x9f\x91\x8b\"}",
	    "{\"k\": \"\xe2\x82\xac \xf0\x9f\x91\x8b\"}");
	expect_fail("Latin-1 byte in a string", "{\"a\": \"caf\xe9\"}", 10,
	    "invalid utf-8");
	expect_fail("Latin-1 byte then a letter", "{\"a\": \"caf\xe9s\"}", 10,
	    "invalid utf-8");
	expect_fail(
	    "lone continuation byte", "[\"a\x80\"]", 3, "invalid utf-8");
	expect_fail("truncated sequence", "[\"\xe2\x82\"]", 2, "invalid utf-8");
	expect_fail("overlong form", "[\"\xc0\xaf\"]", 2, "invalid utf-8");
	expect_fail(
	    "encoded surrogate", "[\"x\xed\xa0\x80\"]", 3, "invalid utf-8");
	expect_fail(
	    "past U+10FFFF", "[\"\xf4\x90\x80\x80\"]", 2, "invalid utf-8");
	expect_fail("UTF-8 outside strings", "[1, \xe2\x82\xac]", 4,
	    "unexpected character");

	/* \u0000: kept, with the string's length. */
	CHECK(parse("{\"s\": \"a\\u0000b\"}", &r) == 0,
	    "\\u0000 in a string parses");
	if (r.value != NULL) {
		json_object *v;

		CHECK(json_object_object_get_ex(r.value, "s", &v) &&
		        json_object_get_string_len(v) == 3 &&
		        memcmp(json_object_get_string(v), "a\0b", 3) == 0,
		    "\\u0000 is kept: the string is 3 bytes");
		CHECK(strcmp(plain(r.value), "{\"s\":\"a\\u0000b\"}") == 0,
		    "\\u0000 is written back escaped");
	}
	json_object_put(r.value);
	/* A NUL byte in the text itself. */
	n = sizeof("{\"a\": \"x\0y\"}") - 1;
	CHECK(parse_n("{\"a\": \"x\0y\"}", n, &r) == -1 && r.pos == 8 &&
	        strstr(r.message, "control character") != NULL,
	    "a NUL byte in a string: at its offset: %zu %s", r.pos, r.message);
	n = sizeof("{\"a\": 1\0}") - 1;
	CHECK(parse_n("{\"a\": 1\0}", n, &r) == -1 && r.pos == 7 &&
	        strstr(r.message, "unexpected character") != NULL,
	    "a NUL byte between tokens: at its offset: %zu %s", r.pos,
	    r.message);
	/* len, not the NUL, ends the text. */
	CHECK(parse_n("{\"a\":1}xyz", 7, &r) == 0 && r.end == 7,
	    "len ends the text");
	json_object_put(r.value);
	CHECK(parse_n("{\"a\":1}", 5, &r) == -1 && r.pos == 5 &&
	        strstr(r.message, "end of data") != NULL,
	    "a text cut by len is truncated at len");
	CHECK(parse_n("12345", 2, &r) == 0 && r.end == 2 &&
	        json_object_get_int(r.value) == 12,
	    "a number cut by len ends at len");
	json_object_put(r.value);
}

/* n failed starts ("{x} ") and then a value. */
static char *
junk(int n)
{
	char *s = xmalloc((size_t)n * 4 + 16);
	int i;

	for (i = 0; i < n; i++)
		memcpy(s + i * 4, "{x} ", 4);
	strcpy(s + n * 4, "{\"a\":1}");
	return s;
}

static void
test_tries(void)
{
	struct jr_result r;
	char *s;

	s = junk(JR_TRIES - 1);
	CHECK(parse(s, &r) == 0 && r.start == (JR_TRIES - 1) * 4,
	    "%d failed starts, then the value: found", JR_TRIES - 1);
	json_object_put(r.value);
	free(s);
	s = junk(JR_TRIES);
	CHECK(parse(s, &r) == -1 && r.pos == 1 &&
	        strstr(r.message, "property name") != NULL,
	    "%d failed starts: the search stops, the first error stands",
	    JR_TRIES);
	free(s);
}

static void
test_looks(void)
{
	static const char *yes[] = { "{}", "  [1, 2]\n", "{\"a\": 1}",
		"```json\n{\"a\":1}\n```", "```\n[1]\n```\nThat's all.",
		"\n```JSON\r\n{\"a\":1}\r\n```\r\n", "```json\n{\"a\":1}",
		"{ oops ]" };
	static const char *no[] = { "", "  ", "Here: {\"a\":1}", "{\"a\": 1",
		"\"a string\"", "42", "```python\n{}\n```",
		"```json\nhello\n```", "{\"a\":1} Let me know!", "```json\n```",
		"`{}`" };
	size_t i;
	char *e;

	for (i = 0; i < nitems(yes); i++) {
		e = str_escape(yes[i], strlen(yes[i]), 80);
		CHECK(looks(yes[i]) == 1, "looks like JSON: \"%s\"", e);
		free(e);
	}
	for (i = 0; i < nitems(no); i++) {
		e = str_escape(no[i], strlen(no[i]), 80);
		CHECK(looks(no[i]) == 0, "does not look like JSON: \"%s\"", e);
		free(e);
	}
}

static void
test_big(void)
{
	const size_t big = 1 << 20;
	struct jr_result r;
	char *s;
	size_t i, n;
	int64_t t;
	int rc;

	/* Braces everywhere, no value: the bound on starts. */
	s = xmalloc(big);
	for (i = 0; i < big; i++)
		s[i] = "{x "[i % 3];
	t = mono_ms();
	rc = jr_parse(s, big, &r);
	CHECK(rc == -1, "1 MiB of \"{x \": an error, in %lld ms",
	    (long long)(mono_ms() - t));
	/* One long value after prose. */
	n = (size_t)snprintf(s, big, "Here you are: [");
	while (n < big - 16)
		n += (size_t)snprintf(s + n, big - n, "\"%05zu\",", n % 99999);
	n += (size_t)snprintf(s + n, big - n, "1] bye");
	t = mono_ms();
	rc = jr_parse(s, n, &r);
	CHECK(rc == 0 && json_object_array_length(r.value) > 100000 &&
	        r.end == n - 4,
	    "1 MiB array after prose: parsed, in %lld ms",
	    (long long)(mono_ms() - t));
	json_object_put(r.value);
	/* The same, cut off: one attempt, the error at the end. */
	t = mono_ms();
	rc = jr_parse(s, n - 6, &r);
	CHECK(rc == -1 && r.pos == n - 6 &&
	        strstr(r.message, "end of data") != NULL,
	    "1 MiB array cut off: end of data at the end, in %lld ms",
	    (long long)(mono_ms() - t));
	/* Arrays nested past the limit, over and over. */
	memset(s, '[', big);
	t = mono_ms();
	rc = jr_parse(s, big, &r);
	CHECK(rc == -1 && strstr(r.message, "nesting too deep") != NULL,
	    "1 MiB of '[': too deep, in %lld ms", (long long)(mono_ms() - t));
	/* Fences of another language, then the value. */
	for (n = 0; n + 32 < big;)
		n += (size_t)snprintf(s + n, big - n, "```sh\nls -l\n```\n");
	n += (size_t)snprintf(s + n, big - n, "{\"a\":1}");
	t = mono_ms();
	rc = jr_parse(s, n, &r);
	CHECK(rc == 0 && r.start == n - 7,
	    "1 MiB of sh fences, then the value: found, in %lld ms",
	    (long long)(mono_ms() - t));
	json_object_put(r.value);
	CHECK(jr_looks_like_json(s, n) == 0, "1 MiB of sh fences: not JSON");
	free(s);
}

/* Whether s is valid UTF-8 throughout. */
static int
valid_utf8(const char *s)
{
	char *e = str_escape(s, strlen(s), strlen(s));
	int ok = strstr(e, "\\x") == NULL;

	free(e);
	return ok;
}

static void
test_preview(void)
{
	struct jr_result r;
	char s[512];
	size_t i, n;

	parse("{\"a\": 1,}", &r);
	CHECK(strcmp(r.preview, "{\"a\": 1, <<HERE>> }") == 0,
	    "preview of a short reply: \"%s\"", r.preview);
	parse("Sure:\r\n\t{\"a\":\x01}", &r);
	CHECK(strcmp(r.preview, "Sure:\\r\\n\\t{\"a\": <<HERE>> \\x01}") == 0,
	    "preview escapes control bytes: \"%s\"", r.preview);
	parse("{\"a\": \"caf\xe9\"}", &r);
	CHECK(strcmp(r.preview, "{\"a\": \"caf <<HERE>> \\xe9\"}") == 0,
	    "preview escapes the bad byte: \"%s\"", r.preview);
	parse("\\ no {x}", &r);
	CHECK(strcmp(r.preview, "\\\\ no { <<HERE>> x}") == 0,
	    "preview escapes backslashes: \"%s\"", r.preview);

	/* Three-byte characters around pos: cut between characters. */
	n = 0;
	for (i = 0; i < 30; i++)
		n += (size_t)snprintf(s + n, sizeof(s) - n, "\xe6\x97\xa5");
	n += (size_t)snprintf(s + n, sizeof(s) - n, " {\"a\" 1} ");
	for (i = 0; i < 30; i++)
		n += (size_t)snprintf(s + n, sizeof(s) - n, "\xe8\xaa\x9e");
	parse(s, &r);
	CHECK(r.pos == 96 && valid_utf8(r.preview) &&
	        strncmp(r.preview, "...\xe6\x97\xa5", 6) == 0 &&
	        strstr(r.preview, " {\"a\"  <<HERE>> 1} \xe8\xaa\x9e") !=
	            NULL &&
	        strcmp(r.preview + strlen(r.preview) - 6, "\xe8\xaa\x9e...") ==
	            0,
	    "preview cut on character boundaries: \"%s\"", r.preview);

	/* Control bytes on both sides: four bytes each, still fits. */
	memset(s, '\x01', 100);
	memcpy(s + 100, "{\"a\" 1}", 7);
	memset(s + 107, '\x02', 100);
	s[207] = '\0';
	parse(s, &r);
	CHECK(r.pos == 105 && strlen(r.preview) < sizeof(r.preview) &&
	        strstr(r.preview, "{\"a\"  <<HERE>> 1}\\x02") != NULL &&
	        strncmp(r.preview, "...\\x01", 7) == 0,
	    "preview of control bytes fits: %zu bytes", strlen(r.preview));
	parse("x", &r);
	CHECK(strcmp(r.preview, " <<HERE>> x") == 0,
	    "preview at the start: \"%s\"", r.preview);
}

int
main(void)
{
	test_fences();
	test_prose();
	test_errors();
	test_scalars();
	test_depth();
	test_utf8();
	test_tries();
	test_looks();
	test_big();
	test_preview();
	return tap_done();
}
