/*
 * metrics.c: the result consumer's metrics file.
 *
 * Every consumer interval the file named by consumer.metrics_file is
 * written anew in the Prometheus text format, for node_exporter's
 * textfile collector: to "FILE.tmp.PID" in the same directory, then
 * renamed over FILE, so that a reader never sees half a file (the
 * collector reads only names ending in ".prom", so a temporary file left
 * by a crash is ignored).
 *
 * The counts of finished requests and the histograms are kept here, in
 * memory, and fed incrementally: at start one statement groups every
 * finished row in llmq.requests, and from then on each interval reads
 * only the rows whose finished_at lies after the end of the range read
 * last, up to SETTLE_MS ago (an index range, sql/007_metrics.sql).  The
 * lag is there because finished_at is the worker's clock when the call
 * ended, a little before its row commits: a row that commits later than
 * that after its finished_at (or whose host's clock is that far behind)
 * is not counted until the consumer starts again.  The counters are
 * thus those of the rows present at start plus those finished since: a
 * restart of the consumer (a reload, a crash) after a purge of old rows
 * starts them lower, which Prometheus treats as a counter reset.  They
 * count the whole database, whichever host ran the requests.
 *
 * The gauges of slots, limits and cool-downs are this host's, read from
 * the shared memory (mapped read-only, as llmqctl status does, without
 * the lock: each value is read whole, and a scrape may mix two moments).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
#include "metrics.h"
#include "shm.h"
#include "util.h"

#define SETTLE_MS 2000

/* Histogram buckets, seconds; one more above the last, "+Inf". */
static const char *const bucket_le[] = { "0.005", "0.01", "0.025", "0.05",
	"0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "120" };
/* The same negated, ascending, for db_metrics_finished(). */
static const char neg_bounds[] = "{-120,-60,-30,-10,-5,-2.5,-1,-0.5,-0.25,"
                                 "-0.1,-0.05,-0.025,-0.01,-0.005}";
#define NBUCKETS ((int)nitems(bucket_le))

enum { H_QUEUE, H_MODEL, H_FIRST, H_COUNT };

static const struct {
	const char *name, *help;
} hist_info[H_COUNT] = {
	{ "llmq_queue_wait_seconds",
	    "Time a finished request waited due in its queue before the claim "
	    "that finished it." },
	{ "llmq_model_seconds",
	    "Time from the claim to the finish of completed and failed "
	    "requests (the last attempt)." },
	{ "llmq_first_token_seconds",
	    "Time from the claim to the first token of streamed requests." },
};

struct counter {
	char *role, *model, *status, *kind;
	uint64_t n;
};

struct hist {
	uint64_t bucket[NBUCKETS + 1]; /* not cumulative */
	uint64_t count;
	double sum;
};

struct histset {
	char *role, *model;
	struct hist h[H_COUNT];
};

struct queue {
	char *role;
	int64_t due;
	double oldest;
};

struct metrics {
	const struct cfg *cfg;
	char *path, *tmp, *shm_file;
	const struct shm_region *r; /* NULL: not attached (yet) */
	int shm_failed;             /* attaching failed: logged once */
	int write_failed;           /* writing failed: logged once */
	char since[64];             /* end of the range read last */
	int db_up;
	struct counter *c;
	size_t nc;
	struct histset *h;
	size_t nh;
	struct queue *q;
	size_t nq;
	uint64_t *restarts; /* by cfg->roles index, highest seen */
};

/* A growing text buffer. */
struct sbuf {
	char *p;
	size_t len, cap;
};

static void __attribute__((format(printf, 2, 3)))
sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			fatalx("vsnprintf() failed");
		if ((size_t)n < b->cap - b->len)
			break;
		b->cap = b->cap * 2 + (size_t)n;
		b->p = xrealloc(b->p, b->cap);
	}
	b->len += (size_t)n;
}

/* A label value: backslash, double quote and newline escaped. */
static void
sb_label(struct sbuf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			sb_printf(b, "\\\\");
		else if (*s == '"')
			sb_printf(b, "\\\"");
		else if (*s == '\n')
			sb_printf(b, "\\n");
		else
			sb_printf(b, "%c", *s);
	}
}

/*
 * One sample: name, the labels kv[0] = kv[1], ... (npairs of them), and
 * the value's text.
 */
