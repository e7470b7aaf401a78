#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# guide-check: run
"""testing-filter.py: tests a filter in the same process. Milter.Client
serves it on a unix socket in a temporary directory; Milter.ServerContext
plays the MTA; both run on the one GLib main loop."""

import os
import shutil
import sys
import tempfile
import time
import unittest

import gi

gi.require_version("Milter", "1.0")
from gi.repository import Gio, GLib, Milter  # noqa: E402

CONTINUE = Milter.Status.CONTINUE


def setup_filter(client):
    """The filter under test. A real project imports it from the filter's
    own module, whose main() only adds parse_command_line() and run()."""

    def on_helo(context, fqdn):
        if fqdn.endswith(".invalid"):
            context.set_reply(550, "5.7.1", "HELO %s refused" % fqdn)
            return Milter.Status.REJECT
        return CONTINUE

    def on_end_of_message(context, chunk):
        context.add_header("X-Checked", "yes")
        return CONTINUE

    def on_connection_established(client, context):
        context.connect("helo", on_helo)
        context.connect("end-of-message-bytes", on_end_of_message)

    client.connect("connection-established", on_connection_established)


def run_until(predicate, what, timeout=10):
    """Runs the main loop, and so the filter, until predicate() is true."""
    main_context = GLib.MainContext.default()
    deadline = time.monotonic() + timeout
    # A tick, so that a blocking iteration wakes up to look at the clock.
    tick = GLib.timeout_add(50, lambda: GLib.SOURCE_CONTINUE)
    try:
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for " + what)
            main_context.iteration(True)
    finally:
        GLib.source_remove(tick)


class FilterTest(unittest.TestCase):
    def setUp(self):
        # A handler that raises is only printed, and the filter goes on:
        # make it fail the test instead.
        self.handler_errors = []
        self.addCleanup(setattr, sys, "excepthook", sys.excepthook)
        sys.excepthook = lambda kind, error, traceback: self.handler_errors.append(error)

        directory = tempfile.mkdtemp(prefix="filter-test-")
        self.addCleanup(shutil.rmtree, directory)
        spec = "unix:" + os.path.join(directory, "filter.sock")
        self.client = Milter.Client.new()
        setup_filter(self.client)
        self.client.set_connection_spec(spec)
        self.client.listen()  # returns at once: the loop runs in call()
        self.addCleanup(self.stop_client)

        self.mta = Milter.ServerContext.new()
        self.mta.set_connection_spec(spec)
        self.call("establish_connection")
        self.assertTrue(self.call("negotiate", None))  # as Postfix offers

    def stop_client(self):
        self.mta.close()
        run_until(lambda: self.client.get_n_processing_sessions() == 0, "the session to end")
        self.client.shutdown()  # removes the socket file

    def tearDown(self):
        self.assertEqual(self.handler_errors, [])

    def call(self, name, *args):
        """Sends one MTA command and returns the filter's answer."""
        results = []
        start = getattr(self.mta, name + "_async")
        start(*args, None, lambda mta, result: results.append(result))
        run_until(lambda: results, "the reply to " + name)
        return getattr(self.mta, name + "_finish")(results[0])

    def test_rejects_an_invalid_helo(self):
        self.assertEqual(self.call("connect", "client.example", None), CONTINUE)
        self.assertEqual(self.call("helo", "host.invalid"), Milter.Status.REJECT)
        self.assertEqual(self.mta.get_reply_text(), "550 5.7.1 HELO host.invalid refused")

    def test_adds_a_header(self):
        address = Gio.InetSocketAddress.new_from_string("192.0.2.1", 50443)
        self.assertEqual(self.call("connect", "client.example", address), CONTINUE)
        self.assertEqual(self.call("helo", "client.example"), CONTINUE)
        self.assertEqual(self.call("envelope_from", "<alice@example.com>", None), CONTINUE)
        self.assertEqual(self.call("envelope_recipient", "<bob@example.org>", None), CONTINUE)
        self.assertEqual(self.call("data"), CONTINUE)
        self.assertEqual(self.call("header", "Subject", "hello"), CONTINUE)
        self.assertEqual(self.call("end_of_header"), CONTINUE)
        self.assertEqual(self.call("body", GLib.Bytes.new(b"Hi Bob.\r\n")), CONTINUE)
        self.assertEqual(self.call("end_of_message"), CONTINUE)
        self.assertEqual([m.to_string() for m in self.mta.get_modifications()],
                         ["add-header: X-Checked: yes"])
        self.call("quit")


if __name__ == "__main__":
    unittest.main()
