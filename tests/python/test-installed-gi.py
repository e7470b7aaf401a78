#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""`from gi.repository import Milter` from an installed copy: installs the
build into a temporary DESTDIR and, in a subprocess that sees only the
installed typelib and library, serves a filter session.

Usage: test-installed-gi.py MESON"""

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import harness  # noqa: E402,F401 (exits 77 without PyGObject)

MESON = sys.argv.pop(1)
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
    def setUp(self):
        self.destdir = tempfile.mkdtemp(prefix="milter-gi-install-")
        self.addCleanup(shutil.rmtree, self.destdir, ignore_errors=True)

    def test_import_from_installed_copy(self):
        env = dict(os.environ)
        # meson is a Python program: not one to run with the ASan runtime.
        env.pop("LD_PRELOAD", None)
        install = subprocess.run([MESON, "install", "-C", os.environ["MILTER_BUILD_ROOT"],
                                  "--destdir", self.destdir, "--no-rebuild", "--quiet"],
                                 env=env, capture_output=True, text=True, timeout=300)
        self.assertEqual(install.returncode, 0, install.stdout + install.stderr)

        typelibs = glob.glob(os.path.join(self.destdir, "**", "girepository-1.0",
                                          "Milter-1.0.typelib"), recursive=True)
        libraries = glob.glob(os.path.join(self.destdir, "**", "libmilter-glib-1.0.so.0"),
                              recursive=True)
        self.assertEqual(len(typelibs), 1, typelibs)
        self.assertEqual(len(libraries), 1, libraries)
        self.assertTrue(glob.glob(os.path.join(self.destdir, "**", "gir-1.0", "Milter-1.0.gir"),
                                  recursive=True))

        # Only the installed paths: no build tree to fall back on.
        env = dict(os.environ)
        env["GI_TYPELIB_PATH"] = os.path.dirname(typelibs[0])
        env["LD_LIBRARY_PATH"] = os.path.dirname(libraries[0])
        child = subprocess.run([sys.executable, "-c", CHILD, HERE], env=env,
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
