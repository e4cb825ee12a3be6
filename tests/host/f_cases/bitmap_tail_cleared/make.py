"""Bits past the last block are clear (they must be set)."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    n = d.sb().s_blocks_count
    for b in range(n, n + 16):
        d.bitmap_bit("block", b, False)
