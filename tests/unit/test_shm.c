/*
 * test_shm.c: unit tests for shm.c, the concurrency slots shared by the
 * llmqd processes.
 *
 * One process plays the master and, by setting shm_self to one record
 * or another, every child: the region is the real file, created in a
 * temporary directory.  The records carry the pids of a few helper
 * processes ("sleepers") that count the SIGUSR2 wake-ups they receive
 * and report each as a byte on a pipe; a round trip on the same pipe
 * (sync_sleepers()) makes sure every signal sent before it has been
 * counted, so that "woken once" and "not woken" are exact.  Covered:
 * shm_path, shm_configure (limits, map, reload: keep by name, retire,
 * reuse, a full table, a busy lock), the records (reserve, start,
 * unreserve), all-or-nothing acquisition across scopes, held counts,
 * FIFO queueing on the narrowest full scope with one place in line per
 * need and its own tickets, what is owed (to other places of the same
 * child too, at most a limit per place, nothing to a waiter woken long
 * ago), wake-ups (on a release, and when a place is given up or moves),
 * the master's clean-up after a death (shm_proc_dead: the pid and a lock
 * it held; shm_proc_free: its slots, a half-done update, a busy lock), a
 * child taking the lock over from a holder that no longer exists, and
 * shm_attach.  Output is TAP, as test_cfg.c.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "cfg.h"
#include "log.h"
#include "shm.h"
#include "util.h"

#include "tap.h"

/*
 * global 6; roles a (2), b (5), c (4, on the model "heavy" limited to 1),
 * d (4, on "remote", whose provider "cloud" is limited to 3) and e (two
 * models); "light" and "local" have no limit of their own.
 */
static const char cfg1_text[] =
    "database: db\n"
    "limits:\n"
    "  global: 6\n"
    "providers:\n"
    "  local: { kind: ollama, url: \"http://h:1\" }\n"
    "  cloud: { kind: ollama, url: \"http://h:2\", concurrency: 3 }\n"
    "models:\n"
    "  light: { provider: local }\n"
    "  heavy: { provider: local, concurrency: 1 }\n"
    "  remote: { provider: cloud }\n"
    "roles:\n"
    "  a: { model: light, concurrency: 2 }\n"
    "  b: { model: light, concurrency: 5 }\n"
    "  c: { model: heavy, concurrency: 4 }\n"
    "  d: { model: remote, concurrency: 4 }\n"
    "  e:\n"
    "    concurrency: 4\n"
    "    model: { simple: heavy, complex: light }\n";

/* The reload: global 8, role a 3, "heavy" renamed, role e gone. */
static const char cfg2_text[] =
    "database: db\n"
    "limits:\n"
    "  global: 8\n"
    "providers:\n"
    "  local: { kind: ollama, url: \"http://h:1\" }\n"
    "  cloud: { kind: ollama, url: \"http://h:2\", concurrency: 3 }\n"
    "models:\n"
    "  light: { provider: local }\n"
    "  heavy2: { provider: local, concurrency: 1 }\n"
    "  remote: { provider: cloud }\n"
    "roles:\n"
    "  a: { model: light, concurrency: 3 }\n"
    "  b: { model: light, concurrency: 5 }\n"
    "  c: { model: heavy2, concurrency: 4 }\n"
    "  d: { model: remote, concurrency: 4 }\n";

/* The same plus one model, to take an entry that became free. */
static const char cfg3_text[] =
    "database: db\n"
    "limits:\n"
    "  global: 8\n"
    "providers:\n"
    "  local: { kind: ollama, url: \"http://h:1\" }\n"
    "  cloud: { kind: ollama, url: \"http://h:2\", concurrency: 3 }\n"
    "models:\n"
    "  light: { provider: local }\n"
    "  heavy2: { provider: local, concurrency: 1 }\n"
    "  remote: { provider: cloud }\n"
    "  extra: { provider: local, concurrency: 2 }\n"
    "roles:\n"
    "  a: { model: light, concurrency: 3 }\n"
    "  b: { model: light, concurrency: 5 }\n"
    "  c: { model: heavy2, concurrency: 4 }\n"
    "  d: { model: remote, concurrency: 4 }\n";

static char dir[] = "/tmp/llmq-test-shm.XXXXXX";
static char *path;                 /* the region */
static const struct shm_region *V; /* read-only, from shm_attach() */
static struct shm_region *W;       /* writable, to fake a crash */
static struct cfg *C1;
static struct shm_map M1;

/* The needs of each role of C1, narrowest scope first. */
static struct shm_need nA, nB, nC, nD, nEh, nEl, nFree;

#define NSLEEP 5
static pid_t sleeper[NSLEEP];
static int sleep_cmd[NSLEEP];     /* write ends: a byte asks for a reply */
static int report_fd;             /* read end: 'A'+i woken, 'a'+i reply */
static int wakes[NSLEEP];         /* SIGUSR2 counted so far */
static int rec_sl[SHM_MAX_PROCS]; /* the sleeper whose pid a record has */

static volatile sig_atomic_t sl_index;
static int sl_report = -1;

static void
on_usr2(int sig)
{
	char c = (char)('A' + sl_index);

	(void)sig;
	if (write(sl_report, &c, 1) == -1)
		_exit(2);
}

static void
sleeper_main(int i, int cmd, int rep)
{
	struct sigaction sa;
	sigset_t set;
	ssize_t n;
	char c;

	sl_index = i;
	sl_report = rep;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr2;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR2, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	for (;;) {
		n = read(cmd, &c, 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(0);
		/* A signal sent before the request is handled before this. */
		c = (char)('a' + i);
		if (write(rep, &c, 1) != 1)
			_exit(1);
	}
}

static int
start_sleepers(void)
{
	sigset_t set, old;
	int rep[2], cmd[2], i, j;

	if (pipe(rep) == -1)
		return -1;
	/* Until a sleeper has its handler, SIGUSR2 would kill it. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, &old);
	for (i = 0; i < NSLEEP; i++) {
		if (pipe(cmd) == -1)
			return -1;
		fflush(stdout);
		if ((sleeper[i] = fork()) == -1)
			return -1;
		if (sleeper[i] == 0) {
			for (j = 0; j < i; j++)
				close(sleep_cmd[j]);
			close(cmd[1]);
			close(rep[0]);
			sleeper_main(i, cmd[0], rep[1]);
		}
		close(cmd[0]);
		sleep_cmd[i] = cmd[1];
	}
	close(rep[1]);
	report_fd = rep[0];
	sigprocmask(SIG_SETMASK, &old, NULL);
	/* No record carries our pid; should one be signalled, ignore it. */
	signal(SIGUSR2, SIG_IGN);
	return 0;
}

static void
stop_sleepers(void)
{
	int i;

	for (i = 0; i < NSLEEP; i++) {
		close(sleep_cmd[i]);
		waitpid(sleeper[i], NULL, 0);
	}
	close(report_fd);
}

/*
 * Ask every sleeper for a reply and count the wake-ups reported before
 * it: afterwards every signal sent so far is in wakes[].  -1 after 5s.
 */
static int
sync_sleepers(void)
{
	struct pollfd pfd;
	int64_t until = mono_ms() + 5000;
	int i, pending = NSLEEP;
	char c;

	for (i = 0; i < NSLEEP; i++)
		if (write(sleep_cmd[i], "p", 1) != 1)
			return -1;
	while (pending > 0) {
		pfd.fd = report_fd;
		pfd.events = POLLIN;
		if (mono_ms() >= until ||
		    poll(&pfd, 1, (int)(until - mono_ms())) <= 0)
			return -1;
		if (read(report_fd, &c, 1) != 1)
			return -1;
		if (c >= 'A' && c < 'A' + NSLEEP)
			wakes[c - 'A']++;
		else if (c >= 'a' && c < 'a' + NSLEEP)
			pending--;
	}
	return 0;
}

/* A simulated child of role, with the pid of sleeper sl. */
static int
sim(int sl, const char *role)
{
	int rec;

	if ((rec = shm_proc_reserve()) == -1) {
		printf("# shm_proc_reserve() failed\n");
		exit(1);
	}
	shm_proc_start(rec, sleeper[sl], PROC_WORKER, role, 1, 0);
	rec_sl[rec] = sl;
	return rec;
}

/*
 * The master sees it die (its pid forgotten) and then frees its record:
 * its slots go back.
 */
static void
sim_end(int rec)
{
	pid_t pid = sleeper[rec_sl[rec]];

	shm_self = -1;
	shm_proc_dead(rec, pid);
	if (shm_proc_free(&rec, &pid, 1) == -1)
		printf("# shm_proc_free(%d) failed\n", rec);
}

static void
as(int rec)
{
	shm_self = rec;
}

static int
inflight(int s)
{
	return V->scopes[s].inflight;
}

static int
held(int rec, int s)
{
	return V->procs[rec].held[s];
}

/* Place w of record rec. */
static const struct shm_wait *
place(int rec, int w)
{
	return &V->procs[rec].waits[w];
}

/* Place w of record rec stands in line on scope s. */
static int
waits_on(int rec, int w, int s)
{
	return place(rec, w)->units != 0 && place(rec, w)->scope == s;
}

/* Every scope's count is the sum of the records' holds. */
/* Entry idx is a live scope of this kind, name and limit. */
static int
scope_is(int idx, enum shm_kind kind, const char *name, int limit)
{
	const struct shm_scope *sc = &V->scopes[idx];

	return sc->kind == kind && strcmp(sc->name, name) == 0 &&
	    sc->limit == limit && sc->live;
}

static int
sums_match(void)
{
	uint32_t s;
	int p, n;

	for (s = 0; s < V->nscopes; s++) {
		n = 0;
		for (p = 0; p < SHM_MAX_PROCS; p++)
			if (V->procs[p].kind != PROC_FREE)
				n += V->procs[p].held[s];
		if (n != V->scopes[s].inflight) {
			printf("#   scope %u: inflight %d, held %d\n", s,
			    V->scopes[s].inflight, n);
			return 0;
		}
	}
	return 1;
}

static int
all_idle(void)
{
	uint32_t s;

	for (s = 0; s < V->nscopes; s++)
		if (V->scopes[s].inflight != 0)
			return 0;
	return 1;
}

static int
role_index(const struct cfg *c, const char *name)
{
	const struct cfg_role *r = cfg_role_find(c, name);

	return r == NULL ? -1 : (int)(r - c->roles);
}

/* The need of a call of role on model, as worker.c builds it. */
static struct shm_need
need_of(const struct cfg *c, const struct shm_map *m, const char *role,
    const char *model)
{
	struct shm_need n;
	int mi = cfg_model_find(c, model);

	n.n = 0;
	n.idx[n.n++] = m->roles[role_index(c, role)];
	n.idx[n.n++] = m->models[mi];
	n.idx[n.n++] = m->providers[c->models[mi].provider];
	n.idx[n.n++] = m->global;
	return n;
}

static struct cfg *
load(const char *text)
{
	struct cfg *c;
	char err[512] = "";

	if ((c = cfg_load_string("t.yaml", text, err, sizeof(err))) == NULL) {
		printf("# could not load a test configuration: %s\n", err);
		exit(1);
	}
	return c;
}

static void
test_path(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "x/llmqd.pid", "x/llmqd.shm" },
		{ "/run/llmq/llmqd.pid", "/run/llmq/llmqd.shm" },
		{ "x/foo", "x/foo.shm" },
		{ "x/a.pid.bak", "x/a.pid.bak.shm" },
		{ ".pid", ".pid.shm" },
	};
	size_t i;
	char *p;

	for (i = 0; i < nitems(cases); i++) {
		p = shm_path(cases[i].in);
		CHECK(strcmp(p, cases[i].out) == 0,
		    "shm_path(\"%s\") is \"%s\"", cases[i].in, cases[i].out);
		free(p);
	}
}

