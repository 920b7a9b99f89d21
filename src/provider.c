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
 *
 * The classification of a result (provider_classify) and the parsing of
 * Retry-After are pure functions of their inputs, so that the unit tests
 * run them on recorded bodies without a server; only provider_call_done
 * reads the curl handle and the clock.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <json.h>

#include "log.h"
#include "provider.h"
#include "util.h"

#define JSON_DEPTH 64  /* nesting accepted in a provider reply */
#define ERRMSG_MAX 500 /* bytes of provider text kept in a row */
/* The longest delay a server can ask for: 2^31 s, as RFC 9111 1.2.2. */
#define DELAY_MAX_MS (INT64_C(2147483648) * 1000)

/*
 * Whether the body being received is a stream to parse: only a 2xx is
 * (an error status comes with one JSON body, streamed request or not).
 */
static int
stream_ok(struct call *c)
{
	long st = 0;

	if (c->easy != NULL)
		curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &st);
	return st >= 200 && st <= 299;
}

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
	if (c->stream && stream_ok(c)) {
		stream_feed(&c->st, c->resp, c->resplen);
		if (c->first_token_us == 0 && c->st.textlen > 0)
			c->first_token_us = wall_us();
	}
	return n;
}

void
provider_call_header(struct call *c, const char *line, size_t len)
{
	const char *colon, *v, *end;
	char *dst;
	size_t namelen, cap;

	if (len >= 5 && strncasecmp(line, "HTTP/", 5) == 0) {
		c->hdr_retry_after[0] = c->hdr_retry_after_ms[0] = '\0';
		return;
	}
	if ((colon = memchr(line, ':', len)) == NULL)
		return;
	namelen = (size_t)(colon - line);
	if (namelen == 11 && strncasecmp(line, "Retry-After", 11) == 0) {
		dst = c->hdr_retry_after;
		cap = sizeof(c->hdr_retry_after);
	} else if (namelen == 14 &&
	    strncasecmp(line, "retry-after-ms", 14) == 0) {
		dst = c->hdr_retry_after_ms;
		cap = sizeof(c->hdr_retry_after_ms);
	} else
		return;
	v = colon + 1;
	end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && strchr(" \t\r\n", end[-1]) != NULL)
		end--;
	/* Too long for any valid value: as good as absent. */
	if ((size_t)(end - v) >= cap || memchr(v, '\0', end - v) != NULL)
		dst[0] = '\0';
	else {
		memcpy(dst, v, end - v);
		dst[end - v] = '\0';
	}
}

static size_t
on_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
	provider_call_header(arg, ptr, size * nmemb);
	return size * nmemb;
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
/*
 * A request's response_schema, as p takes it (providers.P.
 * response_format): Ollama's "format" is the schema itself, or "json";
 * OpenAI's "response_format" names the schema, or asks for any JSON
 * object.
 */
static void
add_format(json_object *body, const struct cfg_provider *p, json_object *schema)
{
	enum resp_format mode = p->response_format;
	json_object *rf, *js;

	if (p->response_format == RESP_NONE)
		return;
	/*
	 * The schema true asks for any JSON: JSON mode; false, which no
	 * value matches, is refused at insert.
	 */
	if (json_object_is_type(schema, json_type_boolean)) {
		if (!json_object_get_boolean(schema))
			return;
		mode = RESP_JSON;
	}
	if (p->kind == PROV_OLLAMA) {
		json_object_object_add(body, "format",
		    mode == RESP_SCHEMA ?
		        json_object_get(schema) :
		        json_object_new_string("json"));
		return;
	}
	rf = json_object_new_object();
	if (mode == RESP_JSON)
		json_object_object_add(
		    rf, "type", json_object_new_string("json_object"));
	else {
		json_object_object_add(
		    rf, "type", json_object_new_string("json_schema"));
		js = json_object_new_object();
		json_object_object_add(
		    js, "name", json_object_new_string("response"));
		json_object_object_add(js, "schema", json_object_get(schema));
		json_object_object_add(js, "strict",
		    json_object_new_boolean(p->strict_schema));
		json_object_object_add(rf, "json_schema", js);
	}
	json_object_object_add(body, "response_format", rf);
}

