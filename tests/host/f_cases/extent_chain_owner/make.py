"""/frag.bin's extent block names another owner inode: cleared."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    blk, = d.chain("/frag.bin")
    def fn(b):
        b[20:24] = (999).to_bytes(4, "little")
    d.edit_block(blk, fn, "extent")
    d.lose("/frag.bin")
