#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A filter written in Python through GObject-Introspection: adds one
header at end-of-message. Usage: interop-gi-filter.py SPEC (e.g.
unix:/path/to/socket). Needs GI_TYPELIB_PATH and LD_LIBRARY_PATH pointing
at the build's milter/ directory."""

import sys

import gi

gi.require_version("Milter", "1.0")
from gi.repository import Milter  # noqa: E402


def on_end_of_message(context, chunk):
    context.add_header("X-Interop-Python", "added through GObject-Introspection")
    return Milter.Status.CONTINUE


def on_connection_established(client, context):
    # Connected before the negotiation, so Postfix is asked for nothing
    # but end-of-message.
    context.connect("end-of-message-bytes", on_end_of_message)


def main():
    client = Milter.Client.new()
    client.set_connection_spec(sys.argv[1])
    # Postfix's smtpd runs as the postfix user.
    client.props.unix_socket_group = "postfix"
    client.connect("connection-established", on_connection_established)
    # Returns after SIGTERM (handled by the library).
    client.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
