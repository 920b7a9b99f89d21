/*
 * ctl_admin.c: "llmqctl cancel", "retry" and "purge", the commands that
 * change requests after their submit.
 *
 * cancel and retry call llmq.cancel() and llmq.retry()
 * (sql/006_admin.sql), the functions every other client uses, so that
 * what a request may go through is decided in one place; each id is its
 * own statement and transaction, and what happened to it is printed as
 * "ID: ..." on standard output once that has committed.  purge deletes
 * in batches, each its own transaction, so that no lock is held long on
 * a busy table; the limit it deletes below is computed once, so that
 * the batches agree on it.
 */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <libpq-fe.h>

#include "ctl.h"
#include "util.h"

/* Rows deleted per statement by purge. */
#define PURGE_BATCH 1000
/* Below this, purge wants --force: a typo must not empty the table. */
#define PURGE_MIN_MS (60 * 1000)

static const char *const error_kinds[] = {
	"timeout",
	"provider_down",
	"rate_limited",
	"http_error",
	"bad_request",
	"parse_error",
	"validation_error",
	"overload",
	"cancelled",
	"internal",
};

static int
kind_known(const char *s)
{
	size_t i;

	for (i = 0; i < nitems(error_kinds); i++)
		if (strcmp(s, error_kinds[i]) == 0)
			return 1;
	return 0;
}

/*
 * The request ids left in argv, into a new array; EX_USAGE (reported)
 * when one is not an id.
 */
static int
parse_ids(
    const struct ctl *ctl, int argc, char **argv, int64_t **ids, size_t *n)
{
	size_t i;

	*n = (size_t)(argc - optind);
	*ids = xcalloc(*n, sizeof(**ids));
	for (i = 0; i < *n; i++)
		if (ctl_parse_id(argv[optind + (int)i], &(*ids)[i]) == -1) {
			free(*ids);
			*ids = NULL;
			return ctl_usage_error(ctl, "invalid request id \"%s\"",
			    argv[optind + (int)i]);
		}
	return 0;
}

/*
 * cancel: each id through llmq.cancel(), which returns the status the
 * request had.  Success when every request named is cancelled now,
 * whether by this command or before.
 */
static int
cancel_run(PGconn *conn, const int64_t *ids, size_t n, const char *reason)
{
	const char *params[2], *was;
	PGresult *res;
	char id[32];
	size_t i;
	int rc = 0;

	params[1] = reason;
	for (i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "%" PRId64, ids[i]);
		params[0] = id;
		res = PQexecParams(conn, "SELECT llmq.cancel($1, $2)", 2, NULL,
		    params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK ||
		    PQntuples(res) != 1) {
			ctl_pgerr(conn, res, "could not cancel request %s", id);
			PQclear(res);
			return 1;
		}
		if (PQgetisnull(res, 0, 0)) {
			ctl_errx("no such request %s", id);
			rc = 1;
		} else {
			was = PQgetvalue(res, 0, 0);
			if (strcmp(was, "pending") == 0 ||
			    strcmp(was, "processing") == 0)
				printf("%s: cancelled (was %s)\n", id, was);
			else {
				printf("%s: already %s\n", id, was);
				if (strcmp(was, "cancelled") != 0)
					rc = 1;
			}
		}
		PQclear(res);
	}
	return rc;
}

int
ctl_cancel(struct ctl *ctl, int argc, char **argv)
{
	enum { OPT_REASON = 256 };
	static const struct option opts[] = {
		{ "reason", required_argument, NULL, OPT_REASON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *reason = NULL;
	int64_t *ids;
	size_t n;
	int ch, rc;

	ctl_getopt_init(ctl, argv);
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_REASON:
			reason = optarg;
			break;
		default: /* -h, or an option getopt refused */
			return ctl_help(ctl, ch);
		}
	}
	if (optind == argc)
		return ctl_usage_error(ctl, "no request id");
	if ((rc = parse_ids(ctl, argc, argv, &ids, &n)) != 0)
		return rc;
	rc = 1;
	if (ctl_connect(ctl, 0) == 0)
		rc = cancel_run(ctl->conn, ids, n, reason);
	free(ids);
	return rc;
}

/*
 * retry: each id through llmq.retry(), its status read and locked first
 * in the same statement, to say why one was not retried; or every
 * failed request that matches, in one transaction.
 */
