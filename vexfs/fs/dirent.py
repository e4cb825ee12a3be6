"""The directory block codec.

A directory block is a chain of records (8-byte head + name, 4-byte aligned,
``d_rec_len`` covering any slack) filling bytes [0, 4088), then an 8-byte tail
(magic + CRC-32C of the block). Inode 0 marks a free record.
"""

from __future__ import annotations

from dataclasses import dataclass

from vexfs import layout as L

BS = L.VEXFS_BLOCK_SIZE


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


def parse_dir_block(block: bytes | bytearray) -> tuple[list[DirRecord], list[str]]:
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



def dot_entries(ino: int, parent: int) -> list[tuple[int, bytes, int]]:
    """The '.' and '..' entries every directory's block 0 starts with."""
    return [(ino, b".", L.VEXFS_FT_DIR), (parent, b"..", L.VEXFS_FT_DIR)]


def make_first_dir_block(ino: int, parent: int,
                         entries: list[tuple[int, bytes, int]] | None = None) -> bytearray:
    """Block 0 of a directory: '.' and '..', then ``entries``."""
    return make_dir_block(dot_entries(ino, parent) + list(entries or []))
