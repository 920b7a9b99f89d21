#!/usr/bin/env bats
# 10-config.bats: llmqd -t, configuration errors with file:line:column,
# the pidfile lock.

load helpers

setup_file() {
	common_setup_file
}

teardown_file() {
	common_teardown_file
}

@test "llmqd -t accepts the test configuration and the shipped sample" {
	run "$LLMQD" -t -c "$TEST_DIR/llmq.yaml"
	[ "$status" -eq 0 ]
	[[ "$output" == *"test is successful"* ]]
	run "$LLMQD" -t -c "$LLMQ_SRCDIR/etc/llmq.yaml"
	[ "$status" -eq 0 ]
}

@test "llmqd -V and -h" {
	run "$LLMQD" -V
	[ "$status" -eq 0 ]
	[[ "$output" == "llmqd "[0-9]* ]]
	run "$LLMQD" -h
	[ "$status" -eq 0 ]
	[[ "$output" == *"usage: llmqd"* ]]
	run "$LLMQD" -x
	[ "$status" -eq 64 ]
}

@test "an unknown key is reported with file, line, column and key path" {
	cp "$TEST_DIR/llmq.yaml" "$TEST_DIR/bad.yaml"
	printf 'roles:\n  planner:\n    model: "small:1b"\n    concurency: 2\n' >"$TEST_DIR/bad.yaml.tail"
	sed -i '/^roles:/,$d' "$TEST_DIR/bad.yaml"
	line=$(( $(wc -l <"$TEST_DIR/bad.yaml") + 4 ))
	cat "$TEST_DIR/bad.yaml.tail" >>"$TEST_DIR/bad.yaml"
	run "$LLMQD" -t -c "$TEST_DIR/bad.yaml"
	[ "$status" -eq 1 ]
	[[ "$output" == *"$TEST_DIR/bad.yaml:$line:5: roles.planner.concurency: unknown key"* ]]
}

@test "a wrong type is reported at its value" {
	printf 'database: "x"\nbatch_size: many\nroles:\n  p:\n    model: m\n' >"$TEST_DIR/t.yaml"
	run "$LLMQD" -t -c "$TEST_DIR/t.yaml"
	[ "$status" -eq 1 ]
	[[ "$output" == *"t.yaml:2:13: batch_size:"* ]]
	[[ "$output" == *"many"* ]]
}

@test "a missing required key is named" {
	printf 'log: stderr\n' >"$TEST_DIR/m.yaml"
	run "$LLMQD" -t -c "$TEST_DIR/m.yaml"
	[ "$status" -eq 1 ]
	[[ "$output" == *"m.yaml:1:1: database: missing required key"* ]]
}

@test "a bad duration and a YAML syntax error are reported with position" {
	printf 'database: "x"\npoll_interval: 5 minutes\nroles:\n  p:\n    model: m\n' >"$TEST_DIR/d.yaml"
	run "$LLMQD" -t -c "$TEST_DIR/d.yaml"
	[ "$status" -eq 1 ]
	[[ "$output" == *"d.yaml:2:16: poll_interval: invalid duration"* ]]
	printf 'database: "x"\nroles: [a, b\n' >"$TEST_DIR/s.yaml"
	run "$LLMQD" -t -c "$TEST_DIR/s.yaml"
	[ "$status" -eq 1 ]
	[[ "$output" == *"s.yaml:"*"syntax error"* ]]
}

@test "a missing configuration file is a clear error" {
	run "$LLMQD" -t -c "$TEST_DIR/nonexistent.yaml"
	[ "$status" -eq 1 ]
	[[ "$output" == *"nonexistent.yaml"*"No such file or directory"* ]]
}

@test "a second llmqd on the same pidfile refuses to start" {
	llmq_migrate
	llmqd_start
	run timeout 10 "$LLMQD" -f -c "$TEST_DIR/llmq.yaml"
	[ "$status" -eq 1 ]
	[[ "$output" == *"already running (pid $LLMQD_PID"* ]]
	# The first one is unharmed.
	kill -0 "$LLMQD_PID"
	[ "$(cat "$TEST_DIR/llmqd.pid")" = "$LLMQD_PID" ]
	llmqd_stop
	[ ! -e "$TEST_DIR/llmqd.pid" ]
}

@test "without -f llmqd daemonizes, writes its pidfile and stops on SIGTERM" {
	run "$LLMQD" -c "$TEST_DIR/llmq.yaml" 3>&-
	[ "$status" -eq 0 ]
	pid=$(cat "$TEST_DIR/llmqd.pid")
	echo "$pid" >>"$TEST_DIR/llmqd.pids"
	kill -0 "$pid"
	# Detached: a session of its own.
	[ "$(ps -o sid= -p "$pid" | tr -d ' ')" = "$pid" ]
	kill -TERM "$pid"
	wait_until 15 gone "$pid"
	[ ! -e "$TEST_DIR/llmqd.pid" ]
}
