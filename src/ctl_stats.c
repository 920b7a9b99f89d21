/*
 * ctl_stats.c: "llmqctl stats", what the requests created in a recent
 * period came to, per role, per model used and in all: outcomes,
 * failures by error kind, success rate, the median and 95th percentile
 * of the queue wait, the model time, the end-to-end time and the time
 * to first token, tokens, the cache's hit rate, fallbacks, retries and
 * re-asks.
 *
 * One statement computes it all, over the rows created since the start
 * of the period (the index on created_at finds them), with GROUPING SETS
 * so that the roles, the models and the total come from one snapshot and
 * add up.  It returns the figures as one JSON object: --json prints it
 * as it is, and the tables are made from it, so that both show the same
 * numbers.  The JSON is read back with the same care as any input (a
 * member of the wrong type shows as no value); names from the rows are
 * escaped before they are printed.
 */
#include "config.h"

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include <json.h>
#include <libpq-fe.h>

#include "ctl.h"
#include "util.h"

#define STATS_DEFAULT_SINCE "24h"

/*
 * Times in milliseconds, rounded to the microsecond; rates to 4 places.
 * Cache hits are left out of the queue wait, the model time and the
 * time to first token (they were neither queued nor sent), and of the
 * tokens (they cost none); they count in the end-to-end time, which is
 * what their caller saw.  The model time and the end-to-end time are
 * those of completed and failed requests: a cancel cuts them short.
 * The success rate is completed of completed and failed: a cancel is
 * the caller's decision, not an outcome.
 */
