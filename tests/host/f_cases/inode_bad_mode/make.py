"""/docs/b.txt's mode names no file type: the inode is cleared, its entry removed."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_inode("/docs/b.txt", i_mode=0o170644)
    d.lose("/docs/b.txt")
