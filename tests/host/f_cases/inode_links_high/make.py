"""/hello.txt's link count is 5 (two entries name it)."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_inode("/hello.txt", i_links_count=5)
