/*
 * ctl_status.c: "llmqctl status", how llmqd is doing: whether it runs,
 * the concurrency slots of each scope, its children and the queue of
 * each role.
 *
 * llmqd's counters come from its shared memory region (shm.h), the file
 * next to its pidfile, which this command maps read-only and copies out
 * once, whole, without taking the region's lock (it could not: the
 * mapping is read-only, and llmqd must never wait for a tool).  What it
 * prints is therefore a racy snapshot: two counters may be a moment
 * apart (a slot taken during the copy may show in a scope and not yet in
 * the child's record), but every value is printed from the one copy, so
 * that no line is torn by an update made while it is printed.  Nothing
 * read from the region is trusted: the scope count is clamped to the
 * table, names are cut to their fields and escaped before use.  llmqd
 * runs when the region exists, names a master process that exists, and
 * someone holds the lock on the pidfile (a master killed with SIGKILL
 * leaves the region behind, and its pid may since have been reused; the
 * lock went with it).  The queues come from one statement on llmq.requests;
 * when the database cannot be read the rest is shown anyway and the exit status
 * is 1 (3 still wins: "not running" is the answer asked for).  The reading
 * (ctl_region_read(), ctl_queue_read()) and the small formatters are shared
 * with "llmqctl top" through ctl.h.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json.h>
#include <libpq-fe.h>

#include "cfg.h"
#include "ctl.h"
#include "shm.h"
#include "util.h"

/* Helpers. */

static int
pid_exists(long pid)
{
	return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

/* "3.2s", "42s", "5m07s", "1h02m", "3d04h". */
void
ctl_age_text(char *buf, size_t len, double s)
{
	long long v;

	if (s < 0)
		s = 0;
	if (s < 10) {
		snprintf(buf, len, "%.1fs", s);
		return;
	}
	v = (long long)s;
	if (v < 60)
		snprintf(buf, len, "%llds", v);
	else if (v < 3600)
		snprintf(buf, len, "%lldm%02llds", v / 60, v % 60);
	else if (v < 86400)
		snprintf(buf, len, "%lldh%02lldm", v / 3600, v % 3600 / 60);
	else
		snprintf(buf, len, "%lldd%02lldh", v / 86400, v % 86400 / 3600);
}

/* Seconds since a wall clock time in microseconds, never negative. */
double
ctl_since_s(const struct ctl_snapshot *st, int64_t us)
{
	return us <= 0 || us > st->now_us ? 0 : (st->now_us - us) / 1e6;
}

/* A name from the region, NUL-terminated by the caller, made printable. */
char *
ctl_name_text(const char *name)
{
	return str_escape(name, strlen(name), SHM_NAME_LEN);
}

/* Calls in flight of a child: its slots in the global scope. */
long
ctl_proc_held(const struct shm_region *r, const struct shm_proc *p)
{
	long n = 0;
	uint32_t s;

	for (s = 0; s < r->nscopes; s++)
		if (r->scopes[s].kind == SCOPE_GLOBAL)
			n += p->held[s];
	return n;
}

const char *
ctl_proc_state(const struct shm_proc *p)
{
	if (p->exiting)
		return "exiting";
	if (shm_proc_waiting(p)) /* queued for a scope that was full */
		return "waiting";
	return "running";
}

int
ctl_proc_shown(const struct shm_proc *p)
{
	return p->kind != PROC_FREE && p->pid > 0;
}

static struct ctl_queue *
queue_find(const struct ctl_snapshot *st, const char *role)
{
	size_t i;

	for (i = 0; i < st->nq; i++)
		if (strcmp(st->q[i].role, role) == 0)
			return &st->q[i];
	return NULL;
}

static struct ctl_queue *
queue_add(struct ctl_snapshot *st, const char *role)
{
	struct ctl_queue *q;

	st->q = xreallocarray(st->q, st->nq + 1, sizeof(*st->q));
	q = &st->q[st->nq++];
	memset(q, 0, sizeof(*q));
	q->role = xstrdup(role);
	q->oldest = -1;
	return q;
}

/* Reading. */

/*
 * 1 when nobody holds the pidfile's lock (flock(2), taken by llmqd for
 * its whole life); 0 when somebody does, or when we cannot tell.
 */
static int
pidfile_unlocked(const char *path)
{
	int fd, r = 0;

	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1)
		return errno == ENOENT;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0)
		r = 1; /* closing the descriptor lets it go again */
	close(fd);
	return r;
}

