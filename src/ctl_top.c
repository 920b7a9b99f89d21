/*
 * ctl_top.c: "llmqctl top", a live view of llmqd and its queues,
 * refreshed every second: a header (llmqd's pid, uptime, generation, the
 * time), the rates of the last 10 and 60 seconds, the slots of each
 * scope, the queue of each role, the last failures and the children.
 *
 * llmqd's part is read as "status" reads it (ctl_region_read(): its
 * shared memory, read-only, one racy copy per refresh) and so is the
 * queue of each role (ctl_queue_read()); the rates and the failures come
 * from two more statements on llmq.requests.  On a terminal the screen
 * is drawn with ANSI escapes in the alternate screen, without curses:
 * the terminal is put in non-canonical mode without echo, and put back
 * on every way out (q, end of input, SIGINT, SIGTERM, SIGHUP, exit());
 * signal handlers only set a flag and write to a self-pipe, and the
 * poll() loop does the rest.  What does not fit the terminal is cut
 * section by section, the biggest first, with a "+N more" line.  When
 * standard output is not a terminal, or with --once, one snapshot (or
 * -n N of them) is printed as plain text, every line whole.  Text from
 * the rows and the region is escaped before it is shown.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "cfg.h"
#include "ctl.h"
#include "shm.h"
#include "util.h"

#define TOP_FAILURES 5
#define TOP_BAR 20 /* cells of a scope's bar */
#define TOP_MSG_MAX 1024

/*
 * Completed and failed requests of the last 10 and 60 seconds.  Without
 * an index on finished_at this reads the whole table; with one, only the
 * rows of the last minute.
 */
static const char rates_sql[] =
    "SELECT count(*) FILTER (WHERE status = 'completed'"
    "                          AND finished_at >= now() - interval '10 s'),"
    "       count(*) FILTER (WHERE status = 'failed'"
    "                          AND finished_at >= now() - interval '10 s'),"
    "       count(*) FILTER (WHERE status = 'completed'),"
    "       count(*) FILTER (WHERE status = 'failed')"
    "  FROM llmq.requests"
    " WHERE finished_at >= now() - interval '60 s'";

/* The last failures, newest first. */
static const char failures_sql[] =
    "SELECT id, role, coalesce(error_kind, 'internal'),"
    "       extract(epoch FROM now() - finished_at),"
    "       coalesce(error_message, '')"
    "  FROM llmq.requests"
    " WHERE status = 'failed' AND finished_at IS NOT NULL"
    " ORDER BY finished_at DESC"
    " LIMIT 5";

struct failure {
	long long id;
	char *role; /* escaped */
	char *kind; /* escaped */
	double age; /* s */
	char *msg;  /* escaped */
};

/* A section of the screen: a heading line and its items. */
struct sect {
	char *head;
	char **item;
	size_t n;
	size_t shown; /* items that fit */
};

enum attr { A_PLAIN, A_HEADER, A_HEAD };

struct line {
	char *text;
	enum attr attr;
};

struct top {
	struct ctl *ctl;
	struct ctl_snapshot st;
	int db_ok;                /* rates and failures are valid */
	char dberr[256];          /* why not, when !db_ok and !st.db_ok */
	long long n10[2], n60[2]; /* completed, failed */
	struct failure fail[TOP_FAILURES];
	int nfail;
	int width, rows; /* rows 0: no limit (plain text) */
	int tty;         /* drawing on a terminal */
	struct line *line;
	size_t nline;
};

/* The terminal and the signals. */

static struct termios saved_tio;
static int raw_on; /* the terminal is ours: put it back */
static int sig_pipe[2] = { -1, -1 };
static int saved_stderr = -1;
static volatile sig_atomic_t got_quit; /* the signal that asks us to go */
static volatile sig_atomic_t got_winch, got_cont, got_tstp;

static const char screen_enter[] = "\033[?1049h\033[?25l\033[2J";
static const char screen_leave[] = "\033[?25h\033[?1049l";

static void
write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, buf, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* the terminal is gone: nothing to show it */
		buf += n;
		len -= (size_t)n;
	}
}

/* Put the terminal back as it was; safe to call twice, and at exit. */
static void
term_restore(void)
{
	if (!raw_on)
		return;
	raw_on = 0;
	write_all(STDOUT_FILENO, screen_leave, sizeof(screen_leave) - 1);
	tcsetattr(STDIN_FILENO, TCSADRAIN, &saved_tio);
	if (saved_stderr != -1) {
		dup2(saved_stderr, STDERR_FILENO);
		close(saved_stderr);
		saved_stderr = -1;
	}
}

