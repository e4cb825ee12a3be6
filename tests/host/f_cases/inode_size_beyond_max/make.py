"""/docs/b.txt's size is 2^64-1: set to the end of its last extent."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_inode("/docs/b.txt", i_size=2**64 - 1)
    d.changed.add("/docs/b.txt")