/*
 * Copy the region next to st->pidfile into st->r when llmqd runs.
 * Returns 0 (st->r stays NULL when llmqd does not run), or -1 (reported)
 * when the file is there but cannot be used.
 */
int
ctl_region_read(struct ctl_snapshot *st)
{
	const struct shm_region *map;
	struct shm_region *r;
	struct stat sb;
	char err[1024], *path;
	uint32_t s;
	int p;

	path = shm_path(st->pidfile);
	if (stat(path, &sb) == -1 && errno == ENOENT) {
		free(path);
		return 0;
	}
	if ((map = shm_attach(path, err, sizeof(err))) == NULL) {
		/* Removed in the meantime: llmqd has just stopped. */
		if (stat(path, &sb) == -1 && errno == ENOENT) {
			free(path);
			return 0;
		}
		free(path);
		ctl_errx("%s", err);
		return -1;
	}
	free(path);
	r = xmalloc(sizeof(*r));
	memcpy(r, map, sizeof(*r));
	shm_detach(map);

	/*
	 * Left behind by a master that was killed, or that is stopping; or
	 * its pid now belongs to another process, which cannot hold the
	 * lock on the pidfile that a running llmqd holds all its life.
	 */
	if (r->master_pid <= 0 || !pid_exists(r->master_pid) ||
	    pidfile_unlocked(st->pidfile)) {
		free(r);
		return 0;
	}
	if (r->nscopes > SHM_MAX_SCOPES)
		r->nscopes = SHM_MAX_SCOPES;
	for (s = 0; s < SHM_MAX_SCOPES; s++)
		r->scopes[s].name[SHM_NAME_LEN - 1] = '\0';
	for (p = 0; p < SHM_MAX_PROCS; p++)
		r->procs[p].role[sizeof(r->procs[p].role) - 1] = '\0';
	st->r = r;
	return 0;
}

/* The pid in the pidfile: > 0, 0 when there is none, -1 when unreadable. */
static long
pidfile_read(const char *path)
{
	char buf[32], *end;
	ssize_t n;
	long pid;
	int fd;

	/* O_NONBLOCK: a FIFO planted there must not hang us. */
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1)
		return errno == ENOENT ? 0 : -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n == -1)
		return -1;
	buf[n] = '\0';
	if (strspn(buf, " \t\r\n") == (size_t)n)
		return 0; /* emptied by an llmqd that could not remove it */
	errno = 0;
	pid = strtol(buf, &end, 10);
	if (end == buf || (*end != '\n' && *end != '\0') || errno != 0 ||
	    pid <= 0 || pid > INT32_MAX)
		return -1;
	return pid;
}

/* Say when the pidfile disagrees with the region. */
static void
pidfile_check(const struct ctl_snapshot *st)
{
	long pid = st->pidfile_pid;

	if (st->r != NULL && pid == 0)
		ctl_errx("warning: llmqd runs as pid %d but its pidfile \"%s\" "
		         "names none",
		    (int)st->r->master_pid, st->pidfile);
	else if (st->r != NULL && pid > 0 && pid != st->r->master_pid)
		ctl_errx("warning: llmqd runs as pid %d but its pidfile \"%s\" "
		         "names pid %ld",
		    (int)st->r->master_pid, st->pidfile, pid);
	else if (st->r == NULL && pid > 0 && pid_exists(pid))
		ctl_errx("warning: pidfile \"%s\" names pid %ld, which exists, "
		         "but llmqd's shared memory says it is not running",
		    st->pidfile, pid);
}

