/*
 * test_jsonschema.c: unit tests of jsonschema.c, the JSON Schema (draft
 * 7 subset) checker and validator.
 *
 * First the official JSON-Schema-Test-Suite (Debian's package
 * json-schema-test-suite, found through JSON_SCHEMA_TEST_SUITE, default
 * /usr/share/json-schema-test-suite): every file of tests/draft7, its
 * optional/ and optional/format/ is either run or named in out_of_scope
 * below with the reason.  For each group js_check must accept the
 * schema, and for each case js_validate's verdict must be the case's
 * "valid"; the errors must be consistent with the count returned and
 * their two paths must resolve, in the instance and in the schema.  One
 * TAP line per file with its pass count, and a "not ok" line for each
 * failing case.  A group out of scope because of a remote $ref or an
 * unsupported format must be refused by js_check, which is checked.
 * Then the cases the suite does not show: error paths and schema paths
 * (through a $ref too), several errors collected, max_errors, js_check's
 * messages, the recursion and step bounds, lengths in code points,
 * formats' corners, numbers, the translation of patterns and messages
 * that stay ASCII.  Output is TAP, as test_stream.c.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json.h>

#include "jsonschema.h"
#include "jsregex.h"
#include "log.h"
#include "util.h"

#include "tap.h"

/*
 * What of the suite is out of scope, and why.  group NULL: the whole
 * file.  refused: js_check must refuse the schema of every group meant.
 */
static const struct scope {
	const char *file;
	const char *group;
	int refused;
	const char *why;
} out_of_scope[] = {
	{ "refRemote.json", NULL, 1,
	    "remote $ref (the suite's server on localhost:1234)" },
	{ "definitions.json", NULL, 1,
	    "validates against the draft 7 metaschema by a remote $ref" },
	{ "ref.json", "remote ref, containing refs itself", 1,
	    "remote $ref to the draft 7 metaschema" },
	{ "ref.json", "Recursive references between schemas", 1,
	    "$id below the root changes the base URI of $ref" },
	{ "optional/content.json", NULL, 0,
	    "contentMediaType and contentEncoding are annotations here: "
	    "draft 7 makes checking them optional" },
	{ "optional/ecmascript-regex.json", NULL, 1,
	    "format \"regex\" is unsupported" },
	{ "optional/format/hostname.json", NULL, 1, "format unsupported" },
	{ "optional/format/idn-email.json", NULL, 1, "format unsupported" },
	{ "optional/format/idn-hostname.json", NULL, 1, "format unsupported" },
	{ "optional/format/iri-reference.json", NULL, 1, "format unsupported" },
	{ "optional/format/iri.json", NULL, 1, "format unsupported" },
	{ "optional/format/json-pointer.json", NULL, 1, "format unsupported" },
	{ "optional/format/regex.json", NULL, 1, "format unsupported" },
	{ "optional/format/relative-json-pointer.json", NULL, 1,
	    "format unsupported" },
	{ "optional/format/uri-reference.json", NULL, 1, "format unsupported" },
	{ "optional/format/uri-template.json", NULL, 1, "format unsupported" },
};

static const struct scope *
scope_of(const char *file, const char *group)
{
	size_t i;

	for (i = 0; i < nitems(out_of_scope); i++)
		if (strcmp(out_of_scope[i].file, file) == 0 &&
		    (out_of_scope[i].group == NULL ||
		        (group != NULL &&
		            strcmp(out_of_scope[i].group, group) == 0)))
			return &out_of_scope[i];
	return NULL;
}

