#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Runs miltertest.lua against milter-test-client in a temporary directory.
# miltertest stops the filters it started only when the script succeeds:
# whatever is left is stopped here, so no process outlives the test.
set -u
dir=$(mktemp -d)
MILTER_TEST_CLIENT=$1 MILTER_TEST_DIR=$dir miltertest -s "$2" > "$dir/log" 2>&1
status=$?
cat "$dir/log"
pkill -f -- "-s unix:$dir/" 2>/dev/null
rm -rf "$dir"
exit $status
