"""Offline access to a VexFS image or device, without the kernel.

``Device`` does block I/O on a regular file or a block device. ``Image`` reads
a filesystem through it: superblock, inodes, extents (inline and chained),
file data, directories, symlinks, path lookup and vector collections. It is
what ``vexfs image``, fsck.vexfs and the tests use to check what the kernel
wrote, so every structure it follows is validated first: a corrupt image
raises ``ImageError`` with a message naming the broken structure, never an
IndexError or an endless loop.

The parse helpers (``parse_dir_block``, ``Image.extent_map``) report problems
as lists of strings so fsck can reuse them and keep going.
"""

from __future__ import annotations

import errno
import logging
import os
import posixpath
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vexfs import layout as L

if TYPE_CHECKING:      # numpy is imported lazily: mkfs.vexfs must start fast in a VM
    import numpy as np

log = logging.getLogger(__name__)

BS = L.VEXFS_BLOCK_SIZE
MAX_SYMLINK_HOPS = 40
#: A symlink target is at most PATH_MAX - 1 bytes.
MAX_SYMLINK_LEN = 4095
#: Largest file size (the kernel's s_maxbytes, MAX_LFS_FILESIZE on 64 bit) and
#: the first file block past it.
MAX_FILE_SIZE = 2**63 - 1
MAX_LBLK = MAX_FILE_SIZE >> L.VEXFS_BLOCK_BITS


class ImageError(Exception):
    """The image is not a valid VexFS filesystem (or this part of it is corrupt)."""


# --------------------------------------------------------------------------
# Block I/O
# --------------------------------------------------------------------------


class Device:
    """A regular file or block device accessed in 4 KiB blocks with pread/pwrite."""

    def __init__(self, path: str | os.PathLike, writable: bool = False,
                 exclusive: bool = False) -> None:
        self.path = str(path)
        self.writable = writable
        flags = os.O_RDWR if writable else os.O_RDONLY
        st = os.stat(self.path)
        self.is_block = stat.S_ISBLK(st.st_mode)
        if exclusive and self.is_block:
            # O_EXCL on a block device fails with EBUSY while it is mounted.
            flags |= os.O_EXCL
        self.fd = os.open(self.path, flags | getattr(os, "O_CLOEXEC", 0))
        self.size = os.lseek(self.fd, 0, os.SEEK_END)

    def read(self, offset: int, length: int) -> bytes:
        data = os.pread(self.fd, length, offset)
        if len(data) != length:
            raise ImageError(f"{self.path}: short read at byte {offset} "
                             f"({len(data)} of {length} bytes): device too small")
        return data

    def write(self, offset: int, data: bytes | bytearray) -> None:
        if not self.writable:
            raise PermissionError(f"{self.path} is open read-only")
        view = memoryview(data)
        while view:
            n = os.pwrite(self.fd, view, offset)
            view = view[n:]
            offset += n

    def read_block(self, blkno: int, count: int = 1) -> bytes:
        return self.read(blkno * BS, count * BS)

    def write_block(self, blkno: int, data: bytes | bytearray) -> None:
        if len(data) % BS:
            raise ValueError("block writes must be whole blocks")
        self.write(blkno * BS, data)

    def flush(self) -> None:
        if self.writable:
            os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Device":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------
# Superblock validation (shared by the reader and fsck)
# --------------------------------------------------------------------------


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
    for (n1, s1, c1), (n2, s2, _) in zip(ordered, ordered[1:]):
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


# --------------------------------------------------------------------------
# Directory blocks
# --------------------------------------------------------------------------


@dataclass
class DirRecord:
    """One entry of a directory block, as found on disk."""

    offset: int
    inode: int
    rec_len: int
    name_len: int
    file_type: int
    name: bytes

    @property
    def name_str(self) -> str:
        return self.name.decode("utf-8", "surrogateescape")


