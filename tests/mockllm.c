/*
 * mockllm.c: a stand-in LLM server for llmq's tests and benchmarks.
 *
 * It speaks enough of the Ollama (POST /api/chat) and OpenAI (POST
 * /v1/chat/completions) HTTP APIs for llmq's client: it answers with
 * "echo: " and the content of the last message, or with the text and
 * tool calls a test scripts (mock:say and mock:tool below), in one body
 * or, when the request body has "stream": true, streamed, after a
 * configurable delay.  A stream is the text in pieces, the records of
 * the tool calls if any, then the closing records (Ollama: the
 * "done" line; OpenAI: the finish_reason chunk, the usage chunk if
 * "stream_options" asked for it, "data: [DONE]"), each record one HTTP
 * chunk; by default all at once, or spaced out over time.  It can be
 * told to misbehave (other status codes, garbage, truncated or empty
 * bodies, hangs, resets, huge replies, errors and cuts mid-stream) by
 * default, at run time through POST /_mock/config, or per request by
 * "mock:key=value" directives in the messages.  GET /_mock/stats
 * reports counters, among them the most chat requests held at once, which
 * is what concurrency tests look at, both overall and per model (in
 * "models", by the "model" string of the request body; "" if there is
 * none or the body does not parse).  The first MAX_MODELS names of at
 * most MODEL_NAME bytes are counted apart, any others under "(other)";
 * "streams" counts the streamed replies started, "stream_chunks" the
 * records they queued, each an HTTP chunk (the empty last chunk is not
 * counted).  It also tells about the last chat request: "last_messages",
 * how many messages it had, and "last_roles", the first letter of each
 * one's role in order ("suau" for system, user, assistant, user; '?' for
 * a message with no role, or one not starting with an ASCII letter or
 * digit; the first MAX_ROLES only), 0 and "" when its body did not parse;
 * these come last, after the counters.  GET /_mock/last answers with the
 * first LAST_BODY bytes of the last chat request's body as it came
 * (decoded from chunks), as application/json, with its whole length in
 * an X-Mock-Body-Length header: a body cut short is not valid JSON.  POST
 * /_mock/reset starts the counters over and forgets the last request.
 *
 * With -L it logs the moment each chat request was complete, which
 * benchmarks use to measure pick-up latency, and the moment the first
 * record of each streamed reply was queued for sending (time to first
 * token, as the mock sees it), a line each:
 *   <us> <path> <content>
 *   <us> first_chunk <path> <content>
 * <us> is wall-clock microseconds since the epoch, <path> the route
 * ("/api/chat", "/v1/chat/completions" or "/chat/completions"), <content>
 * the first LOG_CONTENT bytes of the last message's content with blanks
 * and control bytes made '_'.  A benchmark pairs the two by content (a
 * marker of its own); a tag never starts with '/', so readers of the
 * first kind that split at the first two blanks skip the second.  A
 * stream cut before its first record logs no first_chunk.
 *
 * The directives are "mock:key=value" words anywhere in the content of
 * the last message or, when that has no "mock:" at all, of the first
 * message whose role is "user" and whose content has one.  So when llmq
 * re-asks (it sends the conversation again, with the model's reply
 * appended as an "assistant" message and its complaint as a last "user"
 * message), the later rounds take the directives of the first.  A value
 * runs to the next blank or line end.  The directives are:
 *   delay=MS           answer after MS milliseconds
 *   status=CODE        answer with status CODE, 200 to 599
 *   mode=MODE          normal, garbage, truncated, empty, hang, reset,
 *                      big or error
 *   error=NAME         answer with a provider's own error body, and its
 *                      status unless status= says otherwise: quota (429),
 *                      ratelimit (429), auth (401) and badreq (400) as
 *                      OpenAI words them, vllm (400) as vLLM, loading
 *                      (503) as llama.cpp, busy (503) and ollama (500) as
 *                      Ollama, html (502) as an HTML page from a proxy.
 *                      An unknown NAME is refused with a 400 by the mock
 *                      itself, its message naming the known ones.
 *   retry_after=S      send "Retry-After: S"
 *   retry_date=S       send Retry-After as the HTTP date S seconds after
 *                      the reply; the later of it and retry_after wins
 *   retry_after_ms=MS  send "retry-after-ms: MS", as OpenAI does
 *   fail=N             do as the others say for the first N requests
 *                      whose directives come from this very content,
 *                      then answer every later one with a plain 200
 *                      (after any delay, shaped by gap, pieces and usage,
 *                      saying and calling what say, say2, say3 and tool
 *                      direct, but without stream_error or cut), to "fail
 *                      twice with a 503, then succeed".  Requests are
 *                      counted by a hash of the content of the message
 *                      their directives were read from, in a table of
 *                      FAIL_SLOTS that POST /_mock/reset empties; once it
 *                      is full, new contents are not counted and fail
 *                      every time.
 *   usage=0|1          0: report no token counts: no "usage" in an OpenAI
 *                      body nor usage chunk in its stream (even when
 *                      include_usage asked for one), no prompt_eval_count
 *                      and eval_count in Ollama's done record
 *   say=B64            reply with the text that B64 encodes instead of
 *                      the echo: base64, in the standard or the URL
 *                      alphabet ('+' or '-', '/' or '_'), padding
 *                      optional.  Invalid base64 is refused with a 400
 *                      by the mock itself, its message saying so; so is
 *                      that of say2, say3 and tool, whether or not they
 *                      apply to the round.  The text may hold any bytes:
 *                      the reply escapes '"', '\' and control bytes as
 *                      JSON must, and passes every byte from 0x80 up as
 *                      it is, invalid UTF-8 included (the echo makes that
 *                      U+FFFD), to test how llmq takes a reply that is
 *                      not UTF-8.  Streamed, it is cut into pieces as the
 *                      echo is, on UTF-8 boundaries where it is valid.
 *   say2=B64           say this instead when the conversation has one
 *                      message or more whose role is "assistant": the
 *                      second round of a re-ask
 *   say3=B64           and this when it has two or more.  A round says
 *                      the text of the last of say, say2 and say3 that
 *                      its number of assistant messages reaches and that
 *                      is given; with none of them, the echo (or, with
 *                      tool calls, no text).  Given twice, the later wins.
 *   tool=NAME:B64      a call of the tool NAME (all up to the first ':',
 *                      unchecked) with the arguments B64 encodes (base64
 *                      as for say, any bytes).  Up to MAX_TOOLS (4) in a
 *                      request, made in order, the same in every round;
 *                      a fifth, or a value with no ':', is refused with a
 *                      400.  The calls go with the round's said text as
 *                      content if one applies, else with no text.
 *                      OpenAI: "message":{"role":"assistant","content":
 *                      null or the text,"tool_calls":[{"id":"call_<n>",
 *                      "type":"function","function":{"name":NAME,
 *                      "arguments":ARGS as a JSON string}},...]} and
 *                      "finish_reason":"tool_calls"; <n> numbers the
 *                      calls since the mock started, from 1.  Streamed as
 *                      OpenAI does, after the text pieces if any: for
 *                      each call I (from 0), a delta {"tool_calls":
 *                      [{"index":I,"id":...,"type":"function","function":
 *                      {"name":NAME,"arguments":""}}]}, led by "role":
 *                      "assistant","content":null when it is the first
 *                      record, then ARGS in 3 pieces (2 when shorter
 *                      than 3 bytes), cut as the text is, each a delta
 *                      {"tool_calls":[{"index":I,"function":
 *                      {"arguments":PIECE}}]}.  Ollama: "message":
 *                      {"role":"assistant","content":"" or the text,
 *                      "tool_calls":[{"function":{"name":NAME,
 *                      "arguments":ARGS}},...]}, ARGS spliced in raw, to
 *                      be a JSON value (when they are not, the body is
 *                      broken, as a test may want); streamed, after the
 *                      text pieces, one record with all the calls as
 *                      Ollama does.  Token counts count ARGS and NAME.
 * and, for a streamed 200 reply only:
 *   gap=MS             send the first record after the delay, then each
 *                      following one (text pieces, tool call records,
 *                      closing records, the error) MS milliseconds after
 *                      the one before, so a stream lasts about (pieces -
 *                      1 + tool call records + closing records) * MS.
 *                      The head goes with the first record.
 *                      mode=truncated ignores it: half of the whole
 *                      stream goes at once.
 *   pieces=N           cut the text into N pieces, 1 to 1000 (default 3),
 *                      on UTF-8 boundaries; a text of fewer characters
 *                      has empty pieces.  mode=big sends one piece.
 *                      A reply of tool calls alone has no text pieces.
 *   stream_error=K     after K pieces (after all of them if there are K
 *                      or fewer) send an error record instead of the
 *                      next one and end the body, without [DONE]: Ollama
 *                      {"error":"an error was encountered while running
 *                      the model: unexpected EOF"} as an NDJSON line;
 *                      OpenAI data: {"error":{"message":"The server had
 *                      an error while processing your request. Sorry
 *                      about that!","type":"server_error","code":null}}
 *                      as an SSE event
 *   stream_error_style=openai|llamacpp
 *                      llamacpp: word OpenAI's error record as llama.cpp
 *                      does, error: {"code":500,"message":"an error
 *                      occurred during streaming","type":"server_error"}
 *   cut=K              after K pieces (likewise), when the next record is
 *                      due, close the connection (FIN) with the chunked
 *                      body unended; cut=0 sends the head alone.  Where
 *                      it falls with stream_error, the cut wins.
 *                      For stream_error and cut, the records of tool
 *                      calls count as pieces after the text's: per
 *                      OpenAI call its naming delta and its argument
 *                      pieces, Ollama's one record of all the calls.
 * Other values that do not parse are ignored.  An error reply, named or
 * not, is one plain body even when the request asked for a stream.  POST
 * /_mock/config takes the defaults as a JSON object, all or nothing:
 * delay_ms, jitter_ms, status, mode, gap_ms, pieces, stream_error and
 * cut (null for none), stream_error_style and usage (true or false).
 *
 * It must not be the bottleneck of a benchmark, so it is one thread
 * around one level-triggered epoll loop, with non-blocking sockets and
 * keep-alive; delays and the gaps of streams are deadlines in a min-heap
 * that bound epoll_wait's timeout.  Nothing in the loop blocks except
 * appends to the log file.
 *
 * Invariants:
 * - A connection holds at most one chat request that waits (for its
 *   deadline, forever in "hang" mode, or for the deadline of the next
 *   record of its spaced-out stream).  Requests pipelined behind it stay
 *   unparsed in the input buffer until it is answered in full, the last
 *   record of a stream included, so responses leave in request order.
 *   A waiting connection is in the heap unless it hangs.
 * - No request is looked at while a connection's queued output is above
 *   OUT_HIGH or a big reply is still being generated; this bounds memory
 *   per connection and keeps the output in order, since a big reply is
 *   queued as head bytes, a count of 'x' bytes made on the fly, and tail
 *   bytes, and anything queued behind it (the later records of its
 *   stream) joins the tail until it is all out.  A stream's records are
 *   queued when due whether or not the peer reads them; there are at
 *   most MAX_PIECES + 4 * MAX_TOOLS + 3 of them, so that is bounded too.
 * - "inflight" counts chat requests parsed whose response is not yet
 *   wholly queued: a streamed reply counts until its last record is
 *   queued or it is cut, so a spaced-out stream is held for all of its
 *   duration.  Every path that drops such a request (peer gone, before
 *   or in the middle of its stream, reset mode) decrements it, so it
 *   returns to zero when the server is idle.  The same paths decrement
 *   the "inflight" of the request's model, which the request holds
 *   (rep.ms) while it is counted.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEAD (64 * 1024)        /* request line and headers */
#define MAX_BODY (16 * 1024 * 1024) /* request body, decoded */
/* Room for a whole chunked request of MAX_BODY with its framing. */
#define IN_LIMIT (MAX_BODY + MAX_BODY / 2 + MAX_HEAD)
#define READ_ROOM 4096 /* small: idle connections keep theirs */
#define OUT_HIGH (1024 * 1024)
#define BUF_KEEP (256 * 1024) /* larger idle buffers are freed */
#define XBLOCK (64 * 1024)
#define BIG_BYTES (10 * 1024 * 1024)
#define LOG_FLUSH_US (50 * 1000)
#define LOG_HIGH (64 * 1024)
#define LOG_CONTENT 80
#define MAX_EVENTS 256
#define JSON_DEPTH 64
#define MAX_MS (3600 * 1000) /* an hour; larger delays are typos */
#define ACCEPT_PAUSE_US (100 * 1000)
#define MAX_MODELS 64  /* model names counted apart */
#define MODEL_NAME 128 /* bytes; longer names count under OTHER */
#define OTHER "(other)"
#define FAIL_SLOTS 4096 /* contents counted for mock:fail */
#define PIECES 3        /* text pieces of a stream, by default */
#define MAX_PIECES 1000
#define MAX_TOOLS 4    /* mock:tool calls in one reply */
#define MAX_ROLES 4096 /* roles told in "last_roles" */
#define LAST_BODY 2048 /* bytes of the last request kept for /_mock/last */

enum api { API_OLLAMA, API_OPENAI };

enum mode {
	MODE_NORMAL,
	MODE_GARBAGE,
	MODE_TRUNCATED,
	MODE_EMPTY,
	MODE_HANG,
	MODE_RESET,
	MODE_BIG,
	MODE_ERROR
};

static const char *const mode_names[] = { "normal", "garbage", "truncated",
	"empty", "hang", "reset", "big", "error" };

/*
 * What a connection's chat request waits for: its deadline, nothing
 * (hang), or the deadline of the next record of its streamed reply.
 * Every wait but WAIT_HANG has the connection in the heap.
 */
enum wait { WAIT_NONE, WAIT_TIMER, WAIT_HANG, WAIT_STREAM };

/* How an error inside an OpenAI stream is worded (mock:stream_error). */
enum estyle { ESTYLE_OPENAI, ESTYLE_LLAMACPP };

static const char *const estyle_names[] = { "openai", "llamacpp" };

