"""/docs/a.txt carries unknown inode flags: they are cleared."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_inode("/docs/a.txt", i_flags=0x80000)
