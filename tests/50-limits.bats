#!/usr/bin/env bats
# 50-limits.bats: concurrency limits in shared memory across processes,
# leases, the fenced finish, queue deadlines, two daemons on one
# database, and kill -9 under load.  The stand-in counts the calls it
# holds at once, per model: that, not llmqd's own bookkeeping, is what
# the limits are checked against.

load helpers

setup_file() {
	pg_start || return 1
	mock_start -d 200 -L "$TEST_DIR/mock.log" || return 1
	limits_config "$TEST_DIR/llmq.yaml"
	llmq_migrate
}

teardown_file() {
	common_teardown_file
}

# Each test starts from the default configuration and its own daemon.
setup() {
	LLMQD_PID=
	limits_config "$TEST_DIR/llmq.yaml"
	psql_q "DELETE FROM llmq.requests"
}

teardown() {
	llmqd_stop || true
	[ -s "$TEST_DIR/second.pid" ] && kill -TERM "$(cat "$TEST_DIR/second.pid")" 2>/dev/null
	wait_until 15 sh -c "! [ -s '$TEST_DIR/second.pid' ] || ! kill -0 \$(cat '$TEST_DIR/second.pid') 2>/dev/null" || true
	return 0
}

# limits_config FILE [PIDFILE-STEM] [EXTRA]: the limits of the design's
# example: planner 2, executor 5, the heavy model 1, global 6.
limits_config() {
	local stem=${2:-llmqd}
	cat >"$1" <<EOC
database: "$DBCONN"
pidfile: $TEST_DIR/$stem.pid
log: $TEST_DIR/$stem.log
log_level: ${LOG_LEVEL:-info}
poll_interval: 100ms
shutdown_timeout: ${SHUTDOWN_TIMEOUT:-5s}
crash_limit: ${CRASH_LIMIT:-5}
limits:
  global: ${GLOBAL:-6}
providers:
  local:
    kind: ollama
    url: $MOCK_URL
    timeout: 20s
models:
  "plan:4b": { provider: local }
  "small:1b": { provider: local }
  "heavy:8b": { provider: local, concurrency: 1${HEAVY_CLUSTER:+, cluster_concurrency: $HEAVY_CLUSTER} }
roles:
  planner:
    processes: ${PLANNER_PROCESSES:-1}
    concurrency: ${PLANNER_CONCURRENCY:-2}
    model: "plan:4b"
  executor:
    processes: ${EXECUTOR_PROCESSES:-2}
    concurrency: ${EXECUTOR_CONCURRENCY:-5}
    max_attempts: ${MAX_ATTEMPTS:-3}
    model:
      simple: "small:1b"
      complex: "heavy:8b"
${3:-}
EOC
}

mock_reset() {
	curl -s -X POST "$MOCK_URL/_mock/reset" >/dev/null
	curl -s -X POST -d '{"delay_ms":200}' "$MOCK_URL/_mock/config" >/dev/null
}

# model_max MODEL: the most calls of MODEL the stand-in held at once.
model_max() {
	mock_stats | sed -n "s/.*\"$1\":{\"requests\":[0-9]*,\"inflight\":[0-9]*,\"max_inflight\":\([0-9]*\)}.*/\1/p"
}

# insert_sql ROLE COMPLEXITY N TAG: the statement that inserts N
# requests, each with a distinct content "TAG-i", so that the stand-in's
# log tells them apart.
insert_sql() {
	echo "INSERT INTO llmq.requests (role, messages, complexity)
		SELECT '$1', jsonb_build_array(jsonb_build_object('role', 'user',
		    'content', '$4-' || g)), NULLIF('$2', '')
		  FROM generate_series(1, $3) g;"
}

# The scopes' in-flight counts from llmqctl status, one "KIND NAME N"
# line each.
status_inflight() {
	"$LLMQCTL" -c "$TEST_DIR/llmq.yaml" status --json |
		tr -d ' \n' | grep -o '{[^{}]*"kind":"[a-z]*","name":"[^"]*"[^{}]*}' |
		sed -n 's/.*"kind":"\([a-z]*\)","name":"\([^"]*\)".*"inflight":\([0-9]*\).*/\1 \2 \3/p'
}

slots_free() {
	local out
	out=$(status_inflight) && [ -n "$out" ] && ! grep -qv ' 0$' <<<"$out"
}