static json_object *
parse(const char *text, size_t len)
{
	struct json_tokener *tok = json_tokener_new_ex(64);
	json_object *o;

	o = json_tokener_parse_ex(tok, text, (int)len);
	if (json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

/* The JSON text s (a test's own, so it must parse). */
static json_object *
J(const char *s)
{
	json_object *o = parse(s, strlen(s) + 1);

	if (o == NULL && strcmp(s, "null") != 0) {
		printf("Bail out! test JSON does not parse: %s\n", s);
		exit(1);
	}
	return o;
}

static char *
slurp(const char *path, size_t *len)
{
	char *buf = NULL;
	size_t cap = 0, n;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	*len = 0;
	do {
		if (*len + 4096 + 1 > cap)
			buf = xrealloc(buf, cap = *len + 8192);
		n = fread(buf + *len, 1, cap - *len - 1, f);
		*len += n;
	} while (n > 0);
	fclose(f);
	buf[*len] = '\0';
	return buf;
}

/* Whether the JSON pointer p resolves in doc. */
static int
resolves(json_object *doc, const char *p)
{
	json_object *res;

	return p[0] == '\0' || json_pointer_get(doc, p, &res) == 0;
}

static int
ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

/*
 * js_validate with its errors checked for consistency: the count, the
 * three members, ASCII messages, paths that resolve.  Returns the count,
 * or -1 when the errors are inconsistent (why in bad).
 */
static int
run(json_object *schema, json_object *inst, int max, json_object **errsp,
    char *bad, size_t badlen)
{
	json_object *errs = json_object_new_array(), *e, *p, *sp, *m;
	size_t i;
	int n;

	bad[0] = '\0';
	n = js_validate(schema, inst, errs, max);
	if ((size_t)n != json_object_array_length(errs) ||
	    n > (max < 1 ? 1 : max))
		snprintf(bad, badlen, "returned %d, %zu errors", n,
		    json_object_array_length(errs));
	for (i = 0; i < json_object_array_length(errs) && !bad[0]; i++) {
		e = json_object_array_get_idx(errs, i);
		if (!json_object_object_get_ex(e, "path", &p) ||
		    !json_object_object_get_ex(e, "schema_path", &sp) ||
		    !json_object_object_get_ex(e, "message", &m) ||
		    json_object_object_length(e) != 3)
			snprintf(bad, badlen, "malformed error %s",
			    json_object_to_json_string(e));
		else if (!ascii(json_object_get_string(m)))
			snprintf(bad, badlen, "message not ASCII");
		else if (!resolves(schema, json_object_get_string(sp)))
			snprintf(bad, badlen, "schema_path %s does not resolve",
			    json_object_get_string(sp));
		else if (!resolves(inst, json_object_get_string(p)) &&
		    strstr(json_object_get_string(m), "missing") == NULL &&
		    strstr(json_object_get_string(m), "requires") == NULL)
			snprintf(bad, badlen, "path %s does not resolve",
			    json_object_get_string(p));
	}
	if (errsp != NULL)
		*errsp = errs;
	else
		json_object_put(errs);
	return bad[0] ? -1 : n;
}

/* One file of the suite: name is relative to tests/draft7. */
static void
suite_file(const char *dir, const char *name)
{
	const struct scope *sc = scope_of(name, NULL);
	json_object *doc, *g, *schema, *tests, *t, *data, *valid, *desc;
	char *path, *text, err[256], bad[256];
	size_t len, gi, ti, ng, nt;
	int pass = 0, total = 0, skipped = 0, refused = 0, n;
	const char *gname;

	path = xasprintf("%s/tests/draft7/%s", dir, name);
	if ((text = slurp(path, &len)) == NULL ||
	    (doc = parse(text, len + 1)) == NULL ||
	    !json_object_is_type(doc, json_type_array)) {
		check(0, "%s: could not read or parse %s", name, path);
		free(path);
		free(text);
		return;
	}
	free(path);
	free(text);
	if (sc != NULL && sc->group == NULL && !sc->refused) {
		check(1, "%s # skip out of scope: %s", name, sc->why);
		json_object_put(doc);
		return;
	}
	ng = json_object_array_length(doc);
	for (gi = 0; gi < ng; gi++) {
		g = json_object_array_get_idx(doc, gi);
		json_object_object_get_ex(g, "description", &desc);
		json_object_object_get_ex(g, "schema", &schema);
		json_object_object_get_ex(g, "tests", &tests);
		gname = json_object_get_string(desc);
		nt = json_object_array_length(tests);
		if ((sc = scope_of(name, gname)) != NULL) {
			skipped += (int)nt;
			if (sc->refused &&
			    js_check(schema, err, sizeof(err)) == 0)
				check(0,
				    "%s: \"%s\" is out of scope (%s) but "
				    "js_check accepts it",
				    name, gname, sc->why);
			else
				refused++;
			continue;
		}
		if (js_check(schema, err, sizeof(err)) != 0) {
			check(0, "%s: \"%s\": js_check refuses the schema: %s",
			    name, gname, err);
			total += (int)nt;
			continue;
		}
		for (ti = 0; ti < nt; ti++) {
			t = json_object_array_get_idx(tests, ti);
			json_object_object_get_ex(t, "data", &data);
			json_object_object_get_ex(t, "valid", &valid);
			json_object_object_get_ex(t, "description", &desc);
			total++;
			n = run(schema, data, 20, NULL, bad, sizeof(bad));
			if (n < 0)
				check(0, "%s: \"%s\" / \"%s\": %s", name, gname,
				    json_object_get_string(desc), bad);
			else if ((n == 0) != json_object_get_boolean(valid))
				check(0, "%s: \"%s\" / \"%s\": expected %s",
				    name, gname, json_object_get_string(desc),
				    json_object_get_boolean(valid) ? "valid" :
				                                     "invalid");
			else
				pass++;
		}
	}
	sc = scope_of(name, NULL);
	if (sc != NULL && sc->group == NULL)
		check(refused == (int)ng,
		    "%s # skip out of scope: %s (js_check refuses %d of %zu "
		    "schemas)",
		    name, sc->why, refused, ng);
	else if (skipped > 0)
		check(pass == total, "%s: %d/%d (%d cases out of scope)", name,
		    pass, total, skipped);
	else
		check(pass == total, "%s: %d/%d", name, pass, total);
	json_object_put(doc);
}

static int
json_file(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return n > 5 && strcmp(d->d_name + n - 5, ".json") == 0;
}

static void
suite(void)
{
	static const char *const subdirs[] = { "", "optional/",
		"optional/format/" };
	const char *dir = getenv("JSON_SCHEMA_TEST_SUITE");
	struct dirent **list;
	char *path, *name;
	size_t s;
	int i, n;

	if (dir == NULL || dir[0] == '\0')
		dir = "/usr/share/json-schema-test-suite";
	for (s = 0; s < nitems(subdirs); s++) {
		path = xasprintf("%s/tests/draft7/%s", dir, subdirs[s]);
		if ((n = scandir(path, &list, json_file, alphasort)) < 0) {
			printf("Bail out! could not read \"%s\": %s (apt-get "
			       "install json-schema-test-suite, or set "
			       "JSON_SCHEMA_TEST_SUITE)\n",
			    path, strerror(errno));
			exit(1);
		}
		for (i = 0; i < n; i++) {
			name = xasprintf("%s%s", subdirs[s], list[i]->d_name);
			suite_file(dir, name);
			free(name);
			free(list[i]);
		}
		free(list);
		free(path);
	}
}

/* The verdict of a schema and instance given as JSON text: 1 valid. */
static int
valid(const char *schema, const char *inst)
{
	json_object *s = J(schema), *i = J(inst);
	char bad[256];
	int n;

	n = run(s, i, 10, NULL, bad, sizeof(bad));
	json_object_put(s);
	json_object_put(i);
	if (n < 0) {
		printf("# %s / %s: %s\n", schema, inst, bad);
		return -1;
	}
	return n == 0;
}

/* The errors of a validation, as compact JSON text (to free). */
static char *
errors(const char *schema, const char *inst, int max, int *n)
{
	json_object *s = J(schema), *i = J(inst), *errs;
	char bad[256], *out;

	*n = run(s, i, max, &errs, bad, sizeof(bad));
	if (*n < 0)
		printf("# %s\n", bad);
	out = xstrdup(json_object_to_json_string_ext(
	    errs, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(errs);
	json_object_put(s);
	json_object_put(i);
	return out;
}

static void
expect_errors(const char *schema, const char *inst, int max, int want_n,
    const char *want, const char *what)
{
	char *got;
	int n;

	got = errors(schema, inst, max, &n);
	CHECK(n == want_n && strcmp(got, want) == 0, "%s", what);
	if (n != want_n || strcmp(got, want) != 0)
		printf(
		    "#   got %d: %s\n#  want %d: %s\n", n, got, want_n, want);
	free(got);
}

static void
test_errors(void)
{
	static const char *tool =
	    "{\"type\":\"object\",\"required\":[\"tool_calls\"],"
	    "\"properties\":{\"tool_calls\":{\"type\":\"array\",\"items\":"
	    "{\"type\":\"object\",\"required\":[\"name\",\"params\"],"
	    "\"properties\":{\"name\":{\"type\":\"string\",\"enum\":"
	    "[\"search\",\"fetch\"]},\"params\":{\"type\":\"object\"}},"
	    "\"additionalProperties\":false}}}}";
	char *got;
	int n;

	expect_errors(tool, "{\"tool_calls\":[{\"name\":\"search\"}]}", 10, 1,
	    "[{\"path\":\"/tool_calls/0/params\",\"schema_path\":"
	    "\"/properties/tool_calls/items/required\",\"message\":"
	    "\"required property \\\"params\\\" is missing\"}]",
	    "nested: a missing required property, its path and schema path");
	expect_errors(tool,
	    "{\"tool_calls\":[{\"name\":\"search\",\"params\":{}},"
	    "{\"name\":\"rm\",\"params\":[],\"x\":1}]}",
	    10, 3,
	    "[{\"path\":\"/tool_calls/1/name\",\"schema_path\":"
	    "\"/properties/tool_calls/items/properties/name/enum\","
	    "\"message\":\"\\\"rm\\\" is not one of the 2 values of enum\"},"
	    "{\"path\":\"/tool_calls/1/params\",\"schema_path\":"
	    "\"/properties/tool_calls/items/properties/params/type\","
	    "\"message\":\"expected object, got array\"},"
	    "{\"path\":\"/tool_calls/1/x\",\"schema_path\":"
	    "\"/properties/tool_calls/items/additionalProperties\","
	    "\"message\":\"additional property \\\"x\\\" is not allowed\"}]",
	    "several errors collected, in the schema's order");
	got = errors(tool,
	    "{\"tool_calls\":[{\"name\":\"search\",\"params\":{}},"
	    "{\"name\":\"rm\",\"params\":[],\"x\":1}]}",
	    2, &n);
	CHECK(n == 2, "max_errors 2 of 3: %d reported", n);
	free(got);
	got = errors(tool, "{\"tool_calls\":[1,2,3]}", 0, &n);
	CHECK(n == 1, "max_errors 0 counts as 1: %d reported", n);
	free(got);
	expect_errors(tool, "{\"tool_calls\":[]}", 10, 0, "[]",
	    "a valid instance: no errors");
	expect_errors("{\"definitions\":{\"n\":{\"type\":\"integer\"}},"
	              "\"properties\":{\"a\":{\"$ref\":\"#/definitions/n\"}}}",
	    "{\"a\":\"x\"}", 10, 1,
	    "[{\"path\":\"/a\",\"schema_path\":\"/definitions/n/type\","
	    "\"message\":\"expected integer, got string\"}]",
	    "through a $ref the schema path is the target's");
	expect_errors("{\"anyOf\":[{\"type\":\"string\"},{\"minimum\":3}]}",
	    "1", 10, 1,
	    "[{\"path\":\"\",\"schema_path\":\"/anyOf\",\"message\":"
	    "\"matches none of the 2 schemas of anyOf\"}]",
	    "anyOf: one error at the combinator");
	expect_errors("{\"oneOf\":[{\"type\":\"integer\"},{\"minimum\":0}]}",
	    "1", 10, 1,
	    "[{\"path\":\"\",\"schema_path\":\"/oneOf\",\"message\":"
	    "\"matches schemas 0 and 1 of oneOf, not one\"}]",
	    "oneOf: two matches");
	expect_errors("{\"not\":{\"type\":\"integer\"}}", "1", 10, 1,
	    "[{\"path\":\"\",\"schema_path\":\"/not\",\"message\":"
	    "\"matches the schema of not\"}]",
	    "not");
	expect_errors("{\"if\":{\"required\":[\"a\"]},\"then\":{\"required\":"
	              "[\"b\"]},\"else\":{\"required\":[\"c\"]}}",
	    "{\"a\":1}", 10, 1,
	    "[{\"path\":\"/b\",\"schema_path\":\"/then/required\","
	    "\"message\":\"required property \\\"b\\\" is missing\"}]",
	    "if/then: the errors of then are reported");
	expect_errors("{\"items\":[{\"type\":\"string\"}],\"additionalItems\":"
	              "false}",
	    "[1,2]", 10, 2,
	    "[{\"path\":\"/0\",\"schema_path\":\"/items/0/type\","
	    "\"message\":\"expected string, got integer\"},"
	    "{\"path\":\"\",\"schema_path\":\"/additionalItems\","
	    "\"message\":\"array has 2 items, more than the 1 of items\"}]",
	    "tuple items: the schema path has the index");
	expect_errors("{\"patternProperties\":{\"^x-\":{\"type\":\"string\"}},"
	              "\"propertyNames\":{\"maxLength\":3}}",
	    "{\"x-a\":1,\"long\":\"\"}", 10, 2,
	    "[{\"path\":\"/x-a\",\"schema_path\":\"/patternProperties/^x-/"
	    "type\",\"message\":\"expected string, got integer\"},"
	    "{\"path\":\"/long\",\"schema_path\":\"/propertyNames\","
	    "\"message\":\"property name \\\"long\\\" does not match "
	    "propertyNames\"}]",
	    "patternProperties and propertyNames");
	expect_errors("{\"dependencies\":{\"a\":[\"b\"]}}", "{\"a\":1}", 10, 1,
	    "[{\"path\":\"/b\",\"schema_path\":\"/dependencies/a\","
	    "\"message\":\"property \\\"a\\\" requires property \\\"b\\\"\"}]",
	    "dependencies");
	expect_errors("{\"properties\":{\"a~/b\":false}}", "{\"a~/b\":1}", 10,
	    1,
	    "[{\"path\":\"/a~0~1b\",\"schema_path\":\"/properties/a~0~1b\","
	    "\"message\":\"no value is allowed here (false schema)\"}]",
	    "~ and / escaped in both paths");
	expect_errors("{\"maxLength\":2}",
	    "\"\\u0001\\n\\u00e9\\\"abcdefghijklmnopqrstuvwxyz0123456789\"", 10,
	    1,
	    "[{\"path\":\"\",\"schema_path\":\"/maxLength\",\"message\":"
	    "\"string of 40 characters is longer than 2\"}]",
	    "maxLength counts characters");
	expect_errors("{\"const\":\"x\"}",
	    "\"\\u0001\\n\\u00e9\\\"abcdefghijklmnopqrstuvwxyz0123456789\"", 10,
	    1,
	    "[{\"path\":\"\",\"schema_path\":\"/const\",\"message\":"
	    "\"\\\"\\\\u0001\\\\n\\\\u00e9\\\\\\\"abcdefghijklmnopqrstuvwxyz012"
	    "3"
	    "45678...\\\" is not the const value \\\"x\\\"\"}]",
	    "quoted values: escaped, ASCII, cut at 40 bytes");
}

static void
expect_check(const char *schema, const char *want, const char *what)
{
	json_object *s = J(schema);
	char err[256];
	int r;

	r = js_check(s, err, sizeof(err));
	if (want == NULL) {
		CHECK(r == 0, "js_check accepts %s", what);
		if (r != 0)
			printf("#   %s\n", err);
	} else {
		CHECK(r == -1 && strcmp(err, want) == 0, "js_check: %s", what);
		if (r != -1 || strcmp(err, want) != 0)
			printf("#   got: %s\n#  want: %s\n", r == 0 ? "0" : err,
			    want);
	}
	json_object_put(s);
}

static void
test_check(void)
{
	expect_check("{\"properties\":{\"a\":{\"dependentSchemas\":{}}}}",
	    "unsupported keyword \"dependentSchemas\" at /properties/a",
	    "an unknown keyword");
	expect_check("{\"unevaluatedProperties\":false}",
	    "unsupported keyword \"unevaluatedProperties\" at the root",
	    "an unknown keyword at the root");
	expect_check("{\"properties\":{\"a\":{\"type\":\"strin\"}}}",
	    "\"strin\" is not a type name at /properties/a/type",
	    "a type that is not a type name");
	expect_check("{\"type\":[\"string\",1]}",
	    "\"type\" must be a type name or a non-empty array of them at "
	    "/type",
	    "a type array with a number");
	expect_check("{\"items\":5}",
	    "expected a schema (an object or a boolean) at /items",
	    "a number where a schema must be");
	expect_check("{\"anyOf\":[]}",
	    "\"anyOf\" must be a non-empty array of schemas at /anyOf",
	    "an empty anyOf");
	expect_check("{\"minLength\":-1}",
	    "\"minLength\" must be a non-negative integer at /minLength",
	    "a negative minLength");
	expect_check("{\"minLength\":2.0}", NULL, "minLength 2.0");
	expect_check("{\"multipleOf\":0}",
	    "\"multipleOf\" must be a number greater than 0 at /multipleOf",
	    "multipleOf 0");
	expect_check("{\"exclusiveMaximum\":true}",
	    "\"exclusiveMaximum\" must be a number at /exclusiveMaximum",
	    "draft 4's boolean exclusiveMaximum");
	expect_check("{\"pattern\":\"(?=a)b\"}",
	    "pattern \"(?=a)b\": lookahead (?= is unsupported at /pattern",
	    "a lookahead");
	expect_check("{\"patternProperties\":{\"a(\":{}}}",
	    "pattern \"a(\": unmatched ( at /patternProperties/a(",
	    "a pattern key that does not compile");
	expect_check("{\"$ref\":\"#/definitions/x\"}",
	    "$ref \"#/definitions/x\" does not resolve at /$ref",
	    "a $ref that does not resolve");
	expect_check("{\"$ref\":\"http://json-schema.org/draft-07/schema#\"}",
	    "$ref \"http://json-schema.org/draft-07/schema#\" is not a local "
	    "JSON pointer (unsupported) at /$ref",
	    "a remote $ref");
	expect_check("{\"$ref\":\"#/required\",\"required\":[\"a\"]}",
	    "$ref \"#/required\" names a value that is not a schema at /$ref",
	    "a $ref to a non-schema");
	expect_check("{\"format\":\"hostname\"}",
	    "unsupported format \"hostname\" at /format",
	    "an unsupported format");
	expect_check("{\"definitions\":{\"a\":{\"$id\":\"http://x/a\"}},"
	             "\"properties\":{\"b\":{\"$ref\":\"#/definitions/a\"}}}",
	    "\"$id\" below the root with \"$ref\" in the schema is "
	    "unsupported at /definitions/a/$id",
	    "$id below the root with a $ref");
	expect_check("{\"$id\":\"http://x/\",\"definitions\":{\"a\":{\"$id\":"
	             "\"http://x/a\"}}}",
	    NULL, "$id below the root without $ref");
	expect_check("{\"a\":{\"type\":\"integer\",\"x\":{\"minimum\":1}},"
	             "\"$ref\":\"#/a/x\"}",
	    NULL, "an unknown member a $ref points into");
	expect_check("{\"a\":{\"b\":{\"c\":1}},\"$ref\":\"#/a/b\"}",
	    "unsupported keyword \"c\" at /a/b",
	    "a $ref target is checked as a schema");
	expect_check("{\"$schema\":\"http://json-schema.org/draft-07/schema#\","
	             "\"$id\":\"http://x/\",\"title\":\"t\",\"description\":"
	             "\"d\",\"default\":1,\"examples\":[],\"$comment\":\"c\","
	             "\"readOnly\":true,\"writeOnly\":false,\"definitions\":{},"
	             "\"$defs\":{\"a\":true},\"contentMediaType\":\"a/b\","
	             "\"contentEncoding\":\"base64\"}",
	    NULL, "the annotations");
	expect_check("{\"type\":[\"null\",\"integer\"],\"enum\":[1,null],"
	             "\"const\":1,\"multipleOf\":1,\"maximum\":1,"
	             "\"exclusiveMaximum\":2,\"minimum\":0,"
	             "\"exclusiveMinimum\":-1,\"maxLength\":1,\"minLength\":0,"
	             "\"pattern\":\"^a\",\"format\":\"uuid\",\"items\":[true],"
	             "\"additionalItems\":false,\"maxItems\":1,\"minItems\":0,"
	             "\"uniqueItems\":true,\"contains\":{},"
	             "\"maxProperties\":1,\"minProperties\":0,\"required\":[],"
	             "\"properties\":{},\"patternProperties\":{},"
	             "\"additionalProperties\":{},\"dependencies\":{\"a\":[],"
	             "\"b\":{}},\"propertyNames\":{},\"allOf\":[{}],"
	             "\"anyOf\":[{}],\"oneOf\":[{}],\"not\":false,\"if\":true,"
	             "\"then\":{},\"else\":{}}",
	    NULL, "every keyword");
}

/* depth definitions, each an anyOf of the next one twice, the last false. */
static json_object *
branching(int depth)
{
	char *text = xstrdup("{\"definitions\":{"), *t;
	json_object *s;
	int i;

	for (i = 0; i < depth; i++) {
		t = xasprintf("%s\"d%d\":{\"anyOf\":[{\"$ref\":"
		              "\"#/definitions/d%d\"},{\"$ref\":"
		              "\"#/definitions/d%d\"}]},",
		    text, i, i + 1, i + 1);
		free(text);
		text = t;
	}
	t = xasprintf(
	    "%s\"d%d\":false},\"$ref\":\"#/definitions/d0\"}", text, depth);
	free(text);
	s = J(t);
	free(t);
	return s;
}

static void
test_bounds(void)
{
	json_object *s, *inst, *errs;
	const char *msg;
	clock_t t0;
	char *got;
	int n;

	got = errors("{\"$ref\":\"#\"}", "1", 10, &n);
	CHECK(n == 1 &&
	        strstr(got,
	            "more than 64 $ref and applicator "
	            "steps") != NULL,
	    "{\"$ref\":\"#\"} ends with an error");
	free(got);
	got = errors("{\"not\":{\"$ref\":\"#\"}}", "1", 10, &n);
	CHECK(n == 1 && strstr(got, "more than 64") != NULL,
	    "not of a recursive $ref is no way round the bound");
	free(got);
	got = errors("{\"anyOf\":[{\"$ref\":\"#\"},true]}", "1", 10, &n);
	CHECK(n == 1 && strstr(got, "more than 64") != NULL,
	    "nor is an anyOf with a branch that matches");
	free(got);
	got = errors("{\"properties\":{\"a\":{\"$ref\":\"#\"}}}",
	    "{\"a\":{\"a\":{\"a\":{\"b\":1}}}}", 10, &n);
	CHECK(n == 0, "a $ref that descends is no loop");
	free(got);
	s = branching(30);
	CHECK(js_check(s, NULL, 0) == 0, "js_check accepts 2^30 paths of refs");
	inst = J("1");
	errs = json_object_new_array();
	t0 = clock();
	n = js_validate(s, inst, errs, 10);
	msg = n == 1 ? json_object_get_string(json_object_object_get(
	                   json_object_array_get_idx(errs, 0), "message")) :
	               "";
	CHECK(n == 1 && strstr(msg, "1000000 steps") != NULL,
	    "2^30 paths of refs end at the step bound (%.2fs)",
	    (double)(clock() - t0) / CLOCKS_PER_SEC);
	json_object_put(errs);
	json_object_put(s);
	s = branching(10);
	CHECK(js_validate(s, inst, NULL, 10) == 1, "2^10 paths are walked");
	json_object_put(s);
	json_object_put(inst);
}

static void
test_values(void)
{
	CHECK(valid("{\"minLength\":2}", "\"\\u00e9\"") == 0 &&
	        valid("{\"maxLength\":1}", "\"\\u00e9\"") == 1 &&
	        valid("{\"maxLength\":2,\"minLength\":2}",
	            "\"\\u00e9\\u00e9\"") == 1,
	    "minLength and maxLength count code points (\"\\u00e9\" is 1)");
	CHECK(valid("{\"maxLength\":1}", "\"\\ud83d\\udca9\"") == 1,
	    "a character past U+FFFF is 1");
	CHECK(valid("{\"type\":\"integer\"}", "1.0") == 1 &&
	        valid("{\"type\":\"integer\"}", "1.5") == 0 &&
	        valid("{\"type\":\"integer\"}", "1e300") == 1,
	    "integer: a number with no fraction");
	CHECK(valid("{\"multipleOf\":0.01}", "19.99") == 1 &&
	        valid("{\"multipleOf\":0.1}", "0.3") == 1 &&
	        valid("{\"multipleOf\":0.01}", "12345678.123") == 0,
	    "multipleOf of doubles tolerates rounding, no more");
	CHECK(valid("{\"multipleOf\":2}", "9007199254740993") == 0 &&
	        valid("{\"multipleOf\":3}", "9007199254740993") == 1 &&
	        valid("{\"multipleOf\":7}", "18446744073709551615") == 0 &&
	        valid("{\"multipleOf\":5}", "18446744073709551615") == 1,
	    "multipleOf of integers is exact beyond 2^53");
	CHECK(
	    valid("{\"maximum\":9007199254740992}", "9007199254740993") == 0 &&
	        valid("{\"minimum\":9007199254740993}", "9007199254740992.0") ==
	            0,
	    "bounds compare integers exactly beyond 2^53");
	CHECK(valid("{\"exclusiveMaximum\":18446744073709551615}",
	          "1.8446744073709552e19") == 0 &&
	        valid("{\"maximum\":18446744073709551615}",
	            "18446744073709549568.0") == 1 &&
	        valid("{\"minimum\":-9223372036854775808}",
	            "-9223372036854775809.0") == 1 &&
	        valid("{\"minimum\":-9223372036854775807}",
	            "-9223372036854775808.0") == 0 &&
	        valid("{\"minimum\":1}", "0.9999999999") == 0 &&
	        valid("{\"maximum\":-1}", "-0.5") == 0 &&
	        valid("{\"maxItems\":1.5}", "[1]") == 1,
	    "integers against doubles: exact at 2^63 and 2^64, fractions");
	CHECK(valid("{\"uniqueItems\":true}", "[1,1.0]") == 0 &&
	        valid("{\"uniqueItems\":true}",
	            "[{\"a\":1,\"b\":[2]},{\"b\":[2.0],\"a\":1}]") == 0 &&
	        valid("{\"uniqueItems\":true}",
	            "[{\"a\":1},{\"a\":1,\"b\":2}]") == 1,
	    "uniqueItems: JSON equality");
	CHECK(
	    valid("{\"enum\":[{\"x\":[1,null]}]}", "{\"x\":[1.0,null]}") == 1 &&
	        valid("{\"const\":null}", "null") == 1 &&
	        valid("{\"const\":null}", "0") == 0,
	    "enum and const: JSON equality, null");
	CHECK(valid("{\"format\":\"date-time\"}", "\"1998-12-31T23:59:60Z\"") ==
	            1 &&
	        valid("{\"format\":\"date-time\"}",
	            "\"1998-12-31T15:59:60.123-08:00\"") == 1 &&
	        valid("{\"format\":\"date-time\"}",
	            "\"1998-12-31T23:58:60Z\"") == 0 &&
	        valid("{\"format\":\"date-time\"}",
	            "\"1998-12-31T23:59:59\"") == 0 &&
	        valid("{\"format\":\"date-time\"}",
	            "\"1998-12-31 23:59:59Z\"") == 0,
	    "date-time: leap seconds at 23:59:60 UTC only, offset required");
	CHECK(valid("{\"format\":\"date\"}", "\"2020-02-29\"") == 1 &&
	        valid("{\"format\":\"date\"}", "\"2019-02-29\"") == 0 &&
	        valid("{\"format\":\"date\"}", "\"2000-02-29\"") == 1 &&
	        valid("{\"format\":\"date\"}", "\"1900-02-29\"") == 0 &&
	        valid("{\"format\":\"date\"}", "\"2021-04-31\"") == 0 &&
	        valid("{\"format\":\"date\"}", "\"2021-13-01\"") == 0,
	    "date: leap years and months' lengths");
	CHECK(valid("{\"format\":\"time\"}", "\"23:59:59.5+01:00\"") == 1 &&
	        valid("{\"format\":\"time\"}", "\"24:00:00Z\"") == 0 &&
	        valid("{\"format\":\"time\"}", "\"12:00:00.Z\"") == 0,
	    "time");
	CHECK(valid("{\"format\":\"uuid\"}",
	          "\"2EB8AA08-AA98-11EA-B4AA-73B441D16380\"") == 1 &&
	        valid("{\"format\":\"uuid\"}",
	            "\"2eb8aa08-aa98-11ea-b4aa-73b441d1638\"") == 0 &&
	        valid("{\"format\":\"uuid\"}",
	            "\"2eb8aa08aa9811eab4aa73b441d16380\"") == 0,
	    "uuid");
	CHECK(valid("{\"format\":\"ipv4\"}", "\"0.0.0.0\"") == 1 &&
	        valid("{\"format\":\"ipv4\"}", "\"087.10.0.1\"") == 0 &&
	        valid("{\"format\":\"ipv4\"}", "\"1.2.3.4\\u0000\"") == 0,
	    "ipv4: no leading zeros, no NUL");
	CHECK(valid("{\"format\":\"ipv6\"}", "\"::ffff:192.168.0.1\"") == 1 &&
	        valid("{\"format\":\"ipv6\"}", "\"fe80::1%eth0\"") == 0 &&
	        valid("{\"format\":\"ipv6\"}", "\"1::2::3\"") == 0,
	    "ipv6");
	CHECK(valid("{\"format\":\"email\"}", "\"a.b+c@example.org\"") == 1 &&
	        valid("{\"format\":\"email\"}", "\"a..b@example.org\"") == 0 &&
	        valid("{\"format\":\"email\"}", "\"a@-x.org\"") == 0 &&
	        valid("{\"format\":\"email\"}", "\"a@[127.0.0.1]\"") == 1,
	    "email");
	CHECK(
	    valid("{\"format\":\"uri\"}", "\"http://[::1]:8080/a?b#c\"") == 1 &&
	        valid("{\"format\":\"uri\"}", "\"http://a:b/\"") == 0 &&
	        valid("{\"format\":\"uri\"}", "\"http://a/%zz\"") == 0,
	    "uri");
	CHECK(valid("{\"format\":\"date\"}", "5") == 1,
	    "a format ignores what is not a string");
}

static void
expect_ere(const char *ecma, const char *ere)
{
	char err[160], *got;

	got = js_pattern_ere(ecma, err, sizeof(err));
	if (ere == NULL) {
		CHECK(got == NULL, "pattern %s is unsupported: %s", ecma,
		    got == NULL ? err : got);
	} else {
		CHECK(got != NULL && strcmp(got, ere) == 0,
		    "pattern %s becomes %s", ecma, ere);
		if (got == NULL || strcmp(got, ere) != 0)
			printf("#   got %s\n", got == NULL ? err : got);
	}
	free(got);
}

static void
pattern_case(const char *pat, const char *json_inst, int want)
{
	json_object *s = json_object_new_object(), *i = J(json_inst);
	int n;

	json_object_object_add(s, "pattern", json_object_new_string(pat));
	n = js_validate(s, i, NULL, 1);
	CHECK((n == 0) == want, "pattern %s %s %s", pat,
	    want ? "matches" : "does not match", json_inst);
	json_object_put(s);
	json_object_put(i);
}

static void
test_patterns(void)
{
	expect_ere("^\\d{3}$", "^[0-9]{3}$");
	expect_ere("[a-z_]+", "[_a-z]+");
	expect_ere("(?:ab)+?c", "(ab)+c");
	expect_ere("(?<year>\\d)", "([0-9])");
	expect_ere("\\w", "[0-9A-Z_a-z]");
	expect_ere("[\\]\\-^a]", "[]a^-]");
	expect_ere("[\\^]", "\\^");
	expect_ere("[-^]", "[-^]");
	expect_ere("\\.\\/\\{", "\\./\\{");
	expect_ere("x{", "x\\{");
	expect_ere("a{2,}b{1,3}", "a{2,}b{1,3}");
	expect_ere("(?=a)", NULL);
	expect_ere("(?!a)", NULL);
	expect_ere("(?<=a)b", NULL);
	expect_ere("(?<!a)b", NULL);
	expect_ere("\\bword", NULL);
	expect_ere("(a)\\1", NULL);
	expect_ere("\\p{L}", NULL);
	expect_ere("[\\u00e9]", NULL);
	expect_ere("[\\D]", NULL);
	expect_ere("a{256}", NULL);
	expect_ere("((a{50}){50}){50}", NULL);
	expect_ere("*a", NULL);
	expect_ere("a**", NULL);
	expect_ere("[]", NULL);
	expect_ere("a\\", NULL);
	expect_ere("\\0", NULL);
	pattern_case("b", "\"abc\"", 1);
	pattern_case("^b", "\"abc\"", 0);
	pattern_case("^\\d{3}-\\d{4}$", "\"555-1234\"", 1);
	pattern_case("^\\d{3}-\\d{4}$", "\"555-12345\"", 0);
	pattern_case("^\\D+$", "\"abc\"", 1);
	pattern_case("^\\D+$", "\"ab1\"", 0);
	pattern_case("^\\S+$", "\"a b\"", 0);
	pattern_case("\\s", "\"a\\tb\"", 1);
	pattern_case("^\\W$", "\"\\u00e9\"", 1);
	pattern_case("^.$", "\"\\u00e9\"", 1);
	pattern_case("^..$", "\"\\u00e9\"", 0);
	pattern_case("^.$", "\"\\n\"", 0);
	pattern_case("^[^a]$", "\"\\u00e9\"", 1);
	pattern_case("^[^a]{2}$", "\"\\u00e9\\u00e9\"", 1);
	pattern_case("^\\u00e9{2}$", "\"\\u00e9\\u00e9\"", 1);
	pattern_case("^\\u00e9{2}$", "\"\\u00e9\\u00a9\"", 0);
	pattern_case("^\\uD83D\\uDCA9$", "\"\\ud83d\\udca9\"", 1);
	pattern_case("\\.", "\"a\"", 0);
	pattern_case("(?:ab)+?c", "\"xababc\"", 1);
	pattern_case("b$", "\"a\\u0000b\"", 1);
	pattern_case("^[\\w.-]+$", "\"a-b.c_d\"", 1);
	pattern_case("^[\\w.-]+$", "\"a b\"", 0);
}

int
main(int argc, char **argv)
{
	suite();
	test_errors();
	test_check();
	test_bounds();
	test_values();
	test_patterns();
	return tap_done();
}
