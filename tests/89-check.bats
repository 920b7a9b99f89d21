#!/usr/bin/env bats
# 89-check.bats: llmqctl check, the configuration as llmqd -t checks it
# (secrets included) and the database: reachable, migrated, the roles
# registered.

load helpers

setup_file() {
	common_setup_file
}

teardown_file() {
	common_teardown_file
}

check() {
	"$LLMQCTL" -c "$TEST_DIR/llmq.yaml" check "$@"
}

@test "before migrate: the schema is not there; after: all is well" {
	run check
	echo "$output"
	[ "$status" -eq 1 ]
	grep -q '^configuration .*llmq.yaml: ok (2 providers, 3 models, 2 roles)$' <<<"$output"
	grep -q '^database: ok (PostgreSQL [0-9]*\.[0-9]*)$' <<<"$output"
	grep -q '^schema: not migrated (run llmqctl migrate)$' <<<"$output"
	llmq_migrate >/dev/null
	run check
	echo "$output"
	[ "$status" -eq 0 ]
	grep -q '^schema: up to date ([0-9]* migrations)$' <<<"$output"
	grep -q '^role planner: registered$' <<<"$output"
	grep -q '^role executor: registered$' <<<"$output"
}

@test "a role the database does not know yet is reported" {
	write_config "$TEST_DIR/more.yaml" "  newrole: { model: \"small:1b\" }"
	run "$LLMQCTL" -c "$TEST_DIR/more.yaml" check
	[ "$status" -eq 1 ]
	grep -q '^role newrole: not registered' <<<"$output"
}

@test "a bad configuration fails with its message; --no-db skips the database" {
	write_config "$TEST_DIR/bad.yaml" "  broken: { concurency: 2 }"
	run "$LLMQCTL" -c "$TEST_DIR/bad.yaml" check --no-db
	[ "$status" -eq 1 ]
	grep -q 'configuration .*bad.yaml: failed' <<<"$output"
	grep -q 'roles.broken.concurency: unknown key' <<<"$output"
	write_config "$TEST_DIR/user.yaml" "user: no_such_user_llmq"
	run "$LLMQCTL" -c "$TEST_DIR/user.yaml" check --no-db
	[ "$status" -eq 1 ]
	grep -q '^user no_such_user_llmq: unknown$' <<<"$output"
	[ "$(grep -c '^database' <<<"$output")" = 0 ]
}

@test "a key file others may read is refused, as llmqd refuses it" {
	printf 'sk-test\n' >"$TEST_DIR/key"
	chmod 644 "$TEST_DIR/key"
	write_config "$TEST_DIR/key.yaml"
	sed -i "s#^  cloud:#  cloud:\n    api_key_file: $TEST_DIR/key#" "$TEST_DIR/key.yaml"
	run "$LLMQCTL" -c "$TEST_DIR/key.yaml" check --no-db
	echo "$output"
	[ "$status" -eq 1 ]
	grep -q 'api_key_file' <<<"$output"
	chmod 600 "$TEST_DIR/key"
	run "$LLMQCTL" -c "$TEST_DIR/key.yaml" check --no-db
	[ "$status" -eq 0 ]
}
