"""The fifo /dev/fifo has a size: cleared."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_inode("/dev/fifo", i_size=10)
    d.lose("/dev/fifo")
