/*
 * provider.h: one HTTP call to an LLM provider (Ollama or OpenAI dialect).
 *
 * A struct call owns its curl easy handle, request body and response
 * buffer.  provider_call_new() prepares it for a curl multi handle;
 * provider_call_done() turns the transfer's outcome into a result: the
 * reply text and token counts, or one error kind of llmq(7) with a
 * readable message, whether another attempt may succeed, and how long
 * the server asked us to wait before it.  Nothing here touches the
 * database.
 */
#ifndef LLMQ_PROVIDER_H
#define LLMQ_PROVIDER_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <json.h>

#include "cfg.h"
#include "stream.h"

struct call {
	struct call *next;      /* the owner's list */
	int group;              /* the owner's: slots held, or -1 */
	int max_attempts;       /* the owner's: the row's */
	int requeue;            /* the owner's: back to pending, not final */
	int64_t requeue_ms;     /* ... due again after this long */
	int fallback_used;      /* the owner's: the row already fell back */
	int short_timeout;      /* the owner's: a limit below the provider's */
	const char *fallback;   /* the owner's: requeued for this model */
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
	size_t prompt_bytes;   /* of the messages, for an estimate */

	/*
	 * A streamed call: the reply is parsed as it arrives (a 2xx only),
	 * and the owner publishes the text while the call runs.
	 */
	int stream;
	struct stream st;
	int64_t first_token_us; /* wall clock; 0 until the first text */
	size_t published;       /* the owner's: bytes of st.text sent */
	size_t publishing;      /* the owner's: being sent, or 0 */
	int pieces;             /* the owner's: pieces sent */
	int64_t published_at;   /* the owner's: monotonic ms of the last */
	/*
	 * Response headers of the last header block, as received (trimmed;
	 * "" when absent or longer than the buffer).
	 */
	char hdr_retry_after[64];    /* Retry-After */
	char hdr_retry_after_ms[32]; /* retry-after-ms (OpenAI, Azure) */

	/* Result, filled by provider_call_done(). */
	int ok;
	const char *error_kind; /* static string, or NULL when ok */
	char *error_message;
	int retry; /* 1: transient failure, worth another attempt */
	/*
	 * The wait the server asked for before another attempt, in ms, not
	 * capped (the caller caps it; at most 2^31 s); -1: it said nothing,
	 * and always -1 on success.
	 */
	int64_t retry_after_ms;
	char *text; /* the model's reply */
	long http_status;
	int prompt_tokens; /* -1 when unknown */
	int completion_tokens;
	int tokens_estimated; /* a stream said nothing: counted from text */
	json_object *tool_calls; /* of the reply, or NULL: stream.h's shape */

	/*
	 * Structured output (src/structured.c): the request's schema and
	 * tools, and what a re-ask needs to send the conversation again.
	 */
	json_object *schema;  /* response_schema, or NULL */
	json_object *tools;   /* tools, or NULL */
	char *options;        /* the request's */
	int64_t timeout_ms;   /* of each round */
	int round;            /* 0, then 1 for the first re-ask, ... */
	int expect_tools;     /* a re-ask of tool calls: want them again */
	int round_only;       /* the owner's: a round, not the result */
	int prior_prompt;     /* tokens of the earlier rounds */
	int prior_completion;
	int prior_estimated;  /* an earlier round's counts were estimated */
	json_object *parsed;  /* for parsed_response, or NULL */
	json_object *verrors; /* validation_errors, or NULL */
	int64_t finished_us;
};

/*
 * The body of a call begins with its messages, prompt_bytes of them,
 * as given: provider_call_messages() finds them there.
 */
#define BODY_MESSAGES "messages"
#define provider_call_messages(c) ((c)->body + sizeof(BODY_MESSAGES) + 3)

/*
 * Build a call of model m (of cfg) for request id/attempt with the
 * request's messages and options as JSON text.  timeout_ms bounds the
 * whole call.  The reply is streamed when the options say "stream":
 * true, or say nothing and stream is set.  Returns NULL with err set
 * when the request cannot be sent at all (bad messages); the caller
 * fails it as bad_request.
 */
struct call *provider_call_new(const struct cfg *cfg, int model, int64_t id,
    int attempt, const char *messages, const char *options, int stream,
    int64_t timeout_ms, char *err, size_t errlen);

/*
 * Classify the finished transfer (code from curl) into the result:
 * provider_classify() on the response, then retry_after_ms from the
 * captured headers when the call failed.
 */
void provider_call_done(struct call *c, CURLcode code);

/*
 * As provider_classify(), for a streamed call whose body (len bytes) has
 * been fed to c->st: a reply that is no stream (an error status, or a
 * server that answered with one JSON body) is classified as such;
 * otherwise an error record in the stream, a record that does not
 * parse, a transfer cut before the stream said it was done, or the text
 * with its token counts, estimated (and so flagged) when the stream
 * gave none.
 */
void provider_classify_stream(
    struct call *c, CURLcode code, long status, const char *body, size_t len);

/*
 * The pure part of provider_call_done(), callable without a transfer:
 * from curl's code, the HTTP status and the response body (len bytes,
 * NUL-terminated; NULL when none) set ok, text and token counts, or
 * error_kind, error_message and retry, and http_status.  Reads c->prov
 * (the dialect), c->overflow, c->maxresp and c->errbuf.  The mapping is
 * the table above the function in provider.c.
 */
void provider_classify(
    struct call *c, CURLcode code, long status, const char *body, size_t len);

/*
 * One line of a response header block, as curl's header callback gets
 * it (with its CRLF): a status line ("HTTP/...") starts a new block and
 * forgets what the last one said (100 Continue, a proxy's CONNECT
 * reply); Retry-After and retry-after-ms are kept, names matched
 * without regard to case.
 */
void provider_call_header(struct call *c, const char *line, size_t len);

/*
 * Parse the value of a Retry-After header (RFC 9110 10.2.3): delta
 * seconds (a fraction is accepted, though not standard), or an HTTP date
 * in IMF-fixdate, RFC 850 or asctime form, taken relative to now_ms
 * (wall clock, ms since the epoch; a date in the past gives 0).  Sets
 * *ms and returns 0, or returns -1 when value is none of these.  Delays
 * above 2^31 s are taken as 2^31 s (as RFC 9111 1.2.2 for delta
 * seconds).
 */
int provider_parse_retry_after(const char *value, int64_t now_ms, int64_t *ms);

/*
 * The delay asked for by the two headers' values (either may be NULL or
 * ""): retry-after-ms (integer milliseconds) when valid, else
 * Retry-After; -1 when neither says anything usable.
 */
int64_t provider_retry_after(
    const char *retry_after, const char *retry_after_ms, int64_t now_ms);

/*
 * Mark a call failed without a transfer (e.g. it could not be started),
 * as not worth retrying; the caller may set retry afterwards.
 */
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
