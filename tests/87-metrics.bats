#!/usr/bin/env bats
# 87-metrics.bats: the result consumer's metrics file (metrics.c): the
# Prometheus text format checked line by line, the counters against the
# rows, the histograms' buckets, the gauges of shared memory against
# llmqctl status, and the file replaced whole.

load helpers

setup_file() {
	common_setup_file
	PROM="$TEST_DIR/llmq.prom"
	export PROM
	write_config "$TEST_DIR/llmq.yaml" "consumer:
  metrics_file: $PROM
  interval: 200ms"
	llmq_migrate
	llmqd_start
}

teardown_file() {
	common_teardown_file
}

# check_format FILE: the text format, as node_exporter's textfile
# collector reads it: only HELP and TYPE comments, each family's before
# its samples; every sample "name{label="value",...} value" with escaped
# label values; a histogram's buckets cumulative, ending with le="+Inf"
# equal to its _count, and a _sum.  Prints what is wrong.
check_format() {
	awk '
	function fail(msg) { print FILENAME ":" NR ": " msg ": " $0; bad = 1 }
	/^# HELP / { help[$3] = 1; next }
	/^# TYPE / {
		if (!($3 in help)) fail("TYPE before HELP")
		if ($4 !~ /^(counter|gauge|histogram|summary|untyped)$/)
			fail("unknown type")
		if ($3 in type) fail("family typed twice")
		type[$3] = $4; next
	}
	/^#/ { fail("stray comment"); next }
	/^$/ { fail("empty line"); next }
	{
		line = $0
		if (!match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*/)) { fail("bad name"); next }
		name = substr(line, 1, RLENGTH); rest = substr(line, RLENGTH + 1)
		labels = ""; le = ""
		if (substr(rest, 1, 1) == "{") {
			rest = substr(rest, 2)
			while (substr(rest, 1, 1) != "}") {
				if (!match(rest, /^[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\\\|\\"|\\n)*"/)) {
					fail("bad label"); next
				}
				pair = substr(rest, 1, RLENGTH); rest = substr(rest, RLENGTH + 1)
				if (pair ~ /^le=/) le = pair; else labels = labels "," pair
				if (substr(rest, 1, 1) == ",") rest = substr(rest, 2)
				else if (substr(rest, 1, 1) != "}") { fail("bad label list"); next }
			}
			rest = substr(rest, 2)
		}
		if (rest !~ /^ [-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$/ &&
		    rest !~ /^ [-+]?Inf$/ && rest !~ /^ NaN$/) {
			fail("bad value"); next
		}
		value = substr(rest, 2) + 0
		fam = name
		if (name ~ /_(bucket|sum|count)$/) {
			base = name; sub(/_(bucket|sum|count)$/, "", base)
			if (type[base] == "histogram") fam = base
		}
		if (!(fam in type)) { fail("sample without TYPE"); next }
		if (type[fam] != "histogram") next
		key = fam labels
		if (name ~ /_bucket$/) {
			if (le == "") { fail("bucket without le"); next }
			if ((key in last) && value < last[key]) fail("buckets not cumulative")
			last[key] = value; lastle[key] = le
		} else if (name ~ /_count$/) {
			count[key] = value
		} else if (name ~ /_sum$/) {
			sum[key] = 1
		} else fail("histogram sample of another name")
	}
	END {
		for (k in last) {
			if (lastle[k] != "le=\"+Inf\"") { print k ": last bucket not +Inf"; bad = 1 }
			if (!(k in count) || count[k] != last[k]) { print k ": +Inf != _count"; bad = 1 }
			if (!(k in sum)) { print k ": no _sum"; bad = 1 }
		}
		exit bad
	}' "$1"
}

# metric NAME LABELS: the value of one sample ("" when absent).  LABELS
# is the exact label text, e.g. 'scope="role",name="planner"'.
metric() {
	awk -v want="$1{$2}" '{ v = $NF; $NF = ""; sub(/ $/, "");
		if ($0 == want) print v }' "$PROM"
}

# The counters, one "role|model|status|kind|n" line each, sorted.
file_counts() {
	sed -n 's/^llmq_requests_total{role="\([^"]*\)",model="\([^"]*\)",status="\([^"]*\)",error_kind="\([^"]*\)"} \([0-9]*\)$/\1|\2|\3|\4|\5/p' \
		"$PROM" | LC_ALL=C sort
}

