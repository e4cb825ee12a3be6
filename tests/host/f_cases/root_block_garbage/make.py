"""64 random bytes over the root directory's block: rebuilt with '.' and '..'; the old
/lost+found is linked back and every root entry is found in it."""

import numpy as np

from vexfs import layout as L  # noqa: F401


def make(d):
    garbage = np.random.default_rng(64).integers(0, 256, 64, dtype=np.uint8)
    d.write(d.dir_block("/") * 4096, bytes(garbage))
    # /hello.txt keeps its other name, /links/hard: it is found there, not on its own
    d.moved["/hello.txt"] = f"/lost+found/#{d.ino('/links')}/hard"
    for name in ("big.bin", "frag.bin", "sparse.bin", "docs", "many", "links", "dev", "vecs"):
        d.move("/" + name)
    d.changed.add("/lost+found")
    d.changed.add("/links/hard")      # the same inode as /hello.txt, compared there
