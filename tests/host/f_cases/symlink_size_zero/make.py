"""/links/abs has size 0: cleared."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_inode("/links/abs", i_size=0)
    d.lose("/links/abs")
