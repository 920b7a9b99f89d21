/*
 * stream.h: an incremental parser of streamed chat replies, Ollama's
 * NDJSON (/api/chat) and the Server-Sent Events of OpenAI-compatible
 * servers (OpenAI, vLLM, llama.cpp, Ollama's /v1).
 *
 * The caller keeps the whole body in one buffer, appends what the
 * transfer delivers and passes the buffer again each time; the parser
 * keeps only offsets into it, so it never holds a partial line of its
 * own.  It gathers the reply text, whether the stream said it was
 * complete, the token counts, and the first error or malformed record,
 * after which it reads nothing more.  Pure: no I/O, no clock.
 */
#ifndef LLMQ_STREAM_H
#define LLMQ_STREAM_H

#include <stddef.h>

#include <json.h>

enum stream_dialect {
	STREAM_NDJSON, /* Ollama /api/chat */
	STREAM_SSE     /* OpenAI-compatible chat completions */
};

struct stream {
	enum stream_dialect dialect;
	size_t pos;  /* bytes of the body consumed so far (complete lines) */
	size_t scan; /* bytes from pos known to hold no newline */
	/*
	 * SSE: the event being assembled (its data lines joined by "\n"),
	 * how many data lines it has, where in the body it began, and
	 * whether "event: error" named it.
	 */
	char *data;
	size_t datalen, datacap;
	int datalines;
	size_t evpos;
	int event_error;
	/*
	 * The reply text so far, NUL-terminated, with any NUL of the text
	 * replaced by U+FFFD: NULL until a record carries content (even an
	 * empty one), never NULL after the first delta.
	 */
	char *text;
	size_t textlen, textcap;
	int records;           /* JSON records parsed (chunks, done, error) */
	int deltas;            /* records that added text */
	int done;              /* the stream said it is complete */
	int prompt_tokens;     /* -1 unknown */
	int completion_tokens; /* -1 unknown */
	int usage;             /* 1 when a usage record or counts were seen */
	/*
	 * The first error record, owned: always an object that holds
	 * "error" or is {"object":"error",...}, as provider.c reads them.
	 * Parsing stops there; later bytes are ignored.
	 */
	json_object *error;
	/* Non-empty: a record that is not a JSON object; parsing stops. */
	char bad[160];
	/*
	 * The start of an OpenAI refusal (delta.refusal), NUL-terminated; a
	 * NUL in it cuts it short, which is harmless in a message.
	 */
	char refusal[256];
	/*
	 * The tool calls of the reply, owned, or NULL: an array of
	 * {"id", "name", "arguments"}, the arguments as the provider gave
	 * them (see stream_tool_calls()).
	 */
	json_object *tool_calls;
	struct json_tokener *tok; /* reused for every record */
};

void stream_init(struct stream *st, enum stream_dialect d);
/*
 * buf/len: the whole body received so far, buf[len] == '\0'.  Parses
 * every complete line from st->pos; returns the number of text bytes
 * this call appended.
 */
size_t stream_feed(struct stream *st, const char *buf, size_t len);
/*
 * The body ended: parse a last line without a newline and, for SSE,
 * dispatch an event no blank line closed.  Returns bytes appended.
 */
size_t stream_end(struct stream *st, const char *buf, size_t len);
void stream_free(struct stream *st);

/*
 * Append to *calls (a new array when NULL) the tool calls of a whole
 * message, OpenAI's or Ollama's "tool_calls", as {"id": ID or null,
 * "name": NAME, "arguments": ARGS}: ARGS a JSON value from Ollama, the
 * text of one (a string) from OpenAI.  Entries without a "function"
 * object are skipped.
 */
void stream_tool_calls(json_object **calls, json_object *tool_calls);

/*
 * An estimate of the tokens in len bytes of text, for a provider that
 * reports none: one per 4 bytes, rounded up; 0 for empty text.
 */
int stream_estimate_tokens(const char *s, size_t len);

#endif