static int
retry_ids(PGconn *conn, const int64_t *ids, size_t n)
{
	const char *params[1], *was;
	PGresult *res;
	char id[32];
	size_t i;
	int rc = 0;

	for (i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "%" PRId64, ids[i]);
		params[0] = id;
		res = PQexecParams(conn,
		    "SELECT o.status, llmq.retry(o.id)"
		    "  FROM (SELECT id, status FROM llmq.requests"
		    "         WHERE id = $1 FOR UPDATE) o",
		    1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			ctl_pgerr(conn, res, "could not retry request %s", id);
			PQclear(res);
			return 1;
		}
		if (PQntuples(res) == 0) {
			ctl_errx("no such request %s", id);
			rc = 1;
		} else {
			was = PQgetvalue(res, 0, 0);
			if (strcmp(PQgetvalue(res, 0, 1), "t") == 0)
				printf("%s: retried (was %s)\n", id, was);
			else {
				printf("%s: not retried (%s)\n", id, was);
				rc = 1;
			}
		}
		PQclear(res);
	}
	return rc;
}

static int
retry_failed(
    PGconn *conn, const char *since_ms, const char *role, const char *kind)
{
	const char *params[3] = { since_ms, role, kind };
	PGresult *res;
	long long n;

	res = PQexecParams(conn,
	    "WITH c AS (SELECT id FROM llmq.requests"
	    "            WHERE status = 'failed'"
	    "              AND ($1::bigint IS NULL OR finished_at >="
	    "                   now() - $1::bigint * interval '1 millisecond')"
	    "              AND ($2::text IS NULL OR role = $2)"
	    "              AND ($3::text IS NULL OR error_kind = $3)"
	    "            ORDER BY id FOR UPDATE),"
	    " r AS (SELECT llmq.retry(c.id) AS ok FROM c)"
	    " SELECT count(*) FILTER (WHERE ok) FROM r",
	    3, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		ctl_pgerr(conn, res, "could not retry the failed requests");
		PQclear(res);
		return 1;
	}
	n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	printf("retried %lld request%s\n", n, n == 1 ? "" : "s");
	PQclear(res);
	return 0;
}

