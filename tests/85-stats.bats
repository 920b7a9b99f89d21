#!/usr/bin/env bats
# 85-stats.bats: "llmqctl stats" over a set of rows written by hand, with
# every timestamp known, so that each count, rate and percentile has one
# right value.  No llmqd runs: nothing may claim the pending row.

load helpers

# The rows, created an hour ago (T) but for one three days old.  Times
# are milliseconds after T:
#   planner / small:1b
#     1 completed  claimed 100  finished 1100  tokens 10/20  cacheable
#     2 completed  claimed 200  finished 2200  first token 500  tokens
#                  30/40  attempts 2  reasks 1
#     3 failed timeout  claimed 300  finished 3300  attempts 3  fallback
#     4 completed from the cache (claimed = finished = T)  tokens 999/999
#     5 failed parse_error  claimed 400  finished 1400  reasks 1
#   executor / gpt-test
#     6 completed  claimed 1000  finished 5000  first token 1500  tokens
#                  100/200
#     7 failed timeout  claimed 50  finished 10050
#   executor, no model
#     8 cancelled while pending  finished 10
#     9 pending
#    10 completed, created three days ago
stats_rows() {
	psql_q "
	CREATE TEMP TABLE v (n int, role text, model text, status text,
	    kind text, claimed int, finished int, ttft int, pt int, ct int,
	    attempts int, reasks int, fallback boolean, key boolean,
	    hit boolean);
	INSERT INTO v VALUES
	 (1, 'planner', 'small:1b', 'completed', NULL, 100, 1100, NULL, 10, 20, 1, 0, false, true, false),
	 (2, 'planner', 'small:1b', 'completed', NULL, 200, 2200, 500, 30, 40, 2, 1, false, false, false),
	 (3, 'planner', 'small:1b', 'failed', 'timeout', 300, 3300, NULL, NULL, NULL, 3, 0, true, false, false),
	 (4, 'planner', 'small:1b', 'completed', NULL, 0, 0, NULL, 999, 999, 0, 0, false, true, true),
	 (5, 'planner', 'small:1b', 'failed', 'parse_error', 400, 1400, NULL, NULL, NULL, 1, 1, false, false, false),
	 (6, 'executor', 'gpt-test', 'completed', NULL, 1000, 5000, 1500, 100, 200, 1, 0, false, false, false),
	 (7, 'executor', 'gpt-test', 'failed', 'timeout', 50, 10050, NULL, NULL, NULL, 1, 0, false, false, false),
	 (8, 'executor', NULL, 'cancelled', 'cancelled', NULL, 10, NULL, NULL, NULL, 0, 0, false, false, false),
	 (9, 'executor', NULL, 'pending', NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, false, false, false);
	INSERT INTO llmq.requests (role, messages, model_used, status,
	    error_kind, created_at, claimed_at, finished_at, first_token_at,
	    prompt_tokens, completion_tokens, attempts, reasks, fallback_used,
	    cache_key, cache_hit)
	SELECT v.role, '[{\"role\":\"user\",\"content\":\"x\"}]', v.model,
	       v.status, v.kind, t,
	       t + v.claimed * interval '1 millisecond',
	       t + v.finished * interval '1 millisecond',
	       t + v.ttft * interval '1 millisecond',
	       v.pt, v.ct, v.attempts, v.reasks, v.fallback,
	       CASE WHEN v.key THEN '\\x01'::bytea END, v.hit
	  FROM v, (SELECT date_trunc('second', now()) - interval '1 hour' AS t) s
	 ORDER BY v.n;
	INSERT INTO llmq.requests (role, messages, model_used, status,
	    created_at, claimed_at, finished_at, attempts)
	VALUES ('planner', '[{\"role\":\"user\",\"content\":\"old\"}]',
	    'small:1b', 'completed', now() - interval '3 days',
	    now() - interval '3 days', now() - interval '3 days', 1);"
}

setup_file() {
	common_setup_file
	llmq_migrate
	stats_rows
}

teardown_file() {
	common_teardown_file
}

stats() {
	"$LLMQCTL" -d "$DBCONN" stats "$@"
}

# jqs FILTER: the stats of the default period, through jq (-c: one line).
jqs() {
	stats --json | jq -c "$1"
}

