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
 * escaping and truncation of a provider's message; streamed calls, each
 * stream fixture fed to a call as on_write() feeds it (whole and in
 * pieces) and classified by provider_classify_stream(): the text, the
 * counts or their estimate, the error records of each server, streams
 * cut short by the server or by the transfer (timed out, reset, past
 * max_response), and replies that are no stream (an error status, a
 * server that ignored "stream"); Retry-After values
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

#include "fixture.h"
#include "tap.h"

/* What the server's delay saturates at: 2^31 s. */
#define DELAY_MAX_MS (INT64_C(2147483648) * 1000)


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

/*
 * Streamed calls.  PROMPT_BYTES of messages, as provider_call_new() counts
 * them, give an estimate of PROMPT_EST tokens when a stream says nothing:
 * a quarter of the bytes, rounded up.
 */
#define PROMPT_BYTES 1001
#define PROMPT_EST 251

/* A streamed call of p, as provider_call_new() makes one. */
static struct call *
new_stream_call(const struct cfg_provider *p)
{
	struct call *c = new_call(p);

	c->prompt_bytes = PROMPT_BYTES;
	c->stream = 1;
	stream_init(
	    &c->st, p->kind == PROV_OLLAMA ? STREAM_NDJSON : STREAM_SSE);
	return c;
}

/*
 * len bytes of body delivered to a streamed call of p piece bytes at a
 * time (0: whole) and the transfer's end, as on_write() and
 * provider_call_done() do: the body grows in c->resp (by doubling, so
 * that it moves), the stream is fed only a 2xx and ended only after
 * one, and the call is classified with curl's code and the status.
 * errbuf: curl's message, or NULL.
 */
static struct call *
stream_run(const struct cfg_provider *p, const char *body, size_t len,
    size_t piece, CURLcode code, long status, const char *errbuf)
{
	struct call *c = new_stream_call(p);
	int two = status >= 200 && status <= 299;
	size_t off, n;

	if (errbuf != NULL)
		snprintf(c->errbuf, sizeof(c->errbuf), "%s", errbuf);
	for (off = 0; off < len; off += n) {
		n = piece == 0 || len - off < piece ? len - off : piece;
		if (c->resplen + n + 1 > c->respcap) {
			while (c->resplen + n + 1 > c->respcap)
				c->respcap = c->respcap ? c->respcap * 2 : 64;
			c->resp = xrealloc(c->resp, c->respcap);
		}
		memcpy(c->resp + c->resplen, body + off, n);
		c->resplen += n;
		c->resp[c->resplen] = '\0';
		if (two)
			stream_feed(&c->st, c->resp, c->resplen);
	}
	if (two)
		stream_end(&c->st, c->resp, c->resplen);
	provider_classify_stream(c, code, status, c->resp, c->resplen);
	return c;
}

/* The good outcome: text, counts, whether they are estimated. */
static void
expect_ok(struct call *c, const char *what, long status, const char *text,
    int prompt, int completion, int estimated)
{
	int good = c->ok && c->error_kind == NULL && c->error_message == NULL &&
	    c->retry == 0 && c->http_status == status && c->text != NULL &&
	    strcmp(c->text, text) == 0;
	/* The text escaped, so that a newline stays in its TAP line. */
	char *t = str_escape(text, strlen(text), 200), *g;

	CHECK(good, "%s: ok, \"%s\"", what, t);
	if (!good) {
		g = c->text != NULL ?
		    str_escape(c->text, strlen(c->text), 200) :
		    xstrdup("(null)");
		printf("#   got ok %d, kind %s, message \"%s\", text \"%s\"\n",
		    c->ok, c->error_kind ? c->error_kind : "(none)",
		    c->error_message ? c->error_message : "(none)", g);
		free(g);
	}
	free(t);
	/* The stream's text was taken, not copied. */
	CHECK(c->st.text == NULL, "%s: the stream's text handed over", what);
	good = c->prompt_tokens == prompt &&
	    c->completion_tokens == completion &&
	    c->tokens_estimated == estimated;
	CHECK(good, "%s: tokens %d and %d, %s", what, prompt, completion,
	    estimated ? "estimated" : "counted");
	if (!good)
		printf("#   got tokens %d and %d, estimated %d\n",
		    c->prompt_tokens, c->completion_tokens,
		    c->tokens_estimated);
}

