/*
 * provider.c: request bodies, curl set-up and reply classification for
 * the Ollama (/api/chat) and OpenAI (/v1/chat/completions) dialects.
 *
 * The provider URL comes from the configuration only, never from a
 * request row.  libcurl is restricted to http and https, follows no
 * redirect, and is bounded in connect time, total time and response
 * size; a response past the cap aborts the transfer.  Every reply is
 * parsed with a depth limit and UTF-8 validation.  Messages kept in
 * error_message are escaped and truncated, so that a provider cannot
 * put control bytes or megabytes into a row or a log line.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "log.h"
#include "provider.h"
#include "util.h"

#define JSON_DEPTH 64  /* nesting accepted in a provider reply */
#define ERRMSG_MAX 500 /* bytes of provider text kept in a row */

static size_t
on_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct call *c = arg;
	size_t n = size * nmemb;

	if (c->first_byte_us == 0)
		c->first_byte_us = wall_us();
	if (c->resplen + n > c->maxresp) {
		c->overflow = 1;
		return 0; /* aborts with CURLE_WRITE_ERROR */
	}
	if (c->resplen + n + 1 > c->respcap) {
		while (c->resplen + n + 1 > c->respcap)
			c->respcap = c->respcap ? c->respcap * 2 : 4096;
		if (c->respcap > c->maxresp + 1)
			c->respcap = c->maxresp + 1;
		c->resp = xrealloc(c->resp, c->respcap);
	}
	memcpy(c->resp + c->resplen, ptr, n);
	c->resplen += n;
	c->resp[c->resplen] = '\0';
	return n;
}

