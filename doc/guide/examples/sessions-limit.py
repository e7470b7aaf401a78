#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# guide-check: filter -r a@example.org -r b@example.org -r c@example.org -r d@example.org => [r["address"] for r in result["rejected-recipients"]] == ["<d@example.org>"] and headers == [("X-Message-Number", "1")]
# guide-check: filter --n-messages 5 --messages-per-connection 5 => result["statuses"]["pass"] == 3 and result["statuses"]["temporary-failure"] == 2
# guide-check: filter --n-messages 6 --messages-per-connection 3 => result["statuses"]["pass"] == 6
# guide-check: filter --n-messages 3 --messages-per-connection 3 -r a@example.org -r b@example.org -r c@example.org => result["statuses"]["pass"] == 3
"""sessions-limit.py: at most MAX_RECIPIENTS recipients per message and
MAX_MESSAGES messages per SMTP connection; each message gets
"X-Message-Number: N", its number on the connection."""

import sys

import gi

gi.require_version("Milter", "1.0")
from gi.repository import GLib, Milter  # noqa: E402

MAX_MESSAGES = 3
MAX_RECIPIENTS = 3


class Connection:
    """The state of one MTA connection; its methods are the handlers."""

    def on_connect(self, context, host_name, address):
        # An SMTP connection begins: its state starts afresh.
        self.host = host_name
        self.n_messages = 0
        return Milter.Status.CONTINUE

    def on_envelope_from(self, context, sender):
        # A message begins: so does its state.
        self.n_recipients = 0
        self.n_messages += 1
        if self.n_messages > MAX_MESSAGES:
            context.set_reply(451, "4.7.1", "Too many messages, try again later")
            return Milter.Status.TEMPORARY_FAILURE
        return Milter.Status.CONTINUE

    def on_envelope_recipient(self, context, recipient):
        if self.n_recipients == MAX_RECIPIENTS:
            # Refuses this recipient only; the message goes on.
            context.set_reply(452, "4.5.3", "Too many recipients")
            return Milter.Status.TEMPORARY_FAILURE
        self.n_recipients += 1
        return Milter.Status.CONTINUE

    def on_end_of_message(self, context, chunk):
        context.add_header("X-Message-Number", str(self.n_messages))
        return Milter.Status.CONTINUE

    def on_message_processed(self, context, result):
        # Every message ends here: decided, accepted or aborted.
        print("%s: message %d from %s, %d recipient(s): %s"
              % (self.host, self.n_messages, result.get_from(),
                 len(result.get_recipients()), result.get_status().value_nick),
              file=sys.stderr)


def on_connection_established(client, context):
    connection = Connection()
    context.connect("connect", connection.on_connect)
    context.connect("envelope-from", connection.on_envelope_from)
    context.connect("envelope-recipient", connection.on_envelope_recipient)
    context.connect("end-of-message-bytes", connection.on_end_of_message)
    context.connect("message-processed", connection.on_message_processed)


client = Milter.Client.new()
client.connect("connection-established", on_connection_established)
try:
    rest = client.parse_command_line(sys.argv)
    if rest[1:]:
        sys.exit("sessions-limit: unknown argument " + rest[1])
    client.run()
except GLib.Error as error:
    sys.exit("sessions-limit: " + error.message)
