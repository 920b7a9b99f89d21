#!/usr/bin/env bats
# 60-retries.bats: what happens after a call fails: the error kind of
# each provider dialect, retries with backoff and Retry-After, no retry
# of permanent errors, fallback to another model, allow_models, and the
# history in llmq.attempts.  The stand-in fails on demand (mock:fail=N:
# the first N calls with the same content fail as directed, later ones
# succeed).

load helpers

setup_file() {
	pg_start || return 1
	mock_start || return 1
	retries_config "$TEST_DIR/llmq.yaml"
	llmq_migrate
	llmqd_start "$TEST_DIR/llmq.yaml" 2
}

teardown_file() {
	common_teardown_file
}

setup() {
	LLMQD_PID=$(cat "$TEST_DIR/llmqd.pid" 2>/dev/null)
}

retries_config() {
	cat >"$1" <<EOC
database: "$DBCONN"
pidfile: $TEST_DIR/llmqd.pid
log: $TEST_DIR/llmqd.log
poll_interval: 50ms
shutdown_timeout: 5s
providers:
  local:
    kind: ollama
    url: $MOCK_URL
    timeout: 10s
    cooldown: { failures: 0 }   # fails on purpose, test after test
  cloud:
    kind: openai
    url: $MOCK_URL/v1
    timeout: 10s
    cooldown: { failures: 0 }
  flaky:
    kind: ollama
    url: $MOCK_URL
    cooldown: { failures: 3, window: 10s, duration: 2s }
models:
  "small:1b": { provider: local, fallback: "big:8b", fallback_on: [timeout, provider_down] }
  "big:8b": { provider: local }
  "gpt-test": { provider: cloud }
  "other": { provider: local }
  "flaky:1b": { provider: flaky }
roles:
  planner:
    concurrency: 4
    model: "gpt-test"
    allow_models: ["flaky:1b"]
    max_attempts: 3
    backoff: { base: 200ms, cap: 1s }
  executor:
    concurrency: 4
    timeout: 400ms
    model: "small:1b"
    allow_models: ["gpt-test"]
    backoff: { base: 200ms, cap: 1s }
EOC
}

# attempts ID: "model kind retry" per call, in order.
attempts() {
	psql_q "SELECT model || ' ' || coalesce(error_kind, 'ok') || ' ' || retry
		  FROM llmq.attempts WHERE request_id = $1 ORDER BY id"
}

# gap_ms ID N: milliseconds from the end of call N to the start of N+1.
gap_ms() {
	psql_q "SELECT (extract(epoch FROM b.started_at - a.finished_at)
		* 1000)::int
		  FROM llmq.attempts a JOIN llmq.attempts b
		    ON b.request_id = a.request_id AND b.attempt = a.attempt + 1
		 WHERE a.request_id = $1 AND a.attempt = $2"
}

