"""Filesystem geometry (where each region lives) and superblock validation.

mkfs.vexfs's layout is a pure function of (blocks_count, inodes_count,
journal_blocks): block 0 superblock, then the jbd2 journal (if any; right
after the superblock because jbd2 numbers a journal on a device in absolute
block numbers and sizes transactions from its end), the inode bitmap, the
block bitmap, the inode table and the data region. The default
inode count is one inode per 16 KiB of device (``BYTES_PER_INODE``), rounded
up to a whole inode-table block (16 inodes), at least 16, and at most
2^32 - 16.
"""

from __future__ import annotations

import ctypes
import os
import stat
from dataclasses import dataclass

from vexfs import layout as L
from vexfs.fs.errors import FormatError

BS = L.VEXFS_BLOCK_SIZE
BYTES_PER_INODE = 16384
MIN_INODES = L.VEXFS_INODES_PER_BLOCK
MAX_INODES = 2**32 - L.VEXFS_INODES_PER_BLOCK


@dataclass(frozen=True)
class Geometry:
    blocks: int
    inodes: int
    ibitmap_start: int
    ibitmap_blocks: int
    bbitmap_start: int
    bbitmap_blocks: int
    itable_start: int
    itable_blocks: int
    data_start: int
    journal_start: int = 0
    journal_blocks: int = 0

    @property
    def root_dir_block(self) -> int:
        return self.data_start

    @property
    def metadata_blocks(self) -> int:
        return self.data_start

    @classmethod
    def compute(cls, blocks: int, inodes: int | None = None,
                journal_blocks: int = 0) -> Geometry:
        """The layout for a device of ``blocks`` blocks; the journal (if
        ``journal_blocks``) follows the superblock."""
        if blocks < L.VEXFS_MIN_BLOCKS:
            raise FormatError(f"device too small: {blocks} blocks of 4 KiB, VexFS needs at "
                              f"least {L.VEXFS_MIN_BLOCKS} "
                              f"({L.VEXFS_MIN_BLOCKS * BS // 1024} KiB)")
        if inodes is None:
            inodes = blocks * BS // BYTES_PER_INODE
        if inodes < 1:
            raise FormatError(f"inode count {inodes} must be at least 1")
        inodes = L.div_round_up(inodes, L.VEXFS_INODES_PER_BLOCK) * L.VEXFS_INODES_PER_BLOCK
        inodes = max(MIN_INODES, inodes)
        if inodes > MAX_INODES:
            raise FormatError(f"too many inodes ({inodes}); at most {MAX_INODES}")
        ib = L.ibitmap_blocks_for(inodes)
        bb = L.bbitmap_blocks_for(blocks)
        it = L.itable_blocks_for(inodes)
        if journal_blocks and not (L.VEXFS_MIN_JOURNAL_BLOCKS <= journal_blocks < 1 << 32):
            raise FormatError(f"journal of {journal_blocks} blocks: jbd2 needs at least "
                              f"{L.VEXFS_MIN_JOURNAL_BLOCKS} (4 MiB)")
        journal_start = 1 if journal_blocks else 0
        j = journal_blocks
        data_start = 1 + j + ib + bb + it
        # the root directory needs one data block
        if data_start + 1 > blocks:
            if journal_blocks:
                raise FormatError(f"a journal of {journal_blocks} blocks does not fit beside "
                                  f"{it} inode-table blocks on {blocks} blocks")
            raise FormatError(f"{inodes} inodes need {it} inode-table blocks; the device "
                              f"has only {blocks} blocks")
        return cls(blocks=blocks, inodes=inodes, ibitmap_start=1 + j, ibitmap_blocks=ib,
                   bbitmap_start=1 + j + ib, bbitmap_blocks=bb, itable_start=1 + j + ib + bb,
                   itable_blocks=it, data_start=data_start,
                   journal_start=journal_start, journal_blocks=journal_blocks)

    @classmethod
    def of_superblock(cls, sb: L.SuperBlock) -> Geometry:
        return cls(blocks=sb.s_blocks_count, inodes=sb.s_inodes_count,
                   ibitmap_start=sb.s_ibitmap_start, ibitmap_blocks=sb.s_ibitmap_blocks,
                   bbitmap_start=sb.s_bbitmap_start, bbitmap_blocks=sb.s_bbitmap_blocks,
                   itable_start=sb.s_itable_start, itable_blocks=sb.s_itable_blocks,
                   data_start=sb.s_data_start, journal_start=sb.s_journal_start,
                   journal_blocks=sb.s_journal_blocks)


