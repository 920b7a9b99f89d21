/*
 * db.c: the statements llmqd runs, prepared once per connection.
 *
 * The claim is one UPDATE over a SKIP LOCKED sub-select that reads only
 * the partial index of pending rows, so concurrent workers never block
 * one another and never take the same row; for a model with a
 * cluster-wide cap it is llmq.claim() (sql/002_limits.sql), which runs
 * the same UPDATE under an advisory lock after counting the rows in
 * flight on the model.  The finish is one UPDATE
 * over a JSON array of results; it is fenced by status, holder and
 * attempt so that a result that arrives late (after its row was rescued
 * and claimed again) changes nothing.  The NOTIFY that wakes a caller is
 * sent by a trigger in the same transaction.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "db.h"
#include "log.h"
#include "provider.h"
#include "util.h"

static const struct {
	const char *name;
	const char *sql;
} stmts[] = {
	/*
	 * The claim of llmq.claim() (sql/002_limits.sql) without a cluster
	 * cap, as a prepared statement: it spares a model without a cap the
	 * function's overhead on every pick-up.  Keep the two alike.
	 */
	{ "claim",
	    "UPDATE llmq.requests r"
	    "   SET status = 'processing', attempts = r.attempts + 1,"
	    "       locked_by = $2, claimed_at = clock_timestamp(),"
	    "       lease_until = clock_timestamp() +"
	    "           $4::bigint * interval '1 millisecond',"
	    "       max_attempts = coalesce(r.max_attempts, $5::integer),"
	    "       model_used = $9, queue_deadline = NULL"
	    "  FROM (SELECT q.id FROM llmq.requests q"
	    "         WHERE q.role = $1 AND q.status = 'pending'"
	    "           AND q.run_after <= now()"
	    "           AND (q.queue_deadline IS NULL"
	    "                OR q.queue_deadline > now())"
	    "           AND coalesce(q.model = ANY ($6::text[])"
	    "                 OR (q.model IS NULL"
	    "                     AND q.complexity = ANY ($7::text[])),"
	    "                 false) <> $8::boolean"
	    "         ORDER BY q.priority DESC, q.run_after, q.id"
	    "         LIMIT $3 FOR UPDATE SKIP LOCKED) c"
	    " WHERE r.id = c.id"
	    " RETURNING r.id, r.attempts, r.messages, r.options, r.model,"
	    "           r.complexity, r.timeout_ms, r.max_attempts,"
	    "           r.fallback_used" },
	/* With a cluster-wide cap: see llmq.claim(). */
	{ "claim_capped",
	    "SELECT * FROM llmq.claim($1, $2, $3, $4, $5, $6, $7, $8, $9,"
	    "                         $10)" },
	/*
	 * Each result: the row finished (or, for a retry, back to pending
	 * with a later run_after), and each call that reached a provider
	 * recorded in llmq.attempts, whether or not the fence let its result
	 * in: it was made.
	 */
	{ "finish",
	    "WITH v AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS v(id "
	    "bigint,"
	    "       attempt integer, status text, response text,"
	    "       error_kind text, error_message text, http_status integer,"
	    "       model_used text, prompt_tokens integer,"
	    "       completion_tokens integer, estimated boolean,"
	    "       first_us bigint, finished_us bigint, started_us bigint,"
	    "       byte_us bigint, delay_ms bigint, provider text,"
	    "       retry boolean, fallback text, round integer,"
	    "       call_prompt integer, call_completion integer,"
	    "       call_estimated boolean,"
	    "       parsed jsonb, verrors jsonb)),"
	    " u AS (UPDATE llmq.requests r"
	    "   SET status = v.status, response = v.response,"
	    "       error_kind = v.error_kind, error_message = v.error_message,"
	    "       http_status = v.http_status, model_used = v.model_used,"
	    "       prompt_tokens = v.prompt_tokens,"
	    "       completion_tokens = v.completion_tokens,"
	    "       tokens_estimated = coalesce(v.estimated, false),"
	    "       first_token_at = to_timestamp(v.first_us / 1e6),"
	    "       finished_at = CASE WHEN v.status = 'pending' THEN NULL"
	    "           ELSE to_timestamp(v.finished_us / 1e6) END,"
	    "       run_after = CASE WHEN v.status = 'pending'"
	    "           THEN clock_timestamp() +"
	    "                v.delay_ms * interval '1 millisecond'"
	    "           ELSE r.run_after END,"
	    "       model = coalesce(v.fallback, r.model),"
	    "       fallback_used = r.fallback_used OR v.fallback IS NOT NULL,"
	    "       parsed_response = v.parsed,"
	    "       validation_errors = v.verrors,"
	    "       reasks = coalesce(v.round, 0),"
	    "       locked_by = NULL, lease_until = NULL"
	    "  FROM v"
	    /* A round that was asked again is a call, not a result. */
	    " WHERE v.status <> 'round'"
	    "   AND r.id = v.id AND r.status = 'processing'"
	    "   AND r.locked_by = $2 AND r.attempts = v.attempt"
	    " RETURNING r.id, r.status, r.cache_key, r.cache_ttl_ms,"
	    "           r.fallback_used, r.model_used, r.response,"
	    "           r.prompt_tokens, r.completion_tokens,"
	    "           r.tokens_estimated, r.parsed_response,"
	    /* The key names this request, and the model that answered. */
	    "           CASE WHEN r.cache_key IS NOT NULL"
	    "                 AND r.status = 'completed'"
	    "           THEN r.cache_key = llmq.cache_key(r.model_used,"
	    "                r.messages, r.options)"
	    "           ELSE false END AS cache_ok),"
	    " a AS (INSERT INTO llmq.attempts (request_id, attempt, model,"
	    "       provider, started_at, first_byte_at, first_token_at,"
	    "       finished_at, http_status, error_kind, error_message, retry,"
	    "       prompt_tokens, completion_tokens, tokens_estimated, round)"
	    "  SELECT v.id, v.attempt, v.model_used, v.provider,"
	    "         to_timestamp(v.started_us / 1e6),"
	    "         to_timestamp(v.byte_us / 1e6),"
	    "         to_timestamp(v.first_us / 1e6),"
	    "         to_timestamp(v.finished_us / 1e6), v.http_status,"
	    "         v.error_kind, v.error_message, v.retry,"
	    "         v.call_prompt, v.call_completion,"
	    "         coalesce(v.call_estimated, false), coalesce(v.round, 0)"
	    "    FROM v JOIN llmq.requests q ON q.id = v.id"
	    "   WHERE v.provider IS NOT NULL"
	    /*
	     * Not FOR KEY SHARE: that would skip the rows u updates.  A
	     * request deleted by another transaction meanwhile fails the
	     * batch, which flush() then writes row by row.
	     */
	    "  ON CONFLICT (request_id, attempt, started_at) DO NOTHING),"
	    /*
	     * A cacheable reply goes into the cache: only one per key from
	     * this batch (an upsert may not touch a row twice), and only
	     * under the key of its own request and model (cache_ok): not
	     * the reply of a fallback model, nor of a model a reload routed
	     * the row to since its insert, nor under a key someone wrote.
	     */
	    " k AS (INSERT INTO llmq.cache (key, model, response,"
	    "       parsed_response, prompt_tokens, completion_tokens,"
	    "       tokens_estimated, request_id, expires_at)"
	    "  SELECT DISTINCT ON (u.cache_key) u.cache_key, u.model_used,"
	    "         u.response, u.parsed_response, u.prompt_tokens,"
	    "         u.completion_tokens,"
	    "         u.tokens_estimated, u.id,"
	    "         now() + least(u.cache_ttl_ms, 315360000000)"
	    "             * interval '1 millisecond'"
	    "    FROM u"
	    "   WHERE u.cache_ok AND u.cache_ttl_ms > 0"
	    "     AND NOT u.fallback_used AND u.response IS NOT NULL"
	    "   ORDER BY u.cache_key, u.id"
	    "  ON CONFLICT (key) DO UPDATE"
	    "    SET model = EXCLUDED.model, response = EXCLUDED.response,"
	    "        parsed_response = EXCLUDED.parsed_response,"
	    "        prompt_tokens = EXCLUDED.prompt_tokens,"
	    "        completion_tokens = EXCLUDED.completion_tokens,"
	    "        tokens_estimated = EXCLUDED.tokens_estimated,"
	    "        request_id = EXCLUDED.request_id, created_at = now(),"
	    "        expires_at = EXCLUDED.expires_at),"
	    /*
	     * The pieces of the rows written: their text is the result now.
	     * Of those only: a late result must not wipe the pieces of the
	     * call that runs the row now.
	     */
	    " p AS (DELETE FROM llmq.partials d USING u"
	    "        WHERE d.request_id = u.id)"
	    " SELECT count(*) FROM u" },
	{ "fail",
	    "UPDATE llmq.requests"
	    "   SET status = 'failed', error_kind = $4, error_message = $5,"
	    "       finished_at = clock_timestamp(),"
	    "       locked_by = NULL, lease_until = NULL"
	    " WHERE id = $2 AND status = 'processing' AND locked_by = $1"
	    "   AND attempts = $3" },
	{ "renew",
	    "UPDATE llmq.requests"
	    "   SET lease_until = clock_timestamp() +"
	    "       $2::bigint * interval '1 millisecond'"
	    " WHERE status = 'processing' AND locked_by = $1"
	    "   AND id = ANY ($3::bigint[])" },
	/*
	 * The attempt is not counted, so the next claim has the same
	 * number: the pieces of the call that stopped go now, or the next
	 * call's would collide with them.
	 */
	{ "handback",
	    "WITH h AS (UPDATE llmq.requests"
	    "   SET status = 'pending', attempts = attempts - 1,"
	    "       locked_by = NULL, lease_until = NULL, claimed_at = NULL"
	    " WHERE status = 'processing' AND locked_by = $1"
	    "   AND id = ANY ($2::bigint[])"
	    " RETURNING id),"
	    " d AS (DELETE FROM llmq.partials p USING h"
	    "        WHERE p.request_id = h.id)"
	    " SELECT count(*) FROM h" },
	/*
	 * Rows bearing our name that we hold no call for: a claim whose
	 * reply was lost with the connection.  Never called: the attempt
	 * is not counted.
	 */
	{ "orphans",
	    "UPDATE llmq.requests"
	    "   SET status = 'pending', attempts = attempts - 1,"
	    "       locked_by = NULL, lease_until = NULL, claimed_at = NULL"
	    " WHERE status = 'processing' AND locked_by = $1"
	    "   AND NOT (id = ANY ($2::bigint[]))" },
	{ "holders",
	    "SELECT DISTINCT locked_by FROM llmq.requests"
	    " WHERE status = 'processing'"
	    "   AND left(locked_by, length($1)) = $1"
	    "   AND ($2::text IS NULL OR role = $2)" },
	/*
	 * A row taken from a holder that is gone, or whose lease ran out:
	 * its attempt was spent (the call may have reached the model), so
	 * it fails once the attempts are used up.
	 */
	{ "rescue",
	    "UPDATE llmq.requests"
	    "   SET status = CASE WHEN attempts >= max_attempts"
	    "                THEN 'failed' ELSE 'pending' END,"
	    "       error_kind = CASE WHEN attempts >= max_attempts"
	    "                THEN 'internal' END,"
	    "       error_message = CASE WHEN attempts >= max_attempts"
	    "                THEN $2::text || ' after ' || attempts || ' "
	    "attempts' END,"
	    "       finished_at = CASE WHEN attempts >= max_attempts"
	    "                THEN clock_timestamp() END,"
	    "       locked_by = NULL, lease_until = NULL"
	    " WHERE status = 'processing' AND"
	    "       (locked_by = $1 OR ($1 IS NULL AND lease_until < now()))" },
	{ "purge",
	    "DELETE FROM llmq.requests WHERE id IN"
	    " (SELECT id FROM llmq.requests"
	    "   WHERE status IN ('completed', 'failed', 'cancelled')"
	    "     AND finished_at < now() - $1::bigint * interval '1 "
	    "millisecond'"
	    /* Implied by the line above; lets the index on created_at help. */
	    "     AND created_at < now() - $1::bigint * interval '1 "
	    "millisecond'"
	    "   LIMIT $2)" },
	{ "register",
	    "INSERT INTO llmq.roles (name, max_queue_wait_ms, routes,"
	    "                        cache_ttl_ms)"
	    " VALUES ($1, $2, $3, $4)"
	    " ON CONFLICT (name) DO UPDATE"
	    "   SET max_queue_wait_ms = EXCLUDED.max_queue_wait_ms,"
	    "       routes = EXCLUDED.routes,"
	    "       cache_ttl_ms = EXCLUDED.cache_ttl_ms"
	    " WHERE (llmq.roles.max_queue_wait_ms, llmq.roles.routes,"
	    "        llmq.roles.cache_ttl_ms) IS DISTINCT FROM"
	    "       (EXCLUDED.max_queue_wait_ms, EXCLUDED.routes,"
	    "        EXCLUDED.cache_ttl_ms)" },
	/*
	 * Pieces of streamed replies: one row each in llmq.partials and a
	 * NOTIFY on the request's channel, for rows still held by me at the
	 * call's attempt (a call whose row was taken from us writes none).
	 * The payload carries the piece when it is small; a listener reads
	 * a larger one from the table.  Small is 1200 bytes: JSON escapes
	 * can make that six times longer, still under NOTIFY's 8000.
	 */
	{ "progress",
	    "WITH v AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS v(id "
	    "bigint, attempt integer, round integer, seq integer,"
	    "       delta text)),"
	    " i AS (INSERT INTO llmq.partials (request_id, attempt, round, seq,"
	    "       delta)"
	    "  SELECT v.id, v.attempt, v.round, v.seq, v.delta"
	    "    FROM v JOIN llmq.requests r ON r.id = v.id"
	    "   WHERE r.status = 'processing' AND r.locked_by = $2"
	    "     AND r.attempts = v.attempt"
	    "  ON CONFLICT DO NOTHING"
	    "  RETURNING request_id, attempt, round, seq, delta)"
	    " SELECT count(pg_notify('llmq_stream_' || i.request_id,"
	    "    json_build_object('id', i.request_id, 'attempt', i.attempt,"
	    "        'round', i.round, 'seq', i.seq,"
	    "        'delta', CASE WHEN octet_length(i.delta)"
	    "            <= 1200 THEN i.delta END)::text))"
	    "   FROM i" },
	{ "cache_purge",
	    "DELETE FROM llmq.cache WHERE key IN"
	    " (SELECT key FROM llmq.cache WHERE expires_at < now()"
	    "   LIMIT $1)" },
	/*
	 * Pieces no call will finish: their worker died, or their row was
	 * failed or given back without a result.  A piece is only ever
	 * written for a row processing at its attempt, so one whose row is
	 * not (any more) is done with.
	 */
	{ "partials_purge",
	    "DELETE FROM llmq.partials WHERE ctid IN"
	    " (SELECT p.ctid FROM llmq.partials p"
	    "   WHERE NOT EXISTS (SELECT 1 FROM llmq.requests r"
	    "                      WHERE r.id = p.request_id"
	    "                        AND r.status = 'processing'"
	    "                        AND r.attempts = p.attempt)"
	    "   LIMIT $1)" },
	/*
	 * The metrics of the rows that finished in ($1, now() - $2 ms],
	 * grouped: which 0 counts the rows; 1, 2 and 3 are the
	 * observations of the queue wait, model time and time to the first
	 * token, in bucket b (0: at most the first of the bounds $3, ...,
	 * cardinality($3): above the last).  $3 holds the bounds negated, in
	 * ascending order, so that width_bucket() counts the bounds at or
	 * above a value and a value equal to a bound falls in its bucket
	 * (Prometheus' "le").  The first row gives the upper end of the
	 * range, to pass as $1 the next time; it is the only row when no row
	 * finished.  A range of finished_at: requests_finished_idx
	 * (sql/007_metrics.sql).
	 */
	{ "metrics_finished",
	    "WITH r AS (SELECT q.role, coalesce(q.model_used, q.model, '')"
	    "       AS model, q.status, coalesce(q.error_kind, '') AS kind,"
	    /* greatest() skips a NULL: without a claim, no observation. */
	    "       CASE WHEN q.claimed_at IS NOT NULL THEN"
	    "           greatest(extract(epoch FROM q.claimed_at -"
	    "               greatest(q.created_at, q.run_after)), 0)::float8"
	    "       END AS qw,"
	    "       CASE WHEN q.claimed_at IS NOT NULL"
	    "             AND q.status <> 'cancelled' THEN"
	    "           greatest(extract(epoch FROM q.finished_at -"
	    "               q.claimed_at), 0)::float8 END AS mt,"
	    "       CASE WHEN q.claimed_at IS NOT NULL"
	    "             AND q.first_token_at IS NOT NULL THEN"
	    "           greatest(extract(epoch FROM q.first_token_at -"
	    "               q.claimed_at), 0)::float8 END AS ft"
	    "  FROM llmq.requests q"
	    " WHERE q.finished_at > $1::timestamptz"
	    "   AND q.finished_at <= now() - $2::bigint * interval '1 "
	    "millisecond'"
	    "   AND q.status IN ('completed', 'failed', 'cancelled')),"
	    " g AS (SELECT r.role, r.model, r.status, r.kind, h.which,"
	    "       CASE WHEN h.which = 0 THEN 0"
	    "       ELSE cardinality($3::float8[]) -"
	    "           width_bucket(-h.v, $3::float8[]) END AS b,"
	    "       count(*) AS n, coalesce(sum(h.v), 0) AS s"
	    "  FROM r CROSS JOIN LATERAL (VALUES (0, 0::float8), (1, r.qw),"
	    "       (2, r.mt), (3, r.ft)) h(which, v)"
	    " WHERE h.which = 0 OR h.v IS NOT NULL"
	    " GROUP BY 1, 2, 3, 4, 5, 6)"
	    " SELECT now() - $2::bigint * interval '1 millisecond', g.role,"
	    "        g.model, g.status, g.kind, g.which, g.b, g.n, g.s"
	    "   FROM (SELECT 1) o LEFT JOIN g ON true" },
	/*
	 * The rows due in each role's queue, and how long the first of
	 * them has been due: from the partial index of pending rows.
	 */
	{ "metrics_queues",
	    "SELECT role, count(*),"
	    "       greatest(extract(epoch FROM now() - min(run_after)),"
	    "           0)::float8"
	    "  FROM llmq.requests"
	    " WHERE status = 'pending' AND run_after <= now()"
	    " GROUP BY role" },
	/* Pending rows past their queue deadline. */
	{ "overload",
	    "UPDATE llmq.requests"
	    "   SET status = 'failed', error_kind = 'overload',"
	    "       error_message = 'not claimed within its max_queue_wait',"
	    "       finished_at = clock_timestamp()"
	    " WHERE id IN (SELECT id FROM llmq.requests"
	    "               WHERE status = 'pending'"
	    "                 AND queue_deadline < now()"
	    "               ORDER BY queue_deadline"
	    "               LIMIT $1 FOR UPDATE SKIP LOCKED)" },
};

