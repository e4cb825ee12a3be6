"""A crash after a committed transaction and before its checkpoint: the journal holds /docs's
directory block with the b.txt entry, the block on disk lost it. fsck replays the journal
first (pass 0), and the check after it finds everything in place: b.txt is back at its path,
nothing goes to /lost+found."""

from vexfs import layout as L  # noqa: F401

SIZE = 8 << 20


def make(d):
    blk = d.dir_block("/docs")
    good = d.read(blk * 4096, 4096)
    d.unlink_entry("/docs", "b.txt")          # the stale on-disk copy
    d.commit_journal([(blk, good)])           # the committed new copy
