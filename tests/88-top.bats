#!/usr/bin/env bats
# 88-top.bats: llmqctl top, as a plain snapshot when its output is not a
# terminal, and live in a terminal (tmux, 80x24 and smaller): what it
# shows, that it fits, that q and ^C end it with the terminal put back,
# and what it says when llmqd is not running.

load helpers

# tmux with a server of this file's own, its socket in TEST_DIR.
tm() {
	tmux -S "$TEST_DIR/tmux.sock" "$@"
}

setup_file() {
	common_setup_file || return 1
	llmq_migrate || return 1
	llmqd_start "$TEST_DIR/llmq.yaml" 2
	# Three planner rows that stay pending (due in an hour), and one
	# failure whose message holds a newline, finished just now.
	psql_q "INSERT INTO llmq.requests (role, messages, run_after)
		SELECT 'planner', '[{\"role\":\"user\",\"content\":\"later\"}]',
		       now() + interval '1 hour'
		  FROM generate_series(1, 3);
		INSERT INTO llmq.requests (role, messages, status, error_kind,
		       error_message, finished_at)
		VALUES ('executor', '[{\"role\":\"user\",\"content\":\"x\"}]',
		       'failed', 'timeout', E'boom\nsecond line', now());"
}

teardown_file() {
	tm kill-server 2>/dev/null || true
	common_teardown_file
}

teardown() {
	tm kill-server 2>/dev/null || true
}

# tmux_top W H PREFIX: llmqctl top in a new tmux session of W x H, in a
# shell that records the terminal's settings before and after it and
# its exit status (PREFIX.before, PREFIX.after, PREFIX.rc); ^C reaches
# top, not that shell.
tmux_top() {
	local p=$3
	tm new-session -d -s top -x "$1" -y "$2" \
		"sh -c 'trap : INT; stty -g >$p.before;
		    $LLMQCTL -c $TEST_DIR/llmq.yaml top; echo \$? >$p.rc;
		    stty -g >$p.after'"
}

screen() {
	tm capture-pane -p -t top
}

screen_has() {
	screen | grep -q -- "$1"
}

session_gone() {
	! tm has-session -t top 2>/dev/null
}

@test "top without a terminal: one plain snapshot with the queues, rates and failures" {
	run "$LLMQCTL" -c "$TEST_DIR/llmq.yaml" top
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "llmqd pid $(cat "$TEST_DIR/llmqd.pid"), up "* ]]
	# No escape sequence in plain text.
	refute grep -q $'\033' <<<"$output"
	grep -q '^SCOPE  *NAME  *LIMIT  *INFLIGHT' <<<"$output"
	grep -Eq '^global +global +- +0$' <<<"$output"
	grep -q '^role  *planner  *2  *0  *\[\.\.\.*\]$' <<<"$output"
	grep -q '^ROLE  *PENDING  *DUE  *PROCESSING  *OLDEST$' <<<"$output"
	grep -Eq '^planner +3 +0 +0 +[0-9.]+s$' <<<"$output"
	grep -Eq '^executor +0 +0 +0 +-$' <<<"$output"
	# One failure in the last minute; its message escaped.
	grep -q 'failed/s 0.10 (10s) 0.02 (60s)' <<<"$output"
	grep -Eq '^ *[0-9]+ executor +timeout .*boom\\nsecond line$' <<<"$output"
	grep -q '^CHILD  *PID  *UPTIME  *RESTARTS  *STATE  *INFLIGHT$' <<<"$output"
	grep -Eq '^planner +[0-9]+ +[0-9.smh]+ +0  running +0$' <<<"$output"
	grep -Eq '^consumer +[0-9]+ ' <<<"$output"
	# -n 2: two snapshots.
	run "$LLMQCTL" -c "$TEST_DIR/llmq.yaml" top -n 2
	[ "$status" -eq 0 ]
	[ "$(grep -c '^llmqd pid ' <<<"$output")" -eq 2 ]
}

@test "top: usage errors" {
	run "$LLMQCTL" -c "$TEST_DIR/llmq.yaml" top extra
	[ "$status" -eq 64 ]
	run "$LLMQCTL" -c "$TEST_DIR/llmq.yaml" top -n 0
	[ "$status" -eq 64 ]
	run "$LLMQCTL" -c "$TEST_DIR/llmq.yaml" top --bogus
	[ "$status" -eq 64 ]
}

