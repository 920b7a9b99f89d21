#!/usr/bin/env bats
# 35-privileges.bats: started as root with "user:", llmqd runs every
# process as that user and can still reopen its log and clear its
# pidfile.

load helpers

setup_file() {
	common_setup_file
	llmq_migrate
	write_config "$TEST_DIR/llmq.yaml" "user: nobody"
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

@test "after the drop the log can still be reopened and the pidfile cleared" {
	[ "$(id -u)" = 0 ] || skip "needs root"
	[ "$(stat -c %U "$TEST_DIR/llmqd.log")" = nobody ]
	kill -USR1 "$LLMQD_PID"
	id=$(submit -r planner -m "x mock:status=500")
	"$LLMQCTL" -d "$DBCONN" wait --timeout 20s "$id" || true
	wait_until 10 grep -q "request $id attempt 1 failed" "$TEST_DIR/llmqd.log"
	! grep -q "could not reopen" "$TEST_DIR/llmqd.log"
	pid=$LLMQD_PID
	llmqd_stop
	# The directory is root's: the file is emptied rather than removed.
	[ ! -s "$TEST_DIR/llmqd.pid" ]
	! kill -0 "$pid" 2>/dev/null
}