static void
test_create(void)
{
	struct stat st;
	char *tmp, err[512] = "";

	CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	        (size_t)st.st_size == sizeof(struct shm_region),
	    "shm_create makes a plain file of the region's size");
	tmp = xasprintf("%s.new", path);
	CHECK(access(tmp, F_OK) == -1 && errno == ENOENT,
	    "the temporary file was renamed into place");
	free(tmp);
	V = shm_attach(path, err, sizeof(err));
	CHECK(V != NULL, "shm_attach on the region");
	if (V == NULL) {
		printf("#   %s\n", err);
		exit(1);
	}
	CHECK(V->magic == SHM_MAGIC && V->version == SHM_VERSION &&
	        V->size == sizeof(struct shm_region) &&
	        V->master_pid == (int32_t)getpid() && V->master_started > 0 &&
	        V->lock == 0,
	    "header: magic, version, size, master pid, free lock");
}

static void
test_configure(void)
{
	static const char *kinds[] = { "?", "global", "role", "model",
		"provider" };
	const struct shm_scope *sc;
	char err[512] = "", seen[SHM_MAX_SCOPES];
	size_t i;
	int ok, s, distinct = 1;

	C1 = load(cfg1_text);
	shm_self = -1;
	CHECK(shm_configure(C1, 1, &M1, err, sizeof(err)) == 0,
	    "shm_configure with the first configuration");
	if (M1.roles == NULL) {
		printf("#   %s\n", err);
		exit(1);
	}
	CHECK(V->generation == 1 && V->nscopes == 11,
	    "generation set, 11 scopes in the table");

	sc = &V->scopes[M1.global];
	CHECK(M1.global >= 0 && M1.global < (int)V->nscopes &&
	        sc->kind == SCOPE_GLOBAL && strcmp(sc->name, "global") == 0 &&
	        sc->limit == 6 && sc->live && sc->inflight == 0,
	    "global scope: limit 6");
	for (ok = 1, i = 0; i < C1->nroles; i++)
		ok &= scope_is(M1.roles[i], SCOPE_ROLE, C1->roles[i].name,
		    C1->roles[i].concurrency);
	CHECK(ok && V->scopes[M1.roles[0]].limit == 2 &&
	        V->scopes[M1.roles[2]].limit == 4,
	    "each role has a scope of its name limited to its concurrency");
	for (ok = 1, i = 0; i < C1->nmodels; i++)
		ok &= scope_is(M1.models[i], SCOPE_MODEL, C1->models[i].name,
		    C1->models[i].concurrency);
	CHECK(ok && V->scopes[M1.models[0]].limit == 0 &&
	        V->scopes[M1.models[1]].limit == 1,
	    "each model has a scope; no concurrency is limit 0");
	for (ok = 1, i = 0; i < C1->nproviders; i++)
		ok &= scope_is(M1.providers[i], SCOPE_PROVIDER,
		    C1->providers[i].name, C1->providers[i].concurrency);
	CHECK(ok && V->scopes[M1.providers[0]].limit == 0 &&
	        V->scopes[M1.providers[1]].limit == 3,
	    "each provider has a scope with its limit");

	memset(seen, 0, sizeof(seen));
	seen[M1.global] = 1;
	for (i = 0; i < C1->nroles; i++)
		distinct &= !seen[M1.roles[i]]++;
	for (i = 0; i < C1->nmodels; i++)
		distinct &= !seen[M1.models[i]]++;
	for (i = 0; i < C1->nproviders; i++)
		distinct &= !seen[M1.providers[i]]++;
	CHECK(distinct, "the map's indexes are distinct");

	ok = 1;
	for (s = 0; s <= SCOPE_PROVIDER; s++)
		ok &= strcmp(shm_kind_name((enum shm_kind)s), kinds[s]) == 0;
	CHECK(ok && strcmp(shm_kind_name((enum shm_kind)99), "?") == 0,
	    "shm_kind_name");

	nA = need_of(C1, &M1, "a", "light");
	nB = need_of(C1, &M1, "b", "light");
	nC = need_of(C1, &M1, "c", "heavy");
	nD = need_of(C1, &M1, "d", "remote");
	nEh = need_of(C1, &M1, "e", "heavy");
	nEl = need_of(C1, &M1, "e", "light");
	/* Only scopes without a limit of their own. */
	nFree.n = 2;
	nFree.idx[0] = M1.models[cfg_model_find(C1, "light")];
	nFree.idx[1] = M1.providers[0];
}

/* Case 2: the records of the children. */
static void
test_procs(void)
{
	int r1, r2, recs[SHM_MAX_PROCS], i, n, ok;
	pid_t pid;

	r1 = shm_proc_reserve();
	r2 = shm_proc_reserve();
	CHECK(r1 >= 0 && r2 >= 0 && r1 != r2 && V->procs[r1].pid == 0 &&
	        V->procs[r1].kind == PROC_WORKER,
	    "shm_proc_reserve: distinct records, pid 0 until started");
	shm_proc_start(r1, sleeper[0], PROC_CONSUMER, "consumer", 3, 7);
	CHECK(V->procs[r1].pid == sleeper[0] &&
	        V->procs[r1].kind == PROC_CONSUMER &&
	        strcmp(V->procs[r1].role, "consumer") == 0 &&
	        V->procs[r1].gen == 3 && V->procs[r1].restarts == 7 &&
	        V->procs[r1].started > 0 && !V->procs[r1].exiting,
	    "shm_proc_start fills the record in");
	shm_proc_exiting(r1);
	CHECK(V->procs[r1].exiting == 1, "shm_proc_exiting marks it");
	shm_self = -1;
	shm_proc_dead(r1, sleeper[0]);
	CHECK(V->procs[r1].pid == 0 && V->procs[r1].kind == PROC_CONSUMER &&
	        V->procs[r1].gen == 3 && V->lock == 0,
	    "shm_proc_dead forgets the pid, keeps the record until freed");
	pid = sleeper[0];
	CHECK(shm_proc_free(&r1, &pid, 1) == 0 &&
	        V->procs[r1].kind == PROC_FREE && V->procs[r1].pid == 0 &&
	        V->procs[r1].role[0] == '\0' && !V->procs[r1].exiting,
	    "shm_proc_free frees the record");
	CHECK(V->procs[r2].kind == PROC_WORKER, "the other record is kept");
	shm_proc_unreserve(r2);
	CHECK(V->procs[r2].kind == PROC_FREE && V->procs[r2].pid == 0,
	    "shm_proc_unreserve frees a record that was never started");
	CHECK(shm_proc_reserve() == (r1 < r2 ? r1 : r2),
	    "a freed record is reused");
	shm_proc_unreserve(r1 < r2 ? r1 : r2);

	for (n = 0; n < SHM_MAX_PROCS; n++)
		if ((recs[n] = shm_proc_reserve()) == -1)
			break;
	CHECK(n == SHM_MAX_PROCS && shm_proc_reserve() == -1,
	    "%d records, then shm_proc_reserve returns -1", SHM_MAX_PROCS);
	for (i = 0; i < n; i++)
		shm_proc_unreserve(recs[i]);
	ok = 1;
	for (i = 0; i < SHM_MAX_PROCS; i++)
		ok &= V->procs[i].kind == PROC_FREE;
	CHECK(ok, "every record unreserved: the table is empty again");
}