def make_superblock(geo: Geometry, uuid: bytes, label: str, now: int,
                    used_blocks: int, used_inodes: int) -> L.SuperBlock:
    lab = label.encode()
    sb = L.SuperBlock(
        s_magic=L.VEXFS_MAGIC, s_version=L.VEXFS_FORMAT_VERSION,
        s_feature_compat=L.VEXFS_FEATURE_COMPAT_HAS_JOURNAL if geo.journal_blocks else 0,
        s_journal_start=geo.journal_start, s_journal_blocks=geo.journal_blocks,
        s_feature_incompat=L.VEXFS_FEATURE_INCOMPAT_EXTENTS,
        s_feature_ro_compat=(L.VEXFS_FEATURE_RO_COMPAT_COLLECTIONS
                             | L.VEXFS_FEATURE_RO_COMPAT_FLOAT16),
        s_block_size=BS, s_blocks_count=geo.blocks,
        s_free_blocks=geo.blocks - used_blocks,
        s_inodes_count=geo.inodes, s_free_inodes=geo.inodes - used_inodes,
        s_ibitmap_start=geo.ibitmap_start, s_bbitmap_start=geo.bbitmap_start,
        s_itable_start=geo.itable_start, s_data_start=geo.data_start,
        s_ibitmap_blocks=geo.ibitmap_blocks, s_bbitmap_blocks=geo.bbitmap_blocks,
        s_itable_blocks=geo.itable_blocks, s_root_ino=L.VEXFS_ROOT_INO,
        s_state=L.VEXFS_STATE_CLEAN, s_inode_size=L.VEXFS_INODE_SIZE,
        s_mount_count=0, s_mkfs_time=now, s_mount_time=0, s_write_time=now,
    )
    ctypes.memmove(sb.s_uuid, uuid, 16)
    ctypes.memmove(sb.s_label, lab, len(lab))
    return L.seal(sb)


def make_root_inode(geo: Geometry, now_ns: int, uid: int | None = None,
                    gid: int | None = None) -> L.Inode:
    sec, nsec = divmod(now_ns, 10**9)
    ino = L.Inode(i_mode=stat.S_IFDIR | 0o755, i_links_count=2,
                  i_uid=os.getuid() if uid is None else uid,
                  i_gid=os.getgid() if gid is None else gid, i_size=BS, i_blocks=1,
                  i_atime=sec, i_mtime=sec, i_ctime=sec, i_crtime=sec,
                  i_atime_nsec=nsec, i_mtime_nsec=nsec, i_ctime_nsec=nsec,
                  i_crtime_nsec=nsec, i_nr_extents=1)
    ino.i_extents[0].ee_logical = 0
    ino.i_extents[0].ee_start = geo.root_dir_block
    ino.i_extents[0].ee_len = 1
    return L.seal(ino)


def device_too_short(sb: L.SuperBlock, device_blocks: int) -> bool:
    """The superblock describes more blocks than the device holds (a short
    copy, the wrong partition): never "fixed" by shrinking the filesystem."""
    return bool(sb.s_magic == L.VEXFS_MAGIC and sb.s_blocks_count > device_blocks)


