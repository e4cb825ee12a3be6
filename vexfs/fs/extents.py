"""Extents: inline in the inode (up to 6), then a chain of extent blocks.

``map_extents`` walks both and validates every step, so callers (the reader,
fsck, the writer) never follow a broken pointer: problems come back as
sentences and the walk stops before anything it cannot trust.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vexfs import layout as L

BS = L.VEXFS_BLOCK_SIZE
#: Largest file size (the kernel's s_maxbytes, MAX_LFS_FILESIZE on 64 bit) and
#: the first file block past it.
MAX_FILE_SIZE = 2**63 - 1
MAX_LBLK = MAX_FILE_SIZE >> L.VEXFS_BLOCK_BITS


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



def map_extents(read_block: Callable[[int], bytes], sb: L.SuperBlock, inode: L.Inode,
                ino: int) -> ExtentMap:
    """Walk the inline extents and the extent-block chain, validating as it goes.

    Checks: used slots first, ee_len >= 1, blocks inside the data region,
    sorted and non-overlapping file ranges, chain blocks inside the data
    region with magic, checksum, owner, count in range, and no loop (the
    chain can be no longer than the data region).
    """
    em = ExtentMap()

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
        data = read_block(blk)
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

