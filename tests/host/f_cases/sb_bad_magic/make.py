"""Not a VexFS superblock at all: operational error, nothing written."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.write(0, b"\0" * 4)
    d.untouched_image = True
