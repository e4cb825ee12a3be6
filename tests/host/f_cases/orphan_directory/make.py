"""The root's entry for /docs was lost: the tree goes to /lost+found with '..' fixed."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.unlink_entry("/", "docs")
    d.move("/docs")
