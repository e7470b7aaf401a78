#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# guide-check: filter --helo-fqdn localhost => headers in ([("X-HELO-Resolved", "localhost=127.0.0.1")], [("X-HELO-Resolved", "localhost=::1")])
# guide-check: filter --helo-fqdn no-such-host.invalid => result["status"] == "pass" and headers == [("X-HELO-Resolved", "no-such-host.invalid=unresolved")]
# guide-check: filter --helo-fqdn localhost --n-messages 100 --concurrency 16 => result["statuses"]["pass"] == 100 and result["errors"] == 0
"""resolve-helo: an asynchronous milter. At HELO it looks the name up in
DNS with Gio.Resolver; meanwhile the reply is deferred (PROGRESS) and the
main loop serves the other connections. At end-of-message it records the
result in a header.

  resolve-helo.py -s inet:10025@127.0.0.1
"""

import argparse
import sys

import gi

gi.require_version("Gio", "2.0")
gi.require_version("Milter", "1.0")
from gi.repository import Gio, GLib, Milter  # noqa: E402


class Connection:
    """What one connection learnt about its HELO name."""

    def __init__(self):
        self.helo = None
        self.result = None

    def on_helo(self, context, fqdn):
        self.helo = fqdn
        # The context is passed along: it stays alive until the answer.
        Gio.Resolver.get_default().lookup_by_name_async(fqdn, None, self.on_resolved, context)
        # Not known yet: the context reads nothing more from this MTA
        # until context.reply() is called.
        return Milter.Status.PROGRESS

    def on_resolved(self, resolver, result, context):
        try:
            self.result = resolver.lookup_by_name_finish(result)[0].to_string()
        except GLib.Error:
            self.result = "unresolved"
        # Answer the deferred HELO now; if the MTA has gone meanwhile, this
        # does nothing.
        context.reply(Milter.Status.CONTINUE)

    def on_end_of_message(self, context, chunk):
        if self.helo is not None:  # else no HELO was given
            context.add_header("X-HELO-Resolved", "%s=%s" % (self.helo, self.result))
        return Milter.Status.CONTINUE


def on_connection_established(client, context):
    connection = Connection()
    context.connect("helo", connection.on_helo)
    context.connect("end-of-message-bytes", connection.on_end_of_message)


def main():
    client = Milter.Client.new()
    try:
        # The options every filter has (-s, --timeout, --user…).
        argv = client.parse_command_line(sys.argv)
    except GLib.Error as error:
        print("resolve-helo:", error.message, file=sys.stderr)
        sys.exit(2)  # a usage error
    argparse.ArgumentParser(description="Record whether the HELO name resolves.").parse_args(argv[1:])

    client.connect("connection-established", on_connection_established)
    try:
        client.run()
    except GLib.Error as error:
        sys.exit("resolve-helo: " + error.message)

if __name__ == "__main__":
    main()
