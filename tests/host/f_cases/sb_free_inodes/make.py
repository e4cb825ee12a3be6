"""The superblock's free inode count is off (sealed)."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_sb(s_free_inodes=d.sb().s_free_inodes + 3)
