"""/docs/b.txt was unlinked while open (links 0) at a crash: it is freed."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.unlink_entry("/docs", "b.txt")
    d.edit_inode("/docs/b.txt", i_links_count=0)
    d.lose("/docs/b.txt")
