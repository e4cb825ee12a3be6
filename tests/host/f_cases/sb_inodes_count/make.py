"""s_inodes_count is corrupt (sealed): rebuilt from the layout."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_sb(s_inodes_count=7)