static char *
build_body(const struct cfg_provider *p, const char *model,
    const char *messages, json_object *opts, int stream)
{
	enum prov_kind kind = p->kind;
	json_object *body, *params = NULL, *dst, *v;
	const char *rest;
	char *out;

	body = json_object_new_object();
	json_object_object_add(body, "model", json_object_new_string(model));
	json_object_object_add(body, "stream", json_object_new_boolean(stream));
	/* Without it an OpenAI stream carries no token counts at all. */
	if (stream && kind == PROV_OPENAI) {
		dst = json_object_new_object();
		json_object_object_add(
		    dst, "include_usage", json_object_new_boolean(1));
		json_object_object_add(body, "stream_options", dst);
	}
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
			    strcmp(k, "stream") == 0 ||
			    strcmp(k, "stream_options") == 0)
				continue;
			if (kind == PROV_OLLAMA && strcmp(k, "max_tokens") == 0)
				k = "num_predict";
			json_object_object_add(dst, k, json_object_get(val));
		}
	}
	/* After the params: these options win over the same keys there. */
	if (opts != NULL &&
	    json_object_object_get_ex(opts, "response_schema", &v) &&
	    (json_object_is_type(v, json_type_object) ||
	        json_object_is_type(v, json_type_boolean)))
		add_format(body, p, v);
	/* OpenAI's function definitions; Ollama takes the same. */
	if (opts != NULL && json_object_object_get_ex(opts, "tools", &v) &&
	    json_object_is_type(v, json_type_array))
		json_object_object_add(body, "tools", json_object_get(v));
	/* "{...}": splice the messages in after the opening brace. */
	rest = json_object_to_json_string_ext(
	    body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	out = xasprintf("{\"" BODY_MESSAGES "\":%s,%s", messages, rest + 1);
	json_object_put(body);
	return out;
}

struct call *
provider_call_new(const struct cfg *cfg, int model, int64_t id, int attempt,
    const char *messages, const char *options, int stream, int64_t timeout_ms,
    char *err, size_t errlen)
{
	const struct cfg_model *m = &cfg->models[model];
	const struct cfg_provider *p = &cfg->providers[m->provider];
	json_object *opts = NULL, *v;
	struct call *c;
	char *url, *auth;

	if (messages == NULL || messages[0] != '[') {
		snprintf(err, errlen, "messages are not a JSON array");
		return NULL;
	}
	/* Most requests carry neither: parse only when they may. */
	if (options != NULL &&
	    (strstr(options, "\"params\"") != NULL ||
	        strstr(options, "\"stream\"") != NULL ||
	        strstr(options, "\"response_schema\"") != NULL ||
	        strstr(options, "\"tools\"") != NULL) &&
	    (opts = parse_json(options, strlen(options), err, errlen)) == NULL)
		return NULL;
	/* The insert trigger let only a boolean in. */
	if (opts != NULL && json_object_object_get_ex(opts, "stream", &v) &&
	    json_object_is_type(v, json_type_boolean))
		stream = json_object_get_boolean(v);

	c = xcalloc(1, sizeof(*c));
	c->group = -1;
	c->id = id;
	c->attempt = attempt;
	c->model = model;
	c->model_name = m->name;
	c->prov = p;
	c->maxresp = p->max_response;
	c->prompt_tokens = c->completion_tokens = -1;
	c->retry_after_ms = -1;
	c->prompt_bytes = strlen(messages);
	if ((c->stream = stream) != 0)
		stream_init(&c->st,
		    p->kind == PROV_OLLAMA ? STREAM_NDJSON : STREAM_SSE);
	c->body = build_body(p, m->name, messages, opts, stream);
	c->timeout_ms = timeout_ms;
	/* What the reply is checked against, and a re-ask needs. */
	if (opts != NULL &&
	    json_object_object_get_ex(opts, "response_schema", &v))
		c->schema = json_object_get(v);
	if (opts != NULL && json_object_object_get_ex(opts, "tools", &v) &&
	    json_object_is_type(v, json_type_array))
		c->tools = json_object_get(v);
	c->options = xstrdup(options != NULL ? options : "{}");
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
	curl_easy_setopt(c->easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c->easy, CURLOPT_HEADERDATA, c);
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

static void vfail(struct call *, const char *, int, const char *, va_list)
    __attribute__((format(printf, 4, 0)));
static void fail(struct call *, const char *, int, const char *, ...)
    __attribute__((format(printf, 4, 5)));

static void
vfail(struct call *c, const char *kind, int retry, const char *fmt, va_list ap)
{
	char buf[1024];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	c->ok = 0;
	c->retry = retry;
	c->error_kind = kind;
	free(c->error_message);
	/* The one escape of the provider's text: it goes in raw. */
	c->error_message = str_escape(buf, strlen(buf), ERRMSG_MAX);
	if (c->finished_us == 0)
		c->finished_us = wall_us();
}

static void
fail(struct call *c, const char *kind, int retry, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(c, kind, retry, fmt, ap);
	va_end(ap);
}

void
provider_call_fail(struct call *c, const char *kind, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(c, kind, 0, fmt, ap);
	va_end(ap);
}

/* Bytes of s to print into a message: at most ERRMSG_MAX. */
static int
msglen(const char *s, size_t len)
{
	return s == NULL ? 0 : (int)(len < ERRMSG_MAX ? len : ERRMSG_MAX);
}

/*
 * Retry-After.  The value is either delta seconds or an HTTP date; the
 * date forms are parsed by hand rather than with strptime(), whose day
 * and month names follow the locale.
 */

/*
 * A non-negative decimal number of units (seconds when scale is 1000,
 * milliseconds when 1), white space around it allowed, into ms: a
 * fraction is rounded up to the next ms, the whole saturates at
 * DELAY_MAX_MS.  Returns 0, or -1 when s is anything else.
 */
static int
parse_delay(const char *s, int64_t scale, int64_t *ms)
{
	int64_t n = 0, frac = 0, unit;
	int up = 0;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++)
		if ((n = n * 10 + (*s - '0')) > DELAY_MAX_MS)
			n = DELAY_MAX_MS;
	if (*s == '.') {
		if (*++s < '0' || *s > '9')
			return -1;
		for (unit = scale / 10; *s >= '0' && *s <= '9';
		     s++, unit /= 10) {
			if (unit > 0)
				frac += (*s - '0') * unit;
			else if (*s != '0')
				up = 1;
		}
	}
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s != '\0')
		return -1;
	if (n > DELAY_MAX_MS / scale)
		*ms = DELAY_MAX_MS;
	else if ((n = n * scale + frac + up) > DELAY_MAX_MS)
		*ms = DELAY_MAX_MS;
	else
		*ms = n;
	return 0;
}

