/*
 * consumer.c: the result consumer, llmqd's housekeeping process.
 *
 * Results reach their callers by the NOTIFY sent in the finishing
 * transaction; what is left for this process is the rows nobody will
 * finish.  Every interval it hands back the rows of this host's workers
 * that died (a successor does the same for its role at start-up; doing
 * it here too covers roles that a reload removed) and the rows whose
 * lease expired (a host that vanished), fails the pending rows that
 * passed their queue deadline (error kind overload), deletes expired
 * cache entries and the pieces of streamed replies that no call will
 * finish, and once a minute deletes finished rows older than the
 * retention, in small batches so that no statement holds locks for
 * long.
 *
 * When consumer.metrics_file is set it also rewrites that file every
 * interval (metrics.c), also while the database is out of reach.
 *
 * The master stops the consumer after every worker has exited; its last
 * act is one more hand-back, for the rows of workers that had to be
 * killed, so that no row stays processing after llmqd has stopped.
 */
#include "config.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "consumer.h"
#include "log.h"
#include "metrics.h"
#include "proctitle.h"
#include "util.h"
#include "worker.h"

#define PURGE_BATCH 1000
#define OVERLOAD_BATCH 1000
#define PURGE_EVERY_MS 60000

/*
 * Delete the pieces of streams no call will finish, and expired cache
 * entries, a batch at a time while batches come back full.
 */
static int
sweep(PGconn *pg)
{
	int n, total = 0;

	while ((n = db_purge_partials(pg, PURGE_BATCH)) == PURGE_BATCH &&
	    !child_term && !child_quit)
		;
	if (n == -1)
		return -1;
	while ((n = db_purge_cache(pg, PURGE_BATCH)) > 0 && !child_term &&
	    !child_quit) {
		total += n;
		if (n < PURGE_BATCH)
			break;
	}
	if (total > 0)
		log_info("deleted %d expired cache entr%s", total,
		    total == 1 ? "y" : "ies");
	return n == -1 ? -1 : 0;
}

int
consumer_main(const struct cfg *cfg, int parent_fd)
{
	PGconn *pg = NULL;
	struct metrics *metrics = NULL;
	struct pollfd pfd[2];
	int64_t now, next_run = 0, next_purge = 0, backoff = 100;
	int n, total;
	char buf[64];

	log_set_role("consumer");
	proctitle_set("llmqd: result consumer");
	log_info("consumer started");
	if (cfg->metrics_file != NULL)
		metrics = metrics_new(cfg);

	while (!child_term && !child_quit) {
		now = mono_ms();
		if (child_usr1) {
			child_usr1 = 0;
			if (log_reopen() == -1)
				log_warn("could not reopen the log");
		}
		if (now >= next_run) {
			if (pg == NULL &&
			    (pg = db_connect(
			         cfg->database, "llmqd consumer")) == NULL) {
				if (metrics != NULL)
					metrics_run(metrics, NULL);
				next_run = now + backoff;
				backoff =
				    backoff * 2 > 5000 ? 5000 : backoff * 2;
				goto wait;
			}
			backoff = 100;
			if (db_rescue_dead(pg, NULL) == -1 ||
			    db_rescue_expired(pg) == -1)
				goto lost;
			while ((n = db_overload(pg, OVERLOAD_BATCH)) ==
			        OVERLOAD_BATCH &&
			    !child_term && !child_quit)
				;
			if (n == -1)
				goto lost;
			if (now >= next_purge) {
				total = 0;
				while ((n = db_purge(pg, cfg->retention_ms,
				            PURGE_BATCH)) > 0 &&
				    !child_term && !child_quit)
					total += n;
				if (n == -1)
					goto lost;
				if (total > 0)
					log_info("purged %d finished request%s",
					    total, total == 1 ? "" : "s");

				next_purge = now + PURGE_EVERY_MS;
			}
			/*
			 * Last, and not in the way of the above when they
			 * fail for another reason than a lost connection
			 * (logged; tried again next time).
			 */
			if (sweep(pg) == -1 && db_lost(pg))
				goto lost;
			if (metrics != NULL && metrics_run(metrics, pg) == -1 &&
			    db_lost(pg))
				goto lost;
			next_run = now + cfg->consumer_interval_ms;
		}
		goto wait;
	lost:
		if (db_lost(pg)) {
			PQfinish(pg);
			pg = NULL;
			log_warnx("lost the database connection; reconnecting");
		}
		next_run = mono_ms() + backoff;
	wait:
		pfd[0].fd = child_wake_fd();
		pfd[0].events = POLLIN;
		pfd[1].fd = parent_fd;
		pfd[1].events = POLLIN;
		now = mono_ms();
		if (poll(pfd, 2, next_run > now ? (int)(next_run - now) : 0) >
		    0) {
			if (pfd[0].revents)
				while (read(pfd[0].fd, buf, sizeof(buf)) > 0)
					;
			if (pfd[1].revents) {
				log_warnx("master process is gone; exiting");
				break;
			}
		}
	}
	/* The workers are gone: rows still marked theirs go back now. */
	if (child_term || child_quit) {
		if (pg == NULL)
			pg = db_connect(cfg->database, "llmqd consumer");
		if (pg != NULL)
			db_rescue_dead(pg, NULL);
	}
	PQfinish(pg);
	metrics_free(metrics);
	log_info("consumer exiting");
	return 0;
}