/* Case 3: all or nothing across the scopes of a need. */
static void
test_all_or_nothing(void)
{
	int g = M1.global, ra, rb, rc, rd, got, i, ok;
	int ia = nA.idx[0], ib = nB.idx[0], ic = nC.idx[0], id = nD.idx[0];
	int light = nA.idx[1], heavy = nC.idx[1], local = nA.idx[2];
	int cloud = nD.idx[2];
	uint64_t denied;

	ra = sim(0, "a");
	rb = sim(1, "b");
	rc = sim(2, "c");
	rd = sim(3, "d");

	as(ra);
	got = shm_acquire(&nA, 5, 0, 0);
	CHECK(got == 2, "role a (limit 2) wanting 5 gets 2 (got %d)", got);
	CHECK(inflight(ia) == 2 && inflight(light) == 2 &&
	        inflight(local) == 2 && inflight(g) == 2,
	    "the 2 are counted in role, model, provider and global");
	as(rb);
	got = shm_acquire(&nB, 5, 0, 0);
	CHECK(got == 4,
	    "role b (limit 5) wanting 5 gets 4: global binds "
	    "(got %d)",
	    got);
	CHECK(inflight(g) == 6 && inflight(ib) == 4 && inflight(light) == 6,
	    "global in flight 6 of 6");

	denied = V->scopes[g].denied;
	as(rc);
	got = shm_acquire(&nC, 3, 0, 0);
	CHECK(got == 0 && inflight(ic) == 0 && inflight(heavy) == 0 &&
	        inflight(g) == 6 && V->scopes[ic].acquired == 0,
	    "global full: role c gets nothing in any scope (got %d)", got);
	CHECK(V->scopes[g].denied == denied && place(rc, 0)->units == 0,
	    "without wait: not counted as denied, not queued");

	as(rb);
	shm_release(&nB, 2, 0);
	CHECK(inflight(g) == 4 && inflight(ib) == 2 && inflight(light) == 4,
	    "shm_release gives back in every scope");
	as(rc);
	got = shm_acquire(&nC, 3, 0, 0);
	CHECK(got == 1 && inflight(heavy) == 1 && inflight(ic) == 1 &&
	        inflight(local) == 5 && inflight(g) == 5,
	    "model heavy (limit 1) binds with global room: 1 (got %d)", got);

	as(ra);
	shm_release(&nA, 2, 0);
	as(rb);
	shm_release(&nB, 2, 0);
	as(rd);
	got = shm_acquire(&nD, 5, 0, 0);
	CHECK(got == 3 && inflight(cloud) == 3 && inflight(id) == 3 &&
	        inflight(g) == 4,
	    "provider cloud (limit 3) binds: 3 (got %d)", got);

	as(ra);
	got = shm_acquire(&nFree, 1000, 0, 0);
	CHECK(got == 1000 && inflight(light) == 1000,
	    "scopes with limit 0 never limit: 1000 of 1000 (got %d)", got);
	shm_release(&nFree, got, 0);

	as(rc);
	shm_release(&nC, 1, 0);
	as(rd);
	shm_release(&nD, 3, 0);
	CHECK(all_idle() && sums_match(),
	    "after every release, nothing is in flight anywhere");
	CHECK(V->scopes[g].peak == 6 && V->scopes[light].peak == 1000,
	    "peak counts kept");
	ok = 1;
	for (i = 0; i < nA.n; i++)
		ok &= held(ra, nA.idx[i]) == 0 && held(rb, nB.idx[i]) == 0 &&
		    held(rc, nC.idx[i]) == 0 && held(rd, nD.idx[i]) == 0;
	CHECK(ok, "no record holds anything");
	sim_end(ra);
	sim_end(rb);
	sim_end(rc);
	sim_end(rd);
}

/* Case 4: each record's holds; unused releases undo "acquired". */
static void
test_held(void)
{
	int g = M1.global, ib = nB.idx[0], light = nB.idx[1], ra, rb;
	uint64_t acq_b, acq_g;

	ra = sim(0, "a");
	rb = sim(1, "b");
	acq_b = V->scopes[ib].acquired;
	acq_g = V->scopes[g].acquired;
	as(ra);
	shm_acquire(&nA, 1, 0, 0);
	as(rb);
	shm_acquire(&nB, 3, 0, 0);
	CHECK(held(rb, ib) == 3 && held(rb, light) == 3 && held(rb, g) == 3 &&
	        held(ra, g) == 1 && held(ra, ib) == 0 && held(ra, light) == 1,
	    "held[] per record and scope");
	CHECK(V->scopes[ib].acquired == acq_b + 3 &&
	        V->scopes[g].acquired == acq_g + 4,
	    "acquired counts the slots taken");
	shm_release(&nB, 2, 1);
	CHECK(held(rb, ib) == 1 && held(rb, g) == 1 && inflight(g) == 2 &&
	        V->scopes[ib].acquired == acq_b + 1 &&
	        V->scopes[g].acquired == acq_g + 2,
	    "release unused=1: held and in flight down, acquired undone");
	shm_release(&nB, 1, 0);
	CHECK(held(rb, ib) == 0 && inflight(ib) == 0 &&
	        V->scopes[ib].acquired == acq_b + 1,
	    "release unused=0: acquired kept");
	as(ra);
	shm_release(&nA, 1, 0);
	CHECK(all_idle() && sums_match(), "all back");
	sim_end(ra);
	sim_end(rb);
}