/* The canned errors of mock:error, each as some provider words it. */
static const struct canned {
	const char *name;
	int status;
	const char *ctype;
	const char *body;
} canned[] = {
	{ "quota", 429, "application/json",
	    "{\"error\":{\"message\":\"You exceeded your current quota, "
	    "please check your plan and billing details.\","
	    "\"type\":\"insufficient_quota\",\"param\":null,"
	    "\"code\":\"insufficient_quota\"}}" },
	{ "ratelimit", 429, "application/json",
	    "{\"error\":{\"message\":\"Rate limit reached for requests\","
	    "\"type\":\"requests\",\"param\":null,"
	    "\"code\":\"rate_limit_exceeded\"}}" },
	{ "auth", 401, "application/json",
	    "{\"error\":{\"message\":\"Incorrect API key provided.\","
	    "\"type\":\"invalid_request_error\",\"param\":null,"
	    "\"code\":\"invalid_api_key\"}}" },
	{ "badreq", 400, "application/json",
	    "{\"error\":{\"message\":\"Invalid value for 'temperature'.\","
	    "\"type\":\"invalid_request_error\",\"param\":\"temperature\","
	    "\"code\":null}}" },
	{ "vllm", 400, "application/json",
	    "{\"object\":\"error\",\"message\":\"This model's maximum "
	    "context length is 4096 tokens.\",\"type\":\"BadRequestError\","
	    "\"param\":null,\"code\":400}" },
	{ "loading", 503, "application/json",
	    "{\"error\":{\"code\":503,\"message\":\"Loading model\","
	    "\"type\":\"unavailable_error\"}}" },
	{ "busy", 503, "application/json",
	    "{\"error\":\"server busy, please try again.  "
	    "maximum pending requests exceeded\"}" },
	{ "ollama", 500, "application/json",
	    "{\"error\":\"model requires more system memory than is "
	    "available\"}" },
	{ "html", 502, "text/html",
	    "<html><body><h1>502 Bad Gateway</h1></body></html>" },
};

struct buf {
	char *p;
	size_t len;
	size_t cap;
};

/*
 * A response body under construction.  When fill_n is not zero, fill_n
 * bytes of 'x' belong at offset fill_at: they are never stored.
 */
struct body {
	struct buf b;
	size_t fill_at;
	size_t fill_n;
};

/*
 * A piece of reply text: either bytes, or xfill bytes of 'x'.  raw: the
 * bytes from 0x80 up go out as they are, valid UTF-8 or not.
 */
struct text {
	const char *s;
	size_t len;
	size_t xfill;
	int raw;
};

/* A mock:tool call: spans of its reply's tooldata. */
struct tcall {
	size_t name;
	size_t namelen;
	size_t args;
	size_t argslen;
};

/* Counters of the chat requests that name one model. */
struct mstat {
	char name[MODEL_NAME];
	size_t namelen;
	uint64_t requests;
	long inflight;
	long max_inflight;
};

struct config {
	int delay_ms;
	int jitter_ms;
	int status;
	int mode;
	int gap_ms;
	int pieces;
	int stream_error; /* text pieces before the error, or -1 */
	int estyle;
	int cut; /* text pieces before the cut, or -1 */
	int usage;
};

/* How far a streamed reply has gone, kept between its records. */
struct stream {
	int pieces;  /* records before the closing ones: text, tool calls */
	int sent;    /* text pieces queued */
	int closed;  /* closing records queued */
	int records; /* records of any kind queued */
	int cut;     /* the stream ended in a cut */
	size_t off;  /* bytes of text queued */
	time_t created;
};

/* What to answer to a chat request, kept while the request waits. */
struct reply {
	enum api api;
	int mode;
	int status;
	int retry_after;          /* seconds, or -1 */
	int retry_date;           /* seconds ahead, or -1 */
	int retry_after_ms;       /* or -1 */
	const struct canned *err; /* mock:error, or NULL */
	int stream;
	int include_usage;
	int usage;        /* 0: report no token counts */
	int gap_ms;       /* between the records of a stream */
	int pieces;       /* asked for; mode=big makes it 1 */
	int stream_error; /* text pieces before the error, or -1 */
	int estyle;
	int cut; /* text pieces before the cut, or -1 */
	struct stream st;
	const char *path; /* the route, for the log */
	int keepalive;
	int http10;
	uint64_t seq;
	int64_t t0; /* monotonic us when parsed */
	size_t prompt_bytes;
	struct mstat *ms; /* while counted in flight */
	char *model;
	size_t modellen;
	char *text; /* "echo: " and the last content, or the said text */
	size_t textlen;
	int raw;     /* text is said: passed as it is (struct text) */
	int hastext; /* some text to send; else tool calls alone */
	int tpieces; /* text pieces of a stream */
	int ntools;
	struct tcall tools[MAX_TOOLS];
	char *tooldata;           /* names and decoded arguments */
	size_t toolbytes;         /* their length, for token counts */
	unsigned long long tool0; /* the number of the first call */
	char logc[LOG_CONTENT];   /* the last content, for the log */
	size_t logclen;
};

struct conn {
	struct conn *prev;
	struct conn *next;
	int fd;
	uint32_t events; /* epoll interest registered now */
	int eof;         /* the peer will send no more */
	int closing;     /* read no more; close once flushed */
	int kill;        /* close now, dropping output */
	int linger0;     /* close with RST */
	int sent_continue;
	struct buf in;
	size_t inoff; /* bytes of in already consumed */
	struct buf out;
	size_t outoff;   /* bytes of out already sent */
	size_t fill;     /* 'x' bytes to send after out */
	struct buf tail; /* bytes to send after the fill */
	enum wait waiting;
	size_t heapidx;
	int64_t deadline; /* monotonic us */
	struct reply rep;
};

struct req {
	const char *method;
	size_t methodlen;
	const char *path;
	size_t pathlen; /* without the query string */
	const char *body;
	size_t bodylen;
	size_t total; /* bytes the request takes in */
	size_t clen;
	int keepalive;
	int http10;
	int chunked;
	int expect;
	int headdone;
};

/* What chat_parse found in a chat request body. */
struct chat {
	struct buf *model;
	struct buf *content; /* of the last message, unescaped */
	struct buf *first;   /* of the first user message with "mock:" */
	struct buf *role;    /* of the message being read, unescaped */
	struct buf *roles;   /* their first letters, MAX_ROLES at most */
	size_t prompt_bytes;
	long messages;
	long assistants; /* messages whose role is "assistant" */
	int has_first;
	int has_model;
	int stream;
	int include_usage;
};

/* How many requests with one content were failed for mock:fail. */
struct failslot {
	uint64_t hash; /* FNV-1a of the content */
	long count;    /* 0: a free slot */
};

/* What the "mock:" directives of a request ask for; -1: not given. */
struct asks {
	int delay;
	int status;
	int mode;
	int retry_after;
	int retry_date;
	int retry_after_ms;
	long fail;
	int gap;
	int pieces;
	int stream_error;
	int estyle;
	int cut;
	int usage;
	const struct canned *err;
	const char *bad; /* an unknown error name, or NULL */
	size_t badlen;
	const char *refuse; /* why to refuse a say or tool, or NULL */
	const char *say[3]; /* say, say2, say3 base64, or NULL */
	size_t saylen[3];
	int ntools;
	struct {
		const char *name;
		size_t namelen;
		const char *args; /* base64 */
		size_t argslen;
	} tool[MAX_TOOLS];
};

struct server {
	int epfd;
	int lfd;
	int sfd;
	int logfd;
	int stop;
	int accept_paused;
	int64_t accept_resume;
	struct config cfg;
	uint64_t requests;
	uint64_t seq;
	long inflight;
	long max_inflight;
	long connections;
	uint64_t streams;
	uint64_t stream_chunks;
	uint64_t by_status[600];
	unsigned long long tool_calls; /* made since the start */
	long last_messages;
	struct buf last_roles;
	char last_body[LAST_BODY];
	size_t last_len;  /* bytes of last_body */
	size_t last_full; /* bytes of the whole body */
	/* OTHER may take the one slot beyond MAX_MODELS. */
	struct mstat models[MAX_MODELS + 1];
	int nmodels;
	struct failslot fails[FAIL_SLOTS];
	struct conn *conns;
	struct conn **heap;
	size_t nheap;
	size_t heapcap;
	struct buf log;
	int64_t log_due;
	uint64_t rng;
	char *xblock;
	/* Scratch space, reused by every request. */
	struct body body;
	struct body chunk;
	struct buf dechunk;
	struct buf model;
	struct buf content;
	struct buf first;
	struct buf role;
	struct buf misc;
};

struct jp {
	const char *p;
	const char *end;
	int depth;
};

static void *
xmalloc(size_t n)
{
	void *p;

	if ((p = malloc(n ? n : 1)) == NULL)
		errx(1, "out of memory (%zu bytes)", n);
	return p;
}

static void *
xrealloc(void *p, size_t n)
{
	void *q;

	if ((q = realloc(p, n ? n : 1)) == NULL)
		errx(1, "out of memory (%zu bytes)", n);
	return q;
}

static int64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t
wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
buf_reserve(struct buf *b, size_t n)
{
	size_t cap;

	if (b->cap - b->len >= n)
		return;
	cap = b->cap ? b->cap : 512;
	while (cap - b->len < n) {
		if (cap > SIZE_MAX / 2)
			errx(1, "buffer too large");
		cap *= 2;
	}
	b->p = xrealloc(b->p, cap);
	b->cap = cap;
}

static void
buf_add(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	buf_reserve(b, n);
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void
buf_puts(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void
buf_putc(struct buf *b, char ch)
{
	buf_reserve(b, 1);
	b->p[b->len++] = ch;
}

static void buf_printf(struct buf *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	size_t room;
	int n;

	buf_reserve(b, 128);
	room = b->cap - b->len;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, room, fmt, ap);
	va_end(ap);
	if (n < 0)
		errx(1, "vsnprintf failed");
	if ((size_t)n >= room) {
		buf_reserve(b, (size_t)n + 1);
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

static void
buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* Empty a buffer, giving back its memory if a big request swelled it. */
static void
buf_clear(struct buf *b)
{
	b->len = 0;
	if (b->cap > BUF_KEEP)
		buf_free(b);
}

static uint64_t
rng_next(struct server *srv)
{
	/* xorshift64*: jitter needs spread, not quality. */
	srv->rng ^= srv->rng >> 12;
	srv->rng ^= srv->rng << 25;
	srv->rng ^= srv->rng >> 27;
	return srv->rng * 2685821657736338717ULL;
}

/* The index of s[0..len) among the n names, or -1. */
static int
name_lookup(const char *const *names, size_t n, const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
			return (int)i;
	return -1;
}

static int
mode_lookup(const char *s, size_t len)
{
	return name_lookup(
	    mode_names, sizeof(mode_names) / sizeof(mode_names[0]), s, len);
}

static int
estyle_lookup(const char *s, size_t len)
{
	return name_lookup(estyle_names,
	    sizeof(estyle_names) / sizeof(estyle_names[0]), s, len);
}

/*
 * Parse a non-negative decimal integer of at most max from s[0..len).
 * Returns -1 when it is not one.
 */
static long
parse_num(const char *s, size_t len, long max)
{
	long v = 0;
	size_t i;

	if (len == 0)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
		if (v > max)
			return -1;
	}
	return v;
}

/* Content-Length: anything past MAX_BODY reads as MAX_BODY + 1. */
static long
parse_clen(const char *s, size_t len)
{
	long v = 0;
	size_t i;

	if (len == 0)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v <= MAX_BODY)
			v = v * 10 + (s[i] - '0');
	}
	return v > MAX_BODY ? MAX_BODY + 1 : v;
}

static const struct {
	int status;
	const char *text;
} reasons[] = {
	{ 200, "OK" },
	{ 201, "Created" },
	{ 202, "Accepted" },
	{ 204, "No Content" },
	{ 400, "Bad Request" },
	{ 401, "Unauthorized" },
	{ 403, "Forbidden" },
	{ 404, "Not Found" },
	{ 405, "Method Not Allowed" },
	{ 408, "Request Timeout" },
	{ 409, "Conflict" },
	{ 413, "Content Too Large" },
	{ 422, "Unprocessable Content" },
	{ 429, "Too Many Requests" },
	{ 431, "Request Header Fields Too Large" },
	{ 500, "Internal Server Error" },
	{ 501, "Not Implemented" },
	{ 502, "Bad Gateway" },
	{ 503, "Service Unavailable" },
	{ 504, "Gateway Timeout" },
};

static const char *
reason(int status)
{
	size_t i;

	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (reasons[i].status == status)
			return reasons[i].text;
	/* Clients read the code; the phrase is for people. */
	return "Status";
}

/*
 * Length of the well-formed UTF-8 sequence at p, or 0.  Overlong forms,
 * surrogates and code points past U+10FFFF are not well-formed: strict
 * JSON readers refuse them, so they must not reach a reply.
 */
static size_t
utf8_len(const unsigned char *p, const unsigned char *end)
{
	size_t n, i;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		cp = p[0] & 0x07;
	} else
		return 0;
	if ((size_t)(end - p) < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

/*
 * Append s as the inside of a JSON string; bad UTF-8 becomes U+FFFD,
 * unless raw, when every byte from 0x80 up is passed as it is.
 */
static void
json_escape_as(struct buf *b, const char *s, size_t len, int raw)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *end = p + len, *run;
	size_t n;

	buf_reserve(b, len + 16);
	while (p < end) {
		run = p;
		while (p < end && *p >= 0x20 && (*p < 0x80 || raw) &&
		    *p != '"' && *p != '\\')
			p++;
		buf_add(b, run, (size_t)(p - run));
		if (p == end)
			break;
		switch (*p) {
		case '"':
			buf_puts(b, "\\\"");
			break;
		case '\\':
			buf_puts(b, "\\\\");
			break;
		case '\n':
			buf_puts(b, "\\n");
			break;
		case '\r':
			buf_puts(b, "\\r");
			break;
		case '\t':
			buf_puts(b, "\\t");
			break;
		case '\b':
			buf_puts(b, "\\b");
			break;
		case '\f':
			buf_puts(b, "\\f");
			break;
		default:
			if (*p < 0x20) {
				buf_printf(b, "\\u%04x", *p);
				break;
			}
			if ((n = utf8_len(p, end)) == 0) {
				buf_puts(b, "\\ufffd");
				break;
			}
			buf_add(b, p, n);
			p += n;
			continue;
		}
		p++;
	}
}

