/*
 * ctl_request.c: "llmqctl submit", "show" and "list", the commands that
 * make and read requests ("wait" is in ctl_wait.c).
 *
 * submit builds the messages and options from its arguments or from
 * JSON on standard input and hands them to llmq.submit(), so that the
 * server alone decides what is valid; several requests (-n) are one
 * transaction, and ids are printed only once it has committed.  show
 * and list only read llmq.requests.  JSON read here is parsed strictly,
 * within JSON_MAX_BYTES and JSON_MAX_DEPTH; every json_object is put by
 * the function that got it.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <json.h>
#include <libpq-fe.h>

#include "cfg.h"
#include "ctl.h"
#include "log.h"
#include "util.h"

/* Limits on JSON read from standard input or given with -o. */
#define JSON_MAX_BYTES (64 * 1024 * 1024)
#define JSON_MAX_DEPTH 64

/* The most requests "submit -n" makes in one transaction. */
#define SUBMIT_MAX_COUNT 1000000

/* JSON helpers. */

/*
 * Parse text as one JSON value, strictly, within the size and depth
 * limits.  On error writes "what: message at line L, column C" to
 * stderr and returns NULL.
 */
static struct json_object *
json_parse_text(const char *what, const char *buf, size_t len)
{
	struct json_tokener *tok;
	struct json_object *obj;
	enum json_tokener_error jerr;
	size_t end, i, line = 1, col = 1;
	const char *desc;

	if (strspn(buf, " \t\r\n") == len) {
		ctl_errx("%s: no JSON text (empty input)", what);
		return NULL;
	}
	if (len > JSON_MAX_BYTES) {
		ctl_errx(
		    "%s: JSON text longer than %d bytes", what, JSON_MAX_BYTES);
		return NULL;
	}
	if ((tok = json_tokener_new_ex(JSON_MAX_DEPTH)) == NULL)
		fatalx("out of memory (json_tokener_new_ex)");
	/* Trailing text is reported below, with a clearer message. */
	json_tokener_set_flags(tok,
	    JSON_TOKENER_STRICT
#ifdef JSON_TOKENER_VALIDATE_UTF8
	        | JSON_TOKENER_VALIDATE_UTF8
#endif
#ifdef JSON_TOKENER_ALLOW_TRAILING_CHARS
	        | JSON_TOKENER_ALLOW_TRAILING_CHARS
#endif
	);
	/*
	 * Hand over the terminating NUL too: it ends a top-level number
	 * and marks the end of the input for the tokener.
	 */
	obj = json_tokener_parse_ex(tok, buf, (int)len + 1);
	jerr = json_tokener_get_error(tok);
#if JSON_C_VERSION_NUM >= ((0 << 16) | (15 << 8))
	end = json_tokener_get_parse_end(tok);
#else
	end = (size_t)tok->char_offset;
#endif
	json_tokener_free(tok);

	desc = NULL;
	if (obj == NULL) {
		if (jerr == json_tokener_continue ||
		    jerr == json_tokener_success)
			desc = "unexpected end of input";
		else
			desc = json_tokener_error_desc(jerr);
		/* end is the offending character, or the end of input. */
	} else {
		for (i = end; i < len; i++)
			if (strchr(" \t\r\n", buf[i]) == NULL)
				break;
		if (i < len) {
			desc = "unexpected text after the JSON value";
			end = i;
		}
	}
	if (desc == NULL)
		return obj;
	json_object_put(obj);
	if (end > len)
		end = len;
	for (i = 0; i < end; i++) {
		if (buf[i] == '\n') {
			line++;
			col = 1;
		} else if (((unsigned char)buf[i] & 0xc0) != 0x80)
			col++;
	}
	ctl_errx("%s: invalid JSON at line %zu, column %zu (byte %zu): %s",
	    what, line, col, end + 1, desc);
	return NULL;
}

