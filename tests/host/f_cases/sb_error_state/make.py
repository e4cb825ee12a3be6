"""The kernel recorded an error (state ERROR) on an otherwise clean filesystem."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_sb(s_state=L.VEXFS_STATE_ERROR)
