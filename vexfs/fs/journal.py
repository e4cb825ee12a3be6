"""The VexFS journal: a jbd2 journal inside the filesystem.

VexFS journals its metadata with the kernel's jbd2 (the layer ext4 uses). The
journal is a contiguous region of the filesystem, ``[s_journal_start,
s_journal_start + s_journal_blocks)`` in the VexFS superblock, present when
``VEXFS_FEATURE_COMPAT_HAS_JOURNAL`` is set. Its first block holds a jbd2
version 2 superblock (``journal_superblock_t`` of ``include/linux/jbd2.h``,
all fields big endian); the kernel opens it with ``jbd2_journal_init_dev()``
on the filesystem's own device.

This module writes a fresh, empty journal (``format_journal``, used by
mkfs.vexfs). The parser/replayer for fsck and the offline reader lives beside
it (``needs_recovery``, ``check_journal``, ``recover``).
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol, Union

from vexfs import layout as L

JBD2_MAGIC_NUMBER = 0xC03B3998
JBD2_DESCRIPTOR_BLOCK = 1
JBD2_COMMIT_BLOCK = 2
JBD2_SUPERBLOCK_V1 = 3
JBD2_SUPERBLOCK_V2 = 4
JBD2_REVOKE_BLOCK = 5
JBD2_MIN_JOURNAL_BLOCKS = L.VEXFS_MIN_JOURNAL_BLOCKS

JBD2_FEATURE_COMPAT_CHECKSUM = 0x1
JBD2_FEATURE_INCOMPAT_REVOKE = 0x1
JBD2_FEATURE_INCOMPAT_64BIT = 0x2
JBD2_FEATURE_INCOMPAT_ASYNC_COMMIT = 0x4
JBD2_FEATURE_INCOMPAT_CSUM_V2 = 0x8
JBD2_FEATURE_INCOMPAT_CSUM_V3 = 0x10
JBD2_FEATURE_INCOMPAT_FAST_COMMIT = 0x20
JBD2_CRC32C_CHKSUM = 4

#: jbd2 features a fresh VexFS journal has: 64-bit block numbers (VexFS block
#: numbers are 64 bit), revoke records, and CRC-32C checksums of every journal
#: block (v3) so that a torn journal write is detected at replay.
VEXFS_JOURNAL_INCOMPAT = (JBD2_FEATURE_INCOMPAT_REVOKE | JBD2_FEATURE_INCOMPAT_64BIT
                          | JBD2_FEATURE_INCOMPAT_CSUM_V3)

be32 = ctypes.c_uint32


class JournalHeader(ctypes.BigEndianStructure):
    """journal_header_t: the 12 bytes that open every journal metadata block."""
    _pack_ = 1
    _fields_ = [("h_magic", be32), ("h_blocktype", be32), ("h_sequence", be32)]


class JournalSuperBlock(ctypes.BigEndianStructure):
    """journal_superblock_t (1024 bytes) as in Linux 6.1 include/linux/jbd2.h."""
    _pack_ = 1
    _fields_ = [
        ("s_header", JournalHeader),
        ("s_blocksize", be32),
        ("s_maxlen", be32),
        ("s_first", be32),
        ("s_sequence", be32),
        ("s_start", be32),
        ("s_errno", ctypes.c_int32),
        ("s_feature_compat", be32),
        ("s_feature_incompat", be32),
        ("s_feature_ro_compat", be32),
        ("s_uuid", ctypes.c_uint8 * 16),
        ("s_nr_users", be32),
        ("s_dynsuper", be32),
        ("s_max_transaction", be32),
        ("s_max_trans_data", be32),
        ("s_checksum_type", ctypes.c_uint8),
        ("s_padding2", ctypes.c_uint8 * 3),
        ("s_num_fc_blks", be32),
        ("s_padding", be32 * 41),
        ("s_checksum", be32),
        ("s_users", ctypes.c_uint8 * (16 * 48)),
    ]


assert ctypes.sizeof(JournalSuperBlock) == 1024
JSB_CHECKSUM_OFF = JournalSuperBlock.s_checksum.offset


def jbd2_crc32c(data: bytes | bytearray | memoryview, seed: int = 0xFFFFFFFF) -> int:
    """jbd2_chksum(): CRC-32C continued from ``seed`` without the final
    inversion (jbd2 reads the raw shash state). From the default seed ~0 it
    is the bitwise NOT of the standard CRC-32C."""
    # crc32c(data, value) continues a standard (inverted) CRC: feed it ~seed.
    return L.crc32c_continue(data, seed ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def superblock_checksum(jsb: JournalSuperBlock) -> int:
    """s_checksum of a v3-checksummed journal superblock."""
    raw = bytearray(bytes(jsb))
    raw[JSB_CHECKSUM_OFF:JSB_CHECKSUM_OFF + 4] = bytes(4)
    return jbd2_crc32c(raw)


@dataclass(frozen=True)
class JournalGeometry:
    """Where the journal is: filesystem blocks [start_block, start_block + blocks)."""
    start_block: int
    blocks: int
    block_size: int = L.VEXFS_BLOCK_SIZE

    @classmethod
    def from_superblock(cls, sb: L.SuperBlock) -> "JournalGeometry | None":
        """The journal of a VexFS superblock, or None if it has none."""
        if not sb.s_feature_compat & L.VEXFS_FEATURE_COMPAT_HAS_JOURNAL:
            return None
        return cls(int(sb.s_journal_start), int(sb.s_journal_blocks), int(sb.s_block_size))


class _BlockWriter(Protocol):
    def write_block(self, blkno: int, data: bytes | bytearray) -> None: ...


Writable = Union[_BlockWriter, BinaryIO]


def _write(f: Writable, offset: int, data: bytes) -> None:
    if hasattr(f, "write_block"):
        bs = len(data)
        f.write_block(offset // bs, data)          # type: ignore[union-attr]
    else:
        fd = f.fileno()                            # type: ignore[union-attr]
        f.flush()                                  # type: ignore[union-attr]
        os.pwrite(fd, data, offset)


def make_journal_superblock(geom: JournalGeometry, uuid: bytes,
                            sequence: int = 1) -> JournalSuperBlock:
    """An empty (clean: s_start 0) jbd2 v2 superblock for this region."""
    if geom.blocks < JBD2_MIN_JOURNAL_BLOCKS:
        raise ValueError(f"journal of {geom.blocks} blocks: jbd2 needs at least "
                         f"{JBD2_MIN_JOURNAL_BLOCKS}")
    if geom.blocks >= 1 << 32:
        raise ValueError("journal too large for jbd2 (32-bit s_maxlen)")
    if len(uuid) != 16:
        raise ValueError("uuid must be 16 bytes")
    jsb = JournalSuperBlock()
    jsb.s_header.h_magic = JBD2_MAGIC_NUMBER
    jsb.s_header.h_blocktype = JBD2_SUPERBLOCK_V2
    jsb.s_header.h_sequence = 0
    jsb.s_blocksize = geom.block_size
    jsb.s_maxlen = geom.blocks
    jsb.s_first = 1
    jsb.s_sequence = sequence
    jsb.s_start = 0
    jsb.s_errno = 0
    jsb.s_feature_incompat = VEXFS_JOURNAL_INCOMPAT
    ctypes.memmove(jsb.s_uuid, uuid, 16)
    # an internal journal has one user, the filesystem itself (as mke2fs)
    jsb.s_nr_users = 1
    jsb.s_checksum_type = JBD2_CRC32C_CHKSUM
    jsb.s_checksum = superblock_checksum(jsb)
    return jsb


def format_journal(f: Writable, geom: JournalGeometry, uuid: bytes) -> None:
    """Write an empty journal's superblock into the first block of ``geom``.

    ``f`` is a ``vexfs.image.Device`` (or anything with ``write_block``) or a
    binary file opened for writing. The caller zeroes the rest of the region
    (mkfs.vexfs does, with a fast range zeroing), so no stale block of an
    older journal can look like a transaction.
    """
    jsb = make_journal_superblock(geom, uuid)
    block = bytearray(geom.block_size)
    block[:ctypes.sizeof(jsb)] = bytes(jsb)
    _write(f, geom.start_block * geom.block_size, bytes(block))


def read_journal_superblock(data: bytes | bytearray | memoryview) -> JournalSuperBlock:
    """Parse the journal superblock from the journal's first block."""
    if len(data) < ctypes.sizeof(JournalSuperBlock):
        raise ValueError("short journal superblock")
    return JournalSuperBlock.from_buffer_copy(bytes(data[:ctypes.sizeof(JournalSuperBlock)]))


def default_journal_blocks(fs_blocks: int) -> int:
    """Journal size for a filesystem of ``fs_blocks`` 4 KiB blocks, as mke2fs's
    ext2fs_default_journal_size(): none below 8 MiB, then 4 MiB up to 1 GiB."""
    if fs_blocks < 2048:
        return 0
    for limit, size in ((32768, 1024), (256 * 1024, 4096), (512 * 1024, 8192),
                        (4096 * 1024, 16384), (8192 * 1024, 32768),
                        (16384 * 1024, 65536), (32768 * 1024, 131072)):
        if fs_blocks < limit:
            return size
    return 262144


# Parsing, checking and replay (fsck, offline reader) live in
# vexfs/fs/journal_recovery.py, which imports this module; its names are
# served from here lazily (the agreed API is journal.recover etc.).
_RECOVERY_NAMES = ("JournalError", "RecoveryResult", "check_journal", "needs_recovery",
                   "recover")


def __getattr__(name: str) -> Any:
    if name in _RECOVERY_NAMES:
        from vexfs.fs import journal_recovery

        return getattr(journal_recovery, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