int
ctl_retry(struct ctl *ctl, int argc, char **argv)
{
	enum { OPT_SINCE = 256, OPT_KIND };
	static const struct option opts[] = {
		{ "failed", no_argument, NULL, 'f' },
		{ "since", required_argument, NULL, OPT_SINCE },
		{ "role", required_argument, NULL, 'r' },
		{ "kind", required_argument, NULL, OPT_KIND },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *since = NULL, *role = NULL, *kind = NULL;
	char since_ms[32];
	int64_t *ids, ms;
	size_t n;
	int ch, rc, failed = 0;

	ctl_getopt_init(ctl, argv);
	while ((ch = getopt_long(argc, argv, "fr:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			failed = 1;
			break;
		case OPT_SINCE:
			if (ctl_parse_period(optarg, &ms) == -1 || ms == 0) {
				return ctl_usage_error(ctl,
				    "invalid period \"%s\" (expected e.g. 30m, "
				    "24h, 7d)",
				    optarg);
			}
			since = optarg;
			snprintf(
			    since_ms, sizeof(since_ms), "%lld", (long long)ms);
			break;
		case 'r':
			role = optarg;
			break;
		case OPT_KIND:
			if (!kind_known(optarg)) {
				return ctl_usage_error(ctl,
				    "unknown error kind \"%s\" (see llmq(7), "
				    "ERROR KINDS)",
				    optarg);
			}
			kind = optarg;
			break;
		default: /* -h, or an option getopt refused */
			return ctl_help(ctl, ch);
		}
	}
	if (failed) {
		if ((rc = ctl_no_args(ctl, argc, argv)) != 0)
			return rc;
		if (ctl_connect(ctl, 0) == -1)
			return 1;
		return retry_failed(
		    ctl->conn, since != NULL ? since_ms : NULL, role, kind);
	}
	if (since != NULL || role != NULL || kind != NULL) {
		return ctl_usage_error(
		    ctl, "--since, --role and --kind go with --failed");
	}
	if (optind == argc)
		return ctl_usage_error(ctl, "no request id (or --failed)");
	if ((rc = parse_ids(ctl, argc, argv, &ids, &n)) != 0)
		return rc;
	rc = 1;
	if (ctl_connect(ctl, 0) == 0)
		rc = retry_ids(ctl->conn, ids, n);
	free(ids);
	return rc;
}

/*
 * purge: finished requests whose finished_at is older than the limit.
 * created_at is bounded too, by the same limit (a request finishes
 * after it is created), so that the index on it finds the candidates
 * instead of a scan of the whole table for every batch; the consumer's
 * purge does the same.  Their calls in llmq.attempts go with them (ON
 * DELETE CASCADE); the cache keeps its entries.
 */
#define PURGE_WHERE                                                            \
	" WHERE status IN ('completed', 'failed', 'cancelled')"                \
	"   AND finished_at < $1::timestamptz"                                 \
	"   AND created_at < $1::timestamptz"

static int
purge_run(PGconn *conn, int64_t older_ms, int dry_run)
{
	const char *params[2];
	char ms[32], batch[16], *limit = NULL;
	PGresult *res;
	long long n, total = 0;
	int rc = 1;

	snprintf(ms, sizeof(ms), "%lld", (long long)older_ms);
	params[0] = ms;
	res = PQexecParams(conn,
	    "SELECT now() - $1::bigint * interval '1 millisecond'", 1, NULL,
	    params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		ctl_pgerr(conn, res, "could not purge");
		goto out;
	}
	/* Read back by the same session, in the same DateStyle. */
	limit = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	params[0] = limit;

	if (dry_run) {
		res = PQexecParams(conn,
		    "SELECT count(*) FROM llmq.requests" PURGE_WHERE, 1, NULL,
		    params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK ||
		    PQntuples(res) != 1) {
			ctl_pgerr(conn, res, "could not count the requests");
			goto out;
		}
		n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		printf("would purge %lld request%s\n", n, n == 1 ? "" : "s");
		rc = 0;
		goto out;
	}

	snprintf(batch, sizeof(batch), "%d", PURGE_BATCH);
	params[1] = batch;
	do {
		res = PQexecParams(conn,
		    "DELETE FROM llmq.requests WHERE id IN"
		    " (SELECT id FROM llmq.requests" PURGE_WHERE
		    "   LIMIT $2::integer)",
		    2, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			ctl_pgerr(conn, res, "could not purge");
			/* What was deleted is gone: say how much. */
			if (total > 0)
				printf("purged %lld request%s\n", total,
				    total == 1 ? "" : "s");
			goto out;
		}
		n = strtoll(PQcmdTuples(res), NULL, 10);
		total += n;
		PQclear(res);
		res = NULL;
	} while (n == PURGE_BATCH);
	printf("purged %lld request%s\n", total, total == 1 ? "" : "s");
	rc = 0;
out:
	PQclear(res);
	free(limit);
	return rc;
}

int
ctl_purge(struct ctl *ctl, int argc, char **argv)
{
	enum { OPT_OLDER = 256, OPT_FORCE };
	static const struct option opts[] = {
		{ "older-than", required_argument, NULL, OPT_OLDER },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *older = NULL;
	int64_t older_ms = 0;
	int ch, rc, dry_run = 0, force = 0;

	ctl_getopt_init(ctl, argv);
	while ((ch = getopt_long(argc, argv, "nh", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_OLDER:
			if (ctl_parse_period(optarg, &older_ms) == -1) {
				return ctl_usage_error(ctl,
				    "invalid age \"%s\" (expected e.g. 90d, "
				    "12h)",
				    optarg);
			}
			older = optarg;
			break;
		case 'n':
			dry_run = 1;
			break;
		case OPT_FORCE:
			force = 1;
			break;
		default: /* -h, or an option getopt refused */
			return ctl_help(ctl, ch);
		}
	}
	if ((rc = ctl_no_args(ctl, argc, argv)) != 0)
		return rc;
	if (older == NULL)
		return ctl_usage_error(ctl, "--older-than is required");
	if (older_ms < PURGE_MIN_MS && !force) {
		return ctl_usage_error(ctl,
		    "refusing to purge requests finished less than a minute "
		    "ago without --force");
	}
	if (ctl_connect(ctl, 0) == -1)
		return 1;
	return purge_run(ctl->conn, older_ms, dry_run);
}
