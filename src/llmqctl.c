/*
 * llmqctl.c: the llmq control tool.
 *
 * Applies the schema migrations compiled into the binary, submits
 * requests, waits for them and shows them, talking to PostgreSQL only;
 * it never touches llmqd's shared memory or its processes.  Every
 * statement is parameterised and names its schema.  A command parses and
 * checks all its arguments before it connects, so that a usage error
 * (exit 64) never costs a connection; it returns its exit status to
 * main(), which alone frees the connection and the configuration, so
 * that the tool runs clean under ASan.  Messages go to stderr as
 * "llmqctl: message"; stdout carries only results (ids, responses,
 * rows), so that scripts can use it.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <json.h>
#include <libpq-fe.h>

#include "cfg.h"
#include "log.h"
#include "migrations.h"
#include "util.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#define DEFAULT_CONFIG SYSCONFDIR "/llmq.yaml"

/* Exit statuses besides 0, 1 and EX_USAGE. */
#define EXIT_TIMEOUT 2

/*
 * The advisory lock that serialises concurrent "llmqctl migrate" runs
 * ("llmq" in ASCII); taken per transaction, so that it can never be
 * left behind.
 */
#define MIGRATE_LOCK_KEY "1819045233"

/* Limits on JSON read from standard input or given with -o. */
#define JSON_MAX_BYTES (64 * 1024 * 1024)
#define JSON_MAX_DEPTH 64

/* How often "wait" rechecks its rows when no notification arrives. */
#define WAIT_RECHECK_MS 1000

/* The most requests "submit -n" makes in one transaction. */
#define SUBMIT_MAX_COUNT 1000000

struct ctl {
	const char *cfgpath;	/* -c, or NULL */
	const char *conninfo;	/* -d, or NULL */
	struct cfg *cfg;	/* the configuration, when one was read */
	PGconn *conn;
};

struct command {
	const char *name;
	int (*run)(struct ctl *, int, char **);
	const char *usage;	/* arguments, after the name; \n breaks */
	const char *help;	/* one line */
};

static int cmd_migrate(struct ctl *, int, char **);
static int cmd_submit(struct ctl *, int, char **);
static int cmd_wait(struct ctl *, int, char **);
static int cmd_show(struct ctl *, int, char **);
static int cmd_list(struct ctl *, int, char **);

static const struct command commands[] = {
	{ "migrate", cmd_migrate, "[--dry-run]",
	    "apply pending schema migrations and register the roles" },
	{ "submit", cmd_submit,
	    "[-r ROLE] [-m TEXT | -] [-s TEXT] [-o JSON]\n"
	    "[--model M] [--complexity C] [--priority N]\n"
	    "[--timeout DURATION] [-n N]",
	    "submit a request and print its id" },
	{ "wait", cmd_wait, "[-t DURATION] ID...",
	    "wait for requests to finish and print their responses" },
	{ "show", cmd_show, "[--json] ID", "show one request" },
	{ "list", cmd_list,
	    "[-s STATUS] [-r ROLE] [-l N] [--json]",
	    "list the newest requests" },
};

static const char *const statuses[] = {
	"pending", "processing", "completed", "failed", "cancelled",
};

static void ctl_errx(const char *, ...)
    __attribute__((format(printf, 1, 2)));
static void ctl_err(const char *, ...)
    __attribute__((format(printf, 1, 2)));
static void ctl_pgerr(PGconn *, const PGresult *, const char *, ...)
    __attribute__((format(printf, 3, 4)));

