#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""milter-test-client and the C examples, run as a user runs them: each
filter listens on a unix socket in a temporary directory and
milter-test-server plays the MTA."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

BUILD = os.environ["MILTER_BUILD_ROOT"]
TEST_SERVER = os.path.join(BUILD, "tools", "milter-test-server")
TEST_CLIENT = os.path.join(BUILD, "milter-client", "milter-test-client")
EXAMPLES = os.path.join(BUILD, "milter-client", "examples")


class Filter:
    """A filter process on a unix socket; always stopped."""

    def __init__(self, program, *args):
        self.dir = tempfile.mkdtemp(prefix="milter-examples-")
        self.spec = "unix:" + os.path.join(self.dir, "filter.sock")
        self.output_path = os.path.join(self.dir, "output")
        self.output = open(self.output_path, "w+")
        self.process = subprocess.Popen([program, "-s", self.spec, *args],
                                        stdout=self.output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.spec[5:]):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("the filter did not start: " + self.read_output())
            time.sleep(0.01)

    def read_output(self):
        self.output.flush()
        with open(self.output_path) as f:
            return f.read()

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.output.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.process.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def drive(spec, *args, expect_exit=None):
    """Runs milter-test-server --json against spec; returns the result."""
    run = subprocess.run([TEST_SERVER, "-s", spec, "--json", *args],
                         capture_output=True, text=True, timeout=60)
    result = json.loads(run.stdout)
    result["exit"] = run.returncode
    if expect_exit is not None:
        assert run.returncode == expect_exit, (run.returncode, run.stdout, run.stderr)
    return result


def modifications(result, kind):
    return [m for m in result["modifications"] if m["type"] == kind]


class TestClientTool(unittest.TestCase):
    def test_prints_every_event_with_macros(self):
        with Filter(TEST_CLIENT) as f:
            drive(f.spec, "--connect-macro", "j:mx.example", "-h", "Subject:hi",
                  "-b", "line one", expect_exit=0)
            # The MTA emulator closes the connection; give the output a moment.
            time.sleep(0.2)
            out = f.read_output()
        for expected in ["negotiate: version=6", "define-macro: C:", "j=mx.example",
                         "connect: client.example.com inet:50443@192.0.2.1",
                         "helo: client.example.com", "envelope-from: <sender@example.com>",
                         "envelope-recipient: <recipient@example.org>", "data",
                         "define-macro: H:\n", "header: Subject: hi", "end-of-header", "body: 8 bytes: line one",
                         "end-of-message", "message-processed: accept", "finished"]:
            self.assertIn(expected, out)

    def test_reply_and_reply_code(self):
        with Filter(TEST_CLIENT, "--reply", "envelope-recipient=reject",
                    "--reply-code", "550 5.1.1 No such user") as f:
            result = drive(f.spec, expect_exit=2)
        self.assertEqual(result["status"], "reject")
        self.assertEqual(result["stage"], "envelope-recipient")
        self.assertEqual(result["reply"], "550 5.1.1 No such user")

    def test_reply_statuses(self):
        for option, status, code in [("helo=temporary-failure", "temporary-failure", 3),
                                     ("end-of-message=discard", "discard", 4),
                                     ("data=accept", "accept", 0)]:
            with Filter(TEST_CLIENT, "--reply", option) as f:
                result = drive(f.spec, expect_exit=code)
            self.assertEqual(result["status"], status, option)

    def test_delay(self):
        with Filter(TEST_CLIENT, "--delay", "end-of-message=400") as f:
            started = time.monotonic()
            result = drive(f.spec, expect_exit=0)
            elapsed = time.monotonic() - started
            out = f.read_output()
        self.assertGreaterEqual(elapsed, 0.4)
        self.assertEqual(result["status"], "pass")
        self.assertIn("deferring the reply for 400 ms", out)

    def test_add_header(self):
        with Filter(TEST_CLIENT, "--add-header", "X-Test: yes",
                    "--add-header", "X-Other: 2") as f:
            result = drive(f.spec, expect_exit=0)
        self.assertEqual([(m["name"], m["value"]) for m in modifications(result, "add-header")],
                         [("X-Test", "yes"), ("X-Other", "2")])

    def test_quiet(self):
        with Filter(TEST_CLIENT, "-q") as f:
            drive(f.spec, expect_exit=0)
            self.assertEqual(f.read_output(), "")

    def test_bad_options(self):
        for args in [["--reply", "nowhere=reject"], ["--reply", "helo=maybe"],
                     ["--reply-code", "250 ok"], ["--delay", "helo=soon"]]:
            run = subprocess.run([TEST_CLIENT, *args], capture_output=True, text=True, timeout=10)
            self.assertEqual(run.returncode, 2, args)
            self.assertIn("milter-test-client:", run.stderr)


