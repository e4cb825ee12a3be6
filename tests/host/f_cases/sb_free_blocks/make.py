"""The superblock's free block count is off by 40 (sealed)."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_sb(s_free_blocks=d.sb().s_free_blocks - 40)
