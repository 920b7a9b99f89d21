# helpers.bash: shared set-up for the bats suite.
#
# Each .bats file starts its own PostgreSQL (initdb + pg_ctl, Unix socket
# in a temporary directory, as an unprivileged user when the suite runs as
# root), its own LLM stand-in (tests/mockllm) and, where it needs one, an
# llmqd; teardown stops each by the pid it recorded.  Waits poll with a
# deadline; nothing sleeps blindly.

: "${LLMQ_SRCDIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
: "${LLMQ_BUILDDIR:=$LLMQ_SRCDIR}"
LLMQD="$LLMQ_BUILDDIR/llmqd"
LLMQCTL="$LLMQ_BUILDDIR/llmqctl"
MOCKLLM="$LLMQ_BUILDDIR/tests/mockllm"

pg_bindir() {
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		[ -x "$d/initdb" ] && { echo "$d"; return 0; }
	done
	command -v initdb >/dev/null && dirname "$(command -v initdb)" && return 0
	echo "no PostgreSQL server binaries found (install postgresql)" >&2
	return 1
}

# Run a command as the unprivileged owner of the cluster when root.
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u nobody -- "$@"
	else
		"$@"
	fi
}

# gone PID: the process has exited (a zombie not yet reaped counts as
# gone: in a container, PID 1 may be slow to reap orphans).
gone() {
	! kill -0 "$1" 2>/dev/null ||
		[ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" = Z ]
}

# refute COMMAND...: fail when COMMAND succeeds.  (A bare "! cmd" does
# not fail a bats test: set -e ignores negated commands.)
refute() {
	if "$@"; then
		echo "unexpected success: $*" >&2
		return 1
	fi
	return 0
}

# wait_until SECONDS COMMAND...: run COMMAND until it succeeds or time is up.
wait_until() {
	local limit=$1; shift
	local end=$(( $(date +%s%N) / 1000000 + limit * 1000 ))
	while ! "$@" >/dev/null 2>&1; do
		if [ $(( $(date +%s%N) / 1000000 )) -ge $end ]; then
			echo "timed out after ${limit}s waiting for: $*" >&2
			return 1
		fi
		sleep 0.05
	done
}

# Start PostgreSQL in a new directory; sets TEST_DIR, PGDIR, PGHOST,
# DBCONN.
pg_start() {
	local bindir
	bindir=$(pg_bindir) || return 1
	TEST_DIR=$(mktemp -d /tmp/llmq-test.XXXXXX)
	chmod 755 "$TEST_DIR"
	PGDIR="$TEST_DIR/pg"
	mkdir -p "$PGDIR"
	[ "$(id -u)" = 0 ] && chown nobody "$PGDIR"
	as_pg "$bindir/initdb" -D "$PGDIR/data" -A trust -U postgres \
		--no-sync -E UTF8 >"$TEST_DIR/initdb.log" 2>&1 || {
		cat "$TEST_DIR/initdb.log" >&2; return 1; }
	as_pg "$bindir/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w -t 30 \
		-o "-k $PGDIR -c listen_addresses='' -c fsync=off \
		    -c synchronous_commit=off -c full_page_writes=off \
		    -c max_connections=200" \
		start >/dev/null 3>&- || { cat "$PGDIR/log" >&2; return 1; }
	PG_BINDIR=$bindir
	export PGHOST="$PGDIR" PGUSER=postgres PGDATABASE=postgres
	DBCONN="host=$PGDIR user=postgres dbname=postgres"
	export TEST_DIR PGDIR DBCONN PG_BINDIR
}

pg_pid() {
	head -1 "$PGDIR/data/postmaster.pid" 2>/dev/null
}

pg_stop() {
	[ -n "$PGDIR" ] && [ -d "$PGDIR/data" ] || return 0
	as_pg "$PG_BINDIR/pg_ctl" -D "$PGDIR/data" -m immediate -w stop \
		>/dev/null 2>&1 || true
}

# pg_restart [MODE]: stop (fast by default) and start again.
pg_restart() {
	as_pg "$PG_BINDIR/pg_ctl" -D "$PGDIR/data" -m "${1:-fast}" -w \
		stop >/dev/null
	as_pg "$PG_BINDIR/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w \
		-o "-k $PGDIR -c listen_addresses='' -c fsync=off \
		    -c synchronous_commit=off -c max_connections=200" \
		start >/dev/null 3>&-
}

psql_q() {
	psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$DBCONN" -c "$1"
}

# Start the LLM stand-in; sets MOCK_PID, MOCK_PORT, MOCK_URL.
mock_start() {
	rm -f "$TEST_DIR/mock.port"
	"$MOCKLLM" -P "$TEST_DIR/mock.port" -f "$TEST_DIR/mock.pid" "$@" \
		>"$TEST_DIR/mock.out" 2>&1 3>&- &
	MOCK_PID=$!
	wait_until 10 test -s "$TEST_DIR/mock.port" || return 1
	MOCK_PORT=$(cat "$TEST_DIR/mock.port")
	MOCK_URL="http://127.0.0.1:$MOCK_PORT"
	export MOCK_PID MOCK_PORT MOCK_URL
}

mock_stop() {
	[ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null
	[ -n "$MOCK_PID" ] && wait "$MOCK_PID" 2>/dev/null
	MOCK_PID=
}

mock_stats() {
	curl -s "$MOCK_URL/_mock/stats"
}

# mock_field NAME: one numeric field of the stand-in's counters.
mock_field() {
	mock_stats | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"
}

# write_config FILE [EXTRA_YAML]: a configuration for the test servers,
# with two providers (one per dialect) and two roles.
write_config() {
	local f=$1
	cat >"$f" <<EOC
database: "$DBCONN"
pidfile: $TEST_DIR/llmqd.pid
log: $TEST_DIR/llmqd.log
log_level: ${LOG_LEVEL:-info}
poll_interval: 100ms
shutdown_timeout: 5s
crash_limit: ${CRASH_LIMIT:-5}
crash_window: 60s
providers:
  local:
    kind: ollama
    url: $MOCK_URL
    timeout: ${PROVIDER_TIMEOUT:-10s}
    cooldown: { failures: 0 }   # tests fail calls on purpose
  cloud:
    kind: openai
    url: $MOCK_URL/v1
    timeout: ${PROVIDER_TIMEOUT:-10s}
    cooldown: { failures: 0 }
models:
  "small:1b": { provider: local }
  "big:8b": { provider: local }
  "gpt-test": { provider: cloud }
roles:
  planner:
    concurrency: ${PLANNER_CONCURRENCY:-2}
    model: "small:1b"
  executor:
    processes: ${EXECUTOR_PROCESSES:-1}
    concurrency: ${EXECUTOR_CONCURRENCY:-5}
    model:
      simple: "small:1b"
      medium: "gpt-test"
      complex: "big:8b"
${2:-}
EOC
}

llmq_migrate() {
	"$LLMQCTL" -d "$DBCONN" -c "$TEST_DIR/llmq.yaml" migrate
}

# Start llmqd in the foreground (in the background of the test) and wait
# until every worker has connected; sets LLMQD_PID.
llmqd_start() {
	local cfg=${1:-$TEST_DIR/llmq.yaml}
	: >"${LLMQD_LOG:-$TEST_DIR/llmqd.log}"
	# fd 3 is bats' own output: a daemon holding it would hang bats.
	"$LLMQD" -f -c "$cfg" >>"$TEST_DIR/llmqd.out" 2>&1 3>&- &
	LLMQD_PID=$!
	export LLMQD_PID
	# Every llmqd started, for teardown: titles hide the config path.
	echo "$LLMQD_PID" >>"$TEST_DIR/llmqd.pids"
	wait_until 20 llmqd_ready "${2:-2}"
}

# True when N workers have logged their connection.
llmqd_ready() {
	[ "$(grep -c 'listening on "llmq_' "${LLMQD_LOG:-$TEST_DIR/llmqd.log}")" -ge "$1" ]
}

llmqd_stop() {
	# The pidfile names the llmqd running now, whichever test started it.
	[ -s "$TEST_DIR/llmqd.pid" ] && LLMQD_PID=$(cat "$TEST_DIR/llmqd.pid")
	[ -n "$LLMQD_PID" ] || return 0
	kill -TERM "$LLMQD_PID" 2>/dev/null || true
	local i
	for i in $(seq 1 200); do
		gone "$LLMQD_PID" && break
		sleep 0.05
	done
	kill -KILL "$LLMQD_PID" 2>/dev/null || true
	wait "$LLMQD_PID" 2>/dev/null || true
	LLMQD_PID=
}

# Children of a pid (workers and the consumer of llmqd).
children_of() {
	pgrep -P "$1"
}

# llmqctl against the test database.
submit() {
	"$LLMQCTL" -d "$DBCONN" submit "$@"
}

# wait_req ID...: wait for requests, 30 s at most.
wait_req() {
	"$LLMQCTL" -d "$DBCONN" wait --timeout 30s "$@"
}

# Count requests by status: req_count STATUS
req_count() {
	psql_q "SELECT count(*) FROM llmq.requests WHERE status = '$1'"
}

# field ID EXPR: one value of a request row.
field() {
	psql_q "SELECT $2 FROM llmq.requests WHERE id = $1"
}

# sql_is QUERY VALUE: the query's one value is VALUE (for wait_until).
sql_is() {
	[ "$(psql_q "$1")" = "$2" ]
}

all_final() {
	[ "$(psql_q "SELECT count(*) FROM llmq.requests
		WHERE status IN ('pending', 'processing')")" = 0 ]
}

# Before each test: the llmqd started by an earlier test (tests run in
# subshells, so its variable did not survive) is found by its pidfile.
setup() {
	if [ -s "$TEST_DIR/llmqd.pid" ]; then
		LLMQD_PID=$(cat "$TEST_DIR/llmqd.pid")
	else
		LLMQD_PID=
	fi
}

# Standard per-file set-up and tear-down.
common_setup_file() {
	pg_start || return 1
	mock_start "$@" || return 1
	write_config "$TEST_DIR/llmq.yaml"
}

common_teardown_file() {
	# Every step runs, whatever the one before returned (callers may
	# have set -e: a failing kill must not skip the rest).
	llmqd_stop || true
	mock_stop || true
	pg_stop || true
	# Anything of ours still running is a bug; stop it anyway, by pid
	# (a master's children exit when it does).
	local p
	for p in $(cat "$TEST_DIR/llmqd.pids" 2>/dev/null); do
		kill -KILL "$p" 2>/dev/null || true
	done
	if [ -n "$TEST_DIR" ]; then
		pkill -f "$TEST_DIR" 2>/dev/null || true
		rm -rf "$TEST_DIR"
	fi
	return 0
}
