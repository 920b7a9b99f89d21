/*
 * worker.c: a worker process, serving the requests of one role.
 *
 * One thread, one loop: curl_multi_wait() polls the sockets of every LLM
 * call in flight together with the PostgreSQL socket (for NOTIFY), the
 * self-pipe of our signal handlers and the pipe from the master, whose
 * EOF tells us the master is gone.  Each turn of the loop:
 *
 *   1. drives the transfers and collects every call that ended;
 *   2. writes all their results in one fenced UPDATE (db_finish);
 *   3. if woken by NOTIFY, by the poll timer or by another process that
 *      gave back a slot, takes free slots in shared memory (shm.c) and
 *      claims at most that many due rows (and at most batch_size), then
 *      gives back the slots it could not fill, and starts the calls.
 *
 * A role may send its rows to several models (by complexity), each with
 * its own limits; the worker claims for each model separately, with a
 * filter that takes exactly the rows routed to it, so that a full model
 * holds back only its own rows.  Every call holds one slot in each scope
 * that applies (global, role, model, provider) from before its claim
 * until its transfer ends; requests wait in the database, not here.  Results
 * that could not be written (the database went away) stay in memory and are
 * written after reconnecting; the fence makes a late write harmless.  On
 * SIGTERM the worker stops claiming and lets its calls finish for
 * shutdown_timeout, then hands back what is left; on SIGQUIT, or when the
 * master dies, it hands back at once.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json.h>

#include "cfg.h"
#include "db.h"
#include "log.h"
#include "proctitle.h"
#include "backoff.h"
#include "provider.h"
#include "shm.h"
#include "structured.h"
#include "util.h"
#include "worker.h"

#define FLUSH_RETRY_MS 500 /* after a lock or statement timeout */

volatile sig_atomic_t child_term, child_quit, child_usr1, child_usr2;
static int wake_pipe[2] = { -1, -1 };

static void
child_handler(int sig)
{
	int saved = errno;

	switch (sig) {
	case SIGTERM:
		child_term = 1;
		break;
	case SIGQUIT:
		child_quit = 1;
		break;
	case SIGUSR1:
		child_usr1 = 1;
		break;
	case SIGUSR2:
		child_usr2 = 1;
		break;
	}
	if (write(wake_pipe[1], "", 1) == -1)
		errno = saved; /* pipe full: a wake-up is pending anyway */
	errno = saved;
}

int
child_signals(void)
{
	struct sigaction sa;
	sigset_t set;

	if (pipe(wake_pipe) == -1) {
		log_warn("pipe() failed");
		return -1;
	}
	fd_nonblock(wake_pipe[0]);
	fd_nonblock(wake_pipe[1]);
	fd_cloexec(wake_pipe[0]);
	fd_cloexec(wake_pipe[1]);

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = child_handler;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL); /* a slot was given back (shm.c) */
	/* The master coordinates these; a terminal's ^C reaches it too. */
	sa.sa_handler = SIG_IGN;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);

	sigemptyset(&set);
	sigprocmask(SIG_SETMASK, &set, NULL);
	return 0;
}

int
child_wake_fd(void)
{
	return wake_pipe[0];
}

