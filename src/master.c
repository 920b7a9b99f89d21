/*
 * master.c: the llmqd master process.
 *
 * The master reads the configuration and forks one process per role and
 * process slot, plus one result consumer; it never talks to PostgreSQL
 * or to an LLM.  Its only work is in this loop: signal handlers set a
 * flag and write a byte to a self-pipe, and the loop reaps children
 * (waitpid(-1, ..., WNOHANG)), restarts crashed ones after a back-off,
 * reloads and stops.
 *
 * The process table is small and fixed by the configuration.  A child
 * that dies unasked is restarted after 1 s, doubling up to 60 s; the
 * back-off starts over once a child has stayed up for 60 s.  crash_limit
 * deaths of one role within crash_window is a crash loop: the master
 * logs it and stops the daemon with a non-zero status rather than
 * respawn for ever.  A child that exits with EXIT_NORESTART cannot run
 * with this configuration and is not restarted.
 *
 * Every child holds the read end of a pipe whose write end only the
 * master holds, so a child sees EOF when the master dies, however it
 * died, and exits.
 *
 * Reload (SIGHUP) builds the new configuration whole; if that fails the
 * old one stays and the error is logged.  Otherwise a new generation of
 * children is started and the old one is told to stop gracefully.  Both
 * generations take their slots from the same shared table (shm.c), where
 * scopes are kept by name, so limits stay exact across a reload.
 *
 * The master does touch the shared memory in two places, both short:
 * it gives each child a record before fork(), and right after waitpid()
 * it frees the record of a child that died, with every slot it held.
 *
 * At a stop the workers go first; the consumer is told to stop once they
 * are gone, and its last act is to hand back the rows of any worker that
 * had to be killed, so that no row stays processing after llmqd exits.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cfg.h"
#include "consumer.h"
#include "log.h"
#include "master.h"
#include "proctitle.h"
#include "shm.h"
#include "util.h"
#include "worker.h"

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
#define STABLE_MS 60000    /* up this long: back-off starts over */
#define KILL_GRACE_MS 5000 /* after shutdown_timeout, then SIGKILL */

enum child_kind { CHILD_WORKER, CHILD_CONSUMER };

struct child {
	pid_t pid; /* 0: waiting to be (re)started */
	enum child_kind kind;
	int role;      /* index into cfg->roles; -1 for the consumer */
	char name[48]; /* the role's name, kept across reloads */
	int rec;       /* record in the shared memory, or -1 */
	unsigned restarts;
	int gen;            /* configuration generation */
	int exiting;        /* asked to stop: do not restart */
	int64_t started;    /* monotonic ms */
	int64_t backoff;    /* ms */
	int64_t restart_at; /* monotonic ms, when pid == 0 */
	int64_t kill_at;    /* monotonic ms, when exiting: SIGKILL then */
	int64_t *deaths;    /* ring of crash_limit death times */
	int ndeaths;
};

static volatile sig_atomic_t sig_chld, sig_term, sig_quit, sig_hup, sig_usr1;
static int self_pipe[2] = { -1, -1 };

static struct cfg *cfg;
static struct shm_map map; /* cfg's scopes */
static const char *cfg_path;
static int pid_fd = -1;
static int parent_pipe[2] = { -1, -1 };
static struct child *children;
static size_t nchildren;
static int generation;
static int stopping; /* 1 graceful, 2 fast */
static int64_t stop_deadline;
static int exit_status;
static int reload_pending; /* SIGHUP seen, not yet acted on */

/* Records of dead children not yet freed: the lock was busy. */
static int gone_rec[SHM_MAX_PROCS];
static pid_t gone_pid[SHM_MAX_PROCS];
static int ngone;
static int consumer_told; /* at a stop: the consumer was told to stop */
static int consumer_done; /* ... and has done its last hand-back */
static int consumer_tries;

static void
master_handler(int sig)
{
	int saved = errno;

	switch (sig) {
	case SIGCHLD:
		sig_chld = 1;
		break;
	case SIGTERM:
	case SIGINT:
		sig_term = 1;
		break;
	case SIGQUIT:
		sig_quit = 1;
		break;
	case SIGHUP:
		sig_hup = 1;
		break;
	case SIGUSR1:
		sig_usr1 = 1;
		break;
	}
	if (write(self_pipe[1], "", 1) == -1)
		errno = saved; /* pipe full: a wake-up is pending anyway */
	errno = saved;
}