static const char stats_sql[] =
    "WITH s AS (SELECT now() - $1::bigint * interval '1 millisecond'"
    "                  AS since),"
    " r AS (SELECT q.role, q.model_used, q.status, q.error_kind,"
    "              q.cache_hit, q.cache_key IS NOT NULL AS cacheable,"
    "              q.fallback_used, q.attempts, q.reasks,"
    "              CASE WHEN NOT q.cache_hit THEN q.prompt_tokens END"
    "                  AS prompt_tokens,"
    "              CASE WHEN NOT q.cache_hit THEN q.completion_tokens END"
    "                  AS completion_tokens,"
    "              CASE WHEN NOT q.cache_hit THEN extract(epoch FROM"
    "                  q.claimed_at - q.created_at) * 1000 END AS queue_ms,"
    "              CASE WHEN NOT q.cache_hit"
    "                    AND q.status IN ('completed', 'failed')"
    "                  THEN extract(epoch FROM"
    "                  q.finished_at - q.claimed_at) * 1000 END AS model_ms,"
    "              CASE WHEN q.status IN ('completed', 'failed')"
    "                  THEN extract(epoch FROM"
    "                  q.finished_at - q.created_at) * 1000 END AS total_ms,"
    "              CASE WHEN NOT q.cache_hit THEN extract(epoch FROM"
    "                  q.first_token_at - q.claimed_at) * 1000 END"
    "                  AS ttft_ms"
    "         FROM llmq.requests q, s"
    "        WHERE q.created_at >= s.since"
    "          AND ($2::text IS NULL OR q.role = $2)),"
    /* gs, grouping()'s bits: 1 a role's group, 2 a model's, 3 all. */
    " g AS (SELECT grouping(role, model_used) AS gs, role, model_used,"
    "         jsonb_build_object("
    "           'requests', count(*),"
    "           'completed', count(*) FILTER (WHERE status = 'completed'),"
    "           'failed', count(*) FILTER (WHERE status = 'failed'),"
    /* An aggregate of the outer query, counted by kind in a sub-select. */
    "           'failed_by_kind', (SELECT coalesce(jsonb_object_agg(k, n),"
    "                                              '{}')"
    "              FROM (SELECT k, count(*) AS n"
    "                      FROM unnest(array_agg(coalesce(error_kind,"
    "                               'internal'))"
    "                           FILTER (WHERE status = 'failed')) AS k"
    "                     GROUP BY k) f),"
    "           'cancelled', count(*) FILTER (WHERE status = 'cancelled'),"
    "           'pending', count(*) FILTER (WHERE status = 'pending'),"
    "           'processing', count(*)"
    "               FILTER (WHERE status = 'processing'),"
    "           'success_rate', round(count(*)"
    "               FILTER (WHERE status = 'completed')::numeric"
    "               / nullif(count(*) FILTER (WHERE status"
    "                   IN ('completed', 'failed')), 0), 4)::float8,"
    "           'queue_wait_ms', jsonb_build_object("
    "               'p50', round((percentile_cont(0.5)"
    "                   WITHIN GROUP (ORDER BY queue_ms))::numeric,"
    "                   3)::float8,"
    "               'p95', round((percentile_cont(0.95)"
    "                   WITHIN GROUP (ORDER BY queue_ms))::numeric,"
    "                   3)::float8),"
    "           'model_time_ms', jsonb_build_object("
    "               'p50', round((percentile_cont(0.5)"
    "                   WITHIN GROUP (ORDER BY model_ms))::numeric,"
    "                   3)::float8,"
    "               'p95', round((percentile_cont(0.95)"
    "                   WITHIN GROUP (ORDER BY model_ms))::numeric,"
    "                   3)::float8),"
    "           'end_to_end_ms', jsonb_build_object("
    "               'p50', round((percentile_cont(0.5)"
    "                   WITHIN GROUP (ORDER BY total_ms))::numeric,"
    "                   3)::float8,"
    "               'p95', round((percentile_cont(0.95)"
    "                   WITHIN GROUP (ORDER BY total_ms))::numeric,"
    "                   3)::float8),"
    "           'first_token_ms', jsonb_build_object("
    "               'p50', round((percentile_cont(0.5)"
    "                   WITHIN GROUP (ORDER BY ttft_ms))::numeric,"
    "                   3)::float8,"
    "               'p95', round((percentile_cont(0.95)"
    "                   WITHIN GROUP (ORDER BY ttft_ms))::numeric,"
    "                   3)::float8),"
    "           'prompt_tokens_avg',"
    "               round(avg(prompt_tokens), 1)::float8,"
    "           'completion_tokens_avg',"
    "               round(avg(completion_tokens), 1)::float8,"
    "           'cacheable', count(*) FILTER (WHERE cacheable),"
    "           'cache_hits', count(*) FILTER (WHERE cache_hit),"
    "           'cache_hit_rate', round(count(*)"
    "               FILTER (WHERE cache_hit)::numeric"
    "               / nullif(count(*) FILTER (WHERE cacheable), 0),"
    "               4)::float8,"
    "           'fallbacks', count(*) FILTER (WHERE fallback_used),"
    "           'retried', count(*) FILTER (WHERE attempts > 1),"
    "           'reasks', coalesce(sum(reasks), 0)) AS m"
    "         FROM r"
    "        GROUP BY GROUPING SETS ((role), (model_used), ()))"
    " SELECT jsonb_build_object("
    "          'since', (SELECT since FROM s),"
    "          'roles', coalesce((SELECT jsonb_agg(jsonb_build_object("
    "                    'role', role) || m ORDER BY role)"
    "                FROM g WHERE gs = 1), '[]'),"
    "          'models', coalesce((SELECT jsonb_agg(jsonb_build_object("
    "                    'model', model_used) || m"
    "                    ORDER BY model_used NULLS LAST)"
    "                FROM g WHERE gs = 2), '[]'),"
    "          'total', (SELECT m FROM g WHERE gs = 3)),"
    "        floor(extract(epoch FROM (SELECT since FROM s)))::bigint";

/* Reading the figures. */

static int64_t
get_count(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		return 0;
	return json_object_get_int64(v);
}

/* 1 and the number in *out; 0 when it is null (no value in the group). */
static int
get_num(struct json_object *o, const char *key, double *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    (!json_object_is_type(v, json_type_double) &&
	        !json_object_is_type(v, json_type_int)))
		return 0;
	*out = json_object_get_double(v);
	return 1;
}

/* "812.4ms", "1.94s", "125.3s", "86400s". */
static void
dur_text(char *buf, size_t len, double ms)
{
	if (ms < 999.95)
		snprintf(buf, len, "%.1fms", ms);
	else if (ms < 99995)
		snprintf(buf, len, "%.2fs", ms / 1000);
	else if (ms < 9999950)
		snprintf(buf, len, "%.1fs", ms / 1000);
	else
		snprintf(buf, len, "%.0fs", ms / 1000);
}

/* "p50/p95" of one of the times, or "-". */
static char *
times_cell(struct json_object *o, const char *key)
{
	struct json_object *t;
	char a[32], b[32];
	double p50, p95;

	if (!json_object_object_get_ex(o, key, &t) ||
	    !get_num(t, "p50", &p50) || !get_num(t, "p95", &p95))
		return xstrdup("-");
	dur_text(a, sizeof(a), p50);
	dur_text(b, sizeof(b), p95);
	return xasprintf("%s/%s", a, b);
}

