#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""filter.py: the benchmark filter on milter-glib through GObject-Introspection.

  GI_TYPELIB_PATH=BUILD/milter LD_LIBRARY_PATH=BUILD/milter \
    /usr/bin/python3 bench/filter.py unix:PATH [--eom-only] [--signals]

Handlers for every event, a small per-connection state counting headers and
body bytes, one header added at end-of-message, continue everywhere.
--eom-only handles only end-of-message. The handlers are the virtual
methods of a Milter.ClientContext subclass; with --signals, signal handlers
connected to each connection's context. Not part of the library.
"""

import sys

import gi

gi.require_version("Milter", "1.0")
from gi.repository import Milter  # noqa: E402

CONTINUE = Milter.Status.CONTINUE


class State:
    __slots__ = ("messages", "headers", "body_bytes", "in_message")

    def __init__(self):
        self.messages = 0
        self.headers = 0
        self.body_bytes = 0
        self.in_message = False


def on_connect(context, host_name, address, state):
    return CONTINUE


def on_helo(context, fqdn, state):
    return CONTINUE


def on_envelope_from(context, sender, state):
    state.headers = 0
    state.body_bytes = 0
    state.in_message = True
    return CONTINUE


def on_envelope_recipient(context, recipient, state):
    return CONTINUE


def on_data(context, state):
    return CONTINUE


def on_header(context, name, value, state):
    state.headers += 1
    return CONTINUE


def on_end_of_header(context, state):
    return CONTINUE


def on_body(context, chunk, state):
    state.body_bytes += chunk.get_size()
    return CONTINUE


def on_end_of_message(context, chunk, state=None):
    if state is not None:
        state.messages += 1
        state.in_message = False
    context.add_header("X-Bench", "python")
    return CONTINUE


def on_abort(context, last_state, state):
    state.in_message = False
    return CONTINUE


def on_finished(context, state):
    state.in_message = False


def on_connection_established(client, context, eom_only):
    if eom_only:
        context.connect("end-of-message-bytes", on_end_of_message)
        return
    state = State()
    context.connect("connect", on_connect, state)
    context.connect("helo", on_helo, state)
    context.connect("envelope-from", on_envelope_from, state)
    context.connect("envelope-recipient", on_envelope_recipient, state)
    context.connect("data", on_data, state)
    context.connect("header", on_header, state)
    context.connect("end-of-header", on_end_of_header, state)
    context.connect("body-bytes", on_body, state)
    context.connect("end-of-message-bytes", on_end_of_message, state)
    context.connect("abort", on_abort, state)
    context.connect("finished", on_finished, state)


class BenchContext(Milter.ClientContext):
    """The same filter as a subclass: virtual methods, the state in the
    instance (made from C: no __init__ runs, so class defaults)."""
    messages = 0
    headers = 0
    body_bytes = 0
    in_message = False

    def do_connect(self, host_name, address):
        return CONTINUE

    def do_helo(self, fqdn):
        return CONTINUE

    def do_envelope_from(self, sender):
        self.headers = 0
        self.body_bytes = 0
        self.in_message = True
        return CONTINUE

    def do_envelope_recipient(self, recipient):
        return CONTINUE

    def do_data(self):
        return CONTINUE

    def do_header(self, name, value):
        self.headers += 1
        return CONTINUE

    def do_end_of_header(self):
        return CONTINUE

    def do_body_bytes(self, chunk):
        self.body_bytes += chunk.get_size()
        return CONTINUE

    def do_end_of_message_bytes(self, chunk):
        self.messages += 1
        self.in_message = False
        self.add_header("X-Bench", "python")
        return CONTINUE

    def do_abort(self, last_state):
        self.in_message = False
        return CONTINUE

    def do_finished(self):
        self.in_message = False


class EomOnlyContext(Milter.ClientContext):
    def do_end_of_message_bytes(self, chunk):
        self.add_header("X-Bench", "python")
        return CONTINUE


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    eom_only = "--eom-only" in sys.argv[1:]
    if len(args) != 1:
        sys.exit("usage: filter.py unix:PATH [--eom-only] [--signals]")
    client = Milter.Client.new()
    client.set_connection_spec(args[0])
    if "--signals" in sys.argv[1:]:
        client.connect("connection-established", on_connection_established, eom_only)
    else:
        client.props.context_type = EomOnlyContext if eom_only else BenchContext
    client.run()


if __name__ == "__main__":
    main()