/*
 * Keys one at a time, without echo; signals from the keyboard (^C, ^Z)
 * stay on, and are handled in the loop.  stderr goes to /dev/null while
 * the screen is ours (a message would tear it); the screen shows the
 * database's errors itself.
 */
static int
term_raw(void)
{
	struct termios tio;
	int fd;

	if (tcgetattr(STDIN_FILENO, &saved_tio) == -1) {
		ctl_err("tcgetattr() failed");
		return -1;
	}
	tio = saved_tio;
	tio.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	tio.c_cc[VMIN] = 0;
	tio.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSADRAIN, &tio) == -1) {
		ctl_err("tcsetattr() failed");
		return -1;
	}
	raw_on = 1;
	write_all(STDOUT_FILENO, screen_enter, sizeof(screen_enter) - 1);
	if (saved_stderr == -1 &&
	    (fd = open("/dev/null", O_WRONLY | O_CLOEXEC)) != -1) {
		saved_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
		if (saved_stderr != -1)
			dup2(fd, STDERR_FILENO);
		close(fd);
	}
	return 0;
}

static void
on_signal(int sig)
{
	int saved = errno;

	switch (sig) {
	case SIGWINCH:
		got_winch = 1;
		break;
	case SIGCONT:
		got_cont = 1;
		break;
	case SIGTSTP:
		got_tstp = 1;
		break;
	default:
		got_quit = sig;
		break;
	}
	if (sig_pipe[1] != -1)
		(void)!write(sig_pipe[1], "", 1);
	errno = saved;
}

static int
signals_init(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGWINCH, SIGCONT,
		SIGTSTP };
	struct sigaction sa;
	size_t i;

	if (pipe(sig_pipe) == -1) {
		ctl_err("pipe() failed");
		return -1;
	}
	fd_nonblock(sig_pipe[0]);
	fd_nonblock(sig_pipe[1]);
	fd_cloexec(sig_pipe[0]);
	fd_cloexec(sig_pipe[1]);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	for (i = 0; i < nitems(sigs); i++)
		if (sigaction(sigs[i], &sa, NULL) == -1) {
			ctl_err("sigaction() failed");
			return -1;
		}
	return 0;
}

static void
signals_end(void)
{
	if (sig_pipe[0] != -1) {
		close(sig_pipe[0]);
		close(sig_pipe[1]);
		sig_pipe[0] = sig_pipe[1] = -1;
	}
}

static void
term_size(struct top *t)
{
	struct winsize ws;

	t->width = 80;
	t->rows = 24;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 &&
	    ws.ws_row > 0) {
		t->width = ws.ws_col;
		t->rows = ws.ws_row;
	}
}

/* Reading. */

static void
failures_free(struct top *t)
{
	int i;

	for (i = 0; i < t->nfail; i++) {
		free(t->fail[i].role);
		free(t->fail[i].kind);
		free(t->fail[i].msg);
	}
	t->nfail = 0;
}

static char *
escaped(const PGresult *res, int row, int col, size_t max)
{
	return str_escape(
	    PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col), max);
}

/* The first line of the connection's last error, for the screen. */
static void
db_error(struct top *t)
{
	const char *msg = PQerrorMessage(t->ctl->conn);
	size_t len = strcspn(msg, "\n");
	char *e;

	e = str_escape(msg, len, sizeof(t->dberr) / 4);
	snprintf(t->dberr, sizeof(t->dberr), "%s", e);
	free(e);
}

static int
rates_read(struct top *t, PGconn *conn)
{
	PGresult *res;
	int i;

	res = PQexecParams(conn, rates_sql, 0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 4 ||
	    PQntuples(res) != 1) {
		if (!t->tty)
			ctl_pgerr(conn, res, "could not count requests");
		PQclear(res);
		return -1;
	}
	for (i = 0; i < 2; i++) {
		t->n10[i] = strtoll(PQgetvalue(res, 0, i), NULL, 10);
		t->n60[i] = strtoll(PQgetvalue(res, 0, 2 + i), NULL, 10);
	}
	PQclear(res);
	return 0;
}

