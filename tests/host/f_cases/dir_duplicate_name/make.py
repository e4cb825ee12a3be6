"""Two entries of /docs are named a.txt: the second is removed, its intact inode goes to
/lost+found."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_entry("/docs", "b.txt", new_name=b"a.txt")
    d.move("/docs/b.txt")