@test "stats --json counts the outcomes of each role, failures by kind" {
	run stats --json
	[ "$status" -eq 0 ]
	echo "$output" | jq -e . >/dev/null
	[ "$(echo "$output" | jq -c '[.roles[].role]')" = '["executor","planner"]' ]
	[ "$(echo "$output" | jq -c '.roles[1] | [.requests, .completed, .failed, .cancelled, .pending, .processing]')" = '[5,3,2,0,0,0]' ]
	[ "$(echo "$output" | jq -c '.roles[1].failed_by_kind')" = '{"timeout":1,"parse_error":1}' ]
	[ "$(echo "$output" | jq -c '.roles[0] | [.requests, .completed, .failed, .cancelled, .pending]')" = '[4,1,1,1,1]' ]
	[ "$(echo "$output" | jq -c '.roles[0].failed_by_kind')" = '{"timeout":1}' ]
	# Success: completed of completed and failed.
	[ "$(echo "$output" | jq -c '[.roles[].success_rate, .total.success_rate]')" = '[0.5,0.6,0.5714]' ]
}

@test "stats --json gives exact percentiles of the queue wait, model time, end to end and first token" {
	# planner: the cache hit counts end to end only.
	[ "$(jqs '.roles[1].queue_wait_ms')" = '{"p50":250,"p95":385}' ]
	[ "$(jqs '.roles[1].model_time_ms')" = '{"p50":1500,"p95":2850}' ]
	[ "$(jqs '.roles[1].end_to_end_ms')" = '{"p50":1400,"p95":3080}' ]
	[ "$(jqs '.roles[1].first_token_ms')" = '{"p50":300,"p95":300}' ]
	# executor: the cancelled and the pending row have no times.
	[ "$(jqs '.roles[0].queue_wait_ms')" = '{"p50":525,"p95":952.5}' ]
	[ "$(jqs '.roles[0].model_time_ms')" = '{"p50":7000,"p95":9700}' ]
	[ "$(jqs '.roles[0].end_to_end_ms')" = '{"p50":7525,"p95":9797.5}' ]
	[ "$(jqs '.roles[0].first_token_ms')" = '{"p50":500,"p95":500}' ]
	[ "$(jqs '.total.queue_wait_ms')" = '{"p50":250,"p95":850}' ]
	[ "$(jqs '.total.model_time_ms')" = '{"p50":2500,"p95":8500}' ]
	[ "$(jqs '.total.end_to_end_ms')" = '{"p50":2200,"p95":8535}' ]
	[ "$(jqs '.total.first_token_ms')" = '{"p50":400,"p95":490}' ]
}

@test "stats --json: tokens without cache hits, cache hit rate, fallbacks, retries, re-asks" {
	[ "$(jqs '.roles[1] | [.prompt_tokens_avg, .completion_tokens_avg]')" = '[20,30]' ]
	[ "$(jqs '.total | [.prompt_tokens_avg, .completion_tokens_avg]')" = '[46.7,86.7]' ]
	[ "$(jqs '.roles[1] | [.cacheable, .cache_hits, .cache_hit_rate]')" = '[2,1,0.5]' ]
	[ "$(jqs '.roles[0] | [.cacheable, .cache_hits, .cache_hit_rate]')" = '[0,0,null]' ]
	[ "$(jqs '.roles[1] | [.fallbacks, .retried, .reasks]')" = '[1,2,2]' ]
	[ "$(jqs '.roles[0] | [.fallbacks, .retried, .reasks]')" = '[0,0,0]' ]
	[ "$(jqs '.total | [.requests, .completed, .failed, .cancelled, .fallbacks, .retried, .reasks]')" = '[9,4,3,1,1,2,2]' ]
	[ "$(jqs '.total.failed_by_kind')" = '{"timeout":2,"parse_error":1}' ]
}

@test "stats --json groups by the model used, rows without one last" {
	[ "$(jqs '[.models[] | [.model, .requests, .completed, .failed, .cancelled, .pending]]')" = \
	  '[["gpt-test",2,1,1,0,0],["small:1b",5,3,2,0,0],[null,2,0,0,1,1]]' ]
	[ "$(jqs '.models[0].model_time_ms')" = '{"p50":7000,"p95":9700}' ]
	[ "$(jqs '.models[2] | [.success_rate, .queue_wait_ms.p50]')" = '[null,null]' ]
	# since is the timestamp of a day ago.
	since=$(jqs '.since' | tr -d '"')
	[ "$(psql_q "SELECT abs(extract(epoch FROM now() - interval '1 day'
		- '$since'::timestamptz)) < 60")" = t ]
}