@test "300 mixed requests: no limit exceeded at the stand-in, the global limit kept busy" {
	mock_reset
	llmqd_start "$TEST_DIR/llmq.yaml" 3
	# 300 calls of 0.2 s under a global limit of 6: 10 s at best.  The
	# roles' own limits add up to 7, so they share the global slots;
	# waiting is first come, first served slot by slot (as if each row
	# waited at a fair semaphore: see shm.c), which gives the planner
	# about 1.6 of them while the executor's queue lasts.  With this mix
	# both queues last about as long, so the global slots stay busy to
	# the end: planner 80 x 0.2 s / 1.6 = 10 s, executor 220 x 0.2 s /
	# 4.4 = 10 s, the heavy model alone 20 x 0.2 s = 4 s.
	t0=$(date +%s%N)
	# One transaction: the whole burst is there at once.
	psql_q "BEGIN; $(insert_sql planner '' 80 p)
		$(insert_sql executor simple 200 s)
		$(insert_sql executor complex 20 h) COMMIT"
	wait_until 60 all_final
	t1=$(date +%s%N)
	[ "$(req_count completed)" = 300 ]
	[ "$(mock_field requests)" = 300 ]
	max=$(mock_field max_inflight)
	echo "global max in flight $max, plan $(model_max plan:4b), small $(model_max small:1b), heavy $(model_max heavy:8b)"
	[ "$max" -le 6 ]
	[ "$(model_max 'plan:4b')" -le 2 ]
	[ "$(model_max 'heavy:8b')" -le 1 ]
	[ "$(model_max 'small:1b')" -le 5 ]
	# The limit is reached, not just respected.
	[ "$max" -eq 6 ]
	# Utilisation: the work done (calls x latency) over what the global
	# limit allows in the time taken, from the rows' own timestamps.
	util=$(psql_q "SELECT round(300 * 0.2 / (6 * extract(epoch FROM
		max(finished_at) - min(created_at))) * 100)
		FROM llmq.requests")
	echo "utilisation ${util}%, wall $(( (t1 - t0) / 1000000 )) ms"
	psql_q "SELECT role, coalesce(complexity, '-'), count(*),
		round(extract(epoch FROM min(claimed_at) - min(created_at))::numeric, 2),
		round(extract(epoch FROM max(finished_at) - min(created_at))::numeric, 2),
		round(avg(extract(epoch FROM finished_at - claimed_at))::numeric, 3)
		FROM llmq.requests GROUP BY 1, 2"
	[ "$util" -ge 90 ]
}

@test "limits hold across a reload: both generations share the slots" {
	mock_reset
	llmqd_start "$TEST_DIR/llmq.yaml" 3
	ids=$(submit -r planner -n 2 -m "long mock:delay=2500")
	wait_until 10 sql_is "SELECT count(*) FROM llmq.requests WHERE status='processing' AND role='planner'" 2
	kill -HUP "$LLMQD_PID"
	wait_until 10 grep -q "generation 1 started" "$TEST_DIR/llmqd.log"
	more=$(submit -r planner -n 4 -m "after the reload")
	run wait_req $ids $more
	[ "$status" -eq 0 ]
	# Without shared slots the new generation would have run 2 more
	# while the old one drained.
	[ "$(model_max 'plan:4b')" -eq 2 ]
}

