#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Runs milter-test-server against a filter built on Sendmail's libmilter
(libmilter-filter.c) and against small fake milters written here, and
checks the output and exit status of every option. Prints TAP.

    test-milter-test-server.py MILTER-TEST-SERVER LIBMILTER-FILTER

The libmilter filter listens on a Unix socket in a temporary directory; it
is killed when the script ends, however it ends (and it kills itself if
this script dies first)."""

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

TOOL = sys.argv[1]
FILTER = sys.argv[2]
TMPDIR = tempfile.mkdtemp(prefix="milter-interop-")
SOCKET = os.path.join(TMPDIR, "libmilter.sock")
SPEC = "unix:" + SOCKET

filter_process = None
tests = []


def test(function):
    tests.append(function)
    return function


class Result:
    def __init__(self, completed):
        self.status = completed.returncode
        self.stdout = completed.stdout.decode("utf-8", "replace")
        self.stderr = completed.stderr.decode("utf-8", "replace")

    def __str__(self):
        return "exit status %d\n--- stdout\n%s--- stderr\n%s" % (
            self.status, self.stdout, self.stderr)


def run(*args, spec=SPEC, timeout=120):
    command = [TOOL] + (["-s", spec] if spec is not None else []) + list(args)
    completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=timeout, check=False)
    return Result(completed)


def check(condition, result, what):
    if not condition:
        raise AssertionError("%s\n%s" % (what, result))


def expect_status(result, status):
    check(result.status == status, result, "expected exit status %d" % status)


def expect_line(result, line, stream="stdout"):
    text = result.stdout if stream == "stdout" else result.stderr
    check(line in text.splitlines(), result, "expected the line %r on %s" % (line, stream))


def expect_text(result, text, stream="stdout"):
    where = result.stdout if stream == "stdout" else result.stderr
    check(text in where, result, "expected %r on %s" % (text, stream))


def expect_no_text(result, text):
    check(text not in result.stdout, result, "did not expect %r" % text)


def message_part(result):
    check("message:\n" in result.stdout, result, "expected the message")
    return result.stdout.split("message:\n", 1)[1]


# ---- the filters --------------------------------------------------------

def start_filter():
    global filter_process
    log = open(os.path.join(TMPDIR, "filter.log"), "wb")
    filter_process = subprocess.Popen([FILTER, SPEC], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if filter_process.poll() is not None:
            raise RuntimeError("libmilter-filter exited with %d" % filter_process.returncode)
        try:
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            probe.connect(SOCKET)
            probe.close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("libmilter-filter did not start listening on " + SOCKET)


def stop_filter():
    if filter_process is not None and filter_process.poll() is None:
        filter_process.kill()
        filter_process.wait()


def packet(letter, data=b""):
    return struct.pack(">I", len(data) + 1) + letter + data


def read_packet(connection):
    header = b""
    while len(header) < 4:
        chunk = connection.recv(4 - len(header))
        if not chunk:
            return None, None
        header += chunk
    length = struct.unpack(">I", header)[0]
    data = b""
    while len(data) < length:
        chunk = connection.recv(length - len(data))
        if not chunk:
            return None, None
        data += chunk
    return data[:1], data[1:]


class FakeMilter:
    """A milter on a Unix socket that runs handler(connection) per
    connection, in a thread."""

    def __init__(self, name, handler):
        self.path = os.path.join(TMPDIR, name + ".sock")
        self.spec = "unix:" + self.path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(8)
        self.handler = handler
        self.connections = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(connection)
            threading.Thread(target=self.handler, args=(connection,), daemon=True).start()

    def close(self):
        self.listener.close()
        for connection in self.connections:
            connection.close()


# ---- single messages ----------------------------------------------------

@test
def default_message_passes():
    result = run()
    expect_status(result, 0)
    expect_line(result, "status: pass")
    expect_line(result, "add-header: X-Test-Filter: libmilter")
    expect_line(result, "add-header: X-Test-Connect: client.example.com [192.0.2.1]")
    expect_line(result, "add-header: X-Test-Helo: client.example.com")
    expect_line(result, "add-header: X-Test-From: <sender@example.com>")
    expect_line(result, "add-header: X-Test-Headers: 3")
    expect_line(result, "add-header: X-Test-Body: 25 bytes in 1 chunks")
    check(re.search(r"^elapsed-time: \d+\.\d+ s$", result.stdout, re.M), result,
          "expected the elapsed time")
    expect_no_text(result, "reply:")
    expect_no_text(result, "stage:")


@test
def header_option_and_reject():
    result = run("-h", "Subject: please reject this", "-h", "X-Other: 1")
    expect_status(result, 2)
    expect_line(result, "status: reject")
    expect_line(result, "reply: 550 5.7.1 Rejected by test filter")
    expect_no_text(result, "add-header:")


@test
def temporary_failure():
    result = run("--header", "Subject: tempfail please")
    expect_status(result, 3)
    expect_line(result, "status: temporary-failure")
    expect_line(result, "reply: 451 4.7.1 Try again later")


@test
def discard():
    result = run("-h", "Subject: discard me")
    expect_status(result, 4)
    expect_line(result, "status: discard")
    expect_no_text(result, "reply:")


@test
def accept_at_recipient():
    result = run("-r", "<accept@example.org>")
    expect_status(result, 0)
    expect_line(result, "status: accept")
    expect_line(result, "stage: envelope-recipient")


@test
def rejected_recipients():
    result = run("-r", "reject-recipient@example.org")
    expect_status(result, 2)
    expect_line(result, "status: reject")
    expect_line(result, "stage: envelope-recipient")
    expect_line(result, "reply: 550 5.1.1 No such user here")
    expect_line(result, "rejected-recipient: <reject-recipient@example.org> reject "
                        "550 5.1.1 No such user here")

    # One refused, one accepted: the message goes on to the other.
    result = run("-r", "<reject-recipient@example.org>", "--recipient", "<ok@example.org>",
                 "--output-message")
    expect_status(result, 0)
    expect_line(result, "status: pass")
    expect_line(result, "rejected-recipient: <reject-recipient@example.org> reject "
                        "550 5.1.1 No such user here")
    expect_line(result, "envelope-recipient: <ok@example.org>")
    expect_no_text(result, "envelope-recipient: <reject-recipient@example.org>")


@test
def quarantine_reason():
    result = run("-r", "<quarantine@example.org>")
    expect_status(result, 0)
    expect_line(result, "quarantine: test quarantine")
    expect_line(result, "quarantine-reason: test quarantine")
    expect_no_text(result, "message:")


@test
def every_modification_kind():
    result = run("-r", "<replace-body@example.org>", "-r", "<add-recipient@example.org>",
                 "-r", "<delete-recipient@example.org>", "-r", "<change-from@example.org>",
                 "-r", "<quarantine@example.org>", "-r", "<change-header@example.org>",
                 "-h", "Subject: hello", "-h", "X-Delete-Me: yes", "-b", "old body\n",
                 "--output-message")
    expect_status(result, 0)
    expect_line(result, "status: pass")
    for line in ["replace-body: 30 bytes",
                 "add-recipient: <added@example.org>",
                 "add-recipient: <added-with-parameters@example.org> NOTIFY=NEVER",
                 "delete-recipient: <delete-recipient@example.org>",
                 "change-from: <changed@example.com> RET=HDRS",
                 "quarantine: test quarantine",
                 "change-header: Subject[1]: changed subject",
                 "insert-header[0]: X-Inserted: top",
                 "delete-header: X-Delete-Me[1]",
                 "envelope-from: <changed@example.com> RET=HDRS",
                 "envelope-recipient: <replace-body@example.org>",
                 "envelope-recipient: <added@example.org>",
                 "envelope-recipient: <added-with-parameters@example.org> NOTIFY=NEVER",
                 "quarantine-reason: test quarantine"]:
        expect_line(result, line)
    expect_no_text(result, "envelope-recipient: <delete-recipient@example.org>")
    message = message_part(result)
    headers, body = message.split("\r\n\r\n", 1)
    header_lines = headers.split("\r\n")
    check(header_lines[0] == "X-Inserted: top", result, "X-Inserted must be the first header")
    check("Subject: changed subject" in header_lines, result, "the Subject must be changed")
    check(not any(h.startswith("X-Delete-Me") for h in header_lines), result,
          "X-Delete-Me must be gone")
    check("X-Test-Filter: libmilter" in header_lines, result, "the added header must be there")
    check(body == "Replaced by the test filter.\r\n", result, "the body must be replaced")


@test
def connect_host_and_address():
    result = run("--connect-host", "mx.test.example", "--connect-address", "inet:25@192.0.2.7")
    expect_status(result, 0)
    expect_line(result, "add-header: X-Test-Connect: mx.test.example [192.0.2.7]")
    result = run("--connect-address", "inet6:2525@[2001:db8::7]")
    expect_line(result, "add-header: X-Test-Connect: client.example.com [2001:db8::7]")
    result = run("--connect-address", "unix:/run/smtpd.sock")
    expect_line(result, "add-header: X-Test-Connect: client.example.com [unix]")
    result = run("--connect-address", "bogus")
    expect_status(result, 1)
    expect_text(result, "--connect-address", "stderr")


@test
def helo_fqdn():
    result = run("--helo-fqdn", "helo.test.example")
    expect_status(result, 0)
    expect_line(result, "add-header: X-Test-Helo: helo.test.example")


@test
def from_with_parameters():
    result = run("-f", "from-user@example.net SIZE=100 BODY=8BITMIME", "--output-message")
    expect_status(result, 0)
    expect_line(result, "add-header: X-Test-From: <from-user@example.net> SIZE=100 BODY=8BITMIME")
    expect_line(result, "envelope-from: <from-user@example.net> SIZE=100 BODY=8BITMIME")
    result = run("--from", "<>")
    expect_line(result, "add-header: X-Test-From: <>")


@test
def macros_per_stage():
    result = run("--connect-macro", "test_connect:c1",
                 "--helo-macro", "{test_helo}:h1",
                 "--envelope-from-macro", "test_envelope_from:m1",
                 "--envelope-recipient-macro", "test_envelope_recipient:r1",
                 "--data-macro", "test_data:t1",
                 "--end-of-header-macro", "test_end_of_header:n1",
                 "--end-of-message-macro", "test_end_of_message:e1")
    expect_status(result, 0)
    expect_line(result, "add-header: X-Test-Macros: connect=c1 helo=h1 envelope-from=m1 "
                        "envelope-recipient=r1 data=t1 end-of-header=n1 end-of-message=e1")
    result = run("--data-macro", "missing-colon")
    expect_status(result, 1)
    expect_text(result, "--data-macro needs NAME:VALUE", "stderr")


@test
def body_chunks():
    result = run("-h", "Subject: body", "-b", "first line\n", "--body", "second",
                 "--output-message")
    expect_status(result, 0)
    # LF became CRLF: 12 + 6 bytes, one body command per chunk.
    expect_line(result, "add-header: X-Test-Body: 18 bytes in 2 chunks")
    check(message_part(result).endswith("\r\n\r\nfirst line\r\nsecond"), result,
          "the body must be the chunks")


MULTIPART = (
    "From: Alice <alice@example.com>\n"
    "To: bob@example.org\n"
    "Subject: multipart test\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed;\n"
    "\tboundary=\"==XYZ==\"\n"
    "\n"
    "This is a multi-part message in MIME format.\n"
    "\n"
    "--==XYZ==\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "\n"
    "Hello, Bob: caf\u00e9.\n"
    "\n"
    "--==XYZ==\n"
    "Content-Type: application/octet-stream; name=\"a.bin\"\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "AAECAwQFBgcICQ==\n"
    "\n"
    "--==XYZ==--\n")


@test
def mail_file_multipart():
    path = os.path.join(TMPDIR, "multipart.eml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(MULTIPART)
    crlf = MULTIPART.replace("\n", "\r\n").encode("utf-8")
    body = crlf.split(b"\r\n\r\n", 1)[1]
    result = run("-m", path, "--output-message")
    expect_status(result, 0)
    expect_line(result, "add-header: X-Test-Headers: 5")
    expect_line(result, "add-header: X-Test-Body: %d bytes in 1 chunks" % len(body))
    message = message_part(result)
    check(message.startswith("From: Alice <alice@example.com>\r\nTo: bob@example.org\r\n"
                             "Subject: multipart test\r\nMIME-Version: 1.0\r\n"
                             "Content-Type: multipart/mixed;\r\n\tboundary=\"==XYZ==\"\r\n"
                             "X-Test-Filter: libmilter\r\n"), result, "the headers must be kept")
    check(message.encode("utf-8").endswith(b"\r\n\r\n" + body), result, "the body must be kept")
    # --header adds to the file's headers.
    result = run("--mail-file", path, "-h", "X-Extra: 1")
    expect_line(result, "add-header: X-Test-Headers: 6")
    result = run("-m", os.path.join(TMPDIR, "missing.eml"))
    expect_status(result, 1)


@test
def negotiate_version():
    result = run("--negotiate-version", "2", "--data-macro", "test_data:t1", "-v")
    expect_status(result, 0)
    expect_text(result, "[negotiate] offer version=2", "stderr")
    expect_text(result, "[negotiate] milter version=2", "stderr")
    # Protocol version 2 has no DATA command, so the filter never saw it.
    expect_text(result, "envelope-recipient= data= end-of-header=")
    result = run("--negotiate-version", "4", "--data-macro", "test_data:t1", "-v")
    expect_text(result, "[negotiate] milter version=4", "stderr")
    expect_text(result, " data=t1 ")
    result = run("--negotiate-version", "5")
    expect_status(result, 1)
    expect_text(result, "must be 2, 3, 4 or 6", "stderr")


@test
def read_timeout():
    result = run("-r", "<slow-recipient@example.org>", "--read-timeout", "0.5")
    expect_status(result, 1)
    expect_line(result, "status: error")
    expect_text(result, "Timed out after 0.5 s waiting for the milter's reply to "
                        "envelope-recipient (R)")


@test
def end_of_message_timeout():
    result = run("-r", "<slow-end-of-message@example.org>", "--end-of-message-timeout", "0.5")
    expect_status(result, 1)
    expect_text(result, "Timed out after 0.5 s waiting for the milter's reply to "
                        "end-of-message (E)")
    # The read timeout does not apply to end-of-message.
    result = run("-r", "<slow-end-of-message@example.org>", "--read-timeout", "0.5")
    expect_status(result, 0)
    expect_line(result, "status: pass")


@test
def connect_timeout():
    # A listener whose accept queue is full: connection requests go
    # unanswered.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname(), timeout=2)
    try:
        port = listener.getsockname()[1]
        result = run("--connect-timeout", "0.5", "--read-timeout", "1",
                     spec="inet:%d@127.0.0.1" % port)
        expect_status(result, 1)
        expect_text(result, "Timed out after 0.5 s connecting to the milter")
    finally:
        filler.close()
        listener.close()


@test
def write_timeout():
    def handler(connection):
        letter, _ = read_packet(connection)
        # No connect/HELO/MAIL/RCPT/DATA/headers/end-of-header, no reply to
        # body chunks: the body goes out in one go, and is never read.
        steps = 0x1 | 0x2 | 0x4 | 0x8 | 0x20 | 0x40 | 0x200 | 0x80000
        connection.sendall(packet(b"O", struct.pack(">III", 6, 0, steps)))
        time.sleep(30)

    fake = FakeMilter("no-reader", handler)
    try:
        path = os.path.join(TMPDIR, "big.eml")
        with open(path, "wb") as f:
            f.write(b"Subject: big\r\n\r\n" + b"x" * 78 + b"\r\n" + (b"y" * 78 + b"\r\n") * 60000)
        result = run("-m", path, "--write-timeout", "0.5", spec=fake.spec)
        expect_status(result, 1)
        expect_text(result, "Timed out after 0.5 s writing to the milter")
    finally:
        fake.close()


def replying_at(step_letter, reply):
    """A fake milter's handler: negotiates nothing away, sends reply to the
    command step_letter and continue to every other one."""
    def handler(connection):
        read_packet(connection)
        connection.sendall(packet(b"O", struct.pack(">III", 6, 0, 0)))
        while True:
            letter, _ = read_packet(connection)
            if letter is None:
                return
            if letter == step_letter:
                connection.sendall(reply)
            elif letter in b"CHMRTLNBEU":
                connection.sendall(packet(b"c"))
    return handler


@test
def shutdown():
    fake = FakeMilter("shutdown", replying_at(b"C", packet(b"4")))
    try:
        result = run(spec=fake.spec)
        expect_status(result, 5)
        expect_line(result, "status: shutdown")
        expect_line(result, "stage: connect")
    finally:
        fake.close()


@test
def reply_code_421_ends_the_session():
    """Postfix disconnects after any 421, also one refusing a recipient."""
    fake = FakeMilter("reply421", replying_at(b"R", packet(b"y", b"421 4.7.0 Going down\0")))
    try:
        result = run("-r", "<a@example.org>", "-r", "<b@example.org>", spec=fake.spec)
        expect_status(result, 5)
        expect_line(result, "status: shutdown")
        expect_line(result, "stage: envelope-recipient")
    finally:
        fake.close()


@test
def reply_text_as_the_client_gets_it():
    """Postfix turns %% into % and drops a single %."""
    fake = FakeMilter("percent", replying_at(b"M", packet(b"y", b"550 5.7.1 100%% sure, 50% off\0")))
    try:
        result = run(spec=fake.spec)
        expect_status(result, 2)
        expect_line(result, "reply: 550 5.7.1 100% sure, 50 off")
    finally:
        fake.close()


@test
def protocol_error():
    def handler(connection):
        read_packet(connection)
        connection.sendall(packet(b"O", struct.pack(">III", 7, 0, 0)))
        time.sleep(5)

    fake = FakeMilter("bad-version", handler)
    try:
        result = run(spec=fake.spec)
        expect_status(result, 1)
        expect_line(result, "status: error")
        expect_line(result, "stage: negotiate")
        expect_text(result, "requested protocol version 7, above the offered version 6")
    finally:
        fake.close()


def recording_milter(name):
    """A fake milter that answers continue to everything and records, for
    each connection, the command letters (macros left out) and every
    packet as (letter, data)."""
    sessions = []
    packets = []

    def handler(connection):
        letters = []
        sessions.append(letters)
        received = []
        packets.append(received)
        read_packet(connection)
        connection.sendall(packet(b"O", struct.pack(">III", 6, 0, 0)))
        while True:
            letter, data = read_packet(connection)
            if letter is None or letter == b"Q":
                return
            received.append((letter, data))
            if letter == b"D":
                continue
            letters.append(letter.decode())
            if letter != b"A":
                connection.sendall(packet(b"c"))

    return FakeMilter(name, handler), sessions, packets


@test
def abort_after():
    fake, sessions, _ = recording_milter("abort-after")
    try:
        result = run("--abort-after", "header", "-h", "Subject: one", "-h", "X-Two: 2",
                     spec=fake.spec)
        expect_status(result, 0)
        expect_line(result, "status: aborted")
        expect_line(result, "stage: header")
        check("".join(sessions[-1]) == "CHMRTLA", result,
              "commands %r: abort right after the first header" % sessions[-1])

        result = run("--abort-after", "envelope-recipient", "-r", "a@example.org",
                     "-r", "b@example.org", "-v", spec=fake.spec)
        expect_line(result, "status: aborted")
        expect_text(result, "[abort] after envelope-recipient", "stderr")
        check("".join(sessions[-1]) == "CHMRA", result, "commands %r" % sessions[-1])

        # Each message of a connection is aborted; the connection goes on.
        result = run("--abort-after", "data", "--n-messages", "3",
                     "--messages-per-connection", "3", "--json", spec=fake.spec)
        expect_status(result, 0)
        data = json.loads(result.stdout)
        check(data["statuses"]["aborted"] == 3 and data["errors"] == 0, result, "counts")
        check("".join(sessions[-1]) == "CH" + "MRTA" * 3, result, "commands %r" % sessions[-1])

        result = run("--abort-after", "body", "-b", "one", "-b", "two", spec=fake.spec)
        expect_line(result, "stage: body")
        check("".join(sessions[-1]) == "CHMRTNBA", result, "commands %r" % sessions[-1])
    finally:
        fake.close()

    result = run("--abort-after", "quit")
    expect_status(result, 1)
    expect_text(result, "--abort-after must be envelope-from, envelope-recipient, data, "
                        "header, end-of-header or body, not “quit”", "stderr")


@test
def raw_bytes_arguments():
    # Mail is not always UTF-8: what the command line gives reaches the
    # milter byte for byte.
    fake, _, packets = recording_milter("raw-bytes")
    try:
        result = run(b"--connect-host=h\xe9", b"--helo-fqdn=e\xe9", b"-f", b"<f\xe9@x>",
                     b"-r", b"<r\xff@x>", b"-h", b"X-Raw: caf\xe9", b"-b", b"b\xe9",
                     b"--connect-macro=j:v\xe9", spec=fake.spec)
        expect_status(result, 0)
        received = packets[-1]
        for letter, data in [(b"C", b"h\xe9\0"), (b"H", b"e\xe9\0"), (b"M", b"<f\xe9@x>\0"),
                             (b"R", b"<r\xff@x>\0"), (b"L", b"X-Raw\0caf\xe9\0"),
                             (b"B", b"b\xe9"), (b"D", b"j\0v\xe9\0")]:
            check(any(l == letter and data in d for l, d in received), result,
                  "%r with %r among %r" % (letter, data, received))
        # --json keeps them too: bytes that are not UTF-8 come back with
        # Python's surrogateescape.
        result = run(b"-f", b"<f\xe9@x>", b"-r", b"<r\xff@x>", b"-b", b"b\xe9\x01",
                     b"--json", b"--output-message", spec=fake.spec)
        message = json.loads(result.stdout)["message"]
        raw = [text.encode("utf-8", "surrogateescape")
               for text in (message["from"], message["recipients"][0]["address"], message["data"])]
        check(raw[:2] == [b"<f\xe9@x>", b"<r\xff@x>"] and raw[2].endswith(b"\r\nb\xe9\x01"),
              result, "JSON bytes %r" % raw)
    finally:
        fake.close()


@test
def json_output():
    result = run("--json")
    expect_status(result, 0)
    data = json.loads(result.stdout)
    check(data["status"] == "pass", result, "status")
    check(data["reply"] is None and data["error"] is None, result, "reply and error")
    check(data["quarantine-reason"] is None, result, "no quarantine")
    check(data["negotiated"]["version"] == 6, result, "negotiated version")
    check({"type": "add-header", "name": "X-Test-Filter", "value": "libmilter"}
          in data["modifications"], result, "modifications")
    check(isinstance(data["elapsed-time"], float), result, "elapsed time")

    result = run("--json", "-h", "Subject: reject", "-r", "<reject-recipient@example.org>",
                 "-r", "<x@example.org>")
    expect_status(result, 2)
    data = json.loads(result.stdout)
    check(data["status"] == "reject" and data["reply"] == "550 5.7.1 Rejected by test filter",
          result, "reject")
    check(data["rejected-recipients"] == [{"address": "<reject-recipient@example.org>",
                                           "status": "reject",
                                           "reply": "550 5.1.1 No such user here"}],
          result, "rejected recipients")

    result = run("--json", "--output-message", "-r", "<replace-body@example.org>",
                 "-r", "<quarantine@example.org>")
    data = json.loads(result.stdout)
    message = data["message"]
    check(message["quarantine-reason"] == "test quarantine", result, "quarantine")
    check(data["quarantine-reason"] == "test quarantine", result, "quarantine reason")
    check(message["data"].endswith("\r\n\r\nReplaced by the test filter.\r\n"), result, "body")
    check({"type": "replace-body", "body": "Replaced by the test filter.\r\n"}
          in data["modifications"], result, "replace-body")
    check(message["recipients"][0] == {"address": "<replace-body@example.org>",
                                       "parameters": []}, result, "recipients")

    result = run("--json", spec="unix:" + os.path.join(TMPDIR, "nothing.sock"))
    expect_status(result, 1)
    data = json.loads(result.stdout)
    check(data["status"] == "error" and "Cannot connect" in data["error"], result, "error")


@test
def verbose_and_progress():
    result = run("-v", "-r", "<progress@example.org>")
    expect_status(result, 0)
    for text in ["[connection] " + SPEC, "[negotiate] offer version=6",
                 "[negotiate] milter version=6", "[connect] client.example.com",
                 "[envelope-from] <sender@example.com>",
                 "[envelope-recipient] <progress@example.org>", "[data]", "[header] From",
                 "[end-of-header]", "[body] 25 bytes", "[end-of-message] progress",
                 "[end-of-message] -> continue", "[end-of-message] add-header: X-Test-Filter: "
                 "libmilter", "[quit]"]:
        expect_text(result, text, "stderr")
    check(result.stderr.count("[end-of-message] progress") == 3, result, "three progress")
    check(run().stderr == "", result, "quiet without -v")


@test
def verbose_marks_negotiated_steps():
    """-v says which statuses the milter never gave: steps it asked to
    leave out, and steps it asked to send without waiting for a reply."""
    def handler(connection):
        read_packet(connection)
        connection.sendall(packet(b"O", struct.pack(">III", 6, 0, 0x1 | 0x2000)))  # NOCONNECT, NR_HELO
        while True:
            letter, _ = read_packet(connection)
            if letter is None or letter == b"Q":
                return
            if letter not in (b"D", b"A", b"H"):
                connection.sendall(packet(b"c"))

    fake = FakeMilter("negotiated-steps", handler)
    try:
        result = run("-v", spec=fake.spec)
        expect_status(result, 0)
        expect_line(result, "[connect] -> continue (not sent: negotiated away)", "stderr")
        expect_line(result, "[helo] -> continue (no reply: negotiated away)", "stderr")
        expect_line(result, "[envelope-from] -> continue", "stderr")
    finally:
        fake.close()


@test
def usage_errors():
    result = run(spec=None)
    expect_status(result, 1)
    expect_text(result, "--connection-spec is required", "stderr")
    result = run(spec="tcp:25")
    expect_status(result, 1)
    expect_text(result, "--connection-spec", "stderr")
    result = run("-h", "no colon")
    expect_status(result, 1)
    expect_text(result, "-h needs NAME:VALUE, not “no colon”", "stderr")
    result = run("--header", ":empty name")
    expect_status(result, 1)
    expect_text(result, "--header needs NAME:VALUE", "stderr")
    result = run("--bogus-option")
    expect_status(result, 1)
    result = run(spec="unix:" + os.path.join(TMPDIR, "nothing.sock"))
    expect_status(result, 1)
    expect_line(result, "status: error")
    expect_text(result, "Cannot connect to the milter at unix:")


@test
def help_text():
    result = run("--help", spec=None)
    expect_status(result, 0)
    for text in ["-h, --header=NAME:VALUE", "-s, --connection-spec=SPEC", "Exit status:",
                 "  0  pass, accept or aborted", "  2  reject", "  3  temporary-failure",
                 "  4  discard", "  5  shutdown", "--n-messages=N", "--messages-per-connection=M",
                 "--abort-after=STEP"]:
        expect_text(result, text)


# ---- load mode ----------------------------------------------------------

def check_load(result, n_messages):
    expect_status(result, 0)
    expect_line(result, "messages: %d" % n_messages)
    expect_line(result, "errors: 0")
    expect_line(result, "statuses: pass=%d" % n_messages)
    for key in ["messages/s", "latency-p50", "latency-p99"]:
        check(re.search(r"^%s: \d+\.\d+" % re.escape(key), result.stdout, re.M), result, key)


@test
def load_one_message_per_connection():
    result = run("--n-messages", "1000", "--concurrency", "64", timeout=300)
    check_load(result, 1000)
    expect_line(result, "concurrency: 64")
    expect_line(result, "messages-per-connection: 1")


@test
def load_64_sessions_1000_messages_each():
    result = run("--n-messages", "64000", "--concurrency", "64",
                 "--messages-per-connection", "1000", timeout=600)
    check_load(result, 64000)
    print("# " + " ".join(result.stdout.splitlines()))


@test
def load_json_and_errors():
    result = run("--n-messages", "200", "--concurrency", "100", "--messages-per-connection", "3",
                 "--json", "-h", "Subject: reject")
    expect_status(result, 0)
    data = json.loads(result.stdout)
    check(data["messages"] == 200 and data["errors"] == 0 and data["statuses"]["reject"] == 200,
          result, "counts")
    # A milter that is not there: every message is an error, nothing hangs.
    result = run("--n-messages", "50", "--concurrency", "8",
                 spec="unix:" + os.path.join(TMPDIR, "nothing.sock"))
    expect_status(result, 1)
    expect_line(result, "messages: 50")
    expect_line(result, "errors: 50")
    expect_text(result, "first-error: Cannot connect to the milter")


def main():
    def terminate(signum, frame):
        raise SystemExit("killed by signal %d" % signum)

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    print("1..%d" % len(tests), flush=True)
    failed = 0
    try:
        start_filter()
        for number, function in enumerate(tests, 1):
            name = function.__name__
            try:
                function()
                print("ok %d - %s" % (number, name), flush=True)
            except Exception:
                failed += 1
                print("not ok %d - %s" % (number, name))
                for line in traceback.format_exc().splitlines():
                    print("# " + line)
                sys.stdout.flush()
            if filter_process.poll() is not None:
                print("Bail out! libmilter-filter died with %d" % filter_process.returncode)
                return 1
    finally:
        stop_filter()
        shutil.rmtree(TMPDIR, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