def parse_dir_block(block: bytes) -> tuple[list[DirRecord], list[str]]:
    """Walk a directory block's rec_len chain.

    Returns every record (free ones too, with inode 0) up to the first break
    of the chain, and the problems found (tail magic, chain, names); the
    checksum is the caller's business.
    """
    recs: list[DirRecord] = []
    problems: list[str] = []
    tail = L.DirTail.unpack(block, L.DIR_TAIL_OFF)
    if tail.dt_magic != L.VEXFS_DIR_TAIL_MAGIC:
        problems.append(f"bad tail magic 0x{tail.dt_magic:08x}")
    off = 0
    while off < L.VEXFS_DIR_DATA_BYTES:
        if L.VEXFS_DIR_DATA_BYTES - off < L.VEXFS_DIR_ENTRY_HEADER:
            problems.append(f"entry at offset {off} runs into the tail")
            break
        head = L.DirEntry.unpack(block, off)
        rec_len = head.d_rec_len
        if rec_len < L.VEXFS_DIR_ENTRY_HEADER or rec_len % 4:
            problems.append(f"entry at offset {off} has bad rec_len {rec_len}")
            break
        if off + rec_len > L.VEXFS_DIR_DATA_BYTES:
            problems.append(f"entry at offset {off} with rec_len {rec_len} runs past "
                            f"byte {L.VEXFS_DIR_DATA_BYTES}")
            break
        if head.d_inode and L.dir_rec_len(head.d_name_len) > rec_len:
            problems.append(f"entry at offset {off}: name of {head.d_name_len} bytes "
                            f"does not fit its rec_len {rec_len}")
            break
        name_end = off + L.VEXFS_DIR_ENTRY_HEADER + head.d_name_len
        name = bytes(block[off + L.VEXFS_DIR_ENTRY_HEADER:min(name_end, off + rec_len)])
        recs.append(DirRecord(off, head.d_inode, rec_len, head.d_name_len,
                              head.d_file_type, name))
        off += rec_len
    return recs, problems


def name_problem(name: bytes) -> str | None:
    if not name:
        return "empty name"
    if b"/" in name:
        return "name contains '/'"
    if b"\0" in name:
        return "name contains a NUL byte"
    return None


def make_dir_block(entries: list[tuple[int, bytes, int]]) -> bytearray:
    """A sealed directory block holding (ino, name, file_type) entries in order;
    the last entry's rec_len extends to the tail. With no entries the block is
    one free record spanning the data area."""
    block = bytearray(BS)
    off = 0
    if not entries:
        head = L.DirEntry(d_inode=0, d_rec_len=L.VEXFS_DIR_DATA_BYTES)
        block[0:8] = bytes(head)
    for i, (ino, name, ftype) in enumerate(entries):
        need = L.dir_rec_len(len(name))
        last = i == len(entries) - 1
        rec_len = L.VEXFS_DIR_DATA_BYTES - off if last else need
        if off + need > L.VEXFS_DIR_DATA_BYTES:
            raise ValueError("directory entries do not fit one block")
        head = L.DirEntry(d_inode=ino, d_rec_len=rec_len, d_name_len=len(name),
                          d_file_type=ftype)
        block[off:off + 8] = bytes(head)
        block[off + 8:off + 8 + len(name)] = name
        off += rec_len
    tail = L.DirTail(dt_magic=L.VEXFS_DIR_TAIL_MAGIC)
    block[L.DIR_TAIL_OFF:] = bytes(tail)
    L.seal_block(block, "dir")
    return block


# --------------------------------------------------------------------------
# The reader
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtentRec:
    logical: int
    start: int
    length: int

    @property
    def end(self) -> int:
        """One past the last disk block."""
        return self.start + self.length


@dataclass
class ExtentMap:
    """An inode's extents in file order, the extent-chain blocks, and problems."""

    extents: list[ExtentRec] = field(default_factory=list)
    chain: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: chain blocks whose content is valid but whose checksum is not
    bad_checksum: list[int] = field(default_factory=list)


@dataclass
class DirEntryInfo:
    name: str
    ino: int
    file_type: int


@dataclass
class Collection:
    dim: int
    metric: int
    count: int
    record_size: int
    ids: "np.ndarray"        # uint64, (count,)
    vectors: "np.ndarray"    # float32, (count, dim)
    flags: "np.ndarray"      # uint32, (count,) r_flags

    @property
    def metric_name(self) -> str:
        return L.METRIC_NAMES.get(self.metric, f"unknown({self.metric})")


