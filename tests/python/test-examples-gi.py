#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Python examples in milter-client/examples/python, run as programs
on a unix socket and driven by milter-test-server: the same results as
the C examples (tests/test-examples.py)."""

import os
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from harness import TEST_SERVER, Filter, drive, header_modifications  # noqa: E402

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "..", "..", "milter-client", "examples", "python")


def example(name, *args):
    return Filter(sys.executable, os.path.join(EXAMPLES, name + ".py"), *args)


class TestExamples(unittest.TestCase):
    def assert_stops(self, running):
        # SIGTERM is a clean shutdown for a milter: exit status 0.
        self.assertEqual(running.stop(), 0, running.final_output)

    def test_add_header(self):
        with example("add-header") as f:
            result = drive(f.spec)
            self.assert_stops(f)
        self.assertEqual(result["exit"], 0, result)
        self.assertEqual(header_modifications(result), [("X-Milter-Glib", "add-header example")])
        # Only end-of-message has a handler: everything else is left out.
        self.assertEqual(result["negotiated"]["step"] & 0x37f, 0x37f)

    def test_daemon_with_workers_from_a_relative_script_path(self):
        # A daemon works from /; its workers, which run the script again,
        # start where the program was started, or "add-header.py" would not
        # be found and no worker would ever serve.
        import shutil
        import signal
        import time
        directory = tempfile.mkdtemp(prefix="milter-gi-daemon-")
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        socket_path = os.path.join(directory, "s.sock")
        pid_file = os.path.join(directory, "pid")
        start = subprocess.run([sys.executable, "add-header.py", "-s", "unix:" + socket_path,
                                "--daemon", "--n-workers", "1", "--pid-file", pid_file],
                               cwd=EXAMPLES, capture_output=True, text=True, timeout=60)
        self.assertEqual(start.returncode, 0, start.stderr)
        with open(pid_file) as f:
            pid = int(f.read())
        try:
            result = drive("unix:" + socket_path, "--read-timeout", "20")
            self.assertEqual(result["exit"], 0, result)
            self.assertEqual(header_modifications(result),
                             [("X-Milter-Glib", "add-header example")])
        finally:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.assertFalse(os.path.exists("/proc/%d" % pid), "the daemon did not stop")

    def test_reject_pattern(self):
        with example("reject-pattern", "--pattern", "(?i)lottery") as f:
            clean = drive(f.spec, "-h", "Subject:hello", "-b", "nothing to see")
            subject = drive(f.spec, "-h", "Subject:You won the LOTTERY")
            body = drive(f.spec, "-h", "Subject:hi", "-b", "first chunk\n", "-b",
                         "play the lottery\n")
            self.assert_stops(f)
        self.assertEqual((clean["status"], clean["exit"]), ("pass", 0))
        for result in (subject, body):
            self.assertEqual((result["status"], result["exit"]), ("reject", 2))
            self.assertEqual(result["reply"],
                             "550 5.7.1 Message rejected: it matches a blocked pattern")

    def test_reject_pattern_latin1(self):
        # Header values and the body need not be UTF-8.
        with tempfile.TemporaryDirectory() as directory, \
                example("reject-pattern", "--pattern", "(?i)lottery") as f:
            mails = []
            for subject in [b"caf\xe9", b"caf\xe9 LOTTERY"]:
                mails.append(os.path.join(directory, "%d.eml" % len(mails)))
                with open(mails[-1], "wb") as mail:
                    mail.write(b"Subject: " + subject + b"\r\n\r\nd\xe9j\xe0 vu\r\n")
            results = [drive(f.spec, "--mail-file", mail) for mail in mails]
            self.assert_stops(f)
        self.assertEqual([result["status"] for result in results], ["pass", "reject"])

    def test_reject_pattern_needs_a_pattern(self):
        run = subprocess.run([sys.executable, os.path.join(EXAMPLES, "reject-pattern.py")],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 2)
        self.assertIn("--pattern", run.stderr)

    def test_resolve_helo(self):
        with example("resolve-helo") as f:
            known = drive(f.spec, "--helo-fqdn", "localhost")
            unknown = drive(f.spec, "--helo-fqdn", "no-such-host.invalid")
            self.assert_stops(f)
        self.assertEqual((known["exit"], unknown["exit"]), (0, 0))
        # GLib answers localhost itself, with either loopback address first.
        self.assertIn(header_modifications(known)[0][1], ["localhost=127.0.0.1", "localhost=::1"])
        self.assertEqual(header_modifications(unknown),
                         [("X-HELO-Resolved", "no-such-host.invalid=unresolved")])

    def test_resolve_helo_concurrent(self):
        # The lookups are deferred replies: many sessions at once still work.
        with example("resolve-helo") as f:
            run = subprocess.run([TEST_SERVER, "-s", f.spec, "--helo-fqdn", "localhost",
                                  "--n-messages", "200", "--concurrency", "32"],
                                 capture_output=True, text=True, timeout=120)
            self.assert_stops(f)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn("errors: 0", run.stdout)

    def test_bad_spec(self):
        run = subprocess.run([sys.executable, os.path.join(EXAMPLES, "add-header.py"),
                              "-s", "nowhere:1"], capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 2, run.stderr)
        self.assertIn("add-header: Invalid connection spec “nowhere:1”", run.stderr)

    def test_every_filter_option(self):
        # Client options come from Milter.Client.parse_command_line, the
        # example's own from argparse.
        script = os.path.join(EXAMPLES, "reject-pattern.py")
        run = subprocess.run([sys.executable, script, "--help"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 0, run.stderr)
        for option in ["--connection-spec", "--timeout", "--n-workers", "--user", "--daemon"]:
            self.assertIn(option, run.stdout)
        run = subprocess.run([sys.executable, script, "--timeout", "soon", "-p", "x"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 2, run.stderr)
        self.assertIn("soon", run.stderr)
        run = subprocess.run([sys.executable, script, "--max-connections", "3", "-p", "x", "--nonsense"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 2, run.stderr)
        self.assertIn("unrecognized arguments: --nonsense", run.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
