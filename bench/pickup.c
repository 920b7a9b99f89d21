/*
 * pickup.c: measure how long llmqd takes to pick up a request at light load.
 *
 * Two measurements in one run, against the same PostgreSQL server:
 *
 *   - llmq pick-up: N calls of llmq.submit(), one every interval, each in
 *     its own autocommit statement with the marker "pickup-I" as its only
 *     message.  The start is the wall clock right after PQexec returns
 *     (the commit is done by then); the end is the moment the LLM
 *     stand-in (tests/mockllm -L) parsed the request, read from its log
 *     by the marker.
 *   - the reference: a bare LISTEN/NOTIFY round trip, N times at the same
 *     pace: from right after the NOTIFY's PQexec returns on one connection
 *     to PQnotifies() handing it over on another, which waits in poll().
 *
 * Both sides of each latency are CLOCK_REALTIME in microseconds on one
 * host, so they compare.  A few warm-up rounds of each run first and are
 * not counted.  The program only reports; it never judges the figures, and
 * exits non-zero only when it could not measure at all.  Only lines the
 * log gained after start-up are read, so a log may be shared by runs.
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
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "bench.h"
#include "util.h"

#define DEF_COUNT 1000
#define DEF_INTERVAL_US 5000
#define DEF_WARMUP 10
#define DEF_ROLE "planner"
#define MARK "pickup-"
#define WARM_MARK "pickup-warmup-"
#define WARM_WAIT_US (30 * 1000000LL) /* llmqd may still be starting */
#define SEEN_WAIT_US (10 * 1000000LL) /* after the last submission */
#define NOTIFY_WAIT_US (2 * 1000000LL)
#define SCAN_EVERY_US (10 * 1000)
#define READ_ROOM 65536

/* One request or notification: when it was sent and when it was seen. */
struct sample {
	int64_t id; /* of the request; 0 for a notification */
	int64_t sent_us;
	int64_t claimed_us; /* the row's claimed_at; 0: unknown */
	int64_t seen_us;    /* 0: not seen */
};

/* Which interval of a sample to look at. */
enum span { SENT_SEEN, SENT_CLAIMED, CLAIMED_SEEN };

/* The tail of the stand-in's log that this run has not read yet. */
struct mocklog {
	const char *path;
	int fd;
	char *buf;
	size_t len, cap;
};

struct stats {
	int count, unseen;
	int64_t min, p50, p90, p99, max;
};