/* Case 5: first come, first served; queueing on the narrowest scope. */
static void
test_fifo(void)
{
	int g = M1.global, ia = nA.idx[0], id = nD.idx[0];
	int heavy = nC.idx[1], ie = nEl.idx[0];
	int ra, rb, rx, ry, rz, got;
	uint64_t t0, denied;

	/* Global full: a holds 2, b holds 4. */
	ra = sim(0, "a");
	rb = sim(1, "b");
	rx = sim(2, "d");
	ry = sim(3, "c");
	as(ra);
	shm_acquire(&nA, 2, 0, 0);
	as(rb);
	shm_acquire(&nB, 4, 0, 0);

	denied = V->scopes[g].denied;
	as(rx);
	got = shm_acquire(&nD, 2, 1, 0);
	t0 = place(rx, 0)->ticket;
	CHECK(got == 0 && place(rx, 0)->units == 2 && t0 != 0 &&
	        waits_on(rx, 0, g) && !waits_on(rx, 0, id) &&
	        !waits_on(rx, 0, nD.idx[1]),
	    "short with wait: queued for 2 on global only");
	CHECK(V->scopes[g].denied == denied + 1, "global counted as denied");

	as(rb);
	shm_release(&nB, 1, 0);
	as(ry);
	got = shm_acquire(&nC, 1, 0, 0);
	CHECK(got == 0 && inflight(g) == 5,
	    "a freed slot owed to an older waiter is not free to another "
	    "(got %d)",
	    got);
	got = shm_acquire(&nC, 1, 1, 0);
	CHECK(got == 0 && place(ry, 0)->units == 1 && place(ry, 0)->ticket > t0,
	    "the newcomer queues behind");
	as(rx);
	got = shm_acquire(&nD, 2, 1, 0);
	CHECK(got == 1 && place(rx, 0)->units == 1 &&
	        place(rx, 0)->ticket == t0 + 1,
	    "the older waiter gets the freed slot, waits for 1 more "
	    "(got %d)",
	    got);

	as(rb);
	shm_release(&nB, 1, 0);
	as(ry);
	got = shm_acquire(&nC, 1, 1, 0);
	CHECK(got == 0,
	    "served in part, the older waiter keeps its place "
	    "(got %d)",
	    got);
	as(rx);
	got = shm_acquire(&nD, 1, 1, 0);
	CHECK(got == 1 && place(rx, 0)->units == 0,
	    "served in full: it leaves its place in line (got %d)", got);
	as(rb);
	shm_release(&nB, 1, 0);
	as(ry);
	got = shm_acquire(&nC, 1, 1, 0);
	CHECK(got == 1 && place(ry, 0)->units == 0 && inflight(g) == 6,
	    "then the newcomer's turn (got %d)", got);
	sim_end(ra);
	sim_end(rb);
	sim_end(rx);
	sim_end(ry);
	CHECK(all_idle(), "all back");

	/* Short on its own role: the global slots stay free for others. */
	rz = sim(0, "a");
	rb = sim(1, "b");
	as(rz);
	shm_acquire(&nA, 2, 0, 0);
	denied = V->scopes[ia].denied;
	got = shm_acquire(&nA, 1, 1, 0);
	CHECK(got == 0 && place(rz, 0)->units == 1 && waits_on(rz, 0, ia) &&
	        !waits_on(rz, 0, g) && V->scopes[ia].denied == denied + 1,
	    "short on its role: queued on the role scope only");
	as(rb);
	got = shm_acquire(&nB, 4, 0, 0);
	CHECK(got == 4 && inflight(g) == 6,
	    "a child held back by its own role holds no global slot back "
	    "(got %d of 4)",
	    got);
	/* Now global is full too: still queued on the role only. */
	as(rz);
	got = shm_acquire(&nA, 1, 1, 0);
	CHECK(got == 0 && waits_on(rz, 0, ia) && !waits_on(rz, 0, g),
	    "short on its role and on global: queued on the role only");
	as(rb);
	shm_release(&nB, 1, 0);
	rx = sim(2, "c");
	as(rx);
	got = shm_acquire(&nC, 1, 0, 0);
	CHECK(
	    got == 1, "so a freed global slot is free to others (got %d)", got);
	sim_end(rx);
	sim_end(rz);
	sim_end(rb);

	/* shm_unwant: the slots held back are free again. */
	ra = sim(0, "a");
	rb = sim(1, "b");
	rx = sim(2, "d");
	ry = sim(3, "c");
	as(ra);
	shm_acquire(&nA, 2, 0, 0);
	as(rb);
	shm_acquire(&nB, 4, 0, 0);
	as(rx);
	shm_acquire(&nD, 1, 1, 0);
	as(rb);
	shm_release(&nB, 1, 0);
	as(ry);
	got = shm_acquire(&nC, 1, 0, 0);
	CHECK(got == 0, "owed to the waiter (got %d)", got);
	as(rx);
	shm_unwant(0);
	CHECK(place(rx, 0)->units == 0 && !waits_on(rx, 0, g),
	    "shm_unwant leaves the queue");
	as(ry);
	got = shm_acquire(&nC, 1, 0, 0);
	CHECK(got == 1,
	    "after shm_unwant the slot is free to others "
	    "(got %d)",
	    got);
	sim_end(ra);
	sim_end(rb);
	sim_end(rx);
	sim_end(ry);

	/*
	 * Slot by slot: x queues for 1, then y for 1, then x for 2.  Of two
	 * freed slots, one is x's first and the next is y's: x's second was
	 * asked for after y's.
	 *
	 * Tickets leave no gap: next_ticket is the last one given out.  With
	 * a gap, x's range [ticket, ticket + units) would cover it when its
	 * count grows, and owed() would count it against y: y would be owed
	 * 2 slots instead of 1 and get nothing.
	 */
	ra = sim(0, "a");
	rb = sim(1, "b");
	rx = sim(2, "d");
	ry = sim(3, "c");
	as(ra);
	shm_acquire(&nA, 2, 0, 0);
	as(rb);
	shm_acquire(&nB, 4, 0, 0);
	as(rx);
	shm_acquire(&nD, 1, 1, 0);
	as(ry);
	shm_acquire(&nC, 1, 1, 0);
	as(rx);
	shm_acquire(&nD, 2, 1, 0);
	as(rb);
	shm_release(&nB, 2, 0);
	as(ry);
	got = shm_acquire(&nC, 1, 1, 0);
	CHECK(got == 1,
	    "a waiter whose count grew is not served ahead of a later one "
	    "for its new slots (got %d, want 1)",
	    got);
	if (got != 1)
		printf("#   tickets: x %llu units %u, y %llu units %u\n",
		    (unsigned long long)place(rx, 0)->ticket,
		    place(rx, 0)->units,
		    (unsigned long long)place(ry, 0)->ticket,
		    place(ry, 0)->units);
	sim_end(ra);
	sim_end(rb);
	sim_end(rx);
	sim_end(ry);

	/*
	 * A role with two models, as worker.c claims for it, one place in
	 * line per model: short on heavy in place 0, served in full on light
	 * in place 1: place 0 still waits, for heavy.  Then place 1 is short
	 * on the role, and so is place 0 when it comes back: it moves to the
	 * role, and heavy must be free to others.
	 */
	ra = sim(0, "c");
	rx = sim(1, "e");
	ry = sim(2, "c");
	as(ra);
	shm_acquire(&nC, 1, 0, 0);
	as(rx);
	got = shm_acquire(&nEh, 1, 1, 0);
	got += 10 * shm_acquire(&nEl, 1, 1, 1);
	CHECK(got == 10 && place(rx, 0)->units == 1 && waits_on(rx, 0, heavy) &&
	        place(rx, 1)->units == 0,
	    "two places: short on heavy in one, served in full on light in "
	    "the other: still waiting for heavy");
	got = shm_acquire(&nEl, 4, 1, 1);
	CHECK(got == 3 && place(rx, 1)->units == 1 && waits_on(rx, 1, ie) &&
	        waits_on(rx, 0, heavy),
	    "then the light place is short on its own role (got %d); the "
	    "heavy place keeps waiting on heavy",
	    got);
	as(ra);
	shm_release(&nC, 1, 0);
	as(ry);
	got = shm_acquire(&nC, 1, 0, 0);
	CHECK(got == 0 && inflight(heavy) == 0,
	    "a place in line for heavy holds heavy's freed slot back "
	    "(got %d)",
	    got);
	as(rx);
	got = shm_acquire(&nEh, 1, 1, 0);
	CHECK(got == 0 && waits_on(rx, 0, ie) && !waits_on(rx, 0, heavy),
	    "back with its role full, the heavy place moves to the role");
	as(ry);
	got = shm_acquire(&nC, 1, 0, 0);
	CHECK(got == 1 && inflight(heavy) == 1,
	    "a child waiting on its role only holds no heavy slot back "
	    "(got %d, want 1)",
	    got);
	if (got != 1)
		printf("#   place 0 on heavy: %d, on role e: %d\n",
		    waits_on(rx, 0, heavy), waits_on(rx, 0, ie));
	sim_end(ra);
	sim_end(rx);
	sim_end(ry);
	CHECK(all_idle() && sums_match(), "all back");
}

/* Case 6: a release wakes the waiters once, never the releaser. */
static void
test_wake(void)
{
	int ra, rb, rx, ry, rz, before[NSLEEP], got, i, others;

	ra = sim(0, "a");
	rb = sim(1, "b");
	rx = sim(2, "d");
	ry = sim(3, "c");
	rz = sim(4, "a");
	as(ra);
	shm_acquire(&nA, 2, 0, 0);
	as(rb);
	shm_acquire(&nB, 4, 0, 0);
	as(rx);
	shm_acquire(&nD, 1, 1, 0);
	as(ry);
	shm_acquire(&nC, 1, 1, 0);
	as(rb);
	shm_acquire(&nB, 1, 1, 0); /* b waits too */
	CHECK(place(rx, 0)->units == 1 && place(ry, 0)->units == 1 &&
	        place(rb, 0)->units == 1 && place(rz, 0)->units == 0,
	    "x, y and b wait; a and z do not");
	CHECK(sync_sleepers() == 0, "sleepers answer");
	memcpy(before, wakes, sizeof(before));

	as(rb);
	shm_release(&nB, 1, 0);
	CHECK(sync_sleepers() == 0, "sleepers answer");
	CHECK(wakes[2] == before[2] + 1 && wakes[3] == before[3] + 1,
	    "a release wakes each waiter once");
	CHECK(wakes[1] == before[1] && V->procs[rb].woken == 0,
	    "not the releasing process, though it waits");
	CHECK(wakes[0] == before[0] && wakes[4] == before[4],
	    "nor processes that do not wait");
	CHECK(V->procs[rx].woken && V->procs[ry].woken, "woken flags set");

	shm_release(&nB, 1, 0);
	CHECK(sync_sleepers() == 0, "sleepers answer");
	CHECK(wakes[2] == before[2] + 1 && wakes[3] == before[3] + 1,
	    "a second release sends nothing until they come back");

	as(rx);
	got = shm_acquire(&nD, 3, 1, 0);
	CHECK(got == 2 && place(rx, 0)->units == 1 && !V->procs[rx].woken,
	    "x comes back, takes 2 and waits for 1 more (got %d)", got);
	as(ra);
	shm_release(&nA, 1, 0);
	CHECK(sync_sleepers() == 0, "sleepers answer");
	CHECK(wakes[2] == before[2] + 2 && wakes[3] == before[3] + 1 &&
	        wakes[1] == before[1] + 1,
	    "the next release wakes x again and b, not y (still woken)");

	/* Giving up wakes those not woken yet: here, nobody. */
	as(rx);
	shm_unwant(0);
	as(ra);
	shm_release(&nA, 1, 0);
	CHECK(sync_sleepers() == 0, "sleepers answer");
	CHECK(wakes[2] == before[2] + 2 && wakes[1] == before[1] + 1 &&
	        wakes[3] == before[3] + 1,
	    "after shm_unwant, no more wake-ups for x; b and y are still "
	    "woken");

	sim_end(ra);
	sim_end(rb);
	sim_end(rx);
	sim_end(ry);
	sim_end(rz);
	CHECK(sync_sleepers() == 0, "sleepers answer");
	others = 0;
	for (i = 0; i < NSLEEP; i++)
		others += wakes[i] - before[i];
	CHECK(all_idle() && others == 4, "all back, 4 wake-ups in all");
}

/*
 * Case 7: each place in line has its own tickets.  A child of role e in
 * line for heavy since long ago does not lend that old ticket to its
 * light place: on global, the light place comes after a child that
 * queued there before it did.  A child's own older place is owed like
 * anyone's, and a place is owed at most the scope's limit.
 */
