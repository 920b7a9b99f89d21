#!/usr/bin/env bats
# 25-wakeup.bats: workers are woken by NOTIFY, and the poll finds what
# no notification announced.

load helpers

setup_file() {
	common_setup_file
	llmq_migrate
}

teardown_file() {
	common_teardown_file
}

@test "NOTIFY wakes a worker long before its poll interval" {
	write_config "$TEST_DIR/slowpoll.yaml"
	sed -i 's/^poll_interval: .*/poll_interval: 1h/' "$TEST_DIR/slowpoll.yaml"
	llmqd_start "$TEST_DIR/slowpoll.yaml"
	# The first may meet the claim every worker makes on connecting; once
	# it is done, only a NOTIFY can wake the worker within the hour.
	first=$(submit -r planner -m "first")
	"$LLMQCTL" -d "$DBCONN" wait --timeout 10s "$first"
	id=$(submit -r planner -m "woken")
	run "$LLMQCTL" -d "$DBCONN" wait --timeout 10s "$id"
	[ "$status" -eq 0 ]
	[ "$output" = "echo: woken" ]
	llmqd_stop
}

@test "without a notification the poll finds the row" {
	llmqd_start
	psql_q "ALTER TABLE llmq.requests DISABLE TRIGGER requests_notify_new"
	id=$(submit -r planner -m "polled")
	run "$LLMQCTL" -d "$DBCONN" wait --timeout 10s "$id"
	psql_q "ALTER TABLE llmq.requests ENABLE TRIGGER requests_notify_new"
	[ "$status" -eq 0 ]
	[ "$output" = "echo: polled" ]
	llmqd_stop
}

@test "a request due later (run_after) is picked up when it is due" {
	llmqd_start
	id=$(psql_q "SELECT llmq.submit('planner',
		'[{\"role\":\"user\",\"content\":\"later\"}]',
		jsonb_build_object('run_after', now() + interval '1 second'))")
	run "$LLMQCTL" -d "$DBCONN" wait --timeout 10s "$id"
	[ "$status" -eq 0 ]
	[ "$(psql_q "SELECT claimed_at >= created_at + interval '1 second' FROM llmq.requests WHERE id = $id")" = t ]
	llmqd_stop
}
