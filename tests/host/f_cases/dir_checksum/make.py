"""A block of /many has a wrong checksum; its entries are valid."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_block(d.dir_block("/many", 1), lambda b: b.__setitem__(4093, b[4093] ^ 0xFF))
