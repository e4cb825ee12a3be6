"""'..' of /docs/sub points to itself."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_entry("/docs/sub", "..", inode=d.ino("/docs/sub"))
