/*
 * provider.h: one HTTP call to an LLM provider (Ollama or OpenAI dialect).
 *
 * A struct call owns its curl easy handle, request body and response
 * buffer.  provider_call_new() prepares it for a curl multi handle;
 * provider_call_done() turns the transfer's outcome into a result: the
 * reply text and token counts, or one error kind of llmq(7) with a
 * readable message.  Nothing here touches the database.
 */
#ifndef LLMQ_PROVIDER_H
#define LLMQ_PROVIDER_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "cfg.h"

struct call {
	struct call *next;      /* the owner's list */
	int group;              /* the owner's: slots held, or -1 */
	int64_t id;             /* request id */
	int attempt;            /* the row's attempt number */
	int model;              /* index into cfg->models */
	const char *model_name; /* owned by the cfg */
	const struct cfg_provider *prov;

	CURL *easy;
	struct curl_slist *headers;
	char *body; /* request body (JSON) */
	char *resp; /* response body, NUL-terminated */
	size_t resplen;
	size_t respcap;
	size_t maxresp;
	int overflow; /* response exceeded maxresp */
	char errbuf[CURL_ERROR_SIZE];
	int64_t started_us;    /* wall clock */
	int64_t first_byte_us; /* wall clock; 0 until the first byte */

	/* Result, filled by provider_call_done(). */
	int ok;
	const char *error_kind; /* static string, or NULL when ok */
	char *error_message;
	char *text; /* the model's reply */
	long http_status;
	int prompt_tokens; /* -1 when unknown */
	int completion_tokens;
	int64_t finished_us;
};

/*
 * Build a call of model m (of cfg) for request id/attempt with the
 * request's messages and options as JSON text.  timeout_ms bounds the
 * whole call.  Returns NULL with err set when the request cannot be sent
 * at all (bad messages); the caller fails it as bad_request.
 */
struct call *provider_call_new(const struct cfg *cfg, int model, int64_t id,
    int attempt, const char *messages, const char *options, int64_t timeout_ms,
    char *err, size_t errlen);

/* Classify the finished transfer (code from curl) into the result. */
void provider_call_done(struct call *c, CURLcode code);

/* Mark a call failed without a transfer (e.g. it could not be started). */
void provider_call_fail(struct call *c, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * A call that never reached a provider (the request could not be sent),
 * already failed with kind and message, for the same write-back path.
 */
struct call *provider_call_failed(
    int64_t id, int attempt, const char *kind, const char *message);

void provider_call_free(struct call *c);

#endif
