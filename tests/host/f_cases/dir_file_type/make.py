"""/docs's entry for a.txt says it is a directory."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_entry("/docs", "a.txt", file_type=L.VEXFS_FT_DIR)