static void
sleep_until(int64_t mono)
{
	struct timespec ts;

	ts.tv_sec = mono / 1000000;
	ts.tv_nsec = (long)(mono % 1000000) * 1000;
	while (
	    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/*
 * The next slot of a fixed-rate schedule.  One that fell behind restarts
 * from now rather than firing a burst, which would no longer be light load.
 */
static int64_t
next_slot(int64_t slot, int64_t interval)
{
	int64_t now = mono_us();

	slot += interval;
	return slot < now ? now : slot;
}

/* The connection's last error without its trailing newlines. */
static const char *
pq_error(const PGconn *conn)
{
	static char buf[1024];
	size_t len;

	snprintf(buf, sizeof(buf), "%s", PQerrorMessage(conn));
	len = strlen(buf);
	while (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	return buf;
}

static PGconn *
db_open(const char *conninfo)
{
	PGconn *conn;
	PGresult *res;

	conn = PQconnectdb(conninfo);
	if (PQstatus(conn) != CONNECTION_OK) {
		/* Not the conninfo: it may hold a password. */
		warnx("could not connect to the database: %s", pq_error(conn));
		PQfinish(conn);
		return NULL;
	}
	/* Notices would land on stderr amid the figures; cosmetic only. */
	res = PQexec(conn, "SET client_min_messages = warning");
	PQclear(res);
	return conn;
}

/* Run a command that returns no rows; 0 or -1 (reported). */
static int
db_command(PGconn *conn, const char *sql)
{
	PGresult *res;
	int rc = 0;

	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		warnx("\"%s\" failed: %s", sql, pq_error(conn));
		rc = -1;
	}
	PQclear(res);
	return rc;
}

/*
 * Wait on the listener for the notification whose payload is want, and
 * return the wall clock at which PQnotifies() handed it over, or 0 when
 * it did not come in time.  Other notifications are dropped.
 */
static int64_t
notify_wait(PGconn *lconn, const char *want, int64_t deadline)
{
	struct pollfd pfd;
	PGnotify *nt;
	int64_t seen = 0, now;

	pfd.fd = PQsocket(lconn);
	pfd.events = POLLIN;
	for (;;) {
		if (PQconsumeInput(lconn) == 0) {
			warnx("listener: %s", pq_error(lconn));
			return 0;
		}
		while ((nt = PQnotifies(lconn)) != NULL) {
			now = wall_us();
			if (seen == 0 && strcmp(nt->extra, want) == 0)
				seen = now;
			PQfreemem(nt);
		}
		if (seen != 0)
			return seen;
		if ((now = mono_us()) >= deadline)
			return 0;
		if (poll(&pfd, 1, (int)((deadline - now + 999) / 1000)) == -1 &&
		    errno != EINTR) {
			warn("poll");
			return 0;
		}
	}
}

/*
 * The reference: warmup unrecorded rounds, then n recorded ones.  The
 * channel carries our pid so that concurrent runs do not mix.
 */
static int
run_notify(PGconn *sconn, PGconn *lconn, int n, int warmup, int64_t interval,
    struct sample *s)
{
	char chan[64], sql[128], payload[32];
	PGresult *res;
	int64_t slot, sent;
	int i;

	snprintf(chan, sizeof(chan), "llmq_bench_pickup_%ld", (long)getpid());
	snprintf(sql, sizeof(sql), "LISTEN %s", chan);
	if (db_command(lconn, sql) == -1)
		return -1;
	slot = mono_us();
	for (i = -warmup; i < n; i++) {
		sleep_until(slot);
		snprintf(payload, sizeof(payload), "%d", i);
		/* Channel and payload are ours: digits and a fixed name. */
		snprintf(sql, sizeof(sql), "NOTIFY %s, '%s'", chan, payload);
		res = PQexec(sconn, sql);
		sent = wall_us();
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			warnx("NOTIFY failed: %s", pq_error(sconn));
			PQclear(res);
			return -1;
		}
		PQclear(res);
		if (i >= 0) {
			s[i].sent_us = sent;
			s[i].seen_us = notify_wait(
			    lconn, payload, mono_us() + NOTIFY_WAIT_US);
		} else
			notify_wait(lconn, payload, mono_us() + NOTIFY_WAIT_US);
		slot = next_slot(slot, interval);
	}
	snprintf(sql, sizeof(sql), "UNLISTEN %s", chan);
	return db_command(lconn, sql);
}

static int
mocklog_open(struct mocklog *ml, const char *path)
{
	memset(ml, 0, sizeof(*ml));
	ml->path = path;
	if ((ml->fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		warn("could not open \"%s\"", path);
		return -1;
	}
	/* Lines from earlier runs are not ours. */
	if (lseek(ml->fd, 0, SEEK_END) == -1) {
		warn("could not seek in \"%s\"", path);
		close(ml->fd);
		ml->fd = -1;
		return -1;
	}
	return 0;
}

static void
mocklog_close(struct mocklog *ml)
{
	if (ml->fd != -1)
		close(ml->fd);
	free(ml->buf);
	ml->buf = NULL;
	ml->fd = -1;
}

/*
 * Parse "<µs> <path> <content>" and, when content is prefix followed by
 * a decimal index below n and nothing else, return the index and set
 * *when.  -1 for any other line.
 */
static int
parse_line(
    const char *line, size_t len, const char *prefix, int n, int64_t *when)
{
	const char *p, *end = line + len, *content;
	size_t plen = strlen(prefix);
	int64_t us = 0;
	long idx = 0;

	for (p = line; p < end && *p >= '0' && *p <= '9'; p++)
		us = us * 10 + (*p - '0');
	if (p == line || p - line > 18 || p == end || *p != ' ')
		return -1;
	p = memchr(p + 1, ' ', (size_t)(end - p - 1));
	if (p == NULL)
		return -1;
	content = p + 1;
	if ((size_t)(end - content) <= plen ||
	    memcmp(content, prefix, plen) != 0)
		return -1;
	for (p = content + plen; p < end; p++) {
		if (*p < '0' || *p > '9' || idx >= n)
			return -1;
		idx = idx * 10 + (*p - '0');
	}
	if (idx >= n)
		return -1;
	*when = us;
	return (int)idx;
}

/*
 * Read what the log gained and record the first sighting of each marker
 * prefix-I; a line not yet complete waits for the next call.  Returns the
 * number of samples newly seen, or -1.
 */
static int
mocklog_scan(struct mocklog *ml, const char *prefix, struct sample *s, int n)
{
	char *line, *nl;
	ssize_t got;
	int64_t when;
	int idx, found = 0;

	for (;;) {
		if (ml->cap - ml->len < READ_ROOM) {
			ml->cap = ml->len + READ_ROOM * 2;
			ml->buf = xrealloc(ml->buf, ml->cap);
		}
		got = read(ml->fd, ml->buf + ml->len, ml->cap - ml->len);
		if (got == -1 && errno == EINTR)
			continue;
		if (got == -1) {
			warn("could not read \"%s\"", ml->path);
			return -1;
		}
		if (got == 0)
			break;
		ml->len += (size_t)got;
	}
	line = ml->buf;
	while ((nl = memchr(line, '\n', ml->len - (size_t)(line - ml->buf))) !=
	    NULL) {
		idx = parse_line(line, (size_t)(nl - line), prefix, n, &when);
		if (idx != -1 && s[idx].seen_us == 0) {
			s[idx].seen_us = when;
			found++;
		}
		line = nl + 1;
	}
	ml->len -= (size_t)(line - ml->buf);
	memmove(ml->buf, line, ml->len);
	return found;
}

/* Scan the log until every sample of s is seen or the deadline passes. */
static int
mocklog_wait(struct mocklog *ml, const char *prefix, struct sample *s, int n,
    int seen, int64_t deadline)
{
	int r;

	for (;;) {
		if ((r = mocklog_scan(ml, prefix, s, n)) == -1)
			return -1;
		seen += r;
		if (seen >= n || mono_us() >= deadline)
			return seen;
		sleep_until(mono_us() + SCAN_EVERY_US);
	}
}

/* Submit requests marker0 .. marker(n-1) at the pace of the schedule. */
static int
submit_all(PGconn *conn, const char *role, const char *marker, int n,
    int64_t interval, struct sample *s)
{
	char msgs[128];
	const char *vals[2] = { role, msgs };
	PGresult *res;
	int64_t slot, sent;
	int i;

	slot = mono_us();
	for (i = 0; i < n; i++) {
		sleep_until(slot);
		snprintf(msgs, sizeof(msgs),
		    "[{\"role\":\"user\",\"content\":\"%s%d\"}]", marker, i);
		res = PQexecPrepared(conn, "submit", 2, vals, NULL, NULL, 0);
		sent = wall_us();
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			warnx("llmq.submit failed: %s", pq_error(conn));
			PQclear(res);
			return -1;
		}
		s[i].sent_us = sent;
		s[i].id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		PQclear(res);
		slot = next_slot(slot, interval);
	}
	return 0;
}

static int
cmp_id(const void *key, const void *elem)
{
	int64_t a = *(const int64_t *)key,
	        b = ((const struct sample *)elem)->id;

	return a < b ? -1 : a > b;
}

/*
 * Read the claimed_at of each request, which splits its latency in two:
 * commit -> claim (NOTIFY, wake-up, the claim statement under way) and
 * claim -> stand-in (the rest of the claim, the HTTP call).  PostgreSQL's
 * clock_timestamp() is the same wall clock.  One submitting connection
 * gets rising ids, so s is sorted by id.
 */
static int
fetch_claimed(PGconn *conn, struct sample *s, int n)
{
	const char *vals[1];
	struct sample *hit;
	PGresult *res;
	char *ids, *p;
	int64_t id;
	int i;

	p = ids = xcalloc((size_t)n, 24);
	*p++ = '{';
	for (i = 0; i < n; i++)
		p += sprintf(p, "%s%" PRId64, i > 0 ? "," : "", s[i].id);
	strcpy(p, "}");
	vals[0] = ids;
	res = PQexecParams(conn,
	    "SELECT id, (extract(epoch FROM claimed_at) * 1000000)::bigint"
	    "  FROM llmq.requests"
	    " WHERE id = ANY ($1::bigint[]) AND claimed_at IS NOT NULL",
	    1, NULL, vals, NULL, NULL, 0);
	free(ids);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		warnx("could not read claimed_at: %s", pq_error(conn));
		PQclear(res);
		return -1;
	}
	for (i = 0; i < PQntuples(res); i++) {
		id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		hit = bsearch(&id, s, (size_t)n, sizeof(*s), cmp_id);
		if (hit != NULL)
			hit->claimed_us =
			    strtoll(PQgetvalue(res, i, 1), NULL, 10);
	}
	PQclear(res);
	return 0;
}

