#!/usr/bin/env bats
# 20-queue.bats: the end-to-end path: a row submitted in PostgreSQL is
# answered through llmqd's workers by both provider dialects, and every
# failure of a call ends in the right error kind.

load helpers

setup_file() {
	common_setup_file
	llmq_migrate
	PROVIDER_TIMEOUT=2s write_config "$TEST_DIR/llmq.yaml"
	llmqd_start
}

teardown_file() {
	common_teardown_file
}

@test "a planner request is answered by the ollama provider" {
	id=$(submit -r planner -m "write an outline")
	run wait_req "$id"
	[ "$status" -eq 0 ]
	[ "$output" = "echo: write an outline" ]
	[ "$(field "$id" status)" = completed ]
	[ "$(field "$id" model_used)" = "small:1b" ]
	[ "$(field "$id" attempts)" = 1 ]
	[ "$(field "$id" "prompt_tokens > 0 AND completion_tokens > 0")" = t ]
	[ "$(field "$id" "claimed_at >= created_at AND finished_at >= claimed_at")" = t ]
	[ "$(field "$id" "locked_by IS NULL AND lease_until IS NULL")" = t ]
}

@test "complexity routes executor requests, medium through the openai provider" {
	s=$(submit -r executor --complexity simple -m "module one")
	m=$(submit -r executor --complexity medium -m "module two")
	c=$(submit -r executor --complexity complex -m "module three")
	run wait_req "$s" "$m" "$c"
	[ "$status" -eq 0 ]
	[ "$(field "$s" model_used)" = "small:1b" ]
	[ "$(field "$m" model_used)" = "gpt-test" ]
	[ "$(field "$m" response)" = "echo: module two" ]
	[ "$(field "$c" model_used)" = "big:8b" ]
}

