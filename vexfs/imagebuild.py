"""Build populated VexFS images offline, for tests, fuzz seeds and anyone who
needs an image to mount: a thin front end over the core library's
``vexfs.fs.writer.FsWriter`` (which fsck and mkfs -d use too).

    with ImageBuilder.create("/tmp/x.img", 64 << 20) as b:
        b.mkdir("/docs")
        b.write_file("/docs/a.txt", b"hello\\n")
        b.symlink("/docs/link", "a.txt")
        b.create_collection("/vecs", ids, vectors, metric=VEXFS_METRIC_COSINE)

``max_extent_blocks`` caps the length of each extent so tests can produce
fragmented files whose extents overflow the inode into extent-block chains;
``now_ns`` and ``uuid`` make an image byte-for-byte reproducible.
"""

from __future__ import annotations

import os

from vexfs.fs.bitmap import count_zero_bits
from vexfs.fs.blockdev import Device
from vexfs.fs.collection import collection_bytes
from vexfs.fs.errors import NoSpace
from vexfs.fs.filesystem import Image
from vexfs.fs.format import format_device
from vexfs.fs.writer import FsWriter


class ImageBuilder(FsWriter):
    """``FsWriter`` plus creating the image file itself."""

    @classmethod
    def create(cls, path: str | os.PathLike[str], size: int, inodes: int | None = None,
               label: str = "", max_extent_blocks: int | None = None,
               now_ns: int | None = None, uuid: bytes | None = None) -> ImageBuilder:
        """A fresh sparse image file of ``size`` bytes, formatted and opened."""
        with open(path, "wb") as f:
            f.truncate(size)
        with Device(path, writable=True) as dev:
            format_device(dev, label=label, inodes=inodes, now_ns=now_ns, uuid=uuid,
                          root_uid=0 if now_ns is not None else None,
                          root_gid=0 if now_ns is not None else None)
        return cls(Image(path, writable=True), max_extent_blocks, now_ns)

    @classmethod
    def open(cls, path: str | os.PathLike[str], max_extent_blocks: int | None = None
             ) -> ImageBuilder:
        return cls(Image(path, writable=True), max_extent_blocks)


__all__ = ["ImageBuilder", "NoSpace", "collection_bytes", "count_zero_bits"]