/* The failure kind, retried or not, its message beginning with prefix. */
static void
expect_stream_fail(struct call *c, const char *what, long status,
    const char *kind, int retry, const char *prefix)
{
	int good = !c->ok && c->error_kind != NULL &&
	    strcmp(c->error_kind, kind) == 0 && c->retry == retry &&
	    c->error_message != NULL &&
	    strncmp(c->error_message, prefix, strlen(prefix)) == 0 &&
	    c->text == NULL && c->http_status == status;

	CHECK(good, "%s: %s, %s, \"%s...\"", what, kind,
	    retry ? "retried" : "not retried", prefix);
	if (!good)
		printf("#   got ok %d, kind %s, retry %d, status %ld, message "
		       "\"%s\"\n",
		    c->ok, c->error_kind ? c->error_kind : "(none)", c->retry,
		    c->http_status,
		    c->error_message ? c->error_message : "(none)");
}

static int
same_str(const char *a, const char *b)
{
	return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

/* Two calls came out the same in every field of the result. */
static int
same_outcome(const struct call *a, const struct call *b)
{
	return a->ok == b->ok && a->retry == b->retry &&
	    same_str(a->error_kind, b->error_kind) &&
	    same_str(a->error_message, b->error_message) &&
	    same_str(a->text, b->text) && a->http_status == b->http_status &&
	    a->prompt_tokens == b->prompt_tokens &&
	    a->completion_tokens == b->completion_tokens &&
	    a->tokens_estimated == b->tokens_estimated;
}

struct stream_case {
	const char *name;
	const struct cfg_provider *prov;
	const char *text; /* NULL: a failure */
	int prompt, completion, estimated;
	const char *kind; /* the failure's */
	int retry;
	const char *prefix;
};

static const struct stream_case stream_cases[] = {
	{ "stream-ollama.ndjson", &ollama,
	    "The sky looks blue because air scatters short <wavelengths> "
	    "more \xe2\x80\x94 Rayleigh scattering.\n",
	    31, 15, 0, NULL, 0, NULL },
	{ "stream-openai-usage.sse", &openai,
	    "Hello! \xf0\x9f\x91\x8b How can I help you today?", 19, 10, 0,
	    NULL, 0, NULL },
	/* No usage: 52 bytes of text, 13 tokens. */
	{ "stream-openai.sse", &openai,
	    "Paris, the capital of France.\n\nIt sits on the Seine.",
	    PROMPT_EST, 13, 1, NULL, 0, NULL },
	{ "stream-llamacpp.sse", &openai, "Hi there! Nice day.", 14, 6, 0, NULL,
	    0, NULL },
	{ "stream-sse-keepalive.sse", &openai, "Keep-alive works.", 12, 3, 0,
	    NULL, 0, NULL },
	{ "stream-ollama-error.ndjson", &ollama, NULL, 0, 0, 0, "http_error", 1,
	    "provider error in stream: an error was encountered while running "
	    "the model: CUDA error: out of memory" },
	{ "stream-llamacpp-error.sse", &openai, NULL, 0, 0, 0, "bad_request", 0,
	    "provider error in stream (exceed_context_size_error): the "
	    "request exceeds the available context size, try increasing it" },
	/* Neither its code nor its type is a name llmq knows. */
	{ "stream-sse-event-error.sse", &openai, NULL, 0, 0, 0, "http_error", 1,
	    "provider error in stream (upstream_timeout): upstream request "
	    "timeout" },
	{ "stream-vllm-error.sse", &openai, NULL, 0, 0, 0, "bad_request", 0,
	    "provider error in stream (BadRequestError): This model's maximum "
	    "context length is 4096 tokens." },
	{ "stream-ollama-truncated.ndjson", &ollama, NULL, 0, 0, 0,
	    "http_error", 1,
	    "stream ended before the reply was complete, after 18 bytes of "
	    "text" },
	/* Cut in a record, but the transfer itself ended well. */
	{ "stream-openai-truncated.sse", &openai, NULL, 0, 0, 0, "http_error",
	    1, "invalid stream from provider: invalid JSON at byte " },
};

/* Each stream fixture, whole and in pieces of 1, 7 and 64 bytes. */
static void
test_stream_fixtures(void)
{
	static const size_t pieces[] = { 1, 7, 64 };
	const struct stream_case *x;
	struct call *c, *p;
	size_t len, i, k;
	char *body;

	for (i = 0; i < nitems(stream_cases); i++) {
		x = &stream_cases[i];
		body = fixture(x->name, &len);
		c = stream_run(x->prov, body, len, 0, CURLE_OK, 200, NULL);
		if (x->text != NULL)
			expect_ok(c, x->name, 200, x->text, x->prompt,
			    x->completion, x->estimated);
		else
			expect_stream_fail(
			    c, x->name, 200, x->kind, x->retry, x->prefix);
		for (k = 0; k < nitems(pieces); k++) {
			p = stream_run(
			    x->prov, body, len, pieces[k], CURLE_OK, 200, NULL);
			CHECK(same_outcome(c, p),
			    "%s, in pieces of %zu byte%s: the same as whole",
			    x->name, pieces[k], pieces[k] == 1 ? "" : "s");
			if (!same_outcome(c, p))
				printf(
				    "#   got ok %d, kind %s, message \"%s\", "
				    "text \"%s\", tokens %d and %d\n",
				    p->ok, p->error_kind ? p->error_kind : "",
				    p->error_message ? p->error_message : "",
				    p->text ? p->text : "(null)",
				    p->prompt_tokens, p->completion_tokens);
			provider_call_free(p);
		}
		provider_call_free(c);
		free(body);
	}
}

/* A stream given inline to a call of p, classified with code and 200. */
static struct call *
stream_str(const struct cfg_provider *p, const char *s)
{
	return stream_run(p, s, strlen(s), 0, CURLE_OK, 200, NULL);
}

static void
test_stream_counts(void)
{
	struct call *c;
	const char *body;

	/* Ollama without counts (or with 0): both estimated. */
	c = stream_str(&ollama,
	    "{\"message\":{\"content\":\"abcde\"},\"done\":false}\n"
	    "{\"message\":{\"content\":\"\"},\"done\":true,"
	    "\"prompt_eval_count\":0}\n");
	expect_ok(
	    c, "ollama stream without counts", 200, "abcde", PROMPT_EST, 2, 1);
	provider_call_free(c);
	/* A prompt-cache hit: the prompt's count alone is estimated. */
	c = stream_str(&ollama,
	    "{\"message\":{\"content\":\"abcd\"},\"done\":true,"
	    "\"eval_count\":1}");
	expect_ok(c, "ollama stream without prompt_eval_count", 200, "abcd",
	    PROMPT_EST, 1, 1);
	provider_call_free(c);
	/* OpenAI's zero is a count, and no estimate. */
	c = stream_str(&openai,
	    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},"
	    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":0,"
	    "\"completion_tokens\":0}}\n\ndata: [DONE]\n\n");
	expect_ok(c, "openai stream with zero usage", 200, "", 0, 0, 0);
	provider_call_free(c);
	/*
	 * Complete, but no content at all (tool calls only, say): as a
	 * whole reply without content.  An empty content is a reply.
	 */
	c = stream_str(&openai,
	    "data: {\"choices\":[{\"index\":0,\"delta\":{},"
	    "\"finish_reason\":\"length\"}]}\n\ndata: [DONE]\n\n");
	expect_stream_fail(c, "openai stream without content", 200,
	    "http_error", 0, "provider reply has no message content");
	provider_call_free(c);
	c = stream_str(&openai,
	    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":"
	    "\"\"},\"finish_reason\":\"length\"}]}\n\ndata: [DONE]\n\n");
	expect_ok(c, "openai stream with an empty content", 200, "",
	    PROMPT_EST, 0, 1);
	provider_call_free(c);
	/* Done, then cut inside the usage chunk: the reply is whole. */
	body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":"
	       "\"hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: {\"choi";
	c = stream_run(&openai, body, strlen(body), 0, CURLE_PARTIAL_FILE, 200,
	    NULL);
	expect_ok(c, "openai stream cut after its finish", 200, "hi",
	    PROMPT_EST, 1, 1);
	provider_call_free(c);
	/* Usage with the completion's count only. */
	c = stream_str(&openai,
	    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},"
	    "\"finish_reason\":\"stop\"}],\"usage\":{\"completion_tokens\":"
	    "7}}\n\ndata: [DONE]\n\n");
	expect_ok(c, "openai stream with a partial usage", 200, "hi",
	    PROMPT_EST, 7, 1);
	provider_call_free(c);
	/* [DONE] alone does not complete a stream without finish_reason. */
	c = stream_str(&openai,
	    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},"
	    "\"finish_reason\":null}]}\n\n");
	expect_stream_fail(c, "openai stream without finish or [DONE]", 200,
	    "http_error", 1,
	    "stream ended before the reply was complete, after 2 bytes of "
	    "text");
	provider_call_free(c);	/* A refusal in pieces and no content: refused, as a whole reply. */
	c = stream_str(&openai,
	    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":"
	    "\"assistant\",\"content\":null,\"refusal\":\"I can\"}}]}\n\n"
	    "data: {\"choices\":[{\"index\":0,\"delta\":{\"refusal\":"
	    "\"not help.\"},\"finish_reason\":\"stop\"}]}\n\n"
	    "data: [DONE]\n\n");
	expect_stream_fail(c, "openai stream with a refusal", 200,
	    "http_error", 0, "model refused: I cannot help.");
	provider_call_free(c);
}

