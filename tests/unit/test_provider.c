/*
 * test_provider.c: unit tests for the pure parts of provider.c, the
 * classification of a call's outcome and the Retry-After headers.
 *
 * Each recorded body in tests/fixtures (found through LLMQ_SRCDIR, which
 * tests/run and "make check" export) is classified with an HTTP status
 * by provider_classify(), as provider_call_done() does after a transfer,
 * and the error kind, whether it is retried and a telling part of the
 * message are checked; so are the reply text and token counts of good
 * replies (Ollama's zero counts as unknown), transfer failures, the
 * escaping and truncation of a provider's message, Retry-After values
 * (delta seconds, the three HTTP date forms, garbage), retry-after-ms
 * winning over Retry-After, and the capture of both from header lines,
 * forgotten when a new status line starts another header block.
 * Output is TAP, as test_cfg.c.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cfg.h"
#include "log.h"
#include "provider.h"
#include "util.h"

#include "tap.h"

/* What the server's delay saturates at: 2^31 s. */
#define DELAY_MAX_MS (INT64_C(2147483648) * 1000)

static char *fixdir;

static const struct cfg_provider ollama = {
	.name = "local",
	.kind = PROV_OLLAMA,
	.url = "http://127.0.0.1:11434",
	.max_response = 1 << 20,
};
static const struct cfg_provider openai = {
	.name = "cloud",
	.kind = PROV_OPENAI,
	.url = "https://api.openai.com/v1",
	.max_response = 1 << 20,
};

static char *
fixture(const char *name, size_t *len)
{
	char *path, *buf = NULL;
	size_t cap = 0, n;
	FILE *f;

	path = xasprintf("%s/%s", fixdir, name);
	if ((f = fopen(path, "r")) == NULL) {
		printf("Bail out! could not open \"%s\": %s\n", path,
		    strerror(errno));
		exit(1);
	}
	*len = 0;
	do {
		if (*len + 4096 + 1 > cap)
			buf = xrealloc(buf, cap = *len + 8192);
		n = fread(buf + *len, 1, cap - *len - 1, f);
		*len += n;
	} while (n > 0);
	if (ferror(f)) {
		printf("Bail out! could not read \"%s\"\n", path);
		exit(1);
	}
	buf[*len] = '\0';
	fclose(f);
	free(path);
	return buf;
}

static struct call *
new_call(const struct cfg_provider *p)
{
	struct call *c = xcalloc(1, sizeof(*c));

	c->group = -1;
	c->model = -1;
	c->prov = p;
	c->maxresp = p->max_response;
	c->prompt_tokens = c->completion_tokens = -1;
	c->retry_after_ms = -1;
	return c;
}

static struct call *
classify(const struct cfg_provider *p, CURLcode code, long status,
    const char *body, size_t len)
{
	struct call *c = new_call(p);

	provider_classify(c, code, status, body, len);
	return c;
}

/*
 * The outcome of c is failure kind, retried or not, with part in its
 * message; what names the case.
 */
static void
expect_fail(struct call *c, const char *what, const char *kind, int retry,
    const char *part)
{
	int good = !c->ok && c->error_kind != NULL &&
	    strcmp(c->error_kind, kind) == 0 && c->retry == retry &&
	    c->error_message != NULL && strstr(c->error_message, part) != NULL;

	CHECK(good, "%s: %s, %s, \"%s\"", what, kind,
	    retry ? "retried" : "not retried", part);
	if (!good)
		printf("#   got ok %d, kind %s, retry %d, message \"%s\"\n",
		    c->ok, c->error_kind ? c->error_kind : "(none)", c->retry,
		    c->error_message ? c->error_message : "(none)");
}

/* Fixture name, served with status, fails as kind. */
static void
fix_fail(const struct cfg_provider *p, const char *name, long status,
    const char *kind, int retry, const char *part)
{
	char *body, *what;
	size_t len;
	struct call *c;

	body = fixture(name, &len);
	c = classify(p, CURLE_OK, status, body, len);
	what = xasprintf("%s as %ld", name, status);
	expect_fail(c, what, kind, retry, part);
	CHECK(c->http_status == status && c->text == NULL,
	    "%s: http_status kept, no text", what);
	free(what);
	free(body);
	provider_call_free(c);
}