@test "a plain INSERT is served like a submit" {
	id=$(psql_q "INSERT INTO llmq.requests (role, messages)
		VALUES ('planner', '[{\"role\":\"user\",\"content\":\"by insert\"}]')
		RETURNING id")
	run wait_req "$id"
	[ "$status" -eq 0 ]
	[ "$output" = "echo: by insert" ]
}

@test "a client that LISTENs on llmq_done gets the id when its request is final" {
	out=$(psql -X -q -A -t -d "$DBCONN" 2>&1 <<'SQL'
LISTEN llmq_done;
SELECT llmq.submit('planner', '[{"role":"user","content":"from sql"}]') AS id \gset
\echo id=:id
CREATE FUNCTION pg_temp.await(bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1..400 LOOP
		EXIT WHEN (SELECT status FROM llmq.requests WHERE id = $1)
		    IN ('completed', 'failed');
		PERFORM pg_sleep(0.05);
	END LOOP;
END $$;
SELECT pg_temp.await(:id);
SELECT 1;
SQL
)
	id=$(echo "$out" | sed -n 's/^id=//p')
	[ -n "$id" ]
	[ "$(psql_q "SELECT response FROM llmq.requests WHERE id = $id")" = "echo: from sql" ]
	[[ "$out" == *"notification \"llmq_done\" with payload \"$id\""* ]]
}

@test "a request naming a model its role does not serve fails as bad_request" {
	id=$(submit -r planner --model "big:8b" -m "x")
	run wait_req "$id"
	[ "$status" -eq 1 ]
	[ "$(field "$id" error_kind)" = bad_request ]
}

@test "a provider timeout fails the request with error kind timeout" {
	id=$(submit -r planner -m "slow mock:delay=5000")
	run wait_req "$id"
	[ "$status" -eq 1 ]
	[ "$(field "$id" status)" = failed ]
	[ "$(field "$id" error_kind)" = timeout ]
	[ -n "$(field "$id" error_message)" ]
}

@test "HTTP 500 fails as http_error, 503 as provider_down, 429 as rate_limited, 404 as bad_request" {
	a=$(submit -r planner -m "x mock:status=500")
	b=$(submit -r planner -m "x mock:status=503")
	c=$(submit -r planner -m "x mock:status=429")
	d=$(submit -r executor --complexity medium -m "x mock:status=404")
	wait_req "$a" "$b" "$c" "$d" || true
	[ "$(field "$a" error_kind)" = http_error ]
	[ "$(field "$a" http_status)" = 500 ]
	[ "$(field "$b" error_kind)" = provider_down ]
	[ "$(field "$c" error_kind)" = rate_limited ]
	[ "$(field "$d" error_kind)" = bad_request ]
	[[ "$(field "$a" error_message)" == *"mock error"* ]]
}

@test "an unparsable, empty or truncated body fails without taking the worker down" {
	a=$(submit -r planner -m "x mock:mode=garbage")
	b=$(submit -r planner -m "x mock:mode=empty")
	c=$(submit -r planner -m "x mock:mode=truncated")
	wait_req "$a" "$b" "$c" || true
	[ "$(field "$a" error_kind)" = http_error ]
	[[ "$(field "$a" error_message)" == *"invalid JSON"* ]]
	[ "$(field "$b" status)" = failed ]
	[ "$(field "$c" status)" = failed ]
	# The same worker still serves.
	id=$(submit -r planner -m "still here")
	run wait_req "$id"
	[ "$status" -eq 0 ]
}

@test "a refused connection fails as provider_down" {
	# Nothing listens on port 1 of the loopback: connections are refused.
	sed "s#url: $MOCK_URL\$#url: http://127.0.0.1:1#" "$TEST_DIR/llmq.yaml" >"$TEST_DIR/down.yaml"
	llmqd_stop
	llmqd_start "$TEST_DIR/down.yaml"
	id=$(submit -r planner -m "nobody home")
	run wait_req "$id"
	[ "$status" -eq 1 ]
	[ "$(field "$id" error_kind)" = provider_down ]
	llmqd_stop
	llmqd_start
}

@test "bad input at the SQL boundary is refused and nothing is written" {
	before=$(psql_q "SELECT count(*) FROM llmq.requests")
	run psql_q "SELECT llmq.submit('nosuchrole', '[{\"role\":\"user\",\"content\":\"x\"}]')"
	[ "$status" -ne 0 ]
	[[ "$output" == *'unknown role "nosuchrole"'* ]]
	run psql_q "SELECT llmq.submit('planner', '{\"role\":\"user\"}')"
	[ "$status" -ne 0 ]
	[[ "$output" == *"messages must be a non-empty JSON array"* ]]
	run psql_q "SELECT llmq.submit('planner', '[{\"role\":\"user\"}]')"
	[ "$status" -ne 0 ]
	[[ "$output" == *'"content"'* ]]
	run psql_q "SELECT llmq.submit('planner', '[{\"role\":\"user\",\"content\":\"x\"}]', '{\"complexity\":\"huge\"}')"
	[ "$status" -ne 0 ]
	[[ "$output" == *"unknown complexity"* ]]
	run psql_q "INSERT INTO llmq.requests (role, messages) VALUES ('planner', '[1,2]')"
	[ "$status" -ne 0 ]
	[[ "$output" == *"invalid messages: expected a non-empty array"* ]]
	[ "$(psql_q "SELECT count(*) FROM llmq.requests")" = "$before" ]
}

@test "200 concurrent submits are all completed exactly once" {
	psql_q "TRUNCATE llmq.requests, llmq.attempts"
	curl -s -X POST "$MOCK_URL/_mock/reset" >/dev/null
	for i in $(seq 1 200); do
		submit -r executor --complexity simple -m "burst $i" >/dev/null &
	done
	wait
	[ "$(psql_q "SELECT count(*) FROM llmq.requests")" = 200 ]
	wait_until 60 all_final
	[ "$(req_count completed)" = 200 ]
	[ "$(psql_q "SELECT count(*) FROM llmq.requests WHERE attempts <> 1")" = 0 ]
	# Each request reached the model once.
	[ "$(mock_field requests)" = 200 ]
	# Never more in flight than the role's concurrency (5).
	max=$(mock_field max_inflight)
	[ "$max" -le 5 ]
}

@test "a role never has more calls in flight than its concurrency" {
	curl -s -X POST "$MOCK_URL/_mock/reset" >/dev/null
	ids=$(submit -r executor --complexity simple -n 20 -m "slow mock:delay=200")
	run wait_req $ids
	[ "$status" -eq 0 ]
	max=$(mock_field max_inflight)
	# Exactly the limit: parallel calls do happen, and never more.
	[ "$max" -eq 5 ]
}