static void
test_places(void)
{
	int g = M1.global, heavy = nC.idx[1];
	int ra, rb, rx, ry, rz, got;
	uint64_t t_heavy, t_y, t_light;

	ra = sim(0, "c");
	rb = sim(1, "b");
	rx = sim(2, "e");
	ry = sim(3, "d");
	rz = sim(4, "a");
	as(ra);
	shm_acquire(&nC, 1, 0, 0); /* heavy full */
	as(rx);
	got = shm_acquire(&nEh, 1, 1, 0);
	t_heavy = place(rx, 0)->ticket;
	CHECK(got == 0 && waits_on(rx, 0, heavy) && place(rx, 1)->units == 0,
	    "x's heavy place (0) is in line on heavy; its light place (1) "
	    "is not");
	as(rb);
	shm_acquire(&nB, 4, 0, 0);
	as(rz);
	shm_acquire(&nA, 1, 0, 0); /* global 6 of 6 */
	as(ry);
	got = shm_acquire(&nD, 1, 1, 0);
	t_y = place(ry, 0)->ticket;
	CHECK(got == 0 && waits_on(ry, 0, g) && t_y > t_heavy,
	    "y queues on global, after x's heavy ticket");

	as(rb);
	shm_release(&nB, 1, 0);
	as(rx);
	got = shm_acquire(&nEl, 1, 1, 1);
	t_light = place(rx, 1)->ticket;
	CHECK(got == 0 && inflight(g) == 5,
	    "x's light place, not in line, does not jump ahead of y on "
	    "global with the heavy place's older ticket (got %d)",
	    got);
	if (got != 0)
		printf("#   tickets: heavy %llu, y %llu\n",
		    (unsigned long long)t_heavy, (unsigned long long)t_y);
	CHECK(waits_on(rx, 1, g) && t_light > t_y && waits_on(rx, 0, heavy) &&
	        place(rx, 0)->ticket == t_heavy,
	    "the light place queues behind y with a ticket of its own; the "
	    "heavy place keeps its own");
	got = shm_acquire(&nEl, 1, 1, 1);
	CHECK(got == 0 && place(rx, 1)->ticket == t_light,
	    "in line, the light place still comes after y (got %d)", got);
	as(ry);
	got = shm_acquire(&nD, 1, 1, 0);
	CHECK(got == 1 && place(ry, 0)->units == 0, "y gets the slot (got %d)",
	    got);
	as(rb);
	shm_release(&nB, 1, 0);
	as(rx);
	got = shm_acquire(&nEl, 1, 1, 1);
	CHECK(got == 1 && place(rx, 1)->units == 0 && waits_on(rx, 0, heavy),
	    "then the light place's turn; the heavy place still waits "
	    "(got %d)",
	    got);

	/*
	 * Heavy free, global full: the heavy place moves to global with
	 * its ticket, older than the one the light place gets there.
	 */
	as(ra);
	shm_release(&nC, 1, 0);
	as(rz);
	got = shm_acquire(&nA, 1, 0, 0);
	CHECK(got == 1 && inflight(g) == 6, "global full again (got %d)", got);
	as(rx);
	got = shm_acquire(&nEh, 1, 1, 0);
	CHECK(got == 0 && waits_on(rx, 0, g) && place(rx, 0)->ticket == t_heavy,
	    "x's heavy place moves to global and keeps its ticket");
	got = shm_acquire(&nEl, 1, 1, 1);
	CHECK(got == 0 && waits_on(rx, 1, g) && place(rx, 1)->ticket > t_heavy,
	    "x's light place queues on global behind it");
	as(rb);
	shm_release(&nB, 1, 0);
	as(rx);
	got = shm_acquire(&nEl, 1, 1, 1);
	CHECK(got == 0,
	    "the slot is owed to the child's own older place, not to the "
	    "place that asks (got %d)",
	    got);
	got = shm_acquire(&nEh, 1, 1, 0);
	CHECK(got == 1 && place(rx, 0)->units == 0 && waits_on(rx, 1, g),
	    "the older place gets it, not held back by its own other place "
	    "(got %d)",
	    got);
	as(rx);
	shm_unwant(1);
	CHECK(place(rx, 1)->units == 0 && place(rx, 0)->units == 0,
	    "shm_unwant(1) leaves place 1");

	/*
	 * A place waiting for more slots than an int holds: owed at most
	 * the limit, not a negative count that would make room.
	 */
	as(rb);
	shm_release(&nB, 1, 0);
	W->procs[ry].waits[2].ticket = 1;
	W->procs[ry].waits[2].units = UINT32_MAX;
	W->procs[ry].waits[2].scope = g;
	as(rb);
	got = shm_acquire(&nB, 1, 0, 0);
	CHECK(got == 0 && inflight(g) == 5,
	    "a place in line for %u slots: the free slot is owed to it "
	    "(got %d)",
	    UINT32_MAX, got);
	W->procs[ry].waits[2].units = 0;
	got = shm_acquire(&nB, 1, 0, 0);
	CHECK(got == 1 && inflight(g) == 6,
	    "once it leaves, the slot is free (got %d)", got);

	sim_end(ra);
	sim_end(rb);
	sim_end(rx);
	sim_end(ry);
	sim_end(rz);
	CHECK(all_idle() && sums_match(), "all back");
}

/*
 * Case 8: a waiter woken more than a second ago that has not come back
 * (stopped, stuck) is owed nothing, so that it cannot keep a scope idle;
 * one woken just now, or one that came back, is owed its slots.
 */
static void
test_grace(void)
{
	int g = M1.global, ra, rb, rx, ry, got;

	ra = sim(0, "a");
	rb = sim(1, "b");
	rx = sim(2, "d");
	ry = sim(3, "c");
	as(ra);
	shm_acquire(&nA, 2, 0, 0);
	as(rb);
	shm_acquire(&nB, 4, 0, 0);
	as(rx);
	shm_acquire(&nD, 1, 1, 0);
	as(rb);
	shm_release(&nB, 1, 0);
	CHECK(waits_on(rx, 0, g) && V->procs[rx].woken &&
	        mono_ms() - V->procs[rx].woken_at >= 0 &&
	        mono_ms() - V->procs[rx].woken_at < 1000,
	    "the release woke x and recorded when");
	W->procs[rx].woken_at = mono_ms() - 500;
	as(ry);
	got = shm_acquire(&nC, 1, 0, 0);
	CHECK(got == 0, "woken half a second ago: still owed (got %d)", got);
	W->procs[rx].woken_at = mono_ms() - 2000;
	got = shm_acquire(&nC, 1, 0, 0);
	CHECK(got == 1 && inflight(g) == 6,
	    "woken 2 s ago and not back: owed nothing, the slot goes to "
	    "another (got %d)",
	    got);
	CHECK(waits_on(rx, 0, g) && place(rx, 0)->units == 1,
	    "x keeps its place in line");
	shm_release(&nC, 1, 0);
	as(rx);
	got = shm_acquire(&nD, 1, 1, 0);
	CHECK(got == 1 && !V->procs[rx].woken && place(rx, 0)->units == 0,
	    "x comes back and is served (got %d)", got);

	/* Back (woken cleared), woken long ago: owed again. */
	got = shm_acquire(&nD, 1, 1, 0);
	CHECK(got == 0 && waits_on(rx, 0, g) && !V->procs[rx].woken,
	    "x queues again (got %d)", got);
	as(rb);
	shm_release(&nB, 1, 0);
	W->procs[rx].woken = 0;
	W->procs[rx].woken_at = mono_ms() - 5000;
	as(ry);
	got = shm_acquire(&nC, 1, 0, 0);
	CHECK(got == 0,
	    "a waiter not woken since it came back is owed, however long "
	    "ago its last wake-up (got %d)",
	    got);

	sim_end(ra);
	sim_end(rb);
	sim_end(rx);
	sim_end(ry);
	CHECK(all_idle() && sums_match(), "all back");
}

/*
 * Case 9: a place given up, or moved to another scope, may leave slots
 * free that were held back for it: the other waiters are woken.  A place
 * that stays on its scope wakes nobody.
 */