@test "kill -9 of a worker every 2 s under load: nothing lost, no slot leaked" {
	mock_reset
	curl -s -X POST -d '{"delay_ms":60,"jitter_ms":60}' "$MOCK_URL/_mock/config" >/dev/null
	: >"$TEST_DIR/mock.log"
	# Kills are deaths: keep the daemon from calling it a crash loop,
	# and give each request room for the attempts the kills cost it.
	CRASH_LIMIT=1000 MAX_ATTEMPTS=20 GLOBAL=12 EXECUTOR_CONCURRENCY=10 \
		limits_config "$TEST_DIR/llmq.yaml"
	llmqd_start "$TEST_DIR/llmq.yaml" 3
	psql_q "BEGIN; $(insert_sql executor simple 900 k)
		$(insert_sql planner '' 100 q) COMMIT"
	kills=0
	while ! all_final && [ $kills -lt 15 ]; do
		sleep 2
		victim=$(pgrep -P "$LLMQD_PID" -f 'llmqd: (executor|planner) worker' | shuf -n 1)
		[ -n "$victim" ] && kill -KILL "$victim" && kills=$((kills + 1))
	done
	echo "kills: $kills"
	[ $kills -ge 2 ]
	wait_until 60 all_final
	psql_q "SELECT status, error_kind, error_message, count(*) FROM llmq.requests GROUP BY 1, 2, 3"
	[ "$(req_count completed)" = 1000 ]
	[ "$(req_count processing)" = 0 ]
	# Every call the stand-in saw was one attempt of its row: calls per
	# row never exceed the row's attempts, and the extra calls come only
	# from rows that were in flight at a kill.
	sleep 0.5 # the stand-in's log is written every 100 ms
	awk '{print $3}' "$TEST_DIR/mock.log" | sort | uniq -c |
		awk '{print $2, $1}' | sort >"$TEST_DIR/calls"
	psql_q "SELECT messages->0->>'content', attempts FROM llmq.requests" |
		tr '|' ' ' | sort >"$TEST_DIR/attempts"
	[ "$(wc -l <"$TEST_DIR/calls")" -eq 1000 ]
	join "$TEST_DIR/calls" "$TEST_DIR/attempts" >"$TEST_DIR/joined"
	[ "$(wc -l <"$TEST_DIR/joined")" -eq 1000 ]
	refute grep -q . <(awk '$2 > $3' "$TEST_DIR/joined")
	extra=$(awk '{s += $2 - 1} END {print s}' "$TEST_DIR/joined")
	echo "extra calls: $extra"
	# At most what was in flight at each kill: 10 or 2 per kill.
	[ "$extra" -le $((kills * 10)) ]
	# No slot held once the run has drained.  A worker's look on its poll
	# timer holds one slot for the length of a claim, so a snapshot may
	# catch one; a leaked slot stays.
	wait_until 5 slots_free
	run status_inflight
	echo "$output"
	[ -n "$output" ]
}

@test "two daemons on one database: each request completed exactly once, the cluster cap held" {
	mock_reset
	curl -s -X POST -d '{"delay_ms":20}' "$MOCK_URL/_mock/config" >/dev/null
	: >"$TEST_DIR/mock.log"
	# heavy:8b: 1 at a time on each host by its own limit would be 2
	# together; a cluster cap of 1 keeps it to 1.  The per-host limit is
	# lifted so that only the cluster cap can bound it.
	LOG_LEVEL=debug HEAVY_CLUSTER=1 limits_config "$TEST_DIR/llmq.yaml"
	sed -i 's/concurrency: 1, cluster_concurrency/concurrency: 0, cluster_concurrency/' "$TEST_DIR/llmq.yaml"
	grep -q 'concurrency: 0, cluster_concurrency: 1' "$TEST_DIR/llmq.yaml"
	sed "s/llmqd\.\(pid\|log\)/second.\1/" "$TEST_DIR/llmq.yaml" >"$TEST_DIR/second.yaml"
	llmqd_start "$TEST_DIR/llmq.yaml" 3
	LLMQD_LOG="$TEST_DIR/second.log" llmqd_start "$TEST_DIR/second.yaml" 3
	psql_q "BEGIN; $(insert_sql executor simple 800 d)
		$(insert_sql executor complex 100 c)
		$(insert_sql planner '' 100 e) COMMIT"
	wait_until 90 all_final
	psql_q "SELECT status, error_kind, error_message, count(*) FROM llmq.requests GROUP BY 1, 2, 3"
	[ "$(req_count completed)" = 1000 ]
	sleep 0.5
	awk '{print $3}' "$TEST_DIR/mock.log" | sort | uniq -c >"$TEST_DIR/calls"
	[ "$(wc -l <"$TEST_DIR/calls")" -eq 1000 ]
	refute grep -qv '^ *1 ' "$TEST_DIR/calls"
	[ "$(psql_q "SELECT count(*) FROM llmq.requests WHERE attempts <> 1")" = 0 ]
	# Both daemons served.
	grep -q ": calling " "$TEST_DIR/llmqd.log"
	grep -q ": calling " "$TEST_DIR/second.log"
	echo "heavy max $(model_max 'heavy:8b'), global max $(mock_field max_inflight)"
	[ "$(model_max 'heavy:8b')" -eq 1 ]
	# Each host keeps its own global limit: together up to twice that.
	[ "$(mock_field max_inflight)" -le 12 ]
}