/* Fixture name served with status to a streamed call of p. */
static struct call *
stream_fix(const struct cfg_provider *p, const char *name, CURLcode code,
    long status, const char *errbuf)
{
	struct call *c;
	size_t len;
	char *body;

	body = fixture(name, &len);
	c = stream_run(p, body, len, 5, code, status, errbuf);
	free(body);
	return c;
}

/* The bytes of body up to and with its nth newline (all when fewer). */
static size_t
lines_len(const char *body, size_t len, int n)
{
	const char *p = body, *nl;

	for (; n > 0 && (nl = memchr(p, '\n', len - (p - body))) != NULL; n--)
		p = nl + 1;
	return n > 0 ? len : (size_t)(p - body);
}

/*
 * Fixture name cut after its first nl lines and more bytes, delivered
 * with 200 to a streamed call of p, the transfer ending with code.
 */
static struct call *
stream_cut(const struct cfg_provider *p, const char *name, int nl, size_t more,
    CURLcode code, const char *errbuf)
{
	struct call *c;
	size_t len, n;
	char *body;

	body = fixture(name, &len);
	n = lines_len(body, len, nl) + more;
	c = stream_run(p, body, n < len ? n : len, 3, code, 200, errbuf);
	free(body);
	return c;
}

/*
 * Fixture name cut after its first nl lines and more bytes, as the
 * response past max_response leaves it: on_write() refused the next
 * piece, and the transfer failed with CURLE_WRITE_ERROR.
 */
