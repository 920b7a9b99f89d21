/*
 * shm.c: concurrency slots shared by every llmqd process.
 *
 * The master creates the region before it forks, as a file in the run
 * directory mapped MAP_SHARED, so that llmqctl can read the same counters
 * from outside.  Workers take and give slots themselves, under a lock
 * word in the region; the master is never asked.
 *
 * Why an owner-recorded table and not SysV semaphores with SEM_UNDO:
 * semop() would take all scopes at once and the kernel would undo a dead
 * process's holds, but the semaphore set is a system-wide object that
 * outlives a master killed with SIGKILL (it leaks until someone runs
 * ipcrm), its undo entries are bounded by kernel tunables, and the live
 * counters that llmqctl reads would need a second, shared mapping anyway.
 * So, as nginx's ngx_shmtx does, the lock word holds the pid of its
 * holder, and each child's holds are recorded in its own record:
 *
 *   - A scope's in-flight count is, by definition, the sum of held[] over
 *     the records.  The cached sum in the scope entry is updated together
 *     with held[] under the lock.
 *   - When a child dies, whatever it was doing, the master (right after
 *     waitpid(), before it can fork anyone who might reuse the pid) takes
 *     the lock from it if it held it, clears its record and recomputes
 *     every sum from the records that remain.  A child killed halfway
 *     through an update leaves only its own record inconsistent, and that
 *     record is thrown away; so no SIGKILL at any moment leaks a slot.
 *
 * Slots of one call are taken in every scope that applies (global, role,
 * model, provider) in one critical section, all or nothing, so there is
 * no partial hold and no lock ordering to get wrong.
 *
 * Waiting is first come, first served, slot by slot, as if each row
 * waited at a fair semaphore.  A child with rows to run that found a
 * scope full stands in line for the slots it is short of: a range of
 * consecutive tickets, on the narrowest scope that was full (role, then
 * model, provider, global), like a row that takes its role's semaphore
 * before the global one; so rows held back by their own role do not
 * stand in line for the global limit.  A slot of that scope is free for
 * another child only once every slot queued before that child's own
 * first ticket has been served.  A child has one place in line per model
 * of its role, each with its own tickets.  A role that shares a global
 * limit with a busier one thus gets its turn in proportion to what it
 * waits for, instead of losing every race for a freed slot to whichever
 * process loops first.  Whoever gives a slot back (or gives up a place
 * in line) sends the waiters SIGUSR2, and they claim again at once rather
 * than at their next poll.  A waiter that was woken and has not come
 * back within a second (stopped, or stuck) is owed nothing until it
 * does, so it cannot hold a scope idle.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "shm.h"
#include "util.h"

#define MASTER_LOCK_MS 10   /* then give up and try again later */
#define TAKEOVER_SPINS 1024 /* then see whether the holder is dead */
#define WOKEN_GRACE_MS 1000 /* a waiter woken this long ago: not owed */

static struct shm_region *R;
static char *R_path;
int shm_self = -1;

char *
shm_path(const char *pidfile)
{
	size_t len = strlen(pidfile);

	if (len > 4 && strcmp(pidfile + len - 4, ".pid") == 0)
		return xasprintf("%.*s.shm", (int)(len - 4), pidfile);
	return xasprintf("%s.shm", pidfile);
}