static int
run_llmq(PGconn *conn, const char *role, struct mocklog *ml, int n, int warmup,
    int64_t interval, struct sample *s)
{
	struct sample *w;
	PGresult *res;
	int seen;

	res = PQprepare(
	    conn, "submit", "SELECT llmq.submit($1, $2::jsonb)", 2, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		warnx("could not prepare llmq.submit (has \"llmqctl migrate\" "
		      "been run?): %s",
		    pq_error(conn));
		PQclear(res);
		return -1;
	}
	PQclear(res);

	/* Warm-up: the daemon must be serving before anything counts. */
	if (warmup > 0) {
		w = xcalloc((size_t)warmup, sizeof(*w));
		seen = -1;
		if (submit_all(conn, role, WARM_MARK, warmup, interval, w) == 0)
			seen = mocklog_wait(ml, WARM_MARK, w, warmup, 0,
			    mono_us() + WARM_WAIT_US);
		free(w);
		if (seen == -1)
			return -1;
		if (seen < warmup) {
			warnx("only %d of %d warm-up requests reached the "
			      "LLM stand-in within %lld s; is llmqd serving "
			      "role \"%s\"?",
			    seen, warmup, WARM_WAIT_US / 1000000, role);
			return -1;
		}
	}

	if (submit_all(conn, role, MARK, n, interval, s) == -1)
		return -1;
	if (mocklog_wait(ml, MARK, s, n, 0, mono_us() + SEEN_WAIT_US) == -1)
		return -1;
	/* Without the split the main figure still stands. */
	fetch_claimed(conn, s, n);
	return 0;
}

