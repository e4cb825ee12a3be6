"""``Image``: a VexFS filesystem read (and, through ``writer``, written) offline.

Superblock, inodes, extents (inline and chained), file data, directories,
symlinks, path lookup and vector collections. Every structure it follows is
validated first: a corrupt image raises ``ImageError`` naming the broken
structure, never an IndexError or an endless loop. File data is streamed
(``iter_data``) so an 8 GiB sparse file reads in bounded memory.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

from vexfs import layout as L
from vexfs.fs.blockdev import Device
from vexfs.fs.collection import (
    Collection,
    collection_header_problems,
    index_end,
    index_header_problems,
    record_dtype,
)
from vexfs.fs.dirent import parse_dir_block
from vexfs.fs.errors import ImageError
from vexfs.fs.extents import ExtentMap, ExtentRec, map_extents
from vexfs.fs.geometry import superblock_problems
from vexfs.fs.xattr import Xattr, parse_xattr_block, xattr_block_of

BS = L.VEXFS_BLOCK_SIZE
MAX_SYMLINK_HOPS = 40
#: A symlink target is at most PATH_MAX - 1 bytes.
MAX_SYMLINK_LEN = 4095
#: bytes ``iter_data`` yields at a time (and the most it holds)
STREAM_CHUNK = 1 << 20
_ZEROS = bytes(STREAM_CHUNK)


@dataclass
class DirEntryInfo:
    name: str
    ino: int
    file_type: int



class Image:
    """A VexFS filesystem read (and, for the builder and fsck, written) offline."""

    def __init__(self, path: str | os.PathLike[str], writable: bool = False,
                 require_checksum: bool = True, sb: L.SuperBlock | None = None,
                 exclusive: bool = False) -> None:
        """``sb``: use this superblock instead of block 0's (fsck's rebuilt one);
        ``exclusive``: O_EXCL on a block device (EBUSY while mounted or held)."""
        self.path = str(path)
        self.dev = Device(path, writable=writable, exclusive=exclusive)
        try:
            self.sb = sb if sb is not None else self._load_superblock(require_checksum)
            if not writable:  # a read-only reader sees the journal replayed (in memory)
                self._replay_journal_view(require_checksum, sb)
        except BaseException:
            self.dev.close()
            raise

    def _replay_journal_view(self, require_checksum: bool, sb: L.SuperBlock | None) -> None:
        from vexfs.fs.journal_recovery import replayed_view

        dev, self.journal_replay = replayed_view(self.dev, self.sb)
        if self.journal_replay is not None:
            self.dev = dev  # type: ignore[assignment]
            if sb is None:
                self.sb = self._load_superblock(require_checksum)

    # -- lifecycle ------------------------------------------------------
    def close(self) -> None:
        self.dev.close()

    def __enter__(self) -> Image:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
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

    # -- extended attributes ----------------------------------------------
    def xattrs(self, ino: int, inode: L.Inode | None = None) -> list[Xattr]:
        """The inode's extended attributes (ACLs included), checked as the
        kernel checks them; ImageError if its xattr block is damaged."""
        inode = inode if inode is not None else self.iget(ino)
        blk = xattr_block_of(inode)
        if not blk:
            return []
        if not self.sb.s_data_start <= blk < self.sb.s_blocks_count:
            raise ImageError(f"inode {ino}: xattr block {blk} outside the data area")
        xb = parse_xattr_block(self.read_block(blk), ino)
        if xb.problems:
            raise ImageError(f"inode {ino}: xattr block {blk}: {xb.problems[0]}")
        if xb.bad_checksum:
            raise ImageError(f"inode {ino}: xattr block {blk}: checksum mismatch")
        return xb.entries

    # -- extents ----------------------------------------------------------
    def extent_map(self, inode: L.Inode, ino: int) -> ExtentMap:
        """Walk and validate the inode's extents (see ``map_extents``)."""
        return map_extents(self.read_block, self.sb, inode, ino)

    def extents(self, ino: int, inode: L.Inode | None = None) -> ExtentMap:
        inode = inode if inode is not None else self.iget(ino)
        em = self.extent_map(inode, ino)
        problems = em.problems + [f"extent block {b}: checksum mismatch"
                                  for b in em.bad_checksum]
        if problems:
            raise ImageError(f"inode {ino}: " + "; ".join(problems))
        return em

    # -- data -------------------------------------------------------------
    def iter_data(self, ino: int, offset: int = 0, length: int | None = None,
                  inode: L.Inode | None = None, extents: list[ExtentRec] | None = None,
                  chunk: int = STREAM_CHUNK) -> Iterator[bytes]:
        """File bytes [offset, offset+length) clipped to i_size, in pieces of at
        most ``chunk`` bytes, holes as zeroes: memory stays bounded whatever the
        file size. ``extents``: an already validated extent list (fsck)."""
        inode = inode if inode is not None else self.iget(ino)
        size = inode.i_size
        if length is None or offset + length > size:
            length = max(0, size - offset)
        if length <= 0:
            return
        exts = sorted(extents if extents is not None else self.extents(ino, inode).extents,
                      key=lambda e: e.logical)
        pos, end = offset, offset + length
        k = 0
        while pos < end:
            lblk = pos // BS
            while k < len(exts) and exts[k].logical + exts[k].length <= lblk:
                k += 1
            ext = exts[k] if k < len(exts) else None
            if ext is None or ext.logical > lblk:
                # a hole up to the next extent (or the end)
                stop = min(end, ext.logical * BS) if ext is not None else end
                n = min(stop - pos, chunk)
                yield _ZEROS if n == len(_ZEROS) else bytes(n)
                pos += n
                continue
            stop = min(end, (ext.logical + ext.length) * BS, pos + chunk)
            disk = (ext.start + lblk - ext.logical) * BS + pos % BS
            yield self.dev.read(disk, stop - pos)
            pos = stop

    def read_data(self, ino: int, offset: int = 0, length: int | None = None,
                  inode: L.Inode | None = None,
                  extents: list[ExtentRec] | None = None) -> bytes:
        """File bytes [offset, offset+length) clipped to i_size; holes read as zero.
        Builds the whole range in memory: for small reads; stream with ``iter_data``."""
        return b"".join(self.iter_data(ino, offset, length, inode, extents))

    # -- directories ----------------------------------------------------------
    def scan_inodes(self) -> Iterator[tuple[int, L.Inode]]:
        """Every inode slot with a non-zero mode, in inode order, one inode-table
        block read at a time (checksums are not checked: fsck judges them)."""
        sb = self.sb
        for b in range(sb.s_itable_blocks):
            data = self.dev.read_block(sb.s_itable_start + b)
            for slot in range(L.VEXFS_INODES_PER_BLOCK):
                ino = b * L.VEXFS_INODES_PER_BLOCK + slot + 1
                if ino > sb.s_inodes_count:
                    return
                off = slot * L.VEXFS_INODE_SIZE
                if data[off] or data[off + 1]:
                    yield ino, L.Inode.unpack(data, off)

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

    def walk(self, path: str = "/") -> Iterator[tuple[str, int, L.Inode]]:
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
        index: dict[str, int] | None = None
        if head.c_flags & L.VEXFS_COLL_FL_INDEX:
            xraw = self.read_data(ino, L.VEXFS_INDEX_BASE, L.INDEX_HEADER_SIZE, inode=inode)
            xh = L.IndexHeader.unpack(xraw.ljust(L.INDEX_HEADER_SIZE, b"\0"))
            xprob = index_header_problems(xh, head)
            if xprob:
                raise ImageError(f"collection inode {ino}: ANN index: " + "; ".join(xprob))
            expect = index_end(head.c_dim, xh.x_nlist)
            araw = self.read_data(ino, L.VEXFS_INDEX_BASE + L.VEXFS_INDEX_ASSIGN_OFF,
                                  head.c_count * 4, inode=inode)
            indexed = sum(1 for i in range(0, len(araw), 4) if araw[i:i + 4] != b"\0\0\0\0")
            index = {"nlist": xh.x_nlist, "nprobe": xh.x_nprobe, "indexed": indexed,
                     "pending": head.c_count - indexed}
        if inode.i_size != expect:
            raise ImageError(f"collection inode {ino}: size {inode.i_size} is not "
                             f"{expect} ({head.c_count} records x {head.c_record_size} bytes"
                             + (", with an ANN index)" if index else ")"))
        # a forged c_count over a sparse file: refuse it (as the kernel does)
        # instead of building 2^34 records of holes in memory
        mapped = sum(e.length for e in self.extents(ino, inode).extents)
        # (with an ANN index, i_size covers the sparse index region: count the records)
        need = -(-(L.VEXFS_DATA_OFFSET + head.c_count * head.c_record_size) // BS)
        if need > mapped:
            raise ImageError(f"collection inode {ino}: {head.c_count} records need "
                             f"{need} blocks but only {mapped} are allocated")
        body = self.read_data(ino, L.VEXFS_DATA_OFFSET, head.c_count * head.c_record_size,
                              inode=inode)
        import numpy as np
        rec_dtype = record_dtype(head.c_dim, head.c_record_size)
        recs = np.frombuffer(body, dtype=rec_dtype, count=head.c_count)
        return Collection(dim=head.c_dim, metric=head.c_metric, count=head.c_count,
                          record_size=head.c_record_size,
                          ids=recs["id"].astype(np.uint64),
                          vectors=np.ascontiguousarray(recs["vec"], dtype=np.float32)
                          .reshape(head.c_count, head.c_dim),
                          flags=recs["flags"].astype(np.uint32), index=index)


def open_image(path: str | os.PathLike[str], writable: bool = False) -> Image:
    return Image(path, writable=writable)