/* A body given inline, served with status, fails as kind. */
static void
body_fail(const struct cfg_provider *p, const char *body, long status,
    const char *kind, int retry, const char *part)
{
	struct call *c = classify(p, CURLE_OK, status, body, strlen(body));
	char *what = xasprintf("'%s' as %ld", body, status);

	expect_fail(c, what, kind, retry, part);
	free(what);
	provider_call_free(c);
}

/* Fixture name, served with 200, is a good reply of text and counts. */
static void
fix_ok(const struct cfg_provider *p, const char *name, const char *text,
    int prompt, int completion)
{
	char *body;
	size_t len;
	struct call *c;

	body = fixture(name, &len);
	c = classify(p, CURLE_OK, 200, body, len);
	CHECK(c->ok && c->error_kind == NULL && c->error_message == NULL &&
	        c->retry == 0 && c->text != NULL && strcmp(c->text, text) == 0,
	    "%s: ok, \"%s\"", name, text);
	CHECK(c->prompt_tokens == prompt && c->completion_tokens == completion,
	    "%s: tokens %d and %d", name, prompt, completion);
	if (!c->ok)
		printf("#   got %s: %s\n", c->error_kind, c->error_message);
	else if (c->prompt_tokens != prompt ||
	    c->completion_tokens != completion)
		printf("#   got tokens %d and %d\n", c->prompt_tokens,
		    c->completion_tokens);
	free(body);
	provider_call_free(c);
}

static void
test_replies(void)
{
	struct call *c;
	const char *b;

	fix_ok(&ollama, "ollama-ok.json", "Hello! How can I help you today?",
	    26, 298);
	/* Ollama omits a zero count, and a 0 says no more. */
	fix_ok(&ollama, "ollama-ok-cached.json", "Hello again!", -1, 4);
	fix_ok(&ollama, "ollama-ok-zero.json", "", -1, -1);
	fix_ok(&openai, "openai-ok.json", "Hello! How can I assist you today?",
	    19, 10);

	/* OpenAI's zero is a count. */
	b = "{\"choices\":[{\"message\":{\"content\":\"\"}}],"
	    "\"usage\":{\"prompt_tokens\":0,\"completion_tokens\":0}}";
	c = classify(&openai, CURLE_OK, 200, b, strlen(b));
	CHECK(c->ok && c->prompt_tokens == 0 && c->completion_tokens == 0,
	    "openai: zero usage counts are kept");
	provider_call_free(c);
	b = "{\"choices\":[{\"message\":{\"content\":\"x\"}}]}";
	c = classify(&openai, CURLE_OK, 200, b, strlen(b));
	CHECK(c->ok && c->prompt_tokens == -1 && c->completion_tokens == -1,
	    "openai: no usage, tokens unknown");
	provider_call_free(c);

	/* "error": null beside a good reply is no error. */
	b = "{\"error\":null,\"message\":{\"content\":\"fine\"}}";
	c = classify(&ollama, CURLE_OK, 200, b, strlen(b));
	CHECK(c->ok && strcmp(c->text, "fine") == 0,
	    "\"error\": null beside a reply is no error");
	provider_call_free(c);
	b = "{\"error\":\"\",\"message\":{\"content\":\"fine\"}}";
	c = classify(&ollama, CURLE_OK, 200, b, strlen(b));
	CHECK(c->ok, "\"error\": \"\" beside a reply is no error");
	provider_call_free(c);

	/* A NUL in the reply text becomes U+FFFD. */
	b = "{\"message\":{\"content\":\"a\\u0000b\"}}";
	c = classify(&ollama, CURLE_OK, 200, b, strlen(b));
	CHECK(c->ok &&
	        strcmp(c->text,
	            "a\xef\xbf\xbd"
	            "b") == 0,
	    "a NUL in the reply becomes U+FFFD");
	provider_call_free(c);

	fix_fail(&openai, "openai-refusal.json", 200, "http_error", 0,
	    "model refused: I'm sorry");
	body_fail(&openai, "{\"choices\":[]}", 200, "http_error", 0,
	    "no message content");
	body_fail(&ollama, "{\"done\":true}", 200, "http_error", 0,
	    "no message content");
	body_fail(&ollama, "[1,2]", 200, "http_error", 0, "not a JSON object");
}

