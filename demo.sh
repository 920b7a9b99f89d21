#!/bin/bash
# demo.sh: see llmq work, from nothing, in one command.
#
# Installs what is missing, builds, starts a private PostgreSQL and an LLM
# (a real Ollama if one answers on 127.0.0.1:11434, else llmq's stand-in,
# tests/mockllm, with a little latency), starts llmqd on them, submits a
# planner request (an outline, streamed and printed as it comes) and
# executor requests (its modules, then one again, from the cache), and
# prints results, timings and a summary.  Everything it started is
# stopped when it ends, however it ends.
set -e
src=$(cd "$(dirname "$0")" && pwd)
"$src/build-aux/install-deps"
"$src/build-aux/build" "$src/build"

export LLMQ_SRCDIR="$src" LLMQ_BUILDDIR="$src/build"
# shellcheck source=tests/helpers.bash
. "$src/tests/helpers.bash"

cleanup() {
	common_teardown_file >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== starting a private PostgreSQL"
pg_start

ollama_model=
if tags=$(curl -s -m 2 http://127.0.0.1:11434/api/tags 2>/dev/null); then
	ollama_model=$(printf '%s' "$tags" |
		sed -n 's/^[^[]*\[[^]]*"name":"\([^"]*\)".*/\1/p' | head -1)
fi
if [ -n "$ollama_model" ]; then
	echo "== using the Ollama on 127.0.0.1:11434, model \"$ollama_model\""
	MOCK_URL=http://127.0.0.1:11434
	small=$ollama_model big=$ollama_model
else
	echo "== no Ollama on 127.0.0.1:11434: using the LLM stand-in (150-450 ms per call)"
	mock_start -d 150 -j 300
	# A streamed reply comes in 12 pieces 80 ms apart, as a model writes.
	curl -s -d '{"gap_ms": 80, "pieces": 12}' "$MOCK_URL/_mock/config" >/dev/null
	small="qwen2:1.5b" big="qwen3:8b"
fi

cat >"$TEST_DIR/llmq.yaml" <<EOC
database: "$DBCONN"
pidfile: $TEST_DIR/llmqd.pid
log: $TEST_DIR/llmqd.log
providers:
  local:
    kind: ollama
    url: $MOCK_URL
    timeout: 120s
models:
  "$small": { provider: local }
  "$big": { provider: local }  # big
roles:
  planner:
    concurrency: 2
    model: "$big"
    stream: true
  executor:
    concurrency: 5
    cache: 10m
    model:
      simple: "$small"
      medium: "$small"
      complex: "$big"
EOC
# Both names may be the same model with Ollama: keep the file valid.
if [ "$small" = "$big" ]; then
	sed -i '/# big$/d' "$TEST_DIR/llmq.yaml"
fi

echo "== llmqctl migrate"
"$LLMQCTL" -c "$TEST_DIR/llmq.yaml" migrate
echo "== starting llmqd"
llmqd_start
pgrep -a -P "$LLMQD_PID" | sed 's/^/   /'
echo "   master $LLMQD_PID: $(ps -o args= -p "$LLMQD_PID")"

ctl() { "$LLMQCTL" -c "$TEST_DIR/llmq.yaml" "$@"; }

echo "== the planner drafts an outline, streamed: wait --follow prints it as it comes"
plan=$(ctl submit -r planner -s "You are a software architect. Be brief." \
	-m "Outline a command-line todo application in C: name three modules, one line each.")
ctl wait --follow --timeout 300s "$plan" | sed 's/^/   /'

echo "== the executors write the modules, in parallel"
ids=
for m in "simple:storage.c: load and save the todo list as a text file" \
	"medium:cli.c: parse the command line (add, list, done)" \
	"complex:main.c: wire storage and cli together, with error handling"; do
	cx=${m%%:*}
	ids="$ids $(ctl submit -r executor --complexity "$cx" -m "Write ${m#*:}")"
done
# shellcheck disable=SC2086
ctl wait --timeout 300s $ids | sed 's/^/   /'

echo "== the same storage.c request again: the executor role caches, so the"
echo "   INSERT itself answers it (cache_hit), without calling the model"
again=$(ctl submit -r executor --complexity simple \
	-m "Write storage.c: load and save the todo list as a text file")
ctl wait --timeout 10s "$again" >/dev/null
psql -X -q -d "$DBCONN" -P footer=off -c "SELECT id, status, cache_hit, model_used,
       round(extract(epoch FROM finished_at - created_at) * 1000, 1) AS total_ms
  FROM llmq.requests WHERE id = $again"

echo "== requests and their timings (ms)"
psql -X -q -d "$DBCONN" -P footer=off <<'SQL'
SELECT id, role, status, model_used AS model, attempts,
       round(extract(epoch FROM claimed_at - created_at) * 1000, 1) AS queue_ms,
       round(extract(epoch FROM first_token_at - claimed_at) * 1000, 1) AS first_token_ms,
       round(extract(epoch FROM finished_at - claimed_at) * 1000, 1) AS model_ms,
       round(extract(epoch FROM finished_at - created_at) * 1000, 1) AS total_ms,
       prompt_tokens AS p_tok, completion_tokens AS c_tok
  FROM llmq.requests ORDER BY id;
SQL

echo "== a burst: 40 executor requests at once (concurrency 5)"
burst=$(ctl submit -r executor --complexity simple -n 40 -m "Write a unit test")
sleep 0.5
echo "== llmqctl status, in the middle of the burst"
ctl status | sed 's/^/   /'
# shellcheck disable=SC2086
ctl wait --timeout 300s $burst >/dev/null

echo "== summary"
psql -X -q -d "$DBCONN" -P footer=off <<'SQL'
SELECT role, count(*) AS requests,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       round(100.0 * count(*) FILTER (WHERE status = 'completed') / count(*), 1)
           AS success_pct,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY
           extract(epoch FROM claimed_at - created_at)) * 1000)::numeric, 1)
           AS queue_p50_ms,
       round((percentile_cont(0.95) WITHIN GROUP (ORDER BY
           extract(epoch FROM finished_at - claimed_at)) * 1000)::numeric, 1)
           AS model_p95_ms,
       round((max(extract(epoch FROM finished_at - created_at)) * 1000)::numeric, 1)
           AS total_max_ms
  FROM llmq.requests GROUP BY role ORDER BY role;
SQL
if [ -z "$ollama_model" ]; then
	echo "   most calls the stand-in saw at once: $(mock_field max_inflight)" \
		"(planner 2 + executor 5 allowed)"
fi
echo "== stopping llmqd, PostgreSQL and the stand-in"
llmqd_stop
echo "   done; the log was $TEST_DIR/llmqd.log (removed with the rest)"