static int
failures_read(struct top *t, PGconn *conn)
{
	struct failure *f;
	PGresult *res;
	int row;

	res = PQexecParams(conn, failures_sql, 0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 5) {
		if (!t->tty)
			ctl_pgerr(conn, res, "could not read the failures");
		PQclear(res);
		return -1;
	}
	for (row = 0; row < PQntuples(res) && row < TOP_FAILURES; row++) {
		f = &t->fail[t->nfail++];
		f->id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
		f->role = escaped(res, row, 1, 64);
		f->kind = escaped(res, row, 2, 64);
		f->age = strtod(PQgetvalue(res, row, 3), NULL);
		f->msg = escaped(res, row, 4, TOP_MSG_MAX);
	}
	PQclear(res);
	return 0;
}

/*
 * One refresh: llmqd's region, then the database.  A connection that
 * broke is tried again, once per refresh.  -1 (reported) when llmqd's
 * region is there but cannot be read; the live screen checks that once,
 * before it takes the terminal, and shows "not running" if it happens
 * later.
 */
static int
top_read(struct top *t)
{
	struct ctl *ctl = t->ctl;
	PGconn *conn = ctl->conn;

	ctl_snapshot_free(&t->st);
	failures_free(t);
	t->db_ok = 0;
	t->dberr[0] = '\0';
	if (ctl_region_read(&t->st) == -1 && !t->tty)
		return -1;
	t->st.now_us = wall_us();
	if (conn == NULL) {
		snprintf(t->dberr, sizeof(t->dberr), "no connection");
		return 0;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		PQreset(conn);
		if (PQstatus(conn) != CONNECTION_OK) {
			db_error(t);
			return 0;
		}
	}
	if (ctl_queue_read(&t->st, conn, ctl->cfg) == 0)
		t->st.db_ok = 1;
	if (t->st.db_ok && rates_read(t, conn) == 0 &&
	    failures_read(t, conn) == 0)
		t->db_ok = 1;
	if (!t->db_ok)
		db_error(t);
	return 0;
}

/* The lines of the screen. */

/* Bytes of the first cols code points of s (valid UTF-8, escaped). */
static size_t
cut_len(const char *s, int cols)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80 && cols-- <= 0)
			break;
	return i;
}

