/*
 * jsonschema.h: a validator of JSON Schema draft 7, for the subset of it
 * that tool-call and structured-output schemas use.  Pure: no I/O, no
 * global state but a C locale object created once.  js_check is in
 * jscheck.c, js_validate in jsonschema.c; jsonschema_int.h holds what
 * the two share.
 *
 * Supported keywords:
 *   type (a name or an array of names; "integer" is any number with no
 *   fractional part, so 1.0 is one), enum, const, multipleOf, maximum,
 *   exclusiveMaximum, minimum, exclusiveMinimum (the draft 7 numeric
 *   forms), maxLength, minLength (in code points, not bytes), pattern,
 *   format, items (a schema or a tuple), additionalItems, maxItems,
 *   minItems, uniqueItems, contains, maxProperties, minProperties,
 *   required, properties, patternProperties, additionalProperties,
 *   dependencies (arrays of names and schemas), propertyNames, allOf,
 *   anyOf, oneOf, not, if/then/else, $ref and the boolean schemas.
 * Equality (enum, const, uniqueItems) is JSON's: 1 equals 1.0, objects
 * are equal whatever the order of their members.  Numbers are compared
 * exactly, integers past 2^53 too (json-c holds int64, uint64 and double;
 * it clamps an integer beyond 64 bits to INT64_MIN or UINT64_MAX).
 * multipleOf is exact when both numbers are integers below 2^64 and
 * otherwise allows the rounding error of a double division.
 *
 * Accepted and ignored (annotations): $schema, $id at the root, title,
 * description, default, examples, $comment, readOnly, writeOnly,
 * definitions, $defs (their members are checked as schemas),
 * contentMediaType and contentEncoding (draft 7 makes checking those
 * optional; they are not checked).
 *
 * $ref: local only, "#" or "#/a/b" (a JSON pointer, ~0 and ~1 escapes,
 * after %XX percent-decoding of the fragment); as draft 7 says, the
 * keywords beside a $ref are ignored when validating, though js_check
 * still checks them (so that "definitions" beside a root "$ref" are
 * checked too).  A $ref may point into a member that is not a keyword
 * (as {"a": {...}, "properties": {"x": {"$ref": "#/a"}}}): such a member
 * is a container of schemas, as "definitions" is; any other unknown
 * keyword is unsupported.  $id below the root changes the base URI of
 * the $refs under it: a schema that has one and any $ref is unsupported.
 *
 * format: the names jsformat.h knows (date-time, date, time, email,
 * uri, uuid, ipv4, ipv6; what each accepts is said there).  In this
 * module a format asserts: a string that is not one fails.  Any other
 * format name is unsupported.
 *
 * pattern and patternProperties: ECMA-262 regular expressions, run as an
 * unanchored search after their translation to POSIX extended ones,
 * which jsregex.h describes with what it leaves unsupported (lookaround,
 * backreferences, \b, \p{...} and a few more); js_check refuses a
 * pattern the translation or regcomp does not take.
 *
 * Termination: validation stops with an error after 64 $ref and
 * applicator steps on one instance location (a schema that refers to
 * itself without descending, such as {"$ref": "#"}), past a nesting of
 * 1000 steps in all, or after 1000000 steps of work in all (a step: a
 * schema applied to a value, a value compared, a regexec, 16 bytes of a
 * string scanned), which a schema whose $refs branch exponentially
 * reaches; each counts as a failure, whatever not or anyOf above it.
 */
#ifndef LLMQ_JSONSCHEMA_H
#define LLMQ_JSONSCHEMA_H

#include <stddef.h>

#include <json.h>

/*
 * Check that schema uses only the supported subset.  Returns 0, or -1
 * with err set (a message of at most errlen bytes, NUL-terminated; err
 * may be NULL) to e.g. "unsupported keyword \"dependentSchemas\" at
 * /properties/a"; also -1 for a malformed schema (a "type" that is not a
 * type name, a "pattern" that does not compile, a $ref that does not
 * resolve, a non-schema where a schema is expected), saying what and
 * where (the schema path as a JSON pointer, or "the root").
 */
int js_check(json_object *schema, char *err, size_t errlen);

/*
 * Validate instance against schema (the root for "#" refs).  Appends one
 * object per error to errs (a json array), at most max_errors of them in
 * this call (fewer than 1 counts as 1; errs NULL: only counted): {"path":
 * "/tool_calls/0/params" (JSON pointer of the instance, "" for the root;
 * an error about one member, as required, additionalProperties,
 * propertyNames and dependencies give, names the member, even a missing
 * one), "schema_path": "/properties/tool_calls/items/required" (a JSON
 * pointer into the schema to the failing keyword; through a $ref it
 * goes on from the schema the $ref names, so it always resolves),
 * "message": "required property \"params\" is missing"}.  Errors are
 * collected, not only the first, in the order of the schema's members;
 * the errors of the branches of anyOf, oneOf, not, if, contains and
 * propertyNames are not reported, only one error at the keyword (then
 * and else report theirs).  Messages are ASCII: quoted values and names
 * are cut at 40 bytes, with control and non-ASCII characters escaped
 * (\n, \u00e9).  Returns the number of errors appended (0: valid).
 *
 * The schema should be one js_check accepted; on another, js_validate
 * neither crashes nor loops, but its verdict means nothing.
 */
int js_validate(json_object *schema, json_object *instance, json_object *errs,
    int max_errors);

#endif
