/*
 * metrics.h: the metrics file of the result consumer, in the Prometheus
 * text format (node_exporter's textfile collector convention).
 *
 * See metrics.c for what is counted and how; llmq(7) lists the metrics.
 */
#ifndef LLMQ_METRICS_H
#define LLMQ_METRICS_H

#include <libpq-fe.h>

#include "cfg.h"

struct metrics;

/* For cfg->metrics_file, which must be set. */
struct metrics *metrics_new(const struct cfg *);
void metrics_free(struct metrics *);

/*
 * Bring the counters up to date from the database (pg NULL: out of
 * reach; the database's metrics keep their last values) and rewrite the
 * file.  Returns 0, or -1 when a statement failed (logged; see
 * db_lost()).  The file is written either way; failing to write it is
 * logged once, until it works again.
 */
int metrics_run(struct metrics *, PGconn *pg);

#endif
