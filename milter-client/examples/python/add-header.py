#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""add-header: the smallest useful milter. It adds one header to every
message. Run it, then point the MTA at it:

  add-header.py -s unix:/run/add-header.sock
  # Postfix main.cf:  smtpd_milters = unix:/run/add-header.sock
"""

import argparse
import sys

import gi

gi.require_version("Milter", "1.0")
from gi.repository import GLib, Milter  # noqa: E402


def on_end_of_message(context, chunk):
    # Modifications are only allowed here, at end-of-message.
    context.add_header("X-Milter-Glib", "add-header example")
    return Milter.Status.CONTINUE


def on_connection_established(client, context):
    # Only end-of-message has a handler, so the MTA is asked to leave out
    # every other event: no round trips for headers, body chunks…
    context.connect("end-of-message-bytes", on_end_of_message)


def main():
    client = Milter.Client.new()
    try:
        # The options every filter has (-s/--connection-spec, --timeout,
        # --user, --daemon…; --help lists them). Without -s: systemd's
        # sockets, or inet:10025@127.0.0.1. The rest of argv stays.
        argv = client.parse_command_line(sys.argv)
    except GLib.Error as error:
        print("add-header:", error.message, file=sys.stderr)
        sys.exit(2)  # a usage error
    parser = argparse.ArgumentParser(description="Add a header to every message.")
    parser.parse_args(argv[1:])  # this example has no option of its own

    client.connect("connection-established", on_connection_established)
    try:
        client.run()  # until SIGTERM or SIGINT
    except GLib.Error as error:
        sys.exit("add-header: " + error.message)

if __name__ == "__main__":
    main()
