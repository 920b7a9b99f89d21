/*
 * jsonschema.h: a validator of JSON Schema draft 7, for the subset of it
 * that tool-call and structured-output schemas use.  Pure: no I/O, no
 * global state but a C locale object created once.
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
 * format: date-time, date, time (RFC 3339: full-date, full-time with a
 * required offset, "T" and "Z" in either case, months' lengths and leap
 * years, a leap second only at 23:59:60 UTC), email (a dot-atom local
 * part, at most 64 bytes, "@", a host name or [address literal]; no
 * quoted local parts), uri (RFC 3986 absolute URI with scheme), uuid
 * (8-4-4-4-12 hex digits), ipv4 (dotted quad, no leading zeros), ipv6
 * (RFC 4291 text forms, no zone).  In this module a format asserts: a
 * string that is not one fails.  Any other format name is unsupported.
 *
 * pattern and patternProperties: ECMA-262 regular expressions are
 * translated to POSIX extended ones and run with regcomp(REG_EXTENDED |
 * REG_NOSUB) in the C locale, as an unanchored search as in ECMA-262
 * (write ^ and $ to anchor).  What the translation does:
 *   \d \w \s and, outside brackets, \D \W \S become bracket expressions
 *   ([0-9], [A-Za-z0-9_], the six ASCII white-space characters: \s does
 *   not match the Unicode spaces ECMA-262's does);
 *   "." and negated classes ([^a], \D) match one code point, as in
 *   ECMA-262 ("." not \n or \r), and a non-ASCII literal is one atom,
 *   so that "\u00e9+" and "^.{2}$" count characters, not bytes (the
 *   instance is taken to be UTF-8, as json-c's strings are);
 *   \n \r \t \f \v \xHH \uHHHH \u{H...} (surrogate pairs joined) and
 *   escaped punctuation become the literal character;
 *   "{" that does not start a quantifier and "}" and "]" alone are
 *   literals, as ECMA-262's Annex B has them;
 *   (?:...) and (?<name>...) become plain groups; lazy quantifiers
 *   (*? +? ?? {n,m}?) become greedy ones: a search that only asks
 *   whether there is a match gives the same answer either way.
 * Unsupported (js_check says so): lookahead and lookbehind, \b and \B,
 * backreferences (\1, \k<name>), \p{...} Unicode properties, \c, \0, a
 * non-ASCII character or \D \W \S inside brackets, repetition counts
 * over 255 (POSIX's minimum RE_DUP_MAX) and nested counts that would
 * expand to more than 10000 atoms, and empty classes ([] and [^]).
 * POSIX's leftmost-longest rule, where it differs from ECMA-262's
 * leftmost-first, changes which match is found, never whether one is.
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

/*
 * The translation of the ECMA-262 regular expression src to POSIX ERE
 * that pattern uses (described above), as a new string, or NULL with err
 * set when src uses something unsupported.  Exposed for the tests.
 */
char *js_pattern_ere(const char *src, char *err, size_t errlen);

#endif
