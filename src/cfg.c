/*
 * cfg.c: load /etc/llmq.yaml into a struct cfg (see cfg.h).
 *
 * libyaml's document loader turns the text into a node tree, which is then
 * walked against the fixed schema below.  Every key is known here: an
 * unknown or duplicate key, a value of the wrong type or out of range, or
 * a reference to a provider or model that does not exist stops the load
 * with one line, "FILE:LINE:COL: KEY.PATH: message", where LINE:COL is the
 * offending key or value (or, for a missing key, the mapping that lacks
 * it), so that "llmqd -t" points the operator at the mistake.  Nothing
 * half-built escapes: on error everything allocated so far is freed and
 * NULL returned, and a running daemon keeps its old configuration.  API
 * keys are read here, before privileges are dropped; they are wiped when
 * the configuration is freed and never copied into an error message.
 */
#include "config.h"

#include <sys/stat.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <yaml.h>

#include "cfg.h"
#include "log.h"
#include "util.h"

#ifndef RUNSTATEDIR
#define RUNSTATEDIR "/run"
#endif

#define SEC ((int64_t)1000)
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

/*
 * No duration may exceed ten years, so that code adding one to a clock
 * in microseconds cannot overflow.
 */
#define DUR_MAX (3650 * DAY)
#define CONC_MAX 10000
#define MAX_QUEUE_WAIT (24 * DAY) /* in the roles table as integer ms */
#define CACHE_TTL_DEFAULT HOUR
#define CACHE_TTL_MAX DUR_MAX
/* A config or key file larger than this is a mistake. */
#define CFG_FILE_MAX (4 << 20)
#define KEY_FILE_MAX 65536
/* A role name is part of a NOTIFY channel name (at most 63 bytes). */
#define ROLE_NAME_MAX 40
#define NAME_MAX_LEN 127 /* providers and models; SHM_NAME_LEN - 1 */
#define MAX_PROCS 64     /* SHM_MAX_PROCS / 2 */
#define MAX_SCOPES 128   /* SHM_MAX_SCOPES / 2 */

struct loader {
	const char *name; /* file name for messages */
	yaml_document_t *doc;
	struct cfg *cfg;
	char *err;
	size_t errlen;
	char path[1024]; /* dotted key path of the node at hand */
	size_t pathlen;
	int flags; /* CFG_* */
};

/* One key of a fixed-schema mapping, filled in by map_collect(). */
struct key {
	const char *name;
	yaml_node_t *key; /* NULL when the key is absent */
	yaml_node_t *val;
};

static void
wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;

	while (n-- > 0)
		*v++ = 0;
}

/*
 * Write "NAME:LINE:COL: PATH: message" into the error buffer and return
 * -1.  n is the node to blame; NULL means the top of the file.
 */
static int fail(struct loader *ld, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(struct loader *ld, const yaml_node_t *n, const char *fmt, ...)
{
	char msg[512];
	unsigned long line = 1, col = 1;
	va_list ap;

	if (n != NULL) {
		line = (unsigned long)n->start_mark.line + 1;
		col = (unsigned long)n->start_mark.column + 1;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ld->err == NULL || ld->errlen == 0)
		return -1;
	if (ld->pathlen > 0)
		snprintf(ld->err, ld->errlen, "%s:%lu:%lu: %s: %s", ld->name,
		    line, col, ld->path, msg);
	else
		snprintf(ld->err, ld->errlen, "%s:%lu:%lu: %s", ld->name, line,
		    col, msg);
	return -1;
}

/* Append ".name" to the key path; returns the length to restore. */
static size_t
path_push(struct loader *ld, const char *name)
{
	size_t old = ld->pathlen;
	int n;

	n = snprintf(ld->path + old, sizeof(ld->path) - old, "%s%s",
	    old > 0 ? "." : "", name);
	if (n < 0 || (size_t)n >= sizeof(ld->path) - old)
		ld->pathlen = sizeof(ld->path) - 1;
	else
		ld->pathlen = old + (size_t)n;
	return old;
}

static void
path_pop(struct loader *ld, size_t old)
{
	ld->pathlen = old;
	ld->path[old] = '\0';
}

static yaml_node_t *
node(struct loader *ld, int i)
{
	return yaml_document_get_node(ld->doc, i);
}

static const char *
sval(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

/* A plain empty, "~" or "null" scalar: YAML's null. */
static int
is_null(const yaml_node_t *n)
{
	const char *v = sval(n);

	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
	    strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* The value of a scalar, escaped and cut short for an error message. */
static char *
shown(const yaml_node_t *n)
{
	return str_escape(sval(n), n->data.scalar.length, 64);
}

/*
 * Check that n is a non-null scalar without NUL or control bytes, and
 * return its text in *out.  what names the expected type ("a string").
 */
static int
get_text(struct loader *ld, yaml_node_t *n, const char *what, const char **out)
{
	const unsigned char *v;
	size_t i;

	if (n->type != YAML_SCALAR_NODE)
		return fail(ld, n, "expected a scalar");
	if (is_null(n))
		return fail(ld, n, "expected %s, got null", what);
	v = n->data.scalar.value;
	for (i = 0; i < n->data.scalar.length; i++)
		if (v[i] < 0x20 || v[i] == 0x7f)
			return fail(ld, n, "contains a control character");
	if (n->data.scalar.length == 0)
		return fail(ld, n, "must not be empty");
	*out = (const char *)v;
	return 0;
}

/* Replace *out with a copy of the string in n. */
static int
get_str(struct loader *ld, yaml_node_t *n, char **out)
{
	const char *v;

	if (get_text(ld, n, "a string", &v) == -1)
		return -1;
	free(*out);
	*out = xstrdup(v);
	return 0;
}

/* Paths must be absolute: the daemon changes to "/" and reloads. */
static int
get_path(struct loader *ld, yaml_node_t *n, char **out)
{
	const char *v;
	char *s;

	if (get_text(ld, n, "a path", &v) == -1)
		return -1;
	if (v[0] != '/') {
		s = shown(n);
		fail(ld, n, "expected an absolute path, got \"%s\"", s);
		free(s);
		return -1;
	}
	return get_str(ld, n, out);
}

static int
get_int(struct loader *ld, yaml_node_t *n, long lo, long hi, int *out)
{
	const char *v, *p;
	char *s;
	long long x = 0;
	int neg = 0;

	if (get_text(ld, n, "an integer", &v) == -1)
		return -1;
	p = v;
	if (*p == '-')
		neg = 1, p++;
	if (*p == '\0')
		goto bad;
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			goto bad;
		/* Saturate: anything past the range is reported as such. */
		if (x < 1000000000000LL)
			x = x * 10 + (*p - '0');
	}
	if (neg)
		x = -x;
	if (x < lo || x > hi) {
		s = shown(n);
		fail(ld, n, "must be between %ld and %ld, got %s", lo, hi, s);
		free(s);
		return -1;
	}
	*out = (int)x;
	return 0;
bad:
	s = shown(n);
	fail(ld, n, "expected an integer, got \"%s\"", s);
	free(s);
	return -1;
}

/* A duration for a message: "1h", "1s", "100ms". */
static void
fmt_dur(char *buf, size_t len, int64_t ms)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {
		{ "d", DAY },
		{ "h", HOUR },
		{ "m", MIN },
		{ "s", SEC },
	};
	size_t i;

	for (i = 0; i < nitems(units); i++)
		if (ms != 0 && ms % units[i].ms == 0) {
			snprintf(buf, len, "%lld%s",
			    (long long)(ms / units[i].ms), units[i].unit);
			return;
		}
	snprintf(buf, len, "%lldms", (long long)ms);
}

static int
get_dur(struct loader *ld, yaml_node_t *n, int64_t lo, int64_t hi, int64_t *out)
{
	const char *v;
	char *s, b[32];
	int64_t ms;

	if (get_text(ld, n, "a duration", &v) == -1)
		return -1;
	if (cfg_parse_duration(v, &ms) == -1) {
		s = shown(n);
		fail(ld, n, "invalid duration \"%s\"", s);
		free(s);
		return -1;
	}
	if (ms < lo && lo == 1)
		return fail(ld, n, "must be greater than 0");
	if (ms < lo) {
		fmt_dur(b, sizeof(b), lo);
		return fail(ld, n, "must be at least %s", b);
	}
	if (ms > hi) {
		fmt_dur(b, sizeof(b), hi);
		return fail(ld, n, "must be at most %s", b);
	}
	*out = ms;
	return 0;
}

/*
 * A size in bytes: digits and an optional binary multiple, "8M", "512k".
 * Returns 0, or -1 when malformed or past 1G.
 */
static int
parse_size(const char *s, size_t *out)
{
	uint64_t x = 0, mul = 1;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++)
		if ((x = x * 10 + (uint64_t)(*p - '0')) > (1U << 30))
			return -1;
	if (*p == 'k' || *p == 'K')
		mul = 1U << 10, p++;
	else if (*p == 'M')
		mul = 1U << 20, p++;
	else if (*p == 'G')
		mul = 1U << 30, p++;
	if (*p != '\0' || x * mul > (1U << 30))
		return -1;
	*out = (size_t)(x * mul);
	return 0;
}