static void
json_escape(struct buf *b, const char *s, size_t len)
{
	json_escape_as(b, s, len, 0);
}

static void
put_utf8(struct buf *b, uint32_t cp)
{
	char u[4];

	if (cp < 0x80) {
		buf_putc(b, (char)cp);
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3f));
		buf_add(b, u, 2);
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12);
		u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		buf_add(b, u, 3);
	} else {
		u[0] = (char)(0xf0 | cp >> 18);
		u[1] = (char)(0x80 | (cp >> 12 & 0x3f));
		u[2] = (char)(0x80 | (cp >> 6 & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		buf_add(b, u, 4);
	}
}

static int
hex4(const char *s, uint32_t *v)
{
	int i;

	*v = 0;
	for (i = 0; i < 4; i++) {
		*v <<= 4;
		if (s[i] >= '0' && s[i] <= '9')
			*v |= (uint32_t)(s[i] - '0');
		else if (s[i] >= 'a' && s[i] <= 'f')
			*v |= (uint32_t)(s[i] - 'a' + 10);
		else if (s[i] >= 'A' && s[i] <= 'F')
			*v |= (uint32_t)(s[i] - 'A' + 10);
		else
			return -1;
	}
	return 0;
}

/*
 * Append the decoded form of the inside of a JSON string.  A lone
 * surrogate becomes U+FFFD rather than an error: the prompt is echoed,
 * not judged.
 */
static int
json_unescape(struct buf *b, const char *s, size_t len)
{
	const char *end = s + len, *run;
	uint32_t cp, lo;

	buf_reserve(b, len);
	while (s < end) {
		run = s;
		while (s < end && *s != '\\')
			s++;
		buf_add(b, run, (size_t)(s - run));
		if (s == end)
			break;
		if (++s == end)
			return -1;
		switch (*s++) {
		case '"':
			buf_putc(b, '"');
			break;
		case '\\':
			buf_putc(b, '\\');
			break;
		case '/':
			buf_putc(b, '/');
			break;
		case 'b':
			buf_putc(b, '\b');
			break;
		case 'f':
			buf_putc(b, '\f');
			break;
		case 'n':
			buf_putc(b, '\n');
			break;
		case 'r':
			buf_putc(b, '\r');
			break;
		case 't':
			buf_putc(b, '\t');
			break;
		case 'u':
			if (end - s < 4 || hex4(s, &cp) == -1)
				return -1;
			s += 4;
			if (cp >= 0xd800 && cp <= 0xdbff && end - s >= 6 &&
			    s[0] == '\\' && s[1] == 'u' &&
			    hex4(s + 2, &lo) == 0 && lo >= 0xdc00 &&
			    lo <= 0xdfff) {
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				    (lo - 0xdc00);
				s += 6;
			} else if (cp >= 0xd800 && cp <= 0xdfff)
				cp = 0xfffd;
			put_utf8(b, cp);
			break;
		default:
			return -1;
		}
	}
	return 0;
}

static int
b64_digit(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+' || ch == '-')
		return 62;
	if (ch == '/' || ch == '_')
		return 63;
	return -1;
}

/*
 * Decode the base64 s[0..len), in the standard or the URL alphabet, with
 * or without its padding, appending the bytes to out unless it is NULL.
 * Returns -1 when s is not base64.  Leftover bits are not checked.
 */
static int
b64_decode(struct buf *out, const char *s, size_t len)
{
	size_t n = len, i;
	uint32_t acc = 0;
	int bits = 0, d;

	if (n > 0 && s[n - 1] == '=')
		n--;
	if (n > 0 && s[n - 1] == '=')
		n--;
	if ((n < len && len % 4 != 0) || n % 4 == 1)
		return -1;
	if (out != NULL)
		buf_reserve(out, n / 4 * 3 + 3);
	for (i = 0; i < n; i++) {
		if ((d = b64_digit((unsigned char)s[i])) < 0)
			return -1;
		acc = (acc << 6 | (uint32_t)d) & 0xffff;
		if ((bits += 6) >= 8) {
			bits -= 8;
			if (out != NULL)
				buf_putc(out, (char)(acc >> bits & 0xff));
		}
	}
	return 0;
}

/*
 * A JSON reader just good enough to walk a request: it checks structure,
 * and hands out raw string spans for the caller to unescape.
 */
static int
jp_peek(struct jp *j)
{
	while (j->p < j->end &&
	    (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
	return j->p < j->end ? (unsigned char)*j->p : -1;
}

static int
jp_eat(struct jp *j, int ch)
{
	if (jp_peek(j) != ch)
		return -1;
	j->p++;
	return 0;
}

static int
jp_string(struct jp *j, const char **s, size_t *len)
{
	const char *p;

	if (jp_eat(j, '"') == -1)
		return -1;
	for (p = j->p; p < j->end; p++) {
		if (*p == '\\') {
			if (++p == j->end)
				return -1;
		} else if (*p == '"') {
			*s = j->p;
			*len = (size_t)(p - j->p);
			j->p = p + 1;
			return 0;
		}
	}
	return -1;
}

/*
 * Step to the next member of an object whose '{' is consumed: 1 with the
 * key, 0 at the closing '}', -1 on bad input.
 */
static int
jp_member(struct jp *j, int *first, const char **k, size_t *klen)
{
	if (jp_peek(j) == '}') {
		j->p++;
		return 0;
	}
	if (!*first && jp_eat(j, ',') == -1)
		return -1;
	*first = 0;
	if (jp_string(j, k, klen) == -1 || jp_eat(j, ':') == -1)
		return -1;
	jp_peek(j);
	return 1;
}

/* Likewise for the elements of an array whose '[' is consumed. */
static int
jp_elem(struct jp *j, int *first)
{
	if (jp_peek(j) == ']') {
		j->p++;
		return 0;
	}
	if (!*first && jp_eat(j, ',') == -1)
		return -1;
	*first = 0;
	jp_peek(j);
	return 1;
}

static int
jp_skip(struct jp *j)
{
	const char *s, *start;
	size_t n;
	int first = 1, r, ch;

	switch ((ch = jp_peek(j))) {
	case '"':
		return jp_string(j, &s, &n);
	case '{':
	case '[':
		if (++j->depth > JSON_DEPTH)
			return -1;
		j->p++;
		if (ch == '{') {
			while ((r = jp_member(j, &first, &s, &n)) > 0)
				if (jp_skip(j) == -1)
					return -1;
		} else {
			while ((r = jp_elem(j, &first)) > 0)
				if (jp_skip(j) == -1)
					return -1;
		}
		j->depth--;
		return r;
	default:
		/* Numbers and literals, without checking their spelling. */
		start = j->p;
		while (j->p < j->end &&
		    ((*j->p >= '0' && *j->p <= '9') ||
		        (*j->p >= 'a' && *j->p <= 'z') || *j->p == '-' ||
		        *j->p == '+' || *j->p == '.' || *j->p == 'E'))
			j->p++;
		return j->p > start ? 0 : -1;
	}
}

static int
jp_true(struct jp *j)
{
	const char *s;

	jp_peek(j);
	s = j->p;
	if (jp_skip(j) == -1)
		return -1;
	return j->p - s == 4 && memcmp(s, "true", 4) == 0;
}

static int
jp_int(struct jp *j, long max, long *v)
{
	const char *s;

	jp_peek(j);
	s = j->p;
	if (jp_skip(j) == -1)
		return -1;
	*v = parse_num(s, (size_t)(j->p - s), max);
	return *v < 0 ? -1 : 0;
}

static int
keyis(const char *k, size_t klen, const char *name)
{
	return strlen(name) == klen && memcmp(k, name, klen) == 0;
}

/* A literal: 1 if it is word, 0 if it is some other value, -1 if bad. */
static int
jp_word(struct jp *j, const char *word)
{
	const char *s;

	jp_peek(j);
	s = j->p;
	if (jp_skip(j) == -1)
		return -1;
	return keyis(s, (size_t)(j->p - s), word);
}

/* An integer of at most max, or null for -1. */
static int
jp_int_or_null(struct jp *j, long max, long *v)
{
	const char *s = j->p;

	if (jp_word(j, "null") == 1) {
		*v = -1;
		return 0;
	}
	j->p = s;
	return jp_int(j, max, v);
}

/* true or 1, false or 0. */
static int
jp_bool(struct jp *j, int *v)
{
	const char *s;
	size_t n;

	jp_peek(j);
	s = j->p;
	if (jp_skip(j) == -1)
		return -1;
	n = (size_t)(j->p - s);
	if (keyis(s, n, "true") || keyis(s, n, "1"))
		*v = 1;
	else if (keyis(s, n, "false") || keyis(s, n, "0"))
		*v = 0;
	else
		return -1;
	return 0;
}

/*
 * The content of a message: a string, or (OpenAI) an array of parts
 * whose "text" strings are joined.  Anything else counts as empty.
 */
static int
chat_content(struct jp *j, struct buf *out)
{
	const char *s, *k;
	size_t n, klen;
	int first = 1, pfirst, r;

	if (jp_peek(j) == '"') {
		if (jp_string(j, &s, &n) == -1)
			return -1;
		return json_unescape(out, s, n);
	}
	if (jp_peek(j) != '[')
		return jp_skip(j);
	j->p++;
	while ((r = jp_elem(j, &first)) > 0) {
		if (jp_peek(j) != '{') {
			if (jp_skip(j) == -1)
				return -1;
			continue;
		}
		j->p++;
		pfirst = 1;
		while ((r = jp_member(j, &pfirst, &k, &klen)) > 0) {
			if (keyis(k, klen, "text") && jp_peek(j) == '"') {
				if (jp_string(j, &s, &n) == -1 ||
				    json_unescape(out, s, n) == -1)
					return -1;
			} else if (jp_skip(j) == -1)
				return -1;
		}
		if (r < 0)
			return -1;
	}
	return r;
}

/*
 * The message just read, whose role is in ch->role (empty if it had
 * none) and content in ch->content: count it, tell its role, and keep
 * its content if it is the first user message with directives.
 */
static void
chat_message_end(struct chat *ch)
{
	const struct buf *r = ch->role;
	unsigned char l = r->len > 0 ? (unsigned char)r->p[0] : '?';

	ch->messages++;
	if (!((l >= 'a' && l <= 'z') || (l >= 'A' && l <= 'Z') ||
	        (l >= '0' && l <= '9')))
		l = '?';
	if (ch->roles->len < MAX_ROLES)
		buf_putc(ch->roles, (char)l);
	if (keyis(r->p, r->len, "assistant"))
		ch->assistants++;
	else if (!ch->has_first && keyis(r->p, r->len, "user") &&
	    ch->content->len >= 5 &&
	    memmem(ch->content->p, ch->content->len, "mock:", 5) != NULL) {
		ch->first->len = 0;
		buf_add(ch->first, ch->content->p, ch->content->len);
		ch->has_first = 1;
	}
}

static int
chat_messages(struct jp *j, struct chat *ch)
{
	const char *k, *s;
	size_t klen, n;
	int first = 1, mfirst, r;

	if (jp_eat(j, '[') == -1)
		return -1;
	while ((r = jp_elem(j, &first)) > 0) {
		/* Only the last message's content is kept. */
		ch->content->len = 0;
		ch->role->len = 0;
		if (jp_peek(j) != '{') {
			if (jp_skip(j) == -1)
				return -1;
			chat_message_end(ch);
			continue;
		}
		j->p++;
		mfirst = 1;
		while ((r = jp_member(j, &mfirst, &k, &klen)) > 0) {
			if (keyis(k, klen, "content")) {
				ch->content->len = 0;
				if (chat_content(j, ch->content) == -1)
					return -1;
				ch->prompt_bytes += ch->content->len;
			} else if (keyis(k, klen, "role") &&
			    jp_peek(j) == '"') {
				if (jp_string(j, &s, &n) == -1)
					return -1;
				ch->role->len = 0;
				if (json_unescape(ch->role, s, n) == -1)
					return -1;
			} else if (jp_skip(j) == -1)
				return -1;
		}
		if (r < 0)
			return -1;
		chat_message_end(ch);
	}
	return r;
}

/* OpenAI's "stream_options": only include_usage matters. */
static int
chat_options(struct jp *j, struct chat *ch)
{
	const char *k;
	size_t klen;
	int first = 1, r;

	if (jp_peek(j) != '{')
		return jp_skip(j);
	j->p++;
	while ((r = jp_member(j, &first, &k, &klen)) > 0) {
		if (keyis(k, klen, "include_usage"))
			r = ch->include_usage = jp_true(j);
		else
			r = jp_skip(j);
		if (r == -1)
			return -1;
	}
	return r;
}

static int
chat_parse(const char *body, size_t len, struct chat *ch)
{
	struct jp j = { body, body + len, 0 };
	const char *k, *s;
	size_t klen, n;
	int first = 1, r;

	ch->model->len = 0;
	ch->content->len = 0;
	ch->first->len = 0;
	ch->role->len = 0;
	ch->roles->len = 0;
	ch->prompt_bytes = 0;
	ch->messages = ch->assistants = 0;
	ch->has_first = ch->has_model = ch->stream = ch->include_usage = 0;
	if (jp_eat(&j, '{') == -1)
		return -1;
	while ((r = jp_member(&j, &first, &k, &klen)) > 0) {
		if (keyis(k, klen, "model") && jp_peek(&j) == '"') {
			if (jp_string(&j, &s, &n) == -1)
				return -1;
			ch->model->len = 0;
			if (json_unescape(ch->model, s, n) == -1)
				return -1;
			ch->has_model = 1;
		} else if (keyis(k, klen, "messages")) {
			if (chat_messages(&j, ch) == -1)
				return -1;
		} else if (keyis(k, klen, "stream")) {
			if ((ch->stream = jp_true(&j)) == -1)
				return -1;
		} else if (keyis(k, klen, "stream_options")) {
			if (chat_options(&j, ch) == -1)
				return -1;
		} else if (jp_skip(&j) == -1)
			return -1;
	}
	return r;
}

static const struct canned *
canned_lookup(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(canned) / sizeof(canned[0]); i++)
		if (keyis(s, len, canned[i].name))
			return &canned[i];
	return NULL;
}

/* say, say2 and say3 as 0, 1 and 2; -1 for any other key. */
static int
say_index(const char *k, size_t klen)
{
	if (keyis(k, klen, "say"))
		return 0;
	if (keyis(k, klen, "say2"))
		return 1;
	if (keyis(k, klen, "say3"))
		return 2;
	return -1;
}

static const char *const say_bad[] = { "invalid base64 in mock:say",
	"invalid base64 in mock:say2", "invalid base64 in mock:say3" };

/*
 * Read the "mock:key=value" directives found in s into a.  Values that
 * do not parse are ignored, so that a typo shows as default behaviour
 * rather than as a mystery error.  An unknown error name is the
 * exception, left in a->bad for the caller to refuse: there is no
 * default dialect to fall back on, and success instead of the failure a
 * test asked for would be the mystery.  So are bad say and tool values,
 * left in a->refuse: an echo instead of the scripted reply would be one
 * too.
 */
static void
directives(const char *s, size_t len, struct asks *a)
{
	const char *end = s + len, *p, *k, *v, *t;
	size_t klen, vlen;
	long n;
	int m;

	a->delay = a->status = a->mode = -1;
	a->retry_after = a->retry_date = a->retry_after_ms = -1;
	a->fail = -1;
	a->gap = a->pieces = a->stream_error = a->estyle = a->cut = -1;
	a->usage = -1;
	a->err = NULL;
	a->bad = NULL;
	a->badlen = 0;
	a->refuse = NULL;
	a->say[0] = a->say[1] = a->say[2] = NULL;
	a->saylen[0] = a->saylen[1] = a->saylen[2] = 0;
	a->ntools = 0;
	if (len < 5)
		return;
	for (p = s; (p = memmem(p, (size_t)(end - p), "mock:", 5)) != NULL;) {
		k = p += 5;
		while (p < end && *p != '=' && *p != ' ' && *p != '\t' &&
		    *p != '\n' && *p != '\r')
			p++;
		if (p == end || *p != '=')
			continue;
		klen = (size_t)(p - k);
		v = ++p;
		while (p < end && *p != ' ' && *p != '\t' && *p != '\n' &&
		    *p != '\r')
			p++;
		vlen = (size_t)(p - v);
		if (keyis(k, klen, "delay")) {
			if ((n = parse_num(v, vlen, MAX_MS)) >= 0)
				a->delay = (int)n;
		} else if (keyis(k, klen, "status")) {
			if ((n = parse_num(v, vlen, 599)) >= 200)
				a->status = (int)n;
		} else if (keyis(k, klen, "mode")) {
			if ((m = mode_lookup(v, vlen)) >= 0)
				a->mode = m;
		} else if (keyis(k, klen, "error")) {
			if ((a->err = canned_lookup(v, vlen)) == NULL &&
			    a->bad == NULL) {
				a->bad = v;
				a->badlen = vlen;
			}
		} else if (keyis(k, klen, "retry_after")) {
			if ((n = parse_num(v, vlen, INT_MAX)) >= 0) {
				a->retry_after = (int)n;
				a->retry_date = -1;
			}
		} else if (keyis(k, klen, "retry_date")) {
			if ((n = parse_num(v, vlen, INT_MAX)) >= 0) {
				a->retry_date = (int)n;
				a->retry_after = -1;
			}
		} else if (keyis(k, klen, "retry_after_ms")) {
			if ((n = parse_num(v, vlen, INT_MAX)) >= 0)
				a->retry_after_ms = (int)n;
		} else if (keyis(k, klen, "fail")) {
			if ((n = parse_num(v, vlen, LONG_MAX / 10)) >= 0)
				a->fail = n;
		} else if (keyis(k, klen, "gap")) {
			if ((n = parse_num(v, vlen, MAX_MS)) >= 0)
				a->gap = (int)n;
		} else if (keyis(k, klen, "pieces")) {
			if ((n = parse_num(v, vlen, MAX_PIECES)) >= 1)
				a->pieces = (int)n;
		} else if (keyis(k, klen, "stream_error")) {
			if ((n = parse_num(v, vlen, INT_MAX)) >= 0)
				a->stream_error = (int)n;
		} else if (keyis(k, klen, "stream_error_style")) {
			if ((m = estyle_lookup(v, vlen)) >= 0)
				a->estyle = m;
		} else if (keyis(k, klen, "cut")) {
			if ((n = parse_num(v, vlen, INT_MAX)) >= 0)
				a->cut = (int)n;
		} else if (keyis(k, klen, "usage")) {
			if ((n = parse_num(v, vlen, 1)) >= 0)
				a->usage = (int)n;
		} else if ((m = say_index(k, klen)) >= 0) {
			if (b64_decode(NULL, v, vlen) == -1) {
				if (a->refuse == NULL)
					a->refuse = say_bad[m];
			} else {
				a->say[m] = v;
				a->saylen[m] = vlen;
			}
		} else if (keyis(k, klen, "tool")) {
			if ((t = memchr(v, ':', vlen)) == NULL) {
				if (a->refuse == NULL)
					a->refuse = "mock:tool wants "
					            "NAME:BASE64ARGS";
			} else if (a->ntools == MAX_TOOLS) {
				if (a->refuse == NULL)
					a->refuse = "too many mock:tool "
					            "(at most 4)";
			} else if (b64_decode(NULL, t + 1,
			               (size_t)(v + vlen - t - 1)) == -1) {
				if (a->refuse == NULL)
					a->refuse = "invalid base64 in "
					            "mock:tool arguments";
			} else {
				a->tool[a->ntools].name = v;
				a->tool[a->ntools].namelen = (size_t)(t - v);
				a->tool[a->ntools].args = t + 1;
				a->tool[a->ntools].argslen =
				    (size_t)(v + vlen - t - 1);
				a->ntools++;
			}
		}
	}
}

static uint64_t
fnv1a(const char *s, size_t len)
{
	uint64_t h = 14695981039346656037ULL;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

/*
 * Is this request, whose content is s, one of the first n with that
 * content, to fail as directed?  Contents are told apart by their hash
 * alone, in an open-addressed table from which nothing is evicted: once
 * it is full, a content not yet in it is not counted, so it fails every
 * time, as if its n were never reached.
 */
static int
fail_due(struct server *srv, const char *s, size_t len, long n)
{
	uint64_t h;
	struct failslot *f;
	size_t i;

	if (n == 0)
		return 0;
	h = fnv1a(s, len);
	for (i = 0; i < FAIL_SLOTS; i++) {
		f = &srv->fails[(h + i) % FAIL_SLOTS];
		if (f->count == 0) {
			f->hash = h;
			f->count = 1;
			return 1;
		}
		if (f->hash == h) {
			if (f->count >= n)
				return 0;
			f->count++;
			return 1;
		}
	}
	return 1;
}

static void
body_reset(struct body *bd)
{
	buf_clear(&bd->b);
	bd->fill_at = bd->fill_n = 0;
}

static void
body_text(struct body *bd, const struct text *t)
{
	if (t->xfill) {
		bd->fill_at = bd->b.len;
		bd->fill_n = t->xfill;
	} else
		json_escape_as(&bd->b, t->s, t->len, t->raw);
}

/* Append chunk as one chunk of a chunked transfer encoding. */
static void
body_chunk(struct body *bd, const struct body *chunk)
{
	const struct buf *cb = &chunk->b;

	buf_printf(&bd->b, "%zx\r\n", cb->len + chunk->fill_n);
	if (chunk->fill_n) {
		buf_add(&bd->b, cb->p, chunk->fill_at);
		bd->fill_at = bd->b.len;
		bd->fill_n = chunk->fill_n;
		buf_add(
		    &bd->b, cb->p + chunk->fill_at, cb->len - chunk->fill_at);
	} else
		buf_add(&bd->b, cb->p, cb->len);
	buf_puts(&bd->b, "\r\n");
}

static void
rfc3339(char *dst, size_t len)
{
	int64_t us = wall_us();
	time_t t = (time_t)(us / 1000000);
	struct tm tm;
	char s[32];

	gmtime_r(&t, &tm);
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(dst, len, "%s.%06ldZ", s, (long)(us % 1000000));
}

static void
error_body(struct body *bd, enum api api, const char *msg)
{
	if (api == API_OLLAMA)
		buf_printf(&bd->b, "{\"error\":\"%s\"}", msg);
	else
		buf_printf(&bd->b,
		    "{\"error\":{\"message\":\"%s\","
		    "\"type\":\"server_error\",\"code\":null}}",
		    msg);
}

static void
ollama_head(struct buf *b, const struct reply *rp, const char *created)
{
	buf_puts(b, "{\"model\":\"");
	json_escape(b, rp->model, rp->modellen);
	buf_printf(b,
	    "\",\"created_at\":\"%s\",\"message\":"
	    "{\"role\":\"assistant\",\"content\":\"",
	    created);
}

static void
ollama_done(struct buf *b, const struct reply *rp, size_t textlen)
{
	int64_t ns = (mono_us() - rp->t0) * 1000 + 1;

	buf_printf(b,
	    "\"done\":true,\"done_reason\":\"stop\","
	    "\"total_duration\":%lld",
	    (long long)ns);
	if (rp->usage)
		buf_printf(b, ",\"prompt_eval_count\":%zu,\"eval_count\":%zu",
		    rp->prompt_bytes / 4 + 1, textlen / 4 + 1);
	buf_putc(b, '}');
}

static void
openai_head(
    struct buf *b, const struct reply *rp, const char *object, time_t created)
{
	buf_printf(b,
	    "{\"id\":\"chatcmpl-%llu\",\"object\":\"%s\","
	    "\"created\":%lld,\"model\":\"",
	    (unsigned long long)rp->seq, object, (long long)created);
	json_escape(b, rp->model, rp->modellen);
	buf_puts(b, "\",");
}

static void
openai_usage(struct buf *b, const struct reply *rp, size_t textlen)
{
	size_t n = rp->prompt_bytes / 4 + 1, m = textlen / 4 + 1;

	buf_printf(b,
	    "\"usage\":{\"prompt_tokens\":%zu,"
	    "\"completion_tokens\":%zu,\"total_tokens\":%zu}",
	    n, m, n + m);
}

/* The name of tool call i of rp, as the inside of a JSON string. */
static void
tool_name(struct buf *b, const struct reply *rp, int i)
{
	const struct tcall *tc = &rp->tools[i];

	json_escape(b, rp->tooldata + tc->name, tc->namelen);
}

/*
 * The "tool_calls" array of rp's whole reply: OpenAI's with the
 * arguments as a string, Ollama's with them spliced in as they are.
 */
static void
tool_calls(struct buf *b, const struct reply *rp)
{
	const struct tcall *tc;
	int i;

	buf_puts(b, "\"tool_calls\":[");
	for (i = 0; i < rp->ntools; i++) {
		tc = &rp->tools[i];
		if (i > 0)
			buf_putc(b, ',');
		if (rp->api == API_OPENAI)
			buf_printf(b,
			    "{\"id\":\"call_%llu\",\"type\":\"function\",",
			    rp->tool0 + (unsigned long long)i);
		else
			buf_putc(b, '{');
		buf_puts(b, "\"function\":{\"name\":\"");
		tool_name(b, rp, i);
		buf_puts(b, "\",\"arguments\":");
		if (rp->api == API_OPENAI) {
			buf_putc(b, '"');
			json_escape_as(
			    b, rp->tooldata + tc->args, tc->argslen, 1);
			buf_putc(b, '"');
		} else
			buf_add(b, rp->tooldata + tc->args, tc->argslen);
		buf_puts(b, "}}");
	}
	buf_putc(b, ']');
}

/* A whole, non-streamed reply. */
static void
chat_body(struct body *bd, const struct reply *rp, const struct text *t)
{
	size_t textlen = (t->xfill ? t->xfill : t->len) + rp->toolbytes;
	int text = rp->hastext || t->xfill;
	char created[64];

	if (rp->api == API_OLLAMA) {
		rfc3339(created, sizeof(created));
		ollama_head(&bd->b, rp, created);
		if (text)
			body_text(bd, t);
		buf_putc(&bd->b, '"');
		if (rp->ntools > 0) {
			buf_putc(&bd->b, ',');
			tool_calls(&bd->b, rp);
		}
		buf_puts(&bd->b, "},");
		ollama_done(&bd->b, rp, textlen);
		return;
	}
	openai_head(&bd->b, rp, "chat.completion", time(NULL));
	buf_puts(&bd->b,
	    "\"choices\":[{\"index\":0,\"message\":"
	    "{\"role\":\"assistant\",\"content\":");
	if (text) {
		buf_putc(&bd->b, '"');
		body_text(bd, t);
		buf_putc(&bd->b, '"');
	} else
		buf_puts(&bd->b, "null");
	if (rp->ntools > 0) {
		buf_putc(&bd->b, ',');
		tool_calls(&bd->b, rp);
	}
	buf_printf(&bd->b, "},\"finish_reason\":\"%s\"}]",
	    rp->ntools > 0 ? "tool_calls" : "stop");
	if (rp->usage) {
		buf_putc(&bd->b, ',');
		openai_usage(&bd->b, rp, textlen);
	}
	buf_putc(&bd->b, '}');
}

static void log_line(struct server *, int64_t, const char *, const char *,
    size_t, const char *, size_t);
static void heap_push(struct server *, struct conn *);

/*
 * The end of the text piece i of n, in bytes of a text of len: cut on a
 * UTF-8 boundary, so that every piece is valid on its own.  A text with
 * fewer characters than pieces has empty ones.
 */
static size_t
piece_end(const char *s, size_t len, int i, int n)
{
	size_t at;

	if (i >= n)
		return len;
	at = len * (size_t)i / (size_t)n;
	while (at < len && ((unsigned char)s[at] & 0xc0) == 0x80)
		at++;
	return at;
}

/* The pieces the arguments of an OpenAI tool call are streamed in. */
static int
tool_pieces(const struct reply *rp, int i)
{
	return rp->tools[i].argslen >= 3 ? 3 : 2;
}

/* The records of rp's tool calls in a stream, after its text pieces. */
static int
tool_records(const struct reply *rp)
{
	int i, n = 0;

	if (rp->ntools == 0)
		return 0;
	if (rp->api == API_OLLAMA)
		return 1; /* all the calls at once */
	for (i = 0; i < rp->ntools; i++)
		n += 1 + tool_pieces(rp, i);
	return n;
}

/*
 * Append tool record k (from 0) of the stream of rp: Ollama's one record
 * of all the calls, or an OpenAI delta that names a call or carries a
 * piece of its arguments; first if it is the first record of the stream.
 */
static void
tool_record(struct buf *b, const struct reply *rp, int k, const char *created,
    int first)
{
	const struct tcall *tc;
	const char *args;
	size_t from, to;
	int i, n;

	if (rp->api == API_OLLAMA) {
		ollama_head(b, rp, created);
		buf_puts(b, "\",");
		tool_calls(b, rp);
		buf_puts(b, "},\"done\":false}\n");
		return;
	}
	for (i = 0; i < rp->ntools - 1; i++) {
		if (k < (n = 1 + tool_pieces(rp, i)))
			break;
		k -= n;
	}
	tc = &rp->tools[i];
	buf_puts(b, "data: ");
	openai_head(b, rp, "chat.completion.chunk", rp->st.created);
	buf_puts(b, "\"choices\":[{\"index\":0,\"delta\":{");
	if (k == 0) {
		if (first)
			buf_puts(b, "\"role\":\"assistant\",\"content\":null,");
		buf_printf(b,
		    "\"tool_calls\":[{\"index\":%d,\"id\":\"call_%llu\","
		    "\"type\":\"function\",\"function\":{\"name\":\"",
		    i, rp->tool0 + (unsigned long long)i);
		tool_name(b, rp, i);
		buf_puts(b, "\",\"arguments\":\"\"}}]");
	} else {
		args = rp->tooldata + tc->args;
		n = tool_pieces(rp, i);
		from = k == 1 ? 0 : piece_end(args, tc->argslen, k - 1, n);
		to = piece_end(args, tc->argslen, k, n);
		buf_printf(b,
		    "\"tool_calls\":[{\"index\":%d,\"function\":"
		    "{\"arguments\":\"",
		    i);
		json_escape_as(b, args + from, to - from, 1);
		buf_puts(b, "\"}}]");
	}
	buf_puts(b, "},\"finish_reason\":null}]}\n\n");
}

/* The records that close a stream after its text. */
static int
stream_closing(const struct reply *rp)
{
	if (rp->api == API_OLLAMA)
		return 1; /* the "done" line */
	/* The finish_reason chunk, the usage chunk if any, [DONE]. */
	return rp->include_usage && rp->usage ? 3 : 2;
}

/* Where (in text pieces) a stream_error or cut of k falls. */
static int
stream_at(const struct reply *rp, int k)
{
	return k < rp->st.pieces ? k : rp->st.pieces;
}

/* The error record of a stream, in its API's words. */
static void
stream_error_record(struct buf *b, const struct reply *rp)
{
	if (rp->api == API_OLLAMA)
		buf_puts(b,
		    "{\"error\":\"an error was encountered while running "
		    "the model: unexpected EOF\"}\n");
	else if (rp->estyle == ESTYLE_LLAMACPP)
		buf_puts(b,
		    "error: {\"code\":500,\"message\":\"an error occurred "
		    "during streaming\",\"type\":\"server_error\"}\n\n");
	else
		buf_puts(b,
		    "data: {\"error\":{\"message\":\"The server had an error "
		    "while processing your request. Sorry about that!\","
		    "\"type\":\"server_error\",\"code\":null}}\n\n");
}

/*
 * Append to bd, as one chunk, the next record of the streamed reply of
 * c: a text piece, a closing record or the error; the end of the
 * chunked body goes with the last.  Returns 1 when the stream is over,
 * with rep.st.cut set if it ends in a cut (nothing appended then).
 */
static int
stream_next(struct server *srv, struct conn *c, struct body *bd)
{
	struct reply *rp = &c->rep;
	struct stream *st = &rp->st;
	struct body *ck = &srv->chunk;
	size_t textlen =
	    (rp->mode == MODE_BIG ? BIG_BYTES : rp->textlen) + rp->toolbytes;
	size_t end;
	struct text piece;
	char created[64];
	int over = 0;

	/* A cut or an error falls before any closing record. */
	if (st->closed == 0 && rp->cut >= 0 &&
	    st->sent == stream_at(rp, rp->cut)) {
		st->cut = 1;
		return 1;
	}
	body_reset(ck);
	rfc3339(created, sizeof(created));
	if (st->closed == 0 && rp->stream_error >= 0 &&
	    st->sent == stream_at(rp, rp->stream_error)) {
		stream_error_record(&ck->b, rp);
		over = 1;
	} else if (st->sent >= rp->tpieces && st->sent < st->pieces) {
		tool_record(
		    &ck->b, rp, st->sent - rp->tpieces, created, st->sent == 0);
		st->sent++;
	} else if (st->sent < st->pieces) {
		piece.raw = rp->raw;
		if (rp->mode == MODE_BIG) {
			piece.s = NULL;
			piece.len = 0;
			piece.xfill = BIG_BYTES;
		} else {
			end = piece_end(
			    rp->text, rp->textlen, st->sent + 1, rp->tpieces);
			piece.s = rp->text + st->off;
			piece.len = end - st->off;
			piece.xfill = 0;
			st->off = end;
		}
		if (rp->api == API_OLLAMA) {
			ollama_head(&ck->b, rp, created);
			body_text(ck, &piece);
			buf_puts(&ck->b, "\"},\"done\":false}\n");
		} else {
			buf_puts(&ck->b, "data: ");
			openai_head(
			    &ck->b, rp, "chat.completion.chunk", st->created);
			buf_puts(
			    &ck->b, "\"choices\":[{\"index\":0,\"delta\":{");
			if (st->sent == 0)
				buf_puts(&ck->b, "\"role\":\"assistant\",");
			buf_puts(&ck->b, "\"content\":\"");
			body_text(ck, &piece);
			buf_puts(&ck->b, "\"},\"finish_reason\":null}]}\n\n");
		}
		st->sent++;
	} else if (rp->api == API_OLLAMA) {
		ollama_head(&ck->b, rp, created);
		buf_puts(&ck->b, "\"},");
		ollama_done(&ck->b, rp, textlen);
		buf_putc(&ck->b, '\n');
		over = ++st->closed == stream_closing(rp);
	} else {
		if (st->closed == 0) {
			buf_puts(&ck->b, "data: ");
			openai_head(
			    &ck->b, rp, "chat.completion.chunk", st->created);
			buf_printf(&ck->b,
			    "\"choices\":[{\"index\":0,\"delta\":{},"
			    "\"finish_reason\":\"%s\"}]}\n\n",
			    rp->ntools > 0 ? "tool_calls" : "stop");
		} else if (st->closed + 1 < stream_closing(rp)) {
			buf_puts(&ck->b, "data: ");
			openai_head(
			    &ck->b, rp, "chat.completion.chunk", st->created);
			buf_puts(&ck->b, "\"choices\":[],");
			openai_usage(&ck->b, rp, textlen);
			buf_puts(&ck->b, "}\n\n");
		} else
			buf_puts(&ck->b, "data: [DONE]\n\n");
		over = ++st->closed == stream_closing(rp);
	}
	body_chunk(bd, ck);
	if (over)
		buf_puts(&bd->b, "0\r\n\r\n");
	if (st->records++ == 0)
		log_line(srv, wall_us(), "first_chunk", rp->path,
		    strlen(rp->path), rp->logc, rp->logclen);
	srv->stream_chunks++;
	return over;
}

/*
 * Start the streamed reply of c, appending to bd its first record, or
 * all of them when they are not to be spaced out.  Returns 1 when the
 * stream is over.
 */
static int
stream_start(struct server *srv, struct conn *c, struct body *bd)
{
	struct reply *rp = &c->rep;
	struct stream *st = &rp->st;

	memset(st, 0, sizeof(*st));
	/* A big reply goes out as one piece: only one fill at a time. */
	if (rp->mode == MODE_BIG)
		rp->tpieces = 1;
	else
		rp->tpieces = rp->hastext ? rp->pieces : 0;
	st->pieces = rp->tpieces + tool_records(rp);
	st->created = time(NULL);
	srv->streams++;
	/* A truncated reply is half of the whole, so the whole it is. */
	if (rp->gap_ms == 0 || rp->mode == MODE_TRUNCATED) {
		while (!stream_next(srv, c, bd))
			;
		return 1;
	}
	return stream_next(srv, c, bd);
}

/* The headers that tell a client when to come back, if rp asks. */
static void
put_retry(struct buf *b, const struct reply *rp)
{
	time_t t;
	struct tm tm;
	char date[64];

	if (rp->retry_after >= 0)
		buf_printf(b, "Retry-After: %d\r\n", rp->retry_after);
	if (rp->retry_date >= 0) {
		t = time(NULL) + rp->retry_date;
		/* IMF-fixdate: the C locale's names are the ones HTTP wants. */
		if (gmtime_r(&t, &tm) != NULL &&
		    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT",
		        &tm) > 0)
			buf_printf(b, "Retry-After: %s\r\n", date);
	}
	if (rp->retry_after_ms >= 0)
		buf_printf(b, "retry-after-ms: %d\r\n", rp->retry_after_ms);
}

/*
 * Status line and headers, with those of rp's retry directives if rp is
 * not NULL.  clen < 0 means a chunked body.  An HTTP/1.0 client is told
 * about keep-alive explicitly, as it would assume close.
 */
static void
put_head(struct buf *b, int status, const char *ctype, long long clen,
    int keepalive, int http10, const struct reply *rp)
{
	buf_printf(b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n", status,
	    reason(status), ctype);
	if (clen < 0)
		buf_puts(b, "Transfer-Encoding: chunked\r\n");
	else
		buf_printf(b, "Content-Length: %lld\r\n", clen);
	if (rp != NULL)
		put_retry(b, rp);
	if (!keepalive)
		buf_puts(b, "Connection: close\r\n");
	else if (http10)
		buf_puts(b, "Connection: keep-alive\r\n");
	buf_puts(b, "\r\n");
}

/* Queue a small complete response that is not a chat reply. */
static void
reply_simple(
    struct conn *c, int status, const char *json, int keepalive, int http10)
{
	size_t n = strlen(json);

	put_head(&c->out, status, "application/json", (long long)n, keepalive,
	    http10, NULL);
	buf_add(&c->out, json, n);
	if (!keepalive)
		c->closing = 1;
}

/*
 * The request in c->rep is answered in full (or dropped by reset mode):
 * from here on it no longer counts as in flight.
 */
static void
reply_end(struct server *srv, struct conn *c)
{
	struct reply *rp = &c->rep;

	srv->inflight--;
	rp->ms->inflight--;
	rp->ms = NULL;
	if (rp->st.cut || !rp->keepalive)
		c->closing = 1;
	free(rp->model);
	free(rp->text);
	free(rp->tooldata);
	rp->model = rp->text = rp->tooldata = NULL;
}

/*
 * Queue bd behind whatever c has queued, after any 'x' fill that is not
 * all out yet.  bd may hold a fill itself only when c has none: a big
 * reply is the only one of its connection, and its first record.
 */
static void
conn_queue(struct conn *c, const struct body *bd)
{
	if (c->fill > 0 || c->tail.len > 0) {
		buf_add(&c->tail, bd->b.p, bd->b.len);
	} else if (bd->fill_n) {
		buf_add(&c->out, bd->b.p, bd->fill_at);
		c->fill = bd->fill_n;
		buf_add(
		    &c->tail, bd->b.p + bd->fill_at, bd->b.len - bd->fill_at);
	} else
		buf_add(&c->out, bd->b.p, bd->b.len);
}

/* Set c to wait for the next record of its stream, gap_ms after now. */
static void
stream_wait(struct server *srv, struct conn *c, int64_t now)
{
	c->waiting = WAIT_STREAM;
	c->deadline = now + (int64_t)c->rep.gap_ms * 1000;
	heap_push(srv, c);
}

/*
 * Queue the answer to the chat request in c->rep, whose wait (if any) is
 * over: all of it, or the head and first record of a stream whose records
 * are spaced out, the rest to follow from stream_step().
 */
static void
reply_send(struct server *srv, struct conn *c)
{
	struct reply *rp = &c->rep;
	struct body *bd = &srv->body;
	const char *ctype = "application/json";
	struct text t;
	int chunked = 0, over = 1;
	size_t half;

	if (rp->mode == MODE_RESET) {
		c->kill = c->linger0 = 1;
		reply_end(srv, c);
		return;
	}
	srv->by_status[rp->status]++;
	body_reset(bd);
	switch (rp->mode) {
	case MODE_GARBAGE:
		buf_puts(&bd->b, "this is not json{{{");
		break;
	case MODE_EMPTY:
		break;
	default:
		if (rp->err != NULL) {
			buf_puts(&bd->b, rp->err->body);
			ctype = rp->err->ctype;
			break;
		}
		if (rp->mode == MODE_ERROR || rp->status / 100 != 2) {
			error_body(bd, rp->api, "mock error");
			break;
		}
		/* These statuses must not carry a body at all. */
		if (rp->status == 204 || rp->status == 205)
			break;
		if (!rp->stream) {
			t.s = rp->text;
			t.len = rp->textlen;
			t.xfill = rp->mode == MODE_BIG ? BIG_BYTES : 0;
			t.raw = rp->raw;
			chat_body(bd, rp, &t);
			break;
		}
		chunked = 1;
		ctype = rp->api == API_OLLAMA ? "application/x-ndjson" :
		                                "text/event-stream";
		over = stream_start(srv, c, bd);
		break;
	}
	put_head(&c->out, rp->status, ctype,
	    chunked ? -1 : (long long)(bd->b.len + bd->fill_n), rp->keepalive,
	    rp->http10, rp);
	if (rp->mode == MODE_TRUNCATED) {
		/* The head promised it all; half of it then FIN. */
		half = bd->b.len / 2;
		buf_add(&c->out, bd->b.p, half);
		c->closing = 1;
	} else
		conn_queue(c, bd);
	if (over)
		reply_end(srv, c);
	else
		stream_wait(srv, c, mono_us());
}

/* The deadline of c's next stream record is here: queue the record. */
static void
stream_step(struct server *srv, struct conn *c)
{
	struct body *bd = &srv->body;

	body_reset(bd);
	if (stream_next(srv, c, bd)) {
		c->waiting = WAIT_NONE;
		conn_queue(c, bd);
		reply_end(srv, c);
		return;
	}
	conn_queue(c, bd);
	/* From the last deadline, not now: a late loop does not drift. */
	stream_wait(srv, c, c->deadline);
}

static void
log_flush(struct server *srv)
{
	size_t off = 0;
	ssize_t n;

	while (off < srv->log.len) {
		n = write(srv->logfd, srv->log.p + off, srv->log.len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			warn("could not write log");
			break;
		}
		off += (size_t)n;
	}
	srv->log.len = 0;
}

/*
 * Log "<when> <path> <content>", or with a tag "<when> <tag> <path>
 * <content>": a tag never starts with '/' as a path does, and a reader
 * of the untagged lines that splits at the first two blanks finds a
 * content starting with the path, which matches no marker.
 */
static void
log_line(struct server *srv, int64_t when, const char *tag, const char *path,
    size_t pathlen, const char *content, size_t len)
{
	struct buf *b = &srv->log;
	size_t i, start;

	if (srv->logfd == -1)
		return;
	if (b->len == 0)
		srv->log_due = mono_us() + LOG_FLUSH_US;
	buf_printf(b, "%lld ", (long long)when);
	if (tag != NULL)
		buf_printf(b, "%s ", tag);
	buf_add(b, path, pathlen);
	buf_putc(b, ' ');
	if (len > LOG_CONTENT)
		len = LOG_CONTENT;
	start = b->len;
	buf_add(b, content, len);
	/* One line, blank-separated fields: no blanks or controls inside. */
	for (i = start; i < b->len; i++)
		if ((unsigned char)b->p[i] <= ' ' || b->p[i] == 0x7f)
			b->p[i] = '_';
	buf_putc(b, '\n');
	if (b->len >= LOG_HIGH)
		log_flush(srv);
}

static void
log_request(struct server *srv, int64_t when, const struct req *rq,
    const char *content, size_t len)
{
	log_line(srv, when, NULL, rq->path, rq->pathlen, content, len);
}

static void
heap_swap(struct server *srv, size_t a, size_t b)
{
	struct conn *t = srv->heap[a];

	srv->heap[a] = srv->heap[b];
	srv->heap[b] = t;
	srv->heap[a]->heapidx = a;
	srv->heap[b]->heapidx = b;
}

static void
heap_up(struct server *srv, size_t i)
{
	size_t parent;

	while (i > 0) {
		parent = (i - 1) / 2;
		if (srv->heap[parent]->deadline <= srv->heap[i]->deadline)
			break;
		heap_swap(srv, i, parent);
		i = parent;
	}
}

static void
heap_down(struct server *srv, size_t i)
{
	size_t l, r, m;

	for (;;) {
		l = 2 * i + 1;
		r = l + 1;
		m = i;
		if (l < srv->nheap &&
		    srv->heap[l]->deadline < srv->heap[m]->deadline)
			m = l;
		if (r < srv->nheap &&
		    srv->heap[r]->deadline < srv->heap[m]->deadline)
			m = r;
		if (m == i)
			break;
		heap_swap(srv, i, m);
		i = m;
	}
}

static void
heap_push(struct server *srv, struct conn *c)
{
	if (srv->nheap == srv->heapcap) {
		srv->heapcap = srv->heapcap ? srv->heapcap * 2 : 64;
		srv->heap =
		    xrealloc(srv->heap, srv->heapcap * sizeof(*srv->heap));
	}
	srv->heap[srv->nheap] = c;
	c->heapidx = srv->nheap++;
	heap_up(srv, c->heapidx);
}

static void
heap_remove(struct server *srv, struct conn *c)
{
	size_t i = c->heapidx;

	if (i != --srv->nheap) {
		srv->heap[i] = srv->heap[srv->nheap];
		srv->heap[i]->heapidx = i;
		heap_down(srv, i);
		heap_up(srv, i);
	}
}

/*
 * The counters of the model named name: found, or made, or those of
 * OTHER when the name is too long or the table is full.  No name but
 * OTHER takes the last slot, so OTHER always finds room.
 */
static struct mstat *
model_stat(struct server *srv, const char *name, size_t len)
{
	struct mstat *ms;
	int i;

	if (len == 0)
		name = ""; /* may be NULL */
	else if (len > MODEL_NAME) {
		name = OTHER;
		len = strlen(OTHER);
	}
	for (i = 0; i < srv->nmodels; i++) {
		ms = &srv->models[i];
		if (ms->namelen == len && memcmp(ms->name, name, len) == 0)
			return ms;
	}
	if (srv->nmodels >= MAX_MODELS && !keyis(name, len, OTHER))
		return model_stat(srv, OTHER, strlen(OTHER));
	ms = &srv->models[srv->nmodels++];
	memcpy(ms->name, name, len);
	ms->namelen = len;
	return ms;
}

/* Count a chat request of model ms in flight. */
static void
model_start(struct mstat *ms)
{
	ms->requests++;
	if (++ms->inflight > ms->max_inflight)
		ms->max_inflight = ms->inflight;
}

/*
 * Answer at once with a 400 a chat request counted in flight under ms,
 * which it no longer is.  msg must be fit to stand in a JSON string.
 */
static void
chat_refuse(struct server *srv, struct conn *c, const struct req *rq,
    enum api api, struct mstat *ms, const char *msg)
{
	ms->inflight--;
	srv->inflight--;
	srv->by_status[400]++;
	body_reset(&srv->body);
	error_body(&srv->body, api, msg);
	buf_putc(&srv->body.b, '\0');
	reply_simple(c, 400, srv->body.b.p, rq->keepalive, rq->http10);
}

/* Refuse the request whose unknown error name a holds, naming it. */
static void
chat_bad_error(struct server *srv, struct conn *c, const struct req *rq,
    enum api api, const struct asks *a)
{
	struct buf *b = &srv->misc;
	size_t i;

	b->len = 0;
	buf_puts(b, "unknown mock:error '");
	json_escape(b, a->bad, a->badlen > 64 ? 64 : a->badlen);
	buf_puts(b, "' (known:");
	for (i = 0; i < sizeof(canned) / sizeof(canned[0]); i++)
		buf_printf(b, " %s", canned[i].name);
	buf_puts(b, ")");
	buf_putc(b, '\0');
	chat_refuse(srv, c, rq, api, c->rep.ms, b->p);
	c->rep.ms = NULL;
}

/* Give back what a big request made the scratch buffers of ch take. */
static void
chat_clear(struct chat *ch)
{
	buf_clear(ch->model);
	buf_clear(ch->content);
	buf_clear(ch->first);
	buf_clear(ch->role);
}

/*
 * Decode base64 that a directive found valid into a new allocation of
 * its own, returned with its length in *len.
 */
static char *
b64_dup(const char *s, size_t len, size_t *outlen)
{
	struct buf b;

	b.cap = len / 4 * 3 + 3;
	b.p = xmalloc(b.cap);
	b.len = 0;
	b64_decode(&b, s, len);
	*outlen = b.len;
	return b.p;
}

/*
 * Set the text and tool calls of rp as a and the conversation ch ask:
 * the said text of the round if there is one, else the echo unless there
 * are tool calls.
 */
static void
reply_text(struct server *srv, struct reply *rp, const struct chat *ch,
    const struct asks *a)
{
	struct buf td;
	size_t cap = 0;
	int i;

	for (i = ch->assistants < 2 ? (int)ch->assistants : 2; i >= 0; i--)
		if (a->say[i] != NULL)
			break;
	rp->raw = i >= 0;
	rp->hastext = i >= 0 || a->ntools == 0;
	if (i >= 0) {
		rp->text = b64_dup(a->say[i], a->saylen[i], &rp->textlen);
	} else if (a->ntools == 0) {
		rp->textlen = 6 + ch->content->len;
		rp->text = xmalloc(rp->textlen + 1);
		memcpy(rp->text, "echo: ", 6);
		if (ch->content->len)
			memcpy(rp->text + 6, ch->content->p, ch->content->len);
	} else {
		rp->textlen = 0;
		rp->text = xmalloc(1);
	}
	rp->logclen =
	    ch->content->len < LOG_CONTENT ? ch->content->len : LOG_CONTENT;
	if (rp->logclen)
		memcpy(rp->logc, ch->content->p, rp->logclen);

	rp->ntools = a->ntools;
	rp->toolbytes = 0;
	rp->tooldata = NULL;
	if (a->ntools == 0)
		return;
	for (i = 0; i < a->ntools; i++)
		cap += a->tool[i].namelen + a->tool[i].argslen / 4 * 3 + 3;
	td.p = xmalloc(cap);
	td.cap = cap;
	td.len = 0;
	for (i = 0; i < a->ntools; i++) {
		rp->tools[i].name = td.len;
		rp->tools[i].namelen = a->tool[i].namelen;
		buf_add(&td, a->tool[i].name, a->tool[i].namelen);
		rp->tools[i].args = td.len;
		b64_decode(&td, a->tool[i].args, a->tool[i].argslen);
		rp->tools[i].argslen = td.len - rp->tools[i].args;
	}
	rp->tooldata = td.p;
	rp->toolbytes = td.len;
	rp->tool0 = srv->tool_calls + 1;
	srv->tool_calls += (unsigned long long)a->ntools;
}

/* A chat request on route path, a string that outlives the request. */
static void
handle_chat(struct server *srv, struct conn *c, const struct req *rq,
    enum api api, const char *path)
{
	struct reply *rp = &c->rep;
	struct config cf = srv->cfg;
	struct mstat *ms;
	struct chat ch;
	struct asks a;
	int64_t when = wall_us();
	const char *src;
	size_t srclen;
	int delay;

	srv->requests++;
	if (++srv->inflight > srv->max_inflight)
		srv->max_inflight = srv->inflight;
	srv->last_full = rq->bodylen;
	srv->last_len = rq->bodylen < LAST_BODY ? rq->bodylen : LAST_BODY;
	if (srv->last_len)
		memcpy(srv->last_body, rq->body, srv->last_len);
	ch.model = &srv->model;
	ch.content = &srv->content;
	ch.first = &srv->first;
	ch.role = &srv->role;
	ch.roles = &srv->last_roles;
	if (chat_parse(rq->body, rq->bodylen, &ch) == -1) {
		srv->last_messages = 0;
		srv->last_roles.len = 0;
		chat_clear(&ch);
		log_request(srv, when, rq, "", 0);
		/* Counted and dropped at once, under no model. */
		ms = model_stat(srv, "", 0);
		model_start(ms);
		chat_refuse(srv, c, rq, api, ms, "invalid request body");
		return;
	}
	srv->last_messages = ch.messages;
	log_request(srv, when, rq, ch.content->p, ch.content->len);
	rp->ms = model_stat(srv, ch.model->p, ch.has_model ? ch.model->len : 0);
	model_start(rp->ms);
	/* The last message's directives, or those of the first user's. */
	src = ch.content->p;
	srclen = ch.content->len;
	if (ch.has_first &&
	    (srclen < 5 || memmem(src, srclen, "mock:", 5) == NULL)) {
		src = ch.first->p;
		srclen = ch.first->len;
	}
	directives(src, srclen, &a);
	if (a.bad != NULL || a.refuse != NULL) {
		if (a.bad != NULL)
			chat_bad_error(srv, c, rq, api, &a);
		else {
			chat_refuse(srv, c, rq, api, rp->ms, a.refuse);
			rp->ms = NULL;
		}
		chat_clear(&ch);
		return;
	}

	rp->api = api;
	rp->mode = a.mode >= 0 ? a.mode : srv->cfg.mode;
	if (a.status >= 0)
		rp->status = a.status;
	else
		rp->status = a.err != NULL ? a.err->status : srv->cfg.status;
	rp->err = a.err;
	rp->retry_after = a.retry_after;
	rp->retry_date = a.retry_date;
	rp->retry_after_ms = a.retry_after_ms;
	if (a.fail >= 0 && !fail_due(srv, src, srclen, a.fail)) {
		/* Its failures are spent: a plain success from now on. */
		rp->mode = MODE_NORMAL;
		rp->status = 200;
		rp->err = NULL;
		rp->retry_after = rp->retry_date = rp->retry_after_ms = -1;
		a.stream_error = a.cut = -1;
		cf.stream_error = cf.cut = -1;
	}
	rp->stream = ch.stream;
	rp->include_usage = ch.include_usage;
	rp->usage = a.usage >= 0 ? a.usage : cf.usage;
	rp->gap_ms = a.gap >= 0 ? a.gap : cf.gap_ms;
	rp->pieces = a.pieces >= 0 ? a.pieces : cf.pieces;
	rp->stream_error =
	    a.stream_error >= 0 ? a.stream_error : cf.stream_error;
	rp->estyle = a.estyle >= 0 ? a.estyle : cf.estyle;
	rp->cut = a.cut >= 0 ? a.cut : cf.cut;
	rp->path = path;
	memset(&rp->st, 0, sizeof(rp->st));
	rp->keepalive = rq->keepalive;
	rp->http10 = rq->http10;
	rp->seq = ++srv->seq;
	rp->t0 = mono_us();
	rp->prompt_bytes = ch.prompt_bytes;
	if ((delay = a.delay) < 0) {
		delay = srv->cfg.delay_ms;
		if (srv->cfg.jitter_ms > 0)
			delay += (int)(rng_next(srv) %
			    ((uint64_t)srv->cfg.jitter_ms + 1));
	}
	if (!ch.has_model)
		buf_puts(ch.model, "mock");
	rp->modellen = ch.model->len;
	rp->model = xmalloc(rp->modellen + 1);
	memcpy(rp->model, ch.model->p, rp->modellen);
	reply_text(srv, rp, &ch, &a);
	chat_clear(&ch);

	if (rp->mode == MODE_HANG) {
		c->waiting = WAIT_HANG;
	} else if (delay > 0) {
		c->waiting = WAIT_TIMER;
		c->deadline = rp->t0 + (int64_t)delay * 1000;
		heap_push(srv, c);
	} else
		reply_send(srv, c);
}

static void
handle_stats(struct server *srv, struct conn *c, const struct req *rq)
{
	struct buf *b = &srv->misc;
	struct mstat *ms;
	int i, first = 1;

	b->len = 0;
	/* Before the totals: tests take a field's last match on the line. */
	buf_puts(b, "{\"models\":{");
	for (i = 0; i < srv->nmodels; i++) {
		ms = &srv->models[i];
		buf_puts(b, i ? ",\"" : "\"");
		json_escape(b, ms->name, ms->namelen);
		buf_printf(b,
		    "\":{\"requests\":%llu,\"inflight\":%ld,"
		    "\"max_inflight\":%ld}",
		    (unsigned long long)ms->requests, ms->inflight,
		    ms->max_inflight);
	}
	buf_printf(b,
	    "},\"requests\":%llu,\"inflight\":%ld,"
	    "\"max_inflight\":%ld,\"by_status\":{",
	    (unsigned long long)srv->requests, srv->inflight,
	    srv->max_inflight);
	for (i = 0; i < 600; i++) {
		if (srv->by_status[i] == 0)
			continue;
		buf_printf(b, "%s\"%d\":%llu", first ? "" : ",", i,
		    (unsigned long long)srv->by_status[i]);
		first = 0;
	}
	buf_printf(b,
	    "},\"connections\":%ld,\"streams\":%llu,"
	    "\"stream_chunks\":%llu,\"last_messages\":%ld,"
	    "\"last_roles\":\"",
	    srv->connections, (unsigned long long)srv->streams,
	    (unsigned long long)srv->stream_chunks, srv->last_messages);
	/* Letters, digits and '?' only: nothing to escape. */
	buf_add(b, srv->last_roles.p, srv->last_roles.len);
	buf_puts(b, "\"}");
	buf_putc(b, '\0');
	reply_simple(c, 200, b->p, rq->keepalive, rq->http10);
}

/* The start of the last chat request's body, as it came. */
static void
handle_last(struct server *srv, struct conn *c, const struct req *rq)
{
	put_head(&c->out, 200, "application/json", (long long)srv->last_len,
	    rq->keepalive, rq->http10, NULL);
	/* put_head ended the head: reopen it for one more field. */
	c->out.len -= 2;
	buf_printf(&c->out, "X-Mock-Body-Length: %zu\r\n\r\n", srv->last_full);
	buf_add(&c->out, srv->last_body, srv->last_len);
	if (!rq->keepalive)
		c->closing = 1;
}

static void
handle_reset(struct server *srv, struct conn *c, const struct req *rq)
{
	int i;

	srv->requests = 0;
	srv->streams = srv->stream_chunks = 0;
	srv->max_inflight = srv->inflight;
	for (i = 0; i < srv->nmodels; i++) {
		srv->models[i].requests = 0;
		srv->models[i].max_inflight = srv->models[i].inflight;
	}
	memset(srv->by_status, 0, sizeof(srv->by_status));
	memset(srv->fails, 0, sizeof(srv->fails));
	srv->last_messages = 0;
	srv->last_roles.len = 0;
	srv->last_len = srv->last_full = 0;
	reply_simple(c, 200, "{\"ok\":true}", rq->keepalive, rq->http10);
}

/* Change the defaults; all or nothing, so a bad field changes none. */
static void
handle_config(struct server *srv, struct conn *c, const struct req *rq)
{
	struct jp j = { rq->body, rq->body + rq->bodylen, 0 };
	struct config cf = srv->cfg;
	const char *k, *s;
	size_t klen, n;
	int first = 1, r = -1;
	long v;

	if (jp_eat(&j, '{') == -1)
		goto bad;
	while ((r = jp_member(&j, &first, &k, &klen)) > 0) {
		if (keyis(k, klen, "delay_ms")) {
			if (jp_int(&j, MAX_MS, &v) == -1)
				goto bad;
			cf.delay_ms = (int)v;
		} else if (keyis(k, klen, "jitter_ms")) {
			if (jp_int(&j, MAX_MS, &v) == -1)
				goto bad;
			cf.jitter_ms = (int)v;
		} else if (keyis(k, klen, "status")) {
			if (jp_int(&j, 599, &v) == -1 || v < 200)
				goto bad;
			cf.status = (int)v;
		} else if (keyis(k, klen, "mode")) {
			if (jp_string(&j, &s, &n) == -1 ||
			    (cf.mode = mode_lookup(s, n)) == -1)
				goto bad;
		} else if (keyis(k, klen, "gap_ms")) {
			if (jp_int(&j, MAX_MS, &v) == -1)
				goto bad;
			cf.gap_ms = (int)v;
		} else if (keyis(k, klen, "pieces")) {
			if (jp_int(&j, MAX_PIECES, &v) == -1 || v < 1)
				goto bad;
			cf.pieces = (int)v;
		} else if (keyis(k, klen, "stream_error")) {
			if (jp_int_or_null(&j, INT_MAX, &v) == -1)
				goto bad;
			cf.stream_error = (int)v;
		} else if (keyis(k, klen, "stream_error_style")) {
			if (jp_string(&j, &s, &n) == -1 ||
			    (cf.estyle = estyle_lookup(s, n)) == -1)
				goto bad;
		} else if (keyis(k, klen, "cut")) {
			if (jp_int_or_null(&j, INT_MAX, &v) == -1)
				goto bad;
			cf.cut = (int)v;
		} else if (keyis(k, klen, "usage")) {
			if (jp_bool(&j, &cf.usage) == -1)
				goto bad;
		} else if (jp_skip(&j) == -1)
			goto bad;
	}
	if (r < 0)
		goto bad;
	srv->cfg = cf;
	reply_simple(c, 200, "{\"ok\":true}", rq->keepalive, rq->http10);
	return;
bad:
	reply_simple(
	    c, 400, "{\"error\":\"bad config\"}", rq->keepalive, rq->http10);
}

static int
routeis(const struct req *rq, const char *method, const char *path)
{
	return keyis(rq->method, rq->methodlen, method) &&
	    keyis(rq->path, rq->pathlen, path);
}

static void
handle(struct server *srv, struct conn *c, const struct req *rq)
{
	if (routeis(rq, "POST", "/api/chat"))
		handle_chat(srv, c, rq, API_OLLAMA, "/api/chat");
	else if (routeis(rq, "POST", "/v1/chat/completions"))
		handle_chat(srv, c, rq, API_OPENAI, "/v1/chat/completions");
	else if (routeis(rq, "POST", "/chat/completions"))
		handle_chat(srv, c, rq, API_OPENAI, "/chat/completions");
	else if (routeis(rq, "GET", "/_mock/stats"))
		handle_stats(srv, c, rq);
	else if (routeis(rq, "GET", "/_mock/last"))
		handle_last(srv, c, rq);
	else if (routeis(rq, "POST", "/_mock/reset"))
		handle_reset(srv, c, rq);
	else if (routeis(rq, "POST", "/_mock/config"))
		handle_config(srv, c, rq);
	else
		reply_simple(c, 404, "{\"error\":\"not found\"}", rq->keepalive,
		    rq->http10);
}

/* Does the comma-separated header value v contain token tok? */
static int
has_token(const char *v, size_t len, const char *tok)
{
	const char *end = v + len, *s;
	size_t n = strlen(tok), l;

	while (v < end) {
		while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
			v++;
		s = v;
		while (v < end && *v != ',')
			v++;
		l = (size_t)(v - s);
		while (l > 0 && (s[l - 1] == ' ' || s[l - 1] == '\t'))
			l--;
		if (l == n && strncasecmp(s, tok, n) == 0)
			return 1;
	}
	return 0;
}

/*
 * Walk a chunked body at p: 1 when complete, with *rawlen its encoded
 * size, 0 when more is needed, or a negative HTTP status.  With out,
 * the decoded bytes are appended to it.
 */
static int
chunk_scan(const char *p, size_t len, struct buf *out, size_t *rawlen)
{
	const char *s = p, *end = p + len, *eol, *q;
	size_t total = 0, n;
	int d, empty;

	for (;;) {
		if ((eol = memchr(s, '\n', (size_t)(end - s))) == NULL)
			return end - s > 1024 ? -400 : 0;
		n = 0;
		for (q = s; q < eol; q++) {
			if (*q >= '0' && *q <= '9')
				d = *q - '0';
			else if (*q >= 'a' && *q <= 'f')
				d = *q - 'a' + 10;
			else if (*q >= 'A' && *q <= 'F')
				d = *q - 'A' + 10;
			else
				break;
			n = n * 16 + (size_t)d;
			if (n > MAX_BODY)
				return -413;
		}
		if (q == s)
			return -400;
		s = eol + 1;
		if (n == 0)
			break;
		if (n > MAX_BODY - total)
			return -413;
		if ((size_t)(end - s) < n)
			return 0;
		if (out != NULL)
			buf_add(out, s, n);
		s += n;
		total += n;
		if (s < end && *s == '\r')
			s++;
		if (s == end)
			return 0;
		if (*s++ != '\n')
			return -400;
	}
	/* Trailer fields, up to an empty line. */
	for (;;) {
		if ((eol = memchr(s, '\n', (size_t)(end - s))) == NULL)
			return end - s > MAX_HEAD ? -431 : 0;
		empty = eol == s || (eol == s + 1 && *s == '\r');
		s = eol + 1;
		if (empty)
			break;
	}
	*rawlen = (size_t)(s - p);
	return 1;
}

/*
 * Parse the request at buf: 1 when it is complete, 0 when more is
 * needed (rq->headdone tells whether the head is in), or a negative
 * HTTP status when it is bad.
 */
static int
req_parse(const char *buf, size_t len, struct req *rq, struct buf *dechunk)
{
	const char *p = buf, *end = buf + len, *eol, *le, *sp, *colon, *v;
	size_t hdrlen, raw, vlen, nlen;
	long long cl;
	int r;

	memset(rq, 0, sizeof(*rq));
	/* Stray line ends between requests are to be ignored. */
	while (p < end && (*p == '\r' || *p == '\n'))
		p++;
	if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
		return len > MAX_HEAD ? -431 : 0;
	le = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
	rq->method = p;
	if ((sp = memchr(p, ' ', (size_t)(le - p))) == NULL)
		return -400;
	rq->methodlen = (size_t)(sp - p);
	rq->path = p = sp + 1;
	if ((sp = memchr(p, ' ', (size_t)(le - p))) == NULL)
		return -400;
	rq->pathlen = (size_t)(sp - p);
	if ((v = memchr(p, '?', rq->pathlen)) != NULL)
		rq->pathlen = (size_t)(v - p);
	p = sp + 1;
	if (keyis(p, (size_t)(le - p), "HTTP/1.1"))
		rq->keepalive = 1;
	else if (keyis(p, (size_t)(le - p), "HTTP/1.0"))
		rq->http10 = 1;
	else
		return -400;

	cl = -1;
	for (p = eol + 1;; p = eol + 1) {
		if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
			return len > MAX_HEAD ? -431 : 0;
		le = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
		if (le == p)
			break;
		if ((colon = memchr(p, ':', (size_t)(le - p))) == NULL)
			return -400;
		nlen = (size_t)(colon - p);
		for (v = colon + 1; v < le && (*v == ' ' || *v == '\t'); v++)
			;
		vlen = (size_t)(le - v);
		while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
			vlen--;
		if (nlen == 14 && strncasecmp(p, "content-length", 14) == 0) {
			long n = parse_clen(v, vlen);

			if (n < 0 || (cl >= 0 && cl != n))
				return -400;
			cl = n;
		} else if (nlen == 17 &&
		    strncasecmp(p, "transfer-encoding", 17) == 0) {
			if (!has_token(v, vlen, "chunked"))
				return -501;
			rq->chunked = 1;
		} else if (nlen == 10 &&
		    strncasecmp(p, "connection", 10) == 0) {
			if (has_token(v, vlen, "close"))
				rq->keepalive = 0;
			else if (has_token(v, vlen, "keep-alive"))
				rq->keepalive = 1;
		} else if (nlen == 6 && strncasecmp(p, "expect", 6) == 0) {
			if (has_token(v, vlen, "100-continue"))
				rq->expect = 1;
		}
	}
	p = eol + 1;
	hdrlen = (size_t)(p - buf);
	if (hdrlen > MAX_HEAD)
		return -431;
	rq->headdone = 1;
	if (rq->chunked) {
		if ((r = chunk_scan(p, (size_t)(end - p), NULL, &raw)) != 1)
			return r;
		dechunk->len = 0;
		chunk_scan(p, (size_t)(end - p), dechunk, &raw);
		rq->body = dechunk->p ? dechunk->p : p;
		rq->bodylen = dechunk->len;
		rq->total = hdrlen + raw;
		return 1;
	}
	rq->clen = cl < 0 ? 0 : (size_t)cl;
	if (rq->clen > MAX_BODY)
		return -413;
	if ((size_t)(end - p) < rq->clen)
		return 0;
	rq->body = p;
	rq->bodylen = rq->clen;
	rq->total = hdrlen + rq->clen;
	return 1;
}

static size_t
out_pending(const struct conn *c)
{
	return c->out.len - c->outoff + c->fill + c->tail.len;
}

/* Answer the complete requests in c->in, as far as the invariants let. */
static void
conn_input(struct server *srv, struct conn *c)
{
	struct req rq;
	size_t avail;
	int r;

	while (c->waiting == WAIT_NONE && !c->closing && !c->kill &&
	    c->fill == 0 && c->tail.len == 0 &&
	    c->out.len - c->outoff < OUT_HIGH &&
	    (avail = c->in.len - c->inoff) > 0) {
		r = req_parse(c->in.p + c->inoff, avail, &rq, &srv->dechunk);
		if (r == 0 && avail >= IN_LIMIT)
			r = -413;
		if (r == 0) {
			if (rq.headdone && rq.expect && !c->sent_continue) {
				buf_puts(
				    &c->out, "HTTP/1.1 100 Continue\r\n\r\n");
				c->sent_continue = 1;
			}
			break;
		}
		if (r < 0) {
			/* The stream cannot be resynchronized: close. */
			reply_simple(c, -r,
			    -r == 413 ? "{\"error\":\"request too large\"}" :
			                "{\"error\":\"bad request\"}",
			    0, 0);
			break;
		}
		c->sent_continue = 0;
		handle(srv, c, &rq);
		c->inoff += rq.total;
		buf_clear(&srv->dechunk);
	}
	if (c->inoff == c->in.len) {
		c->inoff = 0;
		buf_clear(&c->in);
	} else if (c->inoff > 0) {
		memmove(c->in.p, c->in.p + c->inoff, c->in.len - c->inoff);
		c->in.len -= c->inoff;
		c->inoff = 0;
	}
}

static void
conn_read(struct conn *c, int drain)
{
	size_t room;
	ssize_t n;

	while (c->in.len < IN_LIMIT) {
		buf_reserve(&c->in, READ_ROOM);
		room = c->in.cap - c->in.len;
		n = read(c->fd, c->in.p + c->in.len, room);
		if (n > 0) {
			c->in.len += (size_t)n;
			/* A short read drained the socket. */
			if ((size_t)n < room && !drain)
				break;
		} else if (n == 0) {
			c->eof = 1;
			break;
		} else if (errno == EINTR) {
			continue;
		} else {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				c->kill = 1;
			break;
		}
	}
}

static void
conn_flush(struct server *srv, struct conn *c)
{
	struct buf t;
	ssize_t n;

	for (;;) {
		if (c->outoff < c->out.len) {
			n = send(c->fd, c->out.p + c->outoff,
			    c->out.len - c->outoff, MSG_NOSIGNAL);
		} else if (c->fill > 0) {
			n = send(c->fd, srv->xblock,
			    c->fill < XBLOCK ? c->fill : XBLOCK, MSG_NOSIGNAL);
		} else if (c->tail.len > 0) {
			t = c->out;
			c->out = c->tail;
			c->tail = t;
			c->tail.len = 0;
			c->outoff = 0;
			continue;
		} else
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				c->kill = 1;
			return;
		}
		if (c->outoff < c->out.len) {
			c->outoff += (size_t)n;
			if (c->outoff == c->out.len) {
				c->outoff = 0;
				buf_clear(&c->out);
			}
		} else
			c->fill -= (size_t)n;
	}
}

static void
conn_new(struct server *srv, int fd)
{
	struct epoll_event ev;
	struct conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		errx(1, "out of memory (%zu bytes)", sizeof(*c));
	c->fd = fd;
	c->events = EPOLLIN | EPOLLRDHUP;
	ev.events = c->events;
	ev.data.ptr = c;
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
		warn("could not watch connection");
		close(fd);
		free(c);
		return;
	}
	c->next = srv->conns;
	if (c->next)
		c->next->prev = c;
	srv->conns = c;
	srv->connections++;
}

