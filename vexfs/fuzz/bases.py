"""Valid seed images for the image fuzzer.

Offline images come from the tools engineer's ImageBuilder (no kernel
needed); `KERNEL_BASE_SCRIPT` makes one with the real kernel module in the
VM (mkfs.vexfs, then files, directories, symlinks, a hard link, a fragmented
file and a collection created through the mounted filesystem and the vector
ioctls), so the fuzzer also starts from exactly what the kernel writes.
Images are small (512 KiB / 256 KiB) so a mutated case is cheap to write,
mount and check.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import numpy as np

from vexfs import layout as L
from vexfs.imagebuild import ImageBuilder

log = logging.getLogger(__name__)

KiB = 1024


def build_offline_a(path: Path) -> None:
    """512 KiB: every object type, a fragmented file with an extent chain,
    two collections (one empty), long names, nested directories."""
    rng = np.random.default_rng(1)
    with ImageBuilder.create(path, 512 * KiB, label="fuzz-a") as b:
        b.write_file("/hello.txt", b"hello vexfs\n")
        b.mkdir("/dir")
        b.mkdir("/dir/sub")
        b.write_file("/dir/sub/deep.txt", b"deep\n" * 300)
        b.write_file("/empty", b"")
        b.write_file("/" + "n" * 200, b"long name\n")
        b.symlink("/link", "hello.txt")
        b.symlink("/dir/abs", "/dir/sub")
        b.symlink("/dir/loop", "loop")
        b.link("/hello.txt", "/dir/hard")
        b.mknod("/dir/fifo", stat.S_IFIFO | 0o644)
        b.write_file("/sparse", b"\0" * (3 * 4096) + b"tail", sparse=True)
        b.max_extent_blocks = 1  # 9 one-block extents: 6 inline + a chain block
        b.write_file("/frag.bin", bytes(range(256)) * 16 * 9)
        b.max_extent_blocks = None
        vecs = rng.standard_normal((20, 8)).astype(np.float32)
        b.create_collection("/vecs", np.arange(100, 120), vecs, metric=L.VEXFS_METRIC_COSINE)
        b.create_collection("/dir/empty_coll", dim=3, metric=L.VEXFS_METRIC_L2)


def build_offline_b(path: Path) -> None:
    """256 KiB: a directory spanning two blocks, an ip collection of odd dim."""
    rng = np.random.default_rng(2)
    with ImageBuilder.create(path, 256 * KiB, inodes=128, label="fuzz-b") as b:
        b.mkdir("/many")
        for i in range(90):
            b.write_file(f"/many/file_with_a_longish_name_{i:03d}", b"x" * (i % 7) if i % 9 == 0 else b"")
        b.mkdir("/a")
        b.mkdir("/a/b")
        b.mkdir("/a/b/c")
        b.symlink("/a/b/c/up", "../../..")
        vecs = rng.standard_normal((40, 33)).astype(np.float32)
        b.create_collection("/a/ip", np.arange(40) * 3, vecs, metric=L.VEXFS_METRIC_IP)


OFFLINE = [build_offline_a, build_offline_b]

# Run in the guest with $IMG (a 512 KiB file) and $FZ (the fz_ioctl binary);
# leaves a cleanly unmounted image written by the kernel.
KERNEL_BASE_SCRIPT = r"""
set -e
MKFS=/work/main/.venv/bin/mkfs.vexfs
truncate -s 512K "$IMG"
$MKFS -q -N 96 "$IMG"
M=$(mktemp -d)
mount -t vexfs -o loop "$IMG" "$M"
echo "kernel-written" > "$M/hello.txt"
mkdir -p "$M/d1/d2/d3"
for i in $(seq 1 30); do echo "entry $i" > "$M/d1/f_$i"; done
rm "$M/d1/f_7" "$M/d1/f_19"
ln -s hello.txt "$M/link"
ln -s /d1/d2 "$M/d1/abs"
ln "$M/hello.txt" "$M/d1/d2/hard"
dd if=/dev/urandom of="$M/d1/d2/d3/rand" bs=4096 count=5 2>/dev/null
i=0; while [ $i -lt 8 ]; do dd if=/dev/zero of="$M/frag" bs=4096 count=1 seek=$((i*2)) conv=notrunc 2>/dev/null; \
  dd if=/dev/zero of="$M/filler_$i" bs=4096 count=1 2>/dev/null; i=$((i+1)); done
mkfifo "$M/fifo"
"$FZ" mkcoll "$M/vecs" 12 25
"$FZ" mkcoll "$M/d1/coll2" 5 0
umount "$M"
"""