static int
get_size(struct loader *ld, yaml_node_t *n, size_t lo, size_t hi, size_t *out)
{
	const char *v;
	char *s;
	size_t x;

	if (get_text(ld, n, "a size", &v) == -1)
		return -1;
	if (parse_size(v, &x) == -1) {
		s = shown(n);
		fail(ld, n, "invalid size \"%s\"", s);
		free(s);
		return -1;
	}
	if (x < lo || x > hi)
		return fail(ld, n, "must be between %zu and %zu bytes", lo, hi);
	*out = x;
	return 0;
}

/*
 * A mapping, or a null standing for an empty one: a section whose keys
 * are all commented out ("limits:" alone) is not an error.
 */
static int
is_map(const yaml_node_t *n)
{
	return n->type == YAML_MAPPING_NODE ||
	    (n->type == YAML_SCALAR_NODE && is_null(n));
}

/*
 * Match the pairs of a mapping against keys (ended by a NULL name),
 * refusing unknown and duplicate keys.
 */
static int
map_collect(struct loader *ld, yaml_node_t *map, struct key *keys)
{
	yaml_node_pair_t *p;
	yaml_node_t *k;
	struct key *kk;
	size_t old;

	if (!is_map(map))
		return fail(ld, map, "expected a mapping");
	if (map->type != YAML_MAPPING_NODE)
		return 0;
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		k = node(ld, p->key);
		if (k->type != YAML_SCALAR_NODE)
			return fail(ld, k, "expected a scalar");
		for (kk = keys; kk->name != NULL; kk++)
			if (strlen(kk->name) == k->data.scalar.length &&
			    strcmp(kk->name, sval(k)) == 0)
				break;
		old = path_push(ld, sval(k));
		if (kk->name == NULL)
			return fail(ld, k, "unknown key");
		if (kk->key != NULL)
			return fail(ld, k, "duplicate key");
		path_pop(ld, old);
		kk->key = k;
		kk->val = node(ld, p->value);
	}
	return 0;
}

static struct key *
key_get(struct key *keys, const char *name)
{
	for (; keys->name != NULL; keys++)
		if (strcmp(keys->name, name) == 0)
			return keys;
	fatalx("cfg: no key \"%s\" in schema", name);
}

/*
 * The opt_* helpers read an optional key of a collected mapping into *out
 * and leave the default there when the key is absent.
 */
static int
opt_str(struct loader *ld, struct key *keys, const char *name, char **out)
{
	struct key *k = key_get(keys, name);
	size_t old;

	if (k->key == NULL)
		return 0;
	old = path_push(ld, name);
	if (get_str(ld, k->val, out) == -1)
		return -1;
	path_pop(ld, old);
	return 0;
}

static int
opt_path(struct loader *ld, struct key *keys, const char *name, char **out)
{
	struct key *k = key_get(keys, name);
	size_t old;

	if (k->key == NULL)
		return 0;
	old = path_push(ld, name);
	if (get_path(ld, k->val, out) == -1)
		return -1;
	path_pop(ld, old);
	return 0;
}

static int
opt_int(struct loader *ld, struct key *keys, const char *name, long lo, long hi,
    int *out)
{
	struct key *k = key_get(keys, name);
	size_t old;

	if (k->key == NULL)
		return 0;
	old = path_push(ld, name);
	if (get_int(ld, k->val, lo, hi, out) == -1)
		return -1;
	path_pop(ld, old);
	return 0;
}

static int
opt_dur(struct loader *ld, struct key *keys, const char *name, int64_t lo,
    int64_t hi, int64_t *out)
{
	struct key *k = key_get(keys, name);
	size_t old;

	if (k->key == NULL)
		return 0;
	old = path_push(ld, name);
	if (get_dur(ld, k->val, lo, hi, out) == -1)
		return -1;
	path_pop(ld, old);
	return 0;
}

/*
 * A boolean: true/false, yes/no or on/off, the forms of YAML 1.1 that
 * operators write (YAML 1.2 keeps only the first pair).
 */