@test "stats --since excludes older rows and includes them when longer" {
	[ "$(jqs '.total.requests')" = 9 ]
	[ "$(stats --since 4d --json | jq '.total.requests')" = 10 ]
	[ "$(stats --since 4d --json | jq '.roles[1].requests')" = 6 ]
	# Half an hour: none of them.
	run stats --since 30m --json
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq -c '[.roles, .models, .total.requests, .total.success_rate]')" = '[[],[],0,null]' ]
	run stats --since 30m
	[ "$status" -eq 0 ]
	[[ "$output" == "requests created since "*" (last 30m): none" ]]
}

@test "stats --role filters the roles, the models and the total" {
	run stats --role executor --json
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq -c '[.roles[].role]')" = '["executor"]' ]
	[ "$(echo "$output" | jq -c '[.models[].model]')" = '["gpt-test",null]' ]
	[ "$(echo "$output" | jq -c '.total | [.requests, .completed, .failed, .cancelled, .pending]')" = '[4,1,1,1,1]' ]
	[ "$(stats -r nosuchrole --json | jq '.total.requests')" = 0 ]
}

@test "stats prints tables of counts and times per role and per model, with a total" {
	run stats
	[ "$status" -eq 0 ]
	echo "$output"
	[[ "${lines[0]}" == "requests created since "*" (last 24h)" ]]
	# Columns: TOTAL COMPLETED FAILED CANCELLED SUCCESS CACHE FALLBACK
	# RETRIED REASKS.
	echo "$output" | grep -Eq '^ROLE +TOTAL +COMPLETED +FAILED +CANCELLED +SUCCESS +CACHE +FALLBACK +RETRIED +REASKS$'
	echo "$output" | grep -Eq '^planner +5 +3 +2 +0 +60\.0% +50\.0% +1 +2 +2$'
	echo "$output" | grep -Eq '^executor +4 +1 +1 +1 +50\.0% +- +0 +0 +0$'
	[ "$(echo "$output" | grep -Ec '^total +9 +4 +3 +1 +57\.1% +50\.0% +1 +2 +2$')" = 2 ]
	echo "$output" | grep -Eq '^(\(none\)) +2 +0 +0 +1 +- +- +0 +0 +0$'
	# Failures by kind, the most frequent first.
	echo "$output" | grep -Eq '^failed: +planner +parse_error 1, timeout 1$|^ +planner +parse_error 1, timeout 1$'
	echo "$output" | grep -Eq 'total +timeout 2, parse_error 1$'
	# Times: p50/p95 in ms with one decimal, in s from a second.
	echo "$output" | grep -Eq '^planner +250\.0ms/385\.0ms +1\.50s/2\.85s +1\.40s/3\.08s +300\.0ms/300\.0ms +20\.0/30\.0$'
	echo "$output" | grep -Eq '^gpt-test +525\.0ms/952\.5ms +7\.00s/9\.70s +7\.53s/9\.80s +500\.0ms/500\.0ms +100\.0/200\.0$'
	echo "$output" | grep -Eq '^\(none\) +- +- +- +- +-$'
	# 100 columns are enough.
	[ "$(echo "$output" | awk '{ if (length($0) > m) m = length($0) } END { print m }')" -le 100 ]
}

@test "stats refuses bad arguments with exit status 64" {
	run stats --since bogus
	[ "$status" -eq 64 ]
	[[ "$output" == *'invalid period "bogus"'* ]]
	run stats --since 0
	[ "$status" -eq 64 ]
	run stats --since 200000d
	[ "$status" -eq 64 ]
	run stats extra
	[ "$status" -eq 64 ]
	run stats --nosuchoption
	[ "$status" -eq 64 ]
	run stats -h
	[ "$status" -eq 0 ]
	[[ "$output" == "usage: llmqctl stats "* ]]
}

@test "stats exits 1 on a database error" {
	run "$LLMQCTL" -d "host=$PGDIR user=postgres dbname=nosuchdb" stats
	[ "$status" -eq 1 ]
	[[ "$output" == *"could not connect"* ]]
	# A database without the schema.
	run "$LLMQCTL" -d "host=$PGDIR user=postgres dbname=template1" stats
	[ "$status" -eq 1 ]
	[[ "$output" == *"could not compute the statistics"* ]]
}