def collection_header_problems(h: L.CollectionHeader) -> list[str]:
    p = []
    if h.c_magic != L.VEXFS_COLLECTION_MAGIC:
        p.append(f"bad collection magic 0x{h.c_magic:08x}")
        return p
    if h.c_version != L.VEXFS_COLLECTION_VERSION:
        p.append(f"unsupported collection version {h.c_version}")
    if not 1 <= h.c_dim <= L.VEXFS_MAX_DIM:
        p.append(f"dimension {h.c_dim} is outside 1..{L.VEXFS_MAX_DIM}")
    if h.c_metric not in L.METRIC_NAMES:
        p.append(f"unknown metric {h.c_metric}")
    elif 1 <= h.c_dim <= L.VEXFS_MAX_DIM and \
            h.c_record_size != L.collection_record_size(h.c_dim):
        p.append(f"record size {h.c_record_size} is not "
                 f"{L.collection_record_size(h.c_dim)} for dimension {h.c_dim}")
    if h.c_flags:
        p.append(f"reserved c_flags is 0x{h.c_flags:x}, not 0")
    return p


class Image:
    """A VexFS filesystem read (and, for the builder and fsck, written) offline."""

    def __init__(self, path: str | os.PathLike, writable: bool = False,
                 require_checksum: bool = True, sb: L.SuperBlock | None = None) -> None:
        """``sb``: use this superblock instead of block 0's (fsck's rebuilt one)."""
        self.path = str(path)
        self.dev = Device(path, writable=writable)
        try:
            self.sb = sb if sb is not None else self._load_superblock(require_checksum)
        except BaseException:
            self.dev.close()
            raise

    # -- lifecycle ------------------------------------------------------
    def close(self) -> None:
        self.dev.close()

    def __enter__(self) -> "Image":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def device_blocks(self) -> int:
        return self.dev.size // BS

    def _load_superblock(self, require_checksum: bool) -> L.SuperBlock:
        if self.dev.size < BS:
            raise ImageError(f"{self.path}: {self.dev.size} bytes is too small for VexFS")
        sb = L.SuperBlock.unpack(self.dev.read_block(0))
        problems = superblock_problems(sb, self.device_blocks)
        if problems:
            raise ImageError(f"{self.path}: bad superblock: " + "; ".join(problems))
        if require_checksum and not L.struct_checksum_ok(sb):
            raise ImageError(f"{self.path}: superblock checksum mismatch (stored "
                             f"0x{sb.s_checksum:08x}, computed 0x{L.struct_checksum(sb):08x})")
        return sb

    def read_block(self, blkno: int) -> bytes:
        if not 0 <= blkno < self.sb.s_blocks_count:
            raise ImageError(f"block {blkno} is outside the filesystem "
                             f"(0..{self.sb.s_blocks_count - 1})")
        return self.dev.read_block(blkno)

    # -- bitmaps ----------------------------------------------------------
    def _bitmap_bit(self, start: int, item: int) -> bool:
        blk = start + item // L.VEXFS_BITS_PER_BITMAP
        bit = item % L.VEXFS_BITS_PER_BITMAP
        data = self.read_block(blk)
        return bool(data[16 + bit // 8] >> (bit % 8) & 1)

    def inode_in_use(self, ino: int) -> bool:
        return self._bitmap_bit(self.sb.s_ibitmap_start, ino - 1)

    def block_in_use(self, blkno: int) -> bool:
        return self._bitmap_bit(self.sb.s_bbitmap_start, blkno)

    def read_bitmap(self, which: str) -> bytearray:
        """The bits of the inode ("inode") or block ("block") bitmap, headers stripped."""
        start, count = ((self.sb.s_ibitmap_start, self.sb.s_ibitmap_blocks)
                        if which == "inode" else
                        (self.sb.s_bbitmap_start, self.sb.s_bbitmap_blocks))
        out = bytearray()
        for i in range(count):
            out += self.read_block(start + i)[16:]
        return out

    # -- inodes -----------------------------------------------------------
    def inode_location(self, ino: int) -> tuple[int, int]:
        """(block, byte offset) of inode ``ino`` in the inode table."""
        if not 1 <= ino <= self.sb.s_inodes_count:
            raise ImageError(f"inode {ino} is outside 1..{self.sb.s_inodes_count}")
        slot = ino - 1
        return (self.sb.s_itable_start + slot // L.VEXFS_INODES_PER_BLOCK,
                (slot % L.VEXFS_INODES_PER_BLOCK) * L.VEXFS_INODE_SIZE)

    def read_inode_raw(self, ino: int) -> L.Inode:
        blk, off = self.inode_location(ino)
        return L.Inode.unpack(self.read_block(blk), off)

    def iget(self, ino: int) -> L.Inode:
        """An in-use inode, with its checksum and mode verified."""
        inode = self.read_inode_raw(ino)
        if inode.i_mode == 0:
            raise ImageError(f"inode {ino} is free (mode 0)")
        if not L.struct_checksum_ok(inode):
            raise ImageError(f"inode {ino}: checksum mismatch (stored "
                             f"0x{inode.i_checksum:08x}, computed "
                             f"0x{L.struct_checksum(inode):08x})")
        if not L.mode_valid(inode.i_mode):
            raise ImageError(f"inode {ino}: invalid mode 0o{inode.i_mode:o}")
        return inode

    # -- extents ----------------------------------------------------------
    def extent_map(self, inode: L.Inode, ino: int) -> ExtentMap:
        """Walk the inline extents and the extent-block chain, validating as it goes.

        Checks: used slots first, ee_len >= 1, blocks inside the data region,
        sorted and non-overlapping file ranges, chain blocks inside the data
        region with magic, checksum, owner, count in range, and no loop (the
        chain can be no longer than the data region).
        """
        em = ExtentMap()
        sb = self.sb
        data_lo, data_hi = sb.s_data_start, sb.s_blocks_count

        def take(ext: L.Extent, where: str) -> None:
            rec = ExtentRec(ext.ee_logical, ext.ee_start, ext.ee_len)
            desc = f"{where} (file blocks {rec.logical}+{rec.length}, disk blocks " \
                   f"{rec.start}-{rec.end - 1})"
            if rec.start < data_lo or rec.end > data_hi:
                em.problems.append(f"{desc} lies outside the data region "
                                   f"{data_lo}-{data_hi - 1}")
                return
            if rec.logical >= MAX_LBLK or rec.length > MAX_LBLK - rec.logical:
                em.problems.append(f"{desc} maps past the largest file offset")
                return
            if em.extents:
                prev = em.extents[-1]
                if rec.logical < prev.logical + prev.length:
                    em.problems.append(
                        f"{desc} is not sorted after / overlaps the previous extent "
                        f"(file blocks {prev.logical}+{prev.length})")
                    return
            em.extents.append(rec)

        n = inode.i_nr_extents
        if n > L.VEXFS_INLINE_EXTENTS:
            em.problems.append(f"i_nr_extents {n} exceeds {L.VEXFS_INLINE_EXTENTS}")
            n = L.VEXFS_INLINE_EXTENTS
        for i in range(L.VEXFS_INLINE_EXTENTS):
            ext = inode.i_extents[i]
            if i < n:
                if ext.ee_len == 0:
                    em.problems.append(f"inline extent {i} has length 0 but "
                                       f"i_nr_extents is {inode.i_nr_extents}")
                    continue
                take(ext, f"extent {i}")
            elif ext.ee_len != 0:
                em.problems.append(f"inline slot {i} past i_nr_extents "
                                   f"{inode.i_nr_extents} is not empty")
        blk = inode.i_extent_block
        seen: set[int] = set()
        max_chain = max(0, data_hi - data_lo)
        idx = n
        while blk:
            if blk in seen:
                em.problems.append(f"extent block chain loops back to block {blk}")
                break
            if len(seen) >= max_chain:
                em.problems.append("extent block chain is longer than the data region")
                break
            if not data_lo <= blk < data_hi:
                em.problems.append(f"extent block {blk} lies outside the data region "
                                   f"{data_lo}-{data_hi - 1}")
                break
            seen.add(blk)
            em.chain.append(blk)
            data = self.read_block(blk)
            head = L.ExtentBlockHeader.unpack(data)
            if head.eb_magic != L.VEXFS_EXTENT_BLOCK_MAGIC:
                em.problems.append(f"extent block {blk} has bad magic 0x{head.eb_magic:08x}")
                break
            if not L.checksum_ok(data, L.EXTENT_BLOCK_CHECKSUM_OFF):
                em.bad_checksum.append(blk)
            if head.eb_ino != ino:
                em.problems.append(f"extent block {blk} belongs to inode {head.eb_ino}, "
                                   f"not {ino}")
            count = head.eb_count
            if count > L.VEXFS_EXTENTS_PER_BLOCK:
                em.problems.append(f"extent block {blk} claims {count} extents, max "
                                   f"{L.VEXFS_EXTENTS_PER_BLOCK}")
                count = L.VEXFS_EXTENTS_PER_BLOCK
            for i in range(L.VEXFS_EXTENTS_PER_BLOCK):
                ext = L.Extent.unpack(data, L.EXTENT_BLOCK_HEADER_SIZE + i * L.EXTENT_SIZE)
                if i < count:
                    if ext.ee_len == 0:
                        em.problems.append(f"extent block {blk} slot {i} has length 0 "
                                           f"but eb_count is {head.eb_count}")
                        continue
                    take(ext, f"extent {idx} (block {blk} slot {i})")
                    idx += 1
                elif ext.ee_len != 0:
                    em.problems.append(f"extent block {blk} slot {i} past eb_count "
                                       f"{head.eb_count} is not empty")
            blk = head.eb_next
        return em

    def extents(self, ino: int, inode: L.Inode | None = None) -> ExtentMap:
        inode = inode if inode is not None else self.iget(ino)
        em = self.extent_map(inode, ino)
        problems = em.problems + [f"extent block {b}: checksum mismatch"
                                  for b in em.bad_checksum]
        if problems:
            raise ImageError(f"inode {ino}: " + "; ".join(problems))
        return em

    # -- data -------------------------------------------------------------
    def read_data(self, ino: int, offset: int = 0, length: int | None = None,
                  inode: L.Inode | None = None,
                  extents: list[ExtentRec] | None = None) -> bytes:
        """File bytes [offset, offset+length) clipped to i_size; holes read as zero.
        ``extents``: an already validated extent list (fsck), else it is walked."""
        inode = inode if inode is not None else self.iget(ino)
        size = inode.i_size
        if length is None or offset + length > size:
            length = max(0, size - offset)
        if length == 0:
            return b""
        out = bytearray(length)
        first, last = offset // BS, (offset + length - 1) // BS
        for ext in extents if extents is not None else self.extents(ino, inode).extents:
            lo = max(first, ext.logical)
            hi = min(last, ext.logical + ext.length - 1)
            if lo > hi:
                continue
            raw = self.dev.read((ext.start + lo - ext.logical) * BS, (hi - lo + 1) * BS)
            # copy the overlap of [lo*BS, (hi+1)*BS) with [offset, offset+length)
            a = max(lo * BS, offset)
            b = min((hi + 1) * BS, offset + length)
            out[a - offset:b - offset] = raw[a - lo * BS:b - lo * BS]
        return bytes(out)

    # -- directories ----------------------------------------------------------
    def dir_blocks(self, ino: int, inode: L.Inode) -> list[tuple[int, int]]:
        """(file block, disk block) for each block of a directory, in order."""
        nblocks = inode.i_size // BS
        out = []
        for ext in self.extents(ino, inode).extents:
            for i in range(ext.length):
                if ext.logical + i < nblocks:
                    out.append((ext.logical + i, ext.start + i))
        return out

    def list_dir(self, ino: int) -> list[DirEntryInfo]:
        """The directory's live entries (including '.' and '..') in on-disk order."""
        inode = self.iget(ino)
        if not stat.S_ISDIR(inode.i_mode):
            raise NotADirectoryError(errno.ENOTDIR, f"inode {ino} is not a directory")
        out = []
        for lblk, pblk in self.dir_blocks(ino, inode):
            data = self.read_block(pblk)
            if not L.checksum_ok(data, L.DIR_TAIL_CHECKSUM_OFF):
                raise ImageError(f"directory inode {ino} block {lblk} (disk block {pblk}): "
                                 "checksum mismatch")
            recs, problems = parse_dir_block(data)
            if problems:
                raise ImageError(f"directory inode {ino} block {lblk} (disk block {pblk}): "
                                 + "; ".join(problems))
            out += [DirEntryInfo(r.name_str, r.inode, r.file_type) for r in recs if r.inode]
        return out

    def readlink(self, ino: int) -> str:
        inode = self.iget(ino)
        if not stat.S_ISLNK(inode.i_mode):
            raise OSError(errno.EINVAL, f"inode {ino} is not a symlink")
        if inode.i_size > MAX_SYMLINK_LEN:
            raise ImageError(f"symlink inode {ino}: target of {inode.i_size} bytes")
        return self.read_data(ino, inode=inode).decode("utf-8", "surrogateescape")

    def lookup(self, path: str, follow: bool = True) -> int:
        """Inode number of an absolute path inside the image (symlinks resolved
        within the image; a target starting with '/' starts at its root)."""
        hops = 0
        parts = [p for p in path.split("/") if p]
        stack = [L.VEXFS_ROOT_INO]   # inodes of the directories walked so far
        while parts:
            name = parts.pop(0)
            if name == ".":
                continue
            if name == "..":
                if len(stack) > 1:
                    stack.pop()
                continue
            cur = stack[-1]
            entries = {e.name: e.ino for e in self.list_dir(cur)}
            if name not in entries:
                raise FileNotFoundError(errno.ENOENT, f"no such file: {name!r} in "
                                        f"{path!r}")
            ino = entries[name]
            inode = self.iget(ino)
            if stat.S_ISLNK(inode.i_mode) and (parts or follow):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise OSError(errno.ELOOP, f"too many symlinks resolving {path!r}")
                target = self.readlink(ino)
                if target.startswith("/"):
                    stack = [L.VEXFS_ROOT_INO]
                parts = [p for p in target.split("/") if p] + parts
                continue
            if parts and not stat.S_ISDIR(inode.i_mode):
                raise NotADirectoryError(errno.ENOTDIR, f"{name!r} in {path!r} is not a "
                                         "directory")
            stack.append(ino)
        return stack[-1]

    def read_file(self, path: str) -> bytes:
        ino = self.lookup(path)
        inode = self.iget(ino)
        if stat.S_ISDIR(inode.i_mode):
            raise IsADirectoryError(errno.EISDIR, f"{path} is a directory")
        return self.read_data(ino, inode=inode)

    def walk(self, path: str = "/"):
        """Yield (path, ino, inode) for path and everything under it, depth first;
        each directory is visited once (hard links to dirs do not loop)."""
        start = self.lookup(path)
        todo = [(posixpath.normpath("/" + path.lstrip("/")), start)]
        seen: set[int] = set()
        while todo:
            p, ino = todo.pop()
            inode = self.iget(ino)
            yield p, ino, inode
            if stat.S_ISDIR(inode.i_mode) and ino not in seen:
                seen.add(ino)
                children = [e for e in self.list_dir(ino) if e.name not in (".", "..")]
                for e in reversed(children):
                    todo.append((posixpath.join(p, e.name), e.ino))

    # -- collections --------------------------------------------------------------
    def collection(self, ino: int) -> Collection:
        inode = self.iget(ino)
        if not inode.i_flags & L.VEXFS_INODE_FL_COLLECTION:
            raise ImageError(f"inode {ino} is not a collection")
        if inode.i_size < L.VEXFS_DATA_OFFSET:
            raise ImageError(f"collection inode {ino}: size {inode.i_size} is smaller "
                             "than its header block")
        raw = self.read_data(ino, 0, L.COLLECTION_HEADER_SIZE, inode=inode)
        head = L.CollectionHeader.unpack(raw)
        problems = collection_header_problems(head)
        if not L.struct_checksum_ok(head):
            problems.append("header checksum mismatch")
        if problems:
            raise ImageError(f"collection inode {ino}: " + "; ".join(problems))
        expect = L.VEXFS_DATA_OFFSET + head.c_count * head.c_record_size
        if inode.i_size != expect:
            raise ImageError(f"collection inode {ino}: size {inode.i_size} is not "
                             f"4096 + {head.c_count} records x {head.c_record_size} = {expect}")
        body = self.read_data(ino, L.VEXFS_DATA_OFFSET, head.c_count * head.c_record_size,
                              inode=inode)
        import numpy as np
        rec_dtype = np.dtype([("id", "<u8"), ("flags", "<u4"), ("res", "<u4"),
                              ("vec", "<f4", (head.c_dim,)),
                              ("pad", "V", head.c_record_size - 16 - 4 * head.c_dim)]
                             if head.c_record_size - 16 - 4 * head.c_dim else
                             [("id", "<u8"), ("flags", "<u4"), ("res", "<u4"),
                              ("vec", "<f4", (head.c_dim,))])
        recs = np.frombuffer(body, dtype=rec_dtype, count=head.c_count)
        return Collection(dim=head.c_dim, metric=head.c_metric, count=head.c_count,
                          record_size=head.c_record_size,
                          ids=recs["id"].astype(np.uint64),
                          vectors=np.ascontiguousarray(recs["vec"], dtype=np.float32)
                          .reshape(head.c_count, head.c_dim),
                          flags=recs["flags"].astype(np.uint32))


def open_image(path: str | Path, writable: bool = False) -> Image:
    return Image(path, writable=writable)
