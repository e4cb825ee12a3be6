"""Two records of /vecs/c2 share an id: reported, not repaired (exit 4)."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    (lg, st, ln) = d.extents("/vecs/c2")[0]
    rs = L.collection_record_size(3)
    def fn(b):
        b[rs:rs + 8] = (7).to_bytes(8, "little")
    d.edit_block(st + 1, fn)
    d.changed.add("/vecs/c2")
