#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Writes the seed corpus and checks it is not empty.
set -eu
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$1" "$dir"
test "$(ls "$dir" | wc -l)" -ge 4
