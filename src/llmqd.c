/*
 * llmqd.c: the llmqd command: options, configuration check, pidfile,
 * daemonizing and privilege drop, then the master loop (master.c).
 *
 * The pidfile is locked with flock(2) for the life of the master, so a
 * second llmqd on the same pidfile refuses to start while the first
 * runs, and a stale file left by a crash is simply taken over.  When
 * daemonizing, the parent waits until the daemon has written the pidfile
 * (or failed) before it exits, so an init script that checks the pidfile
 * right after starting us never races.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "log.h"
#include "master.h"
#include "proctitle.h"
#include "shm.h"
#include "util.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: llmqd [-fhtV] [-c file]\n"
	    "  -c file  configuration file (default %s/llmq.yaml)\n"
	    "  -f       stay in the foreground\n"
	    "  -t       check the configuration and exit\n"
	    "  -V       print the version and exit\n"
	    "  -h       print this help and exit\n",
	    SYSCONFDIR);
}

/*
 * Open and lock the pidfile.  Returns the descriptor, or -1 after
 * printing why (another llmqd holds it, or it cannot be opened).
 */
static int
pidfile_lock(const char *path, const struct passwd *pw)
{
	char buf[32], *dir, *copy;
	struct stat st;
	ssize_t n;
	int fd;

	copy = xstrdup(path);
	dir = dirname(copy);
	if (mkdir(dir, 0755) == 0) {
		/* Ours: let the unprivileged user remove the pidfile later. */
		if (pw != NULL && geteuid() == 0 &&
		    chown(dir, pw->pw_uid, pw->pw_gid) == -1)
			log_warn("could not chown \"%s\"", dir);
	} else if (errno != EEXIST) {
		log_warn("could not create \"%s\"", dir);
		free(copy);
		return -1;
	}
	free(copy);
	/*
	 * Root writes, truncates and chowns this file: never through a
	 * symbolic link or a hard link that someone else planted.
	 */
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	         0644)) == -1) {
		log_warn("could not open pidfile \"%s\"", path);
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
		log_warnx("pidfile \"%s\" is not a plain file", path);
		close(fd);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK) {
			n = pread(fd, buf, sizeof(buf) - 1, 0);
			buf[n > 0 ? n : 0] = '\0';
			buf[strcspn(buf, "\n")] = '\0';
			log_warnx("llmqd is already running (pid %s, pidfile "
			          "\"%s\")",
			    buf[0] ? buf : "unknown", path);
		} else
			log_warn("could not lock pidfile \"%s\"", path);
		close(fd);
		return -1;
	}
	return fd;
}

static int
pidfile_write(int fd, const char *path)
{
	char buf[32];
	int n;

	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) == -1 || pwrite(fd, buf, n, 0) != n) {
		log_warn("could not write pidfile \"%s\"", path);
		return -1;
	}
	return 0;
}

/*
 * Drop root for the configured user: groups, gid, then uid, each
 * checked, and then checked again that root cannot be regained.
 */
static int
drop_privileges(const struct passwd *pw, int pidfd)
{
	if (pw == NULL)
		return 0;
	if (geteuid() != 0) {
		if (geteuid() != pw->pw_uid)
			log_warnx("not running as root; ignoring user \"%s\"",
			    pw->pw_name);
		return 0;
	}
	/* Let the new user update the pidfile and reopen the log. */
	if (pidfd != -1 && fchown(pidfd, pw->pw_uid, pw->pw_gid) == -1)
		log_warn("fchown() of the pidfile failed");
	if (log_fd() != -1 && fchown(log_fd(), pw->pw_uid, pw->pw_gid) == -1)
		log_warn("fchown() of the log file failed");
	if (initgroups(pw->pw_name, pw->pw_gid) == -1) {
		log_warn("initgroups() failed");
		return -1;
	}
	if (setgid(pw->pw_gid) == -1) {
		log_warn("setgid(%d) failed", (int)pw->pw_gid);
		return -1;
	}
	if (setuid(pw->pw_uid) == -1) {
		log_warn("setuid(%d) failed", (int)pw->pw_uid);
		return -1;
	}
	if (pw->pw_uid != 0 && (setuid(0) != -1 || seteuid(0) != -1)) {
		log_warnx("could regain root after dropping privileges");
		return -1;
	}
	return 0;
}

/*
 * Fork into the background.  The parent returns only in the child; it
 * waits on ready_fd for one byte (success) or EOF (failure) and exits.
 */
