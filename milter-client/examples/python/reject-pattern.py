#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# guide-check: run --help
# guide-filter-args: --pattern (?i)lottery
# guide-check: filter -h "Subject: You won the LOTTERY" => result["status"] == "reject" and result["reply"] == "550 5.7.1 Message rejected: it matches a blocked pattern"
# guide-check: filter -h "Subject: hello" -b "nothing to see" => result["status"] == "pass"
# guide-check: filter -h "Subject: hello" -b "claim your lottery prize" => result["status"] == "reject"
"""reject-pattern: rejects messages whose Subject or body matches a
regular expression, with a custom SMTP reply.

  reject-pattern.py -s unix:/run/reject.sock --pattern '(?i)lottery|viagra'
"""

import argparse
import re
import sys

import gi

gi.require_version("Milter", "1.0")
from gi.repository import GLib, Milter  # noqa: E402

# The body kept per message is capped: the pattern is looked for in the
# first MAX_BODY bytes only.
MAX_BODY = 1024 * 1024


class Connection:
    """The state of one MTA connection; its methods are the handlers."""

    def __init__(self, pattern):
        self.pattern = pattern
        self.body = bytearray()
        self.matched = False

    def on_envelope_from(self, context, sender):
        # A new message.
        self.body = bytearray()
        self.matched = False
        return Milter.Status.CONTINUE

    def on_header(self, context, name, value):
        # Header values need not be UTF-8: match the bytes the MTA sent.
        raw = value.encode("utf-8", "surrogateescape")
        if name.lower() == "subject" and self.pattern.search(raw):
            self.matched = True
        return Milter.Status.CONTINUE

    def on_body(self, context, chunk):
        self.body += chunk.get_data()[:MAX_BODY - len(self.body)]
        # Nothing more to learn: ask the MTA to skip the rest of the body.
        return Milter.Status.SKIP if len(self.body) >= MAX_BODY else Milter.Status.CONTINUE

    def on_end_of_message(self, context, chunk):
        if not (self.matched or self.pattern.search(self.body)):
            return Milter.Status.CONTINUE
        # Used by the REJECT below (its class matches).
        context.set_reply(550, "5.7.1", "Message rejected: it matches a blocked pattern")
        return Milter.Status.REJECT


def main():
    client = Milter.Client.new()
    try:
        # The options every filter has (-s, --timeout, --user…); the
        # program's own ones stay in argv.
        argv = client.parse_command_line(sys.argv)
    except GLib.Error as error:
        print("reject-pattern:", error.message, file=sys.stderr)
        sys.exit(2)  # a usage error
    parser = argparse.ArgumentParser(description="Reject messages matching a pattern.")
    parser.add_argument("-p", "--pattern", required=True, metavar="REGEX",
                        help="a regular expression looked for in the Subject and the body")
    args = parser.parse_args(argv[1:])
    try:
        # Bytes: the body and the headers are not necessarily UTF-8.
        pattern = re.compile(args.pattern.encode("utf-8", "surrogateescape"), re.MULTILINE)
    except re.error as error:
        parser.error("--pattern: %s" % error)

    def on_connection_established(client, context):
        connection = Connection(pattern)
        context.connect("envelope-from", connection.on_envelope_from)
        context.connect("header", connection.on_header)
        context.connect("body-bytes", connection.on_body)
        context.connect("end-of-message-bytes", connection.on_end_of_message)

    client.connect("connection-established", on_connection_established)
    try:
        client.run()
    except GLib.Error as error:
        sys.exit("reject-pattern: " + error.message)

if __name__ == "__main__":
    main()
