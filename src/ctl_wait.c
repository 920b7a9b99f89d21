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
 *
 * With --follow, one request's text is printed while the model writes
 * it: the pieces of a streamed call arrive by NOTIFY on
 * "llmq_stream_<id>" (small ones in the payload) and are read from
 * llmq.partials when one is missed or too big for a payload.  When the
 * row is final, the rest of the response is printed, or, should it not
 * continue what was printed (a later attempt wrote another text), all
 * of it after a note on stderr.
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

#include <json.h>
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

/*
 * The text of one request as followed.  A call is known by its attempt
 * and its round (re-asks within an attempt), ordered as CALL() orders
 * them: a later call's text starts over.
 */
#define CALL(attempt, round) ((int64_t)(attempt) * 1000 + (round))

struct follow {
	int64_t id;
	int64_t call; /* CALL() of the call being printed; 0 before any */
	int next_seq; /* the piece printed next */
	char *text;   /* what was printed of this call */
	size_t len, cap;
};

static void
follow_print(struct follow *f, const char *s, size_t len)
{
	if (f->len + len + 1 > f->cap) {
		while (f->len + len + 1 > f->cap)
			f->cap = f->cap ? f->cap * 2 : 4096;
		f->text = xrealloc(f->text, f->cap);
	}
	memcpy(f->text + f->len, s, len);
	f->len += len;
	fwrite(s, 1, len, stdout);
	fflush(stdout);
}

/* A later call (a retry, a re-ask): its text starts over. */
static void
follow_call(struct follow *f, int attempt, int round)
{
	if (f->len > 0) {
		putchar('\n');
		fflush(stdout);
		if (round > 0)
			ctl_errx("request %" PRId64 ": attempt %d, asked "
			         "again (%d), starts over",
			    f->id, attempt, round);
		else
			ctl_errx("request %" PRId64 ": attempt %d starts over",
			    f->id, attempt);
	}
	f->call = CALL(attempt, round);
	f->next_seq = 1;
	f->len = 0;
}

/*
 * Read the pieces not yet printed from the table: of the latest attempt
 * that wrote any.  Returns 0, or -1 on a database error.
 */
static int
follow_catch_up(PGconn *conn, struct follow *f)
{
	const char *params[3];
	char ibuf[24], cbuf[24], sbuf[16];
	PGresult *res;
	int i, n, attempt, round, seq;

	snprintf(ibuf, sizeof(ibuf), "%" PRId64, f->id);
	snprintf(cbuf, sizeof(cbuf), "%" PRId64, f->call);
	snprintf(sbuf, sizeof(sbuf), "%d", f->next_seq);
	params[0] = ibuf;
	params[1] = cbuf;
	params[2] = sbuf;
	/* The latest call's pieces, from the next one not printed. */
	res = PQexecParams(conn,
	    "SELECT attempt, round, seq, delta FROM llmq.partials p"
	    " WHERE request_id = $1"
	    "   AND (attempt, round) = (SELECT attempt, round"
	    "                            FROM llmq.partials"
	    "                           WHERE request_id = $1"
	    "                           ORDER BY attempt DESC, round DESC"
	    "                           LIMIT 1)"
	    "   AND attempt::bigint * 1000 + round >= $2"
	    "   AND (attempt::bigint * 1000 + round > $2 OR seq >= $3)"
	    " ORDER BY seq",
	    3, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		ctl_pgerr(conn, res, "could not read the partial text");
		PQclear(res);
		return -1;
	}
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		attempt = atoi(PQgetvalue(res, i, 0));
		round = atoi(PQgetvalue(res, i, 1));
		seq = atoi(PQgetvalue(res, i, 2));
		if (CALL(attempt, round) > f->call)
			follow_call(f, attempt, round);
		if (seq != f->next_seq)
			break; /* not there yet: a later look finds it */
		follow_print(f, PQgetvalue(res, i, 3),
		    (size_t)PQgetlength(res, i, 3));
		f->next_seq++;
	}
	PQclear(res);
	return 0;
}

/*
 * One notification on the stream channel.  Returns 1 when the table
 * must be read (a piece was missed, or was too big for the payload).
 */
static int
follow_piece(struct follow *f, const char *payload)
{
	json_object *o, *v;
	int attempt, round, seq, again = 0;
	int64_t call;

	if ((o = json_tokener_parse(payload)) == NULL)
		return 1;
	attempt = json_object_object_get_ex(o, "attempt", &v) ?
	    json_object_get_int(v) :
	    0;
	round = json_object_object_get_ex(o, "round", &v) ?
	    json_object_get_int(v) :
	    0;
	seq = json_object_object_get_ex(o, "seq", &v) ? json_object_get_int(v) :
	                                                0;
	call = CALL(attempt, round);
	if (call < f->call || (call == f->call && seq < f->next_seq))
		; /* printed already */
	else {
		if (call > f->call)
			follow_call(f, attempt, round);
		if (seq == f->next_seq &&
		    json_object_object_get_ex(o, "delta", &v) &&
		    json_object_is_type(v, json_type_string)) {
			follow_print(f, json_object_get_string(v),
			    (size_t)json_object_get_string_len(v));
			f->next_seq++;
		} else
			again = 1;
	}
	json_object_put(o);
	return again;
}

/*
 * The row is final: print what is left of the response.  Returns the
 * exit status.
 */
