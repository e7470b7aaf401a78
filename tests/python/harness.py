# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the Python GI tests share: the GLib main loop with a deadline, an
MTA played by Milter.ServerContext, and filter programs driven by
milter-test-server. Importing it exits 77 (meson: skipped) without
PyGObject; a missing Milter typelib is a failure."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

try:
    import gi
except ImportError:
    sys.exit(77)
gi.require_version("Gio", "2.0")
gi.require_version("Milter", "1.0")
from gi.repository import GLib, Milter  # noqa: E402

BUILD_ROOT = os.environ["MILTER_BUILD_ROOT"]
TEST_SERVER = os.path.join(BUILD_ROOT, "tools", "milter-test-server")
# Generous: sanitizer builds and a loaded CI machine are slow.
TIMEOUT = 20.0


def wait_for(predicate, what, timeout=TIMEOUT):
    """Runs the default main context until predicate() is true; fails
    after timeout seconds."""
    main_context = GLib.MainContext.default()
    deadline = time.monotonic() + timeout
    # A heartbeat, so that a blocking iteration returns to check the
    # deadline even when nothing else happens.
    heartbeat = GLib.timeout_add(20, lambda: GLib.SOURCE_CONTINUE)
    try:
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for " + what)
            main_context.iteration(True)
    finally:
        GLib.source_remove(heartbeat)


class MTA:
    """Plays the MTA with a Milter.ServerContext. Each command runs the
    main loop until the milter replies, so a filter served by the same
    loop (in this process) runs meanwhile."""

    def __init__(self, spec):
        self.context = Milter.ServerContext.new()
        self.context.set_connection_spec(spec)
        self.command("establish_connection")

    def start(self, name, *args):
        """Starts a command; returns a function that waits for its result
        (a Milter.Status, or True) or raises its GLib.Error."""
        results = []
        start = getattr(self.context, name + "_async")
        start(*args, None, lambda source, result: results.append(result))

        def finish():
            wait_for(lambda: results, "the reply to " + name)
            return getattr(self.context, name + "_finish")(results[0])
        return finish

    def command(self, name, *args):
        return self.start(name, *args)()

    def open(self, host="client.example", address=None, helo="client.example"):
        """Negotiates (with Postfix's offer), then sends connect and HELO.
        Returns (stage, status) of the first verdict that is not continue,
        or ("helo", CONTINUE)."""
        assert self.command("negotiate", None)
        status = self.command("connect", host, address)
        if status != Milter.Status.CONTINUE:
            return "connect", status
        return "helo", self.command("helo", helo)

    def message(self, sender="<sender@example.com>", recipients=("<recipient@example.org>",),
                headers=(("Subject", "hello"),), body=(b"line one\r\n",)):
        """Sends one message as an MTA does and stops, as it does, at the
        first verdict that is not continue (a rejected recipient rejects
        only itself). Returns (stage, status) of that verdict, or
        ("end-of-message", status)."""
        status = self.command("envelope_from", sender, None)
        if status != Milter.Status.CONTINUE:
            return "envelope-from", status
        accepted = 0
        for recipient in recipients:
            status = self.command("envelope_recipient", recipient, None)
            if status == Milter.Status.CONTINUE:
                accepted += 1
            elif status not in (Milter.Status.REJECT, Milter.Status.TEMPORARY_FAILURE):
                return "envelope-recipient", status
        if accepted == 0:
            return "envelope-recipient", status
        steps = [("data", ())]
        steps += [("header", header) for header in headers]
        steps += [("end_of_header", ())]
        steps += [("body", (GLib.Bytes.new(chunk),)) for chunk in body]
        for name, args in steps:
            status = self.command(name, *args)
            if status == Milter.Status.SKIP:
                continue  # the MTA leaves out the rest of the body
            if status != Milter.Status.CONTINUE:
                return name.replace("_", "-"), status
        return "end-of-message", self.command("end_of_message")

    def quit(self):
        if not self.context.is_closed():
            self.command("quit")

    def modifications(self):
        return [m.to_string() for m in self.context.get_modifications()]


class Filter:
    """A filter program listening on a unix socket in a temporary
    directory; stop() always ends it."""

    def __init__(self, *argv):
        self.dir = tempfile.mkdtemp(prefix="milter-gi-")
        self.spec = "unix:" + os.path.join(self.dir, "filter.sock")
        self.output = tempfile.TemporaryFile(mode="w+", dir=self.dir)
        self.process = subprocess.Popen([*argv, "-s", self.spec],
                                        stdout=self.output, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + TIMEOUT
            while not os.path.exists(self.spec[len("unix:"):]):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("the filter did not start: " + self.read_output())
                time.sleep(0.01)
        except BaseException:
            self.stop()
            raise

    def read_output(self):
        self.output.seek(0)
        return self.output.read()

    def stop(self):
        """Stops the filter as a service manager does (SIGTERM); returns
        its exit status. Its output stays in self.final_output."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self.output.closed:
            self.final_output = self.read_output()
            self.output.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.process.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def drive(spec, *args):
    """Runs milter-test-server --json against spec (blocking: the filter
    runs in another process). Returns the parsed result with "exit"."""
    run = subprocess.run([TEST_SERVER, "-s", spec, "--json", *args],
                         capture_output=True, timeout=120)
    try:
        result = json.loads(run.stdout)
    except ValueError:
        raise AssertionError("milter-test-server: %r %r" % (run.stdout, run.stderr))
    result["exit"] = run.returncode
    return result


def drive_in_loop(spec, *args):
    """Like drive(), for a filter served by this process: the main loop
    runs while milter-test-server does."""
    with tempfile.TemporaryFile() as output, tempfile.TemporaryFile() as errors:
        process = subprocess.Popen([TEST_SERVER, "-s", spec, "--json", *args],
                                   stdout=output, stderr=errors)
        try:
            wait_for(lambda: process.poll() is not None, "milter-test-server")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        output.seek(0)
        errors.seek(0)
        text = output.read()
        try:
            result = json.loads(text)
        except ValueError:
            raise AssertionError("milter-test-server: %r %r" % (text, errors.read()))
    result["exit"] = process.returncode
    return result


def header_modifications(result, kind="add-header"):
    return [(m["name"], m["value"]) for m in result["modifications"] if m["type"] == kind]