static void
stats_of(const struct sample *s, int n, enum span span, struct stats *st)
{
	int64_t *v, from, to;
	int i;

	memset(st, 0, sizeof(*st));
	v = xcalloc((size_t)n + 1, sizeof(*v));
	for (i = 0; i < n; i++) {
		from = span == CLAIMED_SEEN ? s[i].claimed_us : s[i].sent_us;
		to = span == SENT_CLAIMED ? s[i].claimed_us : s[i].seen_us;
		if (from == 0 || to == 0)
			st->unseen++;
		else
			v[st->count++] = to - from;
	}
	if (st->count > 0) {
		qsort(v, (size_t)st->count, sizeof(*v), cmp_i64);
		st->min = v[0];
		st->p50 = rank(v, st->count, 50);
		st->p90 = rank(v, st->count, 90);
		st->p99 = rank(v, st->count, 99);
		st->max = v[st->count - 1];
	}
	free(v);
}

static void
print_ms(int64_t us)
{
	printf(" %9.3f", (double)us / 1000.0);
}

static void
print_row(const char *name, const struct stats *st)
{
	printf("%-22s %6d %6d", name, st->count, st->unseen);
	if (st->count == 0) {
		printf("  (nothing seen)\n");
		return;
	}
	print_ms(st->min);
	print_ms(st->p50);
	print_ms(st->p90);
	print_ms(st->p99);
	print_ms(st->max);
	putchar('\n');
}

/* A CSV field: the value, or nothing when it is unknown (0). */
static void
csv_field(FILE *f, int64_t v)
{
	if (v != 0)
		fprintf(f, "%" PRId64, v);
	fputc(',', f);
}

/* One line per sample; wall-clock µs, and latency = seen - sent. */
static int
write_csv(const char *path, const struct sample *llmq, const struct sample *ntf,
    int n)
{
	const struct sample *s;
	FILE *f;
	int i, k;

	if ((f = fopen(path, "w")) == NULL) {
		warn("could not open \"%s\"", path);
		return -1;
	}
	fprintf(f, "bench,i,id,sent_us,claimed_us,seen_us,latency_us\n");
	for (k = 0; k < 2; k++) {
		s = k == 0 ? llmq : ntf;
		for (i = 0; i < n; i++) {
			fprintf(f, "%s,%d,", k == 0 ? "llmq" : "notify", i);
			csv_field(f, s[i].id);
			csv_field(f, s[i].sent_us);
			csv_field(f, s[i].claimed_us);
			csv_field(f, s[i].seen_us);
			if (s[i].seen_us != 0)
				fprintf(f, "%" PRId64 "\n",
				    s[i].seen_us - s[i].sent_us);
			else
				fputc('\n', f);
		}
	}
	if (fclose(f) == EOF) {
		warn("could not write \"%s\"", path);
		return -1;
	}
	return 0;
}

