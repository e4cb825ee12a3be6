"""An entry name in /docs contains '/': removed, the inode goes to /lost+found."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_entry("/docs", "a.txt", new_name=b"a/txt")
    d.move("/docs/a.txt")
