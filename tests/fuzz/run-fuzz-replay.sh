#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Replays a fuzz target over its seed corpus (and every prefix of each seed).
#   run-fuzz-replay.sh FUZZ_SEEDS TARGET_REPLAY TARGET_NAME
set -eu
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$1" "$dir"
"$2" "$dir/$3"/*
