"""``FsWriter``: create inodes, files, directories, symlinks, hard links,
device nodes and vector collections in an image, exactly as the format says,
without a kernel.

fsck (lost+found, reconnecting orphans), mkfs -d and the test image builder
(``vexfs.imagebuild``) all write through it. Allocation goes through
``Allocator``; nothing is written to the bitmaps until ``commit``.
"""

from __future__ import annotations

import posixpath
import stat
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from vexfs import layout as L
from vexfs.fs.alloc import Allocator
from vexfs.fs.bitmap import get_bit, put_bit
from vexfs.fs.collection import collection_bytes
from vexfs.fs.dirent import make_dir_block, parse_dir_block
from vexfs.fs.errors import ImageError, NoSpace
from vexfs.fs.extents import ExtentRec
from vexfs.fs.filesystem import Image
from vexfs.fs.xattr import Xattr, build_xattr_block, set_xattr_block, xattr_block_of

if TYPE_CHECKING:
    import numpy as np

BS = L.VEXFS_BLOCK_SIZE


class FsWriter:
    """Writes new objects into an image opened read-write. Call ``commit()``
    (or leave the ``with`` block) to write back bitmaps and free counts."""

    def __init__(self, image: Image, max_extent_blocks: int | None = None,
                 now_ns: int | None = None) -> None:
        if not image.dev.writable:
            raise ValueError("FsWriter needs an image opened writable")
        self.img = image
        self.sb = image.sb
        self.alloc = Allocator(image.dev, image.sb, max_extent_blocks)
        #: the time stamped on new inodes (fixed for reproducible images)
        self.now_ns = time.time_ns() if now_ns is None else now_ns
        self._fixed_time = now_ns is not None

    def __enter__(self) -> FsWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
        self.img.close()

    def close(self) -> None:
        self.commit()
        self.img.close()

    # -- allocation (the Allocator's, under the names the tests know) --------
    @property
    def ibits(self) -> bytearray:
        return self.alloc.ibits

    @property
    def bbits(self) -> bytearray:
        return self.alloc.bbits

    @property
    def _cursor(self) -> int:
        return int(self.alloc.cursor)

    @_cursor.setter
    def _cursor(self, value: int) -> None:
        self.alloc.cursor = value

    @property
    def max_extent_blocks(self) -> int | None:
        return self.alloc.max_extent_blocks

    @max_extent_blocks.setter
    def max_extent_blocks(self, value: int | None) -> None:
        self.alloc.max_extent_blocks = value

    @staticmethod
    def _get(bits: bytearray, i: int) -> bool:
        return get_bit(bits, i)

    @staticmethod
    def _set(bits: bytearray, i: int, on: bool) -> None:
        put_bit(bits, i, on)

    def alloc_inode(self) -> int:
        return self.alloc.alloc_inode()

    def free_inode(self, ino: int) -> None:
        self.alloc.free_inode(ino)

    def alloc_blocks(self, count: int) -> list[tuple[int, int]]:
        return self.alloc.alloc_blocks(count)

    def free_blocks(self, start: int, count: int) -> None:
        self.alloc.free_blocks(start, count)

    def commit(self) -> None:
        """Write both bitmaps, then the superblock with recounted free counts."""
        self.alloc.commit(self.now_ns // 10**9 if self._fixed_time else None)

    # -- inodes ---------------------------------------------------------------
    def new_inode(self, mode: int, uid: int = 0, gid: int = 0,
                  links: int = 1) -> tuple[int, L.Inode]:
        ino = self.alloc_inode()
        sec, nsec = divmod(self.now_ns, 10**9)
        inode = L.Inode(i_mode=mode, i_links_count=links, i_uid=uid, i_gid=gid,
                        i_atime=sec, i_mtime=sec, i_ctime=sec, i_crtime=sec,
                        i_atime_nsec=nsec, i_mtime_nsec=nsec, i_ctime_nsec=nsec,
                        i_crtime_nsec=nsec, i_generation=ino)
        return ino, inode

    def write_inode(self, ino: int, inode: L.Inode) -> None:
        L.seal(inode)
        blk, off = self.img.inode_location(ino)
        data = bytearray(self.img.dev.read_block(blk))
        data[off:off + L.VEXFS_INODE_SIZE] = bytes(inode)
        self.img.dev.write_block(blk, data)

    def set_extents(self, ino: int, inode: L.Inode, extents: list[ExtentRec]) -> None:
        """Store extents in the inode (first 6) and a chain of extent blocks (the
        rest); set i_blocks. Does not free a previous chain."""
        inline = extents[:L.VEXFS_INLINE_EXTENTS]
        rest = extents[L.VEXFS_INLINE_EXTENTS:]
        for i in range(L.VEXFS_INLINE_EXTENTS):
            e = inode.i_extents[i]
            if i < len(inline):
                e.ee_logical, e.ee_start, e.ee_len = inline[i].logical, inline[i].start, \
                    inline[i].length
            else:
                e.ee_logical = e.ee_start = e.ee_len = 0
            e.ee_reserved = 0
        inode.i_nr_extents = len(inline)
        chunks = [rest[i:i + L.VEXFS_EXTENTS_PER_BLOCK]
                  for i in range(0, len(rest), L.VEXFS_EXTENTS_PER_BLOCK)]
        chain_blocks: list[int] = []
        try:
            for _ in chunks:
                (start, _n), = self.alloc_blocks(1)
                chain_blocks.append(start)
        except NoSpace:
            for b in chain_blocks:
                self.free_blocks(b, 1)
            raise
        for i, chunk in enumerate(chunks):
            block = bytearray(BS)
            nxt = chain_blocks[i + 1] if i + 1 < len(chain_blocks) else 0
            block[:L.EXTENT_BLOCK_HEADER_SIZE] = bytes(L.ExtentBlockHeader(
                eb_magic=L.VEXFS_EXTENT_BLOCK_MAGIC, eb_next=nxt, eb_count=len(chunk),
                eb_ino=ino))
            for j, e in enumerate(chunk):
                off = L.EXTENT_BLOCK_HEADER_SIZE + j * L.EXTENT_SIZE
                block[off:off + L.EXTENT_SIZE] = bytes(L.Extent(
                    ee_logical=e.logical, ee_start=e.start, ee_len=e.length))
            L.seal_block(block, "extent")
            self.img.dev.write_block(chain_blocks[i], block)
        inode.i_extent_block = chain_blocks[0] if chain_blocks else 0
        inode.i_blocks = sum(e.length for e in extents) + len(chain_blocks)

    def _write_data(self, data: bytes, sparse: bool = False,
                    logical_base: int = 0) -> list[ExtentRec]:
        """Allocate blocks for ``data`` and write it; with ``sparse`` all-zero
        blocks become holes. Returns the extents."""
        nblocks = (len(data) + BS - 1) // BS
        present = [b for b in range(nblocks)
                   if not sparse or any(data[b * BS:(b + 1) * BS])]
        # group consecutive present file blocks
        groups: list[tuple[int, int]] = []
        for b in present:
            if groups and groups[-1][0] + groups[-1][1] == b:
                groups[-1] = (groups[-1][0], groups[-1][1] + 1)
            else:
                groups.append((b, 1))
        extents: list[ExtentRec] = []
        try:
            for first, count in groups:
                logical = first
                for start, n in self.alloc_blocks(count):
                    chunk = data[logical * BS:(logical + n) * BS]
                    chunk = chunk + b"\0" * (n * BS - len(chunk))
                    self.img.dev.write_block(start, chunk)
                    extents.append(ExtentRec(logical_base + logical, start, n))
                    logical += n
        except NoSpace:
            for e in extents:      # nothing half-allocated stays behind
                self.free_blocks(e.start, e.length)
            raise
        return extents

    def _create(self, path: str, mode: int, uid: int, gid: int, ftype: int,
                data: bytes | None, sparse: bool = False, flags: int = 0,
                rdev: int = 0) -> int:
        """Make an inode with ``data``, then link it at ``path``; on ENOSPC
        everything allocated so far is released."""
        pino, name = self._parent_and_name(path)
        ino, inode = self.new_inode(mode, uid, gid)
        inode.i_flags, inode.i_rdev = flags, rdev
        extents: list[ExtentRec] = []
        try:
            if data is not None:
                extents = self._write_data(data, sparse)
                self.set_extents(ino, inode, extents)
                inode.i_size = len(data)
            self.write_inode(ino, inode)
            self.add_entry(pino, name, ino, ftype)
        except NoSpace:
            for e in extents:
                self.free_blocks(e.start, e.length)
            if inode.i_extent_block:
                for b in self.img.extent_map(inode, ino).chain:
                    self.free_blocks(b, 1)
            self.free_inode(ino)
            raise
        return ino

    # -- directories ------------------------------------------------------------
    def _parent_and_name(self, path: str) -> tuple[int, bytes]:
        path = posixpath.normpath("/" + path)
        parent, name = posixpath.split(path)
        if not name:
            raise ValueError("cannot create the root")
        bname = name.encode("utf-8", "surrogateescape")
        if len(bname) > L.VEXFS_NAME_LEN:
            raise OSError(36, f"name too long: {name!r}")
        pino = self.img.lookup(parent)
        if not stat.S_ISDIR(self.img.iget(pino).i_mode):
            raise NotADirectoryError(20, parent)
        if any(e.name == name for e in self.img.list_dir(pino)):
            raise FileExistsError(17, path)
        return pino, bname

    def add_entry(self, dir_ino: int, name: bytes, ino: int, ftype: int) -> None:
        """Insert an entry in the first block with room, or in a new block."""
        dinode = self.img.iget(dir_ino)
        need = L.dir_rec_len(len(name))
        for _lblk, pblk in self.img.dir_blocks(dir_ino, dinode):
            block = bytearray(self.img.read_block(pblk))
            recs, problems = parse_dir_block(block)
            if problems:
                raise ImageError(f"directory {dir_ino} block {pblk}: {'; '.join(problems)}")
            for r in recs:
                used = L.dir_rec_len(r.name_len) if r.inode else 0
                if r.rec_len - used >= need:
                    if r.inode:
                        # split: shrink r to its own size, new entry takes the rest
                        self._put_entry(block, r.offset, r.inode, used, r.name, r.file_type)
                        off, rec_len = r.offset + used, r.rec_len - used
                    else:
                        off, rec_len = r.offset, r.rec_len
                    self._put_entry(block, off, ino, rec_len, name, ftype)
                    L.seal_block(block, "dir")
                    self.img.dev.write_block(pblk, block)
                    return
        # no room: append a block
        em = self.img.extents(dir_ino, dinode)
        lblk = dinode.i_size // BS
        (start, _n), = self.alloc_blocks(1)
        self.img.dev.write_block(start, make_dir_block([(ino, name, ftype)]))
        exts = list(em.extents)
        if exts and exts[-1].logical + exts[-1].length == lblk and \
                exts[-1].end == start:
            exts[-1] = ExtentRec(exts[-1].logical, exts[-1].start, exts[-1].length + 1)
        else:
            exts.append(ExtentRec(lblk, start, 1))
        for b in em.chain:
            self.free_blocks(b, 1)
        self.set_extents(dir_ino, dinode, exts)
        dinode.i_size += BS
        self.write_inode(dir_ino, dinode)

    @staticmethod
    def _put_entry(block: bytearray, off: int, ino: int, rec_len: int, name: bytes,
                   ftype: int) -> None:
        block[off:off + 8] = bytes(L.DirEntry(d_inode=ino, d_rec_len=rec_len,
                                              d_name_len=len(name), d_file_type=ftype))
        block[off + 8:off + 8 + len(name)] = name

    def remove_entry(self, dir_ino: int, name: bytes) -> int:
        """Drop an entry (merging its space into the previous record); returns its inode."""
        dinode = self.img.iget(dir_ino)
        for _lblk, pblk in self.img.dir_blocks(dir_ino, dinode):
            block = bytearray(self.img.read_block(pblk))
            recs, _ = parse_dir_block(block)
            for i, r in enumerate(recs):
                if r.inode and r.name == name:
                    if i == 0:
                        block[r.offset:r.offset + 4] = b"\0\0\0\0"
                    else:
                        prev = recs[i - 1]
                        self._put_entry(block, prev.offset, prev.inode,
                                        prev.rec_len + r.rec_len, prev.name, prev.file_type)
                    L.seal_block(block, "dir")
                    self.img.dev.write_block(pblk, block)
                    return r.inode
        raise FileNotFoundError(2, name.decode(errors="replace"))

    def _bump_links(self, ino: int, delta: int) -> None:
        inode = self.img.iget(ino)
        inode.i_links_count += delta
        self.write_inode(ino, inode)

    bump_links = _bump_links

    def set_attrs(self, ino: int, *, mode: int | None = None, uid: int | None = None,
                  gid: int | None = None, atime_ns: int | None = None,
                  mtime_ns: int | None = None, ctime_ns: int | None = None) -> None:
        """Set an inode's permission bits, owner and times (mkfs -d copies them)."""
        inode = self.img.iget(ino)
        if mode is not None:
            inode.i_mode = stat.S_IFMT(inode.i_mode) | stat.S_IMODE(mode)
        if uid is not None:
            inode.i_uid = uid
        if gid is not None:
            inode.i_gid = gid
        for which, value in (("atime", atime_ns), ("mtime", mtime_ns), ("ctime", ctime_ns)):
            if value is not None:
                sec, nsec = divmod(value, 10**9)
                setattr(inode, f"i_{which}", sec)
                setattr(inode, f"i_{which}_nsec", nsec)
        self.write_inode(ino, inode)

    def set_xattrs(self, ino: int, entries: list[Xattr]) -> None:
        """Give inode ``ino`` (without an xattr block yet) a block holding
        ``entries``, and set the XATTR feature."""
        if not entries:
            return
        block = build_xattr_block(entries, ino)
        inode = self.img.iget(ino)
        if xattr_block_of(inode):
            raise ValueError(f"inode {ino} has an xattr block already")
        ((start, _n),) = self.alloc_blocks(1)
        self.img.dev.write_block(start, block)
        set_xattr_block(inode, start)
        inode.i_blocks += 1
        self.write_inode(ino, inode)
        # the superblock is written by commit()
        self.sb.s_feature_incompat |= L.VEXFS_FEATURE_INCOMPAT_XATTR

    # -- public object creation -------------------------------------------------
    def mkdir(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> int:
        pino, name = self._parent_and_name(path)
        ino, inode = self.new_inode(stat.S_IFDIR | mode, uid, gid, links=2)
        (start, _n), = self.alloc_blocks(1)
        self.img.dev.write_block(start, make_dir_block(
            [(ino, b".", L.VEXFS_FT_DIR), (pino, b"..", L.VEXFS_FT_DIR)]))
        self.set_extents(ino, inode, [ExtentRec(0, start, 1)])
        inode.i_size = BS
        self.write_inode(ino, inode)
        self.add_entry(pino, name, ino, L.VEXFS_FT_DIR)
        self._bump_links(pino, 1)
        return ino

    def makedirs(self, path: str) -> int:
        cur = ""
        ino = L.VEXFS_ROOT_INO
        for part in [p for p in path.split("/") if p]:
            cur += "/" + part
            try:
                ino = self.img.lookup(cur)
            except FileNotFoundError:
                ino = self.mkdir(cur)
        return ino

    def write_file(self, path: str, data: bytes, mode: int = 0o644, uid: int = 0,
                   gid: int = 0, sparse: bool = False, flags: int = 0) -> int:
        """Create a regular file holding ``data`` (all-zero blocks become holes
        with ``sparse``)."""
        return self._create(path, stat.S_IFREG | mode, uid, gid, L.VEXFS_FT_REG_FILE, data,
                            sparse, flags)

    def symlink(self, path: str, target: str, uid: int = 0, gid: int = 0) -> int:
        raw = target.encode("utf-8", "surrogateescape")
        if not 1 <= len(raw) <= 4095:
            raise ValueError("symlink target must be 1..4095 bytes")
        return self._create(path, stat.S_IFLNK | 0o777, uid, gid, L.VEXFS_FT_SYMLINK, raw)

    def mknod(self, path: str, mode: int, rdev: int = 0) -> int:
        """Device node, fifo or socket; ``rdev`` in new_encode_dev format."""
        ftype = L.file_type_of_mode(mode)
        if ftype not in (L.VEXFS_FT_CHRDEV, L.VEXFS_FT_BLKDEV, L.VEXFS_FT_FIFO,
                         L.VEXFS_FT_SOCK):
            raise ValueError("mknod makes device nodes, fifos and sockets only")
        return self._create(path, mode, 0, 0, ftype, None, rdev=rdev)

    def link(self, existing: str, path: str) -> int:
        ino = self.img.lookup(existing, follow=False)
        inode = self.img.iget(ino)
        if stat.S_ISDIR(inode.i_mode):
            raise IsADirectoryError(21, "hard links to directories are not allowed")
        pino, name = self._parent_and_name(path)
        ftype = L.file_type_of_mode(inode.i_mode)
        assert ftype is not None          # iget checked the mode
        self.add_entry(pino, name, ino, ftype)
        self._bump_links(ino, 1)
        return ino

    def create_collection(self, path: str, ids: np.ndarray[Any, Any] | list[int] | None = None,
                          vectors: np.ndarray[Any, Any] | None = None, dim: int | None = None,
                          metric: int = L.VEXFS_METRIC_L2, mode: int = 0o644) -> int:
        """A collection file with the given records (ids unique, vectors (n, dim))."""
        import numpy as np
        if vectors is None:
            if dim is None:
                raise ValueError("give vectors or dim")
            vectors = np.zeros((0, dim), dtype=np.float32)
        vectors = np.asarray(vectors, dtype="<f4")
        n, d = vectors.shape
        ids = np.asarray(ids if ids is not None else np.arange(n), dtype="<u8")
        if len(ids) != n:
            raise ValueError("ids and vectors differ in length")
        data = collection_bytes(d, metric, ids, vectors)
        return self.write_file(path, data, mode=mode, flags=L.VEXFS_INODE_FL_COLLECTION)


