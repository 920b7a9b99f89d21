/*
 * master.h: the llmqd master process: forks, supervises and signals the
 * workers and the result consumer.
 */
#ifndef LLMQ_MASTER_H
#define LLMQ_MASTER_H

#include "cfg.h"

/*
 * Run until told to stop.  Takes ownership of cfg (freed or replaced on
 * reload).  pidfd is closed in children.  Returns the exit status.
 */
int master_run(struct cfg *cfg, const char *cfgpath, int pidfd);

#endif