/* Code points in s. */
static int
text_cols(const char *s)
{
	int n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

static char *textf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
textf(const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return xstrdup(buf);
}

/* Add a line, cut to the width; takes text. */
static void
line_add(struct top *t, enum attr attr, char *text)
{
	text[cut_len(text, t->width)] = '\0';
	t->line = xreallocarray(t->line, t->nline + 1, sizeof(*t->line));
	t->line[t->nline].text = text;
	t->line[t->nline].attr = attr;
	t->nline++;
}

static void
lines_free(struct top *t)
{
	size_t i;

	for (i = 0; i < t->nline; i++)
		free(t->line[i].text);
	free(t->line);
	t->line = NULL;
	t->nline = 0;
}

static void
sect_item(struct sect *s, char *text)
{
	s->item = xreallocarray(s->item, s->n + 1, sizeof(*s->item));
	s->item[s->n++] = text;
	s->shown = s->n;
}

static size_t
sect_rows(const struct sect *s)
{
	if (s->head == NULL)
		return 0;
	return 1 + s->shown + (s->shown < s->n ? 1 : 0);
}

/* s cut or padded with spaces to w columns, in buf. */
static const char *
pad(const char *s, int w, char *buf, size_t len)
{
	int n = text_cols(s);
	size_t b;

	if (n > w) {
		b = cut_len(s, w);
		snprintf(buf, len, "%.*s", (int)b, s);
	} else
		snprintf(buf, len, "%s%*s", s, w - n, "");
	return buf;
}

static void
header(struct top *t)
{
	const struct shm_region *r = t->st.r;
	char left[256], right[64], up[32];
	time_t now = (time_t)(t->st.now_us / 1000000);
	struct tm tm;
	int gap;

	if (r == NULL)
		snprintf(left, sizeof(left), "llmqd is not running");
	else {
		ctl_age_text(
		    up, sizeof(up), ctl_since_s(&t->st, r->master_started));
		snprintf(left, sizeof(left),
		    "llmqd pid %d, up %s, generation %d", (int)r->master_pid,
		    up, (int)r->generation);
	}
	localtime_r(&now, &tm);
	strftime(right, sizeof(right), "%Y-%m-%d %H:%M:%S", &tm);
	if (t->tty) {
		/* The keys, where there is room; the time at the right. */
		if ((int)(strlen(left) + strlen(right)) + 16 <= t->width)
			strncat(left, "   q: quit",
			    sizeof(left) - strlen(left) - 1);
		gap = t->width - (int)strlen(left) - (int)strlen(right);
		line_add(t, A_HEADER,
		    textf("%s%*s%s", left, gap > 1 ? gap : 1, "", right));
	} else
		line_add(t, A_HEADER, textf("%s  %s", left, right));
}

static void
rates(struct top *t)
{
	if (!t->db_ok) {
		line_add(t, A_PLAIN,
		    textf("database: %s",
		        t->dberr[0] != '\0' ? t->dberr : "not readable"));
		return;
	}
	line_add(t, A_PLAIN,
	    textf("completed/s %.2f (10s) %.2f (60s)   failed/s %.2f (10s) "
	          "%.2f (60s)",
	        t->n10[0] / 10.0, t->n60[0] / 60.0, t->n10[1] / 10.0,
	        t->n60[1] / 60.0));
}

/* Width of the name column: the widest name, within what the line has. */
static int
name_width(int widest, int head, int room)
{
	int w = widest > head ? widest : head;

	if (w > room)
		w = room > head ? room : head;
	return w;
}

/* A scope's name, with its state, escaped. */
static void
scope_name(
    const struct top *t, const struct shm_scope *sc, char *buf, size_t len)
{
	char *name = ctl_name_text(sc->name);

	if (sc->kind == SCOPE_PROVIDER && sc->cool_wall > t->st.now_us)
		snprintf(buf, len, "%s (cooled down %.0fs)", name,
		    (double)(sc->cool_wall - t->st.now_us) / 1e6 + 0.5);
	else
		snprintf(buf, len, "%s%s", name, sc->live ? "" : " (retired)");
	free(name);
}

/* "[###.......]": the slots in use, a cell taken as soon as it is begun. */
static void
bar_text(char *bar, int inflight, int limit)
{
	int fill, i;

	if (inflight <= 0)
		fill = 0;
	else if (inflight >= limit)
		fill = TOP_BAR;
	else
		fill = (inflight * TOP_BAR + limit - 1) / limit;
	bar[0] = '[';
	for (i = 0; i < TOP_BAR; i++)
		bar[1 + i] = i < fill ? '#' : '.';
	bar[TOP_BAR + 1] = ']';
	bar[TOP_BAR + 2] = '\0';
}

static void
scopes(struct top *t, struct sect *s)
{
	const struct shm_region *r = t->st.r;
	const struct shm_scope *sc;
	char buf[512], bar[TOP_BAR + 3], nm[256];
	int widest = 0, w;
	uint32_t k;

	for (k = 0; k < r->nscopes; k++) {
		sc = &r->scopes[k];
		if (sc->kind == SCOPE_FREE)
			continue;
		scope_name(t, sc, buf, sizeof(buf));
		if ((w = text_cols(buf)) > widest)
			widest = w;
	}
	/* kind 8, limit 5, in flight 8, the bar 22, the gaps 5. */
	w = name_width(widest, 4, t->width - 48);
	s->head = textf("%-8s %s %5s %8s", "SCOPE",
	    pad("NAME", w, nm, sizeof(nm)), "LIMIT", "INFLIGHT");
	for (k = 0; k < r->nscopes; k++) {
		sc = &r->scopes[k];
		if (sc->kind == SCOPE_FREE)
			continue;
		scope_name(t, sc, buf, sizeof(buf));
		if (sc->limit > 0) {
			bar_text(bar, sc->inflight, sc->limit);
			sect_item(s,
			    textf("%-8s %s %5d %8d  %s",
			        shm_kind_name(sc->kind),
			        pad(buf, w, nm, sizeof(nm)), (int)sc->limit,
			        (int)sc->inflight, bar));
		} else
			sect_item(s,
			    textf("%-8s %s %5s %8d", shm_kind_name(sc->kind),
			        pad(buf, w, nm, sizeof(nm)), "-",
			        (int)sc->inflight));
	}
}

static void
queues(struct top *t, struct sect *s)
{
	const struct ctl_queue *q;
	char *name, buf[512], nm[256], age[32];
	int widest = 0, w;
	size_t i;

	for (i = 0; i < t->st.nq; i++) {
		name = ctl_name_text(t->st.q[i].role);
		if ((w = text_cols(name) + (t->st.q[i].configured ? 0 : 17)) >
		    widest)
			widest = w;
		free(name);
	}
	/* pending 8, due 8, processing 10, oldest 8, the gaps 4. */
	w = name_width(widest, 4, t->width - 38);
	s->head = textf("%s %8s %8s %10s %8s", pad("ROLE", w, nm, sizeof(nm)),
	    "PENDING", "DUE", "PROCESSING", "OLDEST");
	for (i = 0; i < t->st.nq; i++) {
		q = &t->st.q[i];
		name = ctl_name_text(q->role);
		snprintf(buf, sizeof(buf), "%s%s", name,
		    q->configured ? "" : " (not configured)");
		free(name);
		if (q->oldest < 0)
			snprintf(age, sizeof(age), "-");
		else
			ctl_age_text(age, sizeof(age), q->oldest);
		sect_item(s,
		    textf("%s %8lld %8lld %10lld %8s",
		        pad(buf, w, nm, sizeof(nm)), q->pending, q->due,
		        q->processing, age));
	}
}

static void
failures(struct top *t, struct sect *s)
{
	const struct failure *f;
	char age[32], nm[256], kd[256], id[32];
	int wid = 6, wrole = 4, wkind = 4, n, i, room;

	if (t->nfail == 0) {
		s->head = textf("FAILED: none");
		return;
	}
	for (i = 0; i < t->nfail; i++) {
		f = &t->fail[i];
		if ((n = snprintf(id, sizeof(id), "%lld", f->id)) > wid)
			wid = n;
		if ((n = text_cols(f->role)) > wrole)
			wrole = n;
		if ((n = text_cols(f->kind)) > wkind)
			wkind = n;
	}
	if (wrole > 16)
		wrole = 16;
	if (wkind > 16)
		wkind = 16;
	s->head = textf("%*s %s %s %6s  %s", wid, "FAILED",
	    pad("ROLE", wrole, nm, sizeof(nm)),
	    pad("KIND", wkind, kd, sizeof(kd)), "AGE", "MESSAGE");
	/* The message gets what is left of the line, or at least 10. */
	room = t->width - (wid + wrole + wkind + 6 + 5);
	if (room < 10)
		room = 10;
	for (i = 0; i < t->nfail; i++) {
		f = &t->fail[i];
		ctl_age_text(age, sizeof(age), f->age);
		sect_item(s,
		    textf("%*lld %s %s %6s  %.*s", wid, f->id,
		        pad(f->role, wrole, nm, sizeof(nm)),
		        pad(f->kind, wkind, kd, sizeof(kd)), age,
		        (int)cut_len(f->msg, room), f->msg));
	}
}

static void
children(struct top *t, struct sect *s)
{
	const struct shm_region *r = t->st.r;
	const struct shm_proc *p;
	char *role, age[32], nm[256];
	int widest = 8, w, i;

	for (i = 0; i < SHM_MAX_PROCS; i++) {
		p = &r->procs[i];
		if (!ctl_proc_shown(p) || p->kind == PROC_CONSUMER)
			continue;
		role = ctl_name_text(p->role);
		if ((w = text_cols(role)) > widest)
			widest = w;
		free(role);
	}
	w = name_width(widest, 5, t->width - 48);
	s->head =
	    textf("%s %7s %8s %8s  %-8s %8s", pad("CHILD", w, nm, sizeof(nm)),
	        "PID", "UPTIME", "RESTARTS", "STATE", "INFLIGHT");
	for (i = 0; i < SHM_MAX_PROCS; i++) {
		p = &r->procs[i];
		if (!ctl_proc_shown(p))
			continue;
		role = p->kind == PROC_CONSUMER ? xstrdup("consumer") :
		                                  ctl_name_text(p->role);
		ctl_age_text(age, sizeof(age), ctl_since_s(&t->st, p->started));
		sect_item(s,
		    textf("%s %7d %8s %8u  %-8s %8ld",
		        pad(role, w, nm, sizeof(nm)), (int)p->pid, age,
		        (unsigned)p->restarts, ctl_proc_state(p),
		        ctl_proc_held(r, p)));
		free(role);
	}
	if (s->n == 0) {
		free(s->head);
		s->head = textf("CHILDREN: none");
	}
}

/*
 * Make the sections fit the rows left: take an item from the section
 * that shows most until they fit (a cut section spends a row on "+N
 * more").  Blank lines between sections only when there is room.
 */
static int
fit(struct sect *s, int ns, int avail)
{
	size_t total = 0, best;
	int i, b;

	for (i = 0; i < ns; i++)
		total += sect_rows(&s[i]);
	if (avail < 0 || (size_t)avail >= total + (size_t)ns)
		return 1; /* no limit (plain text), or room to spare */
	while (total > (size_t)avail) {
		b = -1;
		best = 0;
		for (i = 0; i < ns; i++)
			if (s[i].head != NULL && s[i].shown > best) {
				best = s[i].shown;
				b = i;
			}
		if (b == -1)
			break; /* headings alone do not fit: cut at the bottom
			        */
		total -= sect_rows(&s[b]);
		s[b].shown--;
		total += sect_rows(&s[b]);
	}
	return 0;
}

/* Build the lines of one screen, or of one snapshot. */
static void
top_render(struct top *t)
{
	struct sect s[4];
	size_t j;
	int i, ns = 4, blanks;

	lines_free(t);
	memset(s, 0, sizeof(s));
	header(t);
	rates(t);
	if (t->st.r != NULL)
		scopes(t, &s[0]);
	if (t->st.db_ok)
		queues(t, &s[1]);
	if (t->db_ok)
		failures(t, &s[2]);
	if (t->st.r != NULL)
		children(t, &s[3]);
	blanks = fit(s, ns, t->rows > 0 ? t->rows - (int)t->nline : -1);
	for (i = 0; i < ns; i++) {
		if (s[i].head == NULL)
			continue;
		if (blanks)
			line_add(t, A_PLAIN, xstrdup(""));
		line_add(t, A_HEAD, s[i].head);
		for (j = 0; j < s[i].n; j++) {
			if (j < s[i].shown)
				line_add(t, A_PLAIN, s[i].item[j]);
			else
				free(s[i].item[j]);
		}
		if (s[i].shown < s[i].n)
			line_add(t, A_PLAIN,
			    textf("  +%zu more", s[i].n - s[i].shown));
		free(s[i].item);
	}
}

/* Output. */

struct buf {
	char *p;
	size_t len, cap;
};

static void
buf_add(struct buf *b, const char *s, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		b->cap = (b->len + len + 1) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, len);
	b->len += len;
	b->p[b->len] = '\0';
}

