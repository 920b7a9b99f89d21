#!/usr/bin/env bats
# 70-stream.bats: streamed replies.  llmqd reads Ollama's NDJSON and
# OpenAI's Server-Sent Events as they arrive, records the first token,
# publishes the text while the model writes it (llmq.partials and a
# NOTIFY per piece), and llmqctl wait --follow prints it live.  The
# stand-in spaces its chunks with mock:gap=MS, ends a stream with an
# error (mock:stream_error=K), cuts it (mock:cut=K) or sends no counts
# (mock:usage=0).

load helpers

setup_file() {
	pg_start || return 1
	mock_start || return 1
	write_config "$TEST_DIR/llmq.yaml" "  streamer:
    concurrency: 2
    stream: true
    model: \"gpt-test\"
    max_attempts: 2
    backoff: { base: 100ms, cap: 200ms }"
	llmq_migrate
	llmqd_start "$TEST_DIR/llmq.yaml" 3
}

teardown_file() {
	common_teardown_file
}

STREAM='{"stream": true}'

@test "an Ollama NDJSON stream completes with its text, first token and counts" {
	before=$(mock_field streams)
	id=$(submit -r planner -m "hello there" -o "$STREAM")
	run wait_req "$id"
	[ "$status" -eq 0 ]
	[ "$output" = "echo: hello there" ]
	[ "$(mock_field streams)" -eq $((before + 1)) ]
	[ "$(field "$id" "status || ' ' || response")" = "completed echo: hello there" ]
	# The first token came after the claim and no later than the end.
	[ "$(field "$id" "first_token_at BETWEEN claimed_at AND finished_at")" = t ]
	[ "$(field "$id" "prompt_tokens > 0 AND completion_tokens > 0")" = t ]
	[ "$(field "$id" "tokens_estimated")" = f ]
	[ "$(psql_q "SELECT first_token_at IS NOT NULL AND tokens_estimated = false
		FROM llmq.attempts WHERE request_id = $id")" = t ]
	# Nothing of the stream is left behind.
	[ "$(psql_q "SELECT count(*) FROM llmq.partials WHERE request_id = $id")" = 0 ]
}

@test "an OpenAI SSE stream completes with its text, first token and usage" {
	before=$(mock_field streams)
	id=$(submit -r executor --complexity medium -m "sse please" -o "$STREAM")
	run wait_req "$id"
	[ "$status" -eq 0 ]
	[ "$output" = "echo: sse please" ]
	[ "$(mock_field streams)" -eq $((before + 1)) ]
	[ "$(field "$id" "model_used")" = gpt-test ]
	[ "$(field "$id" "first_token_at IS NOT NULL")" = t ]
	[ "$(field "$id" "prompt_tokens > 0 AND completion_tokens > 0 AND NOT tokens_estimated")" = t ]
}

@test "roles.R.stream makes streaming the default, option stream: false turns it off" {
	before=$(mock_field streams)
	a=$(submit -r streamer -m "by default")
	b=$(submit -r streamer -m "not this one" -o '{"stream": false}')
	run wait_req "$a" "$b"
	[ "$status" -eq 0 ]
	[ "$(mock_field streams)" -eq $((before + 1)) ]
	[ "$(field "$a" "first_token_at IS NOT NULL")" = t ]
	[ "$(field "$b" "first_token_at IS NULL")" = t ]
}

# follow_live ROLE [SUBMIT_ARGS...]: a slow stream is readable from
# llmq.partials and printed by wait --follow before it ends.
follow_live() {
	local role=$1
	shift
	id=$(submit -r "$role" -m "slowly now mock:gap=400 mock:pieces=4" "$@")
	"$LLMQCTL" -d "$DBCONN" wait --follow --timeout 30s "$id" \
		>"$TEST_DIR/follow.out" 2>"$TEST_DIR/follow.err" 3>&- &
	follower=$!
	# A piece reaches llmq.partials, and the follower prints it, while
	# the row is still processing.
	wait_until 10 sql_is "SELECT count(*) > 0 FROM llmq.partials
		WHERE request_id = $id" t
	partial=$(psql_q "SELECT text FROM llmq.partial_text WHERE request_id = $id")
	wait_until 10 test -s "$TEST_DIR/follow.out"
	[ "$(field "$id" status)" = processing ]
	echo "partial: $partial"
	[ -n "$partial" ]
	wait "$follower"
	final=$(field "$id" response)
	# What was shown while running is the start of the response, and
	# the follower printed the whole response exactly once.
	[ "${final#"$partial"}" != "$final" ]
	[ "$(cat "$TEST_DIR/follow.out")" = "$final" ]
	[ ! -s "$TEST_DIR/follow.err" ]
	[ "$(psql_q "SELECT count(*) FROM llmq.partials WHERE request_id = $id")" = 0 ]
}

