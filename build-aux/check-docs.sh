#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Builds the gtk-doc reference and fails on any warning or undocumented
# symbol. Prints "N passed, M failed".
#
#   build-aux/check-docs.sh [BUILD_DIR]
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-"$top/_build-doc"}

if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$top" -Dgtk_doc=true >/dev/null || exit 1
fi
log=$(mktemp)
ninja -C "$build" milter-glib-doc > "$log" 2>&1
status=$?
undocumented="$build/doc/reference/milter-glib-undocumented.txt"
failed=0
# gtk-doc's complaints; not meson's own output (its -Werror=… flags).
problems=$(grep -E "[Ww]arning[: ]|[Ee]rror:|WARNING|ERROR" "$log" | grep -vE "Compiler for C supports|werror")
if [ $status != 0 ] || [ -n "$problems" ]; then
  printf '%s\n' "$problems"
  failed=1
fi
if [ ! -f "$undocumented" ] || ! grep -q "^0 not documented" "$undocumented"; then
  cat "$undocumented" 2>/dev/null
  failed=1
fi
rm -f "$log"
if [ $failed = 0 ]; then
  echo "docs: $(head -n 1 "$undocumented"), no warnings"
  echo "1 passed, 0 failed"
else
  echo "0 passed, 1 failed"
fi
exit $failed
