/*
 * ctl_migrate.c: "llmqctl migrate", which applies the schema migrations
 * compiled into the binary and registers the configured roles.
 *
 * All of it is one transaction under an advisory lock, so that two
 * concurrent runs serialise and a failed migration leaves nothing
 * behind; --dry-run does the same work and rolls it back.  A migration
 * is applied at most once, as recorded in llmq.schema_version.  Each
 * migration is many statements, hence the simple-query protocol
 * (PQexec) for it; the bookkeeping is parameterised.
 */
#include "config.h"

#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <libpq-fe.h>

#include "cfg.h"
#include "ctl.h"
#include "migrations.h"

/*
 * The advisory lock that serialises concurrent "llmqctl migrate" runs
 * ("llmq" in ASCII); taken per transaction, so that it can never be
 * left behind.
 */
#define MIGRATE_LOCK_KEY "1819045233"

/* The line of a 1-based character position in text. */
static int
text_line(const char *text, long pos)
{
	const unsigned char *p = (const unsigned char *)text;
	long chars = 0;
	int line = 1;

	for (; *p != '\0'; p++) {
		if ((*p & 0xc0) != 0x80 && ++chars >= pos)
			break;
		if (*p == '\n')
			line++;
	}
	return line;
}

static void
migration_error(PGconn *conn, const PGresult *res, const struct migration *m)
{
	const char *pos;
	long p;

	pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
	if (pos != NULL && (p = strtol(pos, NULL, 10)) > 0)
		ctl_pgerr(conn, res, "migration %s failed: line %d", m->name,
		    text_line(m->sql, p));
	else
		ctl_pgerr(conn, res, "migration %s failed", m->name);
}

static int
migrate_roles(struct ctl *ctl, int dry_run)
{
	const struct cfg_role *r;
	const char *params[4];
	char wbuf[24], tbuf[24], *routes;
	PGresult *res;
	size_t i;

	for (i = 0; i < ctl->cfg->nroles; i++) {
		r = &ctl->cfg->roles[i];
		params[0] = r->name;
		params[1] = params[3] = NULL;
		if (r->max_queue_wait_ms > 0) {
			snprintf(wbuf, sizeof(wbuf), "%lld",
			    (long long)r->max_queue_wait_ms);
			params[1] = wbuf;
		}
		params[2] = routes = cfg_role_routes(ctl->cfg, r);
		if (r->cache_ttl_ms > 0) {
			snprintf(tbuf, sizeof(tbuf), "%lld",
			    (long long)r->cache_ttl_ms);
			params[3] = tbuf;
		}
		/*
		 * What llmqd's workers register too (src/db.c), so that the
		 * cache works before llmqd first starts; "inserted" is new.
		 */
		res = PQexecParams(ctl->conn,
		    "INSERT INTO llmq.roles (name, max_queue_wait_ms, routes, "
		    "cache_ttl_ms) "
		    "VALUES ($1, $2, $3, $4) "
		    "ON CONFLICT (name) DO UPDATE "
		    "SET max_queue_wait_ms = EXCLUDED.max_queue_wait_ms, "
		    "routes = EXCLUDED.routes, "
		    "cache_ttl_ms = EXCLUDED.cache_ttl_ms "
		    "RETURNING (xmax = 0) AS inserted",
		    4, NULL, params, NULL, NULL, 0);
		free(routes);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			ctl_pgerr(ctl->conn, res,
			    "could not register role \"%s\"", params[0]);
			PQclear(res);
			return -1;
		}
		if (PQntuples(res) == 1 &&
		    strcmp(PQgetvalue(res, 0, 0), "t") == 0)
			printf("%s role %s\n",
			    dry_run ? "would register" : "registered",
			    params[0]);
		PQclear(res);
	}
	return 0;
}

