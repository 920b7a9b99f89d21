#!/usr/bin/env bats
# 80-structured.bats: structured output.  The stand-in answers with the
# text of mock:say=BASE64 (mock:say2= in a re-asked round) or with tool
# calls (mock:tool=NAME:BASE64ARGS); llmqd parses the reply, validates
# it against the request's response_schema or its tools' parameters,
# and re-asks on failure.

load helpers

setup_file() {
	pg_start || return 1
	mock_start || return 1
	write_config "$TEST_DIR/llmq.yaml" "  json:
    concurrency: 2
    model: \"gpt-test\"
    max_reasks: 1"
	llmq_migrate
	llmqd_start "$TEST_DIR/llmq.yaml" 3
}

teardown_file() {
	common_teardown_file
}

b64() {
	printf '%s' "$1" | base64 -w0
}

SCHEMA='{"type": "object", "properties": {"steps": {"type": "array", "items": {"type": "string"}}}, "required": ["steps"]}'

# ask ROLE SAY [SAY2] [OPTIONS_JSON]: a request with the schema whose
# reply is SAY (and SAY2 when re-asked); prints its id.
ask() {
	local m="plan it mock:say=$(b64 "$2")" o="{\"response_schema\": $SCHEMA}"
	[ -n "${3:-}" ] && m="$m mock:say2=$(b64 "$3")"
	[ -n "${4:-}" ] && o=$4
	submit -r "$1" -m "$m" -o "$o"
}

