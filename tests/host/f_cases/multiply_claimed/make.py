"""/docs/b.txt's block is also mapped by /hello.txt: the later claim gets its own copy."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    (lg, st, ln), = d.extents("/hello.txt")
    d.edit_inode("/docs/b.txt", ext0_start=st)
    d.bitmap_bit("block", d.extents("/docs/b.txt")[0][1], True)
    d.changed.add("/docs/b.txt")