def superblock_problems(sb: L.SuperBlock, device_blocks: int | None) -> list[str]:
    """Everything wrong with a superblock, as sentences; empty if it is usable.

    The checksum is not checked here (callers decide whether a bad checksum is
    fatal) so fsck can tell "valid geometry, stale checksum" from garbage.
    """
    p: list[str] = []
    if sb.s_magic != L.VEXFS_MAGIC:
        return [f"bad magic 0x{sb.s_magic:08x} (expected 0x{L.VEXFS_MAGIC:08x}): "
                "not a VexFS filesystem"]
    if sb.s_version != L.VEXFS_FORMAT_VERSION:
        p.append(f"unsupported format version {sb.s_version} "
                 f"(this tool knows {L.VEXFS_FORMAT_VERSION})")
    if sb.s_block_size != BS:
        p.append(f"block size {sb.s_block_size} is not {BS}")
    if sb.s_inode_size != L.VEXFS_INODE_SIZE:
        p.append(f"inode size {sb.s_inode_size} is not {L.VEXFS_INODE_SIZE}")
    unknown = sb.s_feature_incompat & ~L.VEXFS_FEATURE_INCOMPAT_SUPP
    if unknown:
        p.append(f"unknown incompatible features 0x{unknown:x}")
    if not sb.s_feature_incompat & L.VEXFS_FEATURE_INCOMPAT_EXTENTS:
        p.append("required feature EXTENTS is not set")
    unknown = sb.s_feature_ro_compat & ~L.VEXFS_FEATURE_RO_COMPAT_SUPP
    if unknown:
        p.append(f"unknown read-only-compatible features 0x{unknown:x}")
    if sb.s_root_ino != L.VEXFS_ROOT_INO:
        p.append(f"root inode is {sb.s_root_ino}, not {L.VEXFS_ROOT_INO}")
    blocks, inodes = sb.s_blocks_count, sb.s_inodes_count
    if blocks < L.VEXFS_MIN_BLOCKS:
        p.append(f"blocks_count {blocks} is below the minimum {L.VEXFS_MIN_BLOCKS}")
    if device_blocks is not None and blocks > device_blocks:
        p.append(f"filesystem has {blocks} blocks but the device holds only "
                 f"{device_blocks}")
    if inodes < 1:
        p.append("inodes_count is 0")
    if sb.s_ibitmap_blocks != L.ibitmap_blocks_for(inodes):
        p.append(f"inode bitmap is {sb.s_ibitmap_blocks} blocks; {inodes} inodes "
                 f"need {L.ibitmap_blocks_for(inodes)}")
    if sb.s_bbitmap_blocks != L.bbitmap_blocks_for(blocks):
        p.append(f"block bitmap is {sb.s_bbitmap_blocks} blocks; {blocks} blocks "
                 f"need {L.bbitmap_blocks_for(blocks)}")
    if sb.s_itable_blocks != L.itable_blocks_for(inodes):
        p.append(f"inode table is {sb.s_itable_blocks} blocks; {inodes} inodes "
                 f"need {L.itable_blocks_for(inodes)}")
    regions = [("inode bitmap", sb.s_ibitmap_start, sb.s_ibitmap_blocks),
               ("block bitmap", sb.s_bbitmap_start, sb.s_bbitmap_blocks),
               ("inode table", sb.s_itable_start, sb.s_itable_blocks)]
    if sb.s_feature_compat & L.VEXFS_FEATURE_COMPAT_HAS_JOURNAL:
        if sb.s_journal_blocks < L.VEXFS_MIN_JOURNAL_BLOCKS:
            p.append(f"journal is {sb.s_journal_blocks} blocks; jbd2 needs at least "
                     f"{L.VEXFS_MIN_JOURNAL_BLOCKS}")
        regions.append(("journal", sb.s_journal_start, sb.s_journal_blocks))
    elif sb.s_journal_start or sb.s_journal_blocks:
        p.append(f"journal fields set ({sb.s_journal_start}, {sb.s_journal_blocks}) "
                 "without the HAS_JOURNAL feature")
    if sb.s_feature_incompat & L.VEXFS_FEATURE_INCOMPAT_RECOVER and \
            not sb.s_feature_compat & L.VEXFS_FEATURE_COMPAT_HAS_JOURNAL:
        p.append("RECOVER is set but the filesystem has no journal")
    for name, start, count in regions:
        if start < 1 or start + count > sb.s_data_start:
            p.append(f"{name} [{start}, {start + count}) is not between the "
                     f"superblock and data_start {sb.s_data_start}")
    ordered = sorted(regions, key=lambda r: r[1])
    for (n1, s1, c1), (n2, s2, _) in zip(ordered, ordered[1:], strict=False):
        if s1 + c1 > s2:
            p.append(f"{n1} [{s1}, {s1 + c1}) overlaps the {n2} starting at {s2}")
    if sb.s_data_start >= blocks:
        p.append(f"data_start {sb.s_data_start} is not below blocks_count {blocks}")
    if sb.s_free_blocks > blocks:
        p.append(f"free block count {sb.s_free_blocks} exceeds blocks_count {blocks}")
    if sb.s_free_inodes > inodes:
        p.append(f"free inode count {sb.s_free_inodes} exceeds inodes_count {inodes}")
    if sb.s_state & ~(L.VEXFS_STATE_CLEAN | L.VEXFS_STATE_ERROR):
        p.append(f"unknown state bits 0x{sb.s_state:04x}")
    return p
