#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The user guide cannot rot: every C, Python and Ruby block in
doc/guide/*.md is a file under doc/guide/examples (or elsewhere in the
tree) that this test compiles and runs.

In a chapter, an example is shown as

    <!-- example: examples/first-filter.c -->
    ```c
    …the file, without its guide-* lines…
    ```

or, for a part of a file, `<!-- example: examples/big.c#setup -->` and the
lines between `guide-region: setup` and `guide-region-end` in the file.
Paths are relative to doc/guide. Every c, python and ruby block needs a
marker, and every file in doc/guide/examples must be shown somewhere.

Each example says how it is checked, in comment lines:

    guide-check: filter ARGS… => EXPRESSION
        Runs the example as a filter on a unix socket (-s unix:PATH is
        appended to its command line), sends one message with
        milter-test-server --json ARGS…, and evaluates the Python
        EXPRESSION with `result` (the JSON, plus "exit") and `headers`
        (the added headers as (name, value) pairs). Several such lines run
        against the same filter process, which must then stop cleanly on
        SIGTERM.
        After them, every such filter also gets one more session: a
        message aborted after its headers, then `K` (a new SMTP connection
        on the same filter connection) and a second message, which must
        get the same replies and modifications as on a connection of its
        own: nothing of one session may leak into the next.
    guide-new-session-varies: NAME…
        Headers whose values legitimately differ in that comparison (a
        count over the process's life, say): their values are not compared.
    guide-check: run ARGS…
        Runs the example with ARGS; it must exit with status 0.
    guide-check: refuses ARGS… => TEXT
        Runs the example with ARGS; it must exit with a failure status and
        print TEXT.
    guide-check: compile
        C only: compiles it (with -Wall -Wextra -Werror), nothing more.
    guide-filter-args: ARGS…
        The filter's own arguments for `filter` checks (before -s).

A C example is compiled with -Wall -Wextra -Werror against the build tree.
Python examples run with /usr/bin/python3, Ruby ones with ruby, both
through the typelib of the build tree. The environment of a `run` check
has MILTER_TEST_SERVER (the path of milter-test-server) and GUIDE_BUILD
(a scratch directory with the compiled examples).

Usage: test-guide.py GUIDE_DIR SOURCE_ROOT (meson passes both)."""

import glob
import json
import socket
import struct
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

GUIDE = os.path.realpath(sys.argv.pop(1))
SOURCE_ROOT = os.path.realpath(sys.argv.pop(1))
BUILD_ROOT = os.path.realpath(os.environ["MILTER_BUILD_ROOT"])
TEST_SERVER = os.path.join(BUILD_ROOT, "tools", "milter-test-server")
TIMEOUT = 30

MARKER = re.compile(r"^<!-- example: (\S+?)(?:#(\S+))? -->$")
FENCE = re.compile(r"^```(\w*)\s*$")
CHECKED_LANGUAGES = {"c", "python", "ruby"}
LANGUAGE_OF_SUFFIX = {".c": "c", ".py": "python", ".rb": "ruby"}


def chapters():
    return sorted(glob.glob(os.path.join(GUIDE, "*.md")))


def code_blocks(path):
    """(language, text, marker path, region, line number) of every fenced block."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    blocks = []
    marker = None
    i = 0
    while i < len(lines):
        line = lines[i]
        match = MARKER.match(line)
        if match:
            marker = (match.group(1), match.group(2), i + 1)
            i += 1
            continue
        fence = FENCE.match(line)
        if fence:
            start = i + 1
            i += 1
            body = []
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            text = "\n".join(body) + "\n"
            if marker is not None and marker[2] == start - 1:
                blocks.append((fence.group(1), text, marker[0], marker[1], start))
            else:
                blocks.append((fence.group(1), text, None, None, start))
            marker = None
        elif line.strip():
            marker = None
        i += 1
    return blocks


def is_directive(line):
    return ("guide-check:" in line or "guide-region" in line or "guide-filter-args:" in line or
            "guide-new-session-varies:" in line)


def shown_text(path, region):
    """What a chapter must show of the file: all of it without guide-*
    lines, or one region."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if region is None:
        text = "\n".join(line for line in lines if not is_directive(line))
        return text if text.endswith("\n") else text + "\n"
    inside = False
    kept = []
    for line in lines:
        if re.search(r"guide-region: %s\b" % re.escape(region), line):
            inside = True
            continue
        if inside and "guide-region-end" in line:
            return "\n".join(kept) + "\n"
        if inside and not is_directive(line):
            kept.append(line)
    raise AssertionError("%s has no region %r" % (path, region))


def checks_of(path):
    with open(path, encoding="utf-8") as f:
        return [line.split("guide-check:", 1)[1].strip().rstrip("*/").strip()
                for line in f if "guide-check:" in line]