static int
migrate_run(struct ctl *ctl, int dry_run)
{
	const struct migration *m;
	const char *params[2];
	PGresult *res, *applied;
	char version[16];
	int i, n, done, napplied = 0, current = 0, known = 0;

	if (ctl_exec(ctl->conn, "BEGIN", "could not begin") == -1)
		return -1;
	if (ctl_exec(ctl->conn,
	        "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ")",
	        "could not take the migration lock") == -1)
		return -1;
	if (ctl_exec(ctl->conn, "CREATE SCHEMA IF NOT EXISTS llmq",
	        "could not create schema llmq") == -1)
		return -1;
	if (ctl_exec(ctl->conn,
	        "CREATE TABLE IF NOT EXISTS llmq.schema_version ("
	        "version integer PRIMARY KEY, "
	        "name text NOT NULL, "
	        "applied_at timestamptz NOT NULL DEFAULT now())",
	        "could not create llmq.schema_version") == -1)
		return -1;

	applied = PQexec(ctl->conn,
	    "SELECT version FROM llmq.schema_version ORDER BY version");
	if (PQresultStatus(applied) != PGRES_TUPLES_OK) {
		ctl_pgerr(ctl->conn, applied,
		    "could not read "
		    "llmq.schema_version");
		PQclear(applied);
		return -1;
	}
	n = PQntuples(applied);
	for (i = 0; i < n; i++) {
		int v = atoi(PQgetvalue(applied, i, 0));

		if (v > current)
			current = v;
	}

	for (m = migrations; m->version != 0; m++) {
		if (m->version > known)
			known = m->version;
		for (done = 0, i = 0; i < n && !done; i++)
			done = atoi(PQgetvalue(applied, i, 0)) == m->version;
		if (done)
			continue;

		res = PQexec(ctl->conn, m->sql);
		if (PQresultStatus(res) != PGRES_COMMAND_OK &&
		    PQresultStatus(res) != PGRES_TUPLES_OK) {
			migration_error(ctl->conn, res, m);
			PQclear(res);
			PQclear(applied);
			return -1;
		}
		PQclear(res);

		snprintf(version, sizeof(version), "%d", m->version);
		params[0] = version;
		params[1] = m->name;
		res = PQexecParams(ctl->conn,
		    "INSERT INTO llmq.schema_version (version, name) "
		    "VALUES ($1, $2)",
		    2, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			ctl_pgerr(ctl->conn, res,
			    "could not record migration %s", m->name);
			PQclear(res);
			PQclear(applied);
			return -1;
		}
		PQclear(res);
		printf("%s %s\n", dry_run ? "would apply" : "applied", m->name);
		napplied++;
		if (m->version > current)
			current = m->version;
	}
	PQclear(applied);

	if (current > known)
		ctl_errx("warning: the database is at schema version %d, "
		         "newer than this llmqctl knows (%d)",
		    current, known);
	if (ctl->cfg != NULL && migrate_roles(ctl, dry_run) == -1)
		return -1;

	if (dry_run) {
		ctl_rollback(ctl->conn);
		if (napplied == 0)
			printf("schema is up to date at version %d\n", current);
		return 0;
	}
	if (ctl_exec(ctl->conn, "COMMIT", "could not commit") == -1)
		return -1;
	if (napplied == 0)
		printf("schema is up to date at version %d\n", current);
	return 0;
}

