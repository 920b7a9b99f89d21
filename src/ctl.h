/*
 * ctl.h: what the llmqctl commands share.
 *
 * llmqctl.c owns the global options, the command table, the connection
 * and the configuration, and the helpers below; each command lives in a
 * ctl_*.c file and is entered through its ctl_NAME() with its own
 * arguments (argv[0] is the command's name).  A command parses and
 * checks all its arguments before it calls ctl_connect(), so that a
 * usage error (EX_USAGE) never costs a connection, and returns its exit
 * status; it never frees ctl->conn or ctl->cfg, which main() alone does.
 * Messages go to stderr through ctl_errx() and its kin; stdout carries
 * only results.
 */
#ifndef LLMQ_CTL_H
#define LLMQ_CTL_H

#include <stdint.h>
#include <stdio.h>

#include <libpq-fe.h>

/* The configuration read when -c names none. */
#define CTL_DEFAULT_CONFIG SYSCONFDIR "/llmq.yaml"

/* Exit statuses besides 0, 1 and EX_USAGE. */
#define EXIT_TIMEOUT 2
#define EXIT_NOT_RUNNING 3 /* status: llmqd is not running */

struct cfg;
struct ctl_command;
struct shm_proc;
struct shm_region;

struct ctl {
	const char *cfgpath;  /* -c, or NULL */
	const char *conninfo; /* -d, or NULL */
	struct cfg *cfg;      /* the configuration, when one was read */
	PGconn *conn;
	const struct ctl_command *cmd; /* the command being run */
};

/* The commands: each returns the tool's exit status. */
int ctl_migrate(struct ctl *, int, char **);
int ctl_submit(struct ctl *, int, char **);
int ctl_wait(struct ctl *, int, char **);
int ctl_show(struct ctl *, int, char **);
int ctl_list(struct ctl *, int, char **);
int ctl_status(struct ctl *, int, char **);
int ctl_top(struct ctl *, int, char **);
int ctl_stats(struct ctl *, int, char **);
int ctl_check(struct ctl *, int, char **);

/*
 * For the commands that find llmqd through the pidfile its configuration
 * names (status, top): load the configuration, which must exist.
 * Returns 0, or the exit status (1, or EX_USAGE when there is none).
 */
int ctl_daemon_config(struct ctl *);
int ctl_cancel(struct ctl *, int, char **);
int ctl_retry(struct ctl *, int, char **);
int ctl_purge(struct ctl *, int, char **);

void ctl_errx(const char *, ...) __attribute__((format(printf, 1, 2)));
void ctl_err(const char *, ...) __attribute__((format(printf, 1, 2)));
void ctl_pgerr(PGconn *, const PGresult *, const char *, ...)
    __attribute__((format(printf, 3, 4)));

/* The running command's usage; its getopt, reset. */
void ctl_usage(const struct ctl *, FILE *);
/* getopt's -h (usage on stdout, 0) or a refused option (stderr, EX_USAGE). */
int ctl_help(const struct ctl *, int ch);
/* "llmqctl: COMMAND: message" and the usage on stderr; returns EX_USAGE. */
int ctl_usage_error(const struct ctl *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
void ctl_getopt_init(const struct ctl *, char **);
/* After getopt: 0 when no argument is left, else the usage error's status. */
int ctl_no_args(const struct ctl *, int argc, char **argv);

int ctl_parse_id(const char *, int64_t *);
int ctl_parse_int(const char *, long, long, long *);
/*
 * A period or age ("90s", "30m", "24h", "7d"; a bare number is seconds)
 * in milliseconds, at most 100 years; -1 when malformed or longer.
 */
int ctl_parse_period(const char *, int64_t *);

/*
 * Load ctl->cfg: the -c file, or else the default one if it can be read;
 * -1 (reported) when the -c file does not load.  ctl->cfg may stay NULL.
 */
int ctl_load_config(struct ctl *);
int ctl_connect(struct ctl *, int);
int ctl_exec(PGconn *, const char *, const char *);
void ctl_rollback(PGconn *);

/*
 * What ctl_status.c reads of llmqd, shared with "top" (ctl_top.c).
 */

/* The queue of one role, from the database. */
struct ctl_queue {
	char *role;
	long long pending;    /* due now or later */
	long long due;        /* pending and run_after has come */
	long long processing; /* claimed, by any host */
	double oldest;        /* age of the oldest pending row, s; -1: none */
	int configured;       /* a role of the configuration read */
	int shown;            /* printed on its scope's row */
};

struct ctl_snapshot {
	struct shm_region *r; /* copy of the region; NULL: not running */
	const char *pidfile;
	long pidfile_pid; /* 0: no pid in it; -1: could not read it */
	int64_t now_us;
	int db_ok; /* q is valid */
	struct ctl_queue *q;
	size_t nq;
};

/*
 * Copy the region of the llmqd whose pidfile is st->pidfile into st->r
 * when that llmqd runs, its names cut and its scope count clamped.
 * Returns 0 (st->r stays NULL when llmqd does not run), or -1 (reported)
 * when the file is there but cannot be used.
 */
int ctl_region_read(struct ctl_snapshot *);
/*
 * Append the queue of every configured role, then of every other role
 * with rows pending or processing, to st->q; 0, or -1 (reported).
 */
int ctl_queue_read(struct ctl_snapshot *, PGconn *, const struct cfg *);
/* Free what the snapshot holds and empty it; pidfile and now_us stay. */
void ctl_snapshot_free(struct ctl_snapshot *);

/* "3.2s", "42s", "5m07s", "1h02m", "3d04h". */
void ctl_age_text(char *, size_t, double);
/* Seconds from a wall clock time in microseconds to st->now_us, >= 0. */
double ctl_since_s(const struct ctl_snapshot *, int64_t);
/* A name from the region, NUL-terminated, escaped in a new string. */
char *ctl_name_text(const char *);
/* Calls in flight of a child: its slots in the global scope. */
long ctl_proc_held(const struct shm_region *, const struct shm_proc *);
/* "running", "waiting" (for a slot) or "exiting". */
const char *ctl_proc_state(const struct shm_proc *);
/* The record is a child that has started. */
int ctl_proc_shown(const struct shm_proc *);

/*
 * A text table, each column as wide as its widest cell (ctl_table.c).
 * The table owns its cells; a NULL cell is empty, and a row ends at its
 * last non-NULL one.
 */
#define CTL_TABLE_MAXCOLS 12

struct ctl_table_column {
	const char *head;
	int right; /* numbers are aligned right */
};

struct ctl_table {
	const struct ctl_table_column *cols;
	int ncols;   /* at most CTL_TABLE_MAXCOLS */
	char **cell; /* nrows * ncols, allocated strings or NULL */
	size_t nrows;
};

/* A new row of ncols NULL cells, to fill with strings the table frees. */
char **ctl_table_row(struct ctl_table *);
/* Print the heads and the rows, free the cells and empty the table. */
void ctl_table_flush(struct ctl_table *);

#endif
