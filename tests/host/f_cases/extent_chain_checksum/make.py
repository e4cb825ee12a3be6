"""/frag.bin's extent block checksum is wrong; its extents are valid."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    blk, = d.chain("/frag.bin")
    d.edit_block(blk, lambda b: b.__setitem__(4, b[4] ^ 1))