@test "a fenced JSON reply that matches its schema completes with parsed_response" {
	id=$(ask planner 'Here is the plan:
```json
{"steps": ["outline", "write"]}
```
Good luck!')
	run wait_req "$id"
	[ "$status" -eq 0 ]
	[ "$(field "$id" "status || ' ' || reasks")" = "completed 0" ]
	[ "$(field "$id" "parsed_response")" = '{"steps": ["outline", "write"]}' ]
	[ "$(field "$id" "validation_errors IS NULL")" = t ]
	field "$id" response | grep -q '^Here is the plan:'
	# Ollama got the schema as its format.
	curl -s "$MOCK_URL/_mock/last" | grep -q '"format":{"type":"object"'
}

@test "an OpenAI provider gets the schema as response_format json_schema" {
	id=$(ask json '{"steps": ["a"]}')
	run wait_req "$id"
	[ "$status" -eq 0 ]
	[ "$(field "$id" "parsed_response")" = '{"steps": ["a"]}' ]
	curl -s "$MOCK_URL/_mock/last" | grep -q '"response_format":{"type":"json_schema","json_schema":{"name":"response","schema":{"type":"object"'
}

@test "a reply missing a required field is re-asked once, then completes" {
	id=$(ask json '{"plan": "none"}' '{"steps": ["fixed"]}')
	run wait_req "$id"
	[ "$status" -eq 0 ]
	[ "$(field "$id" "status || ' ' || reasks || ' ' || attempts")" = "completed 1 1" ]
	[ "$(field "$id" "parsed_response")" = '{"steps": ["fixed"]}' ]
	# Two calls, both recorded; the second carried the conversation.
	[ "$(psql_q "SELECT string_agg(round || ':' || coalesce(error_kind, 'ok') || ':' || retry, ',' ORDER BY round)
		FROM llmq.attempts WHERE request_id = $id")" = "0:validation_error:true,1:ok:false" ]
	[ "$(mock_stats | sed -n 's/.*"last_roles":"\([a-z]*\)".*/\1/p')" = "uau" ]
	curl -s "$MOCK_URL/_mock/last" | grep -q 'required property \\"steps\\" is missing'
	# The row's tokens are those of both rounds.
	[ "$(field "$id" "prompt_tokens = (SELECT sum(prompt_tokens) FROM llmq.attempts WHERE request_id = $id)")" = t ]
}

@test "a reply still invalid after the re-ask fails with validation_error and paths" {
	id=$(ask json '{"steps": [1]}' '{"steps": ["ok", 2]}')
	run wait_req "$id"
	[ "$status" -eq 1 ]
	[ "$(field "$id" "status || ' ' || error_kind || ' ' || reasks")" = "failed validation_error 1" ]
	[ "$(field "$id" "validation_errors -> 0 ->> 'path'")" = "/steps/1" ]
	[ "$(field "$id" "validation_errors -> 0 ->> 'schema_path'")" = "/properties/steps/items/type" ]
	field "$id" error_message | grep -q 'does not match its schema: 1 error, the first at "/steps/1"'
	# The last raw reply is kept for debugging.
	[ "$(field "$id" response)" = '{"steps": ["ok", 2]}' ]
	[ "$(field "$id" "parsed_response IS NULL")" = t ]
}

@test "truncated JSON is a parse_error with its position and the text around it" {
	id=$(ask json '{"steps": ["a", "b"' '' "{\"response_schema\": $SCHEMA, \"max_reasks\": 0}")
	run wait_req "$id"
	[ "$status" -eq 1 ]
	[ "$(field "$id" "status || ' ' || error_kind")" = "failed parse_error" ]
	msg=$(field "$id" error_message)
	echo "$msg"
	grep -q '^the reply is not valid JSON at byte 19: .*end of data.*<<HERE>>' <<<"$msg"
	[ "$(psql_q "SELECT count(*) FROM llmq.attempts WHERE request_id = $id")" = 1 ]
}

@test "without a schema, JSON is parsed as a courtesy and anything else stands" {
	a=$(submit -r json -m "list mock:say=$(b64 '[1, 2, 3]')")
	b=$(submit -r json -m "talk mock:say=$(b64 'Just words {not JSON} here.')")
	c=$(submit -r json -m "sing mock:say=$(b64 '[Verse 1]
la la la
[Chorus]')")
	run wait_req "$a" "$b" "$c"
	[ "$status" -eq 0 ]
	[ "$(field "$a" "parsed_response")" = '[1, 2, 3]' ]
	for id in "$b" "$c"; do
		[ "$(field "$id" "status || ' ' || (parsed_response IS NULL) || ' ' || reasks")" = "completed true 0" ]
	done
}

@test "with a schema and tools, a reply of tool calls alone is fine" {
	id=$(submit -r json -m "find mock:tool=search:$(b64 '{"query": "x"}')" \
		-o "{\"response_schema\": $SCHEMA, \"tools\": $TOOLS}")
	run wait_req "$id"
	[ "$status" -eq 0 ]
	[ "$(field "$id" "parsed_response #>> '{tool_calls,0,name}'")" = search ]
}

@test "a streamed reply is checked like a whole one" {
	id=$(ask planner '{"steps": ["streamed"]}' '' "{\"response_schema\": $SCHEMA, \"stream\": true}")
	run wait_req "$id"
	[ "$status" -eq 0 ]
	[ "$(field "$id" "parsed_response::text || ' ' || (first_token_at IS NOT NULL)")" = '{"steps": ["streamed"]} true' ]
}

TOOLS='[{"type": "function", "function": {"name": "search", "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}]'

@test "tool calls of both APIs, streamed or not, are stored in one shape" {
	args=$(b64 '{"query": "lyon"}')
	o=$(submit -r planner -m "find mock:tool=search:$args" -o "{\"tools\": $TOOLS}")
	s=$(submit -r planner -m "find mock:tool=search:$args" -o "{\"tools\": $TOOLS, \"stream\": true}")
	a=$(submit -r json -m "find mock:tool=search:$args" -o "{\"tools\": $TOOLS}")
	t=$(submit -r json -m "find mock:tool=search:$args" -o "{\"tools\": $TOOLS, \"stream\": true}")
	run wait_req "$o" "$s" "$a" "$t"
	[ "$status" -eq 0 ]
	for id in "$o" "$s" "$a" "$t"; do
		echo "$id: $(field "$id" parsed_response)"
		[ "$(field "$id" "parsed_response #> '{tool_calls,0,name}'")" = '"search"' ]
		[ "$(field "$id" "parsed_response #> '{tool_calls,0,arguments}'")" = '{"query": "lyon"}' ]
		[ "$(field "$id" "jsonb_array_length(parsed_response -> 'tool_calls')")" = 1 ]
	done
	# OpenAI names its calls; Ollama does not.
	[ "$(field "$o" "parsed_response #>> '{tool_calls,0,id}' IS NULL")" = t ]
	[ "$(field "$a" "parsed_response #>> '{tool_calls,0,id}' IS NOT NULL")" = t ]
	# The tools went to both providers.
	curl -s "$MOCK_URL/_mock/last" | grep -q '"tools":\[{"type":"function"'
}

@test "tool call arguments are validated against the tool's parameters" {
	bad=$(submit -r json -m "find mock:tool=search:$(b64 '{"q": 1}')" -o "{\"tools\": $TOOLS, \"max_reasks\": 0}")
	unknown=$(submit -r json -m "find mock:tool=fetch:$(b64 '{}')" -o "{\"tools\": $TOOLS, \"max_reasks\": 0}")
	broken=$(submit -r json -m "find mock:tool=search:$(b64 '{"query": ')" -o "{\"tools\": $TOOLS, \"max_reasks\": 0}")
	run wait_req "$bad" "$unknown" "$broken"
	[ "$status" -eq 1 ]
	for id in "$bad" "$unknown" "$broken"; do
		q="status || ' ' || coalesce(error_kind, '-') || ' ' || coalesce(error_message, '-') || ' ' || coalesce(parsed_response::text, '-')"
		echo "$id: $(field "$id" "$q")"
	done
	[ "$(field "$bad" "error_kind || ' ' || (validation_errors -> 0 ->> 'path')")" = "validation_error /tool_calls/0/arguments/query" ]
	[ "$(field "$unknown" "error_kind || ' ' || (validation_errors -> 0 ->> 'path')")" = "validation_error /tool_calls/0/name" ]
	[ "$(field "$broken" error_kind)" = parse_error ]
	field "$broken" error_message | grep -q 'the arguments of tool call 0 (search) are not valid JSON'
}

@test "a schema outside the subset is refused at submit; one the worker cannot use fails" {
	n=$(psql_q "SELECT count(*) FROM llmq.requests")
	run submit -r planner -m x -o '{"response_schema": {"type": "object", "unevaluatedProperties": false}}'
	[ "$status" -ne 0 ]
	grep -q 'option "response_schema": unsupported keyword "unevaluatedProperties" at /unevaluatedProperties' <<<"$output"
	run submit -r planner -m x -o '{"response_schema": {"type": "strng"}}'
	[ "$status" -ne 0 ]
	run submit -r planner -m x -o '{"tools": [{"type": "function", "function": {"name": "f", "parameters": {"$ref": "http://example.com/s"}}}]}'
	[ "$status" -ne 0 ]
	grep -q 'only local \$ref' <<<"$output"
	run submit -r planner -m x -o '{"max_reasks": 11}'
	[ "$status" -ne 0 ]
	[ "$(psql_q "SELECT count(*) FROM llmq.requests")" = "$n" ]
	# A lookahead passes the insert's check, not the validator's.
	id=$(submit -r planner -m x -o '{"response_schema": {"type": "string", "pattern": "^(?=a)"}}')
	run wait_req "$id"
	[ "$status" -eq 1 ]
	[ "$(field "$id" "status || ' ' || error_kind || ' ' || attempts")" = "failed bad_request 1" ]
	field "$id" error_message | grep -q '^response_schema: '
}

@test "a streamed re-ask is followed: the second round's text starts over" {
	id=$(submit -r planner -m "plan it mock:gap=150 mock:say=$(b64 '{"plan": "no"}') mock:say2=$(b64 '{"steps": ["yes"]}')" \
		-o "{\"response_schema\": $SCHEMA, \"stream\": true}")
	run "$LLMQCTL" -d "$DBCONN" wait --follow --timeout 30s "$id"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(field "$id" "status || ' ' || reasks")" = "completed 1" ]
	grep -q "attempt 1, asked again (1), starts over" <<<"$output"
	[ "$(tail -1 <<<"$output")" = '{"steps": ["yes"]}' ]
	[ "$(psql_q "SELECT count(*) FROM llmq.partials WHERE request_id = $id")" = 0 ]
}

@test "NUL in a reply's JSON and invalid UTF-8 in its body are handled" {
	# The model wrote the six characters \u0000 inside a JSON string.
	nul=$(ask json '{"steps": ["a\u0000b"]}')
	# The provider's body itself is not UTF-8.
	bad=$(submit -r json -m "bytes mock:say=$(printf '{"steps": ["\377\376"]}' | base64 -w0)" \
		-o "{\"response_schema\": $SCHEMA, \"max_attempts\": 1}")
	run wait_req "$nul" "$bad"
	[ "$(field "$nul" "status || ' ' || (parsed_response #>> '{steps,0}')")" = "completed a�b" ]
	[ "$(field "$bad" "status || ' ' || error_kind")" = "failed http_error" ]
	field "$bad" error_message | grep -q 'invalid JSON from provider'
}

@test "the schema true asks for JSON mode; false is refused" {
	id=$(submit -r planner -m "anything mock:say=$(b64 '{"any": 1}')" -o '{"response_schema": true}')
	run wait_req "$id"
	[ "$status" -eq 0 ]
	curl -s "$MOCK_URL/_mock/last" | grep -q '"format":"json"'
	[ "$(field "$id" "parsed_response")" = '{"any": 1}' ]
	run submit -r planner -m x -o '{"response_schema": false}'
	[ "$status" -ne 0 ]
	grep -q 'false accepts no reply at all' <<<"$output"
}