/*
 * The queue of every configured role, then of every other role that has
 * rows pending or processing.  Both statuses have a partial index, so
 * this reads only the live rows.
 */
int
ctl_queue_read(struct ctl_snapshot *st, PGconn *conn, const struct cfg *cfg)
{
	struct ctl_queue *q;
	PGresult *res;
	size_t i;
	int n, row;

	res = PQexecParams(conn,
	    "SELECT role, "
	    "count(*) FILTER (WHERE status = 'pending'), "
	    "count(*) FILTER (WHERE status = 'pending' "
	    "AND run_after <= now()), "
	    "count(*) FILTER (WHERE status = 'processing'), "
	    "extract(epoch FROM now() - min(created_at) "
	    "FILTER (WHERE status = 'pending')) "
	    "FROM llmq.requests "
	    "WHERE status = 'pending' OR status = 'processing' "
	    "GROUP BY role ORDER BY role",
	    0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 5) {
		ctl_pgerr(conn, res, "could not count the queued requests");
		PQclear(res);
		return -1;
	}
	for (i = 0; i < cfg->nroles; i++)
		if (queue_find(st, cfg->roles[i].name) == NULL)
			queue_add(st, cfg->roles[i].name)->configured = 1;
	n = PQntuples(res);
	for (row = 0; row < n; row++) {
		if ((q = queue_find(st, PQgetvalue(res, row, 0))) == NULL)
			q = queue_add(st, PQgetvalue(res, row, 0));
		q->pending = strtoll(PQgetvalue(res, row, 1), NULL, 10);
		q->due = strtoll(PQgetvalue(res, row, 2), NULL, 10);
		q->processing = strtoll(PQgetvalue(res, row, 3), NULL, 10);
		if (!PQgetisnull(res, row, 4))
			q->oldest = strtod(PQgetvalue(res, row, 4), NULL);
	}
	PQclear(res);
	return 0;
}

void
ctl_snapshot_free(struct ctl_snapshot *st)
{
	size_t i;

	free(st->r);
	st->r = NULL;
	for (i = 0; i < st->nq; i++)
		free(st->q[i].role);
	free(st->q);
	st->q = NULL;
	st->nq = 0;
	st->db_ok = 0;
}