@test "an expired lease is rescued and the request served again" {
	llmqd_start "$TEST_DIR/llmq.yaml" 3
	# A row claimed by a host that vanished: its lease ran out.
	id=$(psql_q "INSERT INTO llmq.requests (role, messages, status,
		attempts, locked_by, lease_until, claimed_at)
		VALUES ('planner', '[{\"role\":\"user\",\"content\":\"orphan\"}]',
		'processing', 1, 'vanished-host:4242', now() - interval '1s',
		now() - interval '10s') RETURNING id")
	run wait_req "$id"
	[ "$status" -eq 0 ]
	[ "$output" = "echo: orphan" ]
	[ "$(psql_q "SELECT attempts FROM llmq.requests WHERE id = $id")" = 2 ]
	grep -q "rescued 1 request whose lease expired" "$TEST_DIR/llmqd.log"
}

@test "an expired lease with its attempts used up fails as internal" {
	llmqd_start "$TEST_DIR/llmq.yaml" 3
	id=$(psql_q "INSERT INTO llmq.requests (role, messages, status,
		attempts, max_attempts, locked_by, lease_until)
		VALUES ('planner', '[{\"role\":\"user\",\"content\":\"spent\"}]',
		'processing', 2, 2, 'vanished-host:4242', now() - interval '1s')
		RETURNING id")
	run wait_req "$id"
	[ "$status" -ne 0 ]
	[ "$(psql_q "SELECT status, error_kind FROM llmq.requests WHERE id = $id")" = "failed|internal" ]
}

@test "the fenced finish refuses a stale writer" {
	mock_reset
	llmqd_start "$TEST_DIR/llmq.yaml" 3
	id=$(submit -r planner -m "slow mock:delay=1500")
	wait_until 10 sql_is "SELECT status FROM llmq.requests WHERE id=$id" processing
	# As if the row had been rescued and claimed again elsewhere while
	# the first call was still running.
	psql_q "UPDATE llmq.requests SET locked_by = 'newer-host:1',
		attempts = attempts + 1 WHERE id = $id"
	wait_until 10 sh -c "[ \$(curl -s $MOCK_URL/_mock/stats | sed -n 's/.*\"by_status\":{\"200\":\([0-9]*\)}.*/\1/p') -ge 1 ]"
	sleep 0.5
	# The late result changed nothing.
	[ "$(psql_q "SELECT status, locked_by, response IS NULL FROM llmq.requests WHERE id = $id")" = "processing|newer-host:1|t" ]
	psql_q "UPDATE llmq.requests SET status = 'cancelled', locked_by = NULL WHERE id = $id"
}

@test "a request not claimed within max_queue_wait fails as overload" {
	mock_reset
	llmqd_start "$TEST_DIR/llmq.yaml" 3
	# Both planner slots taken for 3 s.
	busy=$(submit -r planner -n 2 -m "busy mock:delay=3000")
	wait_until 10 sql_is "SELECT count(*) FROM llmq.requests WHERE status='processing' AND role='planner'" 2
	late=$(psql_q "SELECT llmq.submit('planner', '[{\"role\":\"user\",\"content\":\"late\"}]', '{\"max_queue_wait\": \"300ms\"}')")
	patient=$(psql_q "SELECT llmq.submit('planner', '[{\"role\":\"user\",\"content\":\"patient\"}]', '{\"max_queue_wait\": 20000}')")
	run wait_req "$late"
	[ "$status" -ne 0 ]
	[ "$(psql_q "SELECT status, error_kind FROM llmq.requests WHERE id = $late")" = "failed|overload" ]
	# Failed well before the busy calls ended: it never reached a model.
	[ "$(psql_q "SELECT count(*) FROM llmq.requests WHERE id IN ($(echo $busy | tr ' ' ',')) AND status = 'processing'")" = 2 ]
	[ "$(psql_q "SELECT model_used IS NULL AND claimed_at IS NULL FROM llmq.requests WHERE id = $late")" = t ]
	run wait_req $busy "$patient"
	[ "$status" -eq 0 ]
	# Claimed in time: the deadline no longer applies.
	[ "$(psql_q "SELECT queue_deadline IS NULL FROM llmq.requests WHERE id = $patient")" = t ]
}

