"""A bit flip in s_data_start without a reseal: the superblock is rebuilt from the layout."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    sb = d.sb()
    d.edit_sb(reseal=False, s_data_start=sb.s_data_start ^ 0x40)