db_counts() {
	psql_q "SELECT role, coalesce(model_used, model, ''), status,
		coalesce(error_kind, ''), count(*) FROM llmq.requests
		WHERE status IN ('completed', 'failed', 'cancelled')
		GROUP BY 1, 2, 3, 4" | LC_ALL=C sort
}

counts_match() {
	[ -n "$(db_counts)" ] && [ "$(file_counts)" = "$(db_counts)" ]
}

@test "the file is written, in the text format, with HELP and TYPE for every family" {
	wait_until 10 test -s "$PROM"
	run check_format "$PROM"
	echo "$output"
	[ "$status" -eq 0 ]
	grep -q '^# TYPE llmq_metrics_generated_timestamp_seconds gauge$' "$PROM"
	grep -q '^llmq_database_up 1$' "$PROM"
	# The shared memory's gauges: the global scope has no limit.
	[ "$(metric llmq_inflight 'scope="global",name="global"')" = 0 ]
	[ -z "$(metric llmq_limit 'scope="global",name="global"')" ]
	[ "$(metric llmq_limit 'scope="role",name="planner"')" = 2 ]
	[ "$(metric llmq_provider_cooling 'provider="local"')" = 0 ]
	[ "$(metric llmq_queue_depth 'role="executor"')" = 0 ]
	[ "$(metric llmq_worker_restarts_total 'role="planner"')" = 0 ]
}

