"""Block and inode allocation over in-memory copies of the bitmaps.

``Allocator`` loads both bitmaps, hands out inodes (lowest free first) and
blocks (first fit from a moving cursor, runs capped at ``max_extent_blocks``
so tests can fragment files), and ``commit`` writes the bitmaps back with the
superblock's free counts recounted from them. fsck and mkfs -d allocate
through it; nothing else writes bitmaps.
"""

from __future__ import annotations

import time

from vexfs import layout as L
from vexfs.fs.bitmap import count_zero_bits, get_bit, put_bit, split_bitmap
from vexfs.fs.blockdev import Device
from vexfs.fs.errors import NoSpace

BS = L.VEXFS_BLOCK_SIZE


def read_bitmap(dev: Device, start: int, count: int) -> bytearray:
    """The bits of a bitmap of ``count`` blocks at ``start``, headers stripped."""
    out = bytearray()
    for i in range(count):
        out += dev.read_block(start + i)[16:]
    return out


class Allocator:
    def __init__(self, dev: Device, sb: L.SuperBlock,
                 max_extent_blocks: int | None = None) -> None:
        self.dev = dev
        self.sb = sb
        self.max_extent_blocks = max_extent_blocks
        self.ibits = read_bitmap(dev, sb.s_ibitmap_start, sb.s_ibitmap_blocks)
        self.bbits = read_bitmap(dev, sb.s_bbitmap_start, sb.s_bbitmap_blocks)
        self.cursor = sb.s_data_start

    def alloc_inode(self) -> int:
        n = self.sb.s_inodes_count
        for byte in range((n + 7) // 8):
            if self.ibits[byte] == 0xFF:
                continue
            for i in range(byte * 8, min(n, byte * 8 + 8)):
                if not get_bit(self.ibits, i):
                    put_bit(self.ibits, i, True)
                    return i + 1
        raise NoSpace("no free inode")

    def free_inode(self, ino: int) -> None:
        put_bit(self.ibits, ino - 1, False)

    def _find_run(self, want: int) -> tuple[int, int]:
        """First free run at/after the cursor (wrapping): (start, length <= want)."""
        lo, hi = self.sb.s_data_start, self.sb.s_blocks_count
        start = max(lo, min(self.cursor, hi))
        for sweep in (range(start, hi), range(lo, start)):
            i = sweep.start
            while i < sweep.stop:
                if i % 8 == 0 and self.bbits[i >> 3] == 0xFF:
                    i += 8
                    continue
                if not get_bit(self.bbits, i):
                    j = i
                    while j < hi and j - i < want and not get_bit(self.bbits, j):
                        j += 1
                    return i, j - i
                i += 1
        raise NoSpace("no free block")

    def alloc_blocks(self, count: int) -> list[tuple[int, int]]:
        """``count`` blocks as (start, length) runs, each at most
        ``max_extent_blocks`` long; all or nothing."""
        runs: list[tuple[int, int]] = []
        left = count
        try:
            while left:
                want = min(left, self.max_extent_blocks or left)
                start, n = self._find_run(want)
                for b in range(start, start + n):
                    put_bit(self.bbits, b, True)
                runs.append((start, n))
                self.cursor = start + n
                left -= n
        except NoSpace:
            for start, n in runs:
                self.free_blocks(start, n)
            raise NoSpace(f"no space for {count} blocks") from None
        return runs

    def alloc_contiguous(self, count: int) -> int:
        """First block of ``count`` free contiguous blocks (fsck's clone)."""
        sb = self.sb
        run = 0
        for blk in range(sb.s_data_start, sb.s_blocks_count):
            run = 0 if get_bit(self.bbits, blk) else run + 1
            if run == count:
                first = blk - count + 1
                for x in range(first, blk + 1):
                    put_bit(self.bbits, x, True)
                return first
        raise NoSpace(f"no {count} contiguous free blocks")

    def free_blocks(self, start: int, count: int) -> None:
        for b in range(start, start + count):
            put_bit(self.bbits, b, False)

    def commit(self, write_time: int | None = None) -> None:
        """Write both bitmaps, then the superblock with recounted free counts
        (``write_time``: s_write_time to stamp, default now)."""
        sb = self.sb
        for start, nblocks, bits in ((sb.s_ibitmap_start, sb.s_ibitmap_blocks, self.ibits),
                                     (sb.s_bbitmap_start, sb.s_bbitmap_blocks, self.bbits)):
            for i, block in enumerate(split_bitmap(bits, nblocks)):
                self.dev.write_block(start + i, block)
        sb.s_free_inodes = count_zero_bits(self.ibits, sb.s_inodes_count)
        sb.s_free_blocks = count_zero_bits(self.bbits, sb.s_blocks_count)
        sb.s_write_time = int(time.time()) if write_time is None else write_time
        write_superblock(self.dev, sb)
        self.dev.flush()


def write_superblock(dev: Device, sb: L.SuperBlock) -> None:
    """Seal ``sb`` and write it over the start of block 0 (the rest is kept)."""
    L.seal(sb)
    block0 = bytearray(dev.read_block(0))
    raw = bytes(sb)
    block0[:len(raw)] = raw
    dev.write_block(0, block0)
