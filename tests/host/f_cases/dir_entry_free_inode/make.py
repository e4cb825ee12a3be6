"""An entry in /docs names a free inode: removed."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_entry("/docs", "b.txt", inode=250)
    d.move("/docs/b.txt")
