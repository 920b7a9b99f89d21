/*
 * ttft.c: measure what llmq adds to the time to first token of a
 * streamed reply.
 *
 * One request at a time: in one transaction, llmq.submit() a streamed
 * request whose only message starts with the marker "ttft-I", and LISTEN
 * on its channel llmq_stream_ID; commit; wait for the first piece's
 * notification, then for the request to finish (llmq_done), and go on
 * with the next.  The start of the span is the moment the LLM stand-in
 * (tests/mockllm -L) queued the first record of the stream to its socket,
 * read from its log ("<us> first_chunk <path> <content>"); the end is
 * the moment PQnotifies() handed the first piece over here.  Between the
 * two: curl receiving the record, the worker parsing it, the INSERT into
 * llmq.partials and its NOTIFY, and PostgreSQL delivering it.
 *
 * Both ends are CLOCK_REALTIME microseconds on one host.  The first few
 * requests are a warm-up and are not counted.  It reports and never
 * judges; it exits non-zero only when it could not measure at all.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "config.h"

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "bench.h"
#include "util.h"

#define DEF_COUNT 200
#define DEF_WARMUP 10
#define DEF_GAP_MS 30
#define DEF_ROLE "planner"
#define MARK "ttft-"
#define TAG "first_chunk"
#define WAIT_US (30 * 1000000LL) /* for one request */
#define LOG_WAIT_US (2 * 1000000LL)

struct sample {
	int64_t id;
	int64_t seen_us;  /* the first piece reached us; 0: never */
	int64_t chunk_us; /* the stand-in sent the first record; 0: unknown */
};

static PGconn *
db_open(const char *conninfo)
{
	PGconn *conn = PQconnectdb(conninfo);

	if (PQstatus(conn) != CONNECTION_OK)
		errx(1, "connect: %s", PQerrorMessage(conn));
	return conn;
}

static void
db_command(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);

	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		errx(1, "%s: %s", sql, PQerrorMessage(conn));
	PQclear(res);
}

/*
 * Wait for a notification on chan whose payload, when want_id is not 0,
 * is that id; returns the wall clock when it was handed over, or 0 at
 * the deadline.
 */
static int64_t
await(PGconn *conn, const char *chan, int64_t want_id, int64_t deadline)
{
	struct pollfd pfd;
	PGnotify *nf;
	int64_t now, got = 0;

	for (;;) {
		while ((nf = PQnotifies(conn)) != NULL) {
			if (got == 0 && strcmp(nf->relname, chan) == 0 &&
			    (want_id == 0 ||
			        strtoll(nf->extra, NULL, 10) == want_id))
				got = wall_us();
			PQfreemem(nf);
		}
		if (got != 0)
			return got;
		if ((now = mono_us()) >= deadline)
			return 0;
		pfd.fd = PQsocket(conn);
		pfd.events = POLLIN;
		if (poll(&pfd, 1, (int)((deadline - now) / 1000) + 1) == -1 &&
		    errno != EINTR)
			err(1, "poll");
		if (PQconsumeInput(conn) == 0)
			errx(1, "connection: %s", PQerrorMessage(conn));
	}
}

