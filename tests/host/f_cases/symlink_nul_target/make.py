"""/links/rel's target contains a NUL byte: cleared."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    (lg, st, ln), = d.extents("/links/rel")
    d.edit_block(st, lambda b: b.__setitem__(2, 0))
    d.lose("/links/rel")
