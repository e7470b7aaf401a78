#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Counts meson test results from testlog.json files.

Prints "N passed, M failed" (and the skipped ones); with --total, adds up
"N passed, M failed" lines read from the given files instead.
"""
import json
import re
import sys

PASSED = {"OK", "EXPECTEDFAIL"}
SKIPPED = {"SKIP"}


def count_log(path):
    passed = failed = skipped = 0
    with open(path, encoding="utf-8") as log:
        for line in log:
            result = json.loads(line)["result"]
            if result in PASSED:
                passed += 1
            elif result in SKIPPED:
                skipped += 1
            else:
                failed += 1
    return passed, failed, skipped


def main(argv):
    passed = failed = skipped = 0
    if argv and argv[0] == "--total":
        for path in argv[1:]:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    m = re.match(r"(\d+) passed, (\d+) failed(?:, (\d+) skipped)?", line)
                    if m:
                        passed += int(m.group(1))
                        failed += int(m.group(2))
                        skipped += int(m.group(3) or 0)
    else:
        for path in argv:
            p, f, s = count_log(path)
            passed, failed, skipped = passed + p, failed + f, skipped + s
    suffix = f", {skipped} skipped" if skipped else ""
    print(f"{passed} passed, {failed} failed{suffix}")


if __name__ == "__main__":
    main(sys.argv[1:])
