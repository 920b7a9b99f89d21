#!/usr/bin/env bats
# 35-privileges.bats: started as root with "user:", llmqd runs every
# process as that user and can still reopen its log and clear its
# pidfile.

load helpers

setup_file() {
	common_setup_file
	llmq_migrate
	write_config "$TEST_DIR/llmq.yaml" "user: nobody"
	# The log in a directory of the user's own, as llmqd(8) advises.
	mkdir "$TEST_DIR/logs"
	chown nobody "$TEST_DIR/logs" 2>/dev/null || true
	sed -i "s#^log: .*#log: $TEST_DIR/logs/llmqd.log#" "$TEST_DIR/llmq.yaml"
	export LLMQD_LOG="$TEST_DIR/logs/llmqd.log"
}

teardown_file() {
	common_teardown_file
}

@test "an unknown user is refused before starting, on the terminal" {
	write_config "$TEST_DIR/nouser.yaml" "user: no_such_user_llmq"
	run "$LLMQD" -c "$TEST_DIR/nouser.yaml"
	[ "$status" -eq 1 ]
	[[ "$output" == *'user: unknown user "no_such_user_llmq"'* ]]
	[ ! -s "$TEST_DIR/llmqd.pid" ]
}

@test "master and children run as the configured user" {
	[ "$(id -u)" = 0 ] || skip "needs root"
	llmqd_start
	[ "$(ps -o user= -p "$LLMQD_PID" | tr -d ' ')" = nobody ]
	for k in $(pgrep -P "$LLMQD_PID"); do
		[ "$(ps -o user= -p "$k" | tr -d ' ')" = nobody ]
	done
	id=$(submit -r planner -m "as nobody")
	run "$LLMQCTL" -d "$DBCONN" wait --timeout 20s "$id"
	[ "$status" -eq 0 ]
}

@test "after the drop the log can be rotated and the pidfile cleared" {
	[ "$(id -u)" = 0 ] || skip "needs root"
	log=$TEST_DIR/logs/llmqd.log
	[ "$(stat -c %U "$log")" = nobody ]
	mv "$log" "$log.1"
	kill -USR1 "$LLMQD_PID"
	wait_until 10 test -e "$log"
	id=$(submit -r planner -m "x mock:status=404")
	wait_req "$id" || true
	# A worker's line, written after the reopen, is in the new file.
	wait_until 10 grep -q "request $id attempt 1 of 3 failed" "$log"
	refute grep -q "could not reopen" "$log" "$log.1"
	pid=$LLMQD_PID
	llmqd_stop
	# $TEST_DIR is root's: the pidfile is emptied rather than removed.
	[ ! -s "$TEST_DIR/llmqd.pid" ]
	gone "$pid"
}

@test "a pidfile that is a symbolic link is refused" {
	ln -sf "$TEST_DIR/victim" "$TEST_DIR/llmqd.pid"
	echo keep >"$TEST_DIR/victim"
	run timeout 10 "$LLMQD" -f -c "$TEST_DIR/llmq.yaml"
	[ "$status" -eq 1 ]
	[[ "$output" == *"could not open pidfile"* ]]
	[ "$(cat "$TEST_DIR/victim")" = keep ]
	rm -f "$TEST_DIR/llmqd.pid"
}
