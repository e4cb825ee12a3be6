"""/docs/b.txt's entry was lost (links 1): the file goes to /lost+found."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.unlink_entry("/docs", "b.txt")
    d.move("/docs/b.txt")
