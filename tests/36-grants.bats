#!/usr/bin/env bats
# 36-grants.bats: llmqd and a client work with the privileges llmq(7)
# lists and no more: llmqd connects as "llmqd_db", the client as
# "app_db", neither a superuser nor the owner of the schema.  The GRANT
# statements are those of llmq(7), THE SCHEMA.

load helpers

setup_file() {
	common_setup_file
	llmq_migrate
	psql -X -q -v ON_ERROR_STOP=1 -d "$DBCONN" <<'EOS'
CREATE ROLE llmqd_db LOGIN;
CREATE ROLE app_db LOGIN;
GRANT USAGE ON SCHEMA llmq TO llmqd_db, app_db;
GRANT SELECT, UPDATE, DELETE ON llmq.requests TO llmqd_db;
GRANT SELECT, INSERT, UPDATE ON llmq.roles TO llmqd_db;
GRANT SELECT, INSERT ON llmq.attempts TO llmqd_db;
GRANT SELECT, INSERT, DELETE ON llmq.partials TO llmqd_db;
GRANT SELECT, INSERT, UPDATE, DELETE ON llmq.cache TO llmqd_db;
GRANT SELECT, INSERT, UPDATE ON llmq.requests TO app_db;
GRANT SELECT ON llmq.roles, llmq.cache, llmq.partials,
    llmq.partial_text TO app_db;
EOS
	sed -i "s#^database: .*#database: \"host=$PGDIR user=llmqd_db dbname=postgres\"#" \
		"$TEST_DIR/llmq.yaml"
	echo "  cached: { concurrency: 2, model: \"gpt-test\", cache: 1h, stream: true }" \
		>>"$TEST_DIR/llmq.yaml"
	llmqd_start "$TEST_DIR/llmq.yaml" 3
	APP="host=$PGDIR user=app_db dbname=postgres"
	export APP
}

teardown_file() {
	common_teardown_file
}

app_submit() {
	"$LLMQCTL" -d "$APP" submit "$@"
}

@test "a request goes through with the listed privileges only" {
	id=$(app_submit -r planner -m "least privilege")
	run "$LLMQCTL" -d "$APP" wait --timeout 20s "$id"
	[ "$status" -eq 0 ]
	[ "$output" = "echo: least privilege" ]
	[ "$(field "$id" "status || ' ' || attempts")" = "completed 1" ]
	[ "$(psql_q "SELECT count(*) FROM llmq.attempts WHERE request_id = $id")" = 1 ]
}

@test "a retry, a stream followed, and a cache hit too" {
	r=$(app_submit -r planner -m "again mock:fail=1 mock:status=503")
	s=$(app_submit -r cached -m "stream it mock:gap=100")
	run "$LLMQCTL" -d "$APP" wait --follow --timeout 20s "$s"
	[ "$status" -eq 0 ]
	[ "$output" = "echo: stream it mock:gap=100" ]
	[ "$(field "$s" "first_token_at IS NOT NULL")" = t ]
	h=$(app_submit -r cached -m "stream it mock:gap=100")
	[ "$(field "$h" cache_hit)" = t ]
	run "$LLMQCTL" -d "$APP" wait --timeout 20s "$r"
	[ "$status" -eq 0 ]
	[ "$(field "$r" attempts)" = 2 ]
	# The workers registered their roles and nothing failed for want of
	# a privilege.
	! grep -i 'permission denied' "$TEST_DIR/llmqd.log"
}

@test "the consumer sweeps and purges with the listed privileges" {
	psql_q "UPDATE llmq.cache SET expires_at = now() - interval '1 s'"
	wait_until 10 sql_is "SELECT count(*) FROM llmq.cache" 0
	! grep -i 'permission denied' "$TEST_DIR/llmqd.log"
}