/* A cell of a table row, printf-style. */
static void cellf(char **row, int c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
cellf(char **row, int c, const char *fmt, ...)
{
	va_list ap;
	char buf[512];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	free(row[c]);
	row[c] = xstrdup(buf);
}

/* The queue columns of a role's row, from column c on. */
static void
queue_cells(char **row, int c, const struct ctl_queue *q)
{
	char age[32];

	cellf(row, c, "%lld", q != NULL ? q->pending : 0);
	cellf(row, c + 1, "%lld", q != NULL ? q->due : 0);
	cellf(row, c + 2, "%lld", q != NULL ? q->processing : 0);
	if (q == NULL || q->oldest < 0)
		cellf(row, c + 3, "-");
	else {
		ctl_age_text(age, sizeof(age), q->oldest);
		cellf(row, c + 3, "%s", age);
	}
}

/* Human output. */

static void
print_scopes(struct ctl_snapshot *st)
{
	static const struct ctl_table_column cols[] = {
		{ "KIND", 0 },
		{ "NAME", 0 },
		{ "LIMIT", 1 },
		{ "INFLIGHT", 1 },
		{ "PEAK", 1 },
		{ "ACQUIRED", 1 },
		{ "DENIED", 1 },
		{ "PENDING", 1 },
		{ "DUE", 1 },
		{ "PROCESSING", 1 },
		{ "OLDEST", 1 },
	};
	struct ctl_table t = { cols, st->db_ok ? 11 : 7, NULL, 0 };
	const struct shm_scope *sc;
	struct ctl_queue *q;
	char **row, *name;
	uint32_t s;
	size_t i;
	int c;

	for (s = 0; s < st->r->nscopes; s++) {
		sc = &st->r->scopes[s];
		if (sc->kind == SCOPE_FREE)
			continue;
		row = ctl_table_row(&t);
		name = ctl_name_text(sc->name);
		cellf(row, 0, "%s", shm_kind_name(sc->kind));
		if (sc->kind == SCOPE_PROVIDER && sc->cool_wall > st->now_us)
			cellf(row, 1, "%s (cooled down %.0fs)", name,
			    (double)(sc->cool_wall - st->now_us) / 1e6 + 0.5);
		else
			cellf(
			    row, 1, "%s%s", name, sc->live ? "" : " (retired)");
		free(name);
		if (sc->limit > 0)
			cellf(row, 2, "%d", (int)sc->limit);
		else
			cellf(row, 2, "-");
		cellf(row, 3, "%d", (int)sc->inflight);
		cellf(row, 4, "%d", (int)sc->peak);
		cellf(row, 5, "%llu", (unsigned long long)sc->acquired);
		cellf(row, 6, "%llu", (unsigned long long)sc->denied);
		if (sc->kind != SCOPE_ROLE || !st->db_ok)
			continue;
		if ((q = queue_find(st, sc->name)) != NULL)
			q->shown = 1;
		queue_cells(row, 7, q);
	}
	/* Roles with a queue that the running llmqd has no scope for. */
	for (i = 0; st->db_ok && i < st->nq; i++) {
		q = &st->q[i];
		if (q->shown ||
		    (!q->configured && q->pending == 0 && q->processing == 0))
			continue;
		row = ctl_table_row(&t);
		name = ctl_name_text(q->role);
		cellf(row, 0, "role");
		cellf(row, 1, "%s (not in llmqd)", name);
		free(name);
		for (c = 2; c < 7; c++)
			cellf(row, c, "-");
		queue_cells(row, 7, q);
	}
	ctl_table_flush(&t);
}

static void
print_children(const struct ctl_snapshot *st)
{
	static const struct ctl_table_column cols[] = {
		{ "ROLE", 0 },
		{ "PID", 1 },
		{ "UPTIME", 1 },
		{ "RESTARTS", 1 },
		{ "GEN", 1 },
		{ "STATE", 0 },
		{ "HELD", 1 },
	};
	struct ctl_table t = { cols, 7, NULL, 0 };
	const struct shm_proc *p;
	char **row, *role, age[32];
	int i;

	for (i = 0; i < SHM_MAX_PROCS; i++) {
		p = &st->r->procs[i];
		if (!ctl_proc_shown(p))
			continue;
		row = ctl_table_row(&t);
		role = p->kind == PROC_CONSUMER ? xstrdup("consumer") :
		                                  ctl_name_text(p->role);
		cellf(row, 0, "%s", role);
		free(role);
		cellf(row, 1, "%d", (int)p->pid);
		ctl_age_text(age, sizeof(age), ctl_since_s(st, p->started));
		cellf(row, 2, "%s", age);
		cellf(row, 3, "%u", (unsigned)p->restarts);
		cellf(row, 4, "%d", (int)p->gen);
		cellf(row, 5, "%s", ctl_proc_state(p));
		cellf(row, 6, "%ld", ctl_proc_held(st->r, p));
	}
	if (t.nrows > 0)
		ctl_table_flush(&t);
	else
		printf("no children\n");
}

/* Not running: the queue of each role alone. */
static void
print_queues(const struct ctl_snapshot *st)
{
	static const struct ctl_table_column cols[] = {
		{ "ROLE", 0 },
		{ "PENDING", 1 },
		{ "DUE", 1 },
		{ "PROCESSING", 1 },
		{ "OLDEST", 1 },
	};
	struct ctl_table t = { cols, 5, NULL, 0 };
	char **row, *name;
	size_t i;

	for (i = 0; i < st->nq; i++) {
		row = ctl_table_row(&t);
		name = ctl_name_text(st->q[i].role);
		cellf(row, 0, "%s%s", name,
		    st->q[i].configured ? "" : " (not configured)");
		free(name);
		queue_cells(row, 1, &st->q[i]);
	}
	ctl_table_flush(&t);
}

static void
print_text(struct ctl_snapshot *st)
{
	char age[32];

	if (st->r == NULL) {
		printf("llmqd is not running\n");
		if (st->db_ok && st->nq > 0) {
			printf("\n");
			print_queues(st);
		}
		return;
	}
	ctl_age_text(age, sizeof(age), ctl_since_s(st, st->r->master_started));
	printf("llmqd is running (pid %d, up %s), generation %d\n\n",
	    (int)st->r->master_pid, age, (int)st->r->generation);
	print_scopes(st);
	printf("\n");
	print_children(st);
}

/* JSON output. */

static struct json_object *
json_secs(double s)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%.3f", s);
	return json_object_new_double_s(s, buf);
}

