"""The inode bitmap block's checksum is wrong."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_block(d.sb().s_ibitmap_start, lambda b: b.__setitem__(4, b[4] ^ 0xFF))