static char last_state[6]; /* SQLSTATE of the last error */

int
db_transient(void)
{
	/* lock_not_available, query_canceled, serialization, deadlock */
	return strcmp(last_state, "55P03") == 0 ||
	    strcmp(last_state, "57014") == 0 ||
	    strcmp(last_state, "40001") == 0 ||
	    strcmp(last_state, "40P01") == 0;
}

static void
log_pg(PGconn *conn, const PGresult *res, const char *what)
{
	const char *msg, *state;
	size_t len;
	char *esc;

	state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	snprintf(
	    last_state, sizeof(last_state), "%s", state != NULL ? state : "");
	msg = res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(conn);
	len = strlen(msg);
	while (len > 0 && msg[len - 1] == '\n')
		len--;
	/* DETAIL and CONTEXT may quote row data: one escaped line. */
	esc = str_escape(msg, len, 1000);
	log_warnx("%s failed: %s", what, esc);
	free(esc);
}

int
db_lost(PGconn *conn)
{
	return conn == NULL || PQstatus(conn) != CONNECTION_OK;
}

PGconn *
db_connect(const char *conninfo, const char *appname)
{
	const char *keys[] = { "dbname", "application_name", NULL };
	const char *vals[] = { conninfo, appname, NULL };
	PGconn *conn;
	PGresult *res;
	size_t i;

	conn = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(conn) != CONNECTION_OK) {
		log_pg(conn, NULL, "connection to database");
		PQfinish(conn);
		return NULL;
	}
	/*
	 * The worker's loop waits for each statement: a row lock held by
	 * someone else must not stall it for long.  A statement that gives
	 * up this way is retried (db_transient()).
	 */
	res = PQexec(conn,
	    "SET lock_timeout = '200ms'; "
	    "SET statement_timeout = '30s'");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_pg(conn, res, "setting timeouts");
		PQclear(res);
		PQfinish(conn);
		return NULL;
	}
	PQclear(res);
	for (i = 0; i < nitems(stmts); i++) {
		res = PQprepare(conn, stmts[i].name, stmts[i].sql, 0, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			log_pg(conn, res,
			    "preparing statements (has "
			    "\"llmqctl migrate\" been run?)");
			PQclear(res);
			PQfinish(conn);
			return NULL;
		}
		PQclear(res);
	}
	return conn;
}

