/*
 * fuzz_jsonschema.c: the libFuzzer harness of jsonschema.c (see
 * fuzz/README.md; fuzz/run builds and runs it).
 *
 * An input is a schema and an instance, both JSON text, split at the
 * first NUL or newline (so a seed is two lines).  Each is parsed as
 * provider.c parses a reply (strict, nesting at most 64, but without
 * UTF-8 validation, so that the validator meets any bytes); an input
 * that does not parse is ignored.  js_check runs on the schema, then
 * js_validate on every input, checked or not: a refused schema must not
 * crash the validator either.  Its answer must hold together, or the
 * harness aborts: a refusal has an ASCII message, the count equals the
 * errors appended and is at most max_errors, each error has its three
 * strings and an ASCII message.  Everything is freed, so that
 * LeakSanitizer finds what leaks.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "jsonschema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_object *
parse(const char *s, size_t len)
{
	struct json_tokener *tok;
	json_object *o;

	if (len > INT32_MAX || (tok = json_tokener_new_ex(64)) == NULL)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, s, (int)len);
	if (o == NULL && json_tokener_get_error(tok) == json_tokener_continue)
		/* a number at the end needs its terminator */
		o = json_tokener_parse_ex(tok, "", 1);
	if (json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

static int
ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data, *cut;
	json_object *schema, *inst, *errs, *e, *p, *sp, *m;
	size_t n, i;
	char err[256];
	int r, max;

	for (cut = text; cut < text + size && *cut != '\0' && *cut != '\n';
	     cut++)
		;
	if (cut == text + size)
		return 0;
	n = (size_t)(cut - text);
	/* JSON null parses to NULL: "null" is the only text that may. */
	schema = parse(text, n);
	inst = parse(cut + 1, size - n - 1);
	if ((schema == NULL && (n != 4 || memcmp(text, "null", 4) != 0)) ||
	    inst == NULL) {
		json_object_put(schema);
		json_object_put(inst);
		return 0;
	}
	r = js_check(schema, err, sizeof(err));
	if (r != 0 && (err[0] == '\0' || !ascii(err)))
		abort();
	max = 1 + (int)(size % 8);
	errs = json_object_new_array();
	n = (size_t)js_validate(schema, inst, errs, max);
	if (n != json_object_array_length(errs) || n > (size_t)max)
		abort();
	for (i = 0; i < n; i++) {
		e = json_object_array_get_idx(errs, i);
		if (!json_object_object_get_ex(e, "path", &p) ||
		    !json_object_object_get_ex(e, "schema_path", &sp) ||
		    !json_object_object_get_ex(e, "message", &m) ||
		    !json_object_is_type(p, json_type_string) ||
		    !json_object_is_type(sp, json_type_string) ||
		    !json_object_is_type(m, json_type_string) ||
		    !ascii(json_object_get_string(m)))
			abort();
	}
	json_object_put(errs);
	json_object_put(schema);
	json_object_put(inst);
	return 0;
}
