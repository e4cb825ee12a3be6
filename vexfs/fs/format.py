"""Write a fresh, empty VexFS onto an open writable device (mkfs's core).

Only metadata is written: the superblock, both bitmaps, the inode table
(zeroed, because stale bytes must never parse as inodes), the root directory
(inode 1 and its first block), the jbd2 journal's superblock (the rest of
the journal zeroed) and zeroes over the first MiB and the last
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
from vexfs.fs.journal import JournalGeometry, default_journal_blocks, format_journal

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
    #: journal size in MiB (None: mke2fs's default for the size)
    journal_mib: int | None = None
    #: make a journal at all (-O ^has_journal: no)
    journal: bool = True

    def validate(self, device_bytes: int) -> Geometry:
        if len(self.label.encode()) > L.VEXFS_LABEL_LEN:
            raise FormatError(f"label is {len(self.label.encode())} bytes; at most "
                              f"{L.VEXFS_LABEL_LEN}")
        if self.uuid is not None and len(self.uuid) != 16:
            raise FormatError("a UUID is 16 bytes")
        blocks = device_bytes // BS
        return Geometry.compute(blocks, self.inodes,
                                journal_blocks_for(blocks, self.journal_mib, self.journal))


def journal_blocks_for(blocks: int, journal_mib: int | None = None,
                       journal: bool = True) -> int:
    """Journal blocks for a device: none with ``journal=False``, ``journal_mib``
    MiB if given, else mke2fs's default for the size (none below 8 MiB)."""
    if not journal:
        return 0
    if journal_mib is None:
        return default_journal_blocks(blocks)
    want = journal_mib * (1 << 20) // BS
    if want < L.VEXFS_MIN_JOURNAL_BLOCKS:
        raise FormatError(f"journal size {journal_mib} MiB is below jbd2's minimum of "
                          f"{L.VEXFS_MIN_JOURNAL_BLOCKS * BS >> 20} MiB")
    if want > blocks // 2:
        raise FormatError(f"journal size {journal_mib} MiB is more than half of the device")
    return want


@dataclass
class FormatResult:
    geometry: Geometry
    uuid: bytes
    label: str
    seconds: float


def format_device(dev: Device, uuid: bytes | None = None, label: str = "",
                  inodes: int | None = None, now_ns: int | None = None,
                  root_uid: int | None = None, root_gid: int | None = None,
                  journal_mib: int | None = None, journal: bool = True) -> FormatResult:
    """Write a fresh, empty VexFS onto an open writable device (with a jbd2
    journal unless ``journal`` is false or the device is below 8 MiB)."""
    t0 = time.perf_counter()
    opts = FormatOptions(label, uuid, inodes, now_ns, root_uid, root_gid, journal_mib,
                         journal)
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
    # the journal: zeroed (no stale block of an older journal may look like a
    # transaction), then an empty jbd2 superblock in its first block
    if geo.journal_blocks:
        j_lo, j_hi = geo.journal_start * BS, (geo.journal_start + geo.journal_blocks) * BS
        if j_hi > wipe_end:
            zero_range(dev, max(j_lo, wipe_end), j_hi - max(j_lo, wipe_end))
        format_journal(dev, JournalGeometry(geo.journal_start, geo.journal_blocks, BS), uuid)
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