/* Run a prepared statement; returns its result or NULL (logged). */
static PGresult *
run(PGconn *conn, const char *name, int n, const char *const *vals,
    ExecStatusType want)
{
	PGresult *res;

	res = PQexecPrepared(conn, name, n, vals, NULL, NULL, 0);
	if (PQresultStatus(res) != want) {
		log_pg(conn, res, name);
		PQclear(res);
		return NULL;
	}
	return res;
}

/* Run a prepared command and return the rows it touched, or -1. */
static int
run_cmd(PGconn *conn, const char *name, int n, const char *const *vals)
{
	PGresult *res;
	int rows;

	if ((res = run(conn, name, n, vals, PGRES_COMMAND_OK)) == NULL)
		return -1;
	rows = atoi(PQcmdTuples(res));
	PQclear(res);
	return rows;
}

int
db_listen(PGconn *conn, const char *role)
{
	PGresult *res;
	char *chan, *sql;
	int rc = 0;

	chan = xasprintf("llmq_req_%s", role);
	/* And llmq.cancel()'s channel: a cancelled call is stopped. */
	sql = xasprintf("LISTEN %s; LISTEN " DB_CANCEL_CHANNEL, chan);
	/* Role names are [a-z][a-z0-9_]*, checked by the config parser. */
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_pg(conn, res, "LISTEN");
		rc = -1;
	}
	PQclear(res);
	free(sql);
	free(chan);
	return rc;
}