static void
conn_free(struct server *srv, struct conn *c)
{
	struct linger lg = { 1, 0 };

	if (c->waiting != WAIT_NONE) {
		/* A request dropped unanswered is in flight no more. */
		srv->inflight--;
		c->rep.ms->inflight--;
		if (c->waiting != WAIT_HANG)
			heap_remove(srv, c);
	}
	if (c->linger0 &&
	    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) == -1)
		warn("could not set SO_LINGER");
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	buf_free(&c->in);
	buf_free(&c->out);
	buf_free(&c->tail);
	free(c->rep.model);
	free(c->rep.text);
	free(c->rep.tooldata);
	free(c);
	srv->connections--;
}

/*
 * After anything happened to c: answer what can be answered, send what
 * can be sent, then close c or set its epoll interest to match its state.
 */
static void
conn_run(struct server *srv, struct conn *c)
{
	struct epoll_event ev;
	uint32_t want = 0;

	if (!c->kill)
		conn_input(srv, c);
	if (!c->kill)
		conn_flush(srv, c);
	if (c->kill || (c->eof && c->waiting != WAIT_NONE) ||
	    (out_pending(c) == 0 && (c->closing || c->eof))) {
		conn_free(srv, c);
		return;
	}
	if (!c->eof && !c->closing && c->in.len < IN_LIMIT)
		want |= EPOLLIN;
	if (!c->eof)
		want |= EPOLLRDHUP;
	if (out_pending(c) > 0)
		want |= EPOLLOUT;
	if (want != c->events) {
		ev.events = want;
		ev.data.ptr = c;
		if (epoll_ctl(srv->epfd, EPOLL_CTL_MOD, c->fd, &ev) == -1) {
			warn("could not watch connection");
			conn_free(srv, c);
			return;
		}
		c->events = want;
	}
}