static void
sample(struct sbuf *b, const char *name, const char *suffix,
    const char *const *kv, int npairs, const char *value)
{
	int i;

	sb_printf(b, "%s%s", name, suffix);
	for (i = 0; i < npairs; i++) {
		sb_printf(b, "%s%s=\"", i == 0 ? "{" : ",", kv[2 * i]);
		sb_label(b, kv[2 * i + 1]);
		sb_printf(b, "\"");
	}
	sb_printf(b, "%s %s\n", npairs > 0 ? "}" : "", value);
}

/* HELP and TYPE of a family, once, before its first sample. */
static void
family(struct sbuf *b, int *done, const char *name, const char *type,
    const char *help)
{
	if (*done)
		return;
	*done = 1;
	sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

struct metrics *
metrics_new(const struct cfg *cfg)
{
	struct metrics *m;

	m = xcalloc(1, sizeof(*m));
	m->cfg = cfg;
	m->path = xstrdup(cfg->metrics_file);
	m->tmp = xasprintf("%s.tmp.%ld", cfg->metrics_file, (long)getpid());
	m->shm_file = shm_path(cfg->pidfile);
	snprintf(m->since, sizeof(m->since), "-infinity");
	m->restarts = xcalloc(cfg->nroles + 1, sizeof(*m->restarts));
	return m;
}

static void
queues_clear(struct metrics *m)
{
	size_t i;

	for (i = 0; i < m->nq; i++)
		free(m->q[i].role);
	free(m->q);
	m->q = NULL;
	m->nq = 0;
}

void
metrics_free(struct metrics *m)
{
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < m->nc; i++) {
		free(m->c[i].role);
		free(m->c[i].model);
		free(m->c[i].status);
		free(m->c[i].kind);
	}
	free(m->c);
	for (i = 0; i < m->nh; i++) {
		free(m->h[i].role);
		free(m->h[i].model);
	}
	free(m->h);
	queues_clear(m);
	shm_detach(m->r);
	free(m->restarts);
	free(m->path);
	free(m->tmp);
	free(m->shm_file);
	free(m);
}

/*
 * The groups are few (roles x models x outcomes): a linear search is
 * cheaper than keeping them sorted.
 */
static void
add_finished(const struct db_finished *f, void *arg)
{
	struct metrics *m = arg;
	struct counter *c;
	struct histset *hs;
	struct hist *h;
	size_t i;

	if (f->which == 0) {
		for (i = 0; i < m->nc; i++) {
			c = &m->c[i];
			if (strcmp(c->role, f->role) == 0 &&
			    strcmp(c->model, f->model) == 0 &&
			    strcmp(c->status, f->status) == 0 &&
			    strcmp(c->kind, f->error_kind) == 0)
				break;
		}
		if (i == m->nc) {
			m->c = xreallocarray(m->c, m->nc + 1, sizeof(*m->c));
			c = &m->c[m->nc++];
			c->role = xstrdup(f->role);
			c->model = xstrdup(f->model);
			c->status = xstrdup(f->status);
			c->kind = xstrdup(f->error_kind);
			c->n = 0;
		}
		m->c[i].n += (uint64_t)f->n;
		return;
	}
	if (f->which < 1 || f->which > H_COUNT || f->bucket < 0 ||
	    f->bucket > NBUCKETS)
		return;
	for (i = 0; i < m->nh; i++)
		if (strcmp(m->h[i].role, f->role) == 0 &&
		    strcmp(m->h[i].model, f->model) == 0)
			break;
	if (i == m->nh) {
		m->h = xreallocarray(m->h, m->nh + 1, sizeof(*m->h));
		hs = &m->h[m->nh++];
		memset(hs, 0, sizeof(*hs));
		hs->role = xstrdup(f->role);
		hs->model = xstrdup(f->model);
	}
	h = &m->h[i].h[f->which - 1];
	h->bucket[f->bucket] += (uint64_t)f->n;
	h->count += (uint64_t)f->n;
	h->sum += f->sum;
}

static void
add_queue(const char *role, int64_t due, double oldest, void *arg)
{
	struct metrics *m = arg;
	struct queue *q;

	m->q = xreallocarray(m->q, m->nq + 1, sizeof(*m->q));
	q = &m->q[m->nq++];
	q->role = xstrdup(role);
	q->due = due;
	q->oldest = oldest;
}

