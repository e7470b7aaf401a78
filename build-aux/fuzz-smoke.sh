#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Builds the libFuzzer targets with clang and ASan/UBSan and runs each
# from the seed corpus for a bounded time. Any crash, leak or timeout
# fails. Prints "N passed, M failed".
#
#   build-aux/fuzz-smoke.sh [SECONDS_PER_TARGET] [BUILD_DIR]
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
build=${2:-"$top/_build-fuzz"}

if [ ! -f "$build/build.ninja" ]; then
  CC=clang meson setup "$build" "$top" -Dfuzzing=true -Db_sanitize=address,undefined \
    -Db_lundef=false -Dintrospection=disabled -Dman=disabled >/dev/null || exit 1
fi
ninja -C "$build" >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
build=$(cd "$build" && pwd)
# Undefined behaviour stops a run like a crash does.
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

passed=0
failed=0
for target in "$build"/tests/fuzz/fuzz-*; do
  [ -f "$target" ] && [ -x "$target" ] || continue
  name=$(basename "$target")
  [ "$name" = fuzz-seeds ] && continue
  seeds=$(mktemp -d)
  "$build/tests/fuzz/fuzz-seeds" "$seeds"
  corpus="$seeds/$name"
  if (cd "$seeds" && "$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 "$corpus" > "$seeds/log" 2>&1); then
    echo "fuzz: $name ok ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$seeds/log" | grep -o '[0-9]*$') runs)"
    passed=$((passed + 1))
  else
    echo "fuzz: $name FAILED"
    tail -n 40 "$seeds/log"
    failed=$((failed + 1))
  fi
  rm -rf "$seeds"
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
