#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# guide-check: filter --output-message -r "<bob@old.example>" -r "<carol@example.org>" -r "<dave@Paused.Example>" => result["status"] == "pass" and result["message"]["recipients"] == [{"address": "<carol@example.org>", "parameters": []}] and [(r["address"], r["status"], r["reply"]) for r in result["rejected-recipients"]] == [("<bob@old.example>", "reject", "550-5.1.6 <bob@old.example> has moved.\r\n550 5.1.6 Please write to <bob@new.example> instead."), ("<dave@Paused.Example>", "temporary-failure", "450 4.2.1 Mailbox under maintenance, try again in an hour")]
# guide-check: filter -r "<a%b@old.example>" => result["status"] == "reject" and result["stage"] == "envelope-recipient" and result["reply"] == "550-5.1.6 <a%b@old.example> has moved.\r\n550 5.1.6 Please write to <a%b@new.example> instead."
"""replies-moved.py: refuses the recipients of a domain that moved, with a
multi-line reply that gives the new address, and asks the senders to retry
later for a domain under maintenance. The message still goes to its other
recipients."""

import re
import sys

import gi

gi.require_version("Milter", "1.0")
from gi.repository import GLib, Milter  # noqa: E402

OLD_DOMAIN = "old.example"
NEW_DOMAIN = "new.example"
PAUSED_DOMAIN = "paused.example"
ADDRESS = re.compile(r"<(.*)@([^@]*)>")


def set_reply(method, *args):
    """Calls context.set_reply or context.set_multiline_reply. If the reply
    is refused, the verdict stands with the MTA's default text: an exception
    escaping the handler would let the recipient through."""
    try:
        method(*args)
    except GLib.Error as error:
        print("replies-moved:", error.message, file=sys.stderr)


def on_envelope_recipient(context, recipient):
    match = ADDRESS.fullmatch(recipient)
    domain = match.group(2).lower() if match else None
    if domain == OLD_DOMAIN:
        # 5.1.6: the mailbox has moved (RFC 3463).
        set_reply(context.set_multiline_reply, 550, "5.1.6",
                  [recipient + " has moved.",
                   "Please write to <%s@%s> instead." % (match.group(1), NEW_DOMAIN)])
        return Milter.Status.REJECT
    if domain == PAUSED_DOMAIN:
        # A 4xx code for a temporary failure.
        set_reply(context.set_reply, 450, "4.2.1", "Mailbox under maintenance, try again in an hour")
        return Milter.Status.TEMPORARY_FAILURE
    return Milter.Status.CONTINUE


def on_connection_established(client, context):
    context.connect("envelope-recipient", on_envelope_recipient)


client = Milter.Client.new()
client.connect("connection-established", on_connection_established)
try:
    rest = client.parse_command_line(sys.argv)
    if rest[1:]:
        sys.exit("replies-moved: unknown argument " + rest[1])
    client.run()
except GLib.Error as error:
    sys.exit("replies-moved: " + error.message)