static void
test_http_errors(void)
{
	/* Ollama */
	fix_fail(&ollama, "ollama-404-model.json", 404, "bad_request", 0,
	    "HTTP 404: model \"qwen3:4b\" not found, try pulling it first");
	fix_fail(&ollama, "ollama-503-busy.json", 503, "provider_down", 1,
	    "HTTP 503: server busy");
	fix_fail(&ollama, "ollama-500-runner.json", 500, "http_error", 1,
	    "HTTP 500: llama runner process has terminated");
	fix_fail(&ollama, "ollama-500-runner.json", 200, "http_error", 1,
	    "provider error: llama runner process has terminated");

	/* OpenAI */
	fix_fail(&openai, "openai-429-rate.json", 429, "rate_limited", 1,
	    "HTTP 429 (rate_limit_exceeded): Rate limit reached for gpt-4o");
	fix_fail(&openai, "openai-429-rate.json", 200, "rate_limited", 1,
	    "provider error (rate_limit_exceeded): Rate limit reached");
	fix_fail(&openai, "openai-429-quota.json", 429, "http_error", 0,
	    "insufficient quota: You exceeded your current quota");
	fix_fail(&openai, "openai-429-quota.json", 200, "http_error", 0,
	    "insufficient quota: You exceeded your current quota");
	body_fail(&openai,
	    "{\"error\":{\"message\":\"m\",\"type\":\"insufficient_quota\"}}",
	    429, "http_error", 0, "insufficient quota: m");
	body_fail(&openai,
	    "{\"error\":{\"message\":\"m\",\"code\":\"insufficient_quota\"}}",
	    429, "http_error", 0, "insufficient quota: m");
	fix_fail(&openai, "openai-401-key.json", 401, "bad_request", 0,
	    "HTTP 401 (invalid_api_key): authentication failed: Incorrect "
	    "API key provided");
	fix_fail(&openai, "openai-401-key.json", 403, "bad_request", 0,
	    "authentication failed");
	fix_fail(&openai, "openai-401-key.json", 200, "bad_request", 0,
	    "authentication failed: Incorrect API key");
	body_fail(&openai, "Unauthorized", 401, "bad_request", 0,
	    "HTTP 401: authentication failed: Unauthorized");
	fix_fail(&openai, "openai-400-context.json", 400, "bad_request", 0,
	    "HTTP 400 (context_length_exceeded): This model's maximum "
	    "context length is 8192 tokens");
	fix_fail(&openai, "openai-400-context.json", 200, "bad_request", 0,
	    "maximum context length");
	fix_fail(&openai, "openai-400-context.json", 413, "bad_request", 0,
	    "HTTP 413");
	fix_fail(&openai, "openai-400-context.json", 422, "bad_request", 0,
	    "HTTP 422");
	fix_fail(&openai, "openai-400-context.json", 418, "bad_request", 0,
	    "HTTP 418");
	fix_fail(&openai, "openai-500-server.json", 500, "http_error", 1,
	    "HTTP 500 (server_error): The server had an error");
	fix_fail(&openai, "openai-500-server.json", 200, "http_error", 1,
	    "provider error (server_error): The server had an error");
	fix_fail(&openai, "openai-500-server.json", 409, "http_error", 1,
	    "HTTP 409");
	fix_fail(&openai, "openai-500-server.json", 501, "http_error", 0,
	    "HTTP 501");
	fix_fail(
	    &openai, "openai-500-server.json", 408, "timeout", 1, "HTTP 408");
	fix_fail(&openai, "openai-truncated.json", 200, "http_error", 1,
	    "invalid JSON from provider: unexpected end of JSON");

	/* vLLM, older builds: a flat error object. */
	fix_fail(&openai, "vllm-400-flat.json", 400, "bad_request", 0,
	    "HTTP 400 (BadRequestError): This model's maximum context length "
	    "is 4096 tokens");
	fix_fail(&openai, "vllm-400-flat.json", 200, "bad_request", 0,
	    "provider error (BadRequestError): This model's maximum");
	fix_fail(&openai, "vllm-404-flat.json", 404, "bad_request", 0,
	    "does not exist");
	fix_fail(&openai, "vllm-404-flat.json", 200, "bad_request", 0,
	    "provider error (NotFoundError): The model `qwen3:4b` does not");

	/* llama.cpp while it loads the model. */
	fix_fail(&openai, "llamacpp-503-loading.json", 503, "provider_down", 1,
	    "HTTP 503 (unavailable_error): Loading model");
	fix_fail(&openai, "llamacpp-503-loading.json", 200, "provider_down", 1,
	    "provider error (unavailable_error): Loading model");
	/* Without a type, an integer code counts as the HTTP status. */
	body_fail(&openai, "{\"error\":{\"code\":503,\"message\":\"busy\"}}",
	    200, "provider_down", 1, "provider error: busy");
	body_fail(&openai, "{\"error\":{\"code\":404,\"message\":\"gone\"}}",
	    200, "bad_request", 0, "provider error: gone");
	body_fail(&openai, "{\"error\":{\"code\":\"mystery\"}}", 200,
	    "http_error", 1,
	    "provider error (mystery): {\"code\":\"mystery\"}");

	/* A proxy in front of the server. */
	fix_fail(&openai, "proxy-502.html", 502, "provider_down", 1,
	    "HTTP 502: <html>\\n<head><title>502 Bad Gateway</title>");
	fix_fail(&openai, "proxy-502.html", 504, "timeout", 1, "HTTP 504");
	fix_fail(&openai, "proxy-502.html", 500, "http_error", 1, "HTTP 500");
	fix_fail(&ollama, "proxy-502.html", 200, "http_error", 1,
	    "invalid JSON from provider");

	body_fail(&openai, "", 200, "http_error", 1, "empty body");
	body_fail(&openai, "", 503, "provider_down", 1, "HTTP 503: empty body");
	body_fail(&openai, "", 301, "http_error", 0, "HTTP 301");
	body_fail(&openai, "not json", 200, "http_error", 1,
	    "invalid JSON from provider");
	body_fail(&openai, "{\"message\":{\"content\":\"x\"}} {", 200,
	    "http_error", 1, "invalid JSON from provider");
}