static void
conn_event(struct server *srv, struct conn *c, uint32_t ev)
{
	if (ev & EPOLLERR) {
		c->kill = 1;
	} else {
		if (ev & EPOLLIN)
			conn_read(c, (ev & (EPOLLRDHUP | EPOLLHUP)) != 0);
		/* A hang-up we are not reading towards: take it as EOF. */
		if ((ev & (EPOLLRDHUP | EPOLLHUP)) && !(c->events & EPOLLIN))
			c->eof = 1;
	}
	conn_run(srv, c);
}

static void
do_accept(struct server *srv)
{
	struct epoll_event ev;
	int fd, one = 1;

	for (;;) {
		fd =
		    accept4(srv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			warn("could not accept");
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* Level-triggered: pause, or spin. */
				ev.events = 0;
				ev.data.ptr = &srv->lfd;
				epoll_ctl(
				    srv->epfd, EPOLL_CTL_MOD, srv->lfd, &ev);
				srv->accept_paused = 1;
				srv->accept_resume =
				    mono_us() + ACCEPT_PAUSE_US;
			}
			return;
		}
		if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		        sizeof(one)) == -1 &&
		    errno != EOPNOTSUPP)
			warn("could not set TCP_NODELAY");
		conn_new(srv, fd);
	}
}

