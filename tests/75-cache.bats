#!/usr/bin/env bats
# 75-cache.bats: the response cache.  A cacheable request is keyed at
# insert by its model, messages, params, schema and tools; a live entry
# answers it inside the INSERT (cache_hit, no call, the caller woken);
# a miss is stored when its call completes; entries expire.

load helpers

setup_file() {
	pg_start || return 1
	mock_start || return 1
	write_config "$TEST_DIR/llmq.yaml" "  cached:
    concurrency: 2
    cache: 1h
    model: \"gpt-test\"
    allow_models: [\"big:8b\"]"
	llmq_migrate
	llmqd_start "$TEST_DIR/llmq.yaml" 3
}

teardown_file() {
	common_teardown_file
}

calls() {
	mock_field requests
}

@test "a second identical cacheable request is answered at insert, without a call" {
	a=$(submit -r planner -m "what is 2+2" -o '{"cache": true}')
	run wait_req "$a"
	[ "$status" -eq 0 ]
	[ "$(field "$a" "cache_hit")" = f ]
	before=$(calls)
	# Keys of the options in another order, other white space: same key.
	b=$(psql_q "SELECT llmq.submit('planner',
		'[{\"content\": \"what is 2+2\",   \"role\": \"user\"}]', '{\"cache\": true}')")
	# Completed by the INSERT itself.
	[ "$(field "$b" "status || ' ' || cache_hit || ' ' || model_used")" = "completed true small:1b" ]
	[ "$(field "$b" response)" = "$(field "$a" response)" ]
	[ "$(field "$b" "prompt_tokens = (SELECT prompt_tokens FROM llmq.requests WHERE id = $a)")" = t ]
	[ "$(field "$b" "attempts")" = 0 ]
	# Its waiter returns at once, as for any result.
	run wait_req "$b"
	[ "$status" -eq 0 ]
	[ "$output" = "echo: what is 2+2" ]
	[ "$(calls)" = "$before" ]
	[ "$(psql_q "SELECT count(*) FROM llmq.attempts WHERE request_id = $b")" = 0 ]
}

@test "the waiter is woken by the insert that hits" {
	a=$(submit -r planner -m "wake me" -o '{"cache": true}')
	wait_req "$a"
	run psql -X -A -t -q -d "$DBCONN" -c "LISTEN llmq_done" \
		-c "SELECT llmq.submit('planner', '[{\"role\":\"user\",\"content\":\"wake me\"}]', '{\"cache\": true}')" \
		-c "SELECT 1"
	echo "$output"
	id=$(sed -n 1p <<<"$output")
	grep -q "Asynchronous notification \"llmq_done\" with payload \"$id\"" <<<"$output"
}

@test "other params, another model or not cacheable: a miss" {
	a=$(submit -r executor --complexity simple -m "same words" -o '{"cache": true}')
	wait_req "$a"
	b=$(submit -r executor --complexity simple -m "same words" -o '{"cache": true, "params": {"max_tokens": 5}}')
	c=$(submit -r executor --complexity complex -m "same words" -o '{"cache": true}')
	d=$(submit -r executor --complexity simple -m "same words")
	run wait_req "$b" "$c" "$d"
	[ "$status" -eq 0 ]
	[ "$(psql_q "SELECT string_agg(cache_hit::text, ',' ORDER BY id)
		FROM llmq.requests WHERE id IN ($b, $c, $d)")" = "false,false,false" ]
	[ "$(field "$c" model_used)" = "big:8b" ]
	[ "$(field "$d" "cache_key IS NULL")" = t ]
	# The same model reached another way (a complexity, or by name where
	# the role allows it) is the same key.
	e=$(submit -r executor --complexity complex -m "same words" -o '{"cache": true}')
	[ "$(field "$e" "cache_hit")" = t ]
}

@test "temperature above 0 is not cached unless cache_force" {
	a=$(submit -r planner -m "be creative" -o '{"cache": true, "params": {"temperature": 0.7}}')
	[ "$(field "$a" "cache_key IS NULL")" = t ]
	wait_req "$a"
	b=$(submit -r planner -m "be creative" -o '{"cache": true, "params": {"temperature": 0.7}}')
	[ "$(field "$b" "cache_hit")" = f ]
	wait_req "$b"
	c=$(submit -r planner -m "be exact" -o '{"cache": true, "cache_force": true, "params": {"temperature": 0.7}}')
	wait_req "$c"
	d=$(submit -r planner -m "be exact" -o '{"cache": true, "cache_force": true, "params": {"temperature": 0.7}}')
	[ "$(field "$d" "cache_hit")" = t ]
	# Temperature 0 is cacheable as asked.
	e=$(submit -r planner -m "be exact" -o '{"cache": true, "params": {"temperature": 0}}')
	[ "$(field "$e" "cache_key IS NOT NULL")" = t ]
	wait_req "$e"
}

@test "roles.R.cache is the default; cache: false opts out" {
	a=$(submit -r cached -m "cached by the role")
	[ "$(field "$a" "cache_ttl_ms")" = 3600000 ]
	wait_req "$a"
	b=$(submit -r cached -m "cached by the role")
	[ "$(field "$b" "cache_hit")" = t ]
	c=$(submit -r cached -m "cached by the role" -o '{"cache": false}')
	[ "$(field "$c" "cache_hit || ' ' || (cache_key IS NULL)")" = "false true" ]
	wait_req "$c"
	# A model the role allows by name is keyed by that model.
	d=$(submit -r cached --model "big:8b" -m "cached by the role")
	[ "$(field "$d" "cache_hit")" = f ]
	wait_req "$d"
	[ "$(field "$d" "model_used")" = "big:8b" ]
}

@test "an entry expires after its time to live, and the consumer deletes it" {
	a=$(submit -r planner -m "short lived" -o '{"cache": "1 second"}')
	wait_req "$a"
	[ "$(psql_q "SELECT count(*) FROM llmq.cache WHERE request_id = $a")" = 1 ]
	sleep 1.2
	before=$(calls)
	b=$(submit -r planner -m "short lived" -o '{"cache": 1000}')
	[ "$(field "$b" "cache_hit")" = f ]
	wait_req "$b"
	[ "$(calls)" -eq $((before + 1)) ]
	# The new reply replaced the entry; once expired, the consumer
	# (every second here) deletes it.
	[ "$(psql_q "SELECT request_id FROM llmq.cache WHERE request_id IN ($a, $b)")" = "$b" ]
	wait_until 10 sql_is "SELECT count(*) FROM llmq.cache WHERE request_id = $b" 0
}

@test "a failed call is not cached" {
	a=$(submit -r planner -m "fails mock:status=500" -o '{"cache": true, "max_attempts": 1}')
	run wait_req "$a"
	[ "$status" -eq 1 ]
	b=$(submit -r planner -m "fails mock:status=500" -o '{"cache": true, "max_attempts": 1}')
	[ "$(field "$b" "cache_hit")" = f ]
	run wait_req "$b"
	[ "$status" -eq 1 ]
	[ "$(psql_q "SELECT count(*) FROM llmq.cache WHERE request_id IN ($a, $b)")" = 0 ]
}

@test "a streamed reply is cached like any other" {
	a=$(submit -r planner -m "stream and keep" -o '{"cache": true, "stream": true}')
	wait_req "$a"
	[ "$(field "$a" "first_token_at IS NOT NULL")" = t ]
	b=$(submit -r planner -m "stream and keep" -o '{"cache": true, "stream": true}')
	[ "$(field "$b" "cache_hit || ' ' || response")" = "true echo: stream and keep" ]
}

@test "a caller cannot plant an answer under another request's key" {
	key="llmq.cache_key('small:1b', '[{\"role\":\"user\",\"content\":\"the capital of France\"}]', '{\"cache\": true}')"
	# A plain INSERT naming a key: the trigger clears it.
	a=$(psql_q "INSERT INTO llmq.requests (role, messages, cache_key, cache_ttl_ms, cache_hit)
		VALUES ('planner', '[{\"role\":\"user\",\"content\":\"say Berlin\"}]', $key, 3600000, true)
		RETURNING id")
	[ "$(field "$a" "(cache_key IS NULL) || ' ' || cache_hit")" = "true false" ]
	# A pending row's key rewritten by UPDATE: the finish checks it.
	b=$(submit -r planner -m "say Paris" -o '{"cache": true, "run_after": "'"$(date -u -d '+2 seconds' '+%Y-%m-%dT%H:%M:%SZ')"'"}')
	psql_q "UPDATE llmq.requests SET cache_key = $key WHERE id = $b"
	run wait_req "$a" "$b"
	[ "$status" -eq 0 ]
	[ "$(psql_q "SELECT count(*) FROM llmq.cache WHERE key = $key OR request_id IN ($a, $b)")" = 0 ]
	c=$(submit -r planner -m "the capital of France" -o '{"cache": true}')
	[ "$(field "$c" cache_hit)" = f ]
	wait_req "$c"
}

@test "bad cache options are refused at submit, nothing written" {
	n=$(psql_q "SELECT count(*) FROM llmq.requests")
	for o in '{"cache": "forever"}' '{"cache": -5}' '{"cache": 0}' \
	    '{"cache": [1]}' '{"cache_force": "yes"}' '{"cache": 1e16}' \
	    '{"cache": "300000 years"}'; do
		run submit -r planner -m "x" -o "$o"
		echo "$o: $output"
		[ "$status" -ne 0 ]
		grep -q 'option "cache\(_force\)\?" must be' <<<"$output"
	done
	[ "$(psql_q "SELECT count(*) FROM llmq.requests")" = "$n" ]
}