int
db_register_role(PGconn *conn, const char *role, int64_t max_queue_wait_ms,
    const char *routes, int64_t cache_ttl_ms)
{
	char wbuf[24], tbuf[24];
	const char *v[] = { role, NULL, routes, NULL };

	if (max_queue_wait_ms > 0) {
		snprintf(
		    wbuf, sizeof(wbuf), "%lld", (long long)max_queue_wait_ms);
		v[1] = wbuf;
	}
	if (cache_ttl_ms > 0) {
		snprintf(tbuf, sizeof(tbuf), "%lld", (long long)cache_ttl_ms);
		v[3] = tbuf;
	}
	return run_cmd(conn, "register", 4, v) < 0 ? -1 : 0;
}

static char *
dup_or_null(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return NULL;
	return xstrdup(PQgetvalue(res, row, col));
}

int
db_claim(PGconn *conn, const char *role, const char *me, int n,
    int64_t lease_ms, int max_attempts, const struct db_group *g,
    struct claimed **out)
{
	char nbuf[16], lbuf[24], mbuf[16], cbuf[16];
	const char *v[] = { role, me, nbuf, lbuf, mbuf, g->models, g->cx,
		g->negate ? "t" : "f", g->model, NULL };
	struct claimed *rows;
	PGresult *res;
	int i, count;