static void
run_timers(struct server *srv)
{
	int64_t now = mono_us();
	struct conn *c;

	while (srv->nheap > 0 && srv->heap[0]->deadline <= now) {
		c = srv->heap[0];
		heap_remove(srv, c);
		if (c->waiting == WAIT_STREAM)
			stream_step(srv, c);
		else {
			c->waiting = WAIT_NONE;
			reply_send(srv, c);
		}
		conn_run(srv, c);
	}
}

static int
loop_timeout(struct server *srv)
{
	int64_t now = mono_us(), due = INT64_MAX, ms;

	if (srv->nheap > 0)
		due = srv->heap[0]->deadline;
	if (srv->log.len > 0 && srv->log_due < due)
		due = srv->log_due;
	if (srv->accept_paused && srv->accept_resume < due)
		due = srv->accept_resume;
	if (due == INT64_MAX)
		return -1;
	if (due <= now)
		return 0;
	ms = (due - now + 999) / 1000;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

static void
on_signal(struct server *srv)
{
	struct signalfd_siginfo si;

	while (read(srv->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			srv->stop = 1;
}

static void
serve(struct server *srv)
{
	struct epoll_event evs[MAX_EVENTS], ev;
	int i, n;

	while (!srv->stop) {
		n = epoll_wait(srv->epfd, evs, MAX_EVENTS, loop_timeout(srv));
		if (n == -1) {
			if (errno == EINTR)
				continue;
			err(1, "epoll_wait");
		}
		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr == &srv->lfd)
				do_accept(srv);
			else if (evs[i].data.ptr == &srv->sfd)
				on_signal(srv);
			else
				conn_event(srv, evs[i].data.ptr, evs[i].events);
		}
		run_timers(srv);
		if (srv->log.len > 0 && mono_us() >= srv->log_due)
			log_flush(srv);
		if (srv->accept_paused && mono_us() >= srv->accept_resume) {
			ev.events = EPOLLIN;
			ev.data.ptr = &srv->lfd;
			if (epoll_ctl(
			        srv->epfd, EPOLL_CTL_MOD, srv->lfd, &ev) == 0)
				srv->accept_paused = 0;
		}
	}
}

/* Write s to path through a temporary name, so no reader sees half. */
static void
write_file(const char *path, const char *s)
{
	struct buf tmp = { NULL, 0, 0 };
	size_t len = strlen(s);
	int fd;

	buf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid());
	fd = open(tmp.p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1)
		err(1, "could not open \"%s\"", tmp.p);
	if (write(fd, s, len) != (ssize_t)len)
		err(1, "could not write \"%s\"", tmp.p);
	if (close(fd) == -1)
		err(1, "could not write \"%s\"", tmp.p);
	if (rename(tmp.p, path) == -1)
		err(1, "could not rename \"%s\" to \"%s\"", tmp.p, path);
	buf_free(&tmp);
}