static char *
rate_cell(struct json_object *o, const char *key)
{
	double r;

	if (!get_num(o, key, &r))
		return xstrdup("-");
	return xasprintf("%.1f%%", r * 100);
}

static char *
count_cell(struct json_object *o, const char *key)
{
	return xasprintf("%lld", (long long)get_count(o, key));
}

static char *
tokens_cell(struct json_object *o)
{
	double p, c;

	if (!get_num(o, "prompt_tokens_avg", &p) ||
	    !get_num(o, "completion_tokens_avg", &c))
		return xstrdup("-");
	return xasprintf("%.1f/%.1f", p, c);
}

/*
 * The name of a group, escaped: a model's name comes from a row;
 * "(none)" for the requests no model was chosen for.
 */
static char *
group_name(struct json_object *o, const char *key)
{
	struct json_object *v;
	const char *s;

	if (key == NULL)
		return xstrdup("total");
	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return xstrdup("(none)");
	s = json_object_get_string(v);
	return str_escape(s, strlen(s), 100);
}

struct kind_count {
	const char *kind;
	int64_t n;
};

static int
kind_cmp(const void *a, const void *b)
{
	const struct kind_count *x = a, *y = b;

	if (x->n != y->n)
		return x->n > y->n ? -1 : 1;
	return strcmp(x->kind, y->kind);
}

/* "timeout 3, parse_error 2": the most frequent first. */
static char *
kinds_text(struct json_object *o)
{
	struct json_object *k;
	struct kind_count *v;
	size_t n = 0, i, len = 1;
	char *buf, *esc;

	if (!json_object_object_get_ex(o, "failed_by_kind", &k) ||
	    !json_object_is_type(k, json_type_object) ||
	    json_object_object_length(k) == 0)
		return NULL;
	v = xcalloc((size_t)json_object_object_length(k), sizeof(*v));
	json_object_object_foreach(k, key, val)
	{
		v[n].kind = key;
		v[n].n = json_object_get_int64(val);
		len += strlen(key) * 4 + 24;
		n++;
	}
	qsort(v, n, sizeof(*v), kind_cmp);
	buf = xmalloc(len);
	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		esc = str_escape(v[i].kind, strlen(v[i].kind), 100);
		snprintf(buf + strlen(buf), len - strlen(buf), "%s%s %lld",
		    i > 0 ? ", " : "", esc, (long long)v[i].n);
		free(esc);
	}
	free(v);
	return buf;
}

/*
 * The groups of one view (the roles, or the models) and the total: the
 * counts, the failures by kind, then the times and tokens.
 */
static void
print_view(struct json_object *groups, struct json_object *total,
    const char *head, const char *key)
{
	const struct ctl_table_column counts[] = {
		{ head, 0 },
		{ "TOTAL", 1 },
		{ "COMPLETED", 1 },
		{ "FAILED", 1 },
		{ "CANCELLED", 1 },
		{ "SUCCESS", 1 },
		{ "CACHE", 1 },
		{ "FALLBACK", 1 },
		{ "RETRIED", 1 },
		{ "REASKS", 1 },
	};
	const struct ctl_table_column times[] = {
		{ head, 0 },
		{ "QUEUE_WAIT", 0 },
		{ "MODEL_TIME", 0 },
		{ "END_TO_END", 0 },
		{ "FIRST_TOKEN", 0 },
		{ "TOKENS", 0 },
	};
	struct ctl_table tc = { counts, (int)nitems(counts), NULL, 0 };
	struct ctl_table tt = { times, (int)nitems(times), NULL, 0 };
	struct json_object *g;
	char **row, *name, *kinds;
	size_t i, n, w = 0;
	int first = 1;

	n = json_object_array_length(groups);
	for (i = 0; i <= n; i++) {
		g = i < n ? json_object_array_get_idx(groups, i) : total;
		name = group_name(g, i < n ? key : NULL);
		if (strlen(name) > w)
			w = strlen(name);
		row = ctl_table_row(&tc);
		row[0] = xstrdup(name);
		row[1] = count_cell(g, "requests");
		row[2] = count_cell(g, "completed");
		row[3] = count_cell(g, "failed");
		row[4] = count_cell(g, "cancelled");
		row[5] = rate_cell(g, "success_rate");
		row[6] = rate_cell(g, "cache_hit_rate");
		row[7] = count_cell(g, "fallbacks");
		row[8] = count_cell(g, "retried");
		row[9] = count_cell(g, "reasks");
		row = ctl_table_row(&tt);
		row[0] = name;
		row[1] = times_cell(g, "queue_wait_ms");
		row[2] = times_cell(g, "model_time_ms");
		row[3] = times_cell(g, "end_to_end_ms");
		row[4] = times_cell(g, "first_token_ms");
		row[5] = tokens_cell(g);
	}
	ctl_table_flush(&tc);
	for (i = 0; i <= n; i++) {
		g = i < n ? json_object_array_get_idx(groups, i) : total;
		if ((kinds = kinds_text(g)) == NULL)
			continue;
		name = group_name(g, i < n ? key : NULL);
		printf("%-8s %-*s  %s\n", first ? "failed:" : "", (int)w, name,
		    kinds);
		first = 0;
		free(name);
		free(kinds);
	}
	printf("\n");
	ctl_table_flush(&tt);
}

