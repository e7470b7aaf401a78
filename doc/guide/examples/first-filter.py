#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# guide-check: filter => result["status"] == "pass" and headers == [("X-Filtered", "yes")]
# guide-check: refuses --usr=nobody => first-filter: unknown argument --usr=nobody
"""first-filter.py: adds "X-Filtered: yes" to every message."""

import sys

import gi

gi.require_version("Milter", "1.0")
from gi.repository import GLib, Milter  # noqa: E402


def on_end_of_message(context, chunk):
    # Modifications are only allowed at end-of-message.
    context.add_header("X-Filtered", "yes")
    return Milter.Status.CONTINUE


def on_connection_established(client, context):
    # One context per MTA connection: connect its handlers here.
    context.connect("end-of-message-bytes", on_end_of_message)


client = Milter.Client.new()
client.connect("connection-established", on_connection_established)
try:
    rest = client.parse_command_line(sys.argv)  # -s SPEC, --timeout, --user…
    if rest[1:]:
        sys.exit("first-filter: unknown argument " + rest[1])
    client.run()
except GLib.Error as error:
    sys.exit("first-filter: " + error.message)
