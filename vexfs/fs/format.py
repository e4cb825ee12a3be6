"""Write a fresh, empty VexFS onto an open writable device (mkfs's core).

Only metadata is written: the superblock, both bitmaps, the inode table
(zeroed, because stale bytes must never parse as inodes), the root directory
(inode 1 and its first block) and zeroes over the first MiB and the last
128 KiB so no stale signature of an older filesystem survives.
"""

from __future__ import annotations

import time
import uuid as uuidlib
from dataclasses import dataclass

from vexfs import layout as L
from vexfs.fs.bitmap import make_bitmap_blocks
from vexfs.fs.blockdev import Device, zero_range
from vexfs.fs.dirent import make_first_dir_block
from vexfs.fs.errors import FormatError
from vexfs.fs.geometry import Geometry, make_root_inode, make_superblock

BS = L.VEXFS_BLOCK_SIZE
#: bytes zeroed at the start of the device so old signatures (btrfs at 64 KiB,
#: ISO9660 at 32 KiB, ...) cannot survive the format
WIPE_BYTES = 1 << 20
#: bytes zeroed at the end (backup GPT header, md 0.90/1.0 superblocks)
TAIL_WIPE_BYTES = 128 << 10


@dataclass
class FormatOptions:
    """Everything a format needs besides the device; ``validate`` checks it all
    before anything is written."""

    label: str = ""
    uuid: bytes | None = None
    inodes: int | None = None
    now_ns: int | None = None
    root_uid: int | None = None
    root_gid: int | None = None

    def validate(self, device_bytes: int) -> Geometry:
        if len(self.label.encode()) > L.VEXFS_LABEL_LEN:
            raise FormatError(f"label is {len(self.label.encode())} bytes; at most "
                              f"{L.VEXFS_LABEL_LEN}")
        if self.uuid is not None and len(self.uuid) != 16:
            raise FormatError("a UUID is 16 bytes")
        return Geometry.compute(device_bytes // BS, self.inodes)


@dataclass
class FormatResult:
    geometry: Geometry
    uuid: bytes
    label: str
    seconds: float


def format_device(dev: Device, uuid: bytes | None = None, label: str = "",
                  inodes: int | None = None, now_ns: int | None = None,
                  root_uid: int | None = None, root_gid: int | None = None) -> FormatResult:
    """Write a fresh, empty VexFS onto an open writable device."""
    t0 = time.perf_counter()
    opts = FormatOptions(label, uuid, inodes, now_ns, root_uid, root_gid)
    geo = opts.validate(dev.size)
    uuid = uuid if uuid is not None else uuidlib.uuid4().bytes
    now_ns = now_ns if now_ns is not None else time.time_ns()

    # 1. wipe the head and tail of the device and the inode table; both ends
    #    are metadata or still-free data blocks at this point
    wipe_end = min(WIPE_BYTES, dev.size)
    zero_range(dev, 0, wipe_end)
    tail_start = max(wipe_end, dev.size - TAIL_WIPE_BYTES)
    zero_range(dev, tail_start, dev.size - tail_start)
    it_lo, it_hi = geo.itable_start * BS, (geo.itable_start + geo.itable_blocks) * BS
    if it_hi > wipe_end:
        zero_range(dev, max(it_lo, wipe_end), it_hi - max(it_lo, wipe_end))
    # 2. bitmaps: metadata blocks + the root directory block are in use
    used_blocks = geo.data_start + 1
    for i, blk in enumerate(make_bitmap_blocks(geo.inodes, geo.ibitmap_blocks, 1)):
        dev.write_block(geo.ibitmap_start + i, blk)
    for i, blk in enumerate(make_bitmap_blocks(geo.blocks, geo.bbitmap_blocks, used_blocks)):
        dev.write_block(geo.bbitmap_start + i, blk)
    # 3. the root directory: inode 1 and its block with "." and ".."
    root = make_root_inode(geo, now_ns, root_uid, root_gid)
    itable0 = bytearray(BS)
    itable0[0:L.VEXFS_INODE_SIZE] = bytes(root)
    dev.write_block(geo.itable_start, itable0)
    dev.write_block(geo.root_dir_block, make_first_dir_block(L.VEXFS_ROOT_INO,
                                                             L.VEXFS_ROOT_INO))
    # 4. the superblock last, so a half-written format never looks valid
    dev.flush()
    sb = make_superblock(geo, uuid, label, now_ns // 10**9, used_blocks, 1)
    block0 = bytearray(BS)
    block0[:len(bytes(sb))] = bytes(sb)
    dev.write_block(0, block0)
    dev.flush()
    return FormatResult(geo, uuid, label, time.perf_counter() - t0)
