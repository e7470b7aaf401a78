#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Milter.Client and Milter.ClientContext from Python: each test serves a
filter with Milter.Client on a unix socket in a temporary directory and
plays the MTA in the same process, with Milter.ServerContext (or with
milter-test-server), all on one GLib main loop."""

import os
import shutil
import socket
import struct
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from harness import MTA, drive_in_loop, wait_for  # noqa: E402 (exits 77 without PyGObject)
from gi.repository import Gio, GLib, Milter  # noqa: E402

Status = Milter.Status


class FilterTestCase(unittest.TestCase):
    """Serves a filter whose handlers are self.handlers (signal name →
    callable), connected to each new context; self.on_context(context),
    if set, runs first. Handler exceptions land in self.handler_errors."""

    def setUp(self):
        self.handlers = {}
        self.on_context = None
        self.contexts = []
        self.mtas = []
        self.handler_errors = []
        # PyGObject prints a handler's exception with PyErr_Print, which
        # calls sys.excepthook: record instead of only printing.
        self.addCleanup(setattr, sys, "excepthook", sys.excepthook)
        sys.excepthook = lambda kind, value, traceback: self.handler_errors.append(value)

        self.dir = tempfile.mkdtemp(prefix="milter-gi-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.spec = "unix:" + os.path.join(self.dir, "milter.sock")
        self.client = Milter.Client.new()
        self.client.set_connection_spec(self.spec)
        self.client.connect("connection-established", self.connection_established)
        self.client.listen()
        self.addCleanup(self.stop_client)

    def connection_established(self, client, context):
        self.contexts.append(context)
        if self.on_context is not None:
            self.on_context(context)
        for name, handler in self.handlers.items():
            context.connect(name, handler)

    def stop_client(self):
        for mta in self.mtas:
            mta.context.close()
        try:
            # Closing makes each session finish; the client then has none left.
            wait_for(lambda: self.client.get_n_processing_sessions() == 0, "the sessions to end")
        finally:
            self.client.shutdown()

    def tearDown(self):
        self.assertEqual(self.handler_errors, [], "a handler raised")

    def mta(self):
        mta = MTA(self.spec)
        self.mtas.append(mta)
        return mta

    def take_handler_errors(self):
        errors, self.handler_errors = self.handler_errors, []
        return [type(error) for error in errors]


class TestSignals(FilterTestCase):
    def test_every_event_with_typed_arguments(self):
        events = []

        def record(name, status=Status.CONTINUE):
            def handler(context, *args):
                events.append((name, *args))
                return status
            return handler

        def negotiate(context, option, macros_requests):
            events.append(("negotiate", option.get_version(), type(macros_requests)))
            return Status.ALL_OPTIONS

        def define_macro(context, command):
            events.append(("define-macro", command, context.get_command_macros(command)))

        def envelope_from(context, sender):
            events.append(("envelope-from", sender, context.get_esmtp_parameters()))
            return Status.CONTINUE

        def end_of_message(context, chunk):
            macros = context.get_macros()
            events.append(("end-of-message-bytes", chunk, type(macros), macros.get("j"),
                           context.get_macro("daemon_name"), context.get_macro("{auth_authen}")))
            return Status.CONTINUE

        def message_processed(context, result):
            events.append(("message-processed", result.get_status(), result.get_from(),
                           result.get_recipients(), result.get_body_size()))

        self.handlers = {
            "negotiate": negotiate,
            "define-macro": define_macro,
            "connect": record("connect"),
            "helo": record("helo"),
            "unknown": record("unknown"),
            "envelope-from": envelope_from,
            "envelope-recipient": record("envelope-recipient"),
            "data": record("data"),
            "header": record("header"),
            "end-of-header": record("end-of-header"),
            "body-bytes": record("body-bytes"),
            "end-of-message-bytes": end_of_message,
            "abort": record("abort"),
            "message-processed": message_processed,
            "finished": lambda context: events.append(("finished",)),
        }
        mta = self.mta()
        mta.context.set_macro(Milter.Command.CONNECT, "j", "mx.example")
        mta.context.set_macro(Milter.Command.ENVELOPE_FROM, "{auth_authen}", "alice")
        self.assertTrue(mta.command("negotiate", None))
        address = Gio.InetSocketAddress.new_from_string("192.0.2.1", 50443)
        self.assertEqual(mta.command("connect", "client.example", address), Status.CONTINUE)
        self.assertEqual(mta.command("helo", "helo.example"), Status.CONTINUE)
        self.assertEqual(mta.command("unknown", "XYZZY now"), Status.CONTINUE)
        self.assertEqual(mta.command("envelope_from", "<a@example.com>", ["SIZE=1024"]),
                         Status.CONTINUE)
        self.assertEqual(mta.command("envelope_recipient", "<b@example.org>", None),
                         Status.CONTINUE)
        self.assertEqual(mta.command("data"), Status.CONTINUE)
        self.assertEqual(mta.command("header", "Subject", "caf\u00e9"), Status.CONTINUE)
        self.assertEqual(mta.command("end_of_header"), Status.CONTINUE)
        # A NUL byte would end a string: body chunks are GLib.Bytes.
        self.assertEqual(mta.command("body", GLib.Bytes.new(b"one\0two\r\n")), Status.CONTINUE)
        self.assertEqual(mta.command("body", GLib.Bytes.new(b"\0")), Status.CONTINUE)
        self.assertEqual(mta.command("end_of_message"), Status.CONTINUE)
        # A second message, abandoned by the MTA.
        mta.command("envelope_from", "<c@example.com>", None)
        self.assertTrue(mta.command("abort"))
        mta.quit()
        wait_for(lambda: events[-1] == ("finished",), "finished")

        macros = {}  # of the first message
        for event in events:
            if event[0] == "define-macro":
                macros.setdefault(event[1], event[2])
        events = [event for event in events if event[0] != "define-macro"]
        self.assertEqual(events.pop(0), ("negotiate", 6, Milter.MacrosRequests))
        name, host, address = events.pop(0)
        self.assertEqual((name, host), ("connect", "client.example"))
        self.assertIsInstance(address, Gio.InetSocketAddress)
        self.assertEqual((address.get_address().to_string(), address.get_port()),
                         ("192.0.2.1", 50443))
        self.assertEqual(events.pop(0), ("helo", "helo.example"))
        self.assertEqual(events.pop(0), ("unknown", "XYZZY now"))
        self.assertEqual(events.pop(0), ("envelope-from", "<a@example.com>", ["SIZE=1024"]))
        self.assertEqual(events.pop(0), ("envelope-recipient", "<b@example.org>"))
        self.assertEqual(events.pop(0), ("data",))
        self.assertEqual(events.pop(0), ("header", "Subject", "caf\u00e9"))
        self.assertEqual(events.pop(0), ("end-of-header",))
        chunks = [events.pop(0), events.pop(0)]
        self.assertEqual([name for name, _ in chunks], ["body-bytes", "body-bytes"])
        self.assertTrue(all(isinstance(chunk, GLib.Bytes) for _, chunk in chunks))
        self.assertEqual([chunk.get_data() for _, chunk in chunks], [b"one\0two\r\n", b"\0"])
        self.assertEqual(events.pop(0), ("end-of-message-bytes", None, dict, "mx.example",
                                         socket.gethostname(), "alice"))
        self.assertEqual(events.pop(0), ("message-processed", Status.ACCEPT, "<a@example.com>",
                                         ["<b@example.org>"], 10))
        self.assertEqual(events.pop(0), ("envelope-from", "<c@example.com>", []))
        self.assertEqual(events.pop(0), ("abort", Milter.ClientContextState.ENVELOPE_FROM_REPLIED))
        self.assertEqual(events.pop(0)[:2], ("message-processed", Status.ABORT))
        self.assertEqual(events, [("finished",)])

        # define-macro comes before each command, with that command's macros.
        self.assertEqual(macros[Milter.Command.CONNECT]["j"], "mx.example")
        self.assertEqual(macros[Milter.Command.CONNECT]["_"], "client.example [192.0.2.1]")
        self.assertEqual(macros[Milter.Command.ENVELOPE_FROM]["{mail_addr}"], "a@example.com")
        self.assertNotIn("j", macros[Milter.Command.ENVELOPE_FROM])

    def test_connect_addresses(self):
        seen = []

        def connect(context, host, address):
            seen.append(address)
            return Status.CONTINUE

        self.handlers = {"connect": connect}
        addresses = [Gio.InetSocketAddress.new_from_string("2001:db8::1", 25),
                     Gio.UnixSocketAddress.new("/run/smtp.sock"),
                     None]
        for address in addresses:
            mta = self.mta()
            self.assertEqual(mta.open(address=address), ("helo", Status.CONTINUE))
            mta.quit()
        self.assertIsInstance(seen[0], Gio.InetSocketAddress)
        self.assertEqual(seen[0].get_address().to_string(), "2001:db8::1")
        self.assertEqual(seen[0].get_port(), 25)
        self.assertIsInstance(seen[1], Gio.UnixSocketAddress)
        self.assertEqual(seen[1].get_path(), "/run/smtp.sock")
        self.assertIsNone(seen[2])

    def test_error_and_timeout(self):
        errors = []
        finished = []
        self.client.props.timeout = 1
        self.handlers = {
            "error": lambda context, error: errors.append(error),
            "timeout": lambda context: finished.append("timeout"),
            "finished": lambda context: finished.append("finished"),
        }
        # An MTA that sends an unknown command.
        with socket.socket(socket.AF_UNIX) as mta:
            mta.connect(self.spec[len("unix:"):])
            mta.sendall(b"\0\0\0\1Z")
            wait_for(lambda: finished == ["finished"], "the session to end")
        self.assertEqual(len(errors), 1)
        self.assertIsInstance(errors[0], GLib.Error)
        self.assertEqual(errors[0].domain, "milter-decoder-error-quark")
        # An MTA that says nothing.
        with socket.socket(socket.AF_UNIX) as mta:
            mta.connect(self.spec[len("unix:"):])
            wait_for(lambda: finished[1:] == ["timeout", "finished"], "the timeout")


class TestVerdicts(FilterTestCase):
    def test_statuses_become_replies(self):
        cases = [
            ("connect", Status.REJECT, "connect"),
            ("connect", Status.TEMPORARY_FAILURE, "connect"),
            ("helo", Status.REJECT, "helo"),
            ("envelope-from", Status.ACCEPT, "envelope-from"),
            ("envelope-from", Status.DISCARD, "envelope-from"),
            ("envelope-recipient", Status.REJECT, "envelope-recipient"),
            ("data", Status.TEMPORARY_FAILURE, "data"),
            ("header", Status.REJECT, "header"),
            ("end-of-header", Status.ACCEPT, "end-of-header"),
            ("body-bytes", Status.DISCARD, "body"),
            ("end-of-message-bytes", Status.REJECT, "end-of-message"),
            ("end-of-message-bytes", Status.TEMPORARY_FAILURE, "end-of-message"),
            ("end-of-message-bytes", Status.DISCARD, "end-of-message"),
            ("end-of-message-bytes", Status.ACCEPT, "end-of-message"),
            ("end-of-message-bytes", Status.CONTINUE, "end-of-message"),
        ]
        for signal, status, stage in cases:
            with self.subTest(signal=signal, status=status):
                self.handlers = {signal: lambda context, *args, status=status: status}
                mta = self.mta()
                result = mta.open()
                if result == ("helo", Status.CONTINUE):
                    result = mta.message()
                mta.quit()
                self.assertEqual(result, (stage, status))

    def test_skip_on_a_body_chunk(self):
        chunks = []

        def body(context, chunk):
            chunks.append(chunk.get_data())
            return Status.SKIP

        self.handlers = {"body-bytes": body}
        mta = self.mta()
        mta.open()
        for command, args in [("envelope_from", ("<a@example.com>", None)),
                              ("envelope_recipient", ("<b@example.org>", None)),
                              ("end_of_header", ())]:
            self.assertEqual(mta.command(command, *args), Status.CONTINUE)
        self.assertTrue(mta.context.get_option().get_step() & Milter.StepFlags.SKIP)
        self.assertEqual(mta.command("body", GLib.Bytes.new(b"first\r\n")), Status.SKIP)
        # The MTA sends no further chunk of this message.
        self.assertEqual(mta.command("body", GLib.Bytes.new(b"second\r\n")), Status.SKIP)
        self.assertEqual(mta.command("end_of_message"), Status.CONTINUE)
        mta.quit()
        self.assertEqual(chunks, [b"first\r\n"])


class TestDeferredReplies(FilterTestCase):
    def test_progress_then_reply_from_a_timeout(self):
        pending = []

        def helo(context, fqdn):
            def decide():
                pending.append(context.is_reply_pending())
                context.reply(Status.REJECT if fqdn.endswith(".invalid") else Status.CONTINUE)
                return GLib.SOURCE_REMOVE
            GLib.timeout_add(200, decide)
            return Status.PROGRESS

        def end_of_message(context, chunk):
            def decide():
                # Still end-of-message for the library: keep-alive and
                # modifications are allowed until the reply.
                context.progress()
                context.add_header("X-Deferred", "yes")
                context.emit("end-of-message-response", Status.CONTINUE)
                return GLib.SOURCE_REMOVE
            GLib.timeout_add(100, decide)
            return Status.PROGRESS

        self.handlers = {"helo": helo, "end-of-message-bytes": end_of_message}
        mta = self.mta()
        progress = []
        mta.context.connect("progress", lambda context: progress.append(time.monotonic()))
        started = time.monotonic()
        self.assertEqual(mta.open(helo="nowhere.invalid"), ("helo", Status.REJECT))
        self.assertGreaterEqual(time.monotonic() - started, 0.2)
        self.assertEqual(mta.command("helo", "client.example"), Status.CONTINUE)
        self.assertEqual(mta.message(), ("end-of-message", Status.CONTINUE))
        self.assertEqual(len(progress), 1)
        self.assertEqual(mta.modifications(), ["add-header: X-Deferred: yes"])
        mta.quit()
        self.assertEqual(pending, [True, True])


class TestModifications(FilterTestCase):
    def test_each_kind_at_end_of_message(self):
        refused = []

        def helo(context, fqdn):
            # Not at end-of-message: refused with a GLib.Error.
            try:
                context.add_header("X-Too-Early", "yes")
            except GLib.Error as error:
                refused.append((error.domain, error.code))
            return Status.CONTINUE

        def end_of_message(context, chunk):
            context.add_header("X-Added", "yes")
            context.insert_header(0, "X-First", "1")
            context.change_header("Subject", 1, "changed")
            context.delete_header("X-Spam", 1)
            context.change_from("<new@example.com>", None)
            context.add_recipient("<added@example.org>", "NOTIFY=NEVER")
            context.delete_recipient("<recipient@example.org>")
            context.replace_body(GLib.Bytes.new(b"new\0body\r\n"))
            context.quarantine("looks odd")
            return Status.CONTINUE

        self.handlers = {"helo": helo, "end-of-message-bytes": end_of_message}
        mta = self.mta()
        signalled = []

        def recorder(name):
            return lambda context, *args: signalled.append((name, *args))

        for name in ["add-header", "insert-header", "change-header", "delete-header",
                     "change-from", "add-recipient", "delete-recipient", "quarantine"]:
            mta.context.connect(name, recorder(name))
        record_body = recorder("replace-body")
        mta.context.connect("replace-body", lambda context, chunk: record_body(context, chunk.get_data()))
        mta.open()
        result = mta.message(headers=[("Subject", "hi"), ("X-Spam", "yes")])
        self.assertEqual(result, ("end-of-message", Status.CONTINUE))
        self.assertEqual(mta.modifications(), [
            "add-header: X-Added: yes",
            "insert-header[0]: X-First: 1",
            "change-header: Subject[1]: changed",
            "delete-header: X-Spam[1]",
            "change-from: <new@example.com>",
            "add-recipient: <added@example.org> NOTIFY=NEVER",
            "delete-recipient: <recipient@example.org>",
            # The body goes last, just before the final reply.
            "quarantine: looks odd",
            "replace-body: 10 bytes",
        ])
        self.assertEqual(mta.context.get_modifications()[8].get_body().get_data(), b"new\0body\r\n")
        self.assertEqual(signalled, [
            ("add-header", "X-Added", "yes"),
            ("insert-header", 0, "X-First", "1"),
            ("change-header", "Subject", 1, "changed"),
            ("delete-header", "X-Spam", 1),
            ("change-from", "<new@example.com>", None),
            ("add-recipient", "<added@example.org>", "NOTIFY=NEVER"),
            ("delete-recipient", "<recipient@example.org>"),
            ("quarantine", "looks odd"),
            ("replace-body", b"new\0body\r\n"),
        ])
        mta.quit()
        self.assertEqual(refused, [("milter-client-context-error-quark",
                                    Milter.ClientContextError.INVALID_STATE)])


class TestReplyCodes(FilterTestCase):
    def test_set_reply(self):
        def envelope_recipient(context, recipient):
            if recipient == "<nobody@example.org>":
                context.set_reply(550, "5.1.1", "No such user (100% sure)")
                return Status.REJECT
            if recipient == "<busy@example.org>":
                context.set_reply(451, "4.2.1", "Mailbox busy")
                return Status.TEMPORARY_FAILURE
            return Status.CONTINUE

        def end_of_message(context, chunk):
            context.set_multiline_reply(550, "5.7.1", ["Message refused.", "See the policy."])
            return Status.REJECT

        self.handlers = {"envelope-recipient": envelope_recipient,
                         "end-of-message-bytes": end_of_message}
        mta = self.mta()
        mta.open()
        mta.command("envelope_from", "<a@example.com>", None)
        self.assertEqual(mta.command("envelope_recipient", "<nobody@example.org>", None),
                         Status.REJECT)
        self.assertEqual(mta.context.get_reply_text(), "550 5.1.1 No such user (100%% sure)")
        self.assertEqual(mta.command("envelope_recipient", "<busy@example.org>", None),
                         Status.TEMPORARY_FAILURE)
        self.assertEqual(mta.context.get_reply_text(), "451 4.2.1 Mailbox busy")
        self.assertEqual(mta.command("envelope_recipient", "<ok@example.org>", None),
                         Status.CONTINUE)
        for command in ["data", "end_of_header", "end_of_message"]:
            status = mta.command(command)
        self.assertEqual(status, Status.REJECT)
        self.assertEqual(mta.context.get_reply_text(),
                         "550-5.7.1 Message refused.\r\n550 5.7.1 See the policy.")
        mta.quit()

    def test_invalid_reply_raises(self):
        context = Milter.ClientContext.new(None)
        with self.assertRaises(GLib.Error) as raised:
            context.set_reply(250, None, "Fine")
        self.assertEqual(raised.exception.domain, "milter-reply-code-error-quark")


class TestPerConnectionState(FilterTestCase):
    def test_two_concurrent_connections(self):
        finished = []
        deferred = []
        messages = {}  # context → list of subjects: state kept outside the context

        class Connection:
            """One per MTA connection; its bound methods are the handlers."""

            def __init__(self):
                self.helo = None

            def on_helo(self, context, fqdn):
                self.helo = fqdn
                if fqdn == "slow.example":
                    deferred.append(context)  # replied to below
                    return Status.PROGRESS
                return Status.CONTINUE

            def on_header(self, context, name, value):
                messages.setdefault(context, []).append(value)
                return Status.CONTINUE

            def on_end_of_message(self, context, chunk):
                context.add_header("X-Helo", self.helo)
                context.add_header("X-Subjects", ",".join(messages[context]))
                # An attribute set on the context in connection-established.
                context.add_header("X-Serial", str(context.serial))
                return Status.CONTINUE

        def on_context(context):
            connection = Connection()
            context.serial = len(self.contexts)  # 1, 2… in the order of connection
            context.connect("helo", connection.on_helo)
            context.connect("header", connection.on_header)
            context.connect("end-of-message-bytes", connection.on_end_of_message)
            context.connect("finished",
                            lambda context: finished.append(messages.pop(context, None)))

        self.on_context = on_context
        slow, fast = self.mta(), self.mta()
        for mta in (slow, fast):
            self.assertTrue(mta.command("negotiate", None))
            self.assertEqual(mta.command("connect", "client.example", None), Status.CONTINUE)
        # While one connection waits for a deferred reply, the other is served.
        slow_helo = slow.start("helo", "slow.example")
        self.assertEqual(fast.command("helo", "fast.example"), Status.CONTINUE)
        self.assertEqual(fast.message(headers=[("Subject", "fast")]),
                         ("end-of-message", Status.CONTINUE))
        self.assertEqual(len(deferred), 1)
        self.assertTrue(deferred[0].is_reply_pending())
        deferred[0].reply(Status.CONTINUE)
        self.assertEqual(slow_helo(), Status.CONTINUE)
        self.assertEqual(slow.message(headers=[("Subject", "slow"), ("Subject", "again")]),
                         ("end-of-message", Status.CONTINUE))
        self.assertEqual(slow.modifications(), ["add-header: X-Helo: slow.example",
                                                "add-header: X-Subjects: slow,again",
                                                "add-header: X-Serial: 1"])
        self.assertEqual(fast.modifications(), ["add-header: X-Helo: fast.example",
                                                "add-header: X-Subjects: fast",
                                                "add-header: X-Serial: 2"])
        for mta in (slow, fast):
            mta.quit()
        wait_for(lambda: len(finished) == 2, "both sessions to finish")
        # The per-context entries are dropped with their connection.
        self.assertEqual(sorted(finished), [["fast"], ["slow", "again"]])
        self.assertEqual(messages, {})


class TestNonUtf8(FilterTestCase):
    def test_latin1_header_reaches_the_handler(self):
        values = []

        def header(context, name, value):
            # Bytes that are not UTF-8 arrive as surrogate escapes.
            raw = value.encode("utf-8", "surrogateescape")
            values.append(raw)
            return Status.REJECT if raw == b"caf\xe9" else Status.CONTINUE

        self.handlers = {"header": header}
        # milter-test-server sends a mail file's bytes unchanged.
        mail = os.path.join(self.dir, "latin1.eml")
        with open(mail, "wb") as f:
            f.write(b"X-Ok: caf\xc3\xa9\r\nSubject: caf\xe9\r\n\r\nbody\r\n")
        result = drive_in_loop(self.spec, "--mail-file", mail)
        self.assertEqual(values, [b"caf\xc3\xa9", b"caf\xe9"])
        self.assertEqual((result["status"], result["stage"], result["exit"]),
                         ("reject", "header", 2))


    def test_latin1_recipients_in_the_message_result(self):
        """The record of a message keeps the SMTP client's bytes too, and
        reading it twice, or for the next message, works (a UTF-8
        annotation once freed the library's strings on the first read)."""
        seen = []

        def message_processed(context, result):
            for _ in range(2):
                seen.append([r.encode("utf-8", "surrogateescape") for r in result.get_recipients()])
            text = result.get_headers().to_string()
            seen.append(text.encode("utf-8", "surrogateescape"))

        self.handlers = {"message-processed": message_processed}
        result = drive_in_loop(self.spec, "-r", b"<r\xe9@example.org>", "-h", b"Subject: caf\xe9",
                               "--n-messages", "2", "--messages-per-connection", "2")
        self.assertEqual(result["statuses"]["pass"], 2)
        self.assertEqual(seen, [[b"<r\xe9@example.org>"]] * 2 + [b"Subject: caf\xe9\r\n"]
                         + [[b"<r\xe9@example.org>"]] * 2 + [b"Subject: caf\xe9\r\n"])

    def test_latin1_macro_and_esmtp_parameter(self):
        seen = []

        def envelope_from(context, sender):
            names = context.get_macro_names()
            raw = [value.encode("utf-8", "surrogateescape")
                   for value in [context.get_macro("{auth_authen}"),
                                 *context.get_esmtp_parameters()]]
            seen.append(names)
            seen.append(raw)
            return Status.REJECT if raw[0] == b"caf\xe9" else Status.CONTINUE

        self.handlers = {"envelope-from": envelope_from}
        # Milter.ServerContext takes UTF-8 only: play the MTA with packets.
        with socket.socket(socket.AF_UNIX) as mta:
            mta.connect(self.spec[len("unix:"):])
            mta.setblocking(False)
            received = bytearray()

            def send(letter, data=b""):
                mta.sendall(struct.pack(">I", len(data) + 1) + letter + data)

            def reply():
                def complete():
                    try:
                        received.extend(mta.recv(4096))
                    except BlockingIOError:
                        pass
                    return (len(received) >= 4 and
                            len(received) >= 4 + struct.unpack(">I", received[:4])[0])
                wait_for(complete, "a reply")
                length = struct.unpack(">I", received[:4])[0]
                packet = bytes(received[4:4 + length])
                del received[:4 + length]
                return packet[:1]

            send(b"O", struct.pack(">III", 6, 0x1FF, 0))  # no step can be left out
            self.assertEqual(reply(), b"O")
            send(b"C", b"client.example\0U")
            self.assertEqual(reply(), b"c")
            send(b"D", b"M{auth_authen}\0caf\xe9\0")
            send(b"M", b"<a@example.com>\0SIZE=10\0X-Tag=caf\xe9\0")
            self.assertEqual(reply(), b"r")
            send(b"Q")
            wait_for(lambda: self.client.get_n_processing_sessions() == 0, "the session to end")
        self.assertEqual(seen, [["{auth_authen}"], [b"caf\xe9", b"SIZE=10", b"X-Tag=caf\xe9"]])


class TestFailingHandlers(FilterTestCase):
    def run_session(self):
        mta = self.mta()
        result = mta.open()
        if result[1] == Status.CONTINUE:
            result = mta.message()
        mta.quit()
        return result

    @staticmethod
    def raises(context, *args):
        raise RuntimeError("handler bug")

    @staticmethod
    def returns_none(context, *args):
        pass

    def test_fallback_continue(self):
        self.handlers = {"helo": self.raises, "envelope-from": self.returns_none,
                         "end-of-message-bytes": self.raises}
        self.assertEqual(self.run_session(), ("end-of-message", Status.CONTINUE))
        # Each failure is reported (the None one as a TypeError).
        self.assertEqual(self.take_handler_errors(), [RuntimeError, TypeError, RuntimeError])

    def test_fallback_temporary_failure(self):
        self.client.props.fallback_status = Status.TEMPORARY_FAILURE
        self.handlers = {"helo": self.raises}
        self.assertEqual(self.run_session(), ("helo", Status.TEMPORARY_FAILURE))
        self.assertEqual(self.contexts[0].props.fallback_status, Status.TEMPORARY_FAILURE)
        self.handlers = {"envelope-recipient": self.returns_none}
        self.assertEqual(self.run_session(), ("envelope-recipient", Status.TEMPORARY_FAILURE))
        self.assertEqual(self.take_handler_errors(), [RuntimeError, TypeError])

    def test_a_failing_handler_has_no_opinion(self):
        # The next handler decides, as if the failing one were not there.
        def on_context(context):
            context.connect("helo", self.raises)
            context.connect("helo", lambda context, fqdn: Status.REJECT)

        self.on_context = on_context
        self.assertEqual(self.run_session(), ("helo", Status.REJECT))
        self.assertEqual(self.take_handler_errors(), [RuntimeError])


class HeloContext(Milter.ClientContext):
    """A filter as a subclass: virtual methods instead of handlers (it is
    made from C, so no __init__ runs)."""
    seen = []

    def do_helo(self, fqdn):
        HeloContext.seen.append((type(self).__name__, fqdn))
        if fqdn == "raise.example":
            raise RuntimeError("method bug")
        return Status.REJECT


class ResponseContext(Milter.ClientContext):
    """Overrides a -response method: sees the verdict, changes it, and
    chains up to reply."""
    seen = []

    def do_helo(self, fqdn):
        return Status.CONTINUE

    def do_helo_response(self, status):
        ResponseContext.seen.append(status)
        Milter.ClientContext.do_helo_response(self, Status.TEMPORARY_FAILURE)


class TestSubclass(FilterTestCase):
    def setUp(self):
        super().setUp()
        HeloContext.seen = []
        self.client.props.context_type = HeloContext

    def test_a_virtual_method_gives_the_verdict(self):
        self.assertEqual(self.client.props.context_type, HeloContext.__gtype__)
        mta = self.mta()
        self.assertEqual(mta.open(), ("helo", Status.REJECT))
        mta.quit()
        self.assertIsInstance(self.contexts[0], HeloContext)
        self.assertEqual(len(HeloContext.seen), 1)
        self.assertEqual(HeloContext.seen[0], ("HeloContext", "client.example"))

    def test_a_virtual_method_skipped_on_bytes_that_are_not_utf8_fails_safe(self):
        # PyGObject 3.42 cannot give a Python method a file name, so it
        # skips the method on such bytes: as documented, the step gets the
        # fallback status, which a careful filter sets to fail safe.
        self.client.props.fallback_status = Status.TEMPORARY_FAILURE
        mta = self.mta()
        self.assertEqual(mta.open(helo="caf\udce9.example"), ("helo", Status.TEMPORARY_FAILURE))
        mta.quit()
        self.assertEqual(HeloContext.seen, [])
        self.assertEqual(self.take_handler_errors(), [UnicodeDecodeError])

    def test_a_raising_method_has_no_opinion(self):
        self.client.props.fallback_status = Status.TEMPORARY_FAILURE
        mta = self.mta()
        self.assertEqual(mta.open(helo="raise.example"), ("helo", Status.TEMPORARY_FAILURE))
        mta.quit()
        self.assertEqual(self.take_handler_errors(), [RuntimeError])

    def test_a_response_method_changes_the_verdict(self):
        ResponseContext.seen = []
        self.client.props.context_type = ResponseContext
        mta = self.mta()
        self.assertEqual(mta.open(), ("helo", Status.TEMPORARY_FAILURE))
        mta.quit()
        self.assertEqual(ResponseContext.seen, [Status.CONTINUE])


class TestBindingValues(unittest.TestCase):
    def test_mask_constants(self):
        # Typed as flags, they once read as 0 in Python, garbage in Ruby.
        self.assertEqual((Milter.ACTION_ALL, Milter.STEP_ALL, Milter.STEP_NO_EVENT_MASK,
                          Milter.STEP_NO_REPLY_MASK, Milter.STEP_MAX_DATA_SIZE_MASK),
                         (0x1FF, 0x1FFFFF, 0x37F, 0xFF080, 0x30000000))

    def test_server_side_values_keep_their_bytes(self):
        latin1 = "caf\udce9"
        modification = Milter.Modification.new_add_header("X-" + latin1, latin1)
        self.assertEqual(modification.get_value().encode("utf-8", "surrogateescape"), b"caf\xe9")
        message = Milter.Message.new()
        message.set_from("<" + latin1 + "@x>", ["X=" + latin1])
        message.add_recipient("<r" + latin1 + "@x>", None)
        for _ in range(2):
            self.assertEqual([r.encode("utf-8", "surrogateescape") for r in message.get_recipients()],
                             [b"<rcaf\xe9@x>"])
        self.assertEqual([p.encode("utf-8", "surrogateescape") for p in message.get_from_parameters()],
                         [b"X=caf\xe9"])
        message.remove_recipient("<r" + latin1 + "@x>")
        self.assertEqual(message.get_recipients(), [])


class TestCommandLine(unittest.TestCase):
    def test_options_are_taken_and_the_rest_stays(self):
        client = Milter.Client.new()
        argv = client.parse_command_line(["filter", "-s", "inet:10025@localhost", "--timeout", "7",
                                          "--max-connections=3", "--own-option", "file"])
        self.assertEqual(argv, ["filter", "--own-option", "file"])
        self.assertEqual(client.get_connection_spec(), "inet:10025@localhost")
        self.assertEqual(client.props.timeout, 7)
        self.assertEqual(client.props.max_connections, 3)

    def test_an_invalid_value_raises(self):
        client = Milter.Client.new()
        with self.assertRaises(GLib.Error) as raised:
            client.parse_command_line(["filter", "--timeout", "soon"])
        self.assertEqual(raised.exception.domain, "g-option-context-error-quark")
        with self.assertRaises(GLib.Error) as raised:
            client.parse_command_line(["filter", "-s", "tcp:25"])
        self.assertIn("tcp:25", raised.exception.message)


class TestImport(unittest.TestCase):
    def test_from_the_build_tree(self):
        build = os.path.realpath(os.environ["MILTER_BUILD_ROOT"])
        self.assertEqual([os.path.realpath(path) for path in Milter.__path__],
                         [os.path.join(build, "milter", "Milter-1.0.typelib")])
        with open("/proc/self/maps") as maps:
            libraries = {line.split()[-1] for line in maps if "libmilter-glib-1.0.so" in line}
        self.assertTrue(libraries)
        self.assertTrue(all(os.path.realpath(path).startswith(build + "/") for path in libraries),
                        libraries)
        self.assertEqual(Status.DEFAULT, 0)
        self.assertEqual(Status.__gtype__.name, "MilterStatus")


if __name__ == "__main__":
    unittest.main(verbosity=2)
