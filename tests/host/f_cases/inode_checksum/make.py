"""/docs/b.txt's inode checksum is wrong; its content is valid."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_inode("/docs/b.txt", reseal=False, i_checksum=0xDEADBEEF)
