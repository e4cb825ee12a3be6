"""A rec_len in the middle of /many's second block is corrupt: the entries after the break go
to /lost+found."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    from vexfs.fs.dirent import parse_dir_block
    blk = d.dir_block("/many", 1)
    recs, _ = parse_dir_block(d.read(blk * 4096, 4096))
    cut = recs[5]
    def fn(b):
        b[cut.offset + 4:cut.offset + 6] = (3).to_bytes(2, "little")
    d.edit_block(blk, fn, "dir")
    for r in recs[5:]:
        if r.inode:
            d.move("/many/" + r.name.decode())