/* Read the database's part; the counters change only on success. */
static int
collect_db(struct metrics *m, PGconn *pg)
{
	char upto[sizeof(m->since)];
	int64_t t0 = mono_ms();

	if (db_metrics_finished(pg, m->since, SETTLE_MS, neg_bounds,
	        add_finished, m, upto, sizeof(upto)) == -1)
		return -1;
	if (strcmp(m->since, "-infinity") == 0)
		log_info("metrics: counted the finished requests in %lld ms",
		    (long long)(mono_ms() - t0));
	memcpy(m->since, upto, sizeof(m->since));
	queues_clear(m);
	return db_metrics_queues(pg, add_queue, m);
}

static void
emit_requests(struct metrics *m, struct sbuf *b)
{
	const char *kv[8];
	char val[32];
	size_t i;
	int done = 0;

	for (i = 0; i < m->nc; i++) {
		family(b, &done, "llmq_requests_total", "counter",
		    "Requests finished, by role, model, final status and error "
		    "kind: the rows in llmq.requests when the consumer "
		    "started, plus those finished since.");
		kv[0] = "role";
		kv[1] = m->c[i].role;
		kv[2] = "model";
		kv[3] = m->c[i].model;
		kv[4] = "status";
		kv[5] = m->c[i].status;
		kv[6] = "error_kind";
		kv[7] = m->c[i].kind;
		snprintf(
		    val, sizeof(val), "%llu", (unsigned long long)m->c[i].n);
		sample(b, "llmq_requests_total", "", kv, 4, val);
	}
}

static void
emit_histograms(struct metrics *m, struct sbuf *b)
{
	const char *kv[6];
	const struct hist *h;
	char val[64];
	uint64_t cum;
	size_t i;
	int k, j, done;

	for (k = 0; k < H_COUNT; k++) {
		done = 0;
		for (i = 0; i < m->nh; i++) {
			h = &m->h[i].h[k];
			if (h->count == 0)
				continue;
			family(b, &done, hist_info[k].name, "histogram",
			    hist_info[k].help);
			kv[0] = "role";
			kv[1] = m->h[i].role;
			kv[2] = "model";
			kv[3] = m->h[i].model;
			kv[4] = "le";
			cum = 0;
			for (j = 0; j <= NBUCKETS; j++) {
				cum += h->bucket[j];
				kv[5] = j < NBUCKETS ? bucket_le[j] : "+Inf";
				snprintf(val, sizeof(val), "%llu",
				    (unsigned long long)cum);
				sample(b, hist_info[k].name, "_bucket", kv, 3,
				    val);
			}
			snprintf(val, sizeof(val), "%.6f", h->sum);
			sample(b, hist_info[k].name, "_sum", kv, 2, val);
			snprintf(val, sizeof(val), "%llu",
			    (unsigned long long)h->count);
			sample(b, hist_info[k].name, "_count", kv, 2, val);
		}
	}
}

static void
emit_queues(struct metrics *m, struct sbuf *b)
{
	const struct queue *q;
	const char *kv[2];
	char val[64];
	size_t i, j;
	int pass, done;

	/* Every configured role, and any other with rows due. */
	for (pass = 0; pass < 2; pass++) {
		done = 0;
		for (i = 0; i < m->cfg->nroles + m->nq; i++) {
			if (i < m->cfg->nroles) {
				kv[1] = m->cfg->roles[i].name;
				for (j = 0; j < m->nq; j++)
					if (strcmp(m->q[j].role, kv[1]) == 0)
						break;
				q = j < m->nq ? &m->q[j] : NULL;
			} else {
				q = &m->q[i - m->cfg->nroles];
				if (cfg_role_find(m->cfg, q->role) != NULL)
					continue;
				kv[1] = q->role;
			}
			kv[0] = "role";
			if (pass == 0) {
				family(b, &done, "llmq_queue_depth", "gauge",
				    "Pending requests due (run_after passed), "
				    "by role.");
				snprintf(val, sizeof(val), "%lld",
				    q != NULL ? (long long)q->due : 0LL);
				sample(b, "llmq_queue_depth", "", kv, 1, val);
			} else {
				family(b, &done, "llmq_oldest_pending_seconds",
				    "gauge",
				    "How long the longest-waiting due request "
				    "of a role has been due; 0 when none.");
				snprintf(val, sizeof(val), "%.6f",
				    q != NULL ? q->oldest : 0.0);
				sample(b, "llmq_oldest_pending_seconds", "", kv,
				    1, val);
			}
		}
	}
}

