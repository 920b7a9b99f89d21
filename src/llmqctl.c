/*
 * llmqctl.c: the llmq control tool: global options, usage, command
 * dispatch and the connection.
 *
 * Applies the schema migrations compiled into the binary, submits
 * requests, waits for them, shows, cancels, retries, purges and sums
 * them up, talking to PostgreSQL; only "status" and "top" look at llmqd,
 * and they map llmqd's shared memory read-only and never signal its
 * processes.  Every statement is parameterised and names its schema.
 * The commands live in ctl_migrate.c, ctl_request.c, ctl_wait.c,
 * ctl_status.c, ctl_top.c, ctl_stats.c and ctl_admin.c; this file owns
 * the command table, the helpers they share (ctl.h) and the struct ctl
 * they run with.  A command parses and checks all its arguments
 * before it connects, so that a usage error (exit 64) never costs a
 * connection; it returns its exit status to main(), which alone frees
 * the connection and the configuration, so that the tool runs clean
 * under ASan.  Messages go to stderr as "llmqctl: message"; stdout
 * carries only results (ids, responses, rows), so that scripts can use
 * it.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "cfg.h"
#include "ctl.h"
#include "log.h"
#include "util.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#define DEFAULT_CONFIG CTL_DEFAULT_CONFIG

struct ctl_command {
	const char *name;
	int (*run)(struct ctl *, int, char **);
	const char *usage; /* arguments, after the name; \n breaks */
	const char *help;  /* one line */
};

static const struct ctl_command commands[] = {
	{ "migrate", ctl_migrate, "[--dry-run]",
	    "apply pending schema migrations and register the roles" },
	{ "submit", ctl_submit,
	    "[-r ROLE] [-m TEXT | -] [-s TEXT] [-o JSON]\n"
	    "[--model M] [--complexity C] [--priority N]\n"
	    "[--timeout DURATION] [-n N]",
	    "submit a request and print its id" },
	{ "wait", ctl_wait, "[-t DURATION] ID... | -f ID",
	    "wait for requests to finish and print their responses" },
	{ "show", ctl_show, "[--json] ID", "show one request" },
	{ "list", ctl_list, "[-s STATUS] [-r ROLE] [-l N] [--json]",
	    "list the newest requests" },
	{ "stats", ctl_stats, "[--since DURATION] [-r ROLE] [--json]",
	    "summarise the requests of a period per role and model" },
	{ "cancel", ctl_cancel, "[--reason TEXT] ID...",
	    "cancel pending or processing requests" },
	{ "retry", ctl_retry,
	    "ID... | --failed [--since DURATION] [-r ROLE]\n"
	    "[--kind KIND]",
	    "run failed or cancelled requests again" },
	{ "purge", ctl_purge, "--older-than DURATION [-n] [--force]",
	    "delete requests finished longer ago than DURATION" },
	{ "check", ctl_check, "[--no-db]",
	    "check the configuration as llmqd -t does, and the database" },
	{ "status", ctl_status, "[--json]",
	    "show whether llmqd runs, its slots, children and queues" },
	{ "top", ctl_top, "[--once] [-n N]",
	    "show llmqd, its queues, rates and failures, live" },
};

/* "llmqctl: message" on stderr. */
void
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
void
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
void
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
print_usage(FILE *fp, const char *prefix, const struct ctl_command *cmd)
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
	printf("\nControl llmq: apply its schema; submit requests, wait for "
	       "them, show them,\ncancel, retry and purge them, and sum them "
	       "up; show how llmqd is doing.\n\n"
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
	       "cancelled, 2 timed out\nwaiting, 3 llmqd is not running "
	       "(status, top --once), 64 usage error.\n");
}

void
ctl_usage(const struct ctl *ctl, FILE *fp)
{
	print_usage(fp, "usage: llmqctl ", ctl->cmd);
}

int
ctl_help(const struct ctl *ctl, int ch)
{
	ctl_usage(ctl, ch == 'h' ? stdout : stderr);
	return ch == 'h' ? 0 : EX_USAGE;
}

int
ctl_usage_error(const struct ctl *ctl, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ctl_errx("%s: %s", ctl->cmd->name, msg);
	ctl_usage(ctl, stderr);
	return EX_USAGE;
}

/*
 * Reset getopt for a command's own options, with argv[0] set so that
 * getopt's messages read "llmqctl submit: unrecognized option ...".
 */
int
ctl_no_args(const struct ctl *ctl, int argc, char **argv)
{
	if (optind == argc)
		return 0;
	return ctl_usage_error(ctl, "unexpected argument \"%s\"", argv[optind]);
}

void
ctl_getopt_init(const struct ctl *ctl, char **argv)
{
	static char prog[64];

	snprintf(prog, sizeof(prog), "llmqctl %s", ctl->cmd->name);
	argv[0] = prog;
	optind = 0; /* glibc: reinitialise completely */
	opterr = 1;
}

static const struct ctl_command *
command_find(const char *name)
{
	size_t i;

	for (i = 0; i < nitems(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Helpers for parsing arguments. */

int
ctl_parse_id(const char *s, int64_t *id)
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

int
ctl_parse_int(const char *s, long min, long max, long *out)
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

/* Longer is a mistake; far longer, and now() minus it is no timestamp. */
#define PERIOD_MAX_MS (36500LL * 24 * 3600 * 1000)

int
ctl_parse_period(const char *s, int64_t *ms)
{
	int64_t v;

	if (cfg_parse_duration(s, &v) == -1 || v > PERIOD_MAX_MS)
		return -1;
	*ms = v;
	return 0;
}

/*
 * Load the configuration: the -c file, which must load, or else the
 * default file if it exists.  A default file we may not read (llmqctl
 * run by a user other than llmqd's) is skipped in silence, one that
 * does not load with a warning: the environment then names the
 * database.  Returns 0, or -1 when an explicit -c file failed.
 */
int
ctl_load_config(struct ctl *ctl)
{
	char err[1024];

	if (ctl->cfg != NULL)
		return 0;
	if (ctl->cfgpath != NULL) {
		ctl->cfg = cfg_load_flags(
		    ctl->cfgpath, CFG_NO_SECRETS, err, sizeof(err));
		if (ctl->cfg == NULL) {
			ctl_errx("%s", err);
			return -1;
		}
		return 0;
	}
	if (access(DEFAULT_CONFIG, R_OK) == -1)
		return 0;
	ctl->cfg =
	    cfg_load_flags(DEFAULT_CONFIG, CFG_NO_SECRETS, err, sizeof(err));
	if (ctl->cfg == NULL)
		ctl_errx("ignoring %s: %s", DEFAULT_CONFIG, err);
	return 0;
}

int
ctl_daemon_config(struct ctl *ctl)
{
	if (ctl_load_config(ctl) == -1)
		return 1;
	if (ctl->cfg == NULL)
		return ctl_usage_error(ctl,
		    "no configuration to find llmqd by "
		    "(use -c CONFIG with llmqd's configuration)");
	return 0;
}

/*
 * Connect: -d, else the configuration's database, else libpq's
 * environment (an empty dbname makes libpq fall back to PGDATABASE and
 * friends).  want_cfg also loads the configuration when -d names the
 * database, for commands that need more of it than the conninfo.
 */
int
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
int
ctl_exec(PGconn *conn, const char *sql, const char *what)
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

void
ctl_rollback(PGconn *conn)
{
	PGresult *res;

	/* A failure here leaves nothing behind: the session ends next. */
	res = PQexec(conn, "ROLLBACK");
	PQclear(res);
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
	const struct ctl_command *cmd;
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

	ctl.cmd = cmd;
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