@test "the counters of finished requests match the rows, failures by kind" {
	ok=$(submit -r planner -n 5 -m "fine")
	bad=$(submit -r planner -n 3 -m "refused mock:status=400")
	exe=$(submit -r executor --complexity simple -n 4 -m "simple one")
	wait_req $ok $exe >/dev/null
	run wait_req $bad
	wait_until 20 all_final
	# Finished rows are counted once they are 2 s old.
	wait_until 15 counts_match
	file_counts
	grep -q '|failed|bad_request|3$' <<<"$(file_counts)"
	grep -q '^planner|small:1b|completed||5$' <<<"$(file_counts)"
	run check_format "$PROM"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "histograms count every claimed row, cumulatively, with sums" {
	wait_until 15 counts_match
	# Every row of this file's requests was claimed once.
	n=$(psql_q "SELECT count(*) FROM llmq.requests
		WHERE role = 'planner' AND claimed_at IS NOT NULL
		  AND status IN ('completed', 'failed', 'cancelled')")
	[ "$(metric llmq_queue_wait_seconds_count 'role="planner",model="small:1b"')" = "$n" ]
	[ "$(metric llmq_queue_wait_seconds_bucket 'role="planner",model="small:1b",le="+Inf"')" = "$n" ]
	[ "$(metric llmq_model_seconds_count 'role="planner",model="small:1b"')" = "$n" ]
	# The stand-in answers at once: every call well under 10 s.
	[ "$(metric llmq_model_seconds_bucket 'role="planner",model="small:1b",le="10"')" = "$n" ]
	grep -q '^llmq_model_seconds_sum{role="planner",model="small:1b"} [0-9.]*$' "$PROM"
}

@test "only streamed requests have a time to the first token" {
	before=$(psql_q "SELECT count(*) FROM llmq.requests
		WHERE role = 'executor' AND first_token_at IS NOT NULL")
	id=$(submit -r executor --complexity simple -m "streamed mock:delay=300" \
		-o '{"stream": true}')
	wait_req "$id" >/dev/null
	wait_until 15 counts_match
	n=$(psql_q "SELECT count(*) FROM llmq.requests
		WHERE role = 'executor' AND first_token_at IS NOT NULL")
	echo "before $before, now $n"
	[ "$n" -eq $((before + 1)) ]
	[ "$(metric llmq_first_token_seconds_count 'role="executor",model="small:1b"')" = "$n" ]
	# The first token came after the delay of 0.3 s.
	[ "$(metric llmq_first_token_seconds_bucket 'role="executor",model="small:1b",le="0.25"')" -lt "$n" ]
}

@test "a slow burst shows in flight, up to the limit, as llmqctl status does" {
	ids=$(submit -r planner -n 6 -m "slow mock:delay=3000")
	# The planner's limit is 2: two in flight, four due in its queue.
	wait_until 10 sh -c "grep -qx 'llmq_inflight{scope=\"role\",name=\"planner\"} 2' '$PROM'"
	wait_until 10 sh -c "grep -qx 'llmq_queue_depth{role=\"planner\"} 4' '$PROM'"
	inflight=$(metric llmq_inflight 'scope="role",name="planner"')
	limit=$(metric llmq_limit 'scope="role",name="planner"')
	[ "$inflight" -gt 0 ] && [ "$inflight" -le "$limit" ]
	status=$("$LLMQCTL" -c "$TEST_DIR/llmq.yaml" status --json | tr -d ' \n' |
		grep -o '"kind":"role","name":"planner"[^{}]*"inflight":[0-9]*' |
		sed 's/.*"inflight"://')
	echo "file $inflight, status $status"
	[ "$status" = "$inflight" ]
	oldest=$(metric llmq_oldest_pending_seconds 'role="planner"')
	awk -v o="$oldest" 'BEGIN { exit !(o > 0 && o < 60) }'
	# Peak and slots taken move with it.
	[ "$(metric llmq_inflight_peak 'scope="role",name="planner"')" = 2 ]
	run wait_req $ids
	[ "$status" -eq 0 ]
	wait_until 10 sh -c "grep -qx 'llmq_inflight{scope=\"role\",name=\"planner\"} 0' '$PROM'"
	wait_until 10 sh -c "grep -qx 'llmq_queue_depth{role=\"planner\"} 0' '$PROM'"
	wait_until 15 counts_match
	# The calls took 3 s each: in the bucket le="5", not in le="2.5".
	slow=$(psql_q "SELECT count(*) FROM llmq.requests
		WHERE role = 'planner' AND finished_at - claimed_at > interval '2.5 s'")
	[ "$slow" = 6 ]
	b5=$(metric llmq_model_seconds_bucket 'role="planner",model="small:1b",le="5"')
	b25=$(metric llmq_model_seconds_bucket 'role="planner",model="small:1b",le="2.5"')
	[ $((b5 - b25)) -eq 6 ]
}

@test "the file is replaced whole: a new inode each time, no temporary left" {
	wait_until 10 test -s "$PROM"
	i1=$(stat -c %i "$PROM")
	wait_until 5 sh -c "[ \"\$(stat -c %i '$PROM')\" != $i1 ]"
	# Three writes in a row, each complete.
	for n in 1 2 3; do
		i=$(stat -c %i "$PROM")
		cp "$PROM" "$TEST_DIR/copy.prom"
		check_format "$TEST_DIR/copy.prom"
		tail -1 "$TEST_DIR/copy.prom" | grep -q '^llmq_metrics_generated_timestamp_seconds [0-9.]*$'
		wait_until 5 sh -c "[ \"\$(stat -c %i '$PROM')\" != $i ]"
	done
	[ -z "$(ls "$TEST_DIR" | grep 'llmq\.prom\.tmp')" ]
	# Written every interval (200 ms): the timestamp is fresh.
	ts=$(sed -n 's/^llmq_metrics_generated_timestamp_seconds //p' "$PROM")
	awk -v t="$ts" -v now="$(date +%s.%N)" 'BEGIN { exit !(now - t < 3) }'
	[ "$(stat -c %a "$PROM")" = 644 ]
}

@test "a worker's restart is counted for its role" {
	old=$(pgrep -P "$LLMQD_PID" -f "llmqd: planner worker" | head -1)
	[ -n "$old" ]
	kill -KILL "$old"
	wait_until 10 sh -c "grep -qx 'llmq_worker_restarts_total{role=\"planner\"} 1' '$PROM'"
	[ "$(metric llmq_worker_restarts_total 'role="executor"')" = 0 ]
}

@test "with the database gone the file is still written, saying so" {
	before=$(file_counts)
	as_pg "$PG_BINDIR/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null
	wait_until 15 sh -c "grep -qx 'llmq_database_up 0' '$PROM'"
	# Still written while the consumer tries to reconnect.
	i=$(stat -c %i "$PROM")
	wait_until 10 sh -c "[ \"\$(stat -c %i '$PROM')\" != $i ]"
	as_pg "$PG_BINDIR/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w \
		-o "-k $PGDIR -c listen_addresses='' -c fsync=off \
		    -c synchronous_commit=off -c max_connections=200" \
		start >/dev/null 3>&-
	wait_until 20 sh -c "grep -qx 'llmq_database_up 1' '$PROM'"
	# The counters kept their values across the outage.
	[ "$(file_counts)" = "$before" ]
	run check_format "$PROM"
	[ "$status" -eq 0 ]
}