static const char *
json_text(struct json_object *obj)
{
	return json_object_to_json_string_ext(
	    obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* Read all of fd into a NUL-terminated buffer; NULL on error. */
static char *
read_fd(int fd, const char *what, size_t max, size_t *lenp)
{
	char *buf;
	size_t len = 0, cap = 8192;
	ssize_t n;

	buf = xmalloc(cap);
	for (;;) {
		if (cap - len < 4096) {
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			ctl_err("could not read %s", what);
			free(buf);
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			ctl_errx("%s: more than %zu bytes", what, max);
			free(buf);
			return NULL;
		}
	}
	buf[len] = '\0';
	*lenp = len;
	return buf;
}

/*
 * submit: build the messages and options, then call llmq.submit(), the
 * same function every other client uses, so that the server does all
 * the validation.
 */

struct submit_args {
	const char *role;
	const char *message;
	const char *system;
	const char *options;
	const char *model;
	const char *complexity;
	const char *priority;
	int64_t timeout_ms; /* -1: not given */
	long count;
	int from_stdin;
};

static struct json_object *
message_new(const char *role, const char *content)
{
	struct json_object *m;

	m = json_object_new_object();
	json_object_object_add(m, "role", json_object_new_string(role));
	json_object_object_add(m, "content", json_object_new_string(content));
	return m;
}

/*
 * Read the request from standard input: a messages array, or an object
 * with "messages" and optional "role" and "options".  Sets *messages,
 * *options (may be NULL) and *role (may be NULL; points into *doc);
 * the caller puts *doc.
 */
static int
submit_read_stdin(struct json_object **doc, struct json_object **messages,
    struct json_object **options, const char **role)
{
	struct json_object *root, *v;
	char *buf;
	size_t len;

	*doc = *messages = *options = NULL;
	*role = NULL;
	if ((buf = read_fd(
	         STDIN_FILENO, "standard input", JSON_MAX_BYTES, &len)) == NULL)
		return -1;
	root = json_parse_text("standard input", buf, len);
	free(buf);
	if (root == NULL)
		return -1;
	*doc = root;

	if (json_object_is_type(root, json_type_array)) {
		*messages = root;
		return 0;
	}
	if (!json_object_is_type(root, json_type_object)) {
		ctl_errx("standard input: expected a JSON array of messages or "
		         "an object with \"messages\"");
		return -1;
	}
	json_object_object_foreach(root, key, val)
	{
		if (strcmp(key, "role") != 0 && strcmp(key, "messages") != 0 &&
		    strcmp(key, "options") != 0) {
			ctl_errx("standard input: unknown key \"%s\" (expected "
			         "role, messages and options)",
			    key);
			return -1;
		}
		(void)val;
	}
	if (!json_object_object_get_ex(root, "messages", messages)) {
		ctl_errx("standard input: no \"messages\"");
		return -1;
	}
	if (json_object_object_get_ex(root, "role", &v) &&
	    !json_object_is_type(v, json_type_null)) {
		if (!json_object_is_type(v, json_type_string)) {
			ctl_errx("standard input: \"role\" must be a string");
			return -1;
		}
		*role = json_object_get_string(v);
	}
	if (json_object_object_get_ex(root, "options", &v) &&
	    !json_object_is_type(v, json_type_null)) {
		if (!json_object_is_type(v, json_type_object)) {
			ctl_errx("standard input: \"options\" must be an "
			         "object");
			return -1;
		}
		*options = v;
	}
	return 0;
}

/* Copy every member of src into dst, replacing members of the same name. */
static void
json_merge(struct json_object *dst, struct json_object *src)
{
	json_object_object_foreach(src, key, val)
	    json_object_object_add(dst, key, json_object_get(val));
}

static int
submit_run(struct ctl *ctl, const struct submit_args *a)
{
	struct json_object *doc = NULL, *in_msgs = NULL, *in_opts = NULL;
	struct json_object *messages = NULL, *options = NULL, *o;
	const char *role = a->role, *in_role = NULL, *params[3];
	PGresult *res = NULL;
	char **ids = NULL;
	long i;
	size_t j, n;
	int rc = 1, in_tx = 0;

	if (a->from_stdin &&
	    submit_read_stdin(&doc, &in_msgs, &in_opts, &in_role) == -1)
		goto out;
	if (role == NULL)
		role = in_role;
	if (role == NULL) {
		ctl_errx("submit: no role given (use -r ROLE)");
		rc = EX_USAGE;
		goto out;
	}

	messages = json_object_new_array();
	if (a->system != NULL)
		json_object_array_add(
		    messages, message_new("system", a->system));
	if (a->message != NULL)
		json_object_array_add(
		    messages, message_new("user", a->message));
	else if (json_object_is_type(in_msgs, json_type_array)) {
		n = json_object_array_length(in_msgs);
		for (j = 0; j < n; j++)
			json_object_array_add(messages,
			    json_object_get(
			        json_object_array_get_idx(in_msgs, j)));
	} else {
		/* Not an array: let the server say what it wants. */
		json_object_put(messages);
		messages = json_object_get(in_msgs);
	}

	options = json_object_new_object();
	if (in_opts != NULL)
		json_merge(options, in_opts);
	if (a->options != NULL) {
		if ((o = json_parse_text(
		         "-o", a->options, strlen(a->options))) == NULL)
			goto out;
		if (!json_object_is_type(o, json_type_object)) {
			ctl_errx("-o: options must be a JSON object");
			json_object_put(o);
			goto out;
		}
		json_merge(options, o);
		json_object_put(o);
	}
	if (a->model != NULL)
		json_object_object_add(
		    options, "model", json_object_new_string(a->model));
	if (a->complexity != NULL)
		json_object_object_add(options, "complexity",
		    json_object_new_string(a->complexity));
	if (a->priority != NULL)
		json_object_object_add(options, "priority",
		    json_object_new_int(atoi(a->priority)));
	if (a->timeout_ms >= 0)
		json_object_object_add(
		    options, "timeout", json_object_new_int64(a->timeout_ms));

	if (ctl_connect(ctl, 0) == -1)
		goto out;

	/* Several requests are one transaction, so all or none exist. */
	if (a->count > 1) {
		if (ctl_exec(ctl->conn, "BEGIN", "could not begin") == -1)
			goto out;
		in_tx = 1;
	}
	res = PQprepare(ctl->conn, "submit",
	    "SELECT llmq.submit($1, $2::jsonb, $3::jsonb)", 3, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		ctl_pgerr(ctl->conn, res, "submit failed");
		goto out;
	}
	PQclear(res);
	res = NULL;

	params[0] = role;
	params[1] = messages != NULL ? json_text(messages) : NULL;
	params[2] = json_text(options);
	ids = xcalloc((size_t)a->count, sizeof(*ids));
	for (i = 0; i < a->count; i++) {
		res = PQexecPrepared(
		    ctl->conn, "submit", 3, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK ||
		    PQntuples(res) != 1) {
			ctl_pgerr(ctl->conn, res, "submit failed");
			goto out;
		}
		ids[i] = xstrdup(PQgetvalue(res, 0, 0));
		PQclear(res);
		res = NULL;
	}
	if (in_tx) {
		in_tx = 0;
		if (ctl_exec(ctl->conn, "COMMIT", "submit failed") == -1)
			goto out;
	}
	/* Only now are the ids real. */
	for (i = 0; i < a->count; i++)
		printf("%s\n", ids[i]);
	rc = 0;
out:
	if (in_tx)
		ctl_rollback(ctl->conn);
	PQclear(res);
	if (ids != NULL)
		for (i = 0; i < a->count; i++)
			free(ids[i]);
	free(ids);
	json_object_put(messages);
	json_object_put(options);
	json_object_put(doc);
	return rc;
}

int
ctl_submit(struct ctl *ctl, int argc, char **argv)
{
	enum { OPT_MODEL = 256, OPT_COMPLEXITY, OPT_PRIORITY, OPT_TIMEOUT };
	static const struct option opts[] = {
		{ "role", required_argument, NULL, 'r' },
		{ "message", required_argument, NULL, 'm' },
		{ "system", required_argument, NULL, 's' },
		{ "options", required_argument, NULL, 'o' },
		{ "model", required_argument, NULL, OPT_MODEL },
		{ "complexity", required_argument, NULL, OPT_COMPLEXITY },
		{ "priority", required_argument, NULL, OPT_PRIORITY },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "count", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct submit_args a;
	long v;
	int ch;

	memset(&a, 0, sizeof(a));
	a.timeout_ms = -1;
	a.count = 1;
	ctl_getopt_init(ctl, argv);
	while (
	    (ch = getopt_long(argc, argv, "r:m:s:o:n:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			a.role = optarg;
			break;
		case 'm':
			a.message = optarg;
			break;
		case 's':
			a.system = optarg;
			break;
		case 'o':
			a.options = optarg;
			break;
		case OPT_MODEL:
			a.model = optarg;
			break;
		case OPT_COMPLEXITY:
			if (cfg_complexity_parse(optarg) == -1) {
				ctl_errx("submit: unknown complexity \"%s\" "
				         "(expected simple, medium or complex)",
				    optarg);
				return EX_USAGE;
			}
			a.complexity = optarg;
			break;
		case OPT_PRIORITY:
			if (ctl_parse_int(optarg, INT_MIN, INT_MAX, &v) == -1) {
				ctl_errx(
				    "submit: invalid priority \"%s\"", optarg);
				return EX_USAGE;
			}
			a.priority = optarg;
			break;
		case OPT_TIMEOUT:
			if (cfg_parse_duration(optarg, &a.timeout_ms) == -1 ||
			    a.timeout_ms <= 0 || a.timeout_ms > INT_MAX) {
				ctl_errx("submit: invalid timeout \"%s\" "
				         "(expected e.g. 500ms, 30s, 5m)",
				    optarg);
				return EX_USAGE;
			}
			break;
		case 'n':
			if (ctl_parse_int(optarg, 1, SUBMIT_MAX_COUNT, &v) ==
			    -1) {
				ctl_errx("submit: invalid count \"%s\" "
				         "(expected 1 to %d)",
				    optarg, SUBMIT_MAX_COUNT);
				return EX_USAGE;
			}
			a.count = v;
			break;
		default: /* -h, or an option getopt refused */
			return ctl_help(ctl, ch);
		}
	}
	for (; optind < argc; optind++) {
		if (strcmp(argv[optind], "-") != 0 || a.from_stdin) {
			return ctl_usage_error(
			    ctl, "unexpected argument \"%s\"", argv[optind]);
		}
		a.from_stdin = 1;
	}
	if (a.from_stdin && a.message != NULL) {
		return ctl_usage_error(ctl,
		    "-m and - (standard input) exclude each "
		    "other");
	}
	if (!a.from_stdin && a.message == NULL) {
		if (isatty(STDIN_FILENO)) {
			return ctl_usage_error(ctl,
			    "no message (use -m TEXT, or give "
			    "JSON on standard input)");
		}
		a.from_stdin = 1;
	}
	return submit_run(ctl, &a);
}

/*
 * show: the row as "key: value" lines, in column order, then the
 * timings that follow from its timestamps.
 */

#define BOOL_OID 16  /* pg_type.h is not for clients */
#define SHOW_KEYW 19 /* the widest key, "first_token_at:" and more */

/* "key: value", continuation lines of a multi-line value indented. */
static void
show_kv(const char *key, const char *value)
{
	const char *p, *nl;

	if (*value == '\0') {
		printf("%s:\n", key);
		return;
	}
	printf("%s:%*s", key, (int)(SHOW_KEYW - strlen(key)), "");
	for (p = value; (nl = strchr(p, '\n')) != NULL; p = nl + 1)
		printf("%.*s\n%*s", (int)(nl - p), p, SHOW_KEYW + 1, "");
	printf("%s\n", p);
}

/* The messages as a conversation, one "role: content" per message. */
static void
show_messages(const char *text)
{
	struct json_object *msgs, *m, *role, *content;
	const char *r, *c, *nl;
	size_t i, n;
	int w;

	msgs = json_tokener_parse(text);
	if (!json_object_is_type(msgs, json_type_array)) {
		show_kv("messages", text);
		json_object_put(msgs);
		return;
	}
	printf("messages:\n");
	n = json_object_array_length(msgs);
	for (i = 0; i < n; i++) {
		m = json_object_array_get_idx(msgs, i);
		r = json_object_object_get_ex(m, "role", &role) ?
		    json_object_get_string(role) :
		    "?";
		c = json_object_object_get_ex(m, "content", &content) ?
		    json_object_get_string(content) :
		    "";
		if (r == NULL)
			r = "?";
		if (c == NULL)
			c = "";
		w = printf("    %s: ", r);
		for (; (nl = strchr(c, '\n')) != NULL; c = nl + 1)
			printf("%.*s\n%*s", (int)(nl - c), c, w, "");
		printf("%s\n", c);
	}
	json_object_put(msgs);
}

/* One line per call made for the request, from llmq.attempts. */
static int
show_calls(PGconn *conn, const char *id)
{
	const char *params[1] = { id };
	PGresult *res;
	char *line;
	int i;

	res = PQexecParams(conn,
	    "SELECT format('%s: %s on %s, %s ms, %s%s%s', attempt, model,"
	    "       provider,"
	    "       round(extract(epoch FROM finished_at - started_at)"
	    "             ::numeric * 1000),"
	    "       coalesce(error_kind, 'ok'),"
	    "       CASE WHEN http_status IS NOT NULL"
	    "            THEN ' (HTTP ' || http_status || ')' ELSE '' END,"
	    "       CASE WHEN retry THEN ', tried again' ELSE '' END)"
	    "  FROM llmq.attempts WHERE request_id = $1 ORDER BY id",
	    1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		ctl_pgerr(
		    conn, res, "could not read the calls of request %s", id);
		PQclear(res);
		return 1;
	}
	for (i = 0; i < PQntuples(res); i++) {
		line = str_escape(PQgetvalue(res, i, 0),
		    (size_t)PQgetlength(res, i, 0), 1000);
		show_kv("call", line);
		free(line);
	}
	PQclear(res);
	return 0;
}

static int
show_run(PGconn *conn, const char *id, int as_json)
{
	static const char *const timings[][2] = {
		{ "queue_wait_ms", "queue wait" },
		{ "first_token_ms", "first token" },
		{ "model_ms", "model time" },
		{ "total_ms", "total" },
	};
	const char *params[1] = { id }, *name, *value;
	PGresult *res;
	char buf[64];
	int i, j, nf;

	/*
	 * Timestamps come back as text: make them unambiguous whatever
	 * the server's DateStyle.
	 */
	if (!as_json &&
	    ctl_exec(conn, "SET datestyle = 'ISO, YMD'",
	        "could not set datestyle") == -1)
		return 1;
	if (as_json)
		res = PQexecParams(conn,
		    "SELECT to_jsonb(r) || jsonb_build_object('calls',"
		    "       (SELECT coalesce(jsonb_agg(to_jsonb(a) - "
		    "'request_id'"
		    "                        ORDER BY a.id), '[]')"
		    "          FROM llmq.attempts a WHERE a.request_id = r.id))"
		    "  FROM llmq.requests r WHERE r.id = $1",
		    1, NULL, params, NULL, NULL, 0);
	else
		res = PQexecParams(conn,
		    "SELECT r.*, "
		    "round(extract(epoch FROM r.claimed_at - r.created_at)"
		    "::numeric * 1000, 3) AS queue_wait_ms, "
		    "round(extract(epoch FROM r.first_token_at - r.claimed_at)"
		    "::numeric * 1000, 3) AS first_token_ms, "
		    "round(extract(epoch FROM r.finished_at - r.claimed_at)"
		    "::numeric * 1000, 3) AS model_ms, "
		    "round(extract(epoch FROM r.finished_at - r.created_at)"
		    "::numeric * 1000, 3) AS total_ms "
		    "FROM llmq.requests r WHERE r.id = $1",
		    1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		ctl_pgerr(conn, res, "could not read request %s", id);
		PQclear(res);
		return 1;
	}
	if (PQntuples(res) == 0) {
		ctl_errx("no such request %s", id);
		PQclear(res);
		return 1;
	}
	if (as_json) {
		printf("%s\n", PQgetvalue(res, 0, 0));
		PQclear(res);
		return 0;
	}

	nf = PQnfields(res);
	for (i = 0; i < nf; i++) {
		name = PQfname(res, i);
		for (j = 0; j < (int)nitems(timings); j++)
			if (strcmp(name, timings[j][0]) == 0)
				break;
		if (j < (int)nitems(timings))
			continue;
		value = PQgetisnull(res, 0, i) ? "" : PQgetvalue(res, 0, i);
		if (PQftype(res, i) == BOOL_OID && *value != '\0')
			value = *value == 't' ? "true" : "false";
		if (strcmp(name, "messages") == 0)
			show_messages(value);
		else
			show_kv(name, value);
	}
	for (j = 0; j < (int)nitems(timings); j++) {
		i = PQfnumber(res, timings[j][0]);
		if (i < 0 || PQgetisnull(res, 0, i))
			continue;
		snprintf(buf, sizeof(buf), "%s ms", PQgetvalue(res, 0, i));
		show_kv(timings[j][1], buf);
	}
	PQclear(res);
	return show_calls(conn, id);
}

int
ctl_show(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, as_json = 0;
	int64_t id;

	ctl_getopt_init(ctl, argv);
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			as_json = 1;
			break;
		default: /* -h, or an option getopt refused */
			return ctl_help(ctl, ch);
		}
	}
	if (argc - optind != 1) {
		return ctl_usage_error(ctl, "%s",
		    optind == argc ? "no request id" : "one request id only");
	}
	if (ctl_parse_id(argv[optind], &id) == -1) {
		ctl_errx("show: invalid request id \"%s\"", argv[optind]);
		return EX_USAGE;
	}
	if (ctl_connect(ctl, 0) == -1)
		return 1;
	return show_run(ctl->conn, argv[optind], as_json);
}

/*
 * list: the newest requests first, as a table or as a JSON array of
 * whole rows.
 */

#define LIST_NCOLS 8

static const char *const statuses[] = {
	"pending",
	"processing",
	"completed",
	"failed",
	"cancelled",
};

static int
status_known(const char *s)
{
	size_t i;

	for (i = 0; i < nitems(statuses); i++)
		if (strcmp(s, statuses[i]) == 0)
			return 1;
	return 0;
}

static int
list_run(PGconn *conn, const char *status, const char *role, const char *limit,
    int as_json)
{
	static const char *const head[LIST_NCOLS] = {
		"ID",
		"ROLE",
		"STATUS",
		"MODEL",
		"ATTEMPTS",
		"CREATED",
		"TOTAL_MS",
		"ERROR",
	};
	/* Numeric columns are aligned right. */
	static const int right[LIST_NCOLS] = { 1, 0, 0, 0, 1, 0, 1, 0 };
	const char *params[3] = { status, role, limit }, *v;
	int width[LIST_NCOLS], i, c, n, len;
	char created[32];
	PGresult *res;
	struct tm tm;
	time_t t;

	if (as_json)
		res = PQexecParams(conn,
		    "SELECT coalesce(jsonb_agg(to_jsonb(r) "
		    "ORDER BY r.created_at DESC, r.id DESC), '[]') "
		    "FROM (SELECT * FROM llmq.requests "
		    "WHERE ($1::text IS NULL OR status = $1) "
		    "AND ($2::text IS NULL OR role = $2) "
		    "ORDER BY created_at DESC, id DESC "
		    "LIMIT $3::bigint) r",
		    3, NULL, params, NULL, NULL, 0);
	else
		res = PQexecParams(conn,
		    "SELECT id, role, status, model_used, attempts, "
		    "floor(extract(epoch FROM created_at))::bigint, "
		    "round(extract(epoch FROM finished_at - created_at)"
		    "::numeric * 1000, 1), "
		    "error_kind "
		    "FROM llmq.requests "
		    "WHERE ($1::text IS NULL OR status = $1) "
		    "AND ($2::text IS NULL OR role = $2) "
		    "ORDER BY created_at DESC, id DESC "
		    "LIMIT $3::bigint",
		    3, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		ctl_pgerr(conn, res, "could not list requests");
		PQclear(res);
		return 1;
	}
	if (as_json) {
		printf("%s\n", PQgetvalue(res, 0, 0));
		PQclear(res);
		return 0;
	}

	n = PQntuples(res);
	for (c = 0; c < LIST_NCOLS; c++)
		width[c] = (int)strlen(head[c]);
	/* Created, in local time, is always 19 wide. */
	width[5] = 19;
	for (i = 0; i < n; i++)
		for (c = 0; c < LIST_NCOLS; c++) {
			len =
			    PQgetisnull(res, i, c) ? 1 : PQgetlength(res, i, c);
			if (c != 5 && len > width[c])
				width[c] = len;
		}
	for (c = 0; c < LIST_NCOLS - 1; c++)
		printf("%*s  ", right[c] ? width[c] : -width[c], head[c]);
	printf("%s\n", head[c]);
	for (i = 0; i < n; i++) {
		t = (time_t)strtoll(PQgetvalue(res, i, 5), NULL, 10);
		localtime_r(&t, &tm);
		strftime(created, sizeof(created), "%Y-%m-%d %H:%M:%S", &tm);
		for (c = 0; c < LIST_NCOLS; c++) {
			if (c == 5)
				v = created;
			else
				v = PQgetisnull(res, i, c) ?
				    "-" :
				    PQgetvalue(res, i, c);
			if (c < LIST_NCOLS - 1)
				printf("%*s  ", right[c] ? width[c] : -width[c],
				    v);
			else
				printf("%s\n", v);
		}
	}
	PQclear(res);
	return 0;
}

int
ctl_list(struct ctl *ctl, int argc, char **argv)
{
	enum { OPT_JSON = 256 };
	static const struct option opts[] = {
		{ "status", required_argument, NULL, 's' },
		{ "role", required_argument, NULL, 'r' },
		{ "limit", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *status = NULL, *role = NULL, *limit = "20";
	int ch, as_json = 0, rc;
	long v;

	ctl_getopt_init(ctl, argv);
	while ((ch = getopt_long(argc, argv, "s:r:l:h", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (!status_known(optarg)) {
				ctl_errx("list: unknown status \"%s\" "
				         "(expected pending, processing, "
				         "completed, failed or cancelled)",
				    optarg);
				return EX_USAGE;
			}
			status = optarg;
			break;
		case 'r':
			role = optarg;
			break;
		case 'l':
			if (ctl_parse_int(optarg, 0, LONG_MAX, &v) == -1) {
				ctl_errx("list: invalid limit \"%s\"", optarg);
				return EX_USAGE;
			}
			/* 0: no limit (LIMIT NULL). */
			limit = v == 0 ? NULL : optarg;
			break;
		case OPT_JSON:
			as_json = 1;
			break;
		default: /* -h, or an option getopt refused */
			return ctl_help(ctl, ch);
		}
	}
	if ((rc = ctl_no_args(ctl, argc, argv)) != 0)
		return rc;
	if (ctl_connect(ctl, 0) == -1)
		return 1;
	return list_run(ctl->conn, status, role, limit, as_json);
}
