"""/big.bin's second extent overlaps its first in file order... made by splitting it: cleared."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    (lg, st, ln), = d.extents("/big.bin")
    d.edit_inode("/big.bin", i_nr_extents=2, ext0_len=10, ext1_logical=5, ext1_start=st + 10,
                 ext1_len=ln - 10)
    d.lose("/big.bin")
