#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# guide-check: filter => result["status"] == "pass" and result["modifications"] == []
# guide-check: filter -f "<>" -r a@example.org -r b@example.org => result["exit"] == 0
"""deploy-reload.py: logs one line per message and reopens its log file on
SIGHUP, so that logrotate can move the file away."""

import argparse
import sys

import gi

gi.require_version("Milter", "1.0")
from gi.repository import GLib, Milter  # noqa: E402


class MessageLog:
    """Appends lines to a file (or standard output); reopen() starts a
    new file after the old one was renamed."""

    def __init__(self, path):
        self.path = path
        self.file = None
        self.reopen()

    def reopen(self):
        if self.path is None:
            self.file = sys.stdout.buffer
            return
        if self.file is not None:
            self.file.close()
        self.file = open(self.path, "ab")

    def write(self, text):
        # Addresses need not be UTF-8: write the bytes that came.
        self.file.write(text.encode("utf-8", "surrogateescape") + b"\n")
        self.file.flush()


def main():
    client = Milter.Client.new()
    try:
        rest = client.parse_command_line(sys.argv)  # -s SPEC, --n-workers…
    except GLib.Error as error:
        sys.exit("deploy-reload: " + error.message)
    parser = argparse.ArgumentParser(prog="deploy-reload")
    parser.add_argument("--message-log", metavar="FILE",
                        help="where to log (default: standard output)")
    options = parser.parse_args(rest[1:])
    log = MessageLog(options.message_log)

    def on_message_processed(context, result):
        # The message's macros are still there: the queue ID is i.
        recipients = ",".join(result.get_recipients() or [])
        log.write("%s from=%s to=%s %s" % (context.get_macro("i") or "-", result.get_from(),
                                           recipients, result.get_status().value_nick))

    def on_connection_established(client, context):
        context.connect("message-processed", on_message_processed)

    client.connect("connection-established", on_connection_established)
    # run() turns SIGHUP into "reload" (in each worker, with --n-workers).
    client.connect("reload", lambda client: log.reopen())
    try:
        client.run()
    except GLib.Error as error:
        sys.exit("deploy-reload: " + error.message)


main()
