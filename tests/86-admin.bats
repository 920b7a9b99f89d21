#!/usr/bin/env bats
# 86-admin.bats: llmq.cancel() and llmq.retry() (sql/006_admin.sql) and
# "llmqctl cancel", "retry" and "purge", against a running llmqd whose
# workers poll once an hour: a request that runs within the test was
# woken by a NOTIFY.

load helpers

setup_file() {
	common_setup_file
	llmq_migrate
	sed -i 's/^poll_interval: .*/poll_interval: 1h/' "$TEST_DIR/llmq.yaml"
	llmqd_start
	# A role no worker serves: its rows stay where a test puts them.
	psql_q "INSERT INTO llmq.roles (name) VALUES ('idle')"
}

teardown_file() {
	common_teardown_file
}

ctl() {
	"$LLMQCTL" -d "$DBCONN" "$@"
}

# A submit due in an hour: it stays pending.
submit_later() {
	local at
	at=$(psql_q "SELECT now() + interval '1 hour'")
	submit -o "{\"run_after\": \"$at\"}" "$@"
}

# An llmqctl session connected to the database (a waiter).
ctl_connected() {
	[ "$(psql_q "SELECT count(*) FROM pg_stat_activity
		WHERE application_name = 'llmqctl'")" -ge 1 ]
}

@test "cancel of a pending request: cancelled, announced on llmq_done, a waiter returns 1" {
	id=$(submit_later -r planner -m "never mind")
	[ "$(field "$id" status)" = pending ]
	ctl wait --timeout 20s "$id" >"$TEST_DIR/wait.out" 2>&1 3>&- &
	wpid=$!
	wait_until 10 ctl_connected
	run ctl cancel --reason "user closed the page" "$id"
	[ "$status" -eq 0 ]
	[ "$output" = "$id: cancelled (was pending)" ]
	rc=0
	wait "$wpid" || rc=$?
	[ "$rc" -eq 1 ]
	grep -q "request $id was cancelled: user closed the page" "$TEST_DIR/wait.out"
	[ "$(field "$id" "status || ' ' || error_kind || ' ' || error_message")" = \
	  "cancelled cancelled user closed the page" ]
	[ "$(field "$id" "finished_at IS NOT NULL AND locked_by IS NULL")" = t ]
	# Cancelled again: nothing changes, and it is a success.
	run ctl cancel "$id"
	[ "$status" -eq 0 ]
	[ "$output" = "$id: already cancelled" ]
	[ "$(field "$id" error_message)" = "user closed the page" ]
}

@test "llmq.cancel() notifies llmq_done, and llmq_cancel only for a request in flight" {
	id=$(submit_later -r planner -m "pending, cancelled in SQL")
	out=$(psql -X -q -A -t -d "$DBCONN" 2>&1 <<SQL
LISTEN llmq_done;
LISTEN llmq_cancel;
SELECT llmq.cancel($id);
SELECT llmq.cancel($id);
SELECT llmq.cancel(999999999) IS NULL;
SQL
)
	echo "$out" | grep -qx pending
	echo "$out" | grep -qx cancelled
	[[ "$out" == *'notification "llmq_done" with payload "'$id'"'* ]]
	[[ "$out" != *'"llmq_cancel"'* ]]
	echo "$out" | grep -qx t
	[ "$(field "$id" "error_kind || ' ' || error_message")" = "cancelled cancelled" ]
}

