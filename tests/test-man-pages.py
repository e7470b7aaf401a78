#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The manual pages of the tools render without warnings and document
every option the programs accept.

Usage: test-man-pages.py PROGRAM MAN_PAGE [PROGRAM MAN_PAGE…]"""

import re
import subprocess
import sys
import unittest

PAIRS = list(zip(sys.argv[1::2], sys.argv[2::2]))
del sys.argv[1:]


class TestManPages(unittest.TestCase):
    def test_pages(self):
        self.assertTrue(PAIRS)
        for program, page in PAIRS:
            with self.subTest(page=page):
                render = subprocess.run(["groff", "-k", "-man", "-Tutf8", "-ww", "-z", page],
                                        capture_output=True, text=True, timeout=60)
                self.assertEqual((render.returncode, render.stderr), (0, ""))
                text = subprocess.run(["groff", "-k", "-man", "-Tutf8", "-P-cbou", page],
                                      capture_output=True, text=True, timeout=60,
                                      check=True).stdout
                self.assertIn("NAME", text)
                self.assertIn("EXAMPLES", text)
                help_text = subprocess.run([program, "--help-all"], capture_output=True,
                                           text=True, timeout=60, check=True).stdout
                options = set(re.findall(r"^\s+(?:-\S, )?(--[a-z][a-z-]*)", help_text, re.M))
                self.assertGreater(len(options), 5)
                for option in sorted(options):
                    self.assertIn(option, text, "%s does not document %s" % (page, option))


if __name__ == "__main__":
    unittest.main(verbosity=2)
