/*
 * worker.h: a worker process serves one role; the result consumer runs
 * the housekeeping.  Both are entered right after fork() and return the
 * process's exit status.
 */
#ifndef LLMQ_WORKER_H
#define LLMQ_WORKER_H

#include <signal.h>

#include "cfg.h"
#include "shm.h"

/* Exit status of a child that must not be restarted (bad config). */
#define EXIT_NORESTART 78 /* EX_CONFIG */

/*
 * Serve role (index into cfg->roles), taking slots in the scopes of map.
 * parent_fd reads EOF when the master dies.
 */
int worker_main(
    const struct cfg *cfg, int role, const struct shm_map *map, int parent_fd);

/* Install the child's signal handlers, writing to a new self-pipe. */
int child_signals(void);
/* The read end of that pipe, to poll. */
int child_wake_fd(void);

/* Flags set by the child's handlers. */
extern volatile sig_atomic_t child_term, child_quit, child_usr1, child_usr2;

#endif