static void
test_transfer(void)
{
	struct call *c;

	c = classify(&ollama, CURLE_OPERATION_TIMEDOUT, 0, NULL, 0);
	expect_fail(c, "curl timeout", "timeout", 1, "timed out");
	provider_call_free(c);

	c = new_call(&ollama);
	snprintf(c->errbuf, sizeof(c->errbuf), "Failed to connect to h");
	provider_classify(c, CURLE_COULDNT_CONNECT, 0, NULL, 0);
	expect_fail(
	    c, "curl connect", "provider_down", 1, "Failed to connect to h");
	provider_call_free(c);

	c = classify(&ollama, CURLE_COULDNT_RESOLVE_HOST, 0, NULL, 0);
	expect_fail(c, "curl DNS", "provider_down", 1, "resolve");
	provider_call_free(c);
	c = classify(&ollama, CURLE_RECV_ERROR, 0, NULL, 0);
	expect_fail(c, "curl recv", "provider_down", 1, "");
	provider_call_free(c);
	c = classify(&ollama, CURLE_GOT_NOTHING, 0, NULL, 0);
	expect_fail(c, "curl empty reply", "provider_down", 1, "");
	provider_call_free(c);
	c = classify(&ollama, CURLE_PEER_FAILED_VERIFICATION, 0, NULL, 0);
	expect_fail(c, "curl certificate", "provider_down", 0, "");
	provider_call_free(c);

	c = new_call(&ollama);
	c->overflow = 1;
	provider_classify(c, CURLE_WRITE_ERROR, 200, NULL, 0);
	expect_fail(c, "response past max_response", "http_error", 0,
	    "response larger than 1048576 bytes");
	provider_call_free(c);
	c = classify(&ollama, CURLE_FILESIZE_EXCEEDED, 200, NULL, 0);
	expect_fail(c, "Content-Length past max_response", "http_error", 0,
	    "response larger than");
	provider_call_free(c);

	c = provider_call_failed(1, 1, "bad_request", "no such model");
	CHECK(!c->ok && c->retry == 0 && c->retry_after_ms == -1 &&
	        strcmp(c->error_kind, "bad_request") == 0,
	    "provider_call_failed: not retried, no Retry-After");
	provider_call_free(c);
}

