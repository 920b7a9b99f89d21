/*
 * jsonreply.h: find the JSON value in a model's reply and parse it, or
 * say precisely where and why it is not valid JSON.
 *
 * A model asked for JSON often wraps it in a Markdown code fence, puts
 * prose before or after it, or is cut off in the middle of it.  The
 * parser looks inside the first ```json fence (else the first bare ```
 * fence), else from the first '{' or '[' of the text, and holds what it
 * finds to RFC 8259: strict JSON, valid UTF-8, nesting at most 64 deep
 * (as json-c counts it: a scalar inside the 64th container is a 65th
 * level).  Pure: no I/O, no clock, no logging.
 */
#ifndef LLMQ_JSONREPLY_H
#define LLMQ_JSONREPLY_H

#include <stddef.h>

#include <json.h>

#define JR_DEPTH 64 /* nesting accepted, as provider.c and stream.c */
#define JR_TRIES 16 /* '{' and '[' tried as the start of the value */

struct jr_result {
	/*
	 * The value, owned by the caller (json_object_put).  NULL on
	 * failure, and on success when the reply is the JSON null.  A
	 * string may hold NUL bytes (from \u0000): read strings with
	 * json_object_get_string_len, not strlen.
	 */
	json_object *value;
	size_t start, end; /* on success: the value's bytes in the text */
	size_t pos;        /* on failure: byte offset in the text */
	/*
	 * On failure: what went wrong, in json-c's words where it has
	 * them ("unexpected end of data", "unexpected character", "nesting
	 * too deep", "invalid utf-8 string", "object value separator ','
	 * expected", ...), else in ours for what its strict mode lets by
	 * ("single-quoted string", "unescaped control character in
	 * string", "number expected", "leading zero in a number"), or "no
	 * JSON value in the reply".
	 */
	char message[160];
	/*
	 * On failure: the text around pos, at most 40 bytes either side,
	 * escaped (str_escape) and cut on UTF-8 boundaries, "..." where it
	 * was cut, and " <<HERE>> " at pos.  Safe on one log line.
	 */
	char preview[160];
};

/*
 * 1 when the reply means to be JSON: after white space, it begins with
 * '{' or '[' and, trimmed, ends with '}' or ']'; or it begins with a
 * ```json (or bare ```) fence whose content, trimmed, does (anything
 * may follow the closing fence; an unterminated fence runs to the end).
 * 0 otherwise.  Reads len bytes only.
 */
int jr_looks_like_json(const char *text, size_t len);

/*
 * Find the one JSON value in text[0, len) and parse it.  Where: inside
 * the first fence whose info string is json, JSON or jsonc, else the
 * first whose info string is empty and whose content begins as JSON
 * can (an unterminated fence runs to the end); failing a fence, or when
 * the fence holds no JSON value at all, the whole text.  In that region,
 * a bare string, number, true, false or null is taken only when it is
 * the whole region, trimmed.  Else the value starts at a '{' or '[':
 * the first of them that begins a complete value wins, whatever follows
 * it.  An attempt that fails at its first token ("{name}", "[see
 * below]") was prose, and the next '{' or '[' at or after the failure
 * is tried, up to JR_TRIES attempts; an attempt that fails further in
 * was the JSON, broken or cut off, and its error ends the search (a
 * later '{' would be a piece of it).  When no attempt succeeds, the
 * error reported is that of the one that read the most bytes.
 *
 * Returns 0 with r->value, r->start and r->end set, or -1 with r->pos,
 * r->message and r->preview set.  Never reads past len: text need not be
 * NUL-terminated.
 */
int jr_parse(const char *text, size_t len, struct jr_result *r);

#endif
