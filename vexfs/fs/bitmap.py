"""Bitmap blocks: a 16-byte header (magic, checksum, index) + 4080 bytes of
bits, little-endian bit order. Bit i of the inode bitmap is inode i+1; bit i
of the block bitmap is block i. Bits past the last item (the tail) are set."""

from __future__ import annotations

import re

from vexfs import layout as L

BS = L.VEXFS_BLOCK_SIZE
HEADER = 16
#: how many ranges ``fmt_bits`` lists before summarising
MAX_RANGES = 8


def get_bit(bits: bytes | bytearray, i: int) -> bool:
    return bool(bits[i >> 3] >> (i & 7) & 1)


def put_bit(bits: bytearray, i: int, on: bool) -> None:
    if on:
        bits[i >> 3] |= 1 << (i & 7)
    else:
        bits[i >> 3] &= ~(1 << (i & 7)) & 0xFF


def set_bit_range(bits: bytearray, a: int, z: int) -> None:
    """Set bits [a, z) of a little-endian-bit-order bitmap."""
    while a < z and a % 8:
        bits[a // 8] |= 1 << (a % 8)
        a += 1
    full = (z - a) // 8
    if full > 0:
        bits[a // 8:a // 8 + full] = b"\xff" * full
        a += full * 8
    while a < z:
        bits[a // 8] |= 1 << (a % 8)
        a += 1


def count_set_bits(bits: bytes | bytearray, nbits: int) -> int:
    """Set bits among the first ``nbits``."""
    value = int.from_bytes(bytes(bits[:(nbits + 7) // 8]), "little")
    return (value & ((1 << nbits) - 1)).bit_count()


def count_zero_bits(bits: bytes | bytearray, nbits: int) -> int:
    """Clear bits among the first ``nbits``."""
    return nbits - count_set_bits(bits, nbits)


def bitmap_block(index: int, bits: bytes | bytearray) -> bytearray:
    """A sealed bitmap block holding ``bits`` (VEXFS_BITMAP_BYTES of them)."""
    block = bytearray(BS)
    block[:HEADER] = bytes(L.BitmapHeader(bh_magic=L.VEXFS_BITMAP_MAGIC, bh_index=index))
    block[HEADER:] = bytes(bits[:L.VEXFS_BITMAP_BYTES]).ljust(L.VEXFS_BITMAP_BYTES, b"\0")
    L.seal_block(block, "bitmap")
    return block


def make_bitmap_blocks(nbits: int, nblocks: int, used: int) -> list[bytearray]:
    """Bitmap blocks with bits [0, used) set and the tail (bits >= nbits) set."""
    packed = bytearray(nblocks * L.VEXFS_BITMAP_BYTES)
    set_bit_range(packed, 0, used)
    set_bit_range(packed, nbits, len(packed) * 8)
    return split_bitmap(packed, nblocks)


def split_bitmap(packed: bytes | bytearray, nblocks: int) -> list[bytearray]:
    return [bitmap_block(i, packed[i * L.VEXFS_BITMAP_BYTES:(i + 1) * L.VEXFS_BITMAP_BYTES])
            for i in range(nblocks)]


def fmt_bits(bits: int, base: int) -> str:
    """Set bits of a bitmap (as an int) as "a-b, c, ..." item ranges (+base)."""
    raw = bits.to_bytes((bits.bit_length() + 7) // 8, "little")
    ranges: list[list[int]] = []
    for m in re.finditer(rb"[^\x00]", raw):
        byte = m.start()
        val = raw[byte]
        for bit in range(8):
            if val >> bit & 1:
                x = byte * 8 + bit + base
                if ranges and ranges[-1][1] + 1 == x:
                    ranges[-1][1] = x
                else:
                    if len(ranges) > MAX_RANGES:
                        break
                    ranges.append([x, x])
        if len(ranges) > MAX_RANGES:
            break
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in ranges[:MAX_RANGES]]
    if len(ranges) > MAX_RANGES:
        parts.append("...")
    return ", ".join(parts)
