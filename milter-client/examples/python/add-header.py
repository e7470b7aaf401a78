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
    parser = argparse.ArgumentParser(description="Add a header to every message.")
    parser.add_argument("-s", "--connection-spec", action="append", default=[], metavar="SPEC",
                        help="where to listen: unix:PATH, inet:PORT[@HOST] or inet6:PORT[@HOST]")
    args = parser.parse_args()

    client = Milter.Client.new()
    try:
        # Without a spec: systemd's sockets, or inet:10025@127.0.0.1.
        for spec in args.connection_spec:
            client.add_connection_spec(spec)
    except GLib.Error as error:
        parser.error(error.message)
    client.connect("connection-established", on_connection_established)
    try:
        client.run()  # until SIGTERM or SIGINT
    except GLib.Error as error:
        sys.exit("add-header: " + error.message)


if __name__ == "__main__":
    main()