/* The shared memory, attached on first use; NULL when it cannot be. */
static const struct shm_region *
region(struct metrics *m)
{
	char err[1024];

	if (m->r == NULL &&
	    (m->r = shm_attach(m->shm_file, err, sizeof(err))) == NULL &&
	    !m->shm_failed) {
		log_warnx("metrics: no shared memory gauges: %s", err);
		m->shm_failed = 1;
	}
	return m->r;
}

/* Scopes of the running configuration, and retired ones still in use. */
static int
scope_shown(const struct shm_scope *sc)
{
	return sc->kind != SCOPE_FREE && (sc->live || sc->inflight > 0);
}

static void
emit_scopes(struct metrics *m, struct sbuf *b)
{
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
		{ "llmq_inflight", "gauge",
		    "Concurrency slots held now, by scope (global, role, "
		    "model, provider) and name; this host's." },
		{ "llmq_limit", "gauge",
		    "The concurrency limit of a scope; absent when it has "
		    "none." },
		{ "llmq_inflight_peak", "gauge",
		    "Most slots of a scope held at once since llmqd started." },
		{ "llmq_slots_acquired_total", "counter",
		    "Slots of a scope taken since llmqd started." },
		{ "llmq_slots_denied_total", "counter",
		    "Times a scope was the one that was full, since llmqd "
		    "started." },
		{ "llmq_provider_cooling", "gauge",
		    "1 while a provider is cooled down after failures in a "
		    "row, else 0." },
		{ "llmq_provider_cooldowns_total", "counter",
		    "Times a provider was cooled down since llmqd started." },
	};
	const struct shm_region *r;
	const struct shm_scope *sc;
	const char *kv[4];
	char name[SHM_NAME_LEN], val[32];
	int64_t now_us = wall_us();
	uint32_t s, ns;
	size_t f;
	int done;

	if ((r = region(m)) == NULL)
		return;
	ns = r->nscopes > SHM_MAX_SCOPES ? SHM_MAX_SCOPES : r->nscopes;
	for (f = 0; f < nitems(fam); f++) {
		done = 0;
		for (s = 0; s < ns; s++) {
			sc = &r->scopes[s];
			if (!scope_shown(sc))
				continue;
			if (f >= 5 && sc->kind != SCOPE_PROVIDER)
				continue;
			if (f == 1 && sc->limit <= 0)
				continue;
			memcpy(name, sc->name, sizeof(name));
			name[sizeof(name) - 1] = '\0';
			switch (f) {
			case 0:
				snprintf(
				    val, sizeof(val), "%d", (int)sc->inflight);
				break;
			case 1:
				snprintf(
				    val, sizeof(val), "%d", (int)sc->limit);
				break;
			case 2:
				snprintf(val, sizeof(val), "%d", (int)sc->peak);
				break;
			case 3:
				snprintf(val, sizeof(val), "%llu",
				    (unsigned long long)sc->acquired);
				break;
			case 4:
				snprintf(val, sizeof(val), "%llu",
				    (unsigned long long)sc->denied);
				break;
			case 5:
				snprintf(val, sizeof(val), "%d",
				    sc->cool_wall > now_us);
				break;
			default:
				snprintf(val, sizeof(val), "%llu",
				    (unsigned long long)sc->cooldowns);
				break;
			}
			family(b, &done, fam[f].name, fam[f].type, fam[f].help);
			if (f >= 5) {
				kv[0] = "provider";
				kv[1] = name;
				sample(b, fam[f].name, "", kv, 1, val);
			} else {
				kv[0] = "scope";
				kv[1] = shm_kind_name(sc->kind);
				kv[2] = "name";
				kv[3] = name;
				sample(b, fam[f].name, "", kv, 2, val);
			}
		}
	}
}