static long
num_arg(const char *s, long min, long max, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		errx(2, "invalid %s: \"%s\" (%ld to %ld)", what, s, min, max);
	return v;
}

static void usage(void) __attribute__((noreturn));

static void
usage(void)
{
	fprintf(stderr,
	    "usage: pickup -d CONNINFO -L MOCKLOG [-n count] [-i interval_us]\n"
	    "              [-r role] [-w warmup] [--csv FILE]\n");
	exit(2);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "csv", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *conninfo = NULL, *logpath = NULL, *role = DEF_ROLE;
	const char *csv = NULL;
	struct sample *llmq = NULL, *ntf = NULL;
	PGconn *sconn = NULL, *lconn = NULL;
	struct stats sl, sc, sh, sn;
	struct mocklog ml;
	int64_t interval = DEF_INTERVAL_US;
	int n = DEF_COUNT, warmup = DEF_WARMUP, ch, rc = 1;

	while ((ch = getopt_long(
	            argc, argv, "d:hi:L:n:r:w:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			csv = optarg;
			break;
		case 'd':
			conninfo = optarg;
			break;
		case 'i':
			interval = num_arg(optarg, 0, 10000000, "interval");
			break;
		case 'L':
			logpath = optarg;
			break;
		case 'n':
			n = (int)num_arg(optarg, 1, 10000000, "count");
			break;
		case 'r':
			role = optarg;
			break;
		case 'w':
			warmup = (int)num_arg(optarg, 0, 100000, "warmup");
			break;
		default:
			usage();
		}
	}
	if (optind != argc || conninfo == NULL || logpath == NULL)
		usage();

	ml.fd = -1;
	ml.buf = NULL;
	if (mocklog_open(&ml, logpath) == -1)
		goto out;
	if ((sconn = db_open(conninfo)) == NULL ||
	    (lconn = db_open(conninfo)) == NULL)
		goto out;
	llmq = xcalloc((size_t)n, sizeof(*llmq));
	ntf = xcalloc((size_t)n, sizeof(*ntf));

	if (run_notify(sconn, lconn, n, warmup, interval, ntf) == -1)
		goto out;
	if (run_llmq(sconn, role, &ml, n, warmup, interval, llmq) == -1)
		goto out;

	stats_of(llmq, n, SENT_SEEN, &sl);
	stats_of(llmq, n, SENT_CLAIMED, &sc);
	stats_of(llmq, n, CLAIMED_SEEN, &sh);
	stats_of(ntf, n, SENT_SEEN, &sn);
	printf("pick-up latency: %d requests of role \"%s\", one every "
	       "%.3f ms, after %d warm-up\n",
	    n, role, (double)interval / 1000.0, warmup);
	printf("  llmq:   wall clock right after the enqueue (llmq.submit "
	       "in autocommit) returns\n"
	       "          -> the LLM stand-in has parsed the request "
	       "(its -L log)\n");
	printf("  NOTIFY: right after NOTIFY returns on one connection -> "
	       "PQnotifies() on\n"
	       "          another, waiting in poll() (the floor for any "
	       "LISTEN-based pick-up)\n"
	       "  claimed_at: the row's, set by clock_timestamp() in the "
	       "claim's UPDATE\n\n");
	printf("%-22s %6s %6s %9s %9s %9s %9s %9s\n", "latency (ms)", "count",
	    "unseen", "min", "p50", "p90", "p99", "max");
	print_row("llmq pick-up", &sl);
	print_row("  commit -> claimed_at", &sc);
	print_row("  claimed_at -> mock", &sh);
	print_row("bare LISTEN/NOTIFY", &sn);
	putchar('\n');
	if (sl.count > 0 && sn.count > 0 && sn.p50 > 0)
		printf("ratio p50(llmq)/p50(notify): %.1f\n",
		    (double)sl.p50 / (double)sn.p50);
	else
		printf("ratio p50(llmq)/p50(notify): n/a\n");
	/* The ratio swings with a tiny denominator; the difference less. */
	if (sl.count > 0 && sn.count > 0)
		printf("p50(llmq) - p50(notify): %.3f ms\n",
		    (double)(sl.p50 - sn.p50) / 1000.0);
	fflush(stdout);
	rc = 0;
	if (csv != NULL && write_csv(csv, llmq, ntf, n) == -1)
		rc = 1;
out:
	mocklog_close(&ml);
	PQfinish(sconn);
	PQfinish(lconn);
	free(llmq);
	free(ntf);
	return rc;
}