@test "top in an 80x24 terminal: fits, shows the queues, q quits and restores the terminal" {
	command -v tmux >/dev/null || skip "tmux is not installed"
	tmux_top 80 24 "$TEST_DIR/t1"
	wait_until 10 screen_has 'CHILD'
	# The second refresh, so that the screen was redrawn in place.
	sleep 1.2
	screen >"$TEST_DIR/t1.screen"
	cat "$TEST_DIR/t1.screen"
	grep -q '^llmqd pid [0-9]*, up .*q: quit  *[0-9-]* [0-9:]*$' "$TEST_DIR/t1.screen"
	grep -q 'completed/s' "$TEST_DIR/t1.screen"
	grep -q '^SCOPE ' "$TEST_DIR/t1.screen"
	grep -Eq '^planner +3 +0 +0 ' "$TEST_DIR/t1.screen"
	grep -q 'executor  *timeout .*boom' "$TEST_DIR/t1.screen"
	grep -q '^consumer ' "$TEST_DIR/t1.screen"
	# Everything fits: nothing was cut at 24 lines.
	refute grep -q 'more$' "$TEST_DIR/t1.screen"
	[ "$(awk 'length > 80' "$TEST_DIR/t1.screen" | wc -l)" -eq 0 ]
	[ "$(wc -l <"$TEST_DIR/t1.screen")" -le 24 ]
	tm send-keys -t top q
	wait_until 5 session_gone
	[ "$(cat "$TEST_DIR/t1.rc")" = 0 ]
	[ "$(cat "$TEST_DIR/t1.before")" = "$(cat "$TEST_DIR/t1.after")" ]
}

@test "top in a small terminal cuts sections with +N more; ^C restores the terminal" {
	command -v tmux >/dev/null || skip "tmux is not installed"
	tmux_top 60 12 "$TEST_DIR/t2"
	wait_until 10 screen_has 'more$'
	screen >"$TEST_DIR/t2.screen"
	cat "$TEST_DIR/t2.screen"
	grep -q '^llmqd pid ' "$TEST_DIR/t2.screen"
	grep -Eq '^  \+[0-9]+ more$' "$TEST_DIR/t2.screen"
	[ "$(awk 'length > 60' "$TEST_DIR/t2.screen" | wc -l)" -eq 0 ]
	[ "$(wc -l <"$TEST_DIR/t2.screen")" -le 12 ]
	# Every section keeps its heading.
	grep -q '^SCOPE ' "$TEST_DIR/t2.screen"
	grep -q '^ROLE ' "$TEST_DIR/t2.screen"
	grep -q '^ *FAILED ' "$TEST_DIR/t2.screen"
	grep -q '^CHILD ' "$TEST_DIR/t2.screen"
	tm send-keys -t top C-c
	wait_until 5 session_gone
	# Died of SIGINT, as a program should, after restoring the terminal.
	[ "$(cat "$TEST_DIR/t2.rc")" = 130 ]
	[ "$(cat "$TEST_DIR/t2.before")" = "$(cat "$TEST_DIR/t2.after")" ]
}

@test "top while llmqd is not running: says so, shows the database's part" {
	llmqd_stop
	run "$LLMQCTL" -c "$TEST_DIR/llmq.yaml" top
	echo "$output"
	[ "$status" -eq 3 ]
	[[ "${lines[0]}" == "llmqd is not running  "* ]]
	grep -Eq '^planner +3 +0 +0 ' <<<"$output"
	grep -q 'boom' <<<"$output"
	refute grep -q '^SCOPE ' <<<"$output"
	refute grep -q '^CHILD ' <<<"$output"
	command -v tmux >/dev/null || return 0
	# Live, the same header; q still ends it with status 0.
	tmux_top 80 24 "$TEST_DIR/t3"
	wait_until 10 screen_has 'PENDING'
	screen | tee /dev/stderr | head -1 | grep -q '^llmqd is not running'
	tm send-keys -t top q
	wait_until 5 session_gone
	[ "$(cat "$TEST_DIR/t3.rc")" = 0 ]
}
