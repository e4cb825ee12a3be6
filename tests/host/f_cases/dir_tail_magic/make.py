"""The tail magic of /docs's block is gone; the entries are valid."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    def fn(b):
        b[4088:4092] = b"\0\0\0\0"
    d.edit_block(d.dir_block("/docs"), fn)
