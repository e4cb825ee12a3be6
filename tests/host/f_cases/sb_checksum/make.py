"""The superblock checksum is wrong; every field is valid, so fsck rewrites it."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    sb = d.sb()
    d.edit_sb(reseal=False, s_checksum=sb.s_checksum ^ 0x5A5A5A5A)
