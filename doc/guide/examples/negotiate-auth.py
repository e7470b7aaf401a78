#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# guide-check: filter --envelope-from-macro "{auth_authen}:alice" -f "<alice@example.com>" => headers == [("X-Authenticated-User", "alice from 192.0.2.1")] and result["negotiated"]["macros"] == '2:"{auth_authen} {client_addr}"' and (result["negotiated"]["step"] & 0x4) == 0 and (result["negotiated"]["step"] & 0x8) != 0
# guide-check: filter -f "<eve@Example.COM>" => result["status"] == "reject" and result["stage"] == "envelope-from" and result["reply"] == "550 5.7.1 Log in to send as a local user"
"""negotiate-auth.py: asks the MTA for the SMTP AUTH user name and the
client's address with MAIL FROM. Senders in the local domain must have
logged in; mail from users who did is stamped with their name and
address."""

import sys

import gi

gi.require_version("Milter", "1.0")
from gi.repository import GLib, Milter  # noqa: E402

LOCAL_DOMAIN = "@example.com>"


def on_negotiate(context, option, requests):
    requests.set_symbols(Milter.MacroStage.ENVELOPE_FROM, ["{auth_authen}", "{client_addr}"])
    # Every offered action; the events without a handler left out.
    return Milter.Status.ALL_OPTIONS


def on_envelope_from(context, sender):
    if not context.get_macro("{auth_authen}") and sender.lower().endswith(LOCAL_DOMAIN):
        try:
            context.set_reply(550, "5.7.1", "Log in to send as a local user")
        except GLib.Error as error:
            print("negotiate-auth:", error.message, file=sys.stderr)
        return Milter.Status.REJECT
    return Milter.Status.CONTINUE


def on_end_of_message(context, chunk):
    # The macros of MAIL FROM are kept until the message ends.
    user = context.get_macro("{auth_authen}")
    if user:
        address = context.get_macro("{client_addr}") or "an unknown address"
        context.add_header("X-Authenticated-User", "%s from %s" % (user, address))
    return Milter.Status.CONTINUE


def on_connection_established(client, context):
    context.connect("negotiate", on_negotiate)
    context.connect("envelope-from", on_envelope_from)
    context.connect("end-of-message-bytes", on_end_of_message)


client = Milter.Client.new()
client.connect("connection-established", on_connection_established)
try:
    rest = client.parse_command_line(sys.argv)
    if rest[1:]:
        sys.exit("negotiate-auth: unknown argument " + rest[1])
    client.run()
except GLib.Error as error:
    sys.exit("negotiate-auth: " + error.message)