static void
setup_signals(void)
{
	struct sigaction sa;
	int sigs[] = { SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1 };
	size_t i;

	if (pipe(self_pipe) == -1)
		fatal("pipe() failed");
	fd_nonblock(self_pipe[0]);
	fd_nonblock(self_pipe[1]);
	fd_cloexec(self_pipe[0]);
	fd_cloexec(self_pipe[1]);
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sa.sa_handler = master_handler;
	for (i = 0; i < nitems(sigs); i++)
		if (sigaction(sigs[i], &sa, NULL) == -1)
			fatal("sigaction() failed");
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

static const char *
child_name(const struct child *ch)
{
	/* Not cfg->roles[ch->role]: a reload may have changed the roles. */
	return ch->name;
}

static void
free_children(void)
{
	size_t i;

	for (i = 0; i < nchildren; i++)
		free(children[i].deaths);
	free(children);
	children = NULL;
	nchildren = 0;
}

/* In the child, right after fork(): shed the master's resources. */
static void
child_init(void)
{
	close(self_pipe[0]);
	close(self_pipe[1]);
	close(parent_pipe[1]);
	if (pid_fd != -1)
		close(pid_fd);
	if (child_signals() == -1)
		exit(EXIT_NORESTART);
}

static void
spawn(struct child *ch)
{
	sigset_t all, old;
	pid_t pid;
	int rc;

	if ((ch->rec = shm_proc_reserve()) == -1) {
		log_warnx("no free record in the shared memory for %s",
		    child_name(ch));
		ch->pid = 0;
		ch->restart_at = mono_ms() + BACKOFF_MIN_MS;
		return;
	}

	/*
	 * Until the child has its own handlers, a signal would run ours
	 * there and be lost: keep them blocked across fork(); the child
	 * unblocks them in child_signals().
	 */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid = fork();
	if (pid != 0)
		sigprocmask(SIG_SETMASK, &old, NULL);
	switch (pid) {
	case -1:
		log_warn("fork() failed");
		shm_proc_unreserve(ch->rec);
		ch->rec = -1;
		ch->pid = 0;
		ch->restart_at = mono_ms() + BACKOFF_MIN_MS;
		return;
	case 0:
		shm_self = ch->rec;
		child_init();
		if (ch->kind == CHILD_CONSUMER)
			rc = consumer_main(cfg, parent_pipe[0]);
		else
			rc = worker_main(cfg, ch->role, &map, parent_pipe[0]);
		cfg_free(cfg);
		shm_map_free(&map);
		free_children();
		exit(rc);
	}
	shm_proc_start(ch->rec, pid,
	    ch->kind == CHILD_CONSUMER ? PROC_CONSUMER : PROC_WORKER,
	    child_name(ch), ch->gen, ch->restarts);
	ch->pid = pid;
	ch->started = mono_ms();
	log_debug("started %s process %d", child_name(ch), (int)pid);
}

static struct child *
add_child(enum child_kind kind, int role)
{
	struct child *ch;

	children = xreallocarray(children, nchildren + 1, sizeof(*children));
	ch = &children[nchildren++];
	memset(ch, 0, sizeof(*ch));
	ch->kind = kind;
	ch->role = role;
	snprintf(ch->name, sizeof(ch->name), "%s",
	    kind == CHILD_CONSUMER ? "consumer" : cfg->roles[role].name);
	ch->rec = -1;
	ch->gen = generation;
	ch->deaths = xcalloc(cfg->crash_limit, sizeof(int64_t));
	return ch;
}

static void
remove_child(struct child *ch)
{
	size_t i = ch - children;

	free(ch->deaths);
	memmove(&children[i], &children[i + 1],
	    (nchildren - i - 1) * sizeof(*children));
	nchildren--;
}

/*
 * One child per process of every role, all taking slots from the role's
 * scope, and the consumer.
 */
static void
spawn_generation(void)
{
	size_t i;
	int p;

	for (i = 0; i < cfg->nroles; i++)
		for (p = 0; p < cfg->roles[i].processes; p++)
			spawn(add_child(CHILD_WORKER, (int)i));
	spawn(add_child(CHILD_CONSUMER, -1));
}

/* Signal the children of generation only_gen (-1: all) of kind (-1: all). */
static void
signal_children(int sig, int only_gen, int kind)
{
	struct child *ch;
	size_t i;

	for (i = 0; i < nchildren; i++) {
		ch = &children[i];
		if (ch->pid <= 0)
			continue;
		if (only_gen >= 0 && ch->gen != only_gen)
			continue;
		if (kind >= 0 && ch->kind != (enum child_kind)kind)
			continue;
		if ((sig == SIGTERM || sig == SIGQUIT) && ch->rec != -1)
			shm_proc_exiting(ch->rec);
		if (kill(ch->pid, sig) == -1 && errno != ESRCH)
			log_warn("kill(%d) failed", (int)ch->pid);
	}
}

/* True while any worker is running or waiting to be restarted. */
static int
workers_left(void)
{
	size_t i;

	for (i = 0; i < nchildren; i++)
		if (children[i].kind == CHILD_WORKER)
			return 1;
	return 0;
}

static void
begin_stop(int how)
{
	size_t i;

	if (stopping >= how)
		return;
	stopping = how;
	/* Children waiting for a restart are simply dropped. */
	for (i = 0; i < nchildren;)
		if (children[i].pid == 0)
			remove_child(&children[i]);
		else
			i++;
	/* The consumer is stopped after the workers (see stop_consumer). */
	if (how == 1) {
		log_info("stopping gracefully (shutdown_timeout %llds)",
		    (long long)(cfg->shutdown_timeout_ms / 1000));
		signal_children(SIGTERM, -1, CHILD_WORKER);
		stop_deadline =
		    mono_ms() + cfg->shutdown_timeout_ms + KILL_GRACE_MS;
	} else {
		log_info("stopping at once");
		signal_children(SIGQUIT, -1, CHILD_WORKER);
		stop_deadline = mono_ms() + KILL_GRACE_MS;
	}
}

/*
 * Once the workers are gone, tell the consumer, which hands back the rows
 * of any worker that had to be killed, then exits.  With no consumer left
 * (it was waiting for a restart, or died during the stop), start one for
 * that last act; twice at most.
 */
static void
stop_consumer(void)
{
	struct child *ch = NULL;
	size_t i;

	if (consumer_done || workers_left())
		return;
	for (i = 0; i < nchildren; i++)
		if (children[i].kind == CHILD_CONSUMER && children[i].pid > 0)
			ch = &children[i];
	if (ch == NULL) {
		if (consumer_tries >= 2)
			return;
		consumer_tries++;
		consumer_told = 0;
		ch = add_child(CHILD_CONSUMER, -1);
		spawn(ch);
		if (ch->pid <= 0) {
			remove_child(ch);
			return;
		}
	}
	if (!consumer_told) {
		consumer_told = 1;
		signal_children(SIGTERM, -1, CHILD_CONSUMER);
		stop_deadline = mono_ms() + KILL_GRACE_MS;
	}
}

/* Free the shared memory records of dead children. */
static void
free_gone(void)
{
	if (ngone > 0 && shm_proc_free(gone_rec, gone_pid, ngone) == 0)
		ngone = 0;
}

/*
 * Record a death; returns 1 when the deaths of this child's role (all its
 * processes) within crash_window reach crash_limit.
 */
static int
crash_loop(struct child *ch, int64_t now)
{
	const struct child *o;
	size_t i;
	int j, n = 0;

	ch->deaths[ch->ndeaths++ % cfg->crash_limit] = now;
	for (i = 0; i < nchildren; i++) {
		o = &children[i];
		if (o->kind != ch->kind || o->role != ch->role ||
		    o->gen != ch->gen)
			continue;
		for (j = 0; j < cfg->crash_limit && j < o->ndeaths; j++)
			if (now - o->deaths[j] <= cfg->crash_window_ms)
				n++;
	}
	return n >= cfg->crash_limit;
}

static void
describe_exit(char *buf, size_t len, int status)
{
	if (WIFEXITED(status))
		snprintf(
		    buf, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "was killed by signal %d (%s)%s",
		    WTERMSIG(status), strsignal(WTERMSIG(status)),
		    WCOREDUMP(status) ? ", core dumped" : "");
	else
		snprintf(buf, len, "ended with status 0x%x", status);
}

static void
reap(void)
{
	struct child *ch;
	siginfo_t si;
	char how[128];
	int64_t now;
	pid_t pid;
	size_t i;
	int status;

	for (;;) {
		/*
		 * Look before reaping: until it is reaped, the dead child's pid
		 * cannot be reused, so that is when the shared memory forgets
		 * it (and takes the lock from it, if it died holding it).
		 */
		memset(&si, 0, sizeof(si));
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == -1 ||
		    si.si_pid == 0)
			break;
		pid = si.si_pid;
		ch = NULL;
		for (i = 0; i < nchildren; i++)
			if (children[i].pid == pid)
				ch = &children[i];
		if (ch != NULL && ch->rec != -1)
			shm_proc_dead(ch->rec, pid);
		if (waitpid(pid, &status, 0) != pid)
			break;
		if (ch == NULL)
			continue;
		/* Then its slots are free again. */
		if (ch->rec != -1) {
			gone_rec[ngone] = ch->rec;
			gone_pid[ngone++] = pid;
			ch->rec = -1;
			free_gone();
		}
		describe_exit(how, sizeof(how), status);
		now = mono_ms();
		if (stopping && ch->kind == CHILD_CONSUMER && consumer_told &&
		    WIFEXITED(status) && WEXITSTATUS(status) == 0)
			consumer_done = 1;
		if (stopping || ch->exiting) {
			log_debug(
			    "%s process %d %s", child_name(ch), (int)pid, how);
			remove_child(ch);
			continue;
		}
		if (WIFEXITED(status) &&
		    WEXITSTATUS(status) == EXIT_NORESTART) {
			log_warnx("%s process %d cannot run with this "
			          "configuration; not restarting it",
			    child_name(ch), (int)pid);
			remove_child(ch);
			/* Running or waiting to restart: others may still work.
			 */
			if (nchildren == 0) {
				exit_status = 1;
				begin_stop(1);
			}
			continue;
		}
		if (crash_loop(ch, now)) {
			log_warnx("%s process %d %s; crash loop: %d deaths "
			          "within %llds, stopping llmqd",
			    child_name(ch), (int)pid, how, cfg->crash_limit,
			    (long long)(cfg->crash_window_ms / 1000));
			remove_child(ch);
			exit_status = 1;
			begin_stop(1);
			continue;
		}
		if (now - ch->started >= STABLE_MS || ch->backoff == 0)
			ch->backoff = BACKOFF_MIN_MS;
		else
			ch->backoff = ch->backoff * 2 > BACKOFF_MAX_MS ?
			    BACKOFF_MAX_MS :
			    ch->backoff * 2;
		ch->pid = 0;
		ch->restarts++;
		ch->restart_at = now + ch->backoff;
		log_warnx("%s process %d %s; restarting in %llds",
		    child_name(ch), (int)pid, how,
		    (long long)(ch->backoff / 1000));
	}
}