static int
follow_done(PGconn *conn, struct follow *f, int *final)
{
	const char *params[1], *status, *text, *kind, *msg;
	char ibuf[24], *esc;
	PGresult *res;
	size_t len;
	int rc = 0;

	*final = 0;
	snprintf(ibuf, sizeof(ibuf), "%" PRId64, f->id);
	params[0] = ibuf;
	res = PQexecParams(conn,
	    "SELECT status, coalesce(response, ''), error_kind, error_message"
	    "  FROM llmq.requests WHERE id = $1",
	    1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		ctl_pgerr(conn, res, "could not read request %" PRId64, f->id);
		PQclear(res);
		*final = 1;
		return 1;
	}
	if (PQntuples(res) == 0) {
		ctl_errx("no such request %" PRId64, f->id);
		PQclear(res);
		*final = 1;
		return 1;
	}
	status = PQgetvalue(res, 0, 0);
	if (strcmp(status, "completed") == 0) {
		*final = 1;
		text = PQgetvalue(res, 0, 1);
		len = (size_t)PQgetlength(res, 0, 1);
		if (f->len == 0 ||
		    (f->len <= len && memcmp(text, f->text, f->len) == 0))
			fwrite(text + f->len, 1, len - f->len, stdout);
		else {
			putchar('\n');
			fflush(stdout);
			ctl_errx("request %" PRId64 ": the response differs from "
			         "the text streamed; all of it follows",
			    f->id);
			fwrite(text, 1, len, stdout);
		}
		if (len == 0 || text[len - 1] != '\n')
			putchar('\n');
		fflush(stdout);
	} else if (strcmp(status, "failed") == 0 ||
	    strcmp(status, "cancelled") == 0) {
		*final = 1;
		rc = 1;
		if (f->len > 0) {
			putchar('\n');
			fflush(stdout);
		}
		kind = PQgetisnull(res, 0, 2) ? "no error recorded" :
		                                PQgetvalue(res, 0, 2);
		msg = PQgetisnull(res, 0, 3) ? "" : PQgetvalue(res, 0, 3);
		esc = str_escape(msg, strlen(msg), 2000);
		ctl_errx("request %" PRId64 " %s: %s%s%s", f->id,
		    strcmp(status, "failed") == 0 ? "failed" : "was cancelled",
		    kind, esc[0] != '\0' ? ": " : "", esc);
		free(esc);
	}
	PQclear(res);
	return rc;
}

static int
follow_run(PGconn *conn, int64_t id, int64_t timeout_ms)
{
	struct follow f = { id, 0, 1, NULL, 0, 0 };
	struct pollfd pfd;
	PGnotify *nf;
	char *sql, chan[48];
	int64_t now, deadline, last_check, ms, nid;
	int rc = 1, r, look, final;

	snprintf(chan, sizeof(chan), "llmq_stream_%" PRId64, id);
	sql = xasprintf("LISTEN llmq_done; LISTEN %s", chan);
	if (ctl_exec(conn, sql, "could not listen") == -1) {
		free(sql);
		return 1;
	}
	free(sql);
	deadline = timeout_ms >= 0 ? mono_ms() + timeout_ms : -1;
	look = 1;
	last_check = 0;
	for (;;) {
		while ((nf = PQnotifies(conn)) != NULL) {
			if (strcmp(nf->relname, chan) == 0)
				look |= follow_piece(&f, nf->extra);
			else if (ctl_parse_id(nf->extra, &nid) == 0 &&
			    nid == id)
				look = 1;
			PQfreemem(nf);
		}
		now = mono_ms();
		/* At the deadline, a last look; before it, a look when due. */
		if (look || now - last_check >= WAIT_RECHECK_MS ||
		    (deadline >= 0 && now >= deadline)) {
			/* The pieces first: the row may be final already. */
			if (follow_catch_up(conn, &f) == -1)
				break;
			r = follow_done(conn, &f, &final);
			if (final) {
				rc = r;
				break;
			}
			last_check = mono_ms();
			look = 0;
		}
		if (deadline >= 0 && now >= deadline) {
			if (f.len > 0)
				putchar('\n');
			ctl_errx("timed out waiting for request %" PRId64, id);
			rc = EXIT_TIMEOUT;
			break;
		}
		ms = last_check + WAIT_RECHECK_MS - now;
		if (deadline >= 0 && deadline - now < ms)
			ms = deadline - now;
		pfd.fd = PQsocket(conn);
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (pfd.fd == -1) {
			ctl_errx("lost the database connection");
			break;
		}
		if (poll(&pfd, 1, ms < 0 ? 0 : (int)ms) == -1) {
			if (errno == EINTR)
				continue;
			ctl_err("poll");
			break;
		}
		if (pfd.revents != 0 && PQconsumeInput(conn) == 0) {
			ctl_pgerr(conn, NULL, "lost the database connection");
			break;
		}
	}
	free(f.text);
	return rc;
}

int
ctl_wait(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "follow", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct wait_item *items;
	int64_t timeout_ms = -1;
	size_t i, n;
	int ch, rc, follow = 0;

	ctl_getopt_init(ctl, argv);
	while ((ch = getopt_long(argc, argv, "t:fh", opts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			follow = 1;
			break;
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
	if (follow && n > 1)
		return ctl_usage_error(ctl, "--follow takes one request id");
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
		rc = follow ? follow_run(ctl->conn, items[0].id, timeout_ms) :
		              wait_run(ctl->conn, items, n, timeout_ms);
	free(items);
	return rc;
}
