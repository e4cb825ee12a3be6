"""The image was truncated to half its size (a short copy): fsck must refuse (exit 8) and write
nothing."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    os.truncate(d.path, 2 << 20)
    d.untouched_image = True