static void
reload(void)
{
	struct cfg *ncfg;
	struct shm_map nmap;
	char err[1024];
	size_t i;
	int old;

	log_info("reloading \"%s\"", cfg_path);
	if ((ncfg = cfg_load(cfg_path, err, sizeof(err))) == NULL) {
		log_warnx("reload failed, keeping the running configuration: "
		          "%s",
		    err);
		return;
	}
	if (shm_configure(ncfg, generation + 1, &nmap, err, sizeof(err)) ==
	    -1) {
		cfg_free(ncfg);
		if (errno == EBUSY) {
			reload_pending = 1; /* a child holds the lock: soon */
			return;
		}
		log_warnx("reload failed, keeping the running configuration: "
		          "%s",
		    err);
		return;
	}
	if (strcmp(ncfg->log, cfg->log) != 0 &&
	    log_init("llmqd", ncfg->log, ncfg->log_level) == -1)
		log_warn("could not open log \"%s\"; logging stays where it "
		         "was",
		    ncfg->log);
	log_set_level(ncfg->log_level);
	old = generation++;
	for (i = 0; i < nchildren;) {
		if (children[i].pid == 0) {
			remove_child(&children[i]);
			continue;
		}
		children[i].exiting = 1;
		children[i].kill_at =
		    mono_ms() + cfg->shutdown_timeout_ms + KILL_GRACE_MS;
		i++;
	}
	signal_children(SIGTERM, old, -1);
	/*
	 * The death rings are sized by the old crash_limit; the old
	 * children never use theirs again, so the swap is safe.
	 */
	cfg_free(cfg);
	cfg = ncfg;
	shm_map_free(&map);
	map = nmap;
	spawn_generation();
	log_info("configuration reloaded; generation %d started", generation);
}

