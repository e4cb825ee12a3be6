"""/vecs/c2's header magic is gone: reported, not repaired (exit 4)."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    (lg, st, ln) = d.extents("/vecs/c2")[0]
    d.edit_block(st, lambda b: b.__setitem__(slice(0, 4), b"\0\0\0\0"))
    d.changed.add("/vecs/c2")
