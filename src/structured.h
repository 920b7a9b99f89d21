/*
 * structured.h: replies meant to be JSON, checked against the request's
 * schema and tools, and the conversation of a re-ask.
 */
#ifndef LLMQ_STRUCTURED_H
#define LLMQ_STRUCTURED_H

struct call;

/*
 * Whether the call's response_schema and tool parameters are schemas
 * the validator takes (js_check(): a supported keyword, a pattern that
 * compiles, a $ref that resolves).  -1 with err set when not: the
 * request cannot be served (bad_request).
 */
int structured_usable(const struct call *c, char *err, size_t errlen);

/*
 * Check the reply of a call that succeeded, when it has a schema or tool
 * calls (or is a re-ask about tool calls): on success c->parsed holds
 * the value for parsed_response and 0 is returned; otherwise c is
 * failed with parse_error or validation_error (c->verrors holding the
 * errors for the latter), its text kept, and -1 is returned.  Without
 * any of these, a text that looks like JSON is parsed into c->parsed
 * when it parses, and 0 is returned either way.
 */
int structured_check(struct call *c);

/*
 * The messages of the next round after a failed check, as JSON text
 * (the caller frees it): the call's, then the model's reply as an
 * assistant message, then a user message naming what was wrong.  NULL
 * when the call's messages cannot be read back.
 */
char *structured_reask(const struct call *c);

#endif