/* True while children of an older generation are still running. */
static int
draining(void)
{
	size_t i;

	for (i = 0; i < nchildren; i++)
		if (children[i].exiting)
			return 1;
	return 0;
}

static int
next_timeout(void)
{
	int64_t now = mono_ms(), t = 60000;
	size_t i;

	for (i = 0; i < nchildren; i++)
		if (children[i].pid == 0 && children[i].restart_at - now < t)
			t = children[i].restart_at - now;
	if (stopping && stop_deadline - now < t)
		t = stop_deadline - now;
	if ((ngone > 0 || reload_pending) && t > 10)
		t = 10;
	for (i = 0; i < nchildren; i++)
		if (children[i].exiting && children[i].pid > 0 &&
		    children[i].kill_at - now < t)
			t = children[i].kill_at - now;
	return t < 0 ? 0 : (int)t;
}

int
master_run(struct cfg *c, const char *path, int pidfd)
{
	struct pollfd pfd;
	char buf[256];
	size_t i;
	int64_t now;

	cfg = c;
	cfg_path = path;
	pid_fd = pidfd;
	log_set_role("master");
	proctitle_set("llmqd: master");
	setup_signals();
	if (pipe(parent_pipe) == -1)
		fatal("pipe() failed");
	fd_cloexec(parent_pipe[0]);
	fd_cloexec(parent_pipe[1]);
	if (shm_configure(cfg, generation, &map, buf, sizeof(buf)) == -1) {
		log_warnx("%s", buf);
		cfg_free(cfg);
		return 1;
	}
	log_info("llmqd %s starting: %zu role%s", PACKAGE_VERSION, cfg->nroles,
	    cfg->nroles == 1 ? "" : "s");
	spawn_generation();

	for (;;) {
		if (sig_chld) {
			sig_chld = 0;
			reap();
		}
		if (sig_quit) {
			sig_quit = 0;
			begin_stop(2);
		}
		if (sig_term) {
			sig_term = 0;
			begin_stop(1);
		}
		if (sig_hup) {
			sig_hup = 0;
			reload_pending = 1;
			if (draining())
				log_info("reload deferred until the previous "
				         "generation has stopped");
		}
		/*
		 * One generation drains at a time: while the old one finishes
		 * its calls the new one already serves, so a role may briefly
		 * run up to twice its concurrency; a second reload waits
		 * until the first has drained rather than make it three.
		 */
		if (reload_pending && !stopping && !draining()) {
			reload_pending = 0;
			reload();
		}
		if (sig_usr1) {
			sig_usr1 = 0;
			if (log_reopen() == -1)
				log_warn("could not reopen the log");
			signal_children(SIGUSR1, -1, -1);
		}
		if (ngone > 0)
			free_gone();
		if (stopping)
			stop_consumer();
		if (stopping && nchildren == 0)
			break;
		now = mono_ms();
		if (stopping && now >= stop_deadline) {
			log_warnx("children still running after the deadline; "
			          "killing them");
			/* The consumer last: it hands back the workers' rows.
			 */
			signal_children(
			    SIGKILL, -1, workers_left() ? CHILD_WORKER : -1);
			stop_deadline = now + KILL_GRACE_MS;
		}
		if (!stopping)
			for (i = 0; i < nchildren; i++)
				if (children[i].pid == 0 &&
				    now >= children[i].restart_at)
					spawn(&children[i]);
		/* A child of an old generation that does not stop in time. */
		for (i = 0; i < nchildren; i++)
			if (children[i].exiting && children[i].pid > 0 &&
			    now >= children[i].kill_at) {
				log_warnx("%s process %d of an old generation "
				          "did not stop in time; killing it",
				    child_name(&children[i]),
				    (int)children[i].pid);
				kill(children[i].pid, SIGKILL);
				children[i].kill_at = now + KILL_GRACE_MS;
			}

		pfd.fd = self_pipe[0];
		pfd.events = POLLIN;
		if (poll(&pfd, 1, next_timeout()) == -1 && errno != EINTR)
			fatal("poll() failed");
		while (read(self_pipe[0], buf, sizeof(buf)) > 0)
			;
	}
	log_info("llmqd stopped");
	close(parent_pipe[0]);
	close(parent_pipe[1]);
	free_children();
	shm_map_free(&map);
	cfg_free(cfg);
	return exit_status;
}