static int
get_bool(struct loader *ld, yaml_node_t *n, int *out)
{
	static const char *const yes[] = { "true", "yes", "on" };
	static const char *const no[] = { "false", "no", "off" };
	const char *v;
	char *s;
	size_t i;

	if (get_text(ld, n, "true or false", &v) == -1)
		return -1;
	for (i = 0; i < nitems(yes); i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	s = shown(n);
	fail(ld, n, "expected true or false, got \"%s\"", s);
	free(s);
	return -1;
}

static int
opt_bool(struct loader *ld, struct key *keys, const char *name, int *out)
{
	struct key *k = key_get(keys, name);
	size_t old;

	if (k->key == NULL)
		return 0;
	old = path_push(ld, name);
	if (get_bool(ld, k->val, out) == -1)
		return -1;
	path_pop(ld, old);
	return 0;
}

/*
 * roles.R.cache: false (the default), true (entries live CACHE_TTL_DEFAULT)
 * or a duration, the time to live of the entries.  *ttl is 0 for false.
 */
static int
get_cache(struct loader *ld, yaml_node_t *n, int64_t *ttl)
{
	int on;

	if (n->type == YAML_SCALAR_NODE && isdigit((unsigned char)sval(n)[0]))
		return get_dur(ld, n, 1000, CACHE_TTL_MAX, ttl);
	if (get_bool(ld, n, &on) == -1)
		return -1;
	*ttl = on ? CACHE_TTL_DEFAULT : 0;
	return 0;
}

/* "KEY: missing required key" at the mapping that lacks it. */
static int
missing(struct loader *ld, yaml_node_t *map, const char *name)
{
	path_push(ld, name);
	return fail(ld, map, "missing required key");
}

/*
 * Check the key of pair i of a name -> settings mapping (providers, models,
 * roles): a scalar, not null, and not seen before in the same mapping.
 */
static int
map_name(struct loader *ld, yaml_node_t *map, size_t i, const char **name)
{
	yaml_node_pair_t *pairs = map->data.mapping.pairs.start;
	yaml_node_t *k = node(ld, pairs[i].key), *o;
	size_t j;

	if (get_text(ld, k, "a name", name) == -1)
		return -1;
	/* Names are kept in the shared memory table (shm.h). */
	if (strlen(*name) > NAME_MAX_LEN) {
		path_push(ld, *name);
		return fail(ld, k, "name longer than %d bytes", NAME_MAX_LEN);
	}
	for (j = 0; j < i; j++) {
		o = node(ld, pairs[j].key);
		if (o->type == YAML_SCALAR_NODE &&
		    o->data.scalar.length == k->data.scalar.length &&
		    strcmp(sval(o), *name) == 0) {
			path_push(ld, *name);
			return fail(ld, k, "duplicate key");
		}
	}
	return 0;
}

static size_t
map_len(const yaml_node_t *map)
{
	if (map->type != YAML_MAPPING_NODE)
		return 0;
	return (size_t)(map->data.mapping.pairs.top -
	    map->data.mapping.pairs.start);
}

static yaml_node_pair_t *
map_pairs(const yaml_node_t *map)
{
	if (map->type != YAML_MAPPING_NODE)
		return NULL;
	return map->data.mapping.pairs.start;
}

/*
 * Read an API key from a file that only its owner may read, so that a
 * key never sits where other local users can see it.
 */
static int
read_key_file(struct loader *ld, yaml_node_t *n, const char *file, char **out)
{
	struct stat st;
	char *buf;
	ssize_t r;
	size_t len = 0, i;
	int fd, rv = -1;

	if ((fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1)
		return fail(
		    ld, n, "could not open \"%s\": %s", file, strerror(errno));
	if (fstat(fd, &st) == -1) {
		fail(ld, n, "could not stat \"%s\": %s", file, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		fail(ld, n, "api_key_file \"%s\" is not a regular file", file);
		close(fd);
		return -1;
	}
	if (st.st_mode & 077) {
		fail(ld, n,
		    "api_key_file \"%s\" is readable by group or others", file);
		close(fd);
		return -1;
	}
	buf = xmalloc(KEY_FILE_MAX + 1);
	for (;;) {
		r = read(fd, buf + len, KEY_FILE_MAX + 1 - len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			fail(ld, n, "could not read \"%s\": %s", file,
			    strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > KEY_FILE_MAX) {
			fail(ld, n, "api_key_file \"%s\" is too large", file);
			goto out;
		}
	}
	while (len > 0 &&
	    (buf[len - 1] == '\n' || buf[len - 1] == '\r' ||
	        buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		len--;
	buf[len] = '\0';
	if (len == 0) {
		fail(ld, n, "api_key_file \"%s\" is empty", file);
		goto out;
	}
	/* The key goes into an HTTP header: no line breaks, no controls. */
	for (i = 0; i < len; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) {
			fail(ld, n,
			    "api_key_file \"%s\" contains control characters",
			    file);
			goto out;
		}
	*out = xstrdup(buf);
	rv = 0;
out:
	wipe(buf, KEY_FILE_MAX + 1);
	free(buf);
	close(fd);
	return rv;
}

static int
read_key_env(struct loader *ld, yaml_node_t *n, const char *var, char **out)
{
	const char *v;
	size_t i;

	if ((v = getenv(var)) == NULL)
		return fail(
		    ld, n, "environment variable \"%s\" is not set", var);
	if (*v == '\0')
		return fail(ld, n, "environment variable \"%s\" is empty", var);
	for (i = 0; v[i] != '\0'; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return fail(ld, n,
			    "environment variable \"%s\" contains control "
			    "characters",
			    var);
	*out = xstrdup(v);
	return 0;
}

static int
load_provider(struct loader *ld, struct cfg_provider *p, yaml_node_t *map)
{
	struct key keys[] = {
		{ "kind", NULL, NULL },
		{ "url", NULL, NULL },
		{ "timeout", NULL, NULL },
		{ "connect_timeout", NULL, NULL },
		{ "concurrency", NULL, NULL },
		{ "max_response", NULL, NULL },
		{ "api_key_file", NULL, NULL },
		{ "api_key_env", NULL, NULL },
		{ "cooldown", NULL, NULL },
		{ "response_format", NULL, NULL },
		{ "strict_schema", NULL, NULL },
		{ NULL, NULL, NULL },
	};
	struct key cd[] = { { "failures", NULL, NULL },
		{ "window", NULL, NULL }, { "duration", NULL, NULL },
		{ NULL, NULL, NULL } };
	struct key *k, *kf, *ke;
	const char *v, *host = NULL;
	size_t old, len;
	char *s;

	if (map_collect(ld, map, keys) == -1)
		return -1;

	k = key_get(keys, "kind");
	if (k->key == NULL)
		return missing(ld, map, "kind");
	old = path_push(ld, "kind");
	if (get_text(ld, k->val, "a string", &v) == -1)
		return -1;
	if (strcmp(v, "ollama") == 0)
		p->kind = PROV_OLLAMA;
	else if (strcmp(v, "openai") == 0)
		p->kind = PROV_OPENAI;
	else {
		s = shown(k->val);
		fail(ld, k->val,
		    "unknown provider kind \"%s\" (expected ollama or openai)",
		    s);
		free(s);
		return -1;
	}
	path_pop(ld, old);

	k = key_get(keys, "url");
	if (k->key == NULL)
		return missing(ld, map, "url");
	old = path_push(ld, "url");
	if (get_text(ld, k->val, "a URL", &v) == -1)
		return -1;
	if (strncmp(v, "http://", 7) == 0)
		host = v + 7;
	else if (strncmp(v, "https://", 8) == 0)
		host = v + 8;
	if (host == NULL || *host == '\0' || *host == '/') {
		s = shown(k->val);
		fail(ld, k->val,
		    "expected an http:// or https:// URL, got \"%s\"", s);
		free(s);
		return -1;
	}
	if (strchr(v, ' ') != NULL)
		return fail(ld, k->val, "URL contains white space");
	len = strlen(v);
	while (len > 0 && v[len - 1] == '/')
		len--;
	p->url = xstrndup(v, len);
	path_pop(ld, old);

	if (opt_dur(ld, keys, "timeout", 1, DUR_MAX, &p->timeout_ms) == -1 ||
	    opt_dur(ld, keys, "connect_timeout", 1, DUR_MAX,
	        &p->connect_timeout_ms) == -1 ||
	    opt_int(ld, keys, "concurrency", 0, CONC_MAX, &p->concurrency) ==
	        -1)
		return -1;
	if ((k = key_get(keys, "response_format"))->key != NULL) {
		old = path_push(ld, k->name);
		if (get_text(ld, k->val, "a string", &v) == -1)
			return -1;
		if (strcmp(v, "schema") == 0)
			p->response_format = RESP_SCHEMA;
		else if (strcmp(v, "json") == 0)
			p->response_format = RESP_JSON;
		else if (strcmp(v, "none") == 0)
			p->response_format = RESP_NONE;
		else {
			s = shown(k->val);
			fail(ld, k->val,
			    "unknown response_format \"%s\" (expected schema, "
			    "json or none)",
			    s);
			free(s);
			return -1;
		}
		path_pop(ld, old);
	}
	if (opt_bool(ld, keys, "strict_schema", &p->strict_schema) == -1)
		return -1;
	if ((k = key_get(keys, "cooldown"))->key != NULL) {
		old = path_push(ld, k->name);
		if (map_collect(ld, k->val, cd) == -1 ||
		    opt_int(ld, cd, "failures", 0, 1000, &p->cool_failures) ==
		        -1 ||
		    opt_dur(ld, cd, "window", 1, DAY, &p->cool_window_ms) ==
		        -1 ||
		    opt_dur(ld, cd, "duration", 1, DAY, &p->cool_ms) == -1)
			return -1;
		path_pop(ld, old);
	}
	if ((k = key_get(keys, "max_response"))->key != NULL) {
		old = path_push(ld, k->name);
		if (get_size(ld, k->val, 1024, 1U << 30, &p->max_response) ==
		    -1)
			return -1;
		path_pop(ld, old);
	}

	kf = key_get(keys, "api_key_file");
	ke = key_get(keys, "api_key_env");
	if (kf->key != NULL && ke->key != NULL) {
		/* Blame whichever comes second. */
		k = kf->key->start_mark.index > ke->key->start_mark.index ? kf :
		                                                            ke;
		path_push(ld, k->name);
		return fail(ld, k->key,
		    "api_key_file and api_key_env are mutually exclusive");
	}
	if (kf->key != NULL) {
		old = path_push(ld, kf->name);
		if (get_text(ld, kf->val, "a path", &v) == -1)
			return -1;
		if (v[0] != '/') {
			s = shown(kf->val);
			fail(ld, kf->val,
			    "expected an absolute path, got \"%s\"", s);
			free(s);
			return -1;
		}
		if (!(ld->flags & CFG_NO_SECRETS) &&
		    read_key_file(ld, kf->val, v, &p->api_key) == -1)
			return -1;
		path_pop(ld, old);
	}
	if (ke->key != NULL) {
		old = path_push(ld, ke->name);
		if (get_text(ld, ke->val, "a variable name", &v) == -1)
			return -1;
		if (!(ld->flags & CFG_NO_SECRETS) &&
		    read_key_env(ld, ke->val, v, &p->api_key) == -1)
			return -1;
		path_pop(ld, old);
	}
	return 0;
}

static int
load_providers(struct loader *ld, yaml_node_t *map)
{
	struct cfg *c = ld->cfg;
	yaml_node_pair_t *pairs;
	struct cfg_provider *p;
	const char *name;
	size_t i, old;

	if (!is_map(map))
		return fail(ld, map, "expected a mapping");
	pairs = map_pairs(map);
	c->nproviders = map_len(map);
	c->providers = xcalloc(c->nproviders, sizeof(*c->providers));
	for (i = 0; i < c->nproviders; i++) {
		p = &c->providers[i];
		p->timeout_ms = 60 * SEC;
		p->connect_timeout_ms = 5 * SEC;
		p->max_response = 8U << 20;
		p->cool_failures = 5;
		p->cool_window_ms = 10 * SEC;
		p->cool_ms = 10 * SEC;
		if (map_name(ld, map, i, &name) == -1)
			return -1;
		p->name = xstrdup(name);
		old = path_push(ld, name);
		if (load_provider(ld, p, node(ld, pairs[i].value)) == -1)
			return -1;
		path_pop(ld, old);
	}
	return 0;
}

static int
provider_find(const struct cfg *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->nproviders; i++)
		if (strcmp(c->providers[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* A reference by name to a model, as an index. */
static int
model_ref(struct loader *ld, yaml_node_t *n, int *out)
{
	const char *v;
	char *s;

	if (get_text(ld, n, "a model name", &v) == -1)
		return -1;
	if ((*out = cfg_model_find(ld->cfg, v)) == -1) {
		s = shown(n);
		fail(ld, n, "unknown model \"%s\"", s);
		free(s);
		return -1;
	}
	return 0;
}

static const char *const err_kinds[ERR_COUNT] = { "timeout", "provider_down",
	"rate_limited", "http_error", "bad_request", "parse_error",
	"validation_error" };

int
cfg_err_kind(const char *name)
{
	int i;

	for (i = 0; i < ERR_COUNT; i++)
		if (strcmp(name, err_kinds[i]) == 0)
			return i;
	return -1;
}

/* The items of a sequence (a single scalar reads as one item). */
static int
seq_items(struct loader *ld, yaml_node_t *n, yaml_node_t ***items, size_t *len)
{
	yaml_node_item_t *it;
	size_t i;

	if (n->type == YAML_SCALAR_NODE) {
		*items = xcalloc(1, sizeof(**items));
		(*items)[0] = n;
		*len = 1;
		return 0;
	}
	if (n->type != YAML_SEQUENCE_NODE)
		return fail(ld, n, "expected a list");
	*len =
	    (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	*items = xcalloc(*len > 0 ? *len : 1, sizeof(**items));
	for (i = 0, it = n->data.sequence.items.start; i < *len; i++, it++)
		(*items)[i] = node(ld, *it);
	return 0;
}

/* fallback_on: a list of error kinds, into a mask. */
static int
load_fallback_on(struct loader *ld, yaml_node_t *n, unsigned *mask)
{
	yaml_node_t **items;
	const char *v;
	size_t i, len;
	int k;
	char *s;

	if (seq_items(ld, n, &items, &len) == -1)
		return -1;
	*mask = 0;
	for (i = 0; i < len; i++) {
		if (get_text(ld, items[i], "an error kind", &v) == -1)
			break;
		if ((k = cfg_err_kind(v)) == -1) {
			s = shown(items[i]);
			fail(ld, items[i],
			    "unknown error kind \"%s\" (timeout, "
			    "provider_down, rate_limited, http_error, "
			    "bad_request, parse_error or validation_error)",
			    s);
			free(s);
			break;
		}
		*mask |= 1U << k;
	}
	free(items);
	return i == len ? 0 : -1;
}

static int
load_model(struct loader *ld, struct cfg_model *m, yaml_node_t *map)
{
	struct key keys[] = {
		{ "provider", NULL, NULL },
		{ "fallback", NULL, NULL },
		{ "concurrency", NULL, NULL },
		{ "cluster_concurrency", NULL, NULL },
		{ "fallback_on", NULL, NULL },
		{ NULL, NULL, NULL },
	};
	struct key *k;
	const char *v;
	size_t old;
	char *s;

	if (map_collect(ld, map, keys) == -1)
		return -1;

	k = key_get(keys, "provider");
	if (k->key == NULL)
		return missing(ld, map, "provider");
	old = path_push(ld, k->name);
	if (get_text(ld, k->val, "a provider name", &v) == -1)
		return -1;
	if ((m->provider = provider_find(ld->cfg, v)) == -1) {
		s = shown(k->val);
		fail(ld, k->val, "unknown provider \"%s\"", s);
		free(s);
		return -1;
	}
	path_pop(ld, old);

	if ((k = key_get(keys, "fallback"))->key != NULL) {
		old = path_push(ld, k->name);
		if (model_ref(ld, k->val, &m->fallback) == -1)
			return -1;
		if (&ld->cfg->models[m->fallback] == m)
			return fail(
			    ld, k->val, "a model cannot be its own fallback");
		path_pop(ld, old);
	}
	if ((k = key_get(keys, "fallback_on"))->key != NULL) {
		old = path_push(ld, k->name);
		if (load_fallback_on(ld, k->val, &m->fallback_on) == -1)
			return -1;
		path_pop(ld, old);
	}
	if (opt_int(ld, keys, "concurrency", 0, CONC_MAX, &m->concurrency) ==
	        -1 ||
	    opt_int(ld, keys, "cluster_concurrency", 0, CONC_MAX,
	        &m->cluster_concurrency) == -1)
		return -1;
	return 0;
}

/* All names first, so that a fallback may name a model defined later. */
static int
load_models(struct loader *ld, yaml_node_t *map)
{
	struct cfg *c = ld->cfg;
	yaml_node_pair_t *pairs;
	const char *name;
	size_t i, old;

	if (!is_map(map))
		return fail(ld, map, "expected a mapping");
	pairs = map_pairs(map);
	c->nmodels = map_len(map);
	c->models = xcalloc(c->nmodels, sizeof(*c->models));
	for (i = 0; i < c->nmodels; i++) {
		if (map_name(ld, map, i, &name) == -1)
			return -1;
		c->models[i].name = xstrdup(name);
		c->models[i].provider = -1;
		c->models[i].fallback = -1;
		c->models[i].fallback_on = 1U << ERR_TIMEOUT;
	}
	for (i = 0; i < c->nmodels; i++) {
		old = path_push(ld, c->models[i].name);
		if (load_model(ld, &c->models[i], node(ld, pairs[i].value)) ==
		    -1)
			return -1;
		path_pop(ld, old);
	}
	return 0;
}

/* Role names become NOTIFY channel names: ^[a-z][a-z0-9_]{0,39}$. */
static int
role_name_ok(const char *s)
{
	size_t i;

	if (s[0] < 'a' || s[0] > 'z')
		return 0;
	for (i = 1; s[i] != '\0'; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		        (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return i <= ROLE_NAME_MAX;
}

static int
load_role_model(struct loader *ld, struct cfg_role *r, yaml_node_t *n)
{
	struct key keys[CX_COUNT + 1];
	int i, any = 0;
	size_t old;

	if (n->type != YAML_MAPPING_NODE)
		return model_ref(ld, n, &r->model);
	memset(keys, 0, sizeof(keys));
	for (i = 0; i < CX_COUNT; i++)
		keys[i].name = cfg_complexity_name((enum complexity)i);
	if (map_collect(ld, n, keys) == -1)
		return -1;
	for (i = 0; i < CX_COUNT; i++) {
		if (keys[i].key == NULL)
			continue;
		old = path_push(ld, keys[i].name);
		if (model_ref(ld, keys[i].val, &r->by_complexity[i]) == -1)
			return -1;
		path_pop(ld, old);
		any = 1;
	}
	if (!any)
		return fail(ld, n,
		    "expected a model name, or at least one of simple, medium "
		    "and complex");
	return 0;
}

static int
load_role(struct loader *ld, struct cfg_role *r, yaml_node_t *map)
{
	struct key keys[] = {
		{ "processes", NULL, NULL },
		{ "concurrency", NULL, NULL },
		{ "model", NULL, NULL },
		{ "timeout", NULL, NULL },
		{ "max_attempts", NULL, NULL },
		{ "max_queue_wait", NULL, NULL },
		{ "backoff", NULL, NULL },
		{ "allow_models", NULL, NULL },
		{ "stream", NULL, NULL },
		{ "cache", NULL, NULL },
		{ "max_reasks", NULL, NULL },
		{ NULL, NULL, NULL },
	};
	struct key bo[] = { { "base", NULL, NULL }, { "cap", NULL, NULL },
		{ NULL, NULL, NULL } };
	struct key *k, *kp, *kc;
	size_t old;

	if (map_collect(ld, map, keys) == -1)
		return -1;
	if (opt_int(ld, keys, "processes", 1, 64, &r->processes) == -1 ||
	    opt_int(ld, keys, "concurrency", 1, CONC_MAX, &r->concurrency) ==
	        -1)
		return -1;
	/* Each process takes a share of the role's slots: at least one. */
	if (r->concurrency < r->processes) {
		kp = key_get(keys, "processes");
		kc = key_get(keys, "concurrency");
		path_push(ld, "concurrency");
		return fail(ld, kc->key != NULL ? kc->val : kp->val,
		    "concurrency must be at least processes (%d)",
		    r->processes);
	}
	k = key_get(keys, "model");
	if (k->key == NULL)
		return missing(ld, map, "model");
	old = path_push(ld, k->name);
	if (load_role_model(ld, r, k->val) == -1)
		return -1;
	path_pop(ld, old);
	if (opt_dur(ld, keys, "timeout", 0, DUR_MAX, &r->timeout_ms) == -1 ||
	    opt_int(ld, keys, "max_attempts", 1, 100, &r->max_attempts) == -1 ||
	    opt_dur(ld, keys, "max_queue_wait", 1, MAX_QUEUE_WAIT,
	        &r->max_queue_wait_ms) == -1)
		return -1;
	if (opt_bool(ld, keys, "stream", &r->stream) == -1 ||
	    opt_int(ld, keys, "max_reasks", 0, 10, &r->max_reasks) == -1)
		return -1;
	if ((k = key_get(keys, "cache"))->key != NULL) {
		old = path_push(ld, k->name);
		if (get_cache(ld, k->val, &r->cache_ttl_ms) == -1)
			return -1;
		path_pop(ld, old);
	}
	if ((k = key_get(keys, "allow_models"))->key != NULL) {
		yaml_node_t **items;
		size_t n, j;

		old = path_push(ld, k->name);
		if (seq_items(ld, k->val, &items, &n) == -1)
			return -1;
		r->allow_models = xcalloc(n > 0 ? n : 1, sizeof(int));
		for (j = 0; j < n; j++)
			if (model_ref(ld, items[j], &r->allow_models[j]) == -1)
				break;
		free(items);
		if (j < n)
			return -1;
		r->nallow = n;
		path_pop(ld, old);
	}
	{
		int all[CFG_ROLE_MODELS_MAX + 1];

		if (cfg_role_models(ld->cfg, r, all, CFG_ROLE_MODELS_MAX + 1) >
		    CFG_ROLE_MODELS_MAX)
			return fail(ld, map,
			    "rows of this role may go to more than %d models, "
			    "fallbacks included",
			    CFG_ROLE_MODELS_MAX);
	}
	if ((k = key_get(keys, "backoff"))->key != NULL) {
		old = path_push(ld, k->name);
		if (map_collect(ld, k->val, bo) == -1 ||
		    opt_dur(ld, bo, "base", 1, DAY, &r->backoff_base_ms) ==
		        -1 ||
		    opt_dur(ld, bo, "cap", 1, DAY, &r->backoff_cap_ms) == -1)
			return -1;
		if (r->backoff_cap_ms < r->backoff_base_ms)
			return fail(ld,
			    key_get(bo, "cap")->key != NULL ?
			        key_get(bo, "cap")->val :
			        k->val,
			    "cap must be at least base");
		path_pop(ld, old);
	}
	return 0;
}

static int
load_roles(struct loader *ld, yaml_node_t *map)
{
	struct cfg *c = ld->cfg;
	yaml_node_pair_t *pairs;
	struct cfg_role *r;
	const char *name;
	size_t i, old;
	char *s;
	int j;

	if (!is_map(map))
		return fail(ld, map, "expected a mapping");
	if (map_len(map) == 0)
		return fail(ld, map, "at least one role is required");
	pairs = map_pairs(map);
	c->nroles = map_len(map);
	c->roles = xcalloc(c->nroles, sizeof(*c->roles));
	for (i = 0; i < c->nroles; i++) {
		r = &c->roles[i];
		r->processes = 1;
		r->concurrency = 1;
		r->model = -1;
		for (j = 0; j < CX_COUNT; j++)
			r->by_complexity[j] = -1;
		r->max_attempts = 3;
		r->max_reasks = 1;
		r->backoff_base_ms = SEC;
		r->backoff_cap_ms = 60 * SEC;
		if (map_name(ld, map, i, &name) == -1)
			return -1;
		old = path_push(ld, name);
		if (!role_name_ok(name)) {
			s = shown(node(ld, pairs[i].key));
			fail(ld, node(ld, pairs[i].key),
			    "invalid role name \"%s\" (expected "
			    "[a-z][a-z0-9_]*, at most %d characters)",
			    s, ROLE_NAME_MAX);
			free(s);
			return -1;
		}
		r->name = xstrdup(name);
		if (load_role(ld, r, node(ld, pairs[i].value)) == -1)
			return -1;
		path_pop(ld, old);
	}
	return 0;
}

static int
load_top(struct loader *ld, yaml_node_t *root)
{
	struct key keys[] = {
		{ "database", NULL, NULL },
		{ "user", NULL, NULL },
		{ "pidfile", NULL, NULL },
		{ "log", NULL, NULL },
		{ "log_level", NULL, NULL },
		{ "poll_interval", NULL, NULL },
		{ "batch_size", NULL, NULL },
		{ "lease", NULL, NULL },
		{ "shutdown_timeout", NULL, NULL },
		{ "retention", NULL, NULL },
		{ "crash_limit", NULL, NULL },
		{ "crash_window", NULL, NULL },
		{ "limits", NULL, NULL },
		{ "providers", NULL, NULL },
		{ "models", NULL, NULL },
		{ "roles", NULL, NULL },
		{ "consumer", NULL, NULL },
		{ NULL, NULL, NULL },
	};
	struct key lim[] = { { "global", NULL, NULL }, { NULL, NULL, NULL } };
	struct key con[] = { { "metrics_file", NULL, NULL },
		{ "interval", NULL, NULL }, { NULL, NULL, NULL } };
	struct cfg *c = ld->cfg;
	struct key *k;
	const char *v;
	size_t old, i, n;
	char *s;

	/* An empty file, or one holding only comments. */
	if (root == NULL || (root->type == YAML_SCALAR_NODE && is_null(root))) {
		path_push(ld, "database");
		return fail(ld, NULL, "missing required key");
	}
	if (map_collect(ld, root, keys) == -1)
		return -1;
	if (key_get(keys, "database")->key == NULL)
		return missing(ld, root, "database");
	if (key_get(keys, "roles")->key == NULL)
		return missing(ld, root, "roles");

	if (opt_str(ld, keys, "database", &c->database) == -1 ||
	    opt_str(ld, keys, "user", &c->user) == -1 ||
	    opt_path(ld, keys, "pidfile", &c->pidfile) == -1)
		return -1;

	if ((k = key_get(keys, "log"))->key != NULL) {
		old = path_push(ld, k->name);
		if (get_text(ld, k->val, "a string", &v) == -1)
			return -1;
		if (strcmp(v, "syslog") != 0 && strcmp(v, "stderr") != 0 &&
		    v[0] != '/') {
			s = shown(k->val);
			fail(ld, k->val,
			    "expected syslog, stderr or an absolute path, "
			    "got \"%s\"",
			    s);
			free(s);
			return -1;
		}
		free(c->log);
		c->log = xstrdup(v);
		path_pop(ld, old);
	}
	if ((k = key_get(keys, "log_level"))->key != NULL) {
		old = path_push(ld, k->name);
		if (get_text(ld, k->val, "a string", &v) == -1)
			return -1;
		if ((c->log_level = log_level_parse(v)) == -1) {
			s = shown(k->val);
			fail(ld, k->val,
			    "unknown log level \"%s\" (expected error, "
			    "warning, notice, info or debug)",
			    s);
			free(s);
			return -1;
		}
		path_pop(ld, old);
	}

	if (opt_dur(ld, keys, "poll_interval", 1, HOUR, &c->poll_interval_ms) ==
	        -1 ||
	    opt_int(ld, keys, "batch_size", 1, 10000, &c->batch_size) == -1 ||
	    opt_dur(ld, keys, "lease", SEC, DUR_MAX, &c->lease_ms) == -1 ||
	    opt_dur(ld, keys, "shutdown_timeout", 0, DUR_MAX,
	        &c->shutdown_timeout_ms) == -1 ||
	    opt_dur(ld, keys, "retention", 1, DUR_MAX, &c->retention_ms) ==
	        -1 ||
	    opt_int(ld, keys, "crash_limit", 1, 1000, &c->crash_limit) == -1 ||
	    opt_dur(ld, keys, "crash_window", 1, DUR_MAX,
	        &c->crash_window_ms) == -1)
		return -1;

	if ((k = key_get(keys, "limits"))->key != NULL) {
		old = path_push(ld, k->name);
		if (map_collect(ld, k->val, lim) == -1 ||
		    opt_int(ld, lim, "global", 0, CONC_MAX, &c->limit_global) ==
		        -1)
			return -1;
		path_pop(ld, old);
	}
	/* In this order: models refer to providers, roles to models. */
	if ((k = key_get(keys, "providers"))->key != NULL) {
		old = path_push(ld, k->name);
		if (load_providers(ld, k->val) == -1)
			return -1;
		path_pop(ld, old);
	}
	if ((k = key_get(keys, "models"))->key != NULL) {
		old = path_push(ld, k->name);
		if (load_models(ld, k->val) == -1)
			return -1;
		path_pop(ld, old);
	}
	k = key_get(keys, "roles");
	old = path_push(ld, k->name);
	if (load_roles(ld, k->val) == -1)
		return -1;
	/*
	 * The shared memory tables (shm.h) must hold two generations at
	 * once while a reload drains: half of each is ours.
	 */
	for (i = 0, n = 1; i < c->nroles; i++)
		n += c->roles[i].processes;
	if (n > MAX_PROCS)
		return fail(ld, k->val,
		    "%zu processes in all (with the consumer); at most %d", n,
		    MAX_PROCS);
	if ((n = 1 + c->nroles + c->nmodels + c->nproviders) > MAX_SCOPES)
		return fail(ld, k->val,
		    "%zu roles, models and providers in all; at most %d", n - 1,
		    MAX_SCOPES - 1);
	path_pop(ld, old);
	if ((k = key_get(keys, "consumer"))->key != NULL) {
		old = path_push(ld, k->name);
		if (map_collect(ld, k->val, con) == -1 ||
		    opt_path(ld, con, "metrics_file", &c->metrics_file) == -1 ||
		    opt_dur(ld, con, "interval", 1, DUR_MAX,
		        &c->consumer_interval_ms) == -1)
			return -1;
		path_pop(ld, old);
	}
	return 0;
}

static struct cfg *
cfg_new(const char *name)
{
	struct cfg *c;

	c = xcalloc(1, sizeof(*c));
	c->path = xstrdup(name);
	c->pidfile = xstrdup(RUNSTATEDIR "/llmq/llmqd.pid");
	c->log = xstrdup("syslog");
	c->log_level = LOG_INFO;
	c->poll_interval_ms = 100;
	c->batch_size = 50;
	c->lease_ms = 5 * MIN;
	c->shutdown_timeout_ms = 30 * SEC;
	c->retention_ms = 90 * DAY;
	c->crash_limit = 5;
	c->crash_window_ms = 60 * SEC;
	c->consumer_interval_ms = 1 * SEC;
	return c;
}

/*
 * libyaml's own message.  A reader error (bad encoding) carries a byte
 * offset rather than a mark: count lines up to it.
 */
static void
syntax_error(
    struct loader *ld, const yaml_parser_t *yp, const char *text, size_t len)
{
	unsigned long line, col;
	size_t i;

	if (yp->error == YAML_MEMORY_ERROR)
		fatalx("out of memory parsing \"%s\"", ld->name);
	if (ld->err == NULL)
		return;
	line = (unsigned long)yp->problem_mark.line + 1;
	col = (unsigned long)yp->problem_mark.column + 1;
	if (yp->error == YAML_READER_ERROR) {
		line = col = 1;
		for (i = 0; i < yp->problem_offset && i < len; i++) {
			if (text[i] == '\n')
				line++, col = 1;
			else
				col++;
		}
	}
	snprintf(ld->err, ld->errlen, "%s:%lu:%lu: syntax error: %s%s%s%s",
	    ld->name, line, col,
	    yp->problem != NULL ? yp->problem : "unknown error",
	    yp->context != NULL ? " (" : "",
	    yp->context != NULL ? yp->context : "",
	    yp->context != NULL ? ")" : "");
}

static struct cfg *
load_text(const char *name, const char *text, size_t len, int flags, char *err,
    size_t errlen)
{
	struct loader ld;
	yaml_parser_t yp;
	yaml_document_t doc, doc2;
	yaml_node_t *root;
	int rv = -1;

	memset(&ld, 0, sizeof(ld));
	ld.name = name;
	ld.flags = flags;
	ld.err = errlen > 0 ? err : NULL;
	ld.errlen = errlen;
	if (ld.err != NULL)
		ld.err[0] = '\0';

	if (!yaml_parser_initialize(&yp))
		fatalx("out of memory parsing \"%s\"", name);
	yaml_parser_set_input_string(&yp, (const unsigned char *)text, len);
	if (!yaml_parser_load(&yp, &doc)) {
		syntax_error(&ld, &yp, text, len);
		yaml_parser_delete(&yp);
		return NULL;
	}
	ld.doc = &doc;
	ld.cfg = cfg_new(name);
	root = yaml_document_get_root_node(&doc);

	/* A second document would be silently ignored: refuse it. */
	if (root != NULL) {
		if (!yaml_parser_load(&yp, &doc2)) {
			syntax_error(&ld, &yp, text, len);
			goto out;
		}
		if (yaml_document_get_root_node(&doc2) != NULL) {
			fail(&ld, yaml_document_get_root_node(&doc2),
			    "expected a single YAML document");
			yaml_document_delete(&doc2);
			goto out;
		}
		yaml_document_delete(&doc2);
	}
	rv = load_top(&ld, root);
out:
	yaml_document_delete(&doc);
	yaml_parser_delete(&yp);
	if (rv == -1) {
		cfg_free(ld.cfg);
		return NULL;
	}
	return ld.cfg;
}

struct cfg *
cfg_load_string(const char *name, const char *text, char *err, size_t errlen)
{
	return load_text(name, text, strlen(text), 0, err, errlen);
}

struct cfg *
cfg_load(const char *path, char *err, size_t errlen)
{
	return cfg_load_flags(path, 0, err, errlen);
}

struct cfg *
cfg_load_flags(const char *path, int flags, char *err, size_t errlen)
{
	struct cfg *c;
	struct stat st;
	char *buf;
	size_t len = 0;
	ssize_t r;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		snprintf(err, errlen, "could not open \"%s\": %s", path,
		    strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "could not read \"%s\": %s", path,
		    strerror(EISDIR));
		close(fd);
		return NULL;
	}
	buf = xmalloc(CFG_FILE_MAX + 1);
	for (;;) {
		r = read(fd, buf + len, CFG_FILE_MAX + 1 - len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			snprintf(err, errlen, "could not read \"%s\": %s", path,
			    strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > CFG_FILE_MAX) {
			snprintf(err, errlen,
			    "could not read \"%s\": larger than %d bytes", path,
			    CFG_FILE_MAX);
			goto fail;
		}
	}
	close(fd);
	c = load_text(path, buf, len, flags, err, errlen);
	free(buf);
	return c;
fail:
	close(fd);
	free(buf);
	return NULL;
}

void
cfg_free(struct cfg *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->nproviders; i++) {
		free(c->providers[i].name);
		free(c->providers[i].url);
		if (c->providers[i].api_key != NULL) {
			wipe(c->providers[i].api_key,
			    strlen(c->providers[i].api_key));
			free(c->providers[i].api_key);
		}
	}
	free(c->providers);
	for (i = 0; i < c->nmodels; i++)
		free(c->models[i].name);
	free(c->models);
	for (i = 0; i < c->nroles; i++) {
		free(c->roles[i].name);
		free(c->roles[i].allow_models);
	}
	free(c->roles);
	free(c->path);
	free(c->database);
	free(c->user);
	free(c->pidfile);
	free(c->log);
	free(c->metrics_file);
	free(c);
}

int
cfg_parse_duration(const char *s, int64_t *ms)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {
		{ "", SEC },
		{ "ms", 1 },
		{ "s", SEC },
		{ "m", MIN },
		{ "h", HOUR },
		{ "d", DAY },
	};
	const char *p = s;
	int64_t v = 0;
	size_t i;

	if (s == NULL || *p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (INT64_MAX - (*p - '0')) / 10)
			return -1;
		v = v * 10 + (*p - '0');
	}
	for (i = 0; i < nitems(units); i++)
		if (strcmp(p, units[i].unit) == 0) {
			if (v > INT64_MAX / units[i].ms)
				return -1;
			*ms = v * units[i].ms;
			return 0;
		}
	return -1;
}

/*
 * Every model the role's rows may go to: its own (one, or one per
 * complexity), those a request may name (allow_models), and the fallback
 * of each of these (one hop).  At most max of them, into out; returns
 * how many.
 */
int
cfg_role_models(
    const struct cfg *cfg, const struct cfg_role *ro, int *out, int max)
{
	int n = 0, i, j, m, cand[CX_COUNT + 1];
	size_t a;

#define ADD(x)                                                                 \
	do {                                                                   \
		for (j = 0; j < n && out[j] != (x); j++)                       \
			;                                                      \
		if (j == n && n < max)                                         \
			out[n++] = (x);                                        \
	} while (0)
	cand[0] = ro->model;
	for (i = 0; i < CX_COUNT; i++)
		cand[i + 1] = ro->by_complexity[i];
	for (i = 0; i <= CX_COUNT; i++)
		if (cand[i] != -1)
			ADD(cand[i]);
	for (a = 0; a < ro->nallow; a++)
		ADD(ro->allow_models[a]);
	for (i = n - 1; i >= 0; i--)
		if ((m = cfg->models[out[i]].fallback) != -1)
			ADD(m);
#undef ADD
	return n;
}

const struct cfg_role *
cfg_role_find(const struct cfg *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->nroles; i++)
		if (strcmp(c->roles[i].name, name) == 0)
			return &c->roles[i];
	return NULL;
}

int
cfg_model_find(const struct cfg *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->nmodels; i++)
		if (c->models[i].name != NULL &&
		    strcmp(c->models[i].name, name) == 0)
			return (int)i;
	return -1;
}

const char *
cfg_complexity_name(enum complexity cx)
{
	switch (cx) {
	case CX_SIMPLE:
		return "simple";
	case CX_MEDIUM:
		return "medium";
	case CX_COMPLEX:
		return "complex";
	default:
		return "unknown";
	}
}

int
cfg_complexity_parse(const char *s)
{
	int i;

	for (i = 0; i < CX_COUNT; i++)
		if (strcmp(s, cfg_complexity_name((enum complexity)i)) == 0)
			return i;
	return -1;
}

int
cfg_role_default_model(const struct cfg_role *r)
{
	int cx;

	if (r->model != -1)
		return r->model;
	if (r->by_complexity[CX_MEDIUM] != -1)
		return r->by_complexity[CX_MEDIUM];
	for (cx = 0; cx < CX_COUNT; cx++)
		if (r->by_complexity[cx] != -1)
			return r->by_complexity[cx];
	return -1;
}

/* Append s to buf as a JSON string; names hold no control characters. */
static void
json_name(char **buf, size_t *len, size_t *cap, const char *s)
{
	size_t need = strlen(s) * 2 + 3;

	if (*len + need + 1 > *cap) {
		while (*len + need + 1 > *cap)
			*cap *= 2;
		*buf = xrealloc(*buf, *cap);
	}
	(*buf)[(*len)++] = '"';
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			(*buf)[(*len)++] = '\\';
		(*buf)[(*len)++] = *s;
	}
	(*buf)[(*len)++] = '"';
	(*buf)[*len] = '\0';
}

static void
json_lit(char **buf, size_t *len, size_t *cap, const char *s)
{
	size_t n = strlen(s);

	if (*len + n + 1 > *cap) {
		while (*len + n + 1 > *cap)
			*cap *= 2;
		*buf = xrealloc(*buf, *cap);
	}
	memcpy(*buf + *len, s, n + 1);
	*len += n;
}

char *
cfg_role_routes(const struct cfg *c, const struct cfg_role *r)
{
	size_t len = 0, cap = 256, a;
	char *buf = xmalloc(cap);
	int cx, m;

	buf[0] = '\0';
	json_lit(&buf, &len, &cap, "{");
	if ((m = cfg_role_default_model(r)) != -1) {
		json_lit(&buf, &len, &cap, "\"default\":");
		json_name(&buf, &len, &cap, c->models[m].name);
		json_lit(&buf, &len, &cap, ",");
	}
	for (cx = 0; cx < CX_COUNT; cx++) {
		if ((m = r->by_complexity[cx]) == -1)
			continue;
		json_name(&buf, &len, &cap, cfg_complexity_name(cx));
		json_lit(&buf, &len, &cap, ":");
		json_name(&buf, &len, &cap, c->models[m].name);
		json_lit(&buf, &len, &cap, ",");
	}
	json_lit(&buf, &len, &cap, "\"allow\":[");
	for (a = 0; a < r->nallow; a++) {
		json_name(&buf, &len, &cap, c->models[r->allow_models[a]].name);
		if (a + 1 < r->nallow)
			json_lit(&buf, &len, &cap, ",");
	}
	json_lit(&buf, &len, &cap, "]}");
	return buf;
}
