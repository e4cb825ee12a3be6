"""An entry in /links names the directory /docs/sub: a second parent, removed."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_entry("/links", "hard", inode=d.ino("/docs/sub"), file_type=L.VEXFS_FT_DIR)
    d.lose("/links/hard")