@test "cancel of a running request: cancelled at once, llmq_cancel sent, the late result never lands" {
	id=$(submit -r planner -m "slow one mock:delay=5000")
	wait_until 10 sql_is "SELECT status FROM llmq.requests WHERE id = $id" processing
	out=$(psql -X -q -A -t -d "$DBCONN" 2>&1 <<SQL
LISTEN llmq_cancel;
SELECT llmq.cancel($id, 'operator stop');
SELECT 1;
SQL
)
	echo "$out" | grep -qx processing
	[[ "$out" == *'notification "llmq_cancel" with payload "'$id'"'* ]]
	[ "$(field "$id" "status || ' ' || error_message")" = "cancelled operator stop" ]
	[ "$(field "$id" "locked_by IS NULL AND lease_until IS NULL")" = t ]
	finished=$(field "$id" finished_at)
	# The worker records its call (stopped, or run to its end) with a
	# fenced finish that leaves the row alone.
	wait_until 15 sql_is "SELECT count(*) FROM llmq.attempts WHERE request_id = $id" 1
	[ "$(field "$id" status)" = cancelled ]
	[ "$(field "$id" "response IS NULL AND http_status IS NULL")" = t ]
	[ "$(field "$id" error_message)" = "operator stop" ]
	[ "$(field "$id" finished_at)" = "$finished" ]
}

@test "llmqctl cancel of a running request prints its former status" {
	id=$(submit -r planner -m "slow two mock:delay=5000")
	wait_until 10 sql_is "SELECT status FROM llmq.requests WHERE id = $id" processing
	run ctl cancel "$id"
	[ "$status" -eq 0 ]
	[ "$output" = "$id: cancelled (was processing)" ]
	[ "$(field "$id" "status || ' ' || error_kind || ' ' || error_message")" = \
	  "cancelled cancelled cancelled" ]
	wait_until 15 sql_is "SELECT count(*) FROM llmq.attempts WHERE request_id = $id" 1
	[ "$(field "$id" "status = 'cancelled' AND response IS NULL")" = t ]
}

@test "cancel of a completed or unknown request exits 1; bad ids exit 64" {
	done_id=$(submit -r planner -m "done already")
	wait_req "$done_id" >/dev/null
	p=$(submit_later -r planner -m "still pending")
	run ctl cancel "$done_id"
	[ "$status" -eq 1 ]
	[ "$output" = "$done_id: already completed" ]
	[ "$(field "$done_id" status)" = completed ]
	run ctl cancel 999999999
	[ "$status" -eq 1 ]
	[ "$output" = "llmqctl: no such request 999999999" ]
	# The others are still cancelled.
	run ctl cancel "$done_id" "$p"
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "$done_id: already completed" ]
	[ "${lines[1]}" = "$p: cancelled (was pending)" ]
	run ctl cancel
	[ "$status" -eq 64 ]
	run ctl cancel 12abc
	[ "$status" -eq 64 ]
	[[ "$output" == *'invalid request id "12abc"'* ]]
	run ctl cancel -- -5
	[ "$status" -eq 64 ]
}

@test "retry of a failed request runs it again, woken at once, and it completes" {
	id=$(submit -r planner -m "retry me mock:fail=1 mock:status=400")
	run wait_req "$id"
	[ "$status" -eq 1 ]
	[ "$(field "$id" "status || ' ' || error_kind")" = "failed bad_request" ]
	run ctl retry "$id"
	[ "$status" -eq 0 ]
	[ "$output" = "$id: retried (was failed)" ]
	# The poll is an hour away: the NOTIFY of llmq.retry() woke a worker.
	run ctl wait --timeout 10s "$id"
	[ "$status" -eq 0 ]
	[ "$output" = "echo: retry me mock:fail=1 mock:status=400" ]
	[ "$(field "$id" "attempts || ' ' || coalesce(error_kind, '-') || ' ' || coalesce(http_status, 0)")" = "2 - 200" ]
	[ "$(psql_q "SELECT string_agg(coalesce(error_kind, 'ok'), ',' ORDER BY id)
		FROM llmq.attempts WHERE request_id = $id")" = "bad_request,ok" ]
}

