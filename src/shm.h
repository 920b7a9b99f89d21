/*
 * shm.h: concurrency slots and live counters in memory shared by the
 * llmqd master, its children and, read-only, llmqctl.
 *
 * The region is a file next to the pidfile (llmqd.pid gives llmqd.shm),
 * mapped MAP_SHARED.  It holds one entry per scope (global, each role,
 * model and provider) with its limit and counters, and one record per
 * child process with the slots it holds in each scope.  See shm.c for
 * the locking and for why a dead process can never leak a slot.
 */
#ifndef LLMQ_SHM_H
#define LLMQ_SHM_H

#include <stdint.h>
#include <sys/types.h>

#include "cfg.h"

#define SHM_MAGIC 0x716d6c6cU /* "llmq" */
#define SHM_VERSION 1
#define SHM_MAX_SCOPES 256
#define SHM_MAX_PROCS 128
#define SHM_NAME_LEN 128
/* Scopes one call needs: role, model, provider, global. */
#define SHM_NEED_MAX 4
/* Places in line per child: one per model of its role. */
#define SHM_WAITS 8 /* CFG_ROLE_MODELS_MAX */

enum shm_kind {
	SCOPE_FREE = 0,
	SCOPE_GLOBAL,
	SCOPE_ROLE,
	SCOPE_MODEL,
	SCOPE_PROVIDER,
};

struct shm_scope {
	uint32_t kind; /* enum shm_kind; SCOPE_FREE: unused entry */
	uint32_t live; /* part of the running configuration */
	char name[SHM_NAME_LEN];
	int32_t limit;      /* 0: no limit of its own */
	int32_t inflight;   /* the sum of the records' held[] */
	int32_t peak;       /* most in flight at once */
	int32_t fails;      /* provider: failures in a row */
	uint64_t acquired;  /* slots taken, ever */
	uint64_t denied;    /* times this scope was the one that was full */
	int64_t first_fail; /* provider: monotonic ms of the first of them */
	int64_t cool_until; /* provider: cooled down until, monotonic ms */
	int64_t cool_wall;  /* ... the same, wall clock microseconds */
	int64_t cool_began; /* wall clock microseconds */
	uint64_t cooldowns; /* provider: times cooled down */
};

enum shm_proc_kind { PROC_FREE = 0, PROC_WORKER, PROC_CONSUMER };

struct shm_proc {
	int32_t pid;   /* 0 while the record is being set up or free */
	uint32_t kind; /* enum shm_proc_kind */
	char role[48];
	int32_t gen;       /* configuration generation */
	uint32_t restarts; /* of this child's place in the table */
	int64_t started;   /* wall clock, microseconds */
	struct shm_wait {
		uint64_t ticket; /* place of its first waiting slot */
		uint32_t units; /* slots it waits for from ticket on; 0: none */
		int32_t scope;  /* the narrowest full scope it waits on */
	} waits[SHM_WAITS];
	int64_t woken_at; /* monotonic ms when sent SIGUSR2 */
	uint32_t woken;   /* sent SIGUSR2, not yet back for slots */
	uint32_t exiting; /* asked to stop */
	uint16_t held[SHM_MAX_SCOPES];
};

struct shm_region {
	uint32_t magic;
	uint32_t version;
	uint32_t size; /* of the whole region, bytes */
	int32_t master_pid;
	int64_t master_started; /* wall clock, microseconds */
	uint32_t lock;          /* pid of the holder; 0: free */
	int32_t generation;
	uint32_t nscopes; /* entries in use or retired: scan this many */
	uint32_t pad;
	uint64_t next_ticket;
	struct shm_scope scopes[SHM_MAX_SCOPES];
	struct shm_proc procs[SHM_MAX_PROCS];
};

/* The scope indexes of one configuration, built by shm_configure(). */
struct shm_map {
	int global;
	int *roles;     /* by cfg->roles index */
	int *models;    /* by cfg->models index */
	int *providers; /* by cfg->providers index */
};

/*
 * The scopes a call holds a slot in, all or none, narrowest first: role,
 * model, provider, global.
 */