static void
drain(int fd)
{
	char buf[64];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

/* Where make_groups() puts the provider's scope in a need. */
#define NEED_PROVIDER 2

/* The rows of the role that go to one model, and the slots they need. */
struct group {
	int model;   /* index into cfg->models */
	int backlog; /* rows may be waiting: NOTIFY, or the last claim full */
	struct shm_need need;
	struct db_group db;
};

struct worker {
	const struct cfg *cfg;
	const struct cfg_role *role;
	int cap; /* most calls at once: the role's concurrency */
	struct group *groups;
	int ngroups;
	int next_group; /* the first to claim for, in turn */
	char me[300];   /* "host:pid", our mark on rows */
	int parent_fd;

	PGconn *pg;
	int64_t pg_retry_at; /* monotonic ms */
	int64_t pg_backoff;  /* ms */

	CURLM *multi;
	struct call *running; /* calls in flight */
	int inflight;
	struct call *done;    /* ended, result not yet written */
	struct call *aborted; /* stopped unfinished: to hand back */
	int ndone;

	int want_claim;        /* NOTIFY seen, or more may be due */
	int64_t next_poll;     /* monotonic ms */
	int64_t next_renew;    /* monotonic ms */
	int stopping;          /* 1 graceful, 2 at once */
	int64_t stop_deadline; /* monotonic ms */
	int64_t flush_at;      /* monotonic ms: no write-back before */
};

static void
pg_drop(struct worker *w)
{
	/* No claims until we are back: hold no place in line meanwhile. */
	shm_unwant_all();
	if (w->pg != NULL) {
		PQfinish(w->pg);
		w->pg = NULL;
		log_warnx("lost the database connection; reconnecting");
	}
	if (w->pg_backoff == 0)
		w->pg_backoff = 100;
	w->pg_retry_at = mono_ms() + w->pg_backoff;
	w->pg_backoff = w->pg_backoff * 2 > 5000 ? 5000 : w->pg_backoff * 2;
}

static int
register_role(struct worker *w)
{
	char *routes;
	int rc;

	routes = cfg_role_routes(w->cfg, w->role);
	rc = db_register_role(w->pg, w->role->name, w->role->max_queue_wait_ms,
	    routes, w->role->cache_ttl_ms);
	free(routes);
	return rc;
}

/*
 * (Re)connect, LISTEN, register the role and hand back the rows of a
 * predecessor that died, then claim at once: whatever arrived while we
 * were away is found by that first claim, not by a NOTIFY we missed.
 */
static int
pg_up(struct worker *w)
{
	char *app;

	if (w->pg != NULL)
		return 0;
	if (mono_ms() < w->pg_retry_at)
		return -1;
	app = xasprintf("llmqd %s worker", w->role->name);
	w->pg = db_connect(w->cfg->database, app);
	free(app);
	if (w->pg == NULL) {
		pg_drop(w);
		return -1;
	}
	if (db_listen(w->pg, w->role->name) == -1 ||
	    register_role(w) == -1 ||
	    db_rescue_dead(w->pg, w->role->name) == -1 ||
	    db_handback_orphans(w->pg, w->me, w->running, w->done) == -1) {
		PQfinish(w->pg);
		w->pg = NULL;
		pg_drop(w);
		return -1;
	}
	w->pg_backoff = 0;
	/* A look at once, one row per model: a full one brings the rest. */
	w->want_claim = 1;
	log_info("connected to the database; listening on \"llmq_req_%s\"",
	    w->role->name);
	return 0;
}

/*
 * The model for a claimed row, or -1 with why set.  A row may name one of
 * the role's models, or one it allows; a row sent back to try the
 * fallback of its model names that fallback.
 */
static int
route(const struct worker *w, const struct claimed *r, const char **why)
{
	const struct cfg_role *ro = w->role;
	int all[CFG_ROLE_MODELS_MAX], cx, m, i, n;
	size_t a;

	if (r->model != NULL) {
		m = cfg_model_find(w->cfg, r->model);
		if (m != -1) {
			if (m == ro->model)
				return m;
			for (i = 0; i < CX_COUNT; i++)
				if (ro->by_complexity[i] == m)
					return m;
			for (a = 0; a < ro->nallow; a++)
				if (ro->allow_models[a] == m)
					return m;
			n = cfg_role_models(
			    w->cfg, ro, all, CFG_ROLE_MODELS_MAX);
			for (i = 0; r->fallback_used && i < n; i++)
				if (all[i] == m)
					return m;
		}
		/*
		 * Sent to a fallback that a reload has since removed: serve
		 * it as the role would have without a model named.
		 */
		if (!r->fallback_used) {
			*why = "model not served by this role";
			return -1;
		}
	}
	if (r->complexity != NULL &&
	    (cx = cfg_complexity_parse(r->complexity)) != -1 &&
	    ro->by_complexity[cx] != -1)
		return ro->by_complexity[cx];
	if ((m = cfg_role_default_model(ro)) != -1)
		return m;
	*why = "role has no model";
	return -1;
}

/* Queue a result for a row that could not be called at all. */
static void
fail_now(struct worker *w, const struct claimed *r, const char *kind,
    const char *msg)
{
	struct call *c;

	c = provider_call_failed(r->id, r->attempt, kind, msg);
	c->next = w->done;
	w->done = c;
	w->ndone++;
}

/*
 * Start the call of a claimed row.  A row that cannot be called (no
 * model for it, unusable messages) is failed through the same batch as
 * finished calls, so that no database error here can strand a claimed
 * row.
 */
static void
start_call(struct worker *w, const struct claimed *r, int g)
{
	const char *why = NULL;
	char err[256], *msg;
	struct call *c;
	int64_t timeout;
	int m;
	CURLMcode mc;

	if ((m = route(w, r, &why)) == -1) {
		msg = xasprintf(
		    "%s: \"%s\"", why, r->model != NULL ? r->model : "");
		fail_now(w, r, "bad_request", msg);
		free(msg);
		shm_release(&w->groups[g].need, 1, 0);
		return;
	}
	timeout = r->timeout_ms > 0 ?
	    r->timeout_ms :
	    w->role->timeout_ms > 0 ?
	    w->role->timeout_ms :
	    w->cfg->providers[w->cfg->models[m].provider].timeout_ms;
	c = provider_call_new(w->cfg, m, r->id, r->attempt, r->messages,
	    r->options, w->role->stream, timeout, err, sizeof(err));
	if (c == NULL || structured_usable(c, err, sizeof(err)) == -1) {
		provider_call_free(c);
		fail_now(w, r, "bad_request", err);
		shm_release(&w->groups[g].need, 1, 0);
		return;
	}
	if ((mc = curl_multi_add_handle(w->multi, c->easy)) != CURLM_OK) {
		provider_call_fail(c, "internal", "curl_multi_add_handle: %s",
		    curl_multi_strerror(mc));
		c->next = w->done;
		w->done = c;
		w->ndone++;
		shm_release(&w->groups[g].need, 1, 0);
		return;
	}
	c->group = g;
	c->short_timeout =
	    timeout < w->cfg->providers[w->cfg->models[m].provider].timeout_ms;
	c->max_attempts = r->max_attempts;
	c->fallback_used = r->fallback_used;
	c->next = w->running;
	w->running = c;
	w->inflight++;
	log_debug("request %lld attempt %d: calling %s on \"%s\"",
	    (long long)r->id, r->attempt, c->model_name, c->prov->name);
}

/*
 * For each model of the role in turn: take as many slots as can be used
 * now, claim at most that many rows, give back the rest.  A model whose
 * slots are all taken costs no round trip to the database.
 */
static void
claim(struct worker *w)
{
	struct claimed *rows;
	struct group *g;
	int i, j, want, got, n, full = 0;

	w->next_poll = mono_ms() + w->cfg->poll_interval_ms;
	w->want_claim = 0;
	for (j = 0; j < w->ngroups && w->pg != NULL; j++) {
		g = &w->groups[(w->next_group + j) % w->ngroups];
		want = w->cap - w->inflight;
		if (want > w->cfg->batch_size)
			want = w->cfg->batch_size;
		if (want <= 0) {
			/* Our own calls end first: collect() wakes us. */
			shm_unwant_all();
			break;
		}
		/* A provider cooling down: its rows wait in the queue. */
		if (shm_provider_cooling(g->need.idx[NEED_PROVIDER]) > 0) {
			shm_unwant(g - w->groups);
			continue;
		}
		/*
		 * Nothing known to wait: look for one row, holding one slot
		 * for the look rather than every free one.  If it is there,
		 * the claim was full and the next one comes at once.
		 */
		if (!g->backlog)
			want = 1;
		/*
		 * Stand in line for slots (and be woken when one frees) only
		 * with rows known to be waiting: a look on the poll timer must
		 * not hold slots back from others.
		 */
		if ((got = shm_acquire(
		         &g->need, want, g->backlog, g - w->groups)) == 0)
			continue;
		n = db_claim(w->pg, w->role->name, w->me, got, w->cfg->lease_ms,
		    w->role->max_attempts, &g->db, &rows);
		if (n == -1) {
			shm_release(&g->need, got, 1);
			shm_unwant_all();
			if (db_lost(w->pg))
				pg_drop(w);
			return;
		}
		shm_release(&g->need, got - n, 1);
		log_debug("claimed %d row%s for \"%s\" (slots: %d of %d)", n,
		    n == 1 ? "" : "s", g->db.model, got, want);
		/*
		 * Every slot filled: more rows may be due (if slots ran short,
		 * shm_acquire() has put us in line for more).  Fewer rows
		 * than slots: this model's queue is empty for now.
		 */
		g->backlog = n == got;
		if (n == got && got == want)
			full = 1;
		else if (n < got)
			shm_unwant(g - w->groups);
		for (i = 0; i < n; i++)
			start_call(w, &rows[i], g - w->groups);
		db_claimed_free(rows, n);
	}
	w->next_group = (w->next_group + 1) % w->ngroups;
	/* A full batch: look again as soon as a slot is free here. */
	w->want_claim = full;
}

/*
 * A failed call: try again later, or fail the request.  Only a transient
 * failure (the provider says so, see provider.c) is retried, while the
 * request has attempts left; the row goes back to pending, due after the
 * backoff (backoff.c).
 */
static void
decide(struct worker *w, struct call *c)
{
	const struct cfg_model *cm = &w->cfg->models[c->model];
	int k = cfg_err_kind(c->error_kind);
	char *m;

	if (c->attempt >= c->max_attempts)
		; /* final */
	else if (!c->fallback_used && cm->fallback != -1 && k != -1 &&
	    (cm->fallback_on & (1U << k))) {
		/* One hop, at once: the row comes back for the fallback. */
		c->requeue = 1;
		c->requeue_ms = 0;
		c->fallback = w->cfg->models[cm->fallback].name;
	} else if (c->retry) {
		c->requeue = 1;
		c->requeue_ms = backoff_delay(c->attempt,
		    w->role->backoff_base_ms, w->role->backoff_cap_ms,
		    c->retry_after_ms, (uint32_t)random());
	}
	m = str_escape(c->error_message, strlen(c->error_message), 200);
	if (c->fallback != NULL)
		log_info("request %lld attempt %d of %d failed: %s: %s; "
		         "falling back to \"%s\"",
		    (long long)c->id, c->attempt, c->max_attempts,
		    c->error_kind, m, c->fallback);
	else if (c->requeue)
		log_info("request %lld attempt %d of %d failed: %s: %s; "
		         "retrying in %lld ms",
		    (long long)c->id, c->attempt, c->max_attempts,
		    c->error_kind, m, (long long)c->requeue_ms);
	else
		log_info("request %lld attempt %d of %d failed: %s: %s",
		    (long long)c->id, c->attempt, c->max_attempts,
		    c->error_kind, m);
	free(m);
}

/*
 * Count the call for its provider's cool-down: transient failures in a
 * row cool it down for every process (shm.c); anything else is an answer
 * that shows the provider alive.
 */
static void
provider_health(struct worker *w, const struct call *c)
{
	const struct cfg_provider *p = c->prov;
	int s = w->groups[c->group].need.idx[NEED_PROVIDER], ok;

	/*
	 * A timeout that the request or its role made shorter than the
	 * provider's says nothing about the provider: a caller must not be
	 * able to cool it down for everyone.
	 */
	ok = c->ok || !c->retry;
	if (!ok && c->short_timeout && strcmp(c->error_kind, "timeout") == 0)
		return;
	if (shm_provider_outcome(s, ok, c->started_us, p->cool_failures,
	        p->cool_window_ms, p->cool_ms))
		log_warnx("provider \"%s\" cooled down for %lld ms after %d "
		          "failures in a row; its requests wait",
		    p->name, (long long)p->cool_ms, p->cool_failures);
}

/* The re-asks a call's request may make: its option, else the role's. */
static int
max_reasks(const struct worker *w, const struct call *c)
{
	json_object *o, *v;
	int n = w->role->max_reasks;

	if (c->options == NULL || strstr(c->options, "\"max_reasks\"") == NULL)
		return n;
	/* 2 or 2.0 (jsonb keeps what was written); 0..10 as at insert. */
	if ((o = json_tokener_parse(c->options)) != NULL &&
	    json_object_object_get_ex(o, "max_reasks", &v) &&
	    (json_object_is_type(v, json_type_int) ||
	        json_object_is_type(v, json_type_double)))
		n = (int)json_object_get_double(v);
	json_object_put(o);
	return n < 0 ? 0 : n > 10 ? 10 : n;
}

/*
 * A reply that failed its check (parse_error, validation_error): ask
 * again in the same attempt and slot, with the conversation, the reply
 * and what was wrong with it.  Returns 0 when the next round is under
 * way (c is then a round, to be recorded only), -1 when c stands.
 */
static int
reask(struct worker *w, struct call *c)
{
	struct call *n;
	char err[256], *msgs;
	int max = max_reasks(w, c);

	/* A graceful stop lets calls end: this round too. */
	if (w->stopping == 2 || c->round >= max ||
	    (msgs = structured_reask(c)) == NULL)
		return -1;
	n = provider_call_new(w->cfg, c->model, c->id, c->attempt, msgs,
	    c->options, c->stream, c->timeout_ms, err, sizeof(err));
	free(msgs);
	if (n == NULL)
		return -1;
	if (curl_multi_add_handle(w->multi, n->easy) != CURLM_OK) {
		provider_call_free(n);
		return -1;
	}
	n->group = c->group;
	c->group = -1;
	n->round = c->round + 1;
	n->expect_tools = c->tool_calls != NULL || c->expect_tools;
	n->max_attempts = c->max_attempts;
	n->fallback_used = c->fallback_used;
	n->short_timeout = c->short_timeout;
	n->prior_prompt =
	    c->prior_prompt + (c->prompt_tokens > 0 ? c->prompt_tokens : 0);
	n->prior_completion = c->prior_completion +
	    (c->completion_tokens > 0 ? c->completion_tokens : 0);
	n->prior_estimated = c->prior_estimated || c->tokens_estimated;
	c->round_only = 1;
	n->next = w->running;
	w->running = n;
	w->inflight++;
	log_info("request %lld attempt %d: %s; asking again (%d of %d)",
	    (long long)c->id, c->attempt, c->error_message, n->round, max);
	return 0;
}

/* Move every transfer that ended to the done list. */
static void
collect(struct worker *w)
{
	struct call *c, **pp;
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(w->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		c = NULL;
		curl_easy_getinfo(
		    msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
		provider_call_done(c, msg->data.result);
		curl_multi_remove_handle(w->multi, c->easy);
		for (pp = &w->running; *pp != NULL; pp = &(*pp)->next)
			if (*pp == c) {
				*pp = c->next;
				break;
			}
		w->inflight--;
		if (c->group != -1)
			provider_health(w, c);
		/* A reply meant to be JSON that is not: ask again. */
		if (c->ok && structured_check(c) == -1 && reask(w, c) == 0) {
			c->next = w->done;
			w->done = c;
			w->ndone++;
			continue;
		}
		if (c->group != -1) {
			shm_release(&w->groups[c->group].need, 1, 0);
			c->group = -1;
			w->want_claim = 1;
		}
		if (!c->ok)
			decide(w, c);
		c->next = w->done;
		w->done = c;
		w->ndone++;
	}
}

static void
free_list(struct call *c)
{
	struct call *next;

	for (; c != NULL; c = next) {
		next = c->next;
		provider_call_free(c);
	}
}

/* Make list the done list. */
static void
keep(struct worker *w, struct call *list)
{
	struct call *c;

	w->done = list;
	w->ndone = 0;
	for (c = list; c != NULL; c = c->next)
		w->ndone++;
}

/*
 * Write the results of the done list, all in one statement.  When that
 * fails with the connection up, write them one by one, so that one row
 * cannot hold back the others: a row that is locked by someone else
 * (lock_timeout) is kept and tried again a little later; a result the
 * server will not store is failed as internal, and if even that fails it
 * is dropped and its row left to the lease.  When the connection is
 * gone, everything is kept and written after reconnecting.
 */
static void
flush(struct worker *w)
{
	struct call *c, *rest, *later = NULL;

	if (w->done == NULL || w->pg == NULL || mono_ms() < w->flush_at)
		return;
	if (db_finish(w->pg, w->me, w->done) != -1) {
		free_list(w->done);
		keep(w, NULL);
		return;
	}
	if (db_lost(w->pg)) {
		pg_drop(w);
		return;
	}
	rest = w->done;
	keep(w, NULL);
	while (rest != NULL) {
		c = rest;
		rest = c->next;
		c->next = NULL;
		if (db_finish(w->pg, w->me, c) != -1) {
			provider_call_free(c);
			continue;
		}
		if (db_lost(w->pg)) {
			c->next = rest;
			rest = c;
			break;
		}
		if (db_transient()) {
			c->next = later;
			later = c;
			continue;
		}
		/* A round's record only: its next round writes the result. */
		if (c->round_only) {
			log_warnx("request %lld: round %d not recorded",
			    (long long)c->id, c->round);
			provider_call_free(c);
			continue;
		}
		if (db_fail(w->pg, w->me, c->id, c->attempt, "internal",
		        "the result could not be stored") == -1)
			log_warnx("request %lld: result dropped; the row "
			          "returns to pending when its lease ends",
			    (long long)c->id);
		provider_call_free(c);
		if (db_lost(w->pg))
			break;
	}
	/* Kept: what was not tried (connection lost) and what was locked. */
	while (later != NULL) {
		c = later;
		later = c->next;
		c->next = rest;
		rest = c;
	}
	keep(w, rest);
	if (db_lost(w->pg))
		pg_drop(w);
	else if (rest != NULL)
		w->flush_at = mono_ms() + FLUSH_RETRY_MS;
}

/*
 * Streamed calls: text that arrived is published (db_progress) at once
 * when it is a call's first, so that a listener sees the first token
 * without delay, then at most every PROGRESS_MS, so that a fast model
 * costs a statement per interval rather than one per token.
 */
#define PROGRESS_MS 50

/* When the next piece is due, in monotonic ms; INT64_MAX: none waits. */
static int64_t
progress_due(const struct worker *w)
{
	const struct call *c;
	int64_t due = INT64_MAX, t;

	for (c = w->running; c != NULL; c = c->next) {
		if (!c->stream || c->st.textlen <= c->published)
			continue;
		/* Never tried: now; after a failure too, only later. */
		t = c->published_at == 0 ? 0 : c->published_at + PROGRESS_MS;
		if (t < due)
			due = t;
	}
	return due;
}

static void
publish(struct worker *w, int64_t now)
{
	if (w->pg == NULL || progress_due(w) > now)
		return;
	if (db_progress(w->pg, w->me, w->running, now) == -1 &&
	    db_lost(w->pg))
		pg_drop(w);
}

/* Abort every call in flight; their rows are handed back at exit. */
static void
abort_all(struct worker *w)
{
	struct call *c, *next;

	for (c = w->running; c != NULL; c = next) {
		next = c->next;
		curl_multi_remove_handle(w->multi, c->easy);
		if (c->group != -1) {
			shm_release(&w->groups[c->group].need, 1, 0);
			c->group = -1;
		}
		c->next = w->aborted;
		w->aborted = c;
	}
	w->running = NULL;
	w->inflight = 0;
}

/*
 * A request cancelled while we call for it (llmq.cancel()): stop the
 * call and free its slot.  Its row is cancelled already; the call goes
 * to the done list only to be recorded in llmq.attempts (the fenced
 * finish leaves the row alone).
 */
static void
cancel_call(struct worker *w, const char *payload)
{
	struct call *c, **pp;
	char *end;
	long long id;

	id = strtoll(payload, &end, 10);
	if (end == payload || *end != '\0')
		return;
	for (pp = &w->running; (c = *pp) != NULL; pp = &c->next)
		if (c->id == id)
			break;
	if (c == NULL)
		return;
	*pp = c->next;
	w->inflight--;
	curl_multi_remove_handle(w->multi, c->easy);
	if (c->group != -1) {
		shm_release(&w->groups[c->group].need, 1, 0);
		c->group = -1;
		w->want_claim = 1;
	}
	provider_call_fail(c, "cancelled", "cancelled while the call ran");
	c->next = w->done;
	w->done = c;
	w->ndone++;
	log_info("request %lld attempt %d: cancelled; call stopped", id,
	    c->attempt);
}

/*
 * The notifications libpq holds: those that came with the results of
 * our statements are parsed already, and wait for no socket event.
 */
static void
notifies(struct worker *w)
{
	PGnotify *n;
	int i;

	while ((n = PQnotifies(w->pg)) != NULL) {
		if (strcmp(n->relname, DB_CANCEL_CHANNEL) == 0) {
			cancel_call(w, n->extra);
			PQfreemem(n);
			continue;
		}
		w->want_claim = 1;
		for (i = 0; i < w->ngroups; i++)
			w->groups[i].backlog = 1;
		PQfreemem(n);
	}
}

static void
on_notify(struct worker *w)
{
	if (PQconsumeInput(w->pg) == 0) {
		pg_drop(w);
		return;
	}
	notifies(w);
}

static int
next_timeout(struct worker *w, int64_t now)
{
	int64_t t = 1000;
	long ct = -1;

	if (w->pg == NULL)
		t = w->pg_retry_at - now;
	else if (!w->stopping && w->inflight < w->cap)
		t = w->want_claim ? 0 : w->next_poll - now;
	if (w->inflight > 0 && w->next_renew - now < t)
		t = w->next_renew - now;
	if (w->stopping && w->stop_deadline - now < t)
		t = w->stop_deadline - now;
	if (w->done != NULL && w->pg != NULL && w->flush_at - now < t)
		t = w->flush_at - now;
	if (w->pg != NULL && progress_due(w) - now < t)
		t = progress_due(w) - now;
	curl_multi_timeout(w->multi, &ct);
	if (ct >= 0 && ct < t)
		t = ct;
	return t < 0 ? 0 : (int)t;
}

/* "{"a","b"}": a PostgreSQL array literal of strings. */
static char *
pg_array(const char *const *elems, int n)
{
	size_t len = 3, i;
	const char *e;
	char *buf, *p;
	int k;

	for (k = 0; k < n; k++)
		len += 2 * strlen(elems[k]) + 3;
	buf = p = xmalloc(len);
	*p++ = '{';
	for (k = 0; k < n; k++) {
		if (k > 0)
			*p++ = ',';
		*p++ = '"';
		for (e = elems[k], i = 0; e[i] != '\0'; i++) {
			if (e[i] == '"' || e[i] == '\\')
				*p++ = '\\';
			*p++ = e[i];
		}
		*p++ = '"';
	}
	*p++ = '}';
	*p = '\0';
	return buf;
}

/*
 * One group per model the role sends rows to.  A group other than the
 * default one takes the rows naming its model, and the rows naming none
 * whose complexity the role maps to it; the default model (see route())
 * takes every row no other group takes, so that a row naming a model the
 * role does not serve is still claimed, and failed.
 */
static void
make_groups(struct worker *w, const struct shm_map *map)
{
	const struct cfg_role *ro = w->role;
	const struct cfg *cfg = w->cfg;
	const char *names[CFG_ROLE_MODELS_MAX], *cxs[CX_COUNT], *gcx[CX_COUNT];
	int all[CFG_ROLE_MODELS_MAX], def, cx, i, nall, nm = 0, ncx = 0, ng, m;
	struct group *g;

	def = cfg_role_default_model(ro);
	nall = cfg_role_models(cfg, ro, all, CFG_ROLE_MODELS_MAX);
	w->groups = xcalloc(nall, sizeof(*w->groups));
	/* The others first, then the default with their complement. */
	for (i = 0; i < nall; i++) {
		if ((m = all[i]) == def)
			continue;
		g = &w->groups[w->ngroups++];
		g->model = m;
		for (ng = 0, cx = 0; ro->model == -1 && cx < CX_COUNT; cx++)
			if (ro->by_complexity[cx] == m)
				gcx[ng++] =
				    cfg_complexity_name((enum complexity)cx);
		names[nm++] = cfg->models[m].name;
		memcpy(cxs + ncx, gcx, ng * sizeof(*gcx));
		ncx += ng;
		g->db.models = pg_array(names + nm - 1, 1);
		g->db.cx = pg_array(gcx, ng);
	}
	g = &w->groups[w->ngroups++];
	g->model = def;
	g->db.models = pg_array(names, nm);
	g->db.cx = pg_array(cxs, ncx);
	g->db.negate = 1;

	for (i = 0; i < w->ngroups; i++) {
		g = &w->groups[i];
		m = g->model;
		g->db.model = cfg->models[m].name;
		g->db.cap = cfg->models[m].cluster_concurrency;
		g->need.n = 0;
		g->need.idx[g->need.n++] = map->roles[ro - cfg->roles];
		g->need.idx[g->need.n++] = map->models[m];
		g->need.idx[g->need.n++] =
		    map->providers[cfg->models[m].provider];
		g->need.idx[g->need.n++] = map->global;
	}
}

static void
free_groups(struct worker *w)
{
	int i;

	for (i = 0; i < w->ngroups; i++) {
		free(w->groups[i].db.models);
		free(w->groups[i].db.cx);
	}
	free(w->groups);
}

int
worker_main(
    const struct cfg *cfg, int role, const struct shm_map *map, int parent_fd)
{
	struct worker w;
	struct curl_waitfd fds[3];
	int nfds, running, pgfd, left;
	int64_t now;

	memset(&w, 0, sizeof(w));
	w.cfg = cfg;
	w.role = &cfg->roles[role];
	w.cap = w.role->concurrency;
	make_groups(&w, map);
	w.parent_fd = parent_fd;
	snprintf(w.me, sizeof(w.me), "%s:%d", host_name(), (int)getpid());
	log_set_role(w.role->name);
	srandom((unsigned)getpid() ^ (unsigned)mono_us());
	proctitle_set("llmqd: %s worker", w.role->name);

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatalx("curl_global_init() failed");
	if ((w.multi = curl_multi_init()) == NULL)
		fatalx("curl_multi_init() failed");
	curl_multi_setopt(w.multi, CURLMOPT_MAXCONNECTS, (long)w.cap * 2);
	log_info("worker started: at most %d call%s at once, %d model%s", w.cap,
	    w.cap == 1 ? "" : "s", w.ngroups, w.ngroups == 1 ? "" : "s");

	for (;;) {
		now = mono_ms();
		if (w.pg == NULL)
			pg_up(&w);

		if (child_quit && w.stopping < 2) {
			w.stopping = 2;
			log_info("fast stop: handing back %d request%s",
			    w.inflight, w.inflight == 1 ? "" : "s");
		} else if (child_term && !w.stopping) {
			w.stopping = 1;
			w.stop_deadline = now + cfg->shutdown_timeout_ms;
			log_info("stopping: waiting for %d request%s",
			    w.inflight, w.inflight == 1 ? "" : "s");
		}
		if (child_usr1) {
			child_usr1 = 0;
			if (log_reopen() == -1)
				log_warn("could not reopen the log");
		}
		if (child_usr2) {
			child_usr2 = 0;
			w.want_claim = 1;
		}
		if (w.stopping)
			shm_unwant_all();
		if (w.stopping == 1 && now >= w.stop_deadline &&
		    w.inflight > 0) {
			log_warnx("shutdown_timeout reached: handing back %d "
			          "request%s",
			    w.inflight, w.inflight == 1 ? "" : "s");
			w.stopping = 2;
		}
		if (w.stopping == 2)
			abort_all(&w);
		if (w.stopping && w.inflight == 0) {
			w.flush_at = 0;
			flush(&w);
			break;
		}

		if (w.pg != NULL) {
			flush(&w);
			if (w.pg != NULL && !w.stopping && w.inflight < w.cap &&
			    (w.want_claim || now >= w.next_poll))
				claim(&w);
		}
		if (w.pg != NULL && w.inflight > 0 && now >= w.next_renew) {
			if (db_renew(w.pg, w.me, cfg->lease_ms, w.running) ==
			        -1 &&
			    db_lost(w.pg))
				pg_drop(&w);
			w.next_renew = now + cfg->lease_ms / 3;
		} else if (w.inflight == 0)
			w.next_renew = now + cfg->lease_ms / 3;

		nfds = 0;
		fds[nfds].fd = child_wake_fd();
		fds[nfds].events = CURL_WAIT_POLLIN;
		fds[nfds++].revents = 0;
		fds[nfds].fd = parent_fd;
		fds[nfds].events = CURL_WAIT_POLLIN;
		fds[nfds++].revents = 0;
		pgfd = w.pg != NULL ? PQsocket(w.pg) : -1;
		if (pgfd != -1) {
			fds[nfds].fd = pgfd;
			fds[nfds].events = CURL_WAIT_POLLIN;
			fds[nfds++].revents = 0;
		}
		if (curl_multi_wait(w.multi, fds, nfds,
		        next_timeout(&w, mono_ms()), NULL) != CURLM_OK)
			fatalx("curl_multi_wait() failed");
		if (fds[0].revents)
			drain(fds[0].fd);
		if (fds[1].revents && w.stopping < 2) {
			log_warnx("master process is gone; handing back and "
			          "exiting");
			child_quit = 1;
		}
		if (pgfd != -1 && fds[2].revents && w.pg != NULL)
			on_notify(&w);

		curl_multi_perform(w.multi, &running);
		collect(&w);
		publish(&w, mono_ms());
		if (w.pg != NULL)
			notifies(&w);
	}

	if (w.pg != NULL) {
		w.flush_at = 0;
		flush(&w);
		if (w.pg != NULL && w.aborted != NULL &&
		    (left = db_handback(w.pg, w.me, w.aborted)) > 0)
			log_info("handed back %d request%s", left,
			    left == 1 ? "" : "s");
		PQfinish(w.pg);
	}
	free_list(w.aborted);
	if (w.done != NULL)
		log_warnx("%d result%s could not be written; their rows "
		          "return to pending when the lease ends",
		    w.ndone, w.ndone == 1 ? "" : "s");
	free_list(w.done);
	curl_multi_cleanup(w.multi);
	curl_global_cleanup();
	free_groups(&w);
	log_info("worker exiting");
	return 0;
}
