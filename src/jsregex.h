/*
 * jsregex.h: the regular expressions of JSON Schema's pattern and
 * patternProperties for jsonschema.c.  ECMA-262 regular expressions are
 * translated to POSIX extended ones and run with regcomp(REG_EXTENDED |
 * REG_NOSUB) in the C locale, as an unanchored search as in ECMA-262
 * (write ^ and $ to anchor).  Pure: no I/O, no global state but a C
 * locale object created once.
 *
 * What the translation does:
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
 * Unsupported (the translation fails and says why): lookahead and
 * lookbehind, \b and \B, backreferences (\1, \k<name>), \p{...} Unicode
 * properties, \c, \0, a non-ASCII character or \D \W \S inside brackets,
 * repetition counts over 255 (POSIX's minimum RE_DUP_MAX) and nested
 * counts that would expand to more than 10000 atoms, and empty classes
 * ([] and [^]).  POSIX's leftmost-longest rule, where it differs from
 * ECMA-262's leftmost-first, changes which match is found, never whether
 * one is.
 *
 * The module also owns the text primitives the translation is built on
 * and the validator (jsonschema.c, jscheck.c) uses too: a growing
 * string and hex digits.
 */
#ifndef LLMQ_JSREGEX_H
#define LLMQ_JSREGEX_H

#include <stddef.h>
#include <stdint.h>

#include <regex.h>

/* A growing NUL-terminated string; { NULL, 0, 0 } is empty. */
struct jsr_buf {
	char *s;
	size_t len, cap;
};

void jsr_buf_add(struct jsr_buf *b, const char *s, size_t n);
void jsr_buf_str(struct jsr_buf *b, const char *s);
void jsr_buf_addc(struct jsr_buf *b, int c);

/* The value of the hex digit c, or -1. */
int jsr_hexval(int c);

/*
 * The translation of the ECMA-262 regular expression src to POSIX ERE
 * (described above), as a new string, or NULL with err set (a message
 * of at most errlen bytes; err may be NULL) when src uses something
 * unsupported.  Exposed for the tests.
 */
char *js_pattern_ere(const char *src, char *err, size_t errlen);

/*
 * Translate and compile src: a new regex_t for jsr_free(), or NULL with
 * err set as for js_pattern_ere (or to regcomp's message).
 */
regex_t *jsr_compile(const char *src, char *err, size_t errlen);
void jsr_free(regex_t *re);

/* Whether re matches somewhere in the len bytes at s. */
int jsr_search(regex_t *re, const char *s, size_t len);

/*
 * The patterns of one validation, each compiled once: keyed by the
 * address of the source text (a string in the schema, which does not
 * change while a validation runs).  { NULL, 0, 0 } is empty.
 */
struct jsr_cache {
	struct jsr_ent *ent;
	size_t n, cap;
};

/* The compiled src, or NULL when it does not compile. */
regex_t *jsr_cache_get(struct jsr_cache *c, const char *src);
void jsr_cache_free(struct jsr_cache *c);

#endif
