#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Replays a fuzz target over the seed corpus (and every prefix of each seed).
set -eu
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$1" "$dir"
"$2" "$dir"/*
