"""/docs's link count is 1 (a directory with one subdirectory needs 3)."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_inode("/docs", i_links_count=1)