/* "llmqctl: message" on stderr. */
static void
ctl_errx(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("llmqctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* The same with ": strerror(errno)" appended. */
static void
ctl_err(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	fflush(stdout);
	fputs("llmqctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", strerror(saved));
}

/*
 * Report a failed statement as "llmqctl: WHAT: primary message", with
 * the server's hint on a line of its own.  Without a result from the
 * server (the connection broke) libpq's own message stands in.
 */
static void
ctl_pgerr(PGconn *conn, const PGresult *res, const char *fmt, ...)
{
	const char *msg = NULL, *hint = NULL;
	char what[512], *copy;
	size_t len;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (res != NULL) {
		msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	}
	if (msg == NULL && res != NULL && *PQresultErrorMessage(res) != '\0')
		msg = PQresultErrorMessage(res);
	if (msg == NULL)
		msg = PQerrorMessage(conn);
	/* libpq's messages end with a newline; ours do not. */
	len = strlen(msg);
	while (len > 0 && msg[len - 1] == '\n')
		len--;
	copy = xstrndup(msg, len);
	ctl_errx("%s: %s", what, copy);
	free(copy);
	if (hint != NULL)
		ctl_errx("hint: %s", hint);
}

/*
 * Notices from the server: "schema already exists, skipping" and the
 * like are noise for a command-line tool, warnings are not.
 */
static void
notice_receiver(void *arg, const PGresult *res)
{
	const char *sev, *msg;

	sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	if (sev != NULL && msg != NULL && strcmp(sev, "WARNING") == 0)
		ctl_errx("warning: %s", msg);
}

static void
usage_main(FILE *fp)
{
	fprintf(fp,
	    "usage: llmqctl [-c CONFIG] [-d CONNINFO] COMMAND [ARGS]\n"
	    "       llmqctl -h | -V\n");
}

/* prefix, then the command's usage with its lines aligned after it. */
static void
print_usage(FILE *fp, const char *prefix, const struct command *cmd)
{
	const char *p, *nl;
	int w;

	w = fprintf(fp, "%s%s ", prefix, cmd->name);
	for (p = cmd->usage; (nl = strchr(p, '\n')) != NULL; p = nl + 1)
		fprintf(fp, "%.*s\n%*s", (int)(nl - p), p, w, "");
	fprintf(fp, "%s\n", p);
}

static void
help_main(void)
{
	size_t i;

	usage_main(stdout);
	printf("\nControl llmq: apply its schema, submit requests, wait for "
	    "them and show them.\n\n"
	    "Options:\n"
	    "  -c, --config FILE      configuration to read the database "
	    "and roles from\n"
	    "                         (default " DEFAULT_CONFIG ", if it "
	    "can be read)\n"
	    "  -d, --dbname CONNINFO  libpq connection string; overrides "
	    "the configuration\n"
	    "  -h, --help             show this help and exit\n"
	    "  -V, --version          show the version and exit\n"
	    "\nCommands:\n");
	for (i = 0; i < nitems(commands); i++) {
		print_usage(stdout, "  ", &commands[i]);
		printf("      %s\n", commands[i].help);
	}
	printf("\nWithout -d or a configuration, the connection comes from "
	    "PGHOST, PGDATABASE,\nPGUSER and the other libpq environment "
	    "variables.  \"llmqctl COMMAND -h\" shows\nthe options of one "
	    "command.\n"
	    "\nExit status: 0 success, 1 error or request failed or "
	    "cancelled, 2 timed out\nwaiting, 64 usage error.\n");
}

static void
usage_command(const struct command *cmd, FILE *fp)
{
	print_usage(fp, "usage: llmqctl ", cmd);
}

/*
 * Reset getopt for a command's own options, with argv[0] set so that
 * getopt's messages read "llmqctl submit: unrecognized option ...".
 */
static void
command_getopt_init(const struct command *cmd, char **argv)
{
	static char prog[64];

	snprintf(prog, sizeof(prog), "llmqctl %s", cmd->name);
	argv[0] = prog;
	optind = 0;	/* glibc: reinitialise completely */
	opterr = 1;
}

static const struct command *
command_find(const char *name)
{
	size_t i;

	for (i = 0; i < nitems(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Helpers for parsing arguments. */

static int
parse_id(const char *s, int64_t *id)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (end == s || *end != '\0' || errno != 0 || v <= 0)
		return -1;
	*id = v;
	return 0;
}

static int
parse_int(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (end == s || *end != '\0' || errno != 0 || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int
status_known(const char *s)
{
	size_t i;

	for (i = 0; i < nitems(statuses); i++)
		if (strcmp(s, statuses[i]) == 0)
			return 1;
	return 0;
}

/*
 * Load the configuration: the -c file, which must load, or else the
 * default file if it exists.  A default file we may not read (llmqctl
 * run by a user other than llmqd's) is skipped in silence, one that
 * does not load with a warning: the environment then names the
 * database.  Returns 0, or -1 when an explicit -c file failed.
 */
static int
ctl_load_config(struct ctl *ctl)
{
	char err[1024];

	if (ctl->cfg != NULL)
		return 0;
	if (ctl->cfgpath != NULL) {
		ctl->cfg = cfg_load(ctl->cfgpath, err, sizeof(err));
		if (ctl->cfg == NULL) {
			ctl_errx("%s", err);
			return -1;
		}
		return 0;
	}
	if (access(DEFAULT_CONFIG, R_OK) == -1)
		return 0;
	ctl->cfg = cfg_load(DEFAULT_CONFIG, err, sizeof(err));
	if (ctl->cfg == NULL)
		ctl_errx("ignoring %s: %s", DEFAULT_CONFIG, err);
	return 0;
}

/*
 * Connect: -d, else the configuration's database, else libpq's
 * environment (an empty dbname makes libpq fall back to PGDATABASE and
 * friends).  want_cfg also loads the configuration when -d names the
 * database, for commands that need more of it than the conninfo.
 */
static int
ctl_connect(struct ctl *ctl, int want_cfg)
{
	const char *keys[] = { "dbname", "application_name", NULL };
	const char *vals[] = { "", "llmqctl", NULL };

	if ((ctl->conninfo == NULL || want_cfg || ctl->cfgpath != NULL) &&
	    ctl_load_config(ctl) == -1)
		return -1;
	if (ctl->conninfo != NULL)
		vals[0] = ctl->conninfo;
	else if (ctl->cfg != NULL && ctl->cfg->database != NULL)
		vals[0] = ctl->cfg->database;

	ctl->conn = PQconnectdbParams(keys, vals, 1);
	if (ctl->conn == NULL) {
		ctl_errx("could not connect to database: out of memory");
		return -1;
	}
	if (PQstatus(ctl->conn) != CONNECTION_OK) {
		ctl_pgerr(ctl->conn, NULL, "could not connect to database");
		return -1;
	}
	PQsetNoticeReceiver(ctl->conn, notice_receiver, NULL);
	return 0;
}

/* Run a statement without parameters or results; 0 or -1. */
static int
exec_command(PGconn *conn, const char *sql, const char *what)
{
	PGresult *res;
	int rc = 0;

	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK) {
		ctl_pgerr(conn, res, "%s", what);
		rc = -1;
	}
	PQclear(res);
	return rc;
}

static void
rollback(PGconn *conn)
{
	PGresult *res;

	/* A failure here leaves nothing behind: the session ends next. */
	res = PQexec(conn, "ROLLBACK");
	PQclear(res);
}

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
		ctl_errx("%s: JSON text longer than %d bytes", what,
		    JSON_MAX_BYTES);
		return NULL;
	}
	if ((tok = json_tokener_new_ex(JSON_MAX_DEPTH)) == NULL)
		fatalx("out of memory (json_tokener_new_ex)");
	/* Trailing text is reported below, with a clearer message. */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT
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
	return json_object_to_json_string_ext(obj,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
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
 * migrate: one transaction under an advisory lock, so that two
 * concurrent runs serialise and a failed migration leaves nothing
 * behind.  Each migration is many statements, hence the simple-query
 * protocol (PQexec) for it; the bookkeeping is parameterised.
 */

/* The line of a 1-based character position in text. */
static int
text_line(const char *text, long pos)
{
	const unsigned char *p = (const unsigned char *)text;
	long chars = 0;
	int line = 1;

	for (; *p != '\0'; p++) {
		if ((*p & 0xc0) != 0x80 && ++chars >= pos)
			break;
		if (*p == '\n')
			line++;
	}
	return line;
}

static void
migration_error(PGconn *conn, const PGresult *res, const struct migration *m)
{
	const char *pos;
	long p;

	pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
	if (pos != NULL && (p = strtol(pos, NULL, 10)) > 0)
		ctl_pgerr(conn, res, "migration %s failed: line %d", m->name,
		    text_line(m->sql, p));
	else
		ctl_pgerr(conn, res, "migration %s failed", m->name);
}

static int
migrate_roles(struct ctl *ctl, int dry_run)
{
	const char *params[1];
	PGresult *res;
	size_t i;

	for (i = 0; i < ctl->cfg->nroles; i++) {
		params[0] = ctl->cfg->roles[i].name;
		res = PQexecParams(ctl->conn,
		    "INSERT INTO llmq.roles (name) VALUES ($1) "
		    "ON CONFLICT DO NOTHING",
		    1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			ctl_pgerr(ctl->conn, res, "could not register role "
			    "\"%s\"", params[0]);
			PQclear(res);
			return -1;
		}
		if (strcmp(PQcmdTuples(res), "0") != 0)
			printf("%s role %s\n",
			    dry_run ? "would register" : "registered",
			    params[0]);
		PQclear(res);
	}
	return 0;
}

static int
migrate_run(struct ctl *ctl, int dry_run)
{
	const struct migration *m;
	const char *params[2];
	PGresult *res, *applied;
	char version[16];
	int i, n, done, napplied = 0, current = 0, known = 0;

	if (exec_command(ctl->conn, "BEGIN", "could not begin") == -1)
		return -1;
	if (exec_command(ctl->conn,
	    "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ")",
	    "could not take the migration lock") == -1)
		return -1;
	if (exec_command(ctl->conn, "CREATE SCHEMA IF NOT EXISTS llmq",
	    "could not create schema llmq") == -1)
		return -1;
	if (exec_command(ctl->conn,
	    "CREATE TABLE IF NOT EXISTS llmq.schema_version ("
	    "version integer PRIMARY KEY, "
	    "name text NOT NULL, "
	    "applied_at timestamptz NOT NULL DEFAULT now())",
	    "could not create llmq.schema_version") == -1)
		return -1;

	applied = PQexec(ctl->conn,
	    "SELECT version FROM llmq.schema_version ORDER BY version");
	if (PQresultStatus(applied) != PGRES_TUPLES_OK) {
		ctl_pgerr(ctl->conn, applied, "could not read "
		    "llmq.schema_version");
		PQclear(applied);
		return -1;
	}
	n = PQntuples(applied);
	for (i = 0; i < n; i++) {
		int v = atoi(PQgetvalue(applied, i, 0));

		if (v > current)
			current = v;
	}

	for (m = migrations; m->version != 0; m++) {
		if (m->version > known)
			known = m->version;
		for (done = 0, i = 0; i < n && !done; i++)
			done = atoi(PQgetvalue(applied, i, 0)) == m->version;
		if (done)
			continue;

		res = PQexec(ctl->conn, m->sql);
		if (PQresultStatus(res) != PGRES_COMMAND_OK &&
		    PQresultStatus(res) != PGRES_TUPLES_OK) {
			migration_error(ctl->conn, res, m);
			PQclear(res);
			PQclear(applied);
			return -1;
		}
		PQclear(res);

		snprintf(version, sizeof(version), "%d", m->version);
		params[0] = version;
		params[1] = m->name;
		res = PQexecParams(ctl->conn,
		    "INSERT INTO llmq.schema_version (version, name) "
		    "VALUES ($1, $2)", 2, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			ctl_pgerr(ctl->conn, res, "could not record migration "
			    "%s", m->name);
			PQclear(res);
			PQclear(applied);
			return -1;
		}
		PQclear(res);
		printf("%s %s\n", dry_run ? "would apply" : "applied", m->name);
		napplied++;
		if (m->version > current)
			current = m->version;
	}
	PQclear(applied);

	if (current > known)
		ctl_errx("warning: the database is at schema version %d, "
		    "newer than this llmqctl knows (%d)", current, known);
	if (ctl->cfg != NULL && migrate_roles(ctl, dry_run) == -1)
		return -1;

	if (dry_run) {
		rollback(ctl->conn);
		if (napplied == 0)
			printf("schema is up to date at version %d\n", current);
		return 0;
	}
	if (exec_command(ctl->conn, "COMMIT", "could not commit") == -1)
		return -1;
	if (napplied == 0)
		printf("schema is up to date at version %d\n", current);
	return 0;
}

static int
cmd_migrate(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *cmd = command_find("migrate");
	int ch, dry_run = 0;

	command_getopt_init(cmd, argv);
	while ((ch = getopt_long(argc, argv, "+nh", opts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			dry_run = 1;
			break;
		case 'h':
			usage_command(cmd, stdout);
			return 0;
		default:
			usage_command(cmd, stderr);
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		ctl_errx("migrate: unexpected argument \"%s\"", argv[optind]);
		usage_command(cmd, stderr);
		return EX_USAGE;
	}

	if (ctl_connect(ctl, 1) == -1)
		return 1;
	if (migrate_run(ctl, dry_run) == -1) {
		rollback(ctl->conn);
		return 1;
	}
	return 0;
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
	int64_t timeout_ms;	/* -1: not given */
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
	if ((buf = read_fd(STDIN_FILENO, "standard input", JSON_MAX_BYTES,
	    &len)) == NULL)
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
	json_object_object_foreach(root, key, val) {
		if (strcmp(key, "role") != 0 && strcmp(key, "messages") != 0 &&
		    strcmp(key, "options") != 0) {
			ctl_errx("standard input: unknown key \"%s\" (expected "
			    "role, messages and options)", key);
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

	if (a->from_stdin && submit_read_stdin(&doc, &in_msgs, &in_opts,
	    &in_role) == -1)
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
		json_object_array_add(messages,
		    message_new("system", a->system));
	if (a->message != NULL)
		json_object_array_add(messages,
		    message_new("user", a->message));
	else if (json_object_is_type(in_msgs, json_type_array)) {
		n = json_object_array_length(in_msgs);
		for (j = 0; j < n; j++)
			json_object_array_add(messages, json_object_get(
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
		if ((o = json_parse_text("-o", a->options,
		    strlen(a->options))) == NULL)
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
		json_object_object_add(options, "model",
		    json_object_new_string(a->model));
	if (a->complexity != NULL)
		json_object_object_add(options, "complexity",
		    json_object_new_string(a->complexity));
	if (a->priority != NULL)
		json_object_object_add(options, "priority",
		    json_object_new_int(atoi(a->priority)));
	if (a->timeout_ms >= 0)
		json_object_object_add(options, "timeout",
		    json_object_new_int64(a->timeout_ms));

	if (ctl_connect(ctl, 0) == -1)
		goto out;

	/* Several requests are one transaction, so all or none exist. */
	if (a->count > 1) {
		if (exec_command(ctl->conn, "BEGIN", "could not begin") == -1)
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
		res = PQexecPrepared(ctl->conn, "submit", 3, params, NULL,
		    NULL, 0);
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
		if (exec_command(ctl->conn, "COMMIT", "submit failed") == -1)
			goto out;
	}
	/* Only now are the ids real. */
	for (i = 0; i < a->count; i++)
		printf("%s\n", ids[i]);
	rc = 0;
out:
	if (in_tx)
		rollback(ctl->conn);
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

static int
cmd_submit(struct ctl *ctl, int argc, char **argv)
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
	const struct command *cmd = command_find("submit");
	struct submit_args a;
	long v;
	int ch;

	memset(&a, 0, sizeof(a));
	a.timeout_ms = -1;
	a.count = 1;
	command_getopt_init(cmd, argv);
	while ((ch = getopt_long(argc, argv, "r:m:s:o:n:h", opts, NULL)) !=
	    -1) {
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
			if (parse_int(optarg, INT_MIN, INT_MAX, &v) == -1) {
				ctl_errx("submit: invalid priority \"%s\"",
				    optarg);
				return EX_USAGE;
			}
			a.priority = optarg;
			break;
		case OPT_TIMEOUT:
			if (cfg_parse_duration(optarg, &a.timeout_ms) == -1 ||
			    a.timeout_ms <= 0 || a.timeout_ms > INT_MAX) {
				ctl_errx("submit: invalid timeout \"%s\" "
				    "(expected e.g. 500ms, 30s, 5m)", optarg);
				return EX_USAGE;
			}
			break;
		case 'n':
			if (parse_int(optarg, 1, SUBMIT_MAX_COUNT, &v) == -1) {
				ctl_errx("submit: invalid count \"%s\" "
				    "(expected 1 to %d)", optarg,
				    SUBMIT_MAX_COUNT);
				return EX_USAGE;
			}
			a.count = v;
			break;
		case 'h':
			usage_command(cmd, stdout);
			return 0;
		default:
			usage_command(cmd, stderr);
			return EX_USAGE;
		}
	}
	for (; optind < argc; optind++) {
		if (strcmp(argv[optind], "-") != 0 || a.from_stdin) {
			ctl_errx("submit: unexpected argument \"%s\"",
			    argv[optind]);
			usage_command(cmd, stderr);
			return EX_USAGE;
		}
		a.from_stdin = 1;
	}
	if (a.from_stdin && a.message != NULL) {
		ctl_errx("submit: -m and - (standard input) exclude each "
		    "other");
		usage_command(cmd, stderr);
		return EX_USAGE;
	}
	if (!a.from_stdin && a.message == NULL) {
		if (isatty(STDIN_FILENO)) {
			ctl_errx("submit: no message (use -m TEXT, or give "
			    "JSON on standard input)");
			usage_command(cmd, stderr);
			return EX_USAGE;
		}
		a.from_stdin = 1;
	}
	return submit_run(ctl, &a);
}

/*
 * wait: LISTEN first, then look at the rows, so that a request that
 * finishes in between is seen either way.  A notification only says
 * "look again"; the row is the truth.  Rows are also looked at every
 * second, for a notification lost in a connection pooler.
 */

enum wait_state { W_PENDING, W_COMPLETED, W_FAILED, W_TIMEDOUT };

struct wait_item {
	int64_t id;
	const char *arg;	/* the id as given */
	enum wait_state state;
	char status[16];	/* the last status seen */
};

static void
wait_report(struct wait_item *w, const PGresult *res, int row, int multi)
{
	const char *status, *text, *kind, *msg;
	char *esc;
	size_t len;

	status = PQgetvalue(res, row, 1);
	snprintf(w->status, sizeof(w->status), "%s", status);
	if (strcmp(status, "completed") == 0) {
		w->state = W_COMPLETED;
		if (multi)
			printf("== %" PRId64 " ==\n", w->id);
		text = PQgetvalue(res, row, 2);
		len = strlen(text);
		fwrite(text, 1, len, stdout);
		if (len == 0 || text[len - 1] != '\n')
			putchar('\n');
		fflush(stdout);
		return;
	}
	if (strcmp(status, "failed") != 0 && strcmp(status, "cancelled") != 0)
		return;

	w->state = W_FAILED;
	kind = PQgetisnull(res, row, 3) ? NULL : PQgetvalue(res, row, 3);
	msg = PQgetisnull(res, row, 4) ? NULL : PQgetvalue(res, row, 4);
	/* The message may come from a provider: one safe line. */
	esc = msg != NULL ? str_escape(msg, strlen(msg), 2000) : NULL;
	if (strcmp(status, "cancelled") == 0)
		ctl_errx("request %" PRId64 " was cancelled%s%s", w->id,
		    esc != NULL ? ": " : "", esc != NULL ? esc : "");
	else if (kind != NULL && esc != NULL)
		ctl_errx("request %" PRId64 " failed: %s: %s", w->id, kind,
		    esc);
	else
		ctl_errx("request %" PRId64 " failed: %s", w->id,
		    kind != NULL ? kind : esc != NULL ? esc :
		    "no error recorded");
	free(esc);
}

/*
 * Look at the rows still pending.  Returns the number still pending,
 * or -1 on a database error.
 */
static int
wait_check(PGconn *conn, struct wait_item *items, size_t n)
{
	const char *params[1];
	PGresult *res;
	char *arr, *p;
	size_t i, npending = 0;
	int row, nrows, found, multi = n > 1;
	int64_t id;

	arr = p = xmalloc(n * 21 + 3);
	*p++ = '{';
	for (i = 0; i < n; i++)
		if (items[i].state == W_PENDING)
			p += sprintf(p, "%s%" PRId64, p[-1] == '{' ? "" : ",",
			    items[i].id);
	*p++ = '}';
	*p = '\0';
	params[0] = arr;
	res = PQexecParams(conn,
	    "SELECT id, status, "
	    "CASE WHEN status = 'completed' THEN coalesce(response, '') END, "
	    "error_kind, error_message "
	    "FROM llmq.requests WHERE id = ANY ($1::bigint[])",
	    1, NULL, params, NULL, NULL, 0);
	free(arr);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		ctl_pgerr(conn, res, "could not read requests");
		PQclear(res);
		return -1;
	}
	nrows = PQntuples(res);
	for (i = 0; i < n; i++) {
		if (items[i].state != W_PENDING)
			continue;
		for (found = 0, row = 0; row < nrows; row++) {
			id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
			if (id == items[i].id) {
				found = 1;
				wait_report(&items[i], res, row, multi);
				break;
			}
		}
		if (!found) {
			ctl_errx("no such request %" PRId64, items[i].id);
			items[i].state = W_FAILED;
		}
		if (items[i].state == W_PENDING)
			npending++;
	}
	PQclear(res);
	return (int)npending;
}

/* Drain the notifications; 1 if one names a request still pending. */
static int
wait_notified(PGconn *conn, struct wait_item *items, size_t n)
{
	PGnotify *nf;
	int64_t id;
	size_t i;
	int hit = 0;

	while ((nf = PQnotifies(conn)) != NULL) {
		if (parse_id(nf->extra, &id) == 0)
			for (i = 0; i < n; i++)
				if (items[i].id == id &&
				    items[i].state == W_PENDING)
					hit = 1;
		PQfreemem(nf);
	}
	return hit;
}

static int
wait_run(PGconn *conn, struct wait_item *items, size_t n,
    int64_t timeout_ms)
{
	struct pollfd pfd;
	int64_t now, deadline, last_check, ms;
	int npending, recheck, failed = 0, timedout = 0;
	size_t i;

	if (exec_command(conn, "LISTEN llmq_done", "could not listen") == -1)
		return 1;
	deadline = timeout_ms >= 0 ? mono_ms() + timeout_ms : -1;
	recheck = 1;
	last_check = 0;
	for (;;) {
		/* Anything that arrived with the last result counts. */
		if (wait_notified(conn, items, n))
			recheck = 1;
		now = mono_ms();
		if (recheck || now - last_check >= WAIT_RECHECK_MS) {
			if ((npending = wait_check(conn, items, n)) == -1)
				return 1;
			last_check = mono_ms();
			recheck = 0;
			if (npending == 0)
				break;
			continue;
		}
		if (deadline >= 0 && now >= deadline) {
			/* One last look before giving up. */
			if (wait_check(conn, items, n) == -1)
				return 1;
			for (i = 0; i < n; i++)
				if (items[i].state == W_PENDING)
					items[i].state = W_TIMEDOUT;
			break;
		}

		ms = last_check + WAIT_RECHECK_MS - now;
		if (deadline >= 0 && deadline - now < ms)
			ms = deadline - now;
		if (ms < 0)
			ms = 0;
		pfd.fd = PQsocket(conn);
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (pfd.fd == -1) {
			ctl_errx("lost the database connection");
			return 1;
		}
		if (poll(&pfd, 1, (int)ms) == -1) {
			if (errno == EINTR)
				continue;
			ctl_err("poll");
			return 1;
		}
		if (pfd.revents != 0 && PQconsumeInput(conn) == 0) {
			ctl_pgerr(conn, NULL, "lost the database connection");
			return 1;
		}
	}

	for (i = 0; i < n; i++) {
		if (items[i].state == W_FAILED)
			failed = 1;
		else if (items[i].state == W_TIMEDOUT) {
			timedout = 1;
			ctl_errx("timed out waiting for request %" PRId64
			    " (status %s)", items[i].id, items[i].status);
		}
	}
	return failed ? 1 : timedout ? EXIT_TIMEOUT : 0;
}

static int
cmd_wait(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *cmd = command_find("wait");
	struct wait_item *items;
	int64_t timeout_ms = -1;
	size_t i, n;
	int ch, rc;

	command_getopt_init(cmd, argv);
	while ((ch = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
		switch (ch) {
		case 't':
			if (cfg_parse_duration(optarg, &timeout_ms) == -1) {
				ctl_errx("wait: invalid timeout \"%s\" "
				    "(expected e.g. 500ms, 30s, 5m)", optarg);
				return EX_USAGE;
			}
			break;
		case 'h':
			usage_command(cmd, stdout);
			return 0;
		default:
			usage_command(cmd, stderr);
			return EX_USAGE;
		}
	}
	if (optind == argc) {
		ctl_errx("wait: no request id");
		usage_command(cmd, stderr);
		return EX_USAGE;
	}
	n = (size_t)(argc - optind);
	items = xcalloc(n, sizeof(*items));
	for (i = 0; i < n; i++) {
		items[i].arg = argv[optind + (int)i];
		if (parse_id(items[i].arg, &items[i].id) == -1) {
			ctl_errx("wait: invalid request id \"%s\"",
			    items[i].arg);
			free(items);
			return EX_USAGE;
		}
		items[i].state = W_PENDING;
		snprintf(items[i].status, sizeof(items[i].status), "unknown");
	}

	rc = 1;
	if (ctl_connect(ctl, 0) == 0)
		rc = wait_run(ctl->conn, items, n, timeout_ms);
	free(items);
	return rc;
}

/*
 * show: the row as "key: value" lines, in column order, then the
 * timings that follow from its timestamps.
 */

#define BOOL_OID 16	/* pg_type.h is not for clients */
#define SHOW_KEYW 19	/* the widest key, "first_token_at:" and more */

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
		    json_object_get_string(role) : "?";
		c = json_object_object_get_ex(m, "content", &content) ?
		    json_object_get_string(content) : "";
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
	if (!as_json && exec_command(conn, "SET datestyle = 'ISO, YMD'",
	    "could not set datestyle") == -1)
		return 1;
	if (as_json)
		res = PQexecParams(conn,
		    "SELECT to_jsonb(r) FROM llmq.requests r WHERE r.id = $1",
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
	return 0;
}

static int
cmd_show(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *cmd = command_find("show");
	int ch, as_json = 0;
	int64_t id;

	command_getopt_init(cmd, argv);
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			as_json = 1;
			break;
		case 'h':
			usage_command(cmd, stdout);
			return 0;
		default:
			usage_command(cmd, stderr);
			return EX_USAGE;
		}
	}
	if (argc - optind != 1) {
		ctl_errx("show: %s", optind == argc ? "no request id" :
		    "one request id only");
		usage_command(cmd, stderr);
		return EX_USAGE;
	}
	if (parse_id(argv[optind], &id) == -1) {
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

static int
list_run(PGconn *conn, const char *status, const char *role,
    const char *limit, int as_json)
{
	static const char *const head[LIST_NCOLS] = {
		"ID", "ROLE", "STATUS", "MODEL", "ATTEMPTS", "CREATED",
		"TOTAL_MS", "ERROR",
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
			len = PQgetisnull(res, i, c) ? 1 :
			    PQgetlength(res, i, c);
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
				v = PQgetisnull(res, i, c) ? "-" :
				    PQgetvalue(res, i, c);
			if (c < LIST_NCOLS - 1)
				printf("%*s  ", right[c] ? width[c] :
				    -width[c], v);
			else
				printf("%s\n", v);
		}
	}
	PQclear(res);
	return 0;
}

static int
cmd_list(struct ctl *ctl, int argc, char **argv)
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
	const struct command *cmd = command_find("list");
	const char *status = NULL, *role = NULL, *limit = "20";
	int ch, as_json = 0;
	long v;

	command_getopt_init(cmd, argv);
	while ((ch = getopt_long(argc, argv, "s:r:l:h", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (!status_known(optarg)) {
				ctl_errx("list: unknown status \"%s\" "
				    "(expected pending, processing, "
				    "completed, failed or cancelled)", optarg);
				return EX_USAGE;
			}
			status = optarg;
			break;
		case 'r':
			role = optarg;
			break;
		case 'l':
			if (parse_int(optarg, 0, LONG_MAX, &v) == -1) {
				ctl_errx("list: invalid limit \"%s\"", optarg);
				return EX_USAGE;
			}
			/* 0: no limit (LIMIT NULL). */
			limit = v == 0 ? NULL : optarg;
			break;
		case OPT_JSON:
			as_json = 1;
			break;
		case 'h':
			usage_command(cmd, stdout);
			return 0;
		default:
			usage_command(cmd, stderr);
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		ctl_errx("list: unexpected argument \"%s\"", argv[optind]);
		usage_command(cmd, stderr);
		return EX_USAGE;
	}
	if (ctl_connect(ctl, 0) == -1)
		return 1;
	return list_run(ctl->conn, status, role, limit, as_json);
}

int
main(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "dbname", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static char prog[] = "llmqctl";
	const struct command *cmd;
	struct ctl ctl;
	int ch, rc;

	/* getopt's messages name the program as ours do. */
	argv[0] = prog;
	log_init("llmqctl", "stderr", LOG_WARNING);
	memset(&ctl, 0, sizeof(ctl));
	/* "+": stop at the command; its options are its own. */
	while ((ch = getopt_long(argc, argv, "+c:d:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			ctl.cfgpath = optarg;
			break;
		case 'd':
			ctl.conninfo = optarg;
			break;
		case 'h':
			help_main();
			return 0;
		case 'V':
			printf("llmqctl (llmq) %s\n", PACKAGE_VERSION);
			return 0;
		default:
			usage_main(stderr);
			return EX_USAGE;
		}
	}
	if (optind == argc) {
		ctl_errx("no command given");
		usage_main(stderr);
		return EX_USAGE;
	}
	if ((cmd = command_find(argv[optind])) == NULL) {
		ctl_errx("unknown command \"%s\"", argv[optind]);
		usage_main(stderr);
		return EX_USAGE;
	}

	rc = cmd->run(&ctl, argc - optind, argv + optind);

	if (ctl.conn != NULL)
		PQfinish(ctl.conn);
	cfg_free(ctl.cfg);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		ctl_err("could not write to standard output");
		if (rc == 0)
			rc = 1;
	}
	return rc;
}