struct shm_need {
	int n;
	int idx[SHM_NEED_MAX];
};

/* The region's path for a pidfile path: ".pid" becomes ".shm". */
char *shm_path(const char *pidfile);

/*
 * Master, before dropping privileges: create a new region at path (a
 * fresh file renamed into place, so that processes of an earlier run
 * that still map the old one are not disturbed), owned by uid/gid when
 * they are not -1.  Returns 0 or -1 (logged).
 */
int shm_create(const char *path, uid_t uid, gid_t gid);
/* Master at exit: unmap and remove the file. */
void shm_destroy(void);

/*
 * Master: bring the scope table in line with cfg (limits of scopes kept
 * by name are updated; scopes no longer configured are retired, and
 * reused once nobody holds them) and fill map.  Returns 0, or -1 with err
 * set when the table is full, or with errno EBUSY when the lock could not
 * be had in time (try again); then nothing changed.
 */
int shm_configure(
    const struct cfg *, int gen, struct shm_map *map, char *err, size_t errlen);
void shm_map_free(struct shm_map *);

/*
 * Master, before fork(): reserve a record for a child; returns its index
 * or -1 when the table is full.  After fork(), the master fills it in
 * with shm_proc_start(); until then its pid reads 0 (the child's holds
 * are recorded all the same).
 */
int shm_proc_reserve(void);
void shm_proc_start(int rec, pid_t pid, enum shm_proc_kind kind,
    const char *role, int gen, unsigned restarts);
/* Master: the child was asked to stop. */
void shm_proc_exiting(int rec);
/*
 * Master, when a child has died but before it is reaped (so that its pid
 * cannot be reused yet): if it held the lock, take the lock from it, and
 * forget its pid so that nobody signals it again.
 */
void shm_proc_dead(int rec, pid_t pid);
/*
 * Master, after shm_proc_dead(): give back every slot the dead children
 * recs[0..n-1] (whose pids were pids[]) held and free their records.  Returns
 * 0, or -1 when the lock is busy (try again later).
 */
int shm_proc_free(const int *recs, const pid_t *pids, int n);
/* Master: a record reserved for a child that was never started. */
void shm_proc_unreserve(int rec);

/* Child: the record it was given (set before fork). */
extern int shm_self;

/*
 * Child: take up to want slots in every scope of need, all or nothing
 * for each: returns how many (0..want).  Slots owed to those who have
 * waited longer are not free to take.  With wait, when fewer than want
 * were free, the child stands in line (in place w, 0..SHM_WAITS-1, one
 * per kind of need it has) on the narrowest scope that was full, and
 * receives SIGUSR2 when another process gives a slot back; without
 * wait, or when served in full, it leaves place w.
 */
int shm_acquire(const struct shm_need *, int want, int wait, int w);
/*
 * Child: give back k slots of need, and wake the waiters; unused when
 * they were taken for rows that were not there (not counted as taken).
 */
void shm_release(const struct shm_need *, int k, int unused);
/*
 * Child: a call to the provider of scope s, started at started_us (wall
 * clock), ended well (ok) or with a transient failure; a failure of a
 * call started before the last cool-down began is not counted.  failures such
 * failures in a row within window_ms cool the provider down for cool_ms, for
 * every process: returns 1 when this call did that.
 */
int shm_provider_outcome(int s, int ok, int64_t started_us, int failures,
    int64_t window_ms, int64_t cool_ms);
/* Child: milliseconds the provider of scope s stays cooled down; 0: none. */
int64_t shm_provider_cooling(int s);

/* Child: leave place w in line (nothing left to run for it). */
void shm_unwant(int w);
/* Child: leave every place (stopping, or lost its database). */
void shm_unwant_all(void);

/*
 * llmqctl: map the region at path read-only.  Returns it, or NULL with
 * err set (no such file, not a region of this version).
 */
const struct shm_region *shm_attach(const char *path, char *err, size_t errlen);
void shm_detach(const struct shm_region *);

const char *shm_kind_name(enum shm_kind);
/* The child of record p stands in line for slots. */
int shm_proc_waiting(const struct shm_proc *p);

#endif
