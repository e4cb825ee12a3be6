"""An incompatible feature this fsck does not know: exit 8, nothing written."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_sb(s_feature_incompat=d.sb().s_feature_incompat | 0x80)
    d.untouched_image = True
