#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The installed copy: installs the build into a temporary DESTDIR, then
(1) `from gi.repository import Milter`, in a subprocess that sees only the
installed typelib and library, serves a filter session; (2) the README's
C, Python and Ruby filters, built and run as the README says against the
installed copy, add their header to a message from milter-test-server.

Usage: test-installed-gi.py MESON README"""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import harness  # noqa: E402 (exits 77 without PyGObject)

MESON = sys.argv.pop(1)
README = sys.argv.pop(1)
HERE = os.path.dirname(os.path.abspath(__file__))

# Runs in the subprocess: a session through the installed library, then
# where the typelib and the library were loaded from.
CHILD = r"""
import json, os, shutil, sys, tempfile
sys.dont_write_bytecode = True
sys.path.insert(0, sys.argv[1])
from harness import MTA, wait_for
from gi.repository import Milter

directory = tempfile.mkdtemp()
spec = "unix:" + os.path.join(directory, "milter.sock")
client = Milter.Client.new()
client.set_connection_spec(spec)
client.connect("connection-established",
               lambda client, context: context.connect("helo", lambda *args: Milter.Status.REJECT))
client.listen()
mta = MTA(spec)
stage, status = mta.open()
mta.quit()
wait_for(lambda: client.get_n_processing_sessions() == 0, "the session to end")
client.shutdown()
shutil.rmtree(directory)
with open("/proc/self/maps") as maps:
    libraries = sorted({line.split()[-1] for line in maps if "libmilter-glib-1.0.so" in line})
print(json.dumps({"typelibs": Milter.__path__, "libraries": libraries,
                  "verdict": [stage, status.value_nick]}))