int
ctl_migrate(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, dry_run = 0, rc;

	ctl_getopt_init(ctl, argv);
	while ((ch = getopt_long(argc, argv, "+nh", opts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			dry_run = 1;
			break;
		default: /* -h, or an option getopt refused */
			return ctl_help(ctl, ch);
		}
	}
	if ((rc = ctl_no_args(ctl, argc, argv)) != 0)
		return rc;

	if (ctl_connect(ctl, 1) == -1)
		return 1;
	if (migrate_run(ctl, dry_run) == -1) {
		ctl_rollback(ctl->conn);
		return 1;
	}
	return 0;
}

/*
 * "llmqctl check": what llmqd -t checks of the configuration (secrets
 * included: the key files' modes), the user it names, and, unless
 * --no-db, that the database answers, that every migration this
 * llmqctl carries is applied and that the configured roles are
 * registered.  One line per check on stdout; exit 1 if any failed.
 */
int
ctl_check(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "no-db", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct migration *m;
	const char *path =
	    ctl->cfgpath != NULL ? ctl->cfgpath : CTL_DEFAULT_CONFIG;
	const char *params[1];
	struct cfg *cfg;
	PGresult *res;
	char err[1024], v[16];
	int ch, nodb = 0, rc, bad = 0, total = 0, missing = 0;
	size_t i;

	ctl_getopt_init(ctl, argv);
	while ((ch = getopt_long(argc, argv, "+nh", opts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			nodb = 1;
			break;
		default: /* -h, or an option getopt refused */
			return ctl_help(ctl, ch);
		}
	}
	if ((rc = ctl_no_args(ctl, argc, argv)) != 0)
		return rc;

	/* All of it, secrets too, as llmqd reads it. */
	if ((cfg = cfg_load(path, err, sizeof(err))) == NULL) {
		printf("configuration %s: failed\n", path);
		ctl_errx("%s", err);
		return 1;
	}
	printf("configuration %s: ok (%zu provider%s, %zu model%s, %zu "
	       "role%s)\n",
	    path, cfg->nproviders, cfg->nproviders == 1 ? "" : "s",
	    cfg->nmodels, cfg->nmodels == 1 ? "" : "s", cfg->nroles,
	    cfg->nroles == 1 ? "" : "s");
	if (cfg->user != NULL) {
		if (getpwnam(cfg->user) == NULL) {
			printf("user %s: unknown\n", cfg->user);
			bad = 1;
		} else
			printf("user %s: ok\n", cfg->user);
	}
	if (nodb) {
		cfg_free(cfg);
		return bad;
	}
	/* The database of -d, else of this file. */
	if (ctl->conninfo == NULL)
		ctl->conninfo = cfg->database;
	ctl->cfgpath = NULL;
	if (ctl_connect(ctl, 0) == -1) {
		printf("database: failed\n");
		ctl->conninfo = NULL;
		cfg_free(cfg);
		return 1;
	}
	printf("database: ok (PostgreSQL %d.%d)\n",
	    PQserverVersion(ctl->conn) / 10000,
	    PQserverVersion(ctl->conn) % 10000);
	for (m = migrations; m->version != 0; m++)
		total++;
	res = PQexec(ctl->conn,
	    "SELECT version FROM llmq.schema_version ORDER BY version");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		printf("schema: not migrated (run llmqctl migrate)\n");
		PQclear(res);
		bad = 1;
		goto out;
	}
	for (m = migrations; m->version != 0; m++) {
		snprintf(v, sizeof(v), "%d", m->version);
		for (i = 0; i < (size_t)PQntuples(res); i++)
			if (strcmp(PQgetvalue(res, (int)i, 0), v) == 0)
				break;
		if (i == (size_t)PQntuples(res))
			missing++;
	}
	PQclear(res);
	if (missing > 0) {
		printf("schema: %d of %d migrations to apply (run llmqctl "
		       "migrate)\n",
		    missing, total);
		bad = 1;
	} else
		printf("schema: up to date (%d migrations)\n", total);
	for (i = 0; i < cfg->nroles; i++) {
		params[0] = cfg->roles[i].name;
		res = PQexecParams(ctl->conn,
		    "SELECT 1 FROM llmq.roles WHERE name = $1", 1, NULL,
		    params, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK &&
		    PQntuples(res) == 1)
			printf("role %s: registered\n", params[0]);
		else {
			printf("role %s: not registered (run llmqctl -c %s "
			       "migrate, or start llmqd)\n",
			    params[0], path);
			bad = 1;
		}
		PQclear(res);
	}
out:
	/* main() closes the connection; the conninfo was the file's. */
	if (ctl->conninfo == cfg->database)
		ctl->conninfo = NULL;
	cfg_free(cfg);
	return bad;
}
