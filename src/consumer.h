/*
 * consumer.h: the result consumer process.
 *
 * It hands back the rows of dead workers and of expired leases, and
 * purges finished rows after the retention period.
 */
#ifndef LLMQ_CONSUMER_H
#define LLMQ_CONSUMER_H

#include "cfg.h"

int consumer_main(const struct cfg *cfg, int parent_fd);

#endif
