"""/docs/sub's size is not a multiple of 4096: the directory is cleared and deep.txt goes to
/lost+found."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_inode("/docs/sub", i_size=100)
    d.lose("/docs/sub")
    d.move("/docs/sub/deep.txt")
