"""/frag.bin's extent block lost its magic: the inode is cleared."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    blk, = d.chain("/frag.bin")
    d.edit_block(blk, lambda b: b.__setitem__(slice(0, 4), b"\0\0\0\0"))
    d.lose("/frag.bin")
