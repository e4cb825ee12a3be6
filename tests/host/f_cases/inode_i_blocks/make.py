"""/big.bin's i_blocks is wrong."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_inode("/big.bin", i_blocks=3)