static void
test_escaping(void)
{
	struct call *c;
	const char *b, *want;
	char *big;
	size_t n;

	/* Control bytes are escaped once, not twice. */
	b = "{\"error\":\"line1\\nline2\\u0001 back\\\\slash\"}";
	c = classify(&ollama, CURLE_OK, 500, b, strlen(b));
	want = "HTTP 500: line1\\nline2\\x01 back\\\\slash";
	CHECK(c->error_message != NULL && strcmp(c->error_message, want) == 0,
	    "a provider's message is escaped once");
	if (c->error_message != NULL && strcmp(c->error_message, want) != 0)
		printf("#   got \"%s\"\n", c->error_message);
	provider_call_free(c);

	/* A long message is cut to about 500 bytes. */
	n = 100000;
	big = xmalloc(n + 32);
	strcpy(big, "{\"error\":\"");
	memset(big + 10, 'a', n);
	strcpy(big + 10 + n, "\"}");
	c = classify(&ollama, CURLE_OK, 500, big, strlen(big));
	n = strlen(c->error_message);
	CHECK(n >= 450 && n <= 510 &&
	        strcmp(c->error_message + n - 3, "...") == 0,
	    "a long message is truncated (%zu bytes)", n);
	provider_call_free(c);

	/* The same for a body that is not JSON. */
	memset(big, '<', 100000);
	big[100000] = '\0';
	c = classify(&ollama, CURLE_OK, 502, big, 100000);
	n = strlen(c->error_message);
	CHECK(n >= 450 && n <= 510, "a long HTML body is truncated (%zu bytes)",
	    n);
	provider_call_free(c);
	c = classify(&ollama, CURLE_OK, 200, big, 100000);
	n = strlen(c->error_message);
	CHECK(n <= 510 && strstr(c->error_message, "invalid JSON") != NULL,
	    "a long invalid body is truncated (%zu bytes)", n);
	provider_call_free(c);
	free(big);
}

static const char *const wday[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri",
	"Sat" };