static const char *const month_names[] = { "Jan", "Feb", "Mar", "Apr", "May",
	"Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
static const char *const day_names[] = { "Monday", "Tuesday", "Wednesday",
	"Thursday", "Friday", "Saturday", "Sunday" };

/* Exactly n decimal digits at *p, advancing past them; -1 if not. */
static int
digits(const char **p, int n)
{
	int v = 0;

	for (; n > 0; n--, (*p)++) {
		if (**p < '0' || **p > '9')
			return -1;
		v = v * 10 + (**p - '0');
	}
	return v;
}

/* Advance past the literal s at *p; 0 when it is not there. */
static int
lit(const char **p, const char *s)
{
	size_t n = strlen(s);

	if (strncmp(*p, s, n) != 0)
		return 0;
	*p += n;
	return 1;
}

/* A month's abbreviation at *p: its number 1..12, or 0. */
static int
month_name(const char **p)
{
	size_t i;

	for (i = 0; i < nitems(month_names); i++)
		if (strncasecmp(*p, month_names[i], 3) == 0) {
			*p += 3;
			return (int)i + 1;
		}
	return 0;
}

/*
 * A day's name at *p, in full (RFC 850) or abbreviated (IMF-fixdate,
 * asctime).  Whether it is the right day for the date is not checked:
 * the date alone counts.
 */
static int
day_name(const char **p)
{
	size_t i, n;

	for (i = 0; i < nitems(day_names); i++) {
		n = strlen(day_names[i]);
		if (strncasecmp(*p, day_names[i], n) != 0)
			n = 3;
		if (strncasecmp(*p, day_names[i], n) == 0) {
			*p += n;
			return 1;
		}
	}
	return 0;
}

/* "HH:MM:SS" at *p, as seconds since midnight; -1 if not. */
static int64_t
time_of_day(const char **p)
{
	int h, m, s;

	if ((h = digits(p, 2)) < 0 || !lit(p, ":") || (m = digits(p, 2)) < 0 ||
	    !lit(p, ":") || (s = digits(p, 2)) < 0)
		return -1;
	if (h > 23 || m > 59 || s > 60) /* 60: a leap second */
		return -1;
	return h * 3600 + m * 60 + s;
}

static int
month_days(int y, int m)
{
	static const int n[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30,
		31 };

	if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
		return 29;
	return n[m - 1];
}

/*
 * Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (H. Hinnant's days_from_civil), instead of timegm(), which is not in
 * POSIX.
 */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/*
 * RFC 850's two-digit year: the year with those last two digits that is
 * not more than 50 years in the future (RFC 9110 5.6.7).
 */
static int
full_year(int yy, int64_t now_ms)
{
	time_t t = (time_t)(now_ms / 1000);
	struct tm tm;
	int cur, y;

	cur = gmtime_r(&t, &tm) != NULL ? tm.tm_year + 1900 : 2000;
	y = cur - cur % 100 + yy;
	return y > cur + 50 ? y - 100 : y;
}

/*
 * An HTTP date (RFC 9110 5.6.7) as seconds since the epoch:
 *	Sun, 06 Nov 1994 08:49:37 GMT	IMF-fixdate
 *	Sunday, 06-Nov-94 08:49:37 GMT	RFC 850
 *	Sun Nov  6 08:49:37 1994	asctime
 * Names are matched without regard to case.  Returns 0, or -1 when s is
 * none of these.
 */
static int
parse_http_date(const char *s, int64_t now_ms, int64_t *secs)
{
	const char *p = s;
	int day = 0, mon = 0, year = 0;
	int64_t tod = -1;

	if (!day_name(&p))
		return -1;
	if (lit(&p, ", ")) {
		if ((day = digits(&p, 2)) < 0)
			return -1;
		if (lit(&p, " ")) {
			if ((mon = month_name(&p)) == 0 || !lit(&p, " ") ||
			    (year = digits(&p, 4)) < 0)
				return -1;
		} else if (lit(&p, "-")) {
			if ((mon = month_name(&p)) == 0 || !lit(&p, "-") ||
			    (year = digits(&p, 2)) < 0)
				return -1;
			year = full_year(year, now_ms);
		} else
			return -1;
		if (!lit(&p, " ") || (tod = time_of_day(&p)) < 0 ||
		    !lit(&p, " GMT"))
			return -1;
	} else if (lit(&p, " ")) {
		if ((mon = month_name(&p)) == 0 || !lit(&p, " "))
			return -1;
		day = lit(&p, " ") ? digits(&p, 1) : digits(&p, 2);
		if (day < 0 || !lit(&p, " ") || (tod = time_of_day(&p)) < 0 ||
		    !lit(&p, " ") || (year = digits(&p, 4)) < 0)
			return -1;
	} else
		return -1;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '\0' || day < 1 || day > month_days(year, mon))
		return -1;
	*secs = days_from_civil(year, mon, day) * 86400 + tod;
	return 0;
}

