"""The collection flag is set on the directory /links: cleared."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_inode("/links", i_flags=L.VEXFS_INODE_FL_COLLECTION)
