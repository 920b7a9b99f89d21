#!/usr/bin/env bats
# 30-daemon.bats: supervision: restarts, reload, stop, the master's
# death, and a PostgreSQL restart in the middle of a run.

load helpers

setup_file() {
	common_setup_file
	# The consumer also hands back dead workers' rows: keep it out of
	# the way so that the successor's own hand-back is what is tested.
	write_config "$TEST_DIR/llmq.yaml" "consumer:
  interval: 1h"
	llmq_migrate
	llmqd_start
}

teardown_file() {
	common_teardown_file
}

# The pid of the process whose title is "llmqd: ROLE worker".
worker_pid() {
	pgrep -P "$LLMQD_PID" -f "llmqd: $1 worker" | head -1
}

@test "process titles show the role of each child" {
	[ -n "$(worker_pid planner)" ]
	[ -n "$(worker_pid executor)" ]
	pgrep -P "$LLMQD_PID" -f "llmqd: result consumer"
	ps -o args= -p "$LLMQD_PID" | grep -q "llmqd: master"
}

@test "a worker killed with SIGKILL is restarted and the daemon keeps serving" {
	old=$(worker_pid planner)
	kill -KILL "$old"
	wait_until 10 sh -c "pgrep -P $LLMQD_PID -f 'llmqd: planner worker' | grep -vx $old"
	grep -q "planner process $old was killed by signal 9" "$TEST_DIR/llmqd.log"
	id=$(submit -r planner -m "after the crash")
	run wait_req "$id"
	[ "$status" -eq 0 ]
	[ "$output" = "echo: after the crash" ]
}

@test "rows of a worker killed mid-call are handed back by its successor" {
	ids=$(submit -r planner -n 2 -m "long mock:delay=1500")
	wait_until 10 sql_is "SELECT count(*) FROM llmq.requests WHERE status='processing' AND role='planner'" 2
	kill -KILL "$(worker_pid planner)"
	run wait_req $ids
	[ "$status" -eq 0 ]
	# Each was claimed twice: the killed attempt and the successful one,
	# long before the 5-minute lease could have expired.
	[ "$(psql_q "SELECT string_agg(attempts::text, ',') FROM llmq.requests WHERE id IN ($(echo $ids | tr ' ' ','))")" = "2,2" ]
}

@test "SIGHUP with a broken configuration keeps the old one running" {
	cp "$TEST_DIR/llmq.yaml" "$TEST_DIR/good.yaml"
	old=$(worker_pid planner)
	printf 'database: [broken\n' >"$TEST_DIR/llmq.yaml"
	kill -HUP "$LLMQD_PID"
	wait_until 10 grep -q "reload failed, keeping the running configuration" "$TEST_DIR/llmqd.log"
	cp "$TEST_DIR/good.yaml" "$TEST_DIR/llmq.yaml"
	[ "$(worker_pid planner)" = "$old" ]
	id=$(submit -r planner -m "still serving")
	run wait_req "$id"
	[ "$status" -eq 0 ]
}

@test "SIGHUP with a valid configuration replaces the workers" {
	old=$(worker_pid planner)
	kill -HUP "$LLMQD_PID"
	wait_until 10 grep -q "configuration reloaded" "$TEST_DIR/llmqd.log"
	wait_until 10 gone "$old"
	wait_until 10 sh -c "[ -n \"\$(pgrep -P $LLMQD_PID -f 'llmqd: planner worker')\" ]"
	[ "$(worker_pid planner)" != "$old" ]
	id=$(submit -r planner -m "new generation")
	run wait_req "$id"
	[ "$status" -eq 0 ]
}

@test "a second SIGHUP waits until the first generation has drained" {
	curl -s -X POST "$MOCK_URL/_mock/reset" >/dev/null
	ids=$(submit -r executor --complexity simple -n 20 -m "reloading mock:delay=1500")
	wait_until 10 sql_is "SELECT count(*) FROM llmq.requests WHERE status='processing'" 5
	n=$(grep -c "configuration reloaded" "$TEST_DIR/llmqd.log" || true)
	kill -HUP "$LLMQD_PID"
	wait_until 10 sh -c "[ \$(grep -c 'configuration reloaded' '$TEST_DIR/llmqd.log') -gt $n ]"
	kill -HUP "$LLMQD_PID"
	wait_until 10 grep -q "reload deferred until the previous generation has stopped" "$TEST_DIR/llmqd.log"
	run wait_req $ids
	[ "$status" -eq 0 ]
	# Old and new generation together: at most twice the role's 5.
	[ "$(mock_field max_inflight)" -le 10 ]
	wait_until 20 sh -c "[ \$(grep -c 'configuration reloaded' '$TEST_DIR/llmqd.log') -ge $((n + 2)) ]"
	wait_until 10 llmqd_ready 2
}

