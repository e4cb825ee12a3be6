"""'.' of /docs points to the root."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_entry("/docs", ".", inode=1)