int
provider_parse_retry_after(const char *value, int64_t now_ms, int64_t *ms)
{
	int64_t t, d;

	while (*value == ' ' || *value == '\t')
		value++;
	if (*value >= '0' && *value <= '9')
		return parse_delay(value, 1000, ms);
	if (parse_http_date(value, now_ms, &t) == -1)
		return -1;
	/* Years 0..9999: no overflow in ms. */
	d = t * 1000 - now_ms;
	*ms = d < 0 ? 0 : d > DELAY_MAX_MS ? DELAY_MAX_MS : d;
	return 0;
}

int64_t
provider_retry_after(
    const char *retry_after, const char *retry_after_ms, int64_t now_ms)
{
	int64_t ms;

	if (retry_after_ms != NULL && parse_delay(retry_after_ms, 1, &ms) == 0)
		return ms;
	if (retry_after != NULL &&
	    provider_parse_retry_after(retry_after, now_ms, &ms) == 0)
		return ms;
	return -1;
}

/*
 * An error object in a reply, in any dialect met in practice: Ollama's
 * {"error":"..."}; OpenAI's, llama.cpp's and newer vLLM's
 * {"error":{"message","type","code"}}; older vLLM's flat
 * {"object":"error","message","type","code"}.  "error": null or "", as
 * some servers send beside a good reply, is none.
 */