static void
buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/*
 * Draw the screen in one write: from the top left, each line over the
 * one before, its rest erased; no newline after the last row, so that
 * the screen never scrolls.
 */
static void
top_draw(struct top *t, int clear)
{
	struct buf b = { NULL, 0, 0 };
	size_t i, n;
	int pad;

	buf_str(&b, clear ? "\033[2J\033[H" : "\033[H");
	n = t->nline < (size_t)t->rows ? t->nline : (size_t)t->rows;
	for (i = 0; i < n; i++) {
		if (t->line[i].attr == A_HEADER)
			buf_str(&b, "\033[7m");
		else if (t->line[i].attr == A_HEAD)
			buf_str(&b, "\033[1m");
		buf_str(&b, t->line[i].text);
		if (t->line[i].attr == A_HEADER) {
			pad = t->width - text_cols(t->line[i].text);
			while (pad-- > 0)
				buf_add(&b, " ", 1);
		}
		if (t->line[i].attr != A_PLAIN)
			buf_str(&b, "\033[0m");
		buf_str(&b, "\033[K");
		if (i + 1 < n)
			buf_str(&b, "\r\n");
	}
	buf_str(&b, "\033[J");
	write_all(STDOUT_FILENO, b.p, b.len);
	free(b.p);
}

static void
top_print(const struct top *t)
{
	size_t i;

	for (i = 0; i < t->nline; i++)
		printf("%s\n", t->line[i].text);
}