static void
test_wake_moves(void)
{
	int g = M1.global, cloud = nD.idx[2], ra, rb, rx, ry, rz, got;
	int before[NSLEEP];

	ra = sim(0, "a");
	rb = sim(1, "b");
	rx = sim(2, "d");
	ry = sim(3, "c");
	rz = sim(4, "d");
	as(ra);
	shm_acquire(&nA, 2, 0, 0);
	as(rz);
	shm_acquire(&nD, 1, 0, 0); /* 2 of cloud's 3 left */
	as(rb);
	shm_acquire(&nB, 3, 0, 0);
	as(rx);
	shm_acquire(&nD, 1, 1, 0);
	as(ry);
	shm_acquire(&nC, 1, 1, 0);
	CHECK(waits_on(rx, 0, g) && waits_on(ry, 0, g) && !V->procs[ry].woken &&
	        sync_sleepers() == 0,
	    "x and y in line on global, y not woken");
	memcpy(before, wakes, sizeof(before));

	as(rx);
	shm_acquire(&nD, 1, 1, 0);
	CHECK(waits_on(rx, 0, g) && sync_sleepers() == 0 &&
	        wakes[3] == before[3] && !V->procs[ry].woken,
	    "x back, still short on global: nobody woken");
	got = shm_acquire(&nD, 5, 1, 0);
	CHECK(got == 0 && waits_on(rx, 0, cloud) && place(rx, 0)->units == 3 &&
	        sync_sleepers() == 0 && wakes[3] == before[3] + 1 &&
	        V->procs[ry].woken,
	    "x wanting 5 now, at most cloud's 3: short on cloud, its place "
	    "moves from global to cloud, and y is woken");
	CHECK(wakes[0] == before[0] && wakes[1] == before[1] &&
	        wakes[2] == before[2] && wakes[4] == before[4],
	    "not x itself, nor a, b and z, who do not wait");

	as(ry);
	shm_acquire(&nC, 1, 1, 0); /* y comes back */
	as(rx);
	shm_unwant(0);
	CHECK(place(rx, 0)->units == 0 && sync_sleepers() == 0 &&
	        wakes[3] == before[3] + 2,
	    "shm_unwant gives the place up and wakes y");
	as(ry);
	shm_acquire(&nC, 1, 1, 0);
	as(rx);
	shm_unwant(0);
	shm_unwant_all();
	CHECK(sync_sleepers() == 0 && wakes[3] == before[3] + 2,
	    "shm_unwant of places not in line wakes nobody");

	got = shm_acquire(&nD, 1, 1, 0);
	CHECK(got == 0 && waits_on(rx, 0, g) && sync_sleepers() == 0 &&
	        wakes[3] == before[3] + 2,
	    "x queues again; a new place wakes nobody");
	got = shm_acquire(&nD, 1, 0, 0);
	CHECK(got == 0 && place(rx, 0)->units == 0 && sync_sleepers() == 0 &&
	        wakes[3] == before[3] + 3,
	    "a call without wait leaves the place and wakes y");

	/* Served in full: the place is left, the others are woken. */
	as(ry);
	shm_acquire(&nC, 1, 1, 0);
	as(rx);
	shm_acquire(&nD, 1, 1, 0);
	as(rb);
	shm_release(&nB, 1, 0);
	as(rx);
	got = shm_acquire(&nD, 1, 1, 0);
	CHECK(got == 0 && waits_on(rx, 0, g) && !V->procs[rx].woken &&
	        sync_sleepers() == 0,
	    "x comes back; the slot is owed to y (got %d)", got);
	memcpy(before, wakes, sizeof(before));
	as(ry);
	got = shm_acquire(&nC, 1, 1, 0);
	CHECK(got == 1 && place(ry, 0)->units == 0 && sync_sleepers() == 0 &&
	        wakes[2] == before[2] + 1,
	    "y served in full leaves its place and wakes x (got %d)", got);

	/* Two places in line: shm_unwant_all leaves both. */
	as(rb);
	shm_release(&nB, 1, 0);
	as(rx);
	shm_acquire(&nD, 2, 1, 0);
	W->procs[rx].waits[3] = V->procs[rx].waits[0];
	shm_unwant_all();
	CHECK(place(rx, 0)->units == 0 && place(rx, 3)->units == 0,
	    "shm_unwant_all leaves every place");

	sim_end(ra);
	sim_end(rb);
	sim_end(rx);
	sim_end(ry);
	sim_end(rz);
	CHECK(all_idle() && sums_match(), "all back");
}

/* A pid that was a process and is no more. */
static pid_t
dead_pid(void)
{
	pid_t pid;

	fflush(stdout);
	if ((pid = fork()) == 0)
		_exit(0);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	return pid;
}

/* Case 10: the master cleans up after a dead child. */
static void
test_gone(void)
{
	int g = M1.global, ib = nB.idx[0], light = nB.idx[1];
	int ra, rx, rw, rh, rg, recs[2], fds[2], k = -1, before, rc, ok, s;
	char err[512] = "";
	struct shm_region *copy;
	struct shm_map m;
	siginfo_t si;
	int64_t t0, ms;
	pid_t pid, dead, pids[2];

	ra = sim(0, "a");
	rx = sim(2, "d");
	as(ra);
	shm_acquire(&nA, 2, 0, 0);

	/* A real child takes slots and exits without giving them back. */
	rg = shm_proc_reserve();
	if (pipe(fds) == -1) {
		CHECK(0, "pipe()");
		return;
	}
	fflush(stdout);
	if ((pid = fork()) == 0) {
		shm_self = rg;
		k = shm_acquire(&nB, 4, 0, 0);
		if (write(fds[1], &k, sizeof(k)) != sizeof(k))
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	shm_self = -1;
	shm_proc_start(rg, pid, PROC_WORKER, "b", 1, 0);
	if (read(fds[0], &k, sizeof(k)) != sizeof(k))
		k = -1;
	close(fds[0]);
	/* As the master does: look first, reap after shm_proc_dead(). */
	memset(&si, 0, sizeof(si));
	rc = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT);
	CHECK(rc == 0 && si.si_pid == pid && k == 4 && held(rg, g) == 4 &&
	        held(rg, ib) == 4 && inflight(g) == 6,
	    "a forked child took 4 slots and died holding them");
	as(rx);
	shm_acquire(&nD, 1, 1, 0);
	CHECK(sync_sleepers() == 0, "sleepers answer");
	before = wakes[2];
	shm_self = -1;
	shm_proc_dead(rg, pid);
	CHECK(V->procs[rg].pid == 0 && V->procs[rg].kind == PROC_WORKER &&
	        held(rg, g) == 4 && inflight(g) == 6 && V->lock == 0,
	    "shm_proc_dead forgets its pid; its slots count until freed");
	waitpid(pid, NULL, 0);
	CHECK(shm_proc_free(&rg, &pid, 1) == 0, "shm_proc_free");
	CHECK(V->procs[rg].kind == PROC_FREE && V->procs[rg].pid == 0 &&
	        held(rg, g) == 0,
	    "its record is freed");
	CHECK(inflight(g) == 2 && inflight(ib) == 0 && inflight(light) == 2 &&
	        sums_match(),
	    "its slots are back in every scope");
	CHECK(sync_sleepers() == 0 && wakes[2] == before + 1,
	    "the waiters are woken");
	as(rx);
	shm_acquire(&nD, 1, 1, 0);
	shm_release(&nD, 1, 0);
	CHECK(
	    place(rx, 0)->units == 0 && inflight(g) == 2, "x served and done");

	/* A dead child's record, not yet freed, is not signalled. */
	rh = sim(1, "b");
	rw = sim(3, "c");
	as(rh);
	shm_acquire(&nB, 4, 0, 0);
	as(rx);
	shm_acquire(&nD, 1, 1, 0);
	as(rw);
	shm_acquire(&nC, 1, 1, 0);
	CHECK(waits_on(rx, 0, g) && waits_on(rw, 0, g) && sync_sleepers() == 0,
	    "x and w wait on global");
	before = wakes[3];
	k = wakes[2];
	shm_self = -1;
	shm_proc_dead(rw, sleeper[3]);
	as(rh);
	shm_release(&nB, 1, 0);
	CHECK(sync_sleepers() == 0 && wakes[2] == k + 1 && wakes[3] == before &&
	        V->procs[rw].pid == 0,
	    "a release wakes x, not the dead w");
	as(rx);
	shm_acquire(&nD, 1, 1, 0);
	shm_release(&nD, 1, 0);
	as(rh);
	shm_release(&nB, 3, 0);
	sim_end(rw);
	sim_end(rh);
	CHECK(
	    inflight(g) == 2 && sums_match() && V->procs[rw].kind == PROC_FREE,
	    "all but a's slots back");

	/* Killed between held[] and the scope's count: recounted. */
	dead = dead_pid();
	rg = shm_proc_reserve();
	shm_proc_start(rg, dead, PROC_WORKER, "b", 1, 0);
	W->procs[rg].held[g] = 3;
	W->procs[rg].held[ib] = 3;
	W->scopes[light].inflight += 3;
	shm_proc_dead(rg, dead);
	CHECK(shm_proc_free(&rg, &dead, 1) == 0 && inflight(g) == 2 &&
	        inflight(ib) == 0 && inflight(light) == 2 && sums_match(),
	    "a half-done update of a dead child is undone by the recount");

	/* Died holding the lock. */
	rg = shm_proc_reserve();
	shm_proc_start(rg, dead, PROC_WORKER, "b", 1, 0);
	W->procs[rg].held[g] = 1;
	W->scopes[g].inflight += 1;
	W->lock = (uint32_t)dead;
	shm_proc_dead(rg, dead);
	CHECK(V->lock == 0 && V->procs[rg].pid == 0,
	    "shm_proc_dead takes the lock from the dead child that held it");
	W->lock = (uint32_t)sleeper[4];
	shm_proc_dead(rg, dead);
	CHECK(V->lock == (uint32_t)sleeper[4],
	    "the lock held by another process: shm_proc_dead leaves it");
	W->lock = 0;
	CHECK(shm_proc_free(&rg, &dead, 1) == 0 && V->lock == 0 &&
	        inflight(g) == 2 && V->procs[rg].kind == PROC_FREE &&
	        sums_match(),
	    "then shm_proc_free gives its slot back");

	/* The lock held by a live process: the master gives up. */
	pids[0] = dead;
	pids[1] = dead_pid();
	for (k = 0; k < 2; k++) {
		recs[k] = shm_proc_reserve();
		shm_proc_start(recs[k], pids[k], PROC_WORKER, "b", 1, 0);
		W->procs[recs[k]].held[g] = 1;
		W->scopes[g].inflight += 1;
		shm_proc_dead(recs[k], pids[k]);
	}
	W->lock = (uint32_t)sleeper[4];
	t0 = mono_ms();
	rc = shm_proc_free(recs, pids, 2);
	ms = mono_ms() - t0;
	CHECK(rc == -1 && ms >= 10 && ms < 90 &&
	        V->procs[recs[0]].kind != PROC_FREE &&
	        V->procs[recs[1]].kind != PROC_FREE && held(recs[0], g) == 1 &&
	        inflight(g) == 4 && V->lock == (uint32_t)sleeper[4],
	    "a busy lock: shm_proc_free gives up after 10 ms (took %lld ms), "
	    "records kept",
	    (long long)ms);
	copy = xmalloc(sizeof(*copy));
	memcpy(copy, V, sizeof(*copy));
	memset(&m, 0, sizeof(m));
	errno = 0;
	rc = shm_configure(C1, 1, &m, err, sizeof(err));
	CHECK(rc == -1 && errno == EBUSY &&
	        strcmp(err, "the shared memory lock is busy") == 0 &&
	        m.roles == NULL,
	    "a busy lock: shm_configure fails with EBUSY and a message");
	CHECK(memcmp(copy, V, sizeof(*copy)) == 0, "and changes nothing");
	free(copy);
	W->lock = 0;
	CHECK(shm_proc_free(recs, pids, 2) == 0 &&
	        V->procs[recs[0]].kind == PROC_FREE &&
	        V->procs[recs[1]].kind == PROC_FREE && inflight(g) == 2 &&
	        sums_match(),
	    "and succeeds once the lock is free: both records freed");

	sim_end(ra);
	sim_end(rx);
	ok = 1;
	for (s = 0; s < (int)V->nscopes; s++)
		ok &= V->scopes[s].inflight == 0;
	CHECK(ok && V->lock == 0, "all back");
}

