#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# guide-check: filter -h "Subject: hello" -h "X-Internal-Route: a" -h "To: b@example.org" -h "X-Internal-Route: c" --output-message => result["message"]["data"].startswith("Subject: [EXTERNAL] hello\r\nTo: b@example.org\r\nX-Origin: external\r\n\r\n") and [m["type"] for m in result["modifications"]] == ["change-header", "delete-header", "delete-header", "add-header", "add-recipient"]
# guide-check: filter -h "Subject: [EXTERNAL] hi" --output-message => [m["type"] for m in result["modifications"]] == ["add-header", "add-recipient"] and result["message"]["recipients"][-1] == {"address": "<archive@example.com>", "parameters": ["NOTIFY=NEVER"]}
"""modify-tag.py: marks mail from outside. It tags the Subject, adds a
header, removes the X-Internal-Route headers that outsiders must not set,
and sends a blind copy of every message to an archive."""

import sys

import gi

gi.require_version("Milter", "1.0")
from gi.repository import GLib, Milter  # noqa: E402

TAG = "[EXTERNAL] "
ARCHIVE = "<archive@example.com>"


class Connection:
    """The state of one MTA connection; its methods are the handlers."""

    def __init__(self):
        self.subject = None
        self.n_routes = 0

    def on_envelope_from(self, context, sender):
        # A new message: forget the last one.
        self.subject = None
        self.n_routes = 0
        return Milter.Status.CONTINUE

    def on_header(self, context, name, value):
        if name.lower() == "subject" and self.subject is None:
            self.subject = value
        elif name.lower() == "x-internal-route":
            self.n_routes += 1
        return Milter.Status.CONTINUE

    def on_end_of_message(self, context, chunk):
        try:
            # The first Subject is number 1 of its name.
            if self.subject is not None and not self.subject.startswith(TAG):
                context.change_header("Subject", 1, TAG + self.subject)
            # From the last one: Postfix renumbers the headers after a
            # deleted one.
            for index in range(self.n_routes, 0, -1):
                context.delete_header("X-Internal-Route", index)
            context.add_header("X-Origin", "external")
            # No delivery notices for the archive's copy.
            context.add_recipient(ARCHIVE, "NOTIFY=NEVER")
        except GLib.Error as error:
            # Not without its archive copy: the MTA keeps the message and
            # tries again later.
            print("Cannot modify the message:", error.message, file=sys.stderr)
            return Milter.Status.TEMPORARY_FAILURE
        return Milter.Status.CONTINUE


def on_connection_established(client, context):
    connection = Connection()
    context.connect("envelope-from", connection.on_envelope_from)
    context.connect("header", connection.on_header)
    context.connect("end-of-message-bytes", connection.on_end_of_message)


client = Milter.Client.new()
client.connect("connection-established", on_connection_established)
try:
    rest = client.parse_command_line(sys.argv)
    if rest[1:]:
        sys.exit("modify-tag: unknown argument " + rest[1])
    client.run()
except GLib.Error as error:
    sys.exit("modify-tag: " + error.message)