static struct call *
stream_overflow(
    const struct cfg_provider *p, const char *name, int nl, size_t more)
{
	struct call *c = new_stream_call(p);
	size_t len, n;
	char *body;

	body = fixture(name, &len);
	n = lines_len(body, len, nl) + more;
	c->resp = xmalloc(n + 1);
	memcpy(c->resp, body, n);
	c->resp[c->resplen = n] = '\0';
	c->maxresp = n + 100;
	stream_feed(&c->st, c->resp, c->resplen);
	c->overflow = 1;
	stream_end(&c->st, c->resp, c->resplen);
	provider_classify_stream(
	    c, CURLE_WRITE_ERROR, 200, c->resp, c->resplen);
	free(body);
	return c;
}

static void
test_stream_transfer(void)
{
	const char *tmo = "Operation timed out after 30000 milliseconds with "
	                  "812 bytes received";
	const char *part = "transfer closed with outstanding read data "
	                   "remaining";
	struct call *c;

	/* Not a stream: an error status, its JSON body, never fed. */
	c = stream_fix(&openai, "openai-429-rate.json", CURLE_OK, 429, NULL);
	expect_stream_fail(c, "openai-429-rate.json as 429, streamed", 429,
	    "rate_limited", 1,
	    "HTTP 429 (rate_limit_exceeded): Rate limit reached for gpt-4o");
	CHECK(c->st.records == 0, "an error status is not fed to the stream");
	provider_call_free(c);
	c = stream_fix(&openai, "openai-429-quota.json", CURLE_OK, 429, NULL);
	expect_stream_fail(c, "openai-429-quota.json as 429, streamed", 429,
	    "http_error", 0,
	    "HTTP 429 (insufficient_quota): insufficient quota");
	provider_call_free(c);
	c = stream_fix(&ollama, "ollama-503-busy.json", CURLE_OK, 503, NULL);
	expect_stream_fail(c, "ollama-503-busy.json as 503, streamed", 503,
	    "provider_down", 1, "HTTP 503: server busy");
	provider_call_free(c);
	c = stream_fix(&openai, "proxy-502.html", CURLE_OK, 502, NULL);
	expect_stream_fail(c, "proxy-502.html as 502, streamed", 502,
	    "provider_down", 1, "HTTP 502: <html>");
	provider_call_free(c);

	/* A server that ignored "stream": one JSON body, with 200. */
	c = stream_fix(&openai, "openai-ok.json", CURLE_OK, 200, NULL);
	expect_ok(c, "openai-ok.json as 200, streamed", 200,
	    "Hello! How can I assist you today?", 19, 10, 0);
	provider_call_free(c);
	c = stream_fix(&ollama, "ollama-ok.json", CURLE_OK, 200, NULL);
	expect_ok(c, "ollama-ok.json as 200, streamed", 200,
	    "Hello! How can I help you today?", 26, 298, 0);
	provider_call_free(c);
	c = stream_str(&openai,
	    "{\"choices\":[{\"message\":{\"content\":\"one line\"}}],"
	    "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}");
	expect_ok(c, "one-line JSON reply, streamed", 200, "one line", 3, 2, 0);
	provider_call_free(c);
	c = stream_fix(&openai, "openai-429-rate.json", CURLE_OK, 200, NULL);
	expect_stream_fail(c, "openai-429-rate.json as 200, streamed", 200,
	    "rate_limited", 1, "provider error (rate_limit_exceeded): Rate");
	provider_call_free(c);
	c = stream_fix(&ollama, "ollama-500-runner.json", CURLE_OK, 200, NULL);
	expect_stream_fail(c, "ollama-500-runner.json as 200, streamed", 200,
	    "http_error", 1,
	    "provider error in stream: llama runner process has terminated");
	provider_call_free(c);
	c = stream_run(&openai, NULL, 0, 0, CURLE_OK, 200, NULL);
	expect_stream_fail(c, "an empty 200, streamed", 200, "http_error", 1,
	    "invalid JSON from provider: empty body");
	provider_call_free(c);
	c = stream_run(&ollama, NULL, 0, 0, CURLE_COULDNT_CONNECT, 0,
	    "Failed to connect to h");
	expect_stream_fail(c, "no connection, streamed", 0, "provider_down", 1,
	    "Couldn't connect to server: Failed to connect to h");
	provider_call_free(c);

	/* The transfer cut between two lines. */
	c = stream_fix(&ollama, "stream-ollama-truncated.ndjson",
	    CURLE_PARTIAL_FILE, 200, part);
	expect_stream_fail(c, "stream-ollama-truncated.ndjson, partial file",
	    200, "provider_down", 1, "Transferred a partial file: transfer");
	provider_call_free(c);
	c = stream_fix(&ollama, "stream-ollama-truncated.ndjson",
	    CURLE_OPERATION_TIMEDOUT, 200, tmo);
	expect_stream_fail(c, "stream-ollama-truncated.ndjson, timed out", 200,
	    "timeout", 1, tmo);
	provider_call_free(c);
	c = stream_cut(
	    &openai, "stream-openai.sse", 6, 0, CURLE_RECV_ERROR, NULL);
	expect_stream_fail(c, "stream-openai.sse cut between events, recv", 200,
	    "provider_down", 1, "Failure when receiving data");
	provider_call_free(c);
	c = stream_cut(
	    &openai, "stream-openai.sse", 6, 0, CURLE_OPERATION_TIMEDOUT, NULL);
	expect_stream_fail(c, "stream-openai.sse cut between events, timed out",
	    200, "timeout", 1, "timed out");
	provider_call_free(c);
	/* Cut in the first record: nothing parsed, the transfer's failure. */
	c = stream_cut(
	    &openai, "stream-openai.sse", 0, 40, CURLE_PARTIAL_FILE, part);
	expect_stream_fail(c, "stream-openai.sse cut in its first record", 200,
	    "provider_down", 1, "Transferred a partial file");
	provider_call_free(c);
	/* Cut in a later record: the transfer's failure still. */
	c = stream_fix(&openai, "stream-openai-truncated.sse",
	    CURLE_PARTIAL_FILE, 200, part);
	expect_stream_fail(c, "stream-openai-truncated.sse, partial file", 200,
	    "provider_down", 1, "Transferred a partial file: transfer");
	provider_call_free(c);
	c = stream_fix(&openai, "stream-openai-truncated.sse",
	    CURLE_OPERATION_TIMEDOUT, 200, tmo);
	expect_stream_fail(c, "stream-openai-truncated.sse, timed out", 200,
	    "timeout", 1, tmo);
	provider_call_free(c);
	c = stream_cut(&ollama, "stream-ollama.ndjson", 4, 40,
	    CURLE_OPERATION_TIMEDOUT, tmo);
	expect_stream_fail(c, "stream-ollama.ndjson cut in a line, timed out",
	    200, "timeout", 1, tmo);
	provider_call_free(c);

	/* Past max_response: not retried, wherever the cut fell. */
	c = stream_overflow(&ollama, "stream-ollama.ndjson", 2, 0);
	expect_stream_fail(c, "stream past max_response, cut between lines",
	    200, "http_error", 0, "response larger than");
	provider_call_free(c);
	c = stream_overflow(&ollama, "stream-ollama.ndjson", 2, 40);
	expect_stream_fail(c, "stream past max_response, cut in a line", 200,
	    "http_error", 0, "response larger than");
	provider_call_free(c);
	c = stream_overflow(&openai, "stream-openai.sse", 4, 40);
	expect_stream_fail(c, "sse stream past max_response, cut in an event",
	    200, "http_error", 0, "response larger than");
	provider_call_free(c);

	/* The stream said it was done: what the transfer did next is moot. */
	c = stream_fix(
	    &ollama, "stream-ollama.ndjson", CURLE_PARTIAL_FILE, 200, part);
	expect_ok(c, "stream-ollama.ndjson complete, then partial file", 200,
	    "The sky looks blue because air scatters short <wavelengths> "
	    "more \xe2\x80\x94 Rayleigh scattering.\n",
	    31, 15, 0);
	provider_call_free(c);
	/* An error record wins over a transfer that failed after it. */
	c = stream_fix(
	    &ollama, "stream-ollama-error.ndjson", CURLE_RECV_ERROR, 200, NULL);
	expect_stream_fail(c, "stream-ollama-error.ndjson, then recv error",
	    200, "http_error", 1, "provider error in stream: an error was");
	provider_call_free(c);
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
	fixture_init();
	test_replies();
	test_http_errors();
	test_transfer();
	test_escaping();
	test_stream_fixtures();
	test_stream_counts();
	test_stream_transfer();
	test_retry_after();
	test_headers();
	free(fixdir);
	return tap_done();
}