static const char *const month[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* t (seconds since the epoch) as an IMF-fixdate. */
static void
imf_fixdate(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d GMT",
	    wday[tm.tm_wday], tm.tm_mday, month[tm.tm_mon], tm.tm_year + 1900,
	    tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* value parses to want ms at now_ms (want -1: does not parse). */
static void
expect_ra(const char *value, int64_t now_ms, int64_t want)
{
	int64_t ms = -2;
	int r = provider_parse_retry_after(value, now_ms, &ms);

	if (want == -1)
		CHECK(r == -1, "Retry-After \"%s\" is refused", value);
	else
		CHECK(r == 0 && ms == want, "Retry-After \"%s\" is %lld ms",
		    value, (long long)want);
	if ((want == -1) != (r == -1) || (r == 0 && ms != want))
		printf("#   got %d, %lld\n", r, (long long)ms);
}

static void
test_retry_after(void)
{
	/* Sun, 06 Nov 1994 08:49:37 GMT */
	const int64_t t1994 = 784111777, t2025 = 1735689600;
	const int64_t now = wall_us() / 1000;
	char date[64];
	int64_t ms = -2;

	expect_ra("120", now, 120000);
	expect_ra("0", now, 0);
	expect_ra(" 5 ", now, 5000);
	expect_ra("1.5", now, 1500);
	expect_ra("0.0001", now, 1);
	expect_ra("99999999999999999999999", now, DELAY_MAX_MS);
	expect_ra("2147483649", now, DELAY_MAX_MS);
	expect_ra("", now, -1);
	expect_ra("soon", now, -1);
	expect_ra("-5", now, -1);
	expect_ra("+5", now, -1);
	expect_ra("5s", now, -1);
	expect_ra("1.", now, -1);
	expect_ra("0x10", now, -1);
	expect_ra("5 6", now, -1);

	/* A date 30 s ahead: 30 s less the part of the second gone. */
	imf_fixdate(now / 1000 + 30, date, sizeof(date));
	CHECK(provider_parse_retry_after(date, now, &ms) == 0 && ms > 29000 &&
	        ms <= 30000,
	    "Retry-After \"%s\" (now + 30 s) is about 30000 ms", date);
	imf_fixdate(now / 1000 - 3600, date, sizeof(date));
	expect_ra(date, now, 0);
	expect_ra("Sun, 06 Nov 1994 08:49:37 GMT", now, 0);

	/* The three forms of RFC 9110, 10 s before that date. */
	expect_ra("Sun, 06 Nov 1994 08:49:37 GMT", t1994 * 1000 - 10000, 10000);
	expect_ra(
	    "Sunday, 06-Nov-94 08:49:37 GMT", t1994 * 1000 - 10000, 10000);
	expect_ra("Sun Nov  6 08:49:37 1994", t1994 * 1000 - 10000, 10000);
	expect_ra("sun, 06 nov 1994 08:49:37 GMT", t1994 * 1000 - 250, 250);
	/*
	 * RFC 850's year: not more than 50 years ahead of now, here
	 * 2025-01-01: 75 is 2075, 76 is 1976.
	 */
	expect_ra("Tuesday, 01-Jan-75 00:00:00 GMT", t2025 * 1000,
	    (INT64_C(3313526400) - t2025) * 1000);
	expect_ra("Thursday, 01-Jan-76 00:00:00 GMT", t2025 * 1000, 0);
	expect_ra("Wednesday, 01-Jan-25 00:00:07 GMT", t2025 * 1000, 7000);
	/* Leap days. */
	expect_ra(
	    "Thu, 29 Feb 2024 00:00:00 GMT", INT64_C(1709164800) * 1000, 0);
	expect_ra(
	    "Thu, 29 Feb 2024 00:00:01 GMT", INT64_C(1709164800) * 1000, 1000);
	expect_ra(
	    "Sat, 01 Mar 2025 00:00:00 GMT", INT64_C(1740787200) * 1000, 0);
	expect_ra("Fri, 29 Feb 2025 00:00:00 GMT", 0, -1);
	expect_ra("Thu, 29 Feb 1900 00:00:00 GMT", 0, -1);
	expect_ra(
	    "Tue, 29 Feb 2000 00:00:00 GMT", INT64_C(951782400) * 1000, 0);
	expect_ra("Sun, 31 Nov 1994 08:49:37 GMT", 0, -1);
	expect_ra("Sun, 06 Nov 1994 24:00:00 GMT", 0, -1);
	expect_ra("Sun, 06 Nov 1994 08:60:00 GMT", 0, -1);
	expect_ra("Sun, 06 Nov 1994 08:49:37 PST", 0, -1);
	expect_ra("Sun, 06 Nov 1994 08:49:37", 0, -1);
	expect_ra("Sun, 6 Nov 1994 08:49:37 GMT", 0, -1);
	expect_ra("Sun, 06 Foo 1994 08:49:37 GMT", 0, -1);
	expect_ra("Sun, 06 Nov 1994 08:49:37 GMT junk", 0, -1);
	expect_ra("Sun Nov  6 08:49:37", 0, -1);
	expect_ra("Someday, 06 Nov 1994 08:49:37 GMT", 0, -1);

	/* Both headers: retry-after-ms wins when it is valid. */
	CHECK(provider_retry_after("10", "1500", now) == 1500,
	    "retry-after-ms 1500 wins over Retry-After 10");
	CHECK(provider_retry_after("10", NULL, now) == 10000,
	    "Retry-After 10 alone is 10000 ms");
	CHECK(provider_retry_after("10", "", now) == 10000,
	    "Retry-After 10 with an empty retry-after-ms is 10000 ms");
	CHECK(provider_retry_after("10", "soon", now) == 10000,
	    "Retry-After 10 with a bad retry-after-ms is 10000 ms");
	CHECK(provider_retry_after(NULL, "1500.2", now) == 1501,
	    "retry-after-ms 1500.2 is 1501 ms");
	CHECK(provider_retry_after(NULL, "0", now) == 0,
	    "retry-after-ms 0 is 0 ms");
	CHECK(provider_retry_after(NULL, NULL, now) == -1 &&
	        provider_retry_after("", "", now) == -1 &&
	        provider_retry_after("garbage", "junk", now) == -1,
	    "no usable header: -1");
}

/* Feed the header lines of lines (NULL-terminated) to a new call. */
static struct call *
headers(const char *const *lines)
{
	struct call *c = new_call(&openai);

	for (; *lines != NULL; lines++)
		provider_call_header(c, *lines, strlen(*lines));
	return c;
}

static void
test_headers(void)
{
	static const char *const h1[] = { "HTTP/1.1 429 Too Many Requests\r\n",
		"Content-Type: application/json\r\n", "retry-after: 7\r\n",
		"X-Retry-After: 99\r\n", "Retry-After-Extra: 98\r\n",
		"RETRY-AFTER-MS:  2500 \r\n", "\r\n", NULL };
	static const char *const h2[] = { "HTTP/1.1 100 Continue\r\n",
		"Retry-After: 3\r\n", "retry-after-ms: 3000\r\n", "\r\n",
		"HTTP/1.1 503 Service Unavailable\r\n", "Server: x\r\n", "\r\n",
		NULL };
	static const char *const h3[] = { "HTTP/2 503\r\n",
		"retry-after:\t120\r\n", "\r\n", NULL };
	static const char *const h4[] = { "HTTP/1.1 503 Service Unavailable\n",
		"Retry-After: Sun, 06 Nov 1994 08:49:37 GMT\n", "\n", NULL };
	static const char *const h5[] = { "HTTP/1.1 503 x\r\n",
		"Retry-After: 5\r\n",
		"Retry-After: "
		"00000000000000000000000000000000000000000000000000000000000000"
		"0"
		"00000000000000000000000000000000000000000000000000000000000001"
		"\r\n",
		"\r\n", NULL };
	struct call *c;

	c = headers(h1);
	CHECK(strcmp(c->hdr_retry_after, "7") == 0 &&
	        strcmp(c->hdr_retry_after_ms, "2500") == 0,
	    "Retry-After and retry-after-ms captured, names in any case");
	CHECK(provider_retry_after(
	          c->hdr_retry_after, c->hdr_retry_after_ms, 0) == 2500,
	    "captured: retry-after-ms wins");
	provider_call_header(c, "HTTP/1.1 200 OK\r\n", 17);
	CHECK(c->hdr_retry_after[0] == '\0' && c->hdr_retry_after_ms[0] == '\0',
	    "a new status line forgets both");
	provider_call_free(c);

	c = headers(h2);
	CHECK(c->hdr_retry_after[0] == '\0' && c->hdr_retry_after_ms[0] == '\0',
	    "what 100 Continue said is not the final reply's");
	provider_call_free(c);

	c = headers(h3);
	CHECK(strcmp(c->hdr_retry_after, "120") == 0,
	    "HTTP/2 lower-case name, tab before the value");
	provider_call_free(c);

	c = headers(h4);
	CHECK(strcmp(c->hdr_retry_after, "Sun, 06 Nov 1994 08:49:37 GMT") == 0,
	    "a date value with bare LF line ends");
	provider_call_free(c);

	c = headers(h5);
	CHECK(c->hdr_retry_after[0] == '\0',
	    "a value too long to keep is dropped, not cut");
	provider_call_free(c);
}

int
main(int argc, char **argv)
{
	const char *src = getenv("LLMQ_SRCDIR");

	if (src == NULL || src[0] == '\0') {
		printf(
		    "Bail out! LLMQ_SRCDIR is not set: run through tests/run "
		    "or set it to the source tree\n");
		return 1;
	}
	fixdir = xasprintf("%s/tests/fixtures", src);
	test_replies();
	test_http_errors();
	test_transfer();
	test_escaping();
	test_retry_after();
	test_headers();
	free(fixdir);
	return tap_done();
}
