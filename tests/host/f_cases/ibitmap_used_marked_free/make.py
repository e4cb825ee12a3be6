"""The inode of /docs/b.txt is marked free in the inode bitmap."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.bitmap_bit("inode", d.ino("/docs/b.txt") - 1, False)
