#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The README's first command: installs the dependencies, builds, then runs
# two example filters and drives a message through each with
# milter-test-server, the built-in MTA emulator.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/_build"

"$top/build-aux/install-deps.sh"
[ -f "$build/build.ninja" ] || meson setup "$build" "$top"
ninja -C "$build"

work=$(mktemp -d)
pids=""
cleanup () {
  for pid in $pids; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

start_filter () {
  socket="$work/$1.sock"
  shift
  "$@" -s "unix:$socket" &
  pids="$pids $!"
  i=0
  while [ ! -S "$socket" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
}

start_filter add-header "$build/milter-client/examples/add-header"
start_filter reject "$build/milter-client/examples/reject-pattern" --pattern '(?i)lottery'

echo
echo "== 1. add-header: a filter that adds a header to every message"
echo "   milter-test-server --mail-file demo-message.eml --output-message"
echo
"$build/tools/milter-test-server" -s "unix:$work/add-header.sock" \
  -f '<alice@example.org>' -r '<bob@example.net>' \
  --mail-file "$top/build-aux/demo-message.eml" --output-message

echo
echo "== 2. reject-pattern: a filter that rejects messages matching a pattern"
echo "   milter-test-server --header 'Subject:You won the lottery!'"
echo
status=0
"$build/tools/milter-test-server" -s "unix:$work/reject.sock" \
  --header 'Subject:You won the lottery!' --body 'Claim your prize now.' || status=$?
echo "(exit status $status: 2 means rejected)"

cat <<MSG

== Next steps
Run a filter for a real MTA, for example:
  $build/milter-client/examples/add-header -s unix:/run/milter/add-header.sock \\
      --unix-socket-group postfix --user nobody

Postfix (main.cf):
  smtpd_milters = unix:/run/milter/add-header.sock    # or inet:127.0.0.1:10025
  non_smtpd_milters = \$smtpd_milters
  milter_default_action = tempfail

Sendmail (sendmail.mc):
  INPUT_MAIL_FILTER(\`add-header', \`S=unix:/run/milter/add-header.sock, F=T, T=S:10s;R:10s;E:5m')

See what an MTA sends with milter-test-client (prints every event):
  $build/milter-client/milter-test-client -s inet:10025@127.0.0.1
MSG
