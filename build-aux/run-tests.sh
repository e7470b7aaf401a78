#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The test command of the README and of CI: installs the dependencies,
# builds with warnings as errors, runs the whole test suite, and prints
# "N passed, M failed".
#
#   build-aux/run-tests.sh [BUILD_DIR] [extra meson setup options...]
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-"$top/_build"}
[ $# -gt 0 ] && shift

"$top/build-aux/install-deps.sh"

if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$top" -Dwerror=true "$@"
fi
ninja -C "$build"

status=0
meson test -C "$build" --print-errorlogs ${MILTER_TEST_ARGS:-} || status=$?
# A test setup (--setup NAME) writes testlog-NAME.json: take the newest log.
"$top/build-aux/test-summary.py" "$(ls -t "$build"/meson-logs/testlog*.json | head -n 1)"
exit $status
