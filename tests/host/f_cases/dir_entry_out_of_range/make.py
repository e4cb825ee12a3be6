"""An entry in /docs names inode 100000, past the inode table: removed."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_entry("/docs", "b.txt", inode=100000)
    d.move("/docs/b.txt")
