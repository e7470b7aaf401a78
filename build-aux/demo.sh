#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The README's first command: installs the dependencies, builds, and runs
# a short self-check of the core library.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/_build"

"$top/build-aux/install-deps.sh"
[ -f "$build/build.ninja" ] || meson setup "$build" "$top"
ninja -C "$build"
meson test -C "$build" --suite unit