"""


class TestInstalled(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.destdir = tempfile.mkdtemp(prefix="milter-gi-install-")
        env = dict(os.environ)
        # meson is a Python program: not one to run with the ASan runtime.
        env.pop("LD_PRELOAD", None)
        install = subprocess.run([MESON, "install", "-C", os.environ["MILTER_BUILD_ROOT"],
                                  "--destdir", cls.destdir, "--no-rebuild", "--quiet"],
                                 env=env, capture_output=True, text=True, timeout=300)
        if install.returncode != 0:
            shutil.rmtree(cls.destdir, ignore_errors=True)
            raise AssertionError(install.stdout + install.stderr)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.destdir, ignore_errors=True)

    def find(self, *pattern):
        return glob.glob(os.path.join(self.destdir, "**", *pattern), recursive=True)

    def installed_env(self):
        """The environment of a program that sees only the installed copy."""
        typelibs = self.find("girepository-1.0", "Milter-1.0.typelib")
        libraries = self.find("libmilter-glib-1.0.so.0")
        self.assertEqual(len(typelibs), 1, typelibs)
        self.assertEqual(len(libraries), 1, libraries)
        env = dict(os.environ)
        env["GI_TYPELIB_PATH"] = os.path.dirname(typelibs[0])
        env["LD_LIBRARY_PATH"] = os.path.dirname(libraries[0])
        return env

    def test_import_from_installed_copy(self):
        typelibs = self.find("girepository-1.0", "Milter-1.0.typelib")
        self.assertTrue(self.find("gir-1.0", "Milter-1.0.gir"))
        # Only the installed paths: no build tree to fall back on.
        child = subprocess.run([sys.executable, "-c", CHILD, HERE], env=self.installed_env(),
                               capture_output=True, text=True, timeout=120)
        self.assertEqual(child.returncode, 0, child.stdout + child.stderr)
        loaded = json.loads(child.stdout)
        self.assertEqual(loaded["verdict"], ["helo", "reject"])
        self.assertEqual([os.path.realpath(path) for path in loaded["typelibs"]],
                         [os.path.realpath(typelibs[0])])
        self.assertTrue(loaded["libraries"])
        destdir = os.path.realpath(self.destdir) + os.sep
        for path in loaded["libraries"]:
            self.assertTrue(os.path.realpath(path).startswith(destdir), loaded["libraries"])

    def readme_snippet(self, language):
        """The README's one code block in @language after "## A filter in"."""
        with open(README) as readme:
            text = readme.read()
        text = text[text.index("\n## A filter in"):]
        blocks = re.findall(r"^```%s\n(.*?)^```$" % language, text, re.M | re.S)
        self.assertEqual(len(blocks), 1, language)
        return blocks[0]

    def serve_and_drive(self, argv, env):
        """Runs the filter @argv with -s on a temporary unix socket, sends it
        a message with milter-test-server and stops it with SIGTERM.
        Returns milter-test-server's parsed JSON result."""
        with tempfile.TemporaryDirectory(prefix="milter-readme-") as directory:
            spec = "unix:" + os.path.join(directory, "filter.sock")
            with tempfile.TemporaryFile(mode="w+") as output:
                process = subprocess.Popen([*argv, "-s", spec], env=env,
                                           stdout=output, stderr=subprocess.STDOUT)
                try:
                    deadline = time.monotonic() + harness.TIMEOUT
                    while not os.path.exists(spec[len("unix:"):]):
                        if process.poll() is not None or time.monotonic() > deadline:
                            output.seek(0)
                            self.fail("%s did not start: %s" % (argv, output.read()))
                        time.sleep(0.01)
                    result = harness.drive(spec)
                finally:
                    process.send_signal(signal.SIGTERM)
                    try:
                        process.wait(harness.TIMEOUT)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
                output.seek(0)
                self.assertEqual(process.returncode, 0, output.read())
        return result

    def assert_header_added(self, argv, env):
        result = self.serve_and_drive(argv, env)
        self.assertEqual(result["exit"], 0, result)
        self.assertEqual(harness.header_modifications(result), [("X-Filtered", "yes")])

    def test_readme_c_filter(self):
        compiler = shutil.which("cc")
        if compiler is None:
            self.skipTest("no C compiler")
        pkgconfig = self.find("pkgconfig", "milter-glib-1.0.pc")
        self.assertEqual(len(pkgconfig), 1, pkgconfig)
        env = self.installed_env()
        with tempfile.TemporaryDirectory(prefix="milter-readme-") as directory:
            # The .pc file, moved with the rest into DESTDIR.
            with open(pkgconfig[0]) as original:
                moved = re.sub(r"^prefix=", "prefix=" + self.destdir, original.read(), flags=re.M)
            with open(os.path.join(directory, "milter-glib-1.0.pc"), "w") as out:
                out.write(moved)
            env["PKG_CONFIG_PATH"] = directory
            source = os.path.join(directory, "filter.c")
            with open(source, "w") as out:
                out.write(self.readme_snippet("c"))
            # The README's command line, as the shell would run it.
            build = subprocess.run(["sh", "-c", "cc filter.c $(pkg-config --cflags --libs "
                                    "milter-glib-1.0) -o filter"], cwd=directory, env=env,
                                   capture_output=True, text=True, timeout=120)
            self.assertEqual(build.returncode, 0, build.stdout + build.stderr)
            # No warning, but the linker's about libasan in a sanitizer build.
            warnings = [line for line in build.stderr.splitlines() if "libasan" not in line]
            self.assertEqual(warnings, [], build.stderr)
            self.assert_header_added([os.path.join(directory, "filter")], env)

    def test_readme_python_filter(self):
        with tempfile.NamedTemporaryFile("w", suffix=".py") as script:
            script.write(self.readme_snippet("python"))
            script.flush()
            self.assert_header_added([sys.executable, script.name], self.installed_env())

    def test_readme_ruby_filter(self):
        ruby = shutil.which("ruby")
        if ruby is None:
            self.skipTest("no Ruby")
        with tempfile.NamedTemporaryFile("w", suffix=".rb") as script:
            script.write(self.readme_snippet("ruby"))
            script.flush()
            self.assert_header_added([ruby, script.name], self.installed_env())

if __name__ == "__main__":
    unittest.main(verbosity=2)