static int
lock_try(uint32_t me)
{
	uint32_t free_word = 0;

	return __atomic_compare_exchange_n(
	    &R->lock, &free_word, me, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static void
pause_a_little(unsigned spins)
{
	struct timespec ts = { 0, 50000 };

	/* Critical sections are a few hundred instructions long. */
	if (spins < 100)
		sched_yield();
	else
		nanosleep(&ts, NULL);
}

static void recount(void);

/*
 * Children: wait for the lock however long it takes.  A child that dies
 * holding it is seen to by the master; but the master itself may die
 * holding it (SIGKILL), and then nobody would: after a while, a holder
 * that no longer exists (not even as a zombie) is replaced, and the sums
 * it may have left half done are recomputed.
 */
static void
lock_child(void)
{
	uint32_t me = (uint32_t)getpid(), holder;
	unsigned spins;

	for (spins = 0; !lock_try(me); spins++) {
		if (spins % TAKEOVER_SPINS == TAKEOVER_SPINS - 1 &&
		    (holder = __atomic_load_n(&R->lock, __ATOMIC_RELAXED)) !=
		        0 &&
		    kill((pid_t)holder, 0) == -1 && errno == ESRCH &&
		    __atomic_compare_exchange_n(&R->lock, &holder, me, 0,
		        __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
			recount();
			return;
		}
		pause_a_little(spins);
	}
}

/*
 * The master must not hang behind a child stopped with SIGSTOP while it
 * held the lock: it gives up after a while and tries again later.
 */
static int
lock_master(void)
{
	uint32_t me = (uint32_t)getpid();
	int64_t until = mono_ms() + MASTER_LOCK_MS;
	unsigned spins;

	for (spins = 0; !lock_try(me); spins++) {
		if (mono_ms() >= until)
			return -1;
		pause_a_little(spins);
	}
	return 0;
}

static void
unlock(void)
{
	__atomic_store_n(&R->lock, 0, __ATOMIC_RELEASE);
}

int
shm_create(const char *path, uid_t uid, gid_t gid)
{
	char *tmp;
	void *p;
	int fd;

	tmp = xasprintf("%s.new", path);
	if (unlink(tmp) == -1 && errno != ENOENT) {
		log_warn("could not remove \"%s\"", tmp);
		free(tmp);
		return -1;
	}
	/* Mapped by every child and read by llmqctl: not through a link. */
	fd =
	    open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd == -1) {
		log_warn("could not create \"%s\"", tmp);
		free(tmp);
		return -1;
	}
	if (ftruncate(fd, sizeof(struct shm_region)) == -1) {
		log_warn("could not size \"%s\"", tmp);
		goto fail;
	}
	if (uid != (uid_t)-1 && fchown(fd, uid, gid) == -1) {
		log_warn("could not chown \"%s\"", tmp);
		goto fail;
	}
	p = mmap(NULL, sizeof(struct shm_region), PROT_READ | PROT_WRITE,
	    MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		log_warn("mmap() of \"%s\" failed", tmp);
		goto fail;
	}
	if (rename(tmp, path) == -1) {
		log_warn("could not rename \"%s\" to \"%s\"", tmp, path);
		munmap(p, sizeof(struct shm_region));
		goto fail;
	}
	close(fd);
	free(tmp);
	R = p;
	R->magic = SHM_MAGIC;
	R->version = SHM_VERSION;
	R->size = sizeof(struct shm_region);
	R->master_pid = (int32_t)getpid();
	R->master_started = wall_us();
	R_path = xstrdup(path);
	return 0;
fail:
	close(fd);
	unlink(tmp);
	free(tmp);
	return -1;
}

void
shm_destroy(void)
{
	if (R == NULL)
		return;
	/* The directory may not be ours after the privilege drop. */
	if (unlink(R_path) == -1 && errno != ENOENT) {
		R->master_pid = 0;
		log_warn("could not remove \"%s\"", R_path);
	}
	munmap(R, sizeof(*R));
	R = NULL;
	free(R_path);
	R_path = NULL;
}

/* Recompute every scope's in-flight count from the records. */
static void
recount(void)
{
	uint32_t s;
	int p;
	int32_t n;

	for (s = 0; s < R->nscopes; s++) {
		n = 0;
		for (p = 0; p < SHM_MAX_PROCS; p++)
			if (R->procs[p].kind != PROC_FREE)
				n += R->procs[p].held[s];
		R->scopes[s].inflight = n;
	}
}

int
shm_proc_waiting(const struct shm_proc *p)
{
	int w;

	for (w = 0; w < SHM_WAITS; w++)
		if (p->waits[w].units != 0)
			return 1;
	return 0;
}

/*
 * Under the lock: send SIGUSR2 to every waiting child but us.  A record's
 * pid is cleared before its child is reaped (shm_proc_dead), so the pid
 * read here is a live child or a zombie, never a stranger.
 */
static void
wake_waiters(void)
{
	struct shm_proc *p;
	int i;

	for (i = 0; i < SHM_MAX_PROCS; i++) {
		p = &R->procs[i];
		if (i == shm_self || p->woken || p->pid <= 0 ||
		    !shm_proc_waiting(p))
			continue;
		p->woken = 1;
		p->woken_at = mono_ms();
		if (kill(p->pid, SIGUSR2) == -1 && errno != ESRCH)
			log_warn("kill(%d, SIGUSR2) failed", (int)p->pid);
	}
}

/* Find the entry of kind/name, or -1. */
static int
find_scope(enum shm_kind kind, const char *name)
{
	uint32_t s;

	for (s = 0; s < R->nscopes; s++)
		if (R->scopes[s].kind == kind &&
		    strcmp(R->scopes[s].name, name) == 0)
			return (int)s;
	return -1;
}

struct want {
	enum shm_kind kind;
	const char *name;
	int limit;
};

int
shm_configure(const struct cfg *cfg, int gen, struct shm_map *map, char *err,
    size_t errlen)
{
	struct want *w;
	char used[SHM_MAX_SCOPES];
	int *idx, fresh[SHM_MAX_SCOPES];
	size_t nw, i, k;
	int s, rc = -1;

	nw = 1 + cfg->nroles + cfg->nmodels + cfg->nproviders;
	w = xcalloc(nw, sizeof(*w));
	idx = xcalloc(nw, sizeof(*idx));
	k = 0;
	w[k++] = (struct want){ SCOPE_GLOBAL, "global", cfg->limit_global };
	for (i = 0; i < cfg->nroles; i++)
		w[k++] = (struct want){ SCOPE_ROLE, cfg->roles[i].name,
			cfg->roles[i].concurrency };
	for (i = 0; i < cfg->nmodels; i++)
		w[k++] = (struct want){ SCOPE_MODEL, cfg->models[i].name,
			cfg->models[i].concurrency };
	for (i = 0; i < cfg->nproviders; i++)
		w[k++] = (struct want){ SCOPE_PROVIDER, cfg->providers[i].name,
			cfg->providers[i].concurrency };

	if (lock_master() == -1) {
		snprintf(err, errlen, "the shared memory lock is busy");
		errno = EBUSY;
		goto out;
	}
	/* First the entries kept by name, then new ones in free places. */
	memset(used, 0, sizeof(used));
	memset(fresh, 0, sizeof(fresh));
	for (i = 0; i < nw; i++)
		if ((idx[i] = find_scope(w[i].kind, w[i].name)) != -1)
			used[idx[i]] = 1;
	for (i = 0; i < nw; i++) {
		if (idx[i] != -1)
			continue;
		for (s = 0; s < SHM_MAX_SCOPES; s++)
			if (!used[s] && R->scopes[s].inflight == 0)
				break;
		if (s == SHM_MAX_SCOPES) {
			snprintf(err, errlen,
			    "too many scopes for the shared memory table "
			    "(at most %d roles, models and providers, "
			    "counting those still draining)",
			    SHM_MAX_SCOPES - 1);
			unlock();
			goto out;
		}
		idx[i] = s;
		used[s] = 1;
		fresh[s] = 1;
	}
	/* Nothing can fail from here on. */
	for (s = 0; s < SHM_MAX_SCOPES; s++) {
		R->scopes[s].live = 0;
		if (!used[s] && R->scopes[s].inflight == 0)
			memset(&R->scopes[s], 0, sizeof(R->scopes[s]));
	}
	for (i = 0; i < nw; i++) {
		struct shm_scope *sc = &R->scopes[idx[i]];

		if (fresh[idx[i]]) {
			memset(sc, 0, sizeof(*sc));
			sc->kind = w[i].kind;
			snprintf(sc->name, sizeof(sc->name), "%s", w[i].name);
		}
		sc->limit = w[i].limit;
		sc->live = 1;
	}
	R->generation = gen;
	R->nscopes = 0;
	for (s = 0; s < SHM_MAX_SCOPES; s++)
		if (R->scopes[s].kind != SCOPE_FREE)
			R->nscopes = s + 1;
	recount();
	/* A limit may have grown: let the waiters look again. */
	wake_waiters();
	unlock();

	k = 0;
	map->global = idx[k++];
	map->roles = xcalloc(cfg->nroles, sizeof(int));
	map->models = xcalloc(cfg->nmodels, sizeof(int));
	map->providers = xcalloc(cfg->nproviders, sizeof(int));
	for (i = 0; i < cfg->nroles; i++)
		map->roles[i] = idx[k++];
	for (i = 0; i < cfg->nmodels; i++)
		map->models[i] = idx[k++];
	for (i = 0; i < cfg->nproviders; i++)
		map->providers[i] = idx[k++];
	rc = 0;
out:
	free(w);
	free(idx);
	return rc;
}

void
shm_map_free(struct shm_map *map)
{
	free(map->roles);
	free(map->models);
	free(map->providers);
	memset(map, 0, sizeof(*map));
}

int
shm_proc_reserve(void)
{
	int i;

	/* Only the master changes kind, and only in its own thread. */
	for (i = 0; i < SHM_MAX_PROCS; i++)
		if (R->procs[i].kind == PROC_FREE) {
			memset(&R->procs[i], 0, sizeof(R->procs[i]));
			R->procs[i].kind = PROC_WORKER;
			return i;
		}
	return -1;
}

void
shm_proc_start(int rec, pid_t pid, enum shm_proc_kind kind, const char *role,
    int gen, unsigned restarts)
{
	struct shm_proc *p = &R->procs[rec];

	snprintf(p->role, sizeof(p->role), "%s", role);
	p->kind = kind;
	p->gen = gen;
	p->restarts = restarts;
	p->started = wall_us();
	__atomic_store_n(&p->pid, (int32_t)pid, __ATOMIC_RELEASE);
}

void
shm_proc_exiting(int rec)
{
	R->procs[rec].exiting = 1;
}

void
shm_proc_unreserve(int rec)
{
	/* No child ever used it: nothing held, nobody waits. */
	memset(&R->procs[rec], 0, sizeof(R->procs[rec]));
}

void
shm_proc_dead(int rec, pid_t pid)
{
	uint32_t dead = (uint32_t)pid;

	__atomic_store_n(&R->procs[rec].pid, 0, __ATOMIC_RELEASE);
	/*
	 * A child that died in a critical section: the lock is ours to
	 * give back; the sums it left half done are recomputed when its
	 * record is freed.  Done once, before the pid can be reused.
	 */
	if (__atomic_compare_exchange_n(
	        &R->lock, &dead, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		log_info(
		    "process %d died holding the shared memory lock", (int)pid);
}

int
shm_proc_free(const int *recs, const pid_t *pids, int n)
{
	struct shm_proc *p;
	int held, i, s, any = 0;

	if (lock_master() == -1)
		return -1;
	for (i = 0; i < n; i++) {
		p = &R->procs[recs[i]];
		for (held = 0, s = 0; s < SHM_MAX_SCOPES; s++)
			held += p->held[s];
		memset(p, 0, sizeof(*p));
		if (held > 0)
			log_info("released %d slot%s held by process %d", held,
			    held == 1 ? "" : "s", (int)pids[i]);
		any += held;
	}
	recount();
	if (any > 0)
		wake_waiters();
	unlock();
	return 0;
}

/*
 * Slots of scope s owed to those in line before ticket mine, other than
 * place skip of our own.  A waiter that was woken long ago and has not
 * come back (stopped, or stuck) is owed nothing, and nobody is owed more
 * than the scope's limit.
 */
static int
owed(int s, uint64_t mine, const struct shm_wait *skip, int64_t now)
{
	const struct shm_proc *p;
	const struct shm_wait *w;
	uint64_t before;
	int i, j, n = 0, lim = R->scopes[s].limit;

	for (i = 0; i < SHM_MAX_PROCS; i++) {
		p = &R->procs[i];
		if (p->kind == PROC_FREE ||
		    (p->woken && now - p->woken_at > WOKEN_GRACE_MS))
			continue;
		for (j = 0; j < SHM_WAITS; j++) {
			w = &p->waits[j];
			if (w == skip || w->units == 0 || w->scope != s ||
			    w->ticket >= mine)
				continue;
			before = mine - w->ticket;
			if (before > w->units)
				before = w->units;
			n += before > (uint64_t)lim ? lim : (int)before;
		}
	}
	return n;
}

int
shm_acquire(const struct shm_need *need, int want, int wait, int wi)
{
	struct shm_scope *sc;
	struct shm_proc *me = &R->procs[shm_self];
	struct shm_wait *w = &me->waits[wi];
	int i, k = want, shortest = -1, first_full = -1, was;
	int32_t left;
	int64_t now = mono_ms();
	uint64_t mine;

	lock_child();
	me->woken = 0;
	mine = w->units != 0 ? w->ticket : UINT64_MAX;
	/*
	 * Never more than the tightest limit allows at once: a place in
	 * line for more would hold back, in its wider scopes, slots that it
	 * could never use (a heavy model's rows, 1 at a time, waiting on the
	 * role's 5).
	 */
	for (i = 0; i < need->n; i++) {
		sc = &R->scopes[need->idx[i]];
		if (sc->limit > 0 && want > sc->limit)
			want = sc->limit;
	}
	k = want;
	for (i = 0; i < need->n; i++) {
		sc = &R->scopes[need->idx[i]];
		if (sc->limit <= 0)
			continue;
		left =
		    sc->limit - sc->inflight - owed(need->idx[i], mine, w, now);
		if (left < 0)
			left = 0; /* a limit lowered by a reload, or owed */
		if (left < want && first_full == -1)
			first_full = need->idx[i];
		if (left < k) {
			k = left;
			shortest = need->idx[i];
		}
	}
	/* Refused while rows wait: what an operator wants to see. */
	if (shortest != -1 && wait)
		R->scopes[shortest].denied++;
	for (i = 0; i < need->n && k > 0; i++) {
		sc = &R->scopes[need->idx[i]];
		me->held[need->idx[i]] += k;
		sc->inflight += k;
		sc->acquired += k;
		if (sc->inflight > sc->peak)
			sc->peak = sc->inflight;
	}
	/*
	 * Short, with rows to run: stand in line for the slots missing, on
	 * the narrowest scope that was full.  Slots served move the first
	 * ticket on; the rest keep their place.  Otherwise leave the line.
	 * Whenever a place is given up or moves to another scope, slots that
	 * were held back for it may be free for others: wake them.
	 */
	was = w->units != 0 ? w->scope : -1;
	if (k < want && wait) {
		if (w->units == 0)
			w->ticket = R->next_ticket + 1;
		else
			w->ticket += k;
		w->units = want - k;
		w->scope = first_full;
		/* next_ticket is the last one given out. */
		if (w->ticket + w->units - 1 > R->next_ticket)
			R->next_ticket = w->ticket + w->units - 1;
	} else
		w->units = 0;
	if (was != -1 && (w->units == 0 || w->scope != was))
		wake_waiters();
	unlock();
	return k;
}

void
shm_release(const struct shm_need *need, int k, int unused)
{
	struct shm_proc *me = &R->procs[shm_self];
	int i;

	if (k <= 0)
		return;
	lock_child();
	for (i = 0; i < need->n; i++) {
		me->held[need->idx[i]] -= k;
		R->scopes[need->idx[i]].inflight -= k;
		/* Taken for a claim that found fewer rows: not a use. */
		if (unused)
			R->scopes[need->idx[i]].acquired -= k;
	}
	wake_waiters();
	unlock();
}

int
shm_provider_outcome(int s, int ok, int64_t started_us, int failures,
    int64_t window_ms, int64_t cool_ms)
{
	struct shm_scope *sc = &R->scopes[s];
	int64_t now;
	int cooled = 0;

	/*
	 * The common case, a call that went well while nothing was counted,
	 * changes nothing: no lock on every call's way out.
	 */
	if (failures <= 0 ||
	    (ok && __atomic_load_n(&sc->fails, __ATOMIC_RELAXED) == 0))
		return 0;
	now = mono_ms();
	lock_child();
	if (ok)
		sc->fails = 0;
	else if (now < sc->cool_until || started_us < sc->cool_began)
		; /* during, or sent before, the last cool-down: counted */
	else {
		if (sc->fails == 0 || now - sc->first_fail > window_ms) {
			sc->fails = 0;
			sc->first_fail = now;
		}
		if (++sc->fails >= failures) {
			sc->cool_until = now + cool_ms;
			sc->cool_began = wall_us();
			sc->cool_wall = sc->cool_began + cool_ms * 1000;
			sc->cooldowns++;
			sc->fails = 0;
			cooled = 1;
		}
	}
	unlock();
	return cooled;
}

int64_t
shm_provider_cooling(int s)
{
	int64_t until, now;

	until = __atomic_load_n(&R->scopes[s].cool_until, __ATOMIC_RELAXED);
	if (until == 0 || (now = mono_ms()) >= until)
		return 0;
	return until - now;
}

void
shm_unwant(int wi)
{
	struct shm_wait *w;

	if (R == NULL || shm_self == -1)
		return;
	w = &R->procs[shm_self].waits[wi];
	if (w->units == 0)
		return;
	lock_child();
	w->units = 0;
	/* Slots held back for us are free for the others now. */
	wake_waiters();
	unlock();
}

void
shm_unwant_all(void)
{
	int w;

	for (w = 0; w < SHM_WAITS; w++)
		shm_unwant(w);
}

const struct shm_region *
shm_attach(const char *path, char *err, size_t errlen)
{
	struct stat st;
	struct shm_region *p;
	int fd;

	/* O_NONBLOCK: a FIFO planted there must not hang us. */
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "could not open \"%s\": %s", path,
		    strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size < sizeof(struct shm_region)) {
		snprintf(
		    err, errlen, "\"%s\" is not an llmqd state file", path);
		close(fd);
		return NULL;
	}
	p = mmap(NULL, sizeof(*p), PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "mmap() of \"%s\" failed: %s", path,
		    strerror(errno));
		return NULL;
	}
	if (p->magic != SHM_MAGIC || p->version != SHM_VERSION ||
	    p->size != sizeof(*p)) {
		snprintf(err, errlen,
		    "\"%s\" was written by another version of llmqd", path);
		munmap(p, sizeof(*p));
		return NULL;
	}
	return p;
}

void
shm_detach(const struct shm_region *p)
{
	if (p != NULL)
		munmap((void *)p, sizeof(*p));
}

const char *
shm_kind_name(enum shm_kind kind)
{
	switch (kind) {
	case SCOPE_GLOBAL:
		return "global";
	case SCOPE_ROLE:
		return "role";
	case SCOPE_MODEL:
		return "model";
	case SCOPE_PROVIDER:
		return "provider";
	default:
		return "?";
	}
}