@test "a role's max_queue_wait is the default; a bad max_queue_wait is refused" {
	limits_config "$TEST_DIR/llmq.yaml" llmqd ""
	sed -i 's/^    model: "plan:4b"/    model: "plan:4b"\n    max_queue_wait: 45s/' "$TEST_DIR/llmq.yaml"
	llmqd_start "$TEST_DIR/llmq.yaml" 3
	id=$(psql_q "INSERT INTO llmq.requests (role, messages, run_after)
		VALUES ('planner', '[{\"role\":\"user\",\"content\":\"x\"}]',
		now() + interval '1 hour') RETURNING id")
	# Counted from run_after: 1 h + 45 s.
	[ "$(psql_q "SELECT extract(epoch FROM queue_deadline - run_after)::int FROM llmq.requests WHERE id = $id")" = 45 ]
	psql_q "DELETE FROM llmq.requests WHERE id = $id"
	run psql_q "SELECT llmq.submit('planner', '[{\"role\":\"user\",\"content\":\"x\"}]', '{\"max_queue_wait\": \"soon\"}')"
	[ "$status" -ne 0 ]
	[[ "$output" == *'option "max_queue_wait" must be a positive'* ]]
	[ "$(psql_q "SELECT count(*) FROM llmq.requests WHERE status = 'pending'")" = 0 ]
	limits_config "$TEST_DIR/llmq.yaml"
}

@test "SIGTERM hands back the calls that outlast shutdown_timeout" {
	mock_reset
	SHUTDOWN_TIMEOUT=1s limits_config "$TEST_DIR/llmq.yaml"
	llmqd_start "$TEST_DIR/llmq.yaml" 3
	ids=$(submit -r planner -n 2 -m "outlasting mock:delay=8000")
	wait_until 10 sql_is "SELECT count(*) FROM llmq.requests WHERE status='processing'" 2
	kill -TERM "$LLMQD_PID"
	wait_until 10 gone "$LLMQD_PID"
	grep -q "shutdown_timeout reached: handing back 2 requests" "$TEST_DIR/llmqd.log"
	refute grep -q "killing them" "$TEST_DIR/llmqd.log"
	# Back in the queue as if never claimed.
	[ "$(psql_q "SELECT count(*) FROM llmq.requests WHERE status = 'pending' AND attempts = 0 AND locked_by IS NULL")" = 2 ]
}

@test "a worker stuck past shutdown_timeout is killed and its rows handed back" {
	mock_reset
	SHUTDOWN_TIMEOUT=1s limits_config "$TEST_DIR/llmq.yaml"
	llmqd_start "$TEST_DIR/llmq.yaml" 3
	id=$(submit -r planner -m "stuck mock:delay=15000")
	wait_until 10 sql_is "SELECT status FROM llmq.requests WHERE id=$id" processing
	w=$(pgrep -P "$LLMQD_PID" -f 'llmqd: planner worker')
	kill -STOP "$w"
	kill -TERM "$LLMQD_PID"
	wait_until 20 gone "$LLMQD_PID"
	grep -q "killing them" "$TEST_DIR/llmqd.log"
	# No row stays processing after llmqd has exited.
	[ "$(psql_q "SELECT status FROM llmq.requests WHERE id = $id")" = pending ]
	psql_q "DELETE FROM llmq.requests WHERE id = $id"
}

@test "llmqctl status shows the scopes and children, and says when llmqd is not running" {
	mock_reset
	llmqd_start "$TEST_DIR/llmq.yaml" 3
	ids=$(submit -r planner -n 3 -m "held mock:delay=1500")
	wait_until 10 sql_is "SELECT count(*) FROM llmq.requests WHERE status='processing'" 2
	run status_inflight
	echo "$output"
	grep -qx 'global global 2' <<<"$output"
	grep -qx 'role planner 2' <<<"$output"
	grep -qx 'model plan:4b 2' <<<"$output"
	grep -qx 'role executor 0' <<<"$output"
	run "$LLMQCTL" -c "$TEST_DIR/llmq.yaml" status
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"llmqd is running"* ]]
	run wait_req $ids
	[ "$status" -eq 0 ]
	llmqd_stop
	run "$LLMQCTL" -c "$TEST_DIR/llmq.yaml" status
	echo "$output"
	[ "$status" -eq 3 ]
	[[ "$output" == *"llmqd is not running"* ]]
}