static int
daemonize(int *ready_fd)
{
	int p[2], fd;
	char c;
	pid_t pid;

	if (pipe(p) == -1)
		fatal("pipe() failed");
	switch ((pid = fork())) {
	case -1:
		fatal("fork() failed");
	case 0:
		break;
	default:
		close(p[1]);
		if (read(p[0], &c, 1) == 1)
			exit(0);
		fprintf(stderr,
		    "llmqd: the daemon failed to start; see its "
		    "log\n");
		exit(1);
	}
	close(p[0]);
	fd_cloexec(p[1]);
	if (setsid() == -1)
		fatal("setsid() failed");
	if (chdir("/") == -1)
		fatal("chdir(\"/\") failed");
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		/* stderr stays until logging is set up, for early errors. */
		if (fd > STDERR_FILENO)
			close(fd);
	}
	*ready_fd = p[1];
	return 0;
}

int
main(int argc, char **argv)
{
	const char *path = SYSCONFDIR "/llmq.yaml";
	struct cfg *cfg = NULL;
	struct passwd pwbuf, *pw = NULL;
	char err[1024], *pidpath, *abspath = NULL, *shmpath;
	int ch, foreground = 0, test = 0, pidfd = -1, ready = -1, rc = 1, fd;
	int shmok;

	argv = proctitle_init(argc, argv);
	log_init("llmqd", "stderr", LOG_INFO);
	while ((ch = getopt(argc, argv, "c:fhtV")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'f':
			foreground = 1;
			break;
		case 't':
			test = 1;
			break;
		case 'V':
			printf("llmqd %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 64;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 64;
	}

	/* Reloads happen after chdir("/"): keep the path absolute. */
	if ((abspath = realpath(path, NULL)) != NULL)
		path = abspath;

	if ((cfg = cfg_load(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "llmqd: %s\n", err);
		if (test)
			fprintf(stderr,
			    "llmqd: configuration file \"%s\" "
			    "test failed\n",
			    path);
		goto out;
	}
	if (cfg->user != NULL) {
		if ((pw = getpwnam(cfg->user)) == NULL) {
			fprintf(stderr,
			    "llmqd: %s: user: unknown user "
			    "\"%s\"\n",
			    path, cfg->user);
			goto out;
		}
		/* getpwnam()'s buffer is reused by later calls. */
		pwbuf = *pw;
		pwbuf.pw_name = xstrdup(pw->pw_name);
		pw = &pwbuf;
	}
	if (test) {
		printf("llmqd: configuration file \"%s\" test is successful\n",
		    path);
		rc = 0;
		goto out;
	}

	if ((pidfd = pidfile_lock(cfg->pidfile, pw)) == -1)
		goto out;
	if (!foreground)
		daemonize(&ready);
	/* After fork(): the lock belongs to this process's descriptor. */
	if (pidfile_write(pidfd, cfg->pidfile) == -1)
		goto out;
	if (log_init("llmqd", cfg->log, cfg->log_level) == -1) {
		log_warn("could not open log \"%s\"", cfg->log);
		goto out;
	}
	/* Before the drop: the run directory may be root's. */
	shmpath = shm_path(cfg->pidfile);
	if (pw != NULL && geteuid() == 0)
		shmok = shm_create(shmpath, pw->pw_uid, pw->pw_gid);
	else
		shmok = shm_create(shmpath, (uid_t)-1, (gid_t)-1);
	free(shmpath);
	if (shmok == -1)
		goto out;
	if (drop_privileges(pw, pidfd) == -1) {
		shm_destroy();
		goto out;
	}
	if (!foreground && strcmp(cfg->log, "stderr") != 0 &&
	    (fd = open("/dev/null", O_WRONLY)) != -1) {
		dup2(fd, STDERR_FILENO);
		close(fd);
	}
	if (ready != -1) {
		if (write(ready, "", 1) != 1)
			log_warn("could not tell the parent we are ready");
		close(ready);
	}

	/* A reload does not move the pidfile: it changes on restart only. */
	pidpath = xstrdup(cfg->pidfile);
	rc = master_run(cfg, path, pidfd);
	cfg = NULL; /* master_run() owns and frees it */
	shm_destroy();
	/*
	 * The directory may not be ours to write after the privilege drop;
	 * an empty pidfile says "not running" just as well.
	 */
	if (unlink(pidpath) == -1 && ftruncate(pidfd, 0) == -1)
		log_warn("could not remove pidfile \"%s\"", pidpath);
	free(pidpath);
out:
	if (pidfd != -1)
		close(pidfd);
	cfg_free(cfg);
	if (pw != NULL)
		free(pw->pw_name);
	free(abspath);
	return rc;
}
