#!/usr/bin/env bats
# 40-install.bats: make install puts every file in place, with the
# installation's paths in the init scripts, and never overwrites an
# operator's configuration.

load helpers

setup_file() {
	TEST_DIR=$(mktemp -d /tmp/llmq-test.XXXXXX)
	export TEST_DIR
	DEST="$TEST_DIR/root"
	export DEST
	make -s -C "$LLMQ_BUILDDIR" install DESTDIR="$DEST" >"$TEST_DIR/install.log" 2>&1
	# Where the build installs, as configured.
	prefix=$(sed -n 's/^prefix = //p' "$LLMQ_BUILDDIR/Makefile")
	sysconfdir=$(make -s -C "$LLMQ_BUILDDIR" --no-print-directory -f Makefile -f - print-sysconfdir <<'EOM'
print-sysconfdir:
	@echo $(sysconfdir)
EOM
)
	export prefix sysconfdir
}

teardown_file() {
	rm -rf "$TEST_DIR"
}

@test "make install installs the programs, man pages, migrations and init scripts" {
	[ -x "$DEST$prefix/sbin/llmqd" ]
	[ -x "$DEST$prefix/bin/llmqctl" ]
	for m in man1/llmqctl.1 man5/llmq.yaml.5 man7/llmq.7 man8/llmqd.8; do
		[ -s "$DEST$prefix/share/man/$m" ]
	done
	[ -s "$DEST$prefix/share/llmq/migrations/001_init.sql" ]
	[ -x "$DEST$prefix/share/llmq/init/llmqd" ]
	grep -q "^DAEMON=$prefix/sbin/llmqd\$" "$DEST$prefix/share/llmq/init/llmqd"
	grep -q "ExecStart=$prefix/sbin/llmqd -f -c $sysconfdir/llmq.yaml" \
		"$DEST$prefix/share/llmq/init/llmqd.service"
	refute grep -q '@[a-z]*dir@' "$DEST$prefix/share/llmq/init/llmqd" \
		"$DEST$prefix/share/llmq/init/llmqd.service"
	"$DEST$prefix/sbin/llmqd" -V
	"$DEST$prefix/sbin/llmqd" -t -c "$DEST$sysconfdir/llmq.yaml.sample"
}

@test "the sample becomes llmq.yaml only when there is none" {
	cmp "$DEST$sysconfdir/llmq.yaml" "$DEST$sysconfdir/llmq.yaml.sample"
	echo "# edited by the operator" >>"$DEST$sysconfdir/llmq.yaml"
	make -s -C "$LLMQ_BUILDDIR" install DESTDIR="$DEST" >/dev/null 2>&1
	grep -q "edited by the operator" "$DEST$sysconfdir/llmq.yaml"
	# Uninstall keeps an edited configuration too.
	make -s -C "$LLMQ_BUILDDIR" uninstall DESTDIR="$DEST" >/dev/null 2>&1
	grep -q "edited by the operator" "$DEST$sysconfdir/llmq.yaml"
	[ ! -e "$DEST$prefix/sbin/llmqd" ]
}