def directive_words(path, directive):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if directive in line:
                return shlex.split(line.split(directive, 1)[1].strip().rstrip("*/"))
    return []


def filter_args_of(path):
    return directive_words(path, "guide-filter-args:")


def without_values(replies, names):
    """The replies with the values of the headers named left out."""
    def strip(modification):
        name = modification[1:].split(b"\0", 1)[0]
        return modification[:1] + name if modification[:1] == b"h" and name in names else modification
    return [reply if reply is None else (reply[0], [strip(m) for m in reply[1]])
            for reply in replies]


def example_path(marker):
    return os.path.realpath(os.path.join(GUIDE, marker))


class RawMTA:
    """Plays the MTA byte by byte, for what milter-test-server does not
    send: ABORT in the middle of a message and K. It offers what Postfix
    offers and honours the negotiated steps: events left out are not sent,
    no-reply events are not waited for."""

    NO_STEP = {b"C": 0x1, b"H": 0x2, b"M": 0x4, b"R": 0x8, b"L": 0x20, b"N": 0x40, b"B": 0x10,
               b"T": 0x200}
    NO_REPLY = {b"C": 0x1000, b"H": 0x2000, b"M": 0x4000, b"R": 0x8000, b"L": 0x80,
                b"N": 0x40000, b"B": 0x80000, b"T": 0x10000}
    MODIFICATIONS = [bytes([c]) for c in b"+-2hmiebqp"]

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(path)
        self.send(b"O", struct.pack(">III", 6, 0x1FF, 0x1FFFFF))
        letter, data = self.read()
        assert letter == b"O", "negotiation reply %r" % letter
        self.steps = struct.unpack(">III", data[:12])[2]

    def send(self, letter, data=b""):
        self.sock.sendall(struct.pack(">I", len(data) + 1) + letter + data)

    def read(self):
        header = self.read_exactly(4)
        data = self.read_exactly(struct.unpack(">I", header)[0])
        return data[:1], data[1:]

    def read_exactly(self, size):
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise AssertionError("the filter closed the connection")
            data += chunk
        return data

    def command(self, letter, data=b""):
        """Sends an event; returns its reply, or None when none comes."""
        if self.steps & self.NO_STEP.get(letter, 0):
            return None
        self.send(letter, data)
        if self.steps & self.NO_REPLY.get(letter, 0):
            return None
        return self.reply()

    def reply(self):
        """The final reply, with the modifications before it."""
        modifications = []
        while True:
            letter, data = self.read()
            if letter not in self.MODIFICATIONS:
                return letter + data, modifications
            if letter != b"p":
                modifications.append(letter + data)

    # Verdicts after which an MTA sends nothing more of the message.
    FINAL = (b"r", b"t", b"y", b"d", b"a")

    def session(self, headers, abort_after_headers):
        """connect, HELO and one message; the replies in order, up to the
        first that decides the message (an MTA goes no further)."""
        commands = [(b"C", b"client.example\0" + b"4" + struct.pack(">H", 25) + b"192.0.2.1\0"),
                    (b"H", b"client.example\0"),
                    (b"M", b"<sender@example.com>\0"),
                    (b"R", b"<recipient@example.org>\0"),
                    (b"T", b"")]
        commands += [(b"L", name + b"\0" + value + b"\0") for name, value in headers]
        commands.append((b"N", b""))
        replies = []
        for letter, data in commands:
            replies.append(self.command(letter, data))
            if replies[-1] is not None and replies[-1][0][:1] in self.FINAL:
                return replies
        if abort_after_headers:
            self.send(b"A")
            return replies
        replies.append(self.command(b"B", b"line one\r\n"))
        if replies[-1] is not None and replies[-1][0][:1] in self.FINAL:
            return replies
        self.send(b"E")
        replies.append(self.reply())
        return replies

    def quit(self):
        self.send(b"Q")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()


