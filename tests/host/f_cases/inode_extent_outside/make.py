"""/big.bin's first extent points past the end of the device: cleared."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_inode("/big.bin", ext0_start=10**6)
    d.lose("/big.bin")