@test "the text of an SSE stream is readable and followed while the model writes it" {
	follow_live streamer
}

@test "the text of an NDJSON stream is readable and followed while the model writes it" {
	follow_live planner -o "$STREAM"
}

@test "each piece is announced on the request's channel with its text" {
	id=$(submit -r streamer -m "announce mock:gap=300 mock:pieces=3 mock:delay=1000")
	# LISTEN before the first piece (the call waits 1 s before it).
	run psql -X -A -t -q -d "$DBCONN" -c "LISTEN llmq_stream_$id" \
		-c "SELECT pg_sleep(2.5)" -c "SELECT 1"
	echo "$output"
	grep -q "Asynchronous notification \"llmq_stream_$id\" with payload \"{\"id\" : $id, \"attempt\" : 1, \"round\" : 0, \"seq\" : 1, \"delta\" : \"echo" <<<"$output"
	run wait_req "$id"
	[ "$status" -eq 0 ]
}

@test "follow prints the response of a request already done, or not streamed" {
	id=$(submit -r planner -m "not streamed")
	run wait_req "$id"
	[ "$status" -eq 0 ]
	run "$LLMQCTL" -d "$DBCONN" wait --follow "$id"
	[ "$status" -eq 0 ]
	[ "$output" = "echo: not streamed" ]
	run "$LLMQCTL" -d "$DBCONN" wait --follow "$id" "$id"
	[ "$status" -eq 64 ]
}

@test "an error inside a 200 stream fails the call with the provider's words" {
	o=$(submit -r planner -m "ollama breaks mock:stream_error=1" -o '{"stream": true, "max_attempts": 1}')
	s=$(submit -r executor --complexity medium -m "openai breaks mock:stream_error=1" -o '{"stream": true, "max_attempts": 1}')
	l=$(submit -r executor --complexity medium -m "llama breaks mock:stream_error=1 mock:stream_error_style=llamacpp" -o '{"stream": true, "max_attempts": 1}')
	run wait_req "$o" "$s" "$l"
	[ "$status" -eq 1 ]
	for id in "$o" "$s" "$l"; do
		echo "$id: $(field "$id" "status || ' ' || error_kind || ' ' || error_message")"
		[ "$(field "$id" "status || ' ' || error_kind")" = "failed http_error" ]
		field "$id" error_message | grep -q '^provider error in stream'
	done
	# The text before the error was published, then cleared.
	[ "$(psql_q "SELECT count(*) FROM llmq.partials WHERE request_id IN ($o, $s, $l)")" = 0 ]
}

@test "a stream cut before its end is retried, and the retry's text wins" {
	id=$(submit -r streamer -m "cut me mock:cut=1 mock:fail=1")
	run wait_req "$id"
	[ "$status" -eq 0 ]
	[ "$(field "$id" "status || ' ' || attempts")" = "completed 2" ]
	[ "$(psql_q "SELECT string_agg(coalesce(error_kind, 'ok') || ' ' || retry, ',' ORDER BY attempt)
		FROM llmq.attempts WHERE request_id = $id")" = "provider_down true,ok false" ]
	[ "$(field "$id" response)" = "echo: cut me mock:cut=1 mock:fail=1" ]
}

@test "a stream without counts gets estimated ones, flagged" {
	o=$(submit -r planner -m "count me mock:usage=0" -o "$STREAM")
	s=$(submit -r streamer -m "count me too mock:usage=0")
	run wait_req "$o" "$s"
	[ "$status" -eq 0 ]
	for id in "$o" "$s"; do
		[ "$(field "$id" "tokens_estimated")" = t ]
		[ "$(field "$id" "prompt_tokens > 0 AND completion_tokens > 0")" = t ]
		[ "$(psql_q "SELECT tokens_estimated FROM llmq.attempts WHERE request_id = $id")" = t ]
	done
	# The text is 30 bytes: about 8 tokens.
	[ "$(field "$s" completion_tokens)" -ge 5 ]
	[ "$(field "$s" completion_tokens)" -le 12 ]
}

@test "a bad stream option is refused at submit, nothing written" {
	n=$(psql_q "SELECT count(*) FROM llmq.requests")
	run submit -r planner -m "x" -o '{"stream": "yes"}'
	[ "$status" -ne 0 ]
	grep -q 'option "stream" must be true or false' <<<"$output"
	[ "$(psql_q "SELECT count(*) FROM llmq.requests")" = "$n" ]
}
