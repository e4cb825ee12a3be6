"""The block bitmap block lost its magic: both bitmaps are rebuilt."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_block(d.sb().s_bbitmap_start, lambda b: b.__setitem__(slice(0, 4), b"XXXX"))