static int
listen_on(const char *addr, int port)
{
	struct addrinfo hints, *res;
	char host[256], serv[16];
	size_t len = strlen(addr);
	int fd, one = 1, e;

	/* Accept "[::1]" as well as "::1". */
	if (len >= 2 && addr[0] == '[' && addr[len - 1] == ']') {
		addr++;
		len -= 2;
	}
	if (len >= sizeof(host))
		errx(1, "address too long: \"%s\"", addr);
	memcpy(host, addr, len);
	host[len] = '\0';
	snprintf(serv, sizeof(serv), "%d", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((e = getaddrinfo(host, serv, &hints, &res)) != 0)
		errx(1, "could not resolve \"%s\": %s", host, gai_strerror(e));
	fd = socket(res->ai_family,
	    res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, res->ai_protocol);
	if (fd == -1)
		err(1, "could not create socket");
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
		err(1, "could not set SO_REUSEADDR");
	if (bind(fd, res->ai_addr, res->ai_addrlen) == -1)
		err(1, "could not bind to \"%s\"", host);
	freeaddrinfo(res);
	if (listen(fd, 4096) == -1)
		err(1, "could not listen on \"%s\"", host);
	return fd;
}

static int
bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		err(1, "getsockname");
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void usage(void) __attribute__((noreturn));

static void
usage(void)
{
	fprintf(stderr,
	    "usage: mockllm [-l addr] [-p port] [-P portfile] "
	    "[-d delay_ms] [-j jitter_ms]\n"
	    "               [-s status] [-m mode] [-L logfile] "
	    "[-f pidfile]\n");
	exit(1);
}

static int
num_arg(const char *s, long min, long max, const char *what)
{
	long v;

	v = parse_num(s, strlen(s), max);
	if (v < min)
		errx(1, "invalid %s: \"%s\"", what, s);
	return (int)v;
}

int
main(int argc, char *argv[])
{
	struct server srv;
	const char *addr = "127.0.0.1", *portfile = NULL, *pidfile = NULL;
	const char *logfile = NULL;
	struct epoll_event ev;
	struct rlimit rl;
	struct conn *c;
	sigset_t mask;
	char line[32];
	int ch, port = 0;

	memset(&srv, 0, sizeof(srv));
	srv.cfg.status = 200;
	srv.cfg.mode = MODE_NORMAL;
	srv.cfg.pieces = PIECES;
	srv.cfg.stream_error = srv.cfg.cut = -1;
	srv.cfg.usage = 1;
	srv.logfd = -1;
	while ((ch = getopt(argc, argv, "d:f:j:L:l:m:P:p:s:")) != -1) {
		switch (ch) {
		case 'd':
			srv.cfg.delay_ms = num_arg(optarg, 0, MAX_MS, "delay");
			break;
		case 'f':
			pidfile = optarg;
			break;
		case 'j':
			srv.cfg.jitter_ms =
			    num_arg(optarg, 0, MAX_MS, "jitter");
			break;
		case 'L':
			logfile = optarg;
			break;
		case 'l':
			addr = optarg;
			break;
		case 'm':
			srv.cfg.mode = mode_lookup(optarg, strlen(optarg));
			if (srv.cfg.mode == -1)
				errx(1, "invalid mode: \"%s\"", optarg);
			break;
		case 'P':
			portfile = optarg;
			break;
		case 'p':
			port = num_arg(optarg, 0, 65535, "port");
			break;
		case 's':
			srv.cfg.status = num_arg(optarg, 200, 599, "status");
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	/* Thousands of connections need thousands of descriptors. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) == -1)
		err(1, "sigprocmask");
	if ((srv.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		err(1, "signalfd");

	if (logfile != NULL) {
		srv.logfd = open(
		    logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (srv.logfd == -1)
			err(1, "could not open \"%s\"", logfile);
	}
	srv.lfd = listen_on(addr, port);
	if ((srv.epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		err(1, "epoll_create1");
	ev.events = EPOLLIN;
	ev.data.ptr = &srv.lfd;
	if (epoll_ctl(srv.epfd, EPOLL_CTL_ADD, srv.lfd, &ev) == -1)
		err(1, "epoll_ctl");
	ev.events = EPOLLIN;
	ev.data.ptr = &srv.sfd;
	if (epoll_ctl(srv.epfd, EPOLL_CTL_ADD, srv.sfd, &ev) == -1)
		err(1, "epoll_ctl");
	srv.xblock = xmalloc(XBLOCK);
	memset(srv.xblock, 'x', XBLOCK);
	srv.rng = (uint64_t)wall_us() ^ (uint64_t)getpid() << 32;
	if (srv.rng == 0)
		srv.rng = 1;

	if (pidfile != NULL) {
		snprintf(line, sizeof(line), "%ld\n", (long)getpid());
		write_file(pidfile, line);
	}
	if (portfile != NULL) {
		snprintf(line, sizeof(line), "%d\n", bound_port(srv.lfd));
		write_file(portfile, line);
	}

	serve(&srv);

	while ((c = srv.conns) != NULL)
		conn_free(&srv, c);
	if (srv.logfd != -1) {
		log_flush(&srv);
		close(srv.logfd);
	}
	close(srv.lfd);
	close(srv.epfd);
	close(srv.sfd);
	free(srv.heap);
	free(srv.xblock);
	buf_free(&srv.log);
	buf_free(&srv.body.b);
	buf_free(&srv.chunk.b);
	buf_free(&srv.dechunk);
	buf_free(&srv.model);
	buf_free(&srv.content);
	buf_free(&srv.first);
	buf_free(&srv.role);
	buf_free(&srv.last_roles);
	buf_free(&srv.misc);
	return 0;
}