	snprintf(nbuf, sizeof(nbuf), "%d", n);
	snprintf(lbuf, sizeof(lbuf), "%lld", (long long)lease_ms);
	snprintf(mbuf, sizeof(mbuf), "%d", max_attempts);
	*out = NULL;
	if (g->cap > 0) {
		snprintf(cbuf, sizeof(cbuf), "%d", g->cap);
		v[9] = cbuf;
		res = run(conn, "claim_capped", 10, v, PGRES_TUPLES_OK);
	} else
		res = run(conn, "claim", 9, v, PGRES_TUPLES_OK);
	if (res == NULL)
		return -1;
	count = PQntuples(res);
	if (PQnfields(res) < 9) {
		log_warnx("llmq.claim() is older than this llmqd: run "
		          "\"llmqctl migrate\"");
		PQclear(res);
		return -1;
	}
	rows = count > 0 ? xcalloc(count, sizeof(*rows)) : NULL;
	for (i = 0; i < count; i++) {
		rows[i].id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		rows[i].attempt = atoi(PQgetvalue(res, i, 1));
		rows[i].messages = xstrdup(PQgetvalue(res, i, 2));
		rows[i].options = xstrdup(PQgetvalue(res, i, 3));
		rows[i].model = dup_or_null(res, i, 4);
		rows[i].complexity = dup_or_null(res, i, 5);
		rows[i].timeout_ms = PQgetisnull(res, i, 6) ?
		    0 :
		    strtoll(PQgetvalue(res, i, 6), NULL, 10);
		rows[i].max_attempts = atoi(PQgetvalue(res, i, 7));
		rows[i].fallback_used = PQgetvalue(res, i, 8)[0] == 't';
	}
	PQclear(res);
	*out = rows;
	return count;
}

