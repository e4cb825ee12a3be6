"""Ten unused blocks at the end of the device are marked in use."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    n = d.sb().s_blocks_count
    for b in range(n - 20, n - 10):
        d.bitmap_bit("block", b, True)
