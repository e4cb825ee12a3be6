"""/vecs/c1's checksummed header counts 2^34 records and i_size matches, but
the file is sparse: the records would need 2^29 blocks and a handful are
allocated (a forged header; fsck must report it, not read 2^34 holes)."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    (lg, st, ln) = d.extents("/vecs/c1")[0]
    rs = L.collection_record_size(8)
    count = 1 << 34

    def forge(b):
        h = L.CollectionHeader.unpack(bytes(b[:L.COLLECTION_HEADER_SIZE]))
        h.c_count = count
        L.seal(h)
        b[:L.COLLECTION_HEADER_SIZE] = bytes(h)
    d.edit_block(st, forge)
    d.edit_inode("/vecs/c1", i_size=4096 + count * rs)
    d.changed.add("/vecs/c1")