/* The queue members of a role's object; null when not known. */
static void
json_queue(struct json_object *o, const struct ctl_snapshot *st,
    const struct ctl_queue *q)
{
	static const struct ctl_queue none = { NULL, 0, 0, 0, -1, 0, 0 };

	if (!st->db_ok) {
		json_object_object_add(o, "pending", NULL);
		json_object_object_add(o, "due", NULL);
		json_object_object_add(o, "processing", NULL);
		json_object_object_add(o, "oldest_pending_s", NULL);
		return;
	}
	if (q == NULL)
		q = &none;
	json_object_object_add(o, "pending", json_object_new_int64(q->pending));
	json_object_object_add(o, "due", json_object_new_int64(q->due));
	json_object_object_add(
	    o, "processing", json_object_new_int64(q->processing));
	json_object_object_add(
	    o, "oldest_pending_s", q->oldest < 0 ? NULL : json_secs(q->oldest));
}

static struct json_object *
json_scopes(const struct ctl_snapshot *st)
{
	struct json_object *a, *o;
	const struct shm_scope *sc;
	char *name;
	uint32_t s;

	a = json_object_new_array();
	for (s = 0; st->r != NULL && s < st->r->nscopes; s++) {
		sc = &st->r->scopes[s];
		if (sc->kind == SCOPE_FREE)
			continue;
		o = json_object_new_object();
		name = ctl_name_text(sc->name);
		json_object_object_add(
		    o, "kind", json_object_new_string(shm_kind_name(sc->kind)));
		json_object_object_add(o, "name", json_object_new_string(name));
		free(name);
		json_object_object_add(o, "limit",
		    sc->limit > 0 ? json_object_new_int(sc->limit) : NULL);
		json_object_object_add(
		    o, "inflight", json_object_new_int(sc->inflight));
		json_object_object_add(
		    o, "peak", json_object_new_int(sc->peak));
		json_object_object_add(o, "acquired",
		    json_object_new_int64((int64_t)sc->acquired));
		json_object_object_add(
		    o, "denied", json_object_new_int64((int64_t)sc->denied));
		json_object_object_add(
		    o, "live", json_object_new_boolean(sc->live != 0));
		if (sc->kind == SCOPE_PROVIDER) {
			json_object_object_add(o, "cooldowns",
			    json_object_new_int64((int64_t)sc->cooldowns));
			json_object_object_add(o, "cooled_down_s",
			    sc->cool_wall > st->now_us ?
			        json_object_new_double(
			            (double)(sc->cool_wall - st->now_us) /
			            1e6) :
			        NULL);
		}
		if (sc->kind == SCOPE_ROLE)
			json_queue(o, st, queue_find(st, sc->name));
		json_object_array_add(a, o);
	}
	return a;
}

