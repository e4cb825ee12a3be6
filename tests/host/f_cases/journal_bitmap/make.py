"""A filesystem with a jbd2 journal (8 MiB image): the journal's blocks marked free in the
block bitmap are found and fixed."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401

SIZE = 8 << 20


def make(d):
    sb = d.sb()
    assert sb.s_journal_blocks
    for b in range(sb.s_journal_start, sb.s_journal_start + 8):
        d.bitmap_bit("block", b, False)
