/*
 * jsonschema_int.h: what the two halves of the JSON Schema module share,
 * private to them: jscheck.c (js_check) and jsonschema.c (js_validate,
 * and the definitions of all that is declared here).  There is one
 * keyword table, so that every keyword js_check accepts is one that
 * js_validate applies, and one reading of a local $ref, so that the
 * target js_check checked is the one js_validate follows.  The path and
 * message helpers write on jsregex.h's growing string, since the pattern
 * translation writes into one too.  Nothing outside the two files
 * includes this header; jsonschema.h is the module's interface.
 */
#ifndef LLMQ_JSONSCHEMA_INT_H
#define LLMQ_JSONSCHEMA_INT_H

#include <stddef.h>

#include <json.h>

#include "jsregex.h"

/*
 * The keyword table: for each keyword, the kind of value js_check wants
 * for it and the function js_validate calls on it.  A keyword function
 * gets the schema s that holds the keyword, its value kv, the instance
 * and the $ref and applicator steps taken on the instance so far;
 * it returns 0 when the instance passes, 1 when it fails.
 */
struct val; /* js_validate's state, private to jsonschema.c */
typedef int js_vfn(struct val *v, json_object *s, json_object *kv,
    json_object *inst, int same);

enum js_kind {
	K_ANNOT,     /* any value, ignored */
	K_SCHEMA,    /* a schema */
	K_SCHEMAS,   /* a non-empty array of schemas */
	K_SCHEMAMAP, /* an object of schemas */
	K_COUNT,     /* a non-negative integer */
	K_NUMBER,
	K_POSITIVE, /* a finite number > 0 */
	K_BOOL,
	K_TYPE,
	K_ENUM, /* an array */
	K_PATTERN,
	K_PATTERNMAP,
	K_ITEMS,
	K_NAMES, /* an array of strings */
	K_DEPS,
	K_FORMAT,
	K_REF,
	K_ID
};

struct js_keyword {
	const char *name;
	enum js_kind kind;
	js_vfn *fn; /* NULL: nothing to validate on its own */
};

/* The keyword called name, or NULL when it is not a supported one. */
const struct js_keyword *js_kw_find(const char *name);

/* Whether name is one of the seven type names of "type". */
int js_type_known(const char *name);

/*
 * Paths (JSON pointers) and messages.
 */

/* Cut b back to its first len bytes. */
void js_buf_trunc(struct jsr_buf *b, size_t len);

/* Append "/" and key as a JSON pointer token (~ as ~0, / as ~1). */
void js_buf_key(struct jsr_buf *b, const char *key);

/* Append "/" and the array index i. */
void js_buf_index(struct jsr_buf *b, size_t i);

/*
 * Append len bytes of s in printable ASCII: " and \ escaped, control
 * characters as \n \r \t \u00XX, other characters as \uXXXX (surrogate
 * pairs past U+FFFF), bytes that are not UTF-8 as \xNN; cut after max
 * bytes of s, never inside a character, with "...".
 */
void js_buf_esc(struct jsr_buf *b, const char *src, size_t len, size_t max);

/* Append len bytes of s in double quotes, escaped and cut for a message. */
void js_buf_quote(struct jsr_buf *b, const char *s, size_t len);

/*
 * JSON values.  A NULL json_object is JSON null, as json-c has it.
 */

/* Whether o is a number: a json-c int or double. */
int js_is_number(json_object *o);

/* Whether o is a number with no fractional part. */
int js_is_integer(json_object *o);

/*
 * The value of a local $ref in root: "#" and a JSON pointer after
 * percent-decoding.  0 with *out set (NULL is JSON null), or -1; canon
 * (if not NULL) gets the pointer without percent escapes.
 */
int js_resolve(json_object *root, const char *ref, json_object **out,
    struct jsr_buf *canon);

#endif