/* The snapshots on stdout: n of them, a second apart. */
static int
top_plain(struct top *t, long n)
{
	long i;

	t->tty = 0;
	t->width = 80;
	t->rows = 0;
	if (isatty(STDOUT_FILENO))
		term_size(t);
	t->rows = 0;
	for (i = 0; i < n; i++) {
		if (i > 0) {
			sleep(1);
			printf("\n");
		}
		if (top_read(t) == -1)
			return 1;
		top_render(t);
		top_print(t);
		if (fflush(stdout) == EOF)
			return 1;
	}
	if (t->st.r == NULL)
		return EXIT_NOT_RUNNING;
	return t->db_ok ? 0 : 1;
}

/* Stop (^Z): give the terminal back, stop, and take it again. */
static void
top_suspend(void)
{
	struct sigaction sa, old;

	term_restore();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTSTP, &sa, &old);
	raise(SIGTSTP);
	/* Here when continued. */
	sigaction(SIGTSTP, &old, NULL);
}

/* The live screen, until q, end of input, a signal or n refreshes. */
static int
top_live(struct top *t, long n)
{
	struct pollfd pfd[2];
	int64_t next, now;
	char keys[64], drain[64];
	ssize_t k, j;
	long done = 0;
	int clear = 1, timeout, quit = 0, rc = 0;

	if (top_read(t) == -1)
		return 1;
	t->tty = 1;
	if (signals_init() == -1)
		return 1;
	if (term_raw() == -1) {
		signals_end();
		return 1;
	}
	term_size(t);
	next = mono_ms();
	while (!quit && !got_quit) {
		now = mono_ms();
		if (now >= next) {
			if (n > 0 && done++ >= n)
				break;
			if (top_read(t) == -1) {
				rc = 1;
				break;
			}
			top_render(t);
			top_draw(t, clear);
			clear = 0;
			next = now + 1000;
			continue;
		}
		pfd[0].fd = STDIN_FILENO;
		pfd[0].events = POLLIN;
		pfd[1].fd = sig_pipe[0];
		pfd[1].events = POLLIN;
		timeout = (int)(next - now);
		if (poll(pfd, 2, timeout) == -1 && errno != EINTR) {
			rc = 1;
			break;
		}
		if (pfd[1].revents & POLLIN)
			while (read(sig_pipe[0], drain, sizeof(drain)) > 0)
				;
		if (got_tstp) {
			got_tstp = 0;
			top_suspend();
			got_cont = 1;
		}
		if (got_cont) {
			got_cont = 0;
			if (term_raw() == -1) {
				rc = 1;
				break;
			}
			clear = 1;
			next = 0;
		}
		if (got_winch) {
			got_winch = 0;
			term_size(t);
			top_render(t);
			top_draw(t, 1);
		}
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			k = read(STDIN_FILENO, keys, sizeof(keys));
			if (k == 0 ||
			    (k == -1 && errno != EINTR && errno != EAGAIN))
				quit = 1; /* the terminal is gone */
			for (j = 0; j < k; j++) {
				if (keys[j] == 'q' || keys[j] == 'Q')
					quit = 1;
				else if (keys[j] == 'r' || keys[j] == 'R' ||
				    keys[j] == ' ')
					next = 0;
				else if (keys[j] == '\f') { /* ^L */
					clear = 1;
					next = 0;
				}
			}
		}
	}
	term_restore();
	signals_end();
	if (got_quit) {
		/* Die of the signal, as asked, now that the terminal is back.
		 */
		signal(got_quit, SIG_DFL);
		raise(got_quit);
	}
	return rc;
}