static int
print_text(const char *json, time_t since, const char *period, const char *role)
{
	struct json_object *root, *roles, *models, *total;
	char when[32], *esc = NULL;
	struct tm tm;
	int rc = 0;

	root = json_tokener_parse(json);
	if (!json_object_object_get_ex(root, "roles", &roles) ||
	    !json_object_is_type(roles, json_type_array) ||
	    !json_object_object_get_ex(root, "models", &models) ||
	    !json_object_is_type(models, json_type_array) ||
	    !json_object_object_get_ex(root, "total", &total) ||
	    !json_object_is_type(total, json_type_object)) {
		ctl_errx("stats: unexpected reply from the database");
		json_object_put(root);
		return 1;
	}
	localtime_r(&since, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	if (role != NULL)
		esc = str_escape(role, strlen(role), 100);
	printf("requests%s%s created since %s (last %s)",
	    esc ? " of role " : "", esc ? esc : "", when, period);
	free(esc);
	if (get_count(total, "requests") == 0) {
		printf(": none\n");
		json_object_put(root);
		return rc;
	}
	printf("\n\n");
	print_view(roles, total, "ROLE", "role");
	printf("\n");
	print_view(models, total, "MODEL", "model");
	printf("\ntimes are p50/p95 (first token: streamed replies only); "
	       "tokens are the mean\nprompt/completion per request, cache "
	       "hits left out; success is completed of\ncompleted and "
	       "failed; cache is hits of cacheable requests\n");
	json_object_put(root);
	return rc;
}

static int
stats_run(PGconn *conn, int64_t since_ms, const char *period, const char *role,
    int as_json)
{
	const char *params[2];
	char ms[32];
	PGresult *res;
	int rc;

	snprintf(ms, sizeof(ms), "%lld", (long long)since_ms);
	params[0] = ms;
	params[1] = role;
	res = PQexecParams(conn, stats_sql, 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		ctl_pgerr(conn, res, "could not compute the statistics");
		PQclear(res);
		return 1;
	}
	if (as_json) {
		printf("%s\n", PQgetvalue(res, 0, 0));
		rc = 0;
	} else
		rc = print_text(PQgetvalue(res, 0, 0),
		    (time_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10), period,
		    role);
	PQclear(res);
	return rc;
}

int
ctl_stats(struct ctl *ctl, int argc, char **argv)
{
	enum { OPT_JSON = 256 };
	static const struct option opts[] = {
		{ "since", required_argument, NULL, 's' },
		{ "role", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *role = NULL, *period = STATS_DEFAULT_SINCE;
	int64_t since_ms;
	int ch, as_json = 0, rc;

	ctl_getopt_init(ctl, argv);
	while ((ch = getopt_long(argc, argv, "s:r:h", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			period = optarg;
			break;
		case 'r':
			role = optarg;
			break;
		case OPT_JSON:
			as_json = 1;
			break;
		default: /* -h, or an option getopt refused */
			return ctl_help(ctl, ch);
		}
	}
	if ((rc = ctl_no_args(ctl, argc, argv)) != 0)
		return rc;
	if (ctl_parse_period(period, &since_ms) == -1 || since_ms == 0) {
		return ctl_usage_error(ctl,
		    "invalid period \"%s\" (expected e.g. 30m, 24h, 7d)",
		    period);
	}
	if (ctl_connect(ctl, 0) == -1)
		return 1;
	return stats_run(ctl->conn, since_ms, period, role, as_json);
}
