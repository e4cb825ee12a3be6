"""Three blocks of /big.bin are marked free in the block bitmap."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    start = d.extents("/big.bin")[0][1]
    for b in range(start, start + 3):
        d.bitmap_bit("block", b, False)
