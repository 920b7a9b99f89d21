#!/bin/sh
# check.sh [--sanitizers] [BATS_FILE...]: install what is missing, build
# with warnings as errors (and with ASan+UBSan given --sanitizers), run
# the whole test suite.  The last line is "N passed, N failed".
set -e
src=$(cd "$(dirname "$0")" && pwd)
"$src/build-aux/install-deps"
dir=build
san=
if [ "$1" = "--sanitizers" ]; then
	dir=build-san
	san=--sanitizers
	shift
fi
"$src/build-aux/build" $san "$src/$dir"
set +e
LLMQ_BUILDDIR="$src/$dir" LLMQ_SRCDIR="$src" "$src/tests/run" "$@"
