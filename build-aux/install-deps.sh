#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs what building, testing and the demo need, from Debian 12's
# packages. Idempotent; needs root. Set MILTER_SKIP_DEPS=1 to skip.
set -eu

[ "${MILTER_SKIP_DEPS:-0}" = 1 ] && exit 0

packages="
  build-essential pkg-config meson ninja-build
  libglib2.0-dev libglib2.0-doc gobject-introspection libgirepository1.0-dev
  gtk-doc-tools python3-gi ruby-gobject-introspection ruby-gio2
  valgrind clang libclang-rt-14-dev
  libmilter-dev miltertest swaks postfix procps
  pandoc help2man
"

missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing packages:$missing (run as root, or install them)" >&2
  exit 1
fi

# Postfix must not ask questions nor set up a mail system on this machine:
# the tests run their own private instance.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