class TestGuide(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.scratch = tempfile.mkdtemp(prefix="milter-guide-")
        cls.compiled = {}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.scratch, ignore_errors=True)

    def test_chapters_exist(self):
        self.assertTrue(chapters(), "no chapter in " + GUIDE)
        for chapter in chapters():
            with open(chapter, encoding="utf-8") as f:
                self.assertTrue(f.readline().startswith("# "), chapter + " must start with a title")

    def test_blocks_are_the_example_files(self):
        for chapter in chapters():
            for language, text, marker, region, line in code_blocks(chapter):
                where = "%s:%d" % (os.path.basename(chapter), line)
                if marker is None:
                    self.assertNotIn(language, CHECKED_LANGUAGES,
                                     where + ": a %s block without an example marker" % language)
                    continue
                path = example_path(marker)
                self.assertTrue(os.path.isfile(path), where + ": no file " + marker)
                self.assertTrue(path.startswith(SOURCE_ROOT + os.sep), where + ": outside the tree")
                self.assertEqual(LANGUAGE_OF_SUFFIX.get(os.path.splitext(path)[1]), language,
                                 where + ": the block's language does not match " + marker)
                self.assertEqual(text, shown_text(path, region),
                                 where + ": the block differs from " + marker)

    def test_every_example_is_shown(self):
        shown = {example_path(marker) for chapter in chapters()
                 for _, _, marker, _, _ in code_blocks(chapter) if marker is not None}
        for path in sorted(glob.glob(os.path.join(GUIDE, "examples", "*"))):
            if os.path.splitext(path)[1] in LANGUAGE_OF_SUFFIX:
                self.assertIn(os.path.realpath(path), shown,
                              os.path.relpath(path, GUIDE) + " is shown in no chapter")

    def test_examples_work(self):
        examples = sorted({example_path(marker) for chapter in chapters()
                           for _, _, marker, _, _ in code_blocks(chapter) if marker is not None})
        self.assertTrue(examples)
        for path in examples:
            with self.subTest(example=os.path.relpath(path, SOURCE_ROOT)):
                checks = checks_of(path)
                self.assertTrue(checks, "%s has no guide-check line" % path)
                self.run_checks(path, checks)

    # ---- running examples ------------------------------------------------

    def command_of(self, path):
        language = LANGUAGE_OF_SUFFIX[os.path.splitext(path)[1]]
        if language == "python":
            return ["/usr/bin/python3", path]
        if language == "ruby":
            ruby = shutil.which("ruby")
            self.assertIsNotNone(ruby, "no ruby")
            return [ruby, path]
        return [self.compile(path)]

    def compile(self, path):
        if path in self.compiled:
            return self.compiled[path]
        output = os.path.join(self.scratch, os.path.splitext(os.path.basename(path))[0])
        # As a user builds against a build tree: its uninstalled .pc file.
        pkg_env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(BUILD_ROOT, "meson-uninstalled"))
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "milter-glib-1.0", "gio-unix-2.0"],
                               capture_output=True, text=True, check=True, env=pkg_env).stdout.split()
        command = [os.environ.get("CC", "cc"), "-std=gnu11", "-Wall", "-Wextra", "-Werror",
                   "-Wno-unused-parameter", path, "-o", output,
                   "-Wl,-rpath," + os.path.join(BUILD_ROOT, "milter")] + flags
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)  # the compiler is no sanitized program
        build = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        # In a sanitizer build the linker warns about libasan: not ours.
        warnings = [line for line in build.stderr.splitlines() if "libasan" not in line]
        self.assertEqual((build.returncode, warnings), (0, []), build.stderr)
        self.compiled[path] = output
        return output

    def run_checks(self, path, checks):
        filter_checks = []
        for check in checks:
            kind, _, rest = check.partition(" ")
            if kind == "compile":
                self.assertTrue(path.endswith(".c"), "compile checks are for C examples")
                self.compile(path)
            elif kind == "run":
                self.run_program(path, shlex.split(rest))
            elif kind == "refuses":
                args, arrow, text = rest.partition("=>")
                self.assertTrue(arrow, "refuses checks need '=> TEXT': " + check)
                self.run_refused(path, shlex.split(args), text.strip())
            elif kind == "filter":
                args, arrow, expression = rest.partition("=>")
                self.assertTrue(arrow, "filter checks need '=> EXPRESSION': " + check)
                filter_checks.append((shlex.split(args), expression.strip()))
            else:
                self.fail("unknown guide-check %r in %s" % (kind, path))
        if filter_checks:
            self.run_filter(path, filter_checks)

    def environment(self):
        env = dict(os.environ)
        env["MILTER_TEST_SERVER"] = TEST_SERVER
        env["GUIDE_BUILD"] = self.scratch
        return env

    def run_program(self, path, args):
        run = subprocess.run(self.command_of(path) + args, capture_output=True, text=True,
                             env=self.environment(), timeout=120, cwd=self.scratch)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)

    def run_refused(self, path, args, text):
        run = subprocess.run(self.command_of(path) + args, capture_output=True, text=True,
                             env=self.environment(), timeout=120, cwd=self.scratch)
        self.assertNotEqual(run.returncode, 0, "%s %s was accepted" % (path, args))
        self.assertIn(text, run.stdout + run.stderr)

    def run_filter(self, path, checks):
        directory = tempfile.mkdtemp(prefix="f", dir=self.scratch)
        socket_path = os.path.join(directory, "filter.sock")
        spec = "unix:" + socket_path
        with tempfile.TemporaryFile(mode="w+") as output:
            process = subprocess.Popen(self.command_of(path) + filter_args_of(path) + ["-s", spec],
                                       env=self.environment(),
                                       stdout=output, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + TIMEOUT
                while not os.path.exists(socket_path):
                    if process.poll() is not None or time.monotonic() > deadline:
                        output.seek(0)
                        self.fail("%s did not start: %s" % (path, output.read()))
                    time.sleep(0.02)
                for args, expression in checks:
                    result = self.drive(spec, args)
                    headers = [(m["name"], m["value"]) for m in result.get("modifications", [])
                               if m["type"] == "add-header"]
                    self.assertTrue(eval(expression, {"result": result, "headers": headers}),
                                    "%s: %s is false for %s" % (path, expression, json.dumps(result)))
                self.check_new_session_on_same_connection(path, socket_path)
            finally:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                try:
                    process.wait(TIMEOUT)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            output.seek(0)
            self.assertEqual(process.returncode, 0, "%s on SIGTERM: %s" % (path, output.read()))

    def check_new_session_on_same_connection(self, path, socket_path):
        headers = [(b"Subject", b"Buy now, 50% off"), (b"X-Internal-Route", b"a")]
        with RawMTA(socket_path) as fresh:
            expected = fresh.session([(b"X-Other", b"v")], False)
            fresh.quit()
        with RawMTA(socket_path) as reused:
            reused.session(headers, True)
            reused.send(b"K")
            second = reused.session([(b"X-Other", b"v")], False)
            reused.quit()
        varies = [name.encode() for name in directive_words(path, "guide-new-session-varies:")]
        self.assertEqual(without_values(second, varies), without_values(expected, varies),
                         "%s: a session after an aborted message and K differs from a fresh one" % path)

    def drive(self, spec, args):
        env = dict(os.environ)
        run = subprocess.run([TEST_SERVER, "-s", spec, "--json"] + args, capture_output=True,
                             text=True, timeout=120, env=env)
        try:
            result = json.loads(run.stdout)
        except ValueError:
            raise AssertionError("milter-test-server %s: %r %r" % (args, run.stdout, run.stderr))
        result["exit"] = run.returncode
        return result


if __name__ == "__main__":
    unittest.main(verbosity=2)
