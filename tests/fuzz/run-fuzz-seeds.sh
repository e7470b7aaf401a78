#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Writes the seed corpora and checks each target got some.
set -eu
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$1" "$dir"
for target in fuzz-decoder fuzz-client-context fuzz-server-context fuzz-parsers; do
  test "$(ls "$dir/$target" | wc -l)" -ge 2
done
