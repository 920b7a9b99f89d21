/*
 * ctl_wait.c: "llmqctl wait", which waits for requests to finish and
 * prints their responses.
 *
 * It LISTENs first, then looks at the rows, so that a request that
 * finishes in between is seen either way.  A notification only says
 * "look again"; the row is the truth.  Rows are also looked at every
 * second, for a notification lost in a connection pooler.  A response
 * goes to stdout as soon as its row is seen completed; a failure's
 * message, which may come from a provider, is escaped and truncated
 * before it reaches stderr.  The exit status is 1 if any request
 * failed, was cancelled or does not exist (or on a database error),
 * else EXIT_TIMEOUT if any timed out.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <libpq-fe.h>

#include "cfg.h"
#include "ctl.h"
#include "util.h"

/* How often "wait" rechecks its rows when no notification arrives. */
#define WAIT_RECHECK_MS 1000

enum wait_state { W_PENDING, W_COMPLETED, W_FAILED, W_TIMEDOUT };

struct wait_item {
	int64_t id;
	const char *arg; /* the id as given */
	enum wait_state state;
	char status[16]; /* the last status seen */
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
		ctl_errx(
		    "request %" PRId64 " failed: %s: %s", w->id, kind, esc);
	else
		ctl_errx("request %" PRId64 " failed: %s", w->id,
		    kind != NULL    ? kind :
		        esc != NULL ? esc :
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
		if (ctl_parse_id(nf->extra, &id) == 0)
			for (i = 0; i < n; i++)
				if (items[i].id == id &&
				    items[i].state == W_PENDING)
					hit = 1;
		PQfreemem(nf);
	}
	return hit;
}

static int
wait_run(PGconn *conn, struct wait_item *items, size_t n, int64_t timeout_ms)
{
	struct pollfd pfd;
	int64_t now, deadline, last_check, ms;
	int npending, recheck, failed = 0, timedout = 0;
	size_t i;

	if (ctl_exec(conn, "LISTEN llmq_done", "could not listen") == -1)
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
			         " (status %s)",
			    items[i].id, items[i].status);
		}
	}
	return failed ? 1 : timedout ? EXIT_TIMEOUT : 0;
}

int
ctl_wait(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct wait_item *items;
	int64_t timeout_ms = -1;
	size_t i, n;
	int ch, rc;

	ctl_getopt_init(ctl, argv);
	while ((ch = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
		switch (ch) {
		case 't':
			if (cfg_parse_duration(optarg, &timeout_ms) == -1) {
				ctl_errx("wait: invalid timeout \"%s\" "
				         "(expected e.g. 500ms, 30s, 5m)",
				    optarg);
				return EX_USAGE;
			}
			break;
		default: /* -h, or an option getopt refused */
			return ctl_help(ctl, ch);
		}
	}
	if (optind == argc) {
		return ctl_usage_error(ctl, "no request id");
	}
	n = (size_t)(argc - optind);
	items = xcalloc(n, sizeof(*items));
	for (i = 0; i < n; i++) {
		items[i].arg = argv[optind + (int)i];
		if (ctl_parse_id(items[i].arg, &items[i].id) == -1) {
			ctl_errx(
			    "wait: invalid request id \"%s\"", items[i].arg);
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