/* One streamed request; fills s. */
static void
one(PGconn *conn, const char *role, int i, int gap_ms, struct sample *s)
{
	char msg[256], chan[64], *sql;
	const char *params[2];
	PGresult *res;
	int64_t deadline;

	snprintf(msg, sizeof(msg),
	    "[{\"role\":\"user\",\"content\":\"" MARK
	    "%d mock:gap=%d mock:pieces=3\"}]",
	    i, gap_ms);
	params[0] = role;
	params[1] = msg;
	db_command(conn, "BEGIN");
	res = PQexecParams(conn,
	    "SELECT llmq.submit($1, $2::jsonb, '{\"stream\": true}')", 2,
	    NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		errx(1, "submit: %s", PQerrorMessage(conn));
	s->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	snprintf(chan, sizeof(chan), "llmq_stream_%" PRId64, s->id);
	sql = xasprintf("LISTEN %s; LISTEN llmq_done; COMMIT", chan);
	db_command(conn, sql);
	free(sql);
	deadline = mono_us() + WAIT_US;
	s->seen_us = await(conn, chan, 0, deadline);
	if (await(conn, "llmq_done", s->id, deadline) == 0)
		warnx("request %" PRId64 " did not finish in time", s->id);
	db_command(conn, "UNLISTEN *");
}

/*
 * "<us> first_chunk <path> ttft-I_...": the sample of index I gets us.
 * Returns the number of samples that got one.
 */
static int
read_log(const char *path, struct sample *s, int n)
{
	FILE *f;
	char line[1024], *p, *q;
	long long us;
	long idx;
	int found = 0;

	if ((f = fopen(path, "r")) == NULL)
		err(1, "%s", path);
	while (fgets(line, sizeof(line), f) != NULL) {
		us = strtoll(line, &p, 10);
		if (*p != ' ' || strncmp(p + 1, TAG " ", strlen(TAG) + 1) != 0)
			continue;
		p += strlen(TAG) + 2;
		if ((p = strchr(p, ' ')) == NULL ||
		    strncmp(p + 1, MARK, strlen(MARK)) != 0)
			continue;
		idx = strtol(p + 1 + strlen(MARK), &q, 10);
		if (q == p + 1 + strlen(MARK) || (*q != '_' && *q != '\n') ||
		    idx < 0 || idx >= n)
			continue;
		if (s[idx].chunk_us == 0)
			found++;
		s[idx].chunk_us = us;
	}
	fclose(f);
	return found;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: ttft -d CONNINFO -l MOCKLOG [-n COUNT] [-w WARMUP] "
	    "[-g GAP_MS] [-r ROLE]\n");
	exit(2);
}

int
main(int argc, char *argv[])
{
	const char *conninfo = NULL, *logpath = NULL, *role = DEF_ROLE;
	int n = DEF_COUNT, warmup = DEF_WARMUP, gap = DEF_GAP_MS;
	int ch, i, total, got, m;
	struct sample *s;
	int64_t *d, deadline;
	PGconn *conn;

	while ((ch = getopt(argc, argv, "d:l:n:w:g:r:")) != -1) {
		switch (ch) {
		case 'd':
			conninfo = optarg;
			break;
		case 'l':
			logpath = optarg;
			break;
		case 'n':
			n = atoi(optarg);
			break;
		case 'w':
			warmup = atoi(optarg);
			break;
		case 'g':
			gap = atoi(optarg);
			break;
		case 'r':
			role = optarg;
			break;
		default:
			usage();
		}
	}
	if (conninfo == NULL || logpath == NULL || n < 1 || warmup < 0 ||
	    gap < 0)
		usage();
	total = warmup + n;
	s = xcalloc((size_t)total, sizeof(*s));
	conn = db_open(conninfo);
	for (i = 0; i < total; i++)
		one(conn, role, i, gap, &s[i]);
	PQfinish(conn);

	/* The stand-in flushes its log within 50 ms. */
	deadline = mono_us() + LOG_WAIT_US;
	while ((got = read_log(logpath, s, total)) < total &&
	    mono_us() < deadline)
		usleep(100 * 1000);

	d = xcalloc((size_t)n, sizeof(*d));
	for (m = 0, i = warmup; i < total; i++)
		if (s[i].seen_us != 0 && s[i].chunk_us != 0)
			d[m++] = s[i].seen_us - s[i].chunk_us;
	if (m == 0)
		errx(1, "no request was measured (%d of %d in the log)", got,
		    total);
	qsort(d, (size_t)m, sizeof(*d), cmp_i64);
	printf("time to first token overhead: stand-in sends the first "
	       "record -> listener has the first piece\n");
	printf("%-10s %6s %8s %8s %8s %8s %8s\n", "", "n", "min", "p50",
	    "p90", "p99", "max");
	printf("%-10s %6d %8.3f %8.3f %8.3f %8.3f %8.3f  ms\n", "overhead", m,
	    d[0] / 1000.0, rank(d, m, 50) / 1000.0, rank(d, m, 90) / 1000.0,
	    rank(d, m, 99) / 1000.0, d[m - 1] / 1000.0);
	if (m < n)
		printf("(%d of %d requests not measured)\n", n - m, n);
	free(d);
	free(s);
	return 0;
}