class TestExamples(unittest.TestCase):
    def test_out_of_descriptors_at_start(self):
        # So few descriptors that the pipe for signals cannot be made (or,
        # one more, the socket): a clear error and status 1, not a crash.
        import resource
        program = os.path.join(EXAMPLES, "add-header")
        linked = subprocess.run(["ldd", program], capture_output=True, text=True).stdout
        if "libasan" in linked:
            self.skipTest("AddressSanitizer needs descriptors of its own")
        directory = tempfile.mkdtemp(prefix="milter-examples-")
        try:
            for limit in (5, 6):
                run = subprocess.run([program, "-s", "unix:" + os.path.join(directory, "s")],
                                     capture_output=True, text=True, timeout=10,
                                     preexec_fn=lambda: resource.setrlimit(
                                         resource.RLIMIT_NOFILE, (limit, limit)))
                self.assertEqual(run.returncode, 1, run.stderr)
                self.assertIn("Too many open files", run.stderr)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def test_add_header(self):
        with Filter(os.path.join(EXAMPLES, "add-header")) as f:
            result = drive(f.spec, expect_exit=0)
        self.assertEqual(modifications(result, "add-header"),
                         [{"type": "add-header", "name": "X-Milter-Glib", "value": "add-header example"}])
        # Only end-of-message has a handler: everything else is left out.
        self.assertEqual(result["negotiated"]["step"] & 0x37f, 0x37f)

    def test_reject_pattern(self):
        with Filter(os.path.join(EXAMPLES, "reject-pattern"), "--pattern", "(?i)lottery") as f:
            clean = drive(f.spec, "-h", "Subject:hello", "-b", "nothing to see", expect_exit=0)
            subject = drive(f.spec, "-h", "Subject:You won the LOTTERY", expect_exit=2)
            body = drive(f.spec, "-h", "Subject:hi", "-b", "first chunk\n", "-b",
                         "play the lottery\n", expect_exit=2)
        self.assertEqual(clean["status"], "pass")
        for result in (subject, body):
            self.assertEqual(result["status"], "reject")
            self.assertEqual(result["reply"], "550 5.7.1 Message rejected: it matches a blocked pattern")

    def test_resolve_helo(self):
        with Filter(os.path.join(EXAMPLES, "resolve-helo")) as f:
            known = drive(f.spec, "--helo-fqdn", "localhost", expect_exit=0)
            unknown = drive(f.spec, "--helo-fqdn", "no-such-host.invalid", expect_exit=0)
        # GLib answers localhost itself, with either loopback address first.
        self.assertIn(modifications(known, "add-header")[0]["value"],
                      ["localhost=127.0.0.1", "localhost=::1"])
        self.assertEqual(modifications(unknown, "add-header")[0]["value"],
                         "no-such-host.invalid=unresolved")

    def test_resolve_helo_concurrent(self):
        # The lookups are deferred replies: many sessions at once still work.
        with Filter(os.path.join(EXAMPLES, "resolve-helo")) as f:
            run = subprocess.run([TEST_SERVER, "-s", f.spec, "--helo-fqdn", "localhost",
                                  "--n-messages", "200", "--concurrency", "32"],
                                 capture_output=True, text=True, timeout=120)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn("errors: 0", run.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