static struct json_object *
json_children(const struct ctl_snapshot *st)
{
	struct json_object *a, *o;
	const struct shm_proc *p;
	char *role;
	int i;

	a = json_object_new_array();
	for (i = 0; st->r != NULL && i < SHM_MAX_PROCS; i++) {
		p = &st->r->procs[i];
		if (!ctl_proc_shown(p))
			continue;
		o = json_object_new_object();
		role = p->kind == PROC_CONSUMER ? xstrdup("consumer") :
		                                  ctl_name_text(p->role);
		json_object_object_add(o, "role", json_object_new_string(role));
		free(role);
		json_object_object_add(o, "pid", json_object_new_int(p->pid));
		json_object_object_add(o, "uptime_s",
		    json_object_new_int64((int64_t)ctl_since_s(st, p->started)));
		json_object_object_add(
		    o, "restarts", json_object_new_int64((int64_t)p->restarts));
		json_object_object_add(
		    o, "generation", json_object_new_int(p->gen));
		json_object_object_add(
		    o, "state", json_object_new_string(ctl_proc_state(p)));
		json_object_object_add(
		    o, "inflight", json_object_new_int64(ctl_proc_held(st->r, p)));
		json_object_array_add(a, o);
	}
	return a;
}

static struct json_object *
json_queues(const struct ctl_snapshot *st)
{
	struct json_object *a, *o;
	char *name;
	size_t i;

	if (!st->db_ok)
		return NULL;
	a = json_object_new_array();
	for (i = 0; i < st->nq; i++) {
		o = json_object_new_object();
		name = ctl_name_text(st->q[i].role);
		json_object_object_add(o, "role", json_object_new_string(name));
		free(name);
		json_object_object_add(o, "configured",
		    json_object_new_boolean(st->q[i].configured));
		json_queue(o, st, &st->q[i]);
		json_object_array_add(a, o);
	}
	return a;
}

static void
print_json(const struct ctl_snapshot *st)
{
	const struct shm_region *r = st->r;
	struct json_object *doc;
	int64_t up;

	up = r != NULL ? (int64_t)ctl_since_s(st, r->master_started) : 0;
	doc = json_object_new_object();
	json_object_object_add(
	    doc, "running", json_object_new_boolean(r != NULL));
	json_object_object_add(doc, "master_pid",
	    r != NULL ? json_object_new_int(r->master_pid) : NULL);
	json_object_object_add(doc, "pidfile_pid",
	    st->pidfile_pid > 0 ? json_object_new_int64(st->pidfile_pid) :
	                          NULL);
	json_object_object_add(
	    doc, "uptime_s", r != NULL ? json_object_new_int64(up) : NULL);
	json_object_object_add(doc, "generation",
	    r != NULL ? json_object_new_int(r->generation) : NULL);
	json_object_object_add(doc, "scopes", json_scopes(st));
	json_object_object_add(doc, "children", json_children(st));
	json_object_object_add(doc, "queues", json_queues(st));
	printf("%s\n",
	    json_object_to_json_string_ext(
	        doc, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(doc);
}

int
ctl_status(struct ctl *ctl, int argc, char **argv)
{
	enum { OPT_JSON = 256 };
	static const struct option opts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl_snapshot st;
	int ch, as_json = 0, rc;

	ctl_getopt_init(ctl, argv);
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_JSON:
			as_json = 1;
			break;
		default: /* -h, or an option getopt refused */
			return ctl_help(ctl, ch);
		}
	}
	if ((rc = ctl_no_args(ctl, argc, argv)) != 0)
		return rc;
	if ((rc = ctl_daemon_config(ctl)) != 0)
		return rc;

	memset(&st, 0, sizeof(st));
	st.pidfile = ctl->cfg->pidfile;
	if (ctl_region_read(&st) == -1)
		return 1;
	st.pidfile_pid = pidfile_read(st.pidfile);
	st.now_us = wall_us();
	pidfile_check(&st);

	if (ctl_connect(ctl, 1) == 0 &&
	    ctl_queue_read(&st, ctl->conn, ctl->cfg) == 0)
		st.db_ok = 1;
	else
		ctl_errx("warning: no queue counts: the database could not be "
		         "read");

	if (as_json)
		print_json(&st);
	else
		print_text(&st);

	if (st.r == NULL)
		rc = EXIT_NOT_RUNNING;
	else
		rc = st.db_ok ? 0 : 1;
	ctl_snapshot_free(&st);
	return rc;
}