int
ctl_top(struct ctl *ctl, int argc, char **argv)
{
	enum { OPT_ONCE = 256 };
	static const struct option opts[] = {
		{ "once", no_argument, NULL, OPT_ONCE },
		{ "iterations", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct top t;
	long n = 0;
	int ch, once = 0, rc;

	ctl_getopt_init(ctl, argv);
	while ((ch = getopt_long(argc, argv, "hn:", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_ONCE:
			once = 1;
			break;
		case 'n':
			if (ctl_parse_int(optarg, 1, 1000000, &n) == -1)
				return ctl_usage_error(ctl,
				    "invalid number of refreshes \"%s\"",
				    optarg);
			break;
		default: /* -h, or an option getopt refused */
			return ctl_help(ctl, ch);
		}
	}
	if ((rc = ctl_no_args(ctl, argc, argv)) != 0)
		return rc;
	if ((rc = ctl_daemon_config(ctl)) != 0)
		return rc;

	memset(&t, 0, sizeof(t));
	t.ctl = ctl;
	t.st.pidfile = ctl->cfg->pidfile;
	/* Without the database, llmqd's part is still worth showing. */
	if (ctl_connect(ctl, 1) == -1)
		ctl_errx("warning: the database could not be read");

	if (once || !isatty(STDOUT_FILENO) || !isatty(STDIN_FILENO))
		rc = top_plain(&t, n > 0 ? n : 1);
	else {
		atexit(term_restore);
		rc = top_live(&t, n);
	}
	lines_free(&t);
	failures_free(&t);
	ctl_snapshot_free(&t.st);
	return rc;
}