@test "retry of a cancelled request runs it now; completed, pending and unknown ones are not retried" {
	id=$(submit_later -r planner -m "cancelled, then wanted")
	ctl cancel "$id" >/dev/null
	run ctl retry "$id"
	[ "$status" -eq 0 ]
	[ "$output" = "$id: retried (was cancelled)" ]
	run ctl wait --timeout 10s "$id"
	[ "$status" -eq 0 ]
	[ "$output" = "echo: cancelled, then wanted" ]
	# Due at the retry, not an hour after the submit.
	[ "$(field "$id" "run_after < created_at + interval '5 minutes'")" = t ]
	[ "$(field "$id" "attempts || ' ' || coalesce(error_kind, '-')")" = "1 -" ]
	run ctl retry "$id"
	[ "$status" -eq 1 ]
	[ "$output" = "$id: not retried (completed)" ]
	p=$(submit_later -r planner -m "not yet")
	run ctl retry "$p"
	[ "$status" -eq 1 ]
	[ "$output" = "$p: not retried (pending)" ]
	run ctl retry 999999999
	[ "$status" -eq 1 ]
	[ "$output" = "llmqctl: no such request 999999999" ]
	[ "$(psql_q "SELECT llmq.retry(999999999)")" = f ]
	ctl cancel "$p" >/dev/null
}

@test "retry --failed retries the failed requests that match, by kind, role and age" {
	a=$(submit -r planner -m "kind a mock:fail=1 mock:status=400")
	b=$(submit -r planner -o '{"max_attempts": 1}' -m "kind b mock:fail=1 mock:status=500")
	wait_req "$a" "$b" >/dev/null 2>&1 || true
	[ "$(field "$a" error_kind)" = bad_request ]
	[ "$(field "$b" error_kind)" = http_error ]
	run ctl retry --failed --kind bad_request
	[ "$status" -eq 0 ]
	[ "$output" = "retried 1 request" ]
	run ctl wait --timeout 10s "$a"
	[ "$status" -eq 0 ]
	[ "$(field "$b" status)" = failed ]
	run ctl retry --failed --role executor
	[ "$output" = "retried 0 requests" ]
	# Failed long ago: not within the last hour.
	psql_q "UPDATE llmq.requests SET finished_at = now() - interval '2 hours' WHERE id = $b"
	run ctl retry --failed --since 1h
	[ "$output" = "retried 0 requests" ]
	run ctl retry --failed --since 3h --role planner --kind http_error
	[ "$status" -eq 0 ]
	[ "$output" = "retried 1 request" ]
	run ctl wait --timeout 10s "$b"
	[ "$status" -eq 0 ]
	[ "$(req_count failed)" = 0 ]
}

@test "retry refuses bad arguments with exit status 64" {
	run ctl retry
	[ "$status" -eq 64 ]
	run ctl retry --failed 5
	[ "$status" -eq 64 ]
	run ctl retry --failed --kind nosuchkind
	[ "$status" -eq 64 ]
	[[ "$output" == *'unknown error kind "nosuchkind"'* ]]
	run ctl retry --since 1h 5
	[ "$status" -eq 64 ]
	run ctl retry --failed --since soon
	[ "$status" -eq 64 ]
	run ctl retry x
	[ "$status" -eq 64 ]
}

@test "a client with the privileges of llmq(7) cancels; retry also wants DELETE on llmq.partials" {
	psql -X -q -v ON_ERROR_STOP=1 -d "$DBCONN" <<'EOS'
CREATE ROLE app_db LOGIN;
GRANT USAGE ON SCHEMA llmq TO app_db;
GRANT SELECT, INSERT, UPDATE ON llmq.requests TO app_db;
GRANT SELECT ON llmq.roles, llmq.cache, llmq.partials,
    llmq.partial_text TO app_db;
EOS
	app="host=$PGDIR user=app_db dbname=postgres"
	id=$("$LLMQCTL" -d "$app" submit -r idle -m "an app's")
	run "$LLMQCTL" -d "$app" cancel "$id"
	[ "$status" -eq 0 ]
	[ "$output" = "$id: cancelled (was pending)" ]
	run "$LLMQCTL" -d "$app" retry "$id"
	[ "$status" -eq 1 ]
	[[ "$output" == *"permission denied"*"partials"* ]]
	[ "$(field "$id" status)" = cancelled ]
	psql_q "GRANT DELETE ON llmq.partials TO app_db"
	run "$LLMQCTL" -d "$app" retry "$id"
	[ "$status" -eq 0 ]
	[ "$output" = "$id: retried (was cancelled)" ]
	run "$LLMQCTL" -d "$app" stats --role idle --json
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq '.total.pending')" -ge 1 ]
	"$LLMQCTL" -d "$app" cancel "$id" >/dev/null
}