struct prov_error {
	const char *message;
	const char *type; /* NULL when none */
	const char *code; /* a string code; NULL when none */
	int status;       /* an integer code of 400..599; -1 when none */
};

static const char *
get_str(json_object *o, const char *key)
{
	json_object *v;

	if (json_object_object_get_ex(o, key, &v) &&
	    json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return NULL;
}

/* 1 and pe filled when o is or holds an error object, else 0. */
static int
error_info(json_object *o, struct prov_error *pe)
{
	json_object *e = NULL, *v;
	const char *s;
	int64_t n;

	memset(pe, 0, sizeof(*pe));
	pe->status = -1;
	if (!json_object_is_type(o, json_type_object))
		return 0;
	if ((s = get_str(o, "error")) != NULL) {
		pe->message = s;
		return s[0] != '\0';
	}
	if (!json_object_object_get_ex(o, "error", &e) ||
	    !json_object_is_type(e, json_type_object)) {
		if ((s = get_str(o, "object")) == NULL ||
		    strcmp(s, "error") != 0)
			return 0;
		e = o;
	}
	if ((pe->message = get_str(e, "message")) == NULL)
		pe->message = json_object_to_json_string_ext(
		    e, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	pe->type = get_str(e, "type");
	if (json_object_object_get_ex(e, "code", &v)) {
		if (json_object_is_type(v, json_type_string))
			pe->code = json_object_get_string(v);
		else if (json_object_is_type(v, json_type_int) &&
		    (n = json_object_get_int64(v)) >= 400 && n <= 599)
			pe->status = (int)n;
	}
	return 1;
}

static int
is_quota(const struct prov_error *pe)
{
	return (pe->type != NULL &&
	           strcmp(pe->type, "insufficient_quota") == 0) ||
	    (pe->code != NULL && strcmp(pe->code, "insufficient_quota") == 0);
}

/*
 * Error classification: every outcome of a call maps to one error kind
 * of llmq(7) and to retry, yes when another attempt may succeed (the
 * failure is transient), no when the same request would fail the same
 * way.  Permanent failures the kind set has no word for say what they
 * are in the message ("authentication failed", "insufficient quota").
 *
 *   outcome                                        kind           retry
 *   transfer (curl):
 *     timed out                                    timeout        yes
 *     response larger than max_response            http_error     no
 *     bad URL, protocol, TLS certificate           provider_down  no
 *     any other: DNS, connect, reset, recv, ...    provider_down  yes
 *   HTTP status other than 2xx (the status decides, but for the quota):
 *     408, 504                                     timeout        yes
 *     429                                          rate_limited   yes
 *     429, error type or code insufficient_quota   http_error     no
 *     502, 503 (Ollama busy, llama.cpp loading)    provider_down  yes
 *     409                                          http_error     yes
 *     501, 505 (the server lacks a feature)        http_error     no
 *     other 5xx                                    http_error     yes
 *     401, 403 ("authentication failed")           bad_request    no
 *     other 4xx (400, 404, 413, 422, ...)          bad_request    no
 *     1xx, 3xx (no redirect is followed)           http_error     no
 *   2xx:
 *     empty, not JSON, truncated (a cut transfer)  http_error     yes
 *     JSON but not an object                       http_error     no
 *     no message content (or a refusal)            http_error     no
 *     message content                              (ok)           no
 *   2xx with an error object: its code, else its type, in error_names[]:
 *     insufficient_quota                           http_error     no
 *     invalid_api_key, authentication_error, ...   bad_request    no
 *     invalid_request_error, BadRequestError, ...  bad_request    no
 *     rate_limit_exceeded, RateLimitError, ...     rate_limited   yes
 *     unavailable_error (llama.cpp loading), ...   provider_down  yes
 *     server_error, InternalServerError            http_error     yes
 *   else an integer code 400..599 (llama.cpp, vLLM) as that HTTP status
 *   above; else (Ollama's bare {"error":"..."}):   http_error     yes
 */
struct verdict {
	const char *kind;
	int retry;
	const char *what; /* said before the provider's message, or NULL */
};

#define AUTH "authentication failed"
#define QUOTA "insufficient quota"

/*
 * Types and codes of an error object inside a 2xx reply: OpenAI's types
 * and codes, llama.cpp's types, vLLM's exception names.
 */
static const struct error_name {
	const char *name;
	struct verdict v;
} error_names[] = {
	{ "insufficient_quota", { "http_error", 0, QUOTA } },
	{ "invalid_api_key", { "bad_request", 0, AUTH } },
	{ "authentication_error", { "bad_request", 0, AUTH } },
	{ "AuthenticationError", { "bad_request", 0, AUTH } },
	{ "permission_error", { "bad_request", 0, AUTH } },
	{ "PermissionDeniedError", { "bad_request", 0, AUTH } },
	{ "invalid_request_error", { "bad_request", 0, NULL } },
	{ "BadRequestError", { "bad_request", 0, NULL } },
	{ "context_length_exceeded", { "bad_request", 0, NULL } },
	{ "exceed_context_size_error", { "bad_request", 0, NULL } },
	{ "not_found_error", { "bad_request", 0, NULL } },
	{ "NotFoundError", { "bad_request", 0, NULL } },
	{ "model_not_found", { "bad_request", 0, NULL } },
	{ "rate_limit_exceeded", { "rate_limited", 1, NULL } },
	{ "rate_limit_error", { "rate_limited", 1, NULL } },
	{ "RateLimitError", { "rate_limited", 1, NULL } },
	{ "unavailable_error", { "provider_down", 1, NULL } },
	{ "overloaded_error", { "provider_down", 1, NULL } },
	{ "server_error", { "http_error", 1, NULL } },
	{ "InternalServerError", { "http_error", 1, NULL } },
};

static struct verdict
status_verdict(long st)
{
	struct verdict v = { "http_error", 0, NULL };

	if (st == 408 || st == 504)
		v.kind = "timeout", v.retry = 1;
	else if (st == 429)
		v.kind = "rate_limited", v.retry = 1;
	else if (st == 502 || st == 503)
		v.kind = "provider_down", v.retry = 1;
	else if (st == 409)
		v.retry = 1;
	else if (st == 501 || st == 505)
		v.retry = 0;
	else if (st >= 500 && st <= 599)
		v.retry = 1;
	else if (st == 401 || st == 403)
		v.kind = "bad_request", v.what = AUTH;
	else if (st >= 400 && st <= 499)
		v.kind = "bad_request";
	return v;
}

static struct verdict
error_verdict(const struct prov_error *pe)
{
	const char *names[2] = { pe->code, pe->type };
	struct verdict v = { "http_error", 1, NULL };
	size_t i, k;

	for (k = 0; k < nitems(names); k++)
		for (i = 0; names[k] != NULL && i < nitems(error_names); i++)
			if (strcmp(names[k], error_names[i].name) == 0)
				return error_names[i].v;
	if (pe->status != -1)
		return status_verdict(pe->status);
	return v;
}

/*
 * Fail c as v says with the provider's error pe: "PREFIX (CODE): WHAT:
 * MESSAGE", CODE the error's code or type when it has one.
 */
static void
fail_error(struct call *c, struct verdict v, const char *prefix,
    const struct prov_error *pe)
{
	const char *label = pe->code != NULL ? pe->code : pe->type;

	fail(c, v.kind, v.retry, "%s%s%.*s%s: %s%s%.*s", prefix,
	    label != NULL ? " (" : "", label != NULL ? 64 : 0,
	    label != NULL ? label : "", label != NULL ? ")" : "",
	    v.what != NULL ? v.what : "", v.what != NULL ? ": " : "",
	    msglen(pe->message, strlen(pe->message)), pe->message);
}

static void
transfer_failed(struct call *c, CURLcode code)
{
	switch (code) {
	case CURLE_OPERATION_TIMEDOUT:
		fail(c, "timeout", 1, "%s",
		    c->errbuf[0] != '\0' ? c->errbuf : "timed out");
		return;
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
		if (c->overflow || code == CURLE_FILESIZE_EXCEEDED) {
			fail(c, "http_error", 0,
			    "response larger than %zu bytes", c->maxresp);
			return;
		}
		break;
	/* What another attempt cannot mend: the URL, or TLS set-up. */
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_NOT_BUILT_IN:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		fail(c, "provider_down", 0, "%s: %s", curl_easy_strerror(code),
		    c->errbuf);
		return;
	default:
		break;
	}
	fail(c, "provider_down", 1, "%s: %s", curl_easy_strerror(code),
	    c->errbuf);
}

/* A token count, -1 when absent or negative; 0 too when zero_unknown. */
static int
get_count(json_object *o, const char *key, int zero_unknown)
{
	json_object *v;
	int n;

	if (o == NULL || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		return -1;
	n = json_object_get_int(v);
	return n < 0 || (n == 0 && zero_unknown) ? -1 : n;
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
	json_object *msg = NULL, *content = NULL, *choices, *first, *usage, *v;
	struct prov_error pe;
	const char *refusal;

	if (!json_object_is_type(o, json_type_object)) {
		fail(c, "http_error", 0, "provider reply is not a JSON object");
		return;
	}
	if (error_info(o, &pe)) {
		fail_error(c, error_verdict(&pe), "provider error", &pe);
		return;
	}
	if (c->prov->kind == PROV_OLLAMA) {
		json_object_object_get_ex(o, "message", &msg);
		/*
		 * Ollama leaves a count of zero out (prompt_eval_count when
		 * the whole prompt came from its cache), so neither its
		 * absence nor a 0 is a count we can trust: both are unknown.
		 */
		c->prompt_tokens = get_count(o, "prompt_eval_count", 1);
		c->completion_tokens = get_count(o, "eval_count", 1);
	} else {
		if (json_object_object_get_ex(o, "choices", &choices) &&
		    json_object_is_type(choices, json_type_array) &&
		    json_object_array_length(choices) > 0 &&
		    (first = json_object_array_get_idx(choices, 0)) != NULL)
			json_object_object_get_ex(first, "message", &msg);
		if (json_object_object_get_ex(o, "usage", &usage)) {
			c->prompt_tokens = get_count(usage, "prompt_tokens", 0);
			c->completion_tokens =
			    get_count(usage, "completion_tokens", 0);
		}
	}
	if (msg != NULL && json_object_object_get_ex(msg, "tool_calls", &v))
		stream_tool_calls(&c->tool_calls, v);
	/* A reply of tool calls may have no content: "" then. */
	if (c->tool_calls != NULL &&
	    (!json_object_object_get_ex(msg, "content", &content) ||
	        !json_object_is_type(content, json_type_string))) {
		c->ok = 1;
		c->retry = 0;
		c->text = xstrdup("");
		return;
	}
	if (msg == NULL ||
	    !json_object_object_get_ex(msg, "content", &content) ||
	    !json_object_is_type(content, json_type_string)) {
		/* OpenAI: content null and a refusal instead. */
		if (msg != NULL && (refusal = get_str(msg, "refusal")) != NULL)
			fail(c, "http_error", 0, "model refused: %.*s",
			    msglen(refusal, strlen(refusal)), refusal);
		else
			fail(c, "http_error", 0,
			    "provider reply has no message content");
		return;
	}
	c->ok = 1;
	c->retry = 0;
	c->text = copy_text(content);
}

void
provider_classify(
    struct call *c, CURLcode code, long st, const char *body, size_t len)
{
	json_object *o = NULL;
	struct prov_error pe;
	struct verdict v;
	char perr[256], prefix[32];

	c->http_status = st;
	if (code != CURLE_OK) {
		transfer_failed(c, code);
		return;
	}
	if (body == NULL)
		body = "", len = 0;
	if (len > 0)
		o = parse_json(body, len, perr, sizeof(perr));

	if (st < 200 || st > 299) {
		v = status_verdict(st);
		snprintf(prefix, sizeof(prefix), "HTTP %ld", st);
		if (o != NULL && error_info(o, &pe)) {
			if (st == 429 && is_quota(&pe))
				v = (struct verdict){ "http_error", 0, QUOTA };
			fail_error(c, v, prefix, &pe);
		} else if (len == 0)
			fail(c, v.kind, v.retry, "%s: %s%sempty body", prefix,
			    v.what != NULL ? v.what : "",
			    v.what != NULL ? ": " : "");
		else
			fail(c, v.kind, v.retry, "%s: %s%s%.*s", prefix,
			    v.what != NULL ? v.what : "",
			    v.what != NULL ? ": " : "", msglen(body, len),
			    body);
		json_object_put(o);
		return;
	}
	if (o == NULL) {
		fail(c, "http_error", 1,
		    "invalid JSON from provider: %s: \"%.*s\"",
		    len == 0 ? "empty body" : perr, len < 80 ? (int)len : 80,
		    body);
		return;
	}
	parse_reply(c, o);
	json_object_put(o);
}

void
provider_classify_stream(
    struct call *c, CURLcode code, long st, const char *body, size_t len)
{
	struct stream *s = &c->st;
	struct prov_error pe;

	if (st < 200 || st > 299 || s->records == 0) {
		provider_classify(c, code, st, body, len);
		return;
	}
	c->http_status = st;
	if (s->error != NULL) {
		/* Ollama and llama.cpp report a failure mid-way in the 200. */
		if (error_info(s->error, &pe))
			fail_error(c, error_verdict(&pe), "provider error in stream",
			    &pe);
		else
			fail(c, "http_error", 1, "provider error in stream");
		return;
	}
	/*
	 * Before a bad record: a transfer cut inside a record leaves half a
	 * record, which the cut explains (a timeout, a reset, the size cap).
	 * A cut after the stream said it was done loses at most the usage
	 * record: the reply is whole.
	 */
	if (c->overflow || (code != CURLE_OK && !s->done)) {
		transfer_failed(c, code);
		return;
	}
	if (s->bad[0] != '\0' && code == CURLE_OK) {
		fail(c, "http_error", 1, "invalid stream from provider: %s",
		    s->bad);
		return;
	}
	if (!s->done) {
		fail(c, "http_error", 1,
		    "stream ended before the reply was complete, after %zu "
		    "bytes of text",
		    s->textlen);
		return;
	}
	/* As a whole reply with a refusal, or no content at all. */
	if (s->textlen == 0 && s->refusal[0] != '\0') {
		fail(c, "http_error", 0, "model refused: %s", s->refusal);
		return;
	}
	c->tool_calls = s->tool_calls;
	s->tool_calls = NULL;
	if (s->text == NULL && c->tool_calls == NULL) {
		fail(c, "http_error", 0, "provider reply has no message content");
		return;
	}
	c->ok = 1;
	c->retry = 0;
	/* The text is the stream's: take it rather than copy it. */
	c->text = s->text != NULL ? s->text : xstrdup("");
	s->text = NULL;
	s->textlen = s->textcap = 0;
	c->published = 0;
	c->prompt_tokens = s->prompt_tokens;
	c->completion_tokens = s->completion_tokens;
	/*
	 * A stream that ends without counts (an OpenAI server that ignores
	 * include_usage, a llama.cpp build without it): estimate them, and
	 * say so.  The prompt's estimate reads the messages as sent, keys
	 * and quotes included: an upper bound, close for long prompts.
	 */
	if (c->prompt_tokens < 0) {
		c->prompt_tokens = stream_estimate_tokens(NULL, c->prompt_bytes);
		c->tokens_estimated = 1;
	}
	if (c->completion_tokens < 0) {
		c->completion_tokens =
		    stream_estimate_tokens(c->text, strlen(c->text));
		c->tokens_estimated = 1;
	}
}

void
provider_call_done(struct call *c, CURLcode code)
{
	long st = 0;

	c->finished_us = wall_us();
	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &st);
	if (c->stream) {
		if (st >= 200 && st <= 299)
			stream_end(&c->st, c->resp, c->resplen);
		if (c->first_token_us == 0 && c->st.textlen > 0)
			c->first_token_us = wall_us();
		provider_classify_stream(c, code, st, c->resp, c->resplen);
	} else
		provider_classify(c, code, st, c->resp, c->resplen);
	c->retry_after_ms = c->ok ?
	    -1 :
	    provider_retry_after(c->hdr_retry_after, c->hdr_retry_after_ms,
	        c->finished_us / 1000);
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
	c->retry_after_ms = -1;
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
	json_object_put(c->tool_calls);
	json_object_put(c->schema);
	json_object_put(c->tools);
	free(c->options);
	json_object_put(c->parsed);
	json_object_put(c->verrors);
	if (c->stream)
		stream_free(&c->st);
	free(c);
}
