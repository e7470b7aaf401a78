#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Turns one chapter of the user guide (GitHub Markdown) into a DocBook 4
<chapter> for the gtk-doc book.

  md-to-docbook.py CHAPTER.md OUT.xml

The chapter's first heading is its title; ids get the chapter's file name
as prefix so that they are unique in the book; the example markers
(HTML comments) are dropped."""

import os
import re
import subprocess
import sys


def main():
    source, output = sys.argv[1:3]
    name = os.path.splitext(os.path.basename(source))[0]
    with open(source, encoding="utf-8") as f:
        text = f.read()
    # Markers such as <!-- example: examples/first-filter.c --> are for the
    # guide's test, not for readers.
    text = re.sub(r"<!--.*?-->\n?", "", text, flags=re.S)
    run = subprocess.run(["pandoc", "--from=gfm", "--to=docbook4", "--top-level-division=chapter",
                          "--id-prefix=" + name + "-"],
                         input=text, capture_output=True, text=True, check=False)
    if run.returncode != 0 or run.stderr:
        sys.exit("md-to-docbook: %s: %s" % (source, run.stderr.strip() or run.returncode))
    xml = run.stdout
    if not xml.lstrip().startswith("<chapter"):
        sys.exit("md-to-docbook: %s must start with a level-1 heading" % source)
    # Links to other chapters ([text](06-negotiation.md)) become book links.
    xml = re.sub(r'<ulink url="(\d\d-[a-z0-9-]+)\.md(?:#[^"]*)?">(.*?)</ulink>',
                 r'<link linkend="\1">\2</link>', xml, flags=re.S)
    # The chapter's id is the file name, for links from the reference.
    xml = re.sub(r"<chapter id=\"[^\"]*\"", '<chapter id="%s"' % name, xml, count=1)
    with open(output, "w", encoding="utf-8") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n')
        f.write('<!DOCTYPE chapter PUBLIC "-//OASIS//DTD DocBook XML V4.3//EN"\n'
                '  "http://www.oasis-open.org/docbook/xml/4.3/docbookx.dtd">\n')
        f.write(xml)


if __name__ == "__main__":
    main()