@test "a result whose row is locked by someone else is written once the lock goes" {
	locks=$(grep -c "finish failed: .*lock timeout" "$TEST_DIR/llmqd.log" || true)
	id=$(submit -r planner -m "locked mock:delay=2000")
	wait_until 10 sql_is "SELECT status FROM llmq.requests WHERE id=$id" processing
	# Hold a lock on the row across the reply; meanwhile, others are served.
	psql -X -q -d "$DBCONN" -c "BEGIN; SELECT 1 FROM llmq.requests WHERE id = $id FOR SHARE; SELECT pg_sleep(6); COMMIT" >/dev/null 3>&- &
	locker=$!
	wait_until 10 sql_is "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(6)%' AND state = 'active' AND pid <> pg_backend_pid()" 1
	# The reply arrives while the lock is held: its write must wait...
	wait_until 10 sh -c "[ \$(grep -c 'finish failed: .*lock timeout' '$TEST_DIR/llmqd.log') -gt $locks ]"
	# ...without holding back another request's result.
	other=$(submit -r planner -m "unlocked")
	run wait_req "$other"
	[ "$status" -eq 0 ]
	kill -0 "$locker"
	[ "$(psql_q "SELECT status FROM llmq.requests WHERE id = $id")" = processing ]
	wait "$locker"
	run wait_req "$id"
	[ "$status" -eq 0 ]
	[ "$output" = "echo: locked mock:delay=2000" ]
}

@test "SIGUSR1 makes the master and the workers reopen the log file" {
	mv "$TEST_DIR/llmqd.log" "$TEST_DIR/llmqd.log.1"
	kill -USR1 "$LLMQD_PID"
	wait_until 10 test -e "$TEST_DIR/llmqd.log"
	id=$(submit -r planner -m "logged mock:status=404")
	wait_req "$id" || true
	# The worker's line about the failure went to the new file.
	wait_until 10 grep -q "request $id attempt 1 of 3 failed" "$TEST_DIR/llmqd.log"
	refute grep -q "request $id attempt 1 of 3 failed" "$TEST_DIR/llmqd.log.1"
	cat "$TEST_DIR/llmqd.log" >>"$TEST_DIR/llmqd.log.1"
	mv "$TEST_DIR/llmqd.log.1" "$TEST_DIR/llmqd.log"
	kill -USR1 "$LLMQD_PID"
}

@test "a PostgreSQL restart mid-run loses no request" {
	ids=$(submit -r executor --complexity simple -n 30 -m "across restart mock:delay=300")
	pg_restart fast
	more=$(submit -r executor --complexity simple -n 10 -m "after restart")
	run wait_req $ids $more
	[ "$status" -eq 0 ]
	all_final
	[ "$(psql_q "SELECT count(*) FROM llmq.requests WHERE id IN ($(echo $ids $more | tr ' ' ',')) AND status = 'completed'")" = 40 ]
	grep -q "lost the database connection" "$TEST_DIR/llmqd.log"
}

@test "SIGTERM lets calls in flight finish before the daemon exits" {
	ids=$(submit -r executor --complexity simple -n 3 -m "finishing mock:delay=1000")
	wait_until 10 sql_is "SELECT count(*) FROM llmq.requests WHERE status='processing'" 3
	kill -TERM "$LLMQD_PID"
	wait_until 20 gone "$LLMQD_PID"
	# The workers waited for their calls; nothing had to be killed.
	grep -q "stopping: waiting for 3 requests" "$TEST_DIR/llmqd.log"
	refute grep -q "killing them" "$TEST_DIR/llmqd.log"
	wait "$LLMQD_PID" || true
	LLMQD_PID=
	[ "$(psql_q "SELECT count(*) FROM llmq.requests WHERE id IN ($(echo $ids | tr ' ' ',')) AND status = 'completed'")" = 3 ]
	llmqd_start
}

@test "SIGQUIT hands calls in flight back to pending" {
	ids=$(submit -r executor --complexity simple -n 2 -m "handed back mock:delay=5000")
	wait_until 10 sql_is "SELECT count(*) FROM llmq.requests WHERE status='processing'" 2
	kill -QUIT "$LLMQD_PID"
	wait_until 10 gone "$LLMQD_PID"
	LLMQD_PID=
	[ "$(psql_q "SELECT count(*) FROM llmq.requests WHERE id IN ($(echo $ids | tr ' ' ',')) AND status = 'pending' AND attempts = 0")" = 2 ]
	psql_q "UPDATE llmq.requests SET status = 'cancelled' WHERE id IN ($(echo $ids | tr ' ' ','))"
	llmqd_start
}

@test "children exit when the master is killed" {
	kids=$(pgrep -P "$LLMQD_PID" | tr '\n' ' ')
	[ -n "$kids" ]
	kill -KILL "$LLMQD_PID"
	wait "$LLMQD_PID" 2>/dev/null || true
	LLMQD_PID=
	for k in $kids; do
		wait_until 10 gone "$k"
	done
	llmqd_start
}

@test "a crash loop ends the daemon with a non-zero status" {
	llmqd_stop
	# Three deaths of the planner role within the window.
	CRASH_LIMIT=3 write_config "$TEST_DIR/crash.yaml"
	llmqd_start "$TEST_DIR/crash.yaml"
	old=none
	for i in 1 2 3; do
		wait_until 15 sh -c "pgrep -P $LLMQD_PID -f 'llmqd: planner worker' | grep -vx $old"
		old=$(worker_pid planner)
		kill -KILL "$old"
	done
	wait_until 20 gone "$LLMQD_PID"
	run wait "$LLMQD_PID"
	[ "$status" -eq 1 ]
	LLMQD_PID=
	grep -q "crash loop: 3 deaths within 60s" "$TEST_DIR/llmqd.log"
}
