/*
 * db.h: llmqd's statements against PostgreSQL.
 *
 * Every statement llmqd runs is here, parameterised and schema-qualified;
 * workers and the consumer call these and never build SQL themselves.
 * Statements are synchronous: each is one round trip to a nearby server
 * and is batched (claim up to batch_size rows, finish every reply that
 * arrived in one loop turn), so the slow part, the LLM calls, never waits
 * behind them for long.  Functions return 0 / -1 (or a count), logging
 * the server's message; after -1, db_lost() tells whether the connection
 * is gone and must be re-established.
 */
#ifndef LLMQ_DB_H
#define LLMQ_DB_H

#include <stdint.h>

#include <libpq-fe.h>

struct call;

struct claimed {
	int64_t id;
	int attempt;
	char *messages;     /* JSON text */
	char *options;      /* JSON text */
	char *model;        /* NULL: not asked for */
	char *complexity;   /* NULL: not given */
	int64_t timeout_ms; /* 0: not given */
	int max_attempts;   /* the row's, or the role's */
	int fallback_used;  /* sent back to try its model's fallback */
};

/*
 * Which rows of a role a claim takes: those routed to one model (see
 * llmq.claim() in sql/002_limits.sql).  models and cx are PostgreSQL
 * array literals.
 */
struct db_group {
	const char *model; /* the model the rows go to */
	char *models;      /* rows naming one of these ... */
	char *cx;          /* ... or none, with one of these complexities */
	int negate;        /* take every row the two above do not match */
	int cap;           /* models.M.cluster_concurrency; 0: none */
};

/* Connect; NULL on failure (logged). */
PGconn *db_connect(const char *conninfo, const char *appname);
int db_lost(PGconn *);
/*
 * After -1 with the connection up: 1 when the statement gave up on a
 * lock or a timeout and may simply be tried again later.
 */
int db_transient(void);

/*
 * The channel on which llmq.cancel() names a request that was cancelled
 * while processing (sql/006_admin.sql); the payload is its id.
 */
#define DB_CANCEL_CHANNEL "llmq_cancel"

/* LISTEN on the channel of role, and on DB_CANCEL_CHANNEL. */
int db_listen(PGconn *, const char *role);
/*
 * Make role known to llmq.submit(), with its default max_queue_wait, its
 * routes (JSON, cfg_role_routes()) and its default cache time to live
 * (0: none), which the insert trigger reads.
 */
int db_register_role(PGconn *, const char *role, int64_t max_queue_wait_ms,
    const char *routes, int64_t cache_ttl_ms);

/*
 * Claim at most n pending rows of role now due, of group g.  On success
 * *out is a new array of the claimed rows (free with db_claimed_free)
 * and the count is returned; -1 on error.
 */
int db_claim(PGconn *, const char *role, const char *me, int n,
    int64_t lease_ms, int max_attempts, const struct db_group *g,
    struct claimed **out);
void db_claimed_free(struct claimed *, int n);

/*
 * Write the results of the calls in list (linked by ->next) and wake
 * their callers, in one transaction, with a row in llmq.attempts for each
 * call that reached a provider.  A call with ->requeue set sends its row
 * back to pending, due ->requeue_ms later, instead of finishing it.  Only
 * rows still processing, held by me at the call's attempt are changed (a
 * fenced finish).  Returns the number of rows written, or -1 (nothing
 * was written).
 */
int db_finish(PGconn *, const char *me, const struct call *list);

/*
 * Publish the text that the streamed calls in list received since they
 * last published: one row of llmq.partials each and a NOTIFY on
 * "llmq_stream_<id>", in one statement.  Each call's ->published_at
 * becomes now (monotonic ms) either way; a piece that failed to go is
 * sent again as it was, then what came after it.  Returns the number of
 * pieces, or -1.
 */
int db_progress(PGconn *, const char *me, struct call *list, int64_t now);

/* Delete expired cache entries, and pieces of streams no call will end. */
int db_purge_cache(PGconn *, int limit);
int db_purge_partials(PGconn *, int limit);

/* Fail one claimed row without a call (e.g. an unknown model). */
int db_fail(PGconn *, const char *me, int64_t id, int attempt, const char *kind,
    const char *message);

/*
 * Extend the lease of the rows of the calls in list (linked by ->next)
 * that are still held by me.  By id, not by holder: a row that merely
 * carries our name (pid reuse, a claim whose reply was lost) is left to
 * its lease.
 */
int db_renew(
    PGconn *, const char *me, int64_t lease_ms, const struct call *list);

/*
 * Give back the rows of the calls in list (graceful stop): pending
 * again, the attempt not counted.
 */
int db_handback(PGconn *, const char *me, const struct call *list);

/*
 * After reconnecting: rows held by me that are in neither list (claimed,
 * but the claim's reply was lost) go back to pending.
 */
int db_handback_orphans(PGconn *, const char *me, const struct call *running,
    const struct call *done);

/*
 * Rows of role (NULL: any) held by processes of this host that no longer
 * exist go back to pending, or fail when their attempts are used up.
 */
int db_rescue_dead(PGconn *, const char *role);

/* Rows whose lease expired: back to pending, or failed. */
int db_rescue_expired(PGconn *);

/* Fail pending rows past their queue deadline, at most limit of them. */
int db_overload(PGconn *, int limit);

/* Delete finished rows older than retention_ms, at most limit of them. */
int db_purge(PGconn *, int64_t retention_ms, int limit);

/*
 * Metrics (metrics.c).  One group of the rows finished in a range: which
 * 0 counts them; 1, 2, 3 count the observations of the queue wait, the
 * model time and the time to the first token (seconds) in bucket, and
 * sum them.
 */
struct db_finished {
	const char *role, *model, *status, *error_kind; /* "": none */
	int which;
	int bucket; /* 0..nbounds; nbounds: above the last bound */
	int64_t n;
	double sum;
};
typedef void db_finished_fn(const struct db_finished *, void *arg);
typedef void db_queue_fn(
    const char *role, int64_t due, double oldest_s, void *arg);

/*
 * Call each for every group of the rows finished after since (a
 * timestamp; "-infinity" for all) and at least settle_ms ago, their
 * histograms bucketed by bounds (a PostgreSQL array literal of the
 * bucket bounds negated, ascending); the end of that range goes into
 * upto, to pass as since the next time.
 */
int db_metrics_finished(PGconn *, const char *since, int64_t settle_ms,
    const char *bounds, db_finished_fn *each, void *arg, char *upto,
    size_t uptolen);
/* Call each for every role with rows due in its queue. */
int db_metrics_queues(PGconn *, db_queue_fn *each, void *arg);

#endif