/* A child-side call hung on the lock: say so, and fail. */
static void
on_alarm(int sig)
{
	static const char msg[] =
	    "not ok - hung on a lock held by a process that is gone\n";

	(void)sig;
	/* No atexit() here: what remove_files() does, signal-safely. */
	if (path != NULL)
		unlink(path);
	rmdir(dir);
	if (write(STDOUT_FILENO, msg, sizeof(msg) - 1) == -1)
		_exit(3);
	_exit(1);
}

/*
 * Case 11: the master killed (SIGKILL) while it held the lock.  A child
 * takes the lock over from a holder that no longer exists and recounts
 * what it may have left half done; a holder that exists keeps the lock.
 * alarm(): a regression fails instead of hanging.
 */
static void
test_takeover(void)
{
	int g = M1.global, ia = nA.idx[0], ra, fds[2], k = -1, got, ok;
	struct pollfd pfd;
	int64_t t0, ms;
	pid_t dead, pid;

	ra = sim(0, "a");
	as(ra);
	shm_acquire(&nA, 1, 0, 0);
	dead = dead_pid();
	signal(SIGALRM, on_alarm);
	fflush(stdout);
	W->lock = (uint32_t)dead;
	/* Counts it left half done: role a looks full. */
	W->scopes[g].inflight += 3;
	W->scopes[ia].inflight += 1;
	alarm(10);
	t0 = mono_ms();
	got = shm_acquire(&nA, 1, 0, 0);
	ms = mono_ms() - t0;
	alarm(0);
	CHECK(got == 1 && V->lock == 0 && held(ra, ia) == 2,
	    "the lock held by a process that no longer exists: shm_acquire "
	    "takes it over (in %lld ms; got %d)",
	    (long long)ms, got);
	CHECK(inflight(g) == 2 && inflight(ia) == 2 && sums_match(),
	    "and recounts before it counts the free slots");

	W->lock = (uint32_t)dead;
	W->scopes[g].inflight += 1;
	alarm(10);
	shm_release(&nA, 2, 0);
	alarm(0);
	CHECK(V->lock == 0 && inflight(g) == 0 && inflight(ia) == 0 &&
	        sums_match(),
	    "so does shm_release");

	/* A live holder: the child waits for it. */
	W->lock = (uint32_t)sleeper[4];
	if (pipe(fds) == -1) {
		CHECK(0, "pipe()");
		W->lock = 0;
		return;
	}
	fflush(stdout);
	if ((pid = fork()) == 0) {
		close(fds[0]);
		shm_self = ra;
		k = shm_acquire(&nFree, 1, 0, 0);
		if (write(fds[1], &k, sizeof(k)) != sizeof(k))
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	pfd.fd = fds[0];
	pfd.events = POLLIN;
	CHECK(pid > 0 && poll(&pfd, 1, 300) == 0,
	    "a holder that exists keeps the lock: the child still waits "
	    "after 300 ms");
	W->lock = 0;
	ok = poll(&pfd, 1, 5000) == 1 &&
	    read(fds[0], &k, sizeof(k)) == sizeof(k) && k == 1;
	CHECK(ok && held(ra, nFree.idx[0]) == 1,
	    "and takes its slot once the holder lets go");
	if (!ok && pid > 0)
		kill(pid, SIGKILL);
	close(fds[0]);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	as(ra);
	shm_release(&nFree, held(ra, nFree.idx[0]), 0);
	sim_end(ra);
	CHECK(all_idle() && sums_match() && V->lock == 0, "all back");
}

/*
 * A configuration of 3 + nmodels scopes and no global limit: provider
 * prov, role role on the first model, models mpfx0 .. mpfx<n-1> and the
 * lines of more.
 */
static struct cfg *
table_cfg(const char *role, const char *prov, const char *mpfx, int nmodels,
    const char *more)
{
	struct cfg *c;
	char *text, *t;
	int i;

	text = xasprintf("database: db\n"
	                 "providers:\n"
	                 "  %s: { kind: ollama, url: \"http://h:1\" }\n"
	                 "models:\n",
	    prov);
	for (i = 0; i < nmodels; i++) {
		t = xasprintf(
		    "%s  %s%d: { provider: %s }\n", text, mpfx, i, prov);
		free(text);
		text = t;
	}
	t = xasprintf(
	    "%s%sroles:\n  %s: { model: %s0 }\n", text, more, role, mpfx);
	free(text);
	c = load(t);
	free(t);
	return c;
}

/* Take (or give back) one slot in each scope of m but the global one. */
static void
hold_each(const struct cfg *c, const struct shm_map *m, int take)
{
	struct shm_need n;
	size_t i, k = 0, ns = c->nroles + c->nmodels + c->nproviders;

	n.n = 1;
	for (i = 0; i < ns; i++) {
		if (i < c->nroles)
			n.idx[0] = m->roles[i];
		else if (i < c->nroles + c->nmodels)
			n.idx[0] = m->models[i - c->nroles];
		else
			n.idx[0] = m->providers[i - c->nroles - c->nmodels];
		if (take)
			k += (size_t)shm_acquire(&n, 1, 0, 0);
		else
			shm_release(&n, 1, 0);
	}
	if (take && k != ns)
		printf("#   took %zu slots of %zu\n", k, ns);
}

static int gen_now; /* the generation last configured */

/*
 * Case 13, a full table.  One configuration has at most 128 scopes (cfg.c
 * refuses more), so the table of 256 fills only with scopes that still
 * drain: x's 127 while y's are installed, then y's.
 */
static void
test_full_table(void)
{
	struct cfg *x, *y, *z;
	struct shm_map mx, my, mz;
	struct shm_region *copy;
	struct shm_need n;
	char err[512] = "";
	int rh, rc, old124, i;
	const char *want_err = "too many scopes for the shared memory table "
	                       "(at most 255 roles, models and providers, "
	                       "counting those still draining)";

	x = table_cfg("rx", "px", "mx", 125, "");
	y = table_cfg("ry", "py", "my", 125, "");
	/* y with my123 and my124 replaced by two new models. */
	z = table_cfg("ry", "py", "my", 123,
	    "  mz0: { provider: py }\n  mz1: { provider: py }\n");
	rh = sim(0, "rx");

	shm_self = -1;
	CHECK(shm_configure(x, 4, &mx, err, sizeof(err)) == 0 &&
	        V->generation == 4,
	    "a table of 128 scopes");
	as(rh);
	hold_each(x, &mx, 1);
	shm_self = -1;
	rc = shm_configure(y, 5, &my, err, sizeof(err));
	CHECK(rc == 0 && V->nscopes == 255,
	    "and 127 more while the first 127 drain: 255 entries");
	if (rc == -1)
		printf("#   %s\n", err);
	as(rh);
	hold_each(y, &my, 1);

	/* One entry free, two wanted, my123 and my124 still held. */
	copy = xmalloc(sizeof(*copy));
	memcpy(copy, V, sizeof(*copy));
	memset(&mz, 0, sizeof(mz));
	shm_self = -1;
	rc = shm_configure(z, 6, &mz, err, sizeof(err));
	CHECK(rc == -1 && strcmp(err, want_err) == 0,
	    "one scope too many: shm_configure fails with a message");
	if (rc != -1 || strcmp(err, want_err) != 0)
		printf("#   got: %s\n", rc == -1 ? err : "(configured)");
	CHECK(memcmp(copy, V, sizeof(*copy)) == 0 && mz.roles == NULL,
	    "the failed shm_configure changed nothing");
	free(copy);

	old124 = my.models[124];
	n.n = 1;
	n.idx[0] = old124;
	as(rh);
	shm_release(&n, 1, 0);
	shm_self = -1;
	rc = shm_configure(z, 6, &mz, err, sizeof(err));
	CHECK(rc == 0 && V->nscopes == SHM_MAX_SCOPES &&
	        (mz.models[123] == old124 || mz.models[124] == old124) &&
	        mz.models[0] == my.models[0] && mz.roles[0] == my.roles[0] &&
	        !V->scopes[my.models[123]].live &&
	        V->scopes[my.models[123]].inflight == 1,
	    "once my124 drained: exactly 256 entries, its entry reused, "
	    "my123 still draining");
	if (rc == -1)
		printf("#   %s\n", err);
	gen_now = 6;
	for (i = 0; rc == 0 && i < 2; i++)
		CHECK(V->scopes[mz.models[123 + i]].kind == SCOPE_MODEL &&
		        V->scopes[mz.models[123 + i]].live &&
		        V->scopes[mz.models[123 + i]].inflight == 0,
		    "mz%d is a fresh model scope", i);

	sim_end(rh);
	CHECK(all_idle() && sums_match(), "all back");
	shm_map_free(&mx);
	shm_map_free(&my);
	if (rc == 0)
		shm_map_free(&mz);
	cfg_free(x);
	cfg_free(y);
	cfg_free(z);
}

/* Case 12: reloads keep, retire and reuse entries. */
static void
test_reload(void)
{
	struct cfg *c2, *c3;
	struct shm_map m2, m3;
	char err[512] = "";
	int g = M1.global, ia = nA.idx[0], heavy = nC.idx[1], ie = nEl.idx[0];
	int ra, rc, rx, before;
	uint64_t acq_a;

	ra = sim(0, "a");
	rc = sim(1, "c");
	rx = sim(2, "d");
	as(ra);
	shm_acquire(&nA, 1, 0, 0);
	as(rc);
	shm_acquire(&nC, 1, 0, 0);
	as(rx);
	shm_acquire(&nD, 3, 0, 0);
	shm_acquire(&nD, 1, 1, 0);
	acq_a = V->scopes[ia].acquired;
	CHECK(waits_on(rx, 0, nD.idx[2]) && place(rx, 0)->units == 1 &&
	        inflight(heavy) == 1 && sync_sleepers() == 0,
	    "before the reload: slots held in role a and heavy, d waits "
	    "on cloud");
	before = wakes[2];

	c2 = load(cfg2_text);
	shm_self = -1;
	CHECK(shm_configure(c2, 2, &m2, err, sizeof(err)) == 0,
	    "shm_configure with the second configuration");
	CHECK(V->generation == 2, "generation 2");
	CHECK(m2.global == g && V->scopes[g].limit == 8,
	    "global kept, new limit");
	CHECK(m2.roles[role_index(c2, "a")] == ia && V->scopes[ia].limit == 3 &&
	        V->scopes[ia].inflight == 1 &&
	        V->scopes[ia].acquired == acq_a && V->scopes[ia].live,
	    "role a keeps its entry and counters, new limit 3");
	CHECK(m2.roles[role_index(c2, "d")] == nD.idx[0] &&
	        m2.models[cfg_model_find(c2, "remote")] == nD.idx[1] &&
	        m2.providers[1] == nD.idx[2] && V->scopes[nD.idx[0]].live,
	    "other kept scopes keep their indexes");
	CHECK(V->scopes[heavy].kind == SCOPE_MODEL &&
	        strcmp(V->scopes[heavy].name, "heavy") == 0 &&
	        !V->scopes[heavy].live && V->scopes[heavy].inflight == 1 &&
	        V->scopes[heavy].limit == 1,
	    "the renamed model's old entry stays, retired, while held");
	CHECK(m2.models[cfg_model_find(c2, "heavy2")] == ie &&
	        V->scopes[ie].kind == SCOPE_MODEL &&
	        strcmp(V->scopes[ie].name, "heavy2") == 0 &&
	        V->scopes[ie].live && V->scopes[ie].limit == 1 &&
	        V->scopes[ie].inflight == 0 && V->scopes[ie].acquired == 0 &&
	        V->scopes[ie].peak == 0,
	    "the new name takes the entry of the dropped role e, reset");
	CHECK(sync_sleepers() == 0 && wakes[2] == before + 1,
	    "shm_configure wakes the waiters");

	as(rc);
	shm_release(&nC, 1, 0);
	CHECK(V->scopes[heavy].inflight == 0 && !V->scopes[heavy].live,
	    "released: the retired entry drains");
	c3 = load(cfg3_text);
	shm_self = -1;
	CHECK(shm_configure(c3, 3, &m3, err, sizeof(err)) == 0 &&
	        m3.models[cfg_model_find(c3, "extra")] == heavy &&
	        strcmp(V->scopes[heavy].name, "extra") == 0 &&
	        V->scopes[heavy].live && V->scopes[heavy].limit == 2 &&
	        V->scopes[heavy].acquired == 0 &&
	        m3.models[cfg_model_find(c3, "heavy2")] == ie,
	    "a later configure reuses the drained entry");
	sim_end(rc);
	sim_end(rx);

	as(ra);
	shm_release(&nA, 1, 0);
	sim_end(ra);
	shm_map_free(&m2);
	shm_map_free(&m3);
	cfg_free(c2);
	cfg_free(c3);
}

/* Case 14: llmqctl's view of the region, and files that are not one. */
static void
test_attach(void)
{
	const struct shm_region *v2, *bad;
	char err[512] = "", want[1024], *p;
	struct shm_region *fake;
	int fd;

	v2 = shm_attach(path, err, sizeof(err));
	CHECK(v2 != NULL && v2 != V && v2->magic == SHM_MAGIC &&
	        v2->generation == gen_now && v2->nscopes == SHM_MAX_SCOPES &&
	        v2->scopes[M1.global].limit == V->scopes[M1.global].limit &&
	        v2->scopes[M1.global].acquired ==
	            V->scopes[M1.global].acquired &&
	        v2->scopes[M1.global].peak == 6,
	    "a second reader sees the same counters");
	shm_detach(v2);

	p = xasprintf("%s/garbage", dir);
	fake = xcalloc(1, sizeof(*fake));
	memset(fake, 0x5a, sizeof(*fake));
	if ((fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1 ||
	    write(fd, fake, sizeof(*fake)) != (ssize_t)sizeof(*fake))
		CHECK(0, "write a garbage file");
	if (fd != -1)
		close(fd);
	bad = shm_attach(p, err, sizeof(err));
	snprintf(want, sizeof(want),
	    "\"%s\" was written by another version of llmqd", p);
	CHECK(
	    bad == NULL && strcmp(err, want) == 0, "a garbage file is refused");
	if (bad != NULL || strcmp(err, want) != 0)
		printf("#   want: %s\n#   got:  %s\n", want, err);

	memcpy(fake, V, sizeof(*fake));
	fake->version = SHM_VERSION + 1;
	if ((fd = open(p, O_WRONLY | O_TRUNC)) == -1 ||
	    write(fd, fake, sizeof(*fake)) != (ssize_t)sizeof(*fake))
		CHECK(0, "write a region of another version");
	if (fd != -1)
		close(fd);
	bad = shm_attach(p, err, sizeof(err));
	CHECK(bad == NULL && strcmp(err, want) == 0,
	    "a region of another version is refused");

	if ((fd = open(p, O_WRONLY | O_TRUNC)) == -1 ||
	    write(fd, fake, 64) != 64)
		CHECK(0, "write a short file");
	if (fd != -1)
		close(fd);
	bad = shm_attach(p, err, sizeof(err));
	snprintf(want, sizeof(want), "\"%s\" is not an llmqd state file", p);
	CHECK(bad == NULL && strcmp(err, want) == 0, "a short file is refused");
	unlink(p);
	free(p);
	free(fake);

	bad = shm_attach(dir, err, sizeof(err));
	snprintf(want, sizeof(want), "\"%s\" is not an llmqd state file", dir);
	CHECK(bad == NULL && strcmp(err, want) == 0, "a directory is refused");

	shm_destroy();
	CHECK(access(path, F_OK) == -1 && errno == ENOENT,
	    "shm_destroy removes the file");
	CHECK(V->magic == SHM_MAGIC, "a reader's mapping outlives it");
	bad = shm_attach(path, err, sizeof(err));
	snprintf(want, sizeof(want),
	    "could not open \"%s\": No such file or directory", path);
	CHECK(
	    bad == NULL && strcmp(err, want) == 0, "a missing file is refused");
}

/* Also when a setup step gives up with exit(1): leave no file behind. */
static void
remove_files(void)
{
	char *p;

	if (path != NULL) {
		unlink(path);
		p = xasprintf("%s.new", path);
		unlink(p);
		free(p);
		p = xasprintf("%s/garbage", dir);
		unlink(p);
		free(p);
		free(path);
		path = NULL;
	}
	rmdir(dir);
}

int
main(int argc, char **argv)
{
	int fd;

	(void)argc;
	(void)argv;
	log_init("test_shm", "stderr", LOG_WARNING);
	test_path();
	if (mkdtemp(dir) == NULL || start_sleepers() == -1) {
		printf("# setup failed: %s\n", strerror(errno));
		return 1;
	}
	path = xasprintf("%s/llmqd.shm", dir);
	atexit(remove_files);
	CHECK(shm_create(path, (uid_t)-1, (gid_t)-1) == 0, "shm_create");
	test_create();
	/* A second, writable mapping, to play a child that crashed. */
	if ((fd = open(path, O_RDWR)) == -1 ||
	    (W = mmap(NULL, sizeof(*W), PROT_READ | PROT_WRITE, MAP_SHARED, fd,
	         0)) == MAP_FAILED) {
		printf("# could not map \"%s\": %s\n", path, strerror(errno));
		return 1;
	}
	close(fd);

	test_configure();
	test_procs();
	test_all_or_nothing();
	test_held();
	test_fifo();
	test_wake();
	test_places();
	test_grace();
	test_wake_moves();
	test_gone();
	test_takeover();
	test_reload();
	test_full_table();
	test_attach();

	munmap(W, sizeof(*W));
	shm_detach(V);
	stop_sleepers();
	shm_map_free(&M1);
	cfg_free(C1);
	return tap_done();
}
