"""Five free inodes are marked in use."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    for i in range(200, 205):
        d.bitmap_bit("inode", i, True)