@test "a 503 is retried with backoff until it succeeds, each call recorded" {
	id=$(submit -r planner -m "busy twice mock:fail=2 mock:error=busy")
	run wait_req "$id"
	[ "$status" -eq 0 ]
	[ "$(field "$id" "status || ' ' || attempts")" = "completed 3" ]
	# The row keeps the outcome; the history keeps every call.
	[ "$(field "$id" "error_kind IS NULL")" = t ]
	[ "$(attempts "$id")" = "gpt-test provider_down true
gpt-test provider_down true
gpt-test ok false" ]
	# Backoff from 200 ms: 100..200 ms after the first, 200..400 after
	# the second (jitter), give or take the poll (50 ms).
	g1=$(gap_ms "$id" 1) g2=$(gap_ms "$id" 2)
	echo "gaps $g1 $g2"
	[ "$g1" -ge 90 ] && [ "$g1" -le 400 ]
	[ "$g2" -ge 190 ] && [ "$g2" -le 800 ]
	grep -q "request $id attempt 1 of 3 failed: provider_down: .*server busy.*; retrying in" "$TEST_DIR/llmqd.log"
	# llmqctl show lists the calls, and --json has them too.
	run "$LLMQCTL" -d "$DBCONN" show "$id"
	[ "$status" -eq 0 ]
	echo "$output"
	[ "$(grep -c '^call' <<<"$output")" = 3 ]
	grep -q '^call: *1: gpt-test on cloud, [0-9]* ms, provider_down (HTTP 503), tried again$' <<<"$output"
	grep -q '^call: *3: gpt-test on cloud, [0-9]* ms, ok (HTTP 200)$' <<<"$output"
	run "$LLMQCTL" -d "$DBCONN" show --json "$id"
	[ "$status" -eq 0 ]
	[ "$(grep -o '"error_kind": "provider_down"' <<<"$output" | wc -l)" = 2 ]
}

@test "Retry-After is waited, up to the cap" {
	id=$(submit -r planner -m "slow down mock:fail=1 mock:error=ratelimit mock:retry_after=1")
	cap=$(submit -r planner -m "an hour mock:fail=1 mock:error=ratelimit mock:retry_after=3600")
	ms=$(submit -r planner -m "in ms mock:fail=1 mock:error=ratelimit mock:retry_after=30 mock:retry_after_ms=700")
	run wait_req "$id" "$cap" "$ms"
	[ "$status" -eq 0 ]
	g=$(gap_ms "$id" 1) gc=$(gap_ms "$cap" 1) gm=$(gap_ms "$ms" 1)
	echo "gaps: Retry-After 1 s: $g, 3600 s: $gc, retry-after-ms 700: $gm"
	# At least what the server asked for, never more than the cap (1 s).
	[ "$g" -ge 950 ] && [ "$g" -le 1300 ]
	[ "$gc" -ge 950 ] && [ "$gc" -le 1300 ]
	# retry-after-ms wins over Retry-After.
	[ "$gm" -ge 650 ] && [ "$gm" -le 1000 ]
	[ "$(attempts "$id" | head -1)" = "gpt-test rate_limited true" ]
}

@test "a date in Retry-After is honoured" {
	id=$(submit -r planner -m "by date mock:fail=1 mock:error=ratelimit mock:retry_date=3")
	run wait_req "$id"
	[ "$status" -eq 0 ]
	g=$(gap_ms "$id" 1)
	echo "gap $g"
	# Two to three seconds ahead (the date is to the second), cut to the
	# cap of 1 s: well above the 100..200 ms the backoff alone gives.
	[ "$g" -ge 950 ] && [ "$g" -le 1300 ]
}

@test "permanent errors fail at once: 400, 401, insufficient quota, vLLM's flat error" {
	ids=""
	for e in badreq auth quota vllm; do
		ids="$ids $(submit -r planner -m "permanent $e mock:error=$e")"
	done
	run wait_req $ids
	[ "$status" -ne 0 ]
	set -- $ids
	[ "$(field "$1" "status || ' ' || error_kind || ' ' || attempts")" = "failed bad_request 1" ]
	[ "$(field "$2" "status || ' ' || error_kind || ' ' || attempts")" = "failed bad_request 1" ]
	[ "$(field "$3" "status || ' ' || error_kind || ' ' || attempts")" = "failed http_error 1" ]
	[ "$(field "$4" "status || ' ' || error_kind || ' ' || attempts")" = "failed bad_request 1" ]
	[[ "$(field "$2" error_message)" == *"Incorrect API key"* ]]
	[[ "$(field "$3" error_message)" == *"quota"* ]]
	[[ "$(field "$4" error_message)" == *"maximum context length"* ]]
	for i in $ids; do
		[ "$(psql_q "SELECT count(*) || ' ' || bool_or(retry) FROM llmq.attempts WHERE request_id = $i")" = "1 false" ]
	done
}

@test "each dialect's transient error gets its kind and is retried" {
	ids=""
	for e in loading busy ollama html ratelimit; do
		ids="$ids $(submit -r planner -m "transient $e mock:fail=1 mock:error=$e")"
	done
	run wait_req $ids
	[ "$status" -eq 0 ]
	set -- $ids
	[ "$(attempts "$1" | head -1)" = "gpt-test provider_down true" ]
	[ "$(attempts "$2" | head -1)" = "gpt-test provider_down true" ]
	[ "$(attempts "$3" | head -1)" = "gpt-test http_error true" ]
	[ "$(attempts "$4" | head -1)" = "gpt-test provider_down true" ]
	[ "$(attempts "$5" | head -1)" = "gpt-test rate_limited true" ]
	for i in $ids; do
		[ "$(field "$i" "status || ' ' || attempts")" = "completed 2" ]
	done
}

@test "attempts used up: the request fails with the last error" {
	id=$(submit -r planner -m "always busy mock:error=busy")
	run wait_req "$id"
	[ "$status" -ne 0 ]
	[ "$(field "$id" "status || ' ' || error_kind || ' ' || attempts")" = "failed provider_down 3" ]
	[ "$(attempts "$id")" = "gpt-test provider_down true
gpt-test provider_down true
gpt-test provider_down false" ]
	grep -q "request $id attempt 3 of 3 failed: provider_down" "$TEST_DIR/llmqd.log"
	# A request's own max_attempts wins over the role's.
	one=$(psql_q "SELECT llmq.submit('planner', '[{\"role\":\"user\",\"content\":\"once mock:error=busy\"}]', '{\"max_attempts\": 1}')")
	run wait_req "$one"
	[ "$(field "$one" "status || ' ' || attempts")" = "failed 1" ]
}

@test "a model that fails over falls back to its fallback once, and says so" {
	id=$(submit -r executor -m "fall over mock:fail=1 mock:error=busy")
	run wait_req "$id"
	[ "$status" -eq 0 ]
	[ "$(field "$id" "status || ' ' || model_used || ' ' || fallback_used || ' ' || attempts")" = "completed big:8b true 2" ]
	[ "$(attempts "$id")" = "small:1b provider_down true
big:8b ok false" ]
	grep -q "request $id attempt 1 of 3 failed: provider_down: .*; falling back to \"big:8b\"" "$TEST_DIR/llmqd.log"
}

@test "on timeout the fallback is tried once, not twice" {
	# Both models time out (400 ms): one hop, then the fallback's own
	# failure is retried on the fallback, never back to the first model.
	id=$(submit -r executor -m "too slow mock:delay=1500")
	run wait_req "$id"
	[ "$status" -ne 0 ]
	[ "$(field "$id" "status || ' ' || error_kind || ' ' || model_used || ' ' || fallback_used")" = "failed timeout big:8b true" ]
	[ "$(attempts "$id")" = "small:1b timeout true
big:8b timeout true
big:8b timeout false" ]
}

@test "a request may name a model its role allows, and no other" {
	ok=$(submit -r executor --model gpt-test -m "allowed")
	no=$(submit -r executor --model other -m "not allowed")
	run wait_req "$ok"
	[ "$status" -eq 0 ]
	[ "$(field "$ok" model_used)" = gpt-test ]
	run wait_req "$no"
	[ "$status" -ne 0 ]
	[ "$(field "$no" "error_kind || ' ' || error_message")" = 'bad_request model not served by this role: "other"' ]
	[ "$(psql_q "SELECT count(*) FROM llmq.attempts WHERE request_id = $no")" = 0 ]
}

@test "a provider that keeps failing is cooled down for every worker, then used again" {
	ids=$(psql_q "SELECT llmq.submit('planner', ('[{\"role\":\"user\",\"content\":\"down ' || g || ' mock:error=busy\"}]')::jsonb, '{\"model\": \"flaky:1b\", \"max_attempts\": 1}') FROM generate_series(1, 3) g" | tr '\n' ' ')
	run wait_req $ids
	[ "$status" -ne 0 ]
	grep -q 'provider "flaky" cooled down for 2000 ms after 3 failures in a row' "$TEST_DIR/llmqd.log"
	run "$LLMQCTL" -c "$TEST_DIR/llmq.yaml" status
	echo "$output"
	[[ "$output" == *"flaky (cooled down"* ]]
	# Its requests wait out the cool-down; other providers' do not.
	later=$(submit -r planner --model flaky:1b -m "after the cool-down")
	now=$(submit -r planner -m "another provider")
	run wait_req "$now" "$later"
	[ "$status" -eq 0 ]
	w_later=$(field "$later" "(extract(epoch FROM claimed_at - created_at) * 1000)::int")
	w_now=$(field "$now" "(extract(epoch FROM claimed_at - created_at) * 1000)::int")
	echo "queue wait: cooled provider $w_later ms, other $w_now ms"
	[ "$w_later" -ge 1000 ]
	[ "$w_now" -le 500 ]
	[ "$(field "$later" status)" = completed ]
}

@test "the configuration refuses a bad fallback_on and a role with too many models" {
	retries_config "$TEST_DIR/bad.yaml"
	sed -i 's/fallback_on: \[timeout, provider_down\]/fallback_on: [timeout, sleepy]/' "$TEST_DIR/bad.yaml"
	run "$LLMQD" -t -c "$TEST_DIR/bad.yaml"
	[ "$status" -ne 0 ]
	[[ "$output" == *'models.small:1b.fallback_on: unknown error kind "sleepy"'* ]]
	retries_config "$TEST_DIR/bad.yaml"
	sed -i 's/backoff: { base: 200ms, cap: 1s }/backoff: { base: 2s, cap: 1s }/' "$TEST_DIR/bad.yaml"
	run "$LLMQD" -t -c "$TEST_DIR/bad.yaml"
	[ "$status" -ne 0 ]
	[[ "$output" == *"cap must be at least base"* ]]
	# Nine models for one role: more than the slot table's places.
	retries_config "$TEST_DIR/bad.yaml"
	for i in 1 2 3 4 5 6 7 8; do
		sed -i "s/^models:/models:\n  \"m$i\": { provider: local }/" "$TEST_DIR/bad.yaml"
	done
	sed -i 's/allow_models: \["gpt-test"\]/allow_models: [m1, m2, m3, m4, m5, m6, m7, m8]/' "$TEST_DIR/bad.yaml"
	run "$LLMQD" -t -c "$TEST_DIR/bad.yaml"
	[ "$status" -ne 0 ]
	[[ "$output" == *"roles.executor: rows of this role may go to more than 8 models"* ]]
}
