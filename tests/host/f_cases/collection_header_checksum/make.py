"""/vecs/c1's header checksum is wrong; its fields are valid."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    (lg, st, ln) = d.extents("/vecs/c1")[0]
    d.edit_block(st, lambda b: b.__setitem__(68, b[68] ^ 0xFF))