@test "purge deletes finished requests older than the age, in batches, with their calls" {
	psql_q "INSERT INTO llmq.requests (role, messages, status, created_at,
		    finished_at)
		SELECT 'idle', '[{\"role\":\"user\",\"content\":\"old\"}]',
		       (ARRAY['completed', 'failed', 'cancelled'])[i % 3 + 1],
		       now() - interval '3 days', now() - interval '3 days'
		  FROM generate_series(1, 2502) AS i"
	# A request still pending after as long is not finished: it stays.
	old_pending=$(psql_q "INSERT INTO llmq.requests (role, messages, created_at)
		VALUES ('idle', '[{\"role\":\"user\",\"content\":\"waits\"}]',
		        now() - interval '3 days') RETURNING id")
	# A request served today, then made old: it goes, and its call with
	# it; its reply stays in the cache.
	id=$(submit -r planner -m "soon old")
	wait_req "$id" >/dev/null
	psql_q "UPDATE llmq.requests SET created_at = now() - interval '2 days',
		finished_at = now() - interval '2 days' WHERE id = $id"
	[ "$(psql_q "SELECT count(*) FROM llmq.attempts WHERE request_id = $id")" = 1 ]
	psql_q "INSERT INTO llmq.cache (key, model, response, request_id, expires_at)
		VALUES ('\\x02', 'small:1b', 'kept', $id, now() + interval '1 day')"
	recent=$(psql_q "SELECT count(*) FROM llmq.requests
		WHERE finished_at > now() - interval '1 day'")
	before=$(psql_q "SELECT count(*) FROM llmq.requests")

	run ctl purge --older-than 1d --dry-run
	[ "$status" -eq 0 ]
	[ "$output" = "would purge 2503 requests" ]
	[ "$(psql_q "SELECT count(*) FROM llmq.requests")" = "$before" ]

	run ctl purge --older-than 1d
	[ "$status" -eq 0 ]
	[ "$output" = "purged 2503 requests" ]
	[ "$(psql_q "SELECT count(*) FROM llmq.requests")" = $((before - 2503)) ]
	[ "$(field "$old_pending" status)" = pending ]
	[ "$(psql_q "SELECT count(*) FROM llmq.requests
		WHERE finished_at > now() - interval '1 day'")" = "$recent" ]
	[ "$(psql_q "SELECT count(*) FROM llmq.attempts WHERE request_id = $id")" = 0 ]
	[ "$(psql_q "SELECT response FROM llmq.cache WHERE request_id = $id")" = kept ]

	run ctl purge --older-than 1d
	[ "$status" -eq 0 ]
	[ "$output" = "purged 0 requests" ]
}

@test "purge wants an age of a minute or more, or --force" {
	run ctl purge
	[ "$status" -eq 64 ]
	[[ "$output" == *"--older-than is required"* ]]
	run ctl purge --older-than 30s
	[ "$status" -eq 64 ]
	[[ "$output" == *"without --force"* ]]
	run ctl purge --older-than later
	[ "$status" -eq 64 ]
	before=$(psql_q "SELECT count(*) FROM llmq.requests")
	finished=$(psql_q "SELECT count(*) FROM llmq.requests
		WHERE status IN ('completed', 'failed', 'cancelled')")
	[ "$finished" -gt 0 ]
	# Everything finished up to now, counted and kept.
	run ctl purge --older-than 0 --force -n
	[ "$status" -eq 0 ]
	[ "$output" = "would purge $finished requests" ]
	[ "$(psql_q "SELECT count(*) FROM llmq.requests")" = "$before" ]
	run ctl purge --older-than 1m extra
	[ "$status" -eq 64 ]
}