void
db_claimed_free(struct claimed *rows, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		free(rows[i].messages);
		free(rows[i].options);
		free(rows[i].model);
		free(rows[i].complexity);
	}
	free(rows);
}

static void
add_str(json_object *o, const char *key, const char *val)
{
	if (val != NULL)
		json_object_object_add(o, key, json_object_new_string(val));
}

static void
add_int(json_object *o, const char *key, int64_t val)
{
	json_object_object_add(o, key, json_object_new_int64(val));
}

int
db_finish(PGconn *conn, const char *me, const struct call *list)
{
	const struct call *c;
	json_object *arr, *o;
	const char *v[2];
	PGresult *res;
	int rows;

	arr = json_object_new_array();
	for (c = list; c != NULL; c = c->next) {
		o = json_object_new_object();
		add_int(o, "id", c->id);
		add_int(o, "attempt", c->attempt);
		add_str(o, "status",
		    c->round_only ? "round" :
		        c->requeue ? "pending" :
		        c->ok      ? "completed" :
		                     "failed");
		if (c->requeue)
			add_int(o, "delay_ms", c->requeue_ms);
		add_str(o, "fallback", c->fallback);
		add_str(o, "response", c->text);
		add_str(o, "error_kind", c->error_kind);
		add_str(o, "error_message", c->error_message);
		if (c->http_status > 0)
			add_int(o, "http_status", c->http_status);
		add_str(o, "model_used", c->model_name);
		/* The row counts every round; each call its own. */
		if (c->prompt_tokens >= 0 || c->prior_prompt > 0)
			add_int(o, "prompt_tokens",
			    (c->prompt_tokens > 0 ? c->prompt_tokens : 0) +
			        c->prior_prompt);
		if (c->prompt_tokens >= 0)
			add_int(o, "call_prompt", c->prompt_tokens);
		if (c->completion_tokens >= 0 || c->prior_completion > 0)
			add_int(o, "completion_tokens",
			    (c->completion_tokens > 0 ? c->completion_tokens :
			                                0) +
			        c->prior_completion);
		if (c->completion_tokens >= 0)
			add_int(o, "call_completion", c->completion_tokens);
		if (c->round > 0)
			add_int(o, "round", c->round);
		if (c->parsed != NULL)
			json_object_object_add(
			    o, "parsed", json_object_get(c->parsed));
		if (c->verrors != NULL)
			json_object_object_add(
			    o, "verrors", json_object_get(c->verrors));
		if (c->tokens_estimated || c->prior_estimated)
			json_object_object_add(
			    o, "estimated", json_object_new_boolean(1));
		if (c->tokens_estimated)
			json_object_object_add(
			    o, "call_estimated", json_object_new_boolean(1));
		/*
		 * Only a stream has a first token: the first byte of a whole
		 * reply is its last.
		 */
		if (c->first_token_us > 0)
			add_int(o, "first_us", c->first_token_us);
		add_int(o, "finished_us", c->finished_us);
		/* For llmq.attempts: only a call that reached a provider. */
		if (c->prov != NULL && c->easy != NULL) {
			add_str(o, "provider", c->prov->name);
			add_int(o, "started_us", c->started_us);
			if (c->first_byte_us > 0)
				add_int(o, "byte_us", c->first_byte_us);
			json_object_object_add(o, "retry",
			    json_object_new_boolean(c->requeue || c->round_only));
		}
		json_object_array_add(arr, o);
	}
	v[0] = json_object_to_json_string_ext(
	    arr, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	v[1] = me;
	rows = -1;
	if ((res = run(conn, "finish", 2, v, PGRES_TUPLES_OK)) != NULL) {
		rows = atoi(PQgetvalue(res, 0, 0));
		PQclear(res);
	}
	json_object_put(arr);
	return rows;
}

int
db_progress(PGconn *conn, const char *me, struct call *list, int64_t now)
{
	struct call *c;
	json_object *arr, *o;
	const char *v[2];
	PGresult *res;
	int n = 0;

	arr = json_object_new_array();
	for (c = list; c != NULL; c = c->next) {
		if (!c->stream || c->st.textlen <= c->published)
			continue;
		/*
		 * After a failure, the same piece again: it may have been
		 * stored with only the reply lost, and then its second
		 * insert changes nothing.
		 */
		if (c->publishing == 0)
			c->publishing = c->st.textlen;
		o = json_object_new_object();
		add_int(o, "id", c->id);
		add_int(o, "attempt", c->attempt);
		add_int(o, "round", c->round);
		add_int(o, "seq", c->pieces + 1);
		json_object_object_add(o, "delta",
		    json_object_new_string_len(c->st.text + c->published,
		        (int)(c->publishing - c->published)));
		json_object_array_add(arr, o);
		n++;
	}
	if (n == 0) {
		json_object_put(arr);
		return 0;
	}
	v[0] = json_object_to_json_string_ext(
	    arr, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	v[1] = me;
	res = run(conn, "progress", 2, v, PGRES_TUPLES_OK);
	json_object_put(arr);
	for (c = list; c != NULL; c = c->next) {
		if (!c->stream || c->publishing <= c->published)
			continue;
		if (res != NULL) {
			c->published = c->publishing;
			c->pieces++;
			c->publishing = 0;
		}
		c->published_at = now;
	}
	if (res == NULL)
		return -1;
	PQclear(res);
	return n;
}

/* Run a prepared command whose one parameter is a row limit. */
static int
run_limit(PGconn *conn, const char *name, int limit)
{
	char lbuf[16];
	const char *v[] = { lbuf };

	snprintf(lbuf, sizeof(lbuf), "%d", limit);
	return run_cmd(conn, name, 1, v);
}

int
db_purge_cache(PGconn *conn, int limit)
{
	return run_limit(conn, "cache_purge", limit);
}

int
db_purge_partials(PGconn *conn, int limit)
{
	return run_limit(conn, "partials_purge", limit);
}

int
db_fail(PGconn *conn, const char *me, int64_t id, int attempt, const char *kind,
    const char *message)
{
	char ibuf[24], abuf[16];
	const char *v[] = { me, ibuf, abuf, kind, message };

	snprintf(ibuf, sizeof(ibuf), "%lld", (long long)id);
	snprintf(abuf, sizeof(abuf), "%d", attempt);
	return run_cmd(conn, "fail", 5, v);
}

/* "{1,2,3}": the ids of two call lists, as a PostgreSQL array literal. */
static char *
id_array2(const struct call *a, const struct call *b)
{
	const struct call *c, *lists[2] = { a, b };
	size_t len = 0, cap = 64;
	char *buf;
	int i;

	buf = xmalloc(cap);
	buf[len++] = '{';
	for (i = 0; i < 2; i++)
		for (c = lists[i]; c != NULL; c = c->next) {
			if (len + 24 > cap)
				buf = xrealloc(buf, cap *= 2);
			len += snprintf(buf + len, cap - len, "%s%lld",
			    len > 1 ? "," : "", (long long)c->id);
		}
	buf[len++] = '}';
	buf[len] = '\0';
	return buf;
}

static char *
id_array(const struct call *list)
{
	return id_array2(list, NULL);
}

int
db_handback_orphans(PGconn *conn, const char *me, const struct call *running,
    const struct call *done)
{
	const char *v[2];
	char *ids;
	int rc;

	ids = id_array2(running, done);
	v[0] = me;
	v[1] = ids;
	rc = run_cmd(conn, "orphans", 2, v);
	free(ids);
	if (rc > 0)
		log_info("handed back %d request%s claimed before the "
		         "connection was lost",
		    rc, rc == 1 ? "" : "s");
	return rc;
}

int
db_renew(
    PGconn *conn, const char *me, int64_t lease_ms, const struct call *list)
{
	char lbuf[24], *ids;
	const char *v[3];
	int rc;

	snprintf(lbuf, sizeof(lbuf), "%lld", (long long)lease_ms);
	ids = id_array(list);
	v[0] = me;
	v[1] = lbuf;
	v[2] = ids;
	rc = run_cmd(conn, "renew", 3, v);
	free(ids);
	return rc;
}

int
db_handback(PGconn *conn, const char *me, const struct call *list)
{
	const char *v[2];
	PGresult *res;
	char *ids;
	int rc = -1;

	ids = id_array(list);
	v[0] = me;
	v[1] = ids;
	if ((res = run(conn, "handback", 2, v, PGRES_TUPLES_OK)) != NULL) {
		rc = atoi(PQgetvalue(res, 0, 0));
		PQclear(res);
	}
	free(ids);
	return rc;
}

int
db_rescue_dead(PGconn *conn, const char *role)
{
	const char *v[2];
	PGresult *res;
	char *like, *holder;
	const char *pidstr;
	long pid;
	int i, n, total = 0, r;

	/* A prefix compared as is: LIKE would read "_" as a wildcard. */
	like = xasprintf("%s:", host_name());
	v[0] = like;
	v[1] = role;
	res = run(conn, "holders", 2, v, PGRES_TUPLES_OK);
	free(like);
	if (res == NULL)
		return -1;
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		holder = PQgetvalue(res, i, 0);
		pidstr = strrchr(holder, ':');
		if (pidstr == NULL || (pid = strtol(pidstr + 1, NULL, 10)) <= 0)
			continue;
		/*
		 * Alive (or a pid reused by another process): leave the rows
		 * to their lease, which errs on the safe side.
		 */
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		v[0] = holder;
		v[1] = "worker died";
		if ((r = run_cmd(conn, "rescue", 2, v)) < 0) {
			PQclear(res);
			return -1;
		}
		if (r > 0)
			log_info("handed back %d request%s of dead worker %s",
			    r, r == 1 ? "" : "s", holder);
		total += r;
	}
	PQclear(res);
	return total;
}

int
db_rescue_expired(PGconn *conn)
{
	const char *v[] = { NULL, "lease expired" };
	int r;

	if ((r = run_cmd(conn, "rescue", 2, v)) > 0)
		log_info("rescued %d request%s whose lease expired", r,
		    r == 1 ? "" : "s");
	return r;
}

int
db_overload(PGconn *conn, int limit)
{
	int r;

	if ((r = run_limit(conn, "overload", limit)) > 0)
		log_info("failed %d request%s not claimed within their "
		         "max_queue_wait",
		    r, r == 1 ? "" : "s");
	return r;
}

int
db_purge(PGconn *conn, int64_t retention_ms, int limit)
{
	char rbuf[24], lbuf[16];
	const char *v[] = { rbuf, lbuf };

	snprintf(rbuf, sizeof(rbuf), "%lld", (long long)retention_ms);
	snprintf(lbuf, sizeof(lbuf), "%d", limit);
	return run_cmd(conn, "purge", 2, v);
}

int
db_metrics_finished(PGconn *conn, const char *since, int64_t settle_ms,
    const char *bounds, db_finished_fn *each, void *arg, char *upto,
    size_t uptolen)
{
	char sbuf[24];
	const char *v[] = { since, sbuf, bounds };
	struct db_finished f;
	PGresult *res;
	int i, n;

	snprintf(sbuf, sizeof(sbuf), "%lld", (long long)settle_ms);
	if ((res = run(conn, "metrics_finished", 3, v, PGRES_TUPLES_OK)) ==
	    NULL)
		return -1;
	n = PQntuples(res);
	if (n < 1 || PQnfields(res) < 9) {
		log_warnx("metrics_finished returned no range");
		PQclear(res);
		return -1;
	}
	snprintf(upto, uptolen, "%s", PQgetvalue(res, 0, 0));
	for (i = 0; i < n; i++) {
		if (PQgetisnull(res, i, 1))
			continue; /* nothing finished in the range */
		f.role = PQgetvalue(res, i, 1);
		f.model = PQgetvalue(res, i, 2);
		f.status = PQgetvalue(res, i, 3);
		f.error_kind = PQgetvalue(res, i, 4);
		f.which = atoi(PQgetvalue(res, i, 5));
		f.bucket = atoi(PQgetvalue(res, i, 6));
		f.n = strtoll(PQgetvalue(res, i, 7), NULL, 10);
		f.sum = strtod(PQgetvalue(res, i, 8), NULL);
		each(&f, arg);
	}
	PQclear(res);
	return 0;
}

int
db_metrics_queues(PGconn *conn, db_queue_fn *each, void *arg)
{
	PGresult *res;
	int i, n;

	if ((res = run(conn, "metrics_queues", 0, NULL, PGRES_TUPLES_OK)) ==
	    NULL)
		return -1;
	n = PQntuples(res);
	for (i = 0; i < n; i++)
		each(PQgetvalue(res, i, 0),
		    strtoll(PQgetvalue(res, i, 1), NULL, 10),
		    strtod(PQgetvalue(res, i, 2), NULL), arg);
	PQclear(res);
	return 0;
}