/*
 * Restarts are counted in each child's record, which is freed while the
 * child waits to be started again: the count of a role is the highest
 * seen, so that it never goes down while this consumer lives (the next
 * configuration has new children, and a new consumer).
 */
static void
emit_restarts(struct metrics *m, struct sbuf *b)
{
	const struct shm_region *r = region(m);
	const struct shm_proc *p;
	const struct cfg_role *ro;
	const char *kv[2];
	uint64_t *sum;
	char role[sizeof(p->role)], val[32];
	size_t i;
	int k, done = 0;

	sum = xcalloc(m->cfg->nroles + 1, sizeof(*sum));
	for (k = 0; r != NULL && k < SHM_MAX_PROCS; k++) {
		p = &r->procs[k];
		if (p->kind != PROC_WORKER || p->pid == 0 ||
		    p->gen != r->generation)
			continue;
		memcpy(role, p->role, sizeof(role));
		role[sizeof(role) - 1] = '\0';
		if ((ro = cfg_role_find(m->cfg, role)) != NULL)
			sum[ro - m->cfg->roles] += p->restarts;
	}
	for (i = 0; i < m->cfg->nroles; i++) {
		if (sum[i] > m->restarts[i])
			m->restarts[i] = sum[i];
		family(b, &done, "llmq_worker_restarts_total", "counter",
		    "Times the workers of a role were restarted after dying, "
		    "under the running configuration.");
		kv[0] = "role";
		kv[1] = m->cfg->roles[i].name;
		snprintf(val, sizeof(val), "%llu",
		    (unsigned long long)m->restarts[i]);
		sample(b, "llmq_worker_restarts_total", "", kv, 1, val);
	}
	free(sum);
}

static int
write_file(struct metrics *m, const struct sbuf *b)
{
	const char *what = "open";
	size_t off = 0;
	ssize_t n;
	int fd, saved;

	/* Readable by the collector, whatever the daemon's umask. */
	fd = open(m->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    0644);
	if (fd == -1)
		goto fail;
	what = "write";
	if (fchmod(fd, 0644) == -1)
		goto fail_fd;
	while (off < b->len) {
		if ((n = write(fd, b->p + off, b->len - off)) == -1) {
			if (errno == EINTR)
				continue;
			goto fail_fd;
		}
		off += (size_t)n;
	}
	if (close(fd) == -1) {
		fd = -1;
		goto fail_fd;
	}
	what = "rename";
	if (rename(m->tmp, m->path) == -1)
		goto fail_tmp;
	if (m->write_failed) {
		log_info("metrics file \"%s\" written again", m->path);
		m->write_failed = 0;
	}
	return 0;
fail_fd:
	if (fd != -1)
		close(fd);
fail_tmp:
	saved = errno;
	unlink(m->tmp);
	errno = saved;
fail:
	if (!m->write_failed)
		log_warn("could not %s \"%s\" for the metrics file; trying "
		         "again every interval",
		    what, strcmp(what, "rename") == 0 ? m->path : m->tmp);
	m->write_failed = 1;
	return -1;
}

int
metrics_run(struct metrics *m, PGconn *pg)
{
	struct sbuf b = { NULL, 0, 0 };
	int rc = 0, done = 0;
	char val[32];

	if (pg != NULL && collect_db(m, pg) == -1)
		rc = -1;
	m->db_up = pg != NULL && rc == 0;
	b.cap = 8192;
	b.p = xmalloc(b.cap);
	b.p[0] = '\0';
	emit_requests(m, &b);
	emit_histograms(m, &b);
	emit_queues(m, &b);
	emit_scopes(m, &b);
	emit_restarts(m, &b);
	family(&b, &done, "llmq_database_up", "gauge",
	    "1 when the consumer's last statements succeeded, else 0 (then "
	    "the database's metrics keep their last values).");
	sample(&b, "llmq_database_up", "", NULL, 0, m->db_up ? "1" : "0");
	done = 0;
	family(&b, &done, "llmq_metrics_generated_timestamp_seconds", "gauge",
	    "When this file was written, seconds since the epoch.");
	snprintf(val, sizeof(val), "%.3f", (double)wall_us() / 1e6);
	sample(
	    &b, "llmq_metrics_generated_timestamp_seconds", "", NULL, 0, val);
	write_file(m, &b);
	free(b.p);
	return rc;
}
