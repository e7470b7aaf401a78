#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""MilterServerContext, MilterMessage and MilterModification from Python
through GObject-Introspection: the script plays the milter over a socket
pair and drives the context on the GLib main loop. Exits 77 (skipped)
without PyGObject."""

import socket
import struct
import sys
import time

try:
    import gi
except ImportError:
    sys.exit(77)
gi.require_version("Milter", "1.0")
from gi.repository import Gio, GLib, Milter  # noqa: E402

TIMEOUT = 5.0
main_context = GLib.MainContext.default()


def pump_until(predicate, what):
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        main_context.iteration(False) or time.sleep(0.001)


class Peer:
    """The milter end: reads the context's packets, sends replies."""

    def __init__(self, sock):
        self.sock = sock
        self.sock.setblocking(False)
        self.buffer = b""

    def read(self):
        def complete():
            if len(self.buffer) >= 4:
                length = struct.unpack(">I", self.buffer[:4])[0]
                if len(self.buffer) >= 4 + length:
                    return True
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return False
            if not data:
                raise AssertionError("the context closed the connection")
            self.buffer += data
            return False

        pump_until(complete, "a packet")
        length = struct.unpack(">I", self.buffer[:4])[0]
        letter, data = self.buffer[4:5], self.buffer[5:4 + length]
        self.buffer = self.buffer[4 + length:]
        return letter, data

    def send(self, letter, data=b""):
        self.sock.setblocking(True)
        self.sock.sendall(struct.pack(">I", len(data) + 1) + letter + data)
        self.sock.setblocking(False)


def call(start, finish):
    """Starts an asynchronous call and returns a function that waits for
    its result (or raises its GLib.Error)."""
    results = []
    start(None, lambda source, result: results.append(result))

    def wait():
        pump_until(lambda: results, "the call to complete")
        return finish(results[0])
    return wait


def main():
    mta_end, milter_end = socket.socketpair()
    stream = Gio.Socket.new_from_fd(mta_end.detach()).connection_factory_create_connection()
    context = Milter.ServerContext.new()
    context.set_stream(stream)
    context.props.default_macros = False
    assert context.props.read_timeout == 30.0
    peer = Peer(milter_end)

    # Negotiation, with a macro list for end-of-message.
    wait = call(lambda c, cb: context.negotiate_async(None, c, cb), context.negotiate_finish)
    letter, data = peer.read()
    assert (letter, data) == (b"O", struct.pack(">III", 6, 0x1FF, 0x1FFFFF)), data
    peer.send(b"O", struct.pack(">III", 6, 0x1FF, 0) + struct.pack(">I", 5) + b"i {msg_id}\0")
    assert wait() is True
    option = context.get_option()
    assert option.get_version() == 6
    assert context.props.option.get_version() == 6
    requests = context.get_macros_requests()
    assert requests.get_symbols(Milter.MacroStage.END_OF_MESSAGE) == ["i", "{msg_id}"]

    # A verdict with a reply code.
    wait = call(lambda c, cb: context.helo_async("client.example", c, cb), context.helo_finish)
    assert peer.read() == (b"D", b"H")
    assert peer.read() == (b"H", b"client.example\0")
    peer.send(b"y", b"550 5.7.1 Go away\0")
    assert wait() == Milter.Status.REJECT
    assert context.get_reply_text() == "550 5.7.1 Go away"

    # Modifications: signals, the list, and applying them to a message.
    seen = []
    context.connect("add-header", lambda c, name, value: seen.append((name, value)))
    context.connect("replace-body", lambda c, chunk: seen.append(chunk.get_data()))
    context.connect("progress", lambda c: seen.append("progress"))
    wait = call(context.end_of_message_async, context.end_of_message_finish)
    assert peer.read() == (b"D", b"E")
    assert peer.read() == (b"E", b"")
    peer.send(b"p")
    peer.send(b"h", b"X-Python\0yes\0")
    peer.send(b"b", b"new ")
    peer.send(b"b", b"body\r\n")
    peer.send(b"2", b"<b@example.org>\0NOTIFY=NEVER\0")
    peer.send(b"c")
    assert wait() == Milter.Status.CONTINUE
    assert seen == ["progress", ("X-Python", "yes"), b"new ", b"body\r\n"], seen
    modifications = context.get_modifications()
    assert [m.to_string() for m in modifications] == [
        "add-header: X-Python: yes", "replace-body: 10 bytes",
        "add-recipient: <b@example.org> NOTIFY=NEVER"]
    assert modifications[1].get_modification_type() == Milter.ModificationType.REPLACE_BODY
    assert modifications[1].get_body().get_data() == b"new body\r\n"

    message = Milter.Message.new_from_data(GLib.Bytes.new(b"Subject: hi\n\nold\n"))
    message.set_from("<a@example.com>", None)
    message.add_recipient("<c@example.org>", ["ORCPT=rfc822;c@example.org"])
    assert message.apply_modifications(modifications)
    assert message.to_bytes().get_data() == b"Subject: hi\r\nX-Python: yes\r\n\r\nnew body\r\n"
    assert message.get_recipients() == ["<c@example.org>", "<b@example.org>"]
    assert message.get_recipient_parameters(1) == ["NOTIFY=NEVER"]
    assert message.props.recipients == ["<c@example.org>", "<b@example.org>"]

    # Errors are GLib.Error in the library's domains; the context closes.
    try:
        Milter.Message.new_from_data(GLib.Bytes.new(b" folded first\r\n\r\n"))
        raise AssertionError("a continuation line first must fail")
    except GLib.Error as error:
        assert error.domain == "milter-message-error-quark", error.domain
    wait = call(lambda c, cb: context.data_async(c, cb), context.data_finish)
    assert peer.read() == (b"D", b"T")
    assert peer.read() == (b"T", b"")
    peer.send(b"Z")
    try:
        wait()
        raise AssertionError("an unknown reply must fail")
    except GLib.Error as error:
        assert error.domain == "milter-decoder-error-quark", error.domain
        assert "Unknown reply 0x5a (Z)" in error.message, error.message
    assert context.is_closed()
    print("ok")


if __name__ == "__main__":
    main()
