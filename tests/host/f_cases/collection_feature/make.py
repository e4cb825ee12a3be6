"""The superblock lacks the COLLECTIONS feature: set."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_sb(s_feature_ro_compat=0)