static json_object *
parse_json(const char *s, size_t len, char *err, size_t errlen)
{
	struct json_tokener *tok;
	json_object *o;
	enum json_tokener_error jerr;

	if ((tok = json_tokener_new_ex(JSON_DEPTH)) == NULL)
		fatalx("out of memory (json tokener)");
#ifdef JSON_TOKENER_VALIDATE_UTF8
	json_tokener_set_flags(
	    tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
#endif
	o = json_tokener_parse_ex(tok, s, (int)len);
	jerr = json_tokener_get_error(tok);
	if (o == NULL || jerr != json_tokener_success) {
		if (jerr == json_tokener_continue)
			snprintf(err, errlen,
			    "unexpected end of JSON at byte %zu", len);
		else
			snprintf(err, errlen, "%s at byte %zu",
			    json_tokener_error_desc(jerr),
			    json_tokener_get_parse_end(tok));
		json_object_put(o);
		o = NULL;
	} else if (json_tokener_get_parse_end(tok) < len) {
		/* Trailing bytes: allow only white space. */
		size_t i;

		for (i = json_tokener_get_parse_end(tok); i < len; i++)
			if (strchr(" \t\r\n", s[i]) == NULL) {
				snprintf(err, errlen,
				    "trailing data at byte %zu", i);
				json_object_put(o);
				o = NULL;
				break;
			}
	}
	json_tokener_free(tok);
	return o;
}

/*
 * The body for one call.  Caller parameters ("params" in the options:
 * temperature, max_tokens, ...) go where each dialect expects them:
 * top level for OpenAI, under "options" for Ollama.  The messages are
 * spliced in as the database printed them (valid JSON, checked on
 * insert) rather than parsed and printed again: they are the bulk of
 * the body, and this is on every request's path.
 */
static char *
build_body(enum prov_kind kind, const char *model, const char *messages,
    json_object *opts)
{
	json_object *body, *params = NULL, *dst;
	const char *rest;
	char *out;

	body = json_object_new_object();
	json_object_object_add(body, "model", json_object_new_string(model));
	json_object_object_add(body, "stream", json_object_new_boolean(0));
	if (opts != NULL &&
	    json_object_object_get_ex(opts, "params", &params) &&
	    json_object_is_type(params, json_type_object)) {
		if (kind == PROV_OLLAMA) {
			dst = json_object_new_object();
			json_object_object_add(body, "options", dst);
		} else
			dst = body;
		json_object_object_foreach(params, key, val)
		{
			const char *k = key;

			if (strcmp(k, "model") == 0 ||
			    strcmp(k, "messages") == 0 ||
			    strcmp(k, "stream") == 0)
				continue;
			if (kind == PROV_OLLAMA && strcmp(k, "max_tokens") == 0)
				k = "num_predict";
			json_object_object_add(dst, k, json_object_get(val));
		}
	}
	/* "{...}": splice the messages in after the opening brace. */
	rest = json_object_to_json_string_ext(
	    body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	out = xasprintf("{\"messages\":%s,%s", messages, rest + 1);
	json_object_put(body);
	return out;
}

struct call *
provider_call_new(const struct cfg *cfg, int model, int64_t id, int attempt,
    const char *messages, const char *options, int64_t timeout_ms, char *err,
    size_t errlen)
{
	const struct cfg_model *m = &cfg->models[model];
	const struct cfg_provider *p = &cfg->providers[m->provider];
	json_object *opts = NULL;
	struct call *c;
	char *url, *auth;

	if (messages == NULL || messages[0] != '[') {
		snprintf(err, errlen, "messages are not a JSON array");
		return NULL;
	}
	/* Most requests carry no parameters: parse only when they do. */
	if (options != NULL && strstr(options, "\"params\"") != NULL &&
	    (opts = parse_json(options, strlen(options), err, errlen)) == NULL)
		return NULL;

	c = xcalloc(1, sizeof(*c));
	c->group = -1;
	c->id = id;
	c->attempt = attempt;
	c->model = model;
	c->model_name = m->name;
	c->prov = p;
	c->maxresp = p->max_response;
	c->prompt_tokens = c->completion_tokens = -1;
	c->body = build_body(p->kind, m->name, messages, opts);
	json_object_put(opts);

	if ((c->easy = curl_easy_init()) == NULL)
		fatalx("curl_easy_init() failed");
	url = xasprintf("%s%s", p->url,
	    p->kind == PROV_OLLAMA ? "/api/chat" : "/chat/completions");
	curl_easy_setopt(c->easy, CURLOPT_URL, url);
	free(url);
	c->headers = curl_slist_append(NULL, "Content-Type: application/json");
	/* No "Expect: 100-continue" round trip for large bodies. */
	c->headers = curl_slist_append(c->headers, "Expect:");
	if (p->api_key != NULL) {
		auth = xasprintf("Authorization: Bearer %s", p->api_key);
		c->headers = curl_slist_append(c->headers, auth);
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	if (c->headers == NULL)
		fatalx("curl_slist_append() failed");
	curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->body);
	curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(c->body));
	curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
	curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->easy, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS,
	    (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(c->easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c->easy, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)(p->connect_timeout_ms < timeout_ms ? p->connect_timeout_ms :
	                                                timeout_ms));
	curl_easy_setopt(
	    c->easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->maxresp);
	curl_easy_setopt(c->easy, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(
	    c->easy, CURLOPT_USERAGENT, PACKAGE_NAME "/" PACKAGE_VERSION);
	c->started_us = wall_us();
	return c;
}

void
provider_call_fail(struct call *c, const char *kind, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	c->ok = 0;
	c->error_kind = kind;
	free(c->error_message);
	c->error_message = str_escape(buf, strlen(buf), ERRMSG_MAX);
	if (c->finished_us == 0)
		c->finished_us = wall_us();
}

/*
 * The text of an error object in any dialect met in practice: Ollama's
 * {"error":"..."}, OpenAI's {"error":{"message":...}}, vLLM's flat
 * {"object":"error","message":...}.  NULL when there is none.
 */
static const char *
error_text(json_object *o)
{
	json_object *e, *m;

	if (!json_object_is_type(o, json_type_object))
		return NULL;
	/* "error": null, as some servers send beside a good reply, is none. */
	if (json_object_object_get_ex(o, "error", &e) && e != NULL) {
		if (json_object_is_type(e, json_type_string))
			return json_object_get_string(e);
		if (json_object_object_get_ex(e, "message", &m) &&
		    json_object_is_type(m, json_type_string))
			return json_object_get_string(m);
		return json_object_to_json_string(e);
	}
	if (json_object_object_get_ex(o, "object", &e) &&
	    json_object_is_type(e, json_type_string) &&
	    strcmp(json_object_get_string(e), "error") == 0 &&
	    json_object_object_get_ex(o, "message", &m))
		return json_object_get_string(m);
	return NULL;
}

static int
get_int(json_object *o, const char *key)
{
	json_object *v;

	if (o != NULL && json_object_object_get_ex(o, key, &v) &&
	    json_object_is_type(v, json_type_int))
		return json_object_get_int(v);
	return -1;
}

/* Copy the reply text, with NUL bytes (which no text column holds) replaced. */
static char *
copy_text(json_object *s)
{
	const char *p = json_object_get_string(s);
	size_t len = json_object_get_string_len(s), i, n = 0;
	char *out, *q;

	for (i = 0; i < len; i++)
		n += p[i] == '\0';
	q = out = xmalloc(len + n * 2 + 1);
	for (i = 0; i < len; i++) {
		if (p[i] == '\0') {
			/* U+FFFD REPLACEMENT CHARACTER */
			*q++ = (char)0xef, *q++ = (char)0xbf, *q++ = (char)0xbd;
		} else
			*q++ = p[i];
	}
	*q = '\0';
	return out;
}

static void
parse_reply(struct call *c, json_object *o)
{
	json_object *msg = NULL, *content = NULL, *choices, *first, *usage;
	const char *etext;

	if ((etext = error_text(o)) != NULL) {
		provider_call_fail(
		    c, "http_error", "provider error: %s", etext);
		return;
	}
	if (c->prov->kind == PROV_OLLAMA) {
		json_object_object_get_ex(o, "message", &msg);
		c->prompt_tokens = get_int(o, "prompt_eval_count");
		c->completion_tokens = get_int(o, "eval_count");
	} else {
		if (json_object_object_get_ex(o, "choices", &choices) &&
		    json_object_is_type(choices, json_type_array) &&
		    json_object_array_length(choices) > 0 &&
		    (first = json_object_array_get_idx(choices, 0)) != NULL)
			json_object_object_get_ex(first, "message", &msg);
		if (json_object_object_get_ex(o, "usage", &usage)) {
			c->prompt_tokens = get_int(usage, "prompt_tokens");
			c->completion_tokens =
			    get_int(usage, "completion_tokens");
		}
	}
	if (msg == NULL ||
	    !json_object_object_get_ex(msg, "content", &content) ||
	    !json_object_is_type(content, json_type_string)) {
		provider_call_fail(
		    c, "http_error", "provider reply has no message content");
		return;
	}
	c->ok = 1;
	c->text = copy_text(content);
}

void
provider_call_done(struct call *c, CURLcode code)
{
	json_object *o = NULL;
	char perr[256], *preview;
	long st = 0;

	c->finished_us = wall_us();
	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &st);
	c->http_status = st;

	if (code != CURLE_OK) {
		switch (code) {
		case CURLE_OPERATION_TIMEDOUT:
			provider_call_fail(c, "timeout", "%s",
			    c->errbuf[0] ? c->errbuf : "timed out");
			break;
		case CURLE_WRITE_ERROR:
		case CURLE_FILESIZE_EXCEEDED:
			if (c->overflow || code == CURLE_FILESIZE_EXCEEDED) {
				provider_call_fail(c, "http_error",
				    "response larger than %zu bytes",
				    c->maxresp);
				break;
			}
			/* FALLTHROUGH */
		default:
			provider_call_fail(c, "provider_down", "%s: %s",
			    curl_easy_strerror(code), c->errbuf);
			break;
		}
		return;
	}

	if (c->resplen > 0)
		o = parse_json(c->resp, c->resplen, perr, sizeof(perr));

	if (st < 200 || st > 299) {
		const char *kind, *etext = o != NULL ? error_text(o) : NULL;

		if (st == 429)
			kind = "rate_limited";
		else if (st == 408 || st == 504)
			kind = "timeout";
		else if (st == 400 || st == 401 || st == 403 || st == 404 ||
		    st == 413 || st == 422)
			kind = "bad_request";
		else if (st == 502 || st == 503)
			kind = "provider_down";
		else
			kind = "http_error";
		preview = str_escape(
		    etext != NULL ? etext : (c->resp != NULL ? c->resp : ""),
		    etext != NULL ? strlen(etext) : c->resplen, 200);
		provider_call_fail(c, kind, "HTTP %ld: %s", st, preview);
		free(preview);
		json_object_put(o);
		return;
	}
	if (o == NULL) {
		preview =
		    str_escape(c->resp != NULL ? c->resp : "", c->resplen, 80);
		provider_call_fail(c, "http_error",
		    "invalid JSON from provider: %s: \"%s\"",
		    c->resplen == 0 ? "empty body" : perr, preview);
		free(preview);
		return;
	}
	parse_reply(c, o);
	json_object_put(o);
}

struct call *
provider_call_failed(
    int64_t id, int attempt, const char *kind, const char *message)
{
	struct call *c;

	c = xcalloc(1, sizeof(*c));
	c->group = -1;
	c->id = id;
	c->attempt = attempt;
	c->model = -1;
	c->prompt_tokens = c->completion_tokens = -1;
	c->started_us = wall_us();
	provider_call_fail(c, kind, "%s", message);
	return c;
}

void
provider_call_free(struct call *c)
{
	if (c == NULL)
		return;
	if (c->easy != NULL)
		curl_easy_cleanup(c->easy);
	curl_slist_free_all(c->headers);
	free(c->body);
	free(c->resp);
	free(c->error_message);
	free(c->text);
	free(c);
}
