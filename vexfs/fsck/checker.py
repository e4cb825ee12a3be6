"""fsck.vexfs's passes: ``Checker.check()`` runs them in order over one image.

Pass 1 superblock and geometry (and the bitmap blocks' headers), pass 2
inodes and extents, pass 3 directory structure, pass 4 connectivity, pass 5
link counts, pass 6 block ownership, bitmaps and counters, pass 7
collections. Each problem found is a row of the problem table
(``vexfs.fsck.problems``) with its fields filled, and, when it can be
repaired, a ``fix`` closure; whether -p may apply it is the table's word.
Repairs that allocate (lost+found, reconnecting orphans, cloning shared
blocks) go through the core library's ``Allocator`` and ``FsWriter``.
"""

from __future__ import annotations

import logging
import stat
from dataclasses import dataclass, field
from typing import Callable


from vexfs import __version__
from vexfs import layout as L
from vexfs.fs.alloc import Allocator
from vexfs.fs.bitmap import fmt_bits as _fmt_bits, set_bit_range, split_bitmap
from vexfs.fs.collection import (
    collection_header_problems,
    index_end,
    index_header_problems,
)
from vexfs.fs.dirent import DirRecord, make_dir_block, name_problem, \
    parse_dir_block
from vexfs.fs.errors import ImageError, NoSpace
from vexfs.fs.extents import MAX_FILE_SIZE, ExtentRec
from vexfs.fs.filesystem import BS, MAX_SYMLINK_LEN, Image
from vexfs.fs.writer import FsWriter
from vexfs.fs.xattr import Xattr, build_xattr_block, entry_problem, parse_xattr_block, \
    set_xattr_block, xattr_block_of
from vexfs.fsck.problems import PROBLEMS, message

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_CORRECTED = 1
EXIT_REBOOT = 2
EXIT_UNCORRECTED = 4
EXIT_OPERATIONAL = 8
EXIT_USAGE = 16
EXIT_CANCELED = 32

MAX_ROUNDS = 6
LOST_FOUND = "lost+found"
VERSION = __version__  # kernel/VERSION, the one version number of VexFS


class FatalError(Exception):
    """The filesystem cannot be checked at all (exit 8) or its core is broken (exit 4)."""

    def __init__(self, message: str, exit_code: int = EXIT_OPERATIONAL) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Problem:
    code: str
    message: str
    fix: Callable[[], None] | None = None
    fixed: bool = False

    @property
    def preen(self) -> bool:
        """-p may apply the fix (the problem table says)."""
        return PROBLEMS[self.code].preen

    def __str__(self) -> str:
        return self.message


def problem(code: str, fix: Callable[[], None] | None = None, **fields: object) -> Problem:
    return Problem(code, message(code, **fields), fix)


@dataclass
class InodeInfo:
    ino: int
    inode: L.Inode
    bit: bool                       # inode bitmap bit
    valid: bool = True              # structure usable (mode, extents)
    problems: list[Problem] = field(default_factory=list)
    extents: list[ExtentRec] = field(default_factory=list)
    chain: list[int] = field(default_factory=list)
    xattr_blk: int = 0              # its checked xattr block (0: none or cleared)
    refs: int = 0                   # directory entries naming it (not . / ..)
    subdirs: int = 0                # for directories: child directories
    parent: int | None = None       # for directories: the dir whose entry we followed
    reached: bool = False
    path: str = ""
    disconnected: bool = False      # a directory tree root not reachable from /
    #: (disk block, offset, where, name) of the entry that made ``parent`` its parent
    parent_entry: tuple[int, int, str, str] | None = None

    @property
    def mode(self) -> int:
        return int(self.inode.i_mode)

    @property
    def kind(self) -> str:
        ft = L.file_type_of_mode(self.mode)
        if ft == L.VEXFS_FT_REG_FILE and self.inode.i_flags & L.VEXFS_INODE_FL_COLLECTION:
            return "collection"
        return L.FT_NAMES.get(ft, "inode") if ft is not None else "inode"

    def describe(self) -> str:
        where = f" {self.path}" if self.path else ""
        return f"{self.kind}{where} (inode {self.ino})"


#: claim index of an inode's xattr block (data extents count from 0, extent
#: blocks from 1_000_000)
XATTR_CLAIM = 2_000_000


class Checker:
    """One full check of an image; ``repair`` decides whether fixes get built to write."""

    def __init__(self, img: Image, error_state_acked: bool = False,
                 on_pass: Callable[[int], None] | None = None,
                 lost_found: int | None = None) -> None:
        self.error_state_acked = error_state_acked
        self.img = img
        self.sb = img.sb
        self.problems: list[Problem] = []
        self.infos: dict[int, InodeInfo] = {}
        self.stats: dict[str, int] = {}
        #: called with the pass number as each pass starts (-v headers)
        self.on_pass = on_pass
        #: inode of the /lost+found this run created or found (reused, never recreated)
        self.lost_found = lost_found
        self.pending_reconnect: list[int] = []
        self.pending_clone: list[tuple[int, int, int, int]] = []
        self.dotdot_checks: list[tuple[InodeInfo, DirRecord, int, str]] = []
        self.bitmaps_rebuilt = False
        self.xattr_feature_noted = False
        self.want_bits: tuple[bytearray, bytearray] = (bytearray(), bytearray())
        #: filled by reconnect_orphans when it had to create /lost+found
        self.created_lost_found: int | None = None

    # -- helpers --------------------------------------------------------------
    def add(self, code: str, fix: Callable[[], None] | None = None,
            **fields: object) -> Problem:
        """Record problem ``code`` (a row of the problem table) with its fields."""
        p = problem(code, fix, **fields)
        self.problems.append(p)
        return p

    def write_block(self, blkno: int, data: bytes | bytearray) -> None:
        self.img.dev.write_block(blkno, data)

    def patch_inode(self, ino: int, mutate: Callable[[L.Inode], None]) -> Callable[[], None]:
        """A fix that re-reads inode ``ino``, mutates it and writes it sealed."""
        def fix() -> None:
            blk, off = self.img.inode_location(ino)
            data = bytearray(self.img.dev.read_block(blk))
            inode = L.Inode.unpack(data, off)
            mutate(inode)
            L.seal(inode)
            data[off:off + L.VEXFS_INODE_SIZE] = bytes(inode)
            self.write_block(blk, data)
        return fix

    def set_inode_field(self, ino: int, name: str, value: int) -> Callable[[], None]:
        """A fix that sets one field of inode ``ino`` (and reseals it)."""
        def mutate(inode: L.Inode) -> None:
            setattr(inode, name, value)
        return self.patch_inode(ino, mutate)

    def clear_inode_fix(self, ino: int) -> Callable[[], None]:
        def fix() -> None:
            blk, off = self.img.inode_location(ino)
            data = bytearray(self.img.dev.read_block(blk))
            data[off:off + L.VEXFS_INODE_SIZE] = bytes(L.VEXFS_INODE_SIZE)
            self.write_block(blk, data)
        return fix

    def patch_dir_block(self, pblk: int, mutate: Callable[[bytearray], None]
                        ) -> Callable[[], None]:
        def fix() -> None:
            block = bytearray(self.img.dev.read_block(pblk))
            mutate(block)
            L.seal_block(block, "dir")
            self.write_block(pblk, block)
        return fix

    # -- the check ------------------------------------------------------------
    def _start(self, pass_no: int) -> None:
        if self.on_pass is not None:
            self.on_pass(pass_no)

    def check(self) -> list[Problem]:
        """Run every pass in order; returns the problems found."""
        self._start(1)
        self.check_superblock()
        ibits, bbits = self.check_bitmap_blocks()
        self._start(2)
        self.scan_inodes(ibits)
        self._start(3)
        self.walk_directories()
        self._start(4)
        self.check_connectivity()
        self._start(5)
        self.check_link_counts()
        self._start(6)
        self.check_blocks_and_bitmaps(ibits, bbits)
        self._start(7)
        self.check_collections()
        return self.problems

    # pass 1 ---------------------------------------------------------------
    def check_superblock(self) -> None:
        sb = self.sb
        if not L.struct_checksum_ok(sb):
            self.add("sb.checksum", self.rewrite_superblock, stored=sb.s_checksum,
                     computed=L.struct_checksum(sb))
        if sb.s_state & L.VEXFS_STATE_ERROR and not self.error_state_acked:
            # Cleared (with the CLEAN state written) only once a final re-check
            # finds nothing left; run_fsck does that write.
            self.add("sb.error_state", lambda: None)

    def rewrite_superblock(self) -> None:
        L.seal(self.sb)
        block0 = bytearray(self.img.dev.read_block(0))
        block0[:len(bytes(self.sb))] = bytes(self.sb)
        self.write_block(0, block0)

    def check_bitmap_blocks(self) -> tuple[bytearray, bytearray]:
        sb = self.sb
        out = []
        for name, start, count in (("inode", sb.s_ibitmap_start, sb.s_ibitmap_blocks),
                                   ("block", sb.s_bbitmap_start, sb.s_bbitmap_blocks)):
            bits = bytearray()
            for i in range(count):
                blk = start + i
                data = self.img.dev.read_block(blk)
                head = L.BitmapHeader.unpack(data)
                where = {"which": name, "index": i, "blk": blk}
                if head.bh_magic != L.VEXFS_BITMAP_MAGIC:
                    self.add("bitmap.header", self.rebuild_bitmaps_fix(),
                             why=f"has bad magic 0x{head.bh_magic:08x}", **where)
                elif head.bh_index != i:
                    self.add("bitmap.header", self.rebuild_bitmaps_fix(),
                             why=f"says it is block {head.bh_index} of its bitmap", **where)
                elif not L.checksum_ok(data, L.BITMAP_CHECKSUM_OFF):
                    self.add("bitmap.checksum", self.rebuild_bitmaps_fix(), **where)
                bits += data[16:]
            out.append(bits)
        return out[0], out[1]

    # pass 2 ---------------------------------------------------------------
    def scan_inodes(self, ibits: bytearray) -> None:
        for ino, inode in self.img.scan_inodes():
            bit = bool(ibits[(ino - 1) >> 3] >> ((ino - 1) & 7) & 1)
            info = InodeInfo(ino, inode, bit)
            self.infos[ino] = info
            self.check_inode(info)
        root = self.infos.get(L.VEXFS_ROOT_INO)
        if root is None or not root.valid or not stat.S_ISDIR(root.mode):
            why = ("is free" if root is None else
                   "is not a directory" if root.valid and not stat.S_ISDIR(root.mode)
                   else "is corrupt: " + "; ".join(p.message for p in root.problems))
            raise FatalError(f"root inode {L.VEXFS_ROOT_INO} {why}; cannot check the "
                             "directory tree", EXIT_UNCORRECTED)

    def _inode_problem(self, info: InodeInfo, code: str, fix: Callable[[], None] | None = None,
                       fatal: bool = False, **fields: object) -> None:
        """A problem of one inode; reported later only if the inode is in use.
        ``fatal``: the inode's structure cannot be trusted -> clear it (-y)."""
        action = ""
        if fatal:
            info.valid = False
            if fix is None and info.ino != L.VEXFS_ROOT_INO:
                fix = self.clear_inode_fix(info.ino)
                action = "; the inode will be cleared"
        fields.setdefault("action", action)
        info.problems.append(problem(code, fix, ino=info.ino, **fields))

    def check_inode(self, info: InodeInfo) -> None:
        inode, ino = info.inode, info.ino
        mode = inode.i_mode
        if not L.mode_valid(mode):
            self._inode_problem(info, "inode.mode", fatal=True, mode=mode,
                                ifmt=stat.S_IFMT(mode))
            return
        ftype = L.file_type_of_mode(mode)
        assert ftype is not None
        unknown = inode.i_flags & ~L.VEXFS_INODE_FL_ALL
        if unknown:
            self._inode_problem(info, "inode.flags", self.patch_inode(ino, lambda i: setattr(
                i, "i_flags", i.i_flags & L.VEXFS_INODE_FL_ALL)),
                why=f"unknown flags 0x{unknown:x}")
        if inode.i_flags & L.VEXFS_INODE_FL_COLLECTION and ftype != L.VEXFS_FT_REG_FILE:
            self._inode_problem(info, "inode.flags", self.patch_inode(ino, lambda i: setattr(
                i, "i_flags", i.i_flags & ~L.VEXFS_INODE_FL_COLLECTION)),
                why=f"collection flag set on a {L.FT_NAMES[ftype]}")
        em = self.img.extent_map(inode, ino)
        if em.problems:
            for msg in em.problems:
                code = "inode.extent_chain" if "extent block" in msg else "inode.extent"
                self._inode_problem(info, code, fatal=True, why=msg)
            return
        info.extents, info.chain = em.extents, em.chain
        for blk in em.bad_checksum:
            def reseal(blk: int = blk) -> None:
                data = bytearray(self.img.dev.read_block(blk))
                L.seal_block(data, "extent")
                self.write_block(blk, data)
            self._inode_problem(info, "inode.extent_block_checksum", reseal, blk=blk)
        checksum_ok = L.struct_checksum_ok(inode)
        if ftype in (L.VEXFS_FT_CHRDEV, L.VEXFS_FT_BLKDEV, L.VEXFS_FT_FIFO, L.VEXFS_FT_SOCK):
            if em.extents or inode.i_size:
                self._inode_problem(info, "inode.size", fatal=True,
                                    why=f"a {L.FT_NAMES[ftype]} has size {inode.i_size} and "
                                        f"{len(em.extents)} extents")
                return
        if inode.i_size > MAX_FILE_SIZE:
            mapped_end = max((e.logical + e.length for e in em.extents), default=0) * BS
            if ftype == L.VEXFS_FT_REG_FILE and \
                    not inode.i_flags & L.VEXFS_INODE_FL_COLLECTION:
                self._inode_problem(info, "inode.size_max", self.set_inode_field(
                    ino, "i_size", mapped_end),
                    size=inode.i_size, max=MAX_FILE_SIZE, end=mapped_end)
                inode.i_size = mapped_end        # check the rest as it will be
            elif ftype != L.VEXFS_FT_REG_FILE:
                self._inode_problem(info, "inode.size", fatal=True,
                                    why=f"size {inode.i_size} exceeds the largest file size "
                                        f"{MAX_FILE_SIZE}")
                return
        nblocks_size = (inode.i_size + BS - 1) // BS
        mapped_past = [e for e in em.extents if e.logical + e.length > nblocks_size]
        if ftype == L.VEXFS_FT_DIR:
            if inode.i_size == 0 or inode.i_size % BS:
                self._inode_problem(info, "inode.size", fatal=True,
                                    why=f"directory size {inode.i_size} is not a positive "
                                        "multiple of 4096")
                return
            if mapped_past:
                self._inode_problem(info, "inode.size", fatal=True,
                                    why=f"directory maps blocks past its size {inode.i_size}")
                return
        if ftype == L.VEXFS_FT_SYMLINK:
            if not 1 <= inode.i_size <= MAX_SYMLINK_LEN:
                self._inode_problem(info, "symlink.size", fatal=True, size=inode.i_size,
                                    max=MAX_SYMLINK_LEN)
                return
            if mapped_past:
                self._inode_problem(info, "inode.size", fatal=True,
                                    why=f"symlink maps blocks past its size {inode.i_size}")
                return
        if ftype in (L.VEXFS_FT_DIR, L.VEXFS_FT_SYMLINK):
            mapped = sum(e.length for e in em.extents)
            if mapped != nblocks_size:
                self._inode_problem(info, "inode.hole", fatal=True, kind=L.FT_NAMES[ftype],
                                    size=inode.i_size, mapped=mapped, want=nblocks_size)
                return
        xblk = xattr_block_of(inode)
        if xblk and self.check_xattr_block(info, xblk):
            info.xattr_blk = xblk
        expect_blocks = sum(e.length for e in em.extents) + len(em.chain) + \
            (1 if info.xattr_blk else 0)
        if inode.i_blocks != expect_blocks:
            self._inode_problem(info, "inode.i_blocks", self.set_inode_field(
                ino, "i_blocks", expect_blocks),
                have=inode.i_blocks, want=expect_blocks)
        if not checksum_ok:
            self._inode_problem(info, "inode.checksum", self.patch_inode(ino, lambda i: None),
                                stored=inode.i_checksum, computed=L.struct_checksum(inode))
        if ftype == L.VEXFS_FT_SYMLINK:
            target = self.img.read_data(ino, inode=inode, extents=info.extents)
            if b"\0" in target:
                self._inode_problem(info, "symlink.target", fatal=True)

    def check_xattr_block(self, info: InodeInfo, blk: int) -> bool:
        """Pass 2: the inode's xattr block. False: unusable (its pointer is cleared)."""
        ino, sb = info.ino, self.sb
        clear = self.patch_inode(ino, lambda i: set_xattr_block(i, 0))
        if not sb.s_data_start <= blk < sb.s_blocks_count:
            self._inode_problem(info, "xattr.block", clear, blk=blk,
                                why=f"outside the data area [{sb.s_data_start}, "
                                    f"{sb.s_blocks_count})")
            return False
        try:
            data = self.img.dev.read_block(blk)
        except OSError as e:
            self._inode_problem(info, "xattr.block", clear, blk=blk, why=f"unreadable: {e}")
            return False
        xb = parse_xattr_block(data, ino)
        if xb.problems:
            self._inode_problem(info, "xattr.block", clear, blk=blk, why=xb.problems[0])
            return False
        bad = [(x, why) for x in xb.entries if (why := entry_problem(x)) is not None]
        if bad:
            keep = [x for x in xb.entries if all(x is not b for b, _ in bad)]

            def rewrite(keep: list[Xattr] = keep, blk: int = blk) -> None:
                self.write_block(blk, build_xattr_block(keep, ino))
            for x, why in bad:
                self._inode_problem(info, "xattr.entry", rewrite, name=x.full_name, why=why)
        elif xb.bad_checksum:
            def reseal(blk: int = blk, xs: list[Xattr] = xb.entries) -> None:
                self.write_block(blk, build_xattr_block(xs, ino))
            self._inode_problem(info, "xattr.checksum", reseal, blk=blk)
        if not sb.s_feature_incompat & L.VEXFS_FEATURE_INCOMPAT_XATTR and \
                not self.xattr_feature_noted:
            self.xattr_feature_noted = True

            def set_feature() -> None:
                self.sb.s_feature_incompat |= L.VEXFS_FEATURE_INCOMPAT_XATTR
                self.rewrite_superblock()
            self._inode_problem(info, "xattr.feature", set_feature)
        return True

    # pass 7 ---------------------------------------------------------------
    def check_collections(self) -> None:
        for ino in sorted(self.infos):
            info = self.infos[ino]
            if info.valid and self.in_use(info) and stat.S_ISREG(info.mode) and \
                    info.inode.i_flags & L.VEXFS_INODE_FL_COLLECTION:
                self.check_collection(info)

    def check_collection(self, info: InodeInfo) -> None:
        inode, ino = info.inode, info.ino
        if not self.sb.s_feature_ro_compat & L.VEXFS_FEATURE_RO_COMPAT_COLLECTIONS:
            def set_feature() -> None:
                self.sb.s_feature_ro_compat |= L.VEXFS_FEATURE_RO_COMPAT_COLLECTIONS
                self.rewrite_superblock()
            self.add("collection.feature", set_feature, ino=ino)
        # the header lives in file block 0, whatever i_size says
        first = next((e for e in info.extents if e.logical == 0), None)
        raw = self.img.dev.read_block(first.start)[:L.COLLECTION_HEADER_SIZE] if first \
            else bytes(L.COLLECTION_HEADER_SIZE)
        head = L.CollectionHeader.unpack(raw)
        problems = collection_header_problems(head)
        for msg in problems:
            self.add("collection.header", ino=ino, why=msg)
        if problems:
            return
        expect = L.VEXFS_DATA_OFFSET + head.c_count * head.c_record_size
        xhead = None
        if head.c_flags & L.VEXFS_COLL_FL_INDEX:
            xhead = self.check_index_header(info, head)
            if xhead is None:
                return
            expect = index_end(head.c_dim, xhead.x_nlist)
        if inode.i_size != expect:
            mapped_end = max(((e.logical + e.length) * BS for e in info.extents), default=0)
            fix = None
            if L.struct_checksum_ok(head) and mapped_end >= expect and xhead is None:
                # the checksummed header is the better witness: trust its count
                fix = self.set_inode_field(ino, "i_size", expect)
            self.add("collection.size", fix, ino=ino, size=inode.i_size, count=head.c_count,
                     record_size=head.c_record_size, expect=expect,
                     action="; i_size will be set from the header" if fix else "")
            return
        # the header is file data anyone with write access can forge: its
        # records must be in allocated blocks (as the kernel's coll_load
        # requires), else a c_count of ~2^34 over a sparse file would have
        # this pass read 2^34 holes
        mapped = sum(e.length for e in info.extents)
        # (with an ANN index, i_size covers the sparse index region: count the records)
        need = -(-(L.VEXFS_DATA_OFFSET + head.c_count * head.c_record_size) // BS)
        if need > mapped:
            self.add("collection.sparse", ino=ino, count=head.c_count, need=need,
                     mapped=mapped)
            return
        if not L.struct_checksum_ok(head) and first is not None:
            hblk = first.start

            def fix_header() -> None:
                blk = bytearray(self.img.dev.read_block(hblk))
                h = L.CollectionHeader.unpack(blk)
                L.seal(h)
                blk[:L.COLLECTION_HEADER_SIZE] = bytes(h)
                self.write_block(hblk, blk)
            self.add("collection.checksum", fix_header, ino=ino, stored=head.c_checksum,
                     computed=L.struct_checksum(head))
        import numpy as np       # only collections need it; keeps fsck quick to start
        # stream the records: ids and flags only, a bounded number at a time
        rs = head.c_record_size
        per_chunk = max(1, (1 << 22) // rs)
        id_parts = []
        bad_first: tuple[int, int, int] | None = None
        bad_count = 0
        base = 0
        carry = b""
        for piece in self.img.iter_data(ino, L.VEXFS_DATA_OFFSET, head.c_count * rs,
                                        inode=inode, extents=info.extents,
                                        chunk=per_chunk * rs):
            # pieces end at extent boundaries too: keep a partial record for later
            piece = carry + piece
            whole = len(piece) - len(piece) % rs
            carry = piece[whole:]
            recs = np.frombuffer(piece[:whole], dtype=np.uint8).reshape(-1, rs)
            ids = recs[:, 0:8].copy().view("<u8").ravel()
            rflags = recs[:, 8:12].copy().view("<u4").ravel()
            id_parts.append(ids)
            bad = np.nonzero(rflags)[0]
            if len(bad):
                bad_count += len(bad)
                if bad_first is None:
                    k = int(bad[0])
                    bad_first = (base + k, int(ids[k]), int(rflags[k]))
            base += len(ids)
        all_ids = np.concatenate(id_parts) if id_parts else np.zeros(0, dtype="<u8")
        uniq, counts = np.unique(all_ids, return_counts=True)
        dups = uniq[counts > 1]
        if len(dups):
            shown = ", ".join(str(int(x)) for x in dups[:8]) + (", ..." if len(dups) > 8
                                                                 else "")
            self.add("collection.duplicate_id", ino=ino, count=len(dups), shown=shown)
        if bad_first is not None:
            self.add("collection.record_flags", ino=ino, count=bad_count, first=bad_first[0],
                     id=bad_first[1], flags=bad_first[2])
        if xhead is not None:
            self.check_index_entries(info, head, xhead)

    def check_index_header(self, info: InodeInfo, head: L.CollectionHeader
                           ) -> L.IndexHeader | None:
        """The ANN index header of an indexed collection, or None (problem recorded)."""
        ino = info.ino
        if not self.sb.s_feature_ro_compat & L.VEXFS_FEATURE_RO_COMPAT_ANN_INDEX:
            def set_feature() -> None:
                self.sb.s_feature_ro_compat |= L.VEXFS_FEATURE_RO_COMPAT_ANN_INDEX
                self.rewrite_superblock()
            self.add("collection.index_feature", set_feature, ino=ino)
        raw = b"".join(self.img.iter_data(ino, L.VEXFS_INDEX_BASE, L.INDEX_HEADER_SIZE,
                                          inode=info.inode, extents=info.extents))
        raw = raw.ljust(L.INDEX_HEADER_SIZE, b"\0")
        xhead = L.IndexHeader.unpack(raw)
        problems = index_header_problems(xhead, head)
        for msg in problems:
            self.add("collection.index_header", ino=ino, why=msg)
        return None if problems else xhead

    def check_index_entries(self, info: InodeInfo, head: L.CollectionHeader,
                            xhead: L.IndexHeader) -> None:
        """Every record slot has one entry naming a list (or pending), none past the end."""
        import numpy as np
        ino = info.ino
        end = max(head.c_count, xhead.x_alloc)
        raw = b"".join(self.img.iter_data(ino, L.VEXFS_INDEX_BASE + L.VEXFS_INDEX_ASSIGN_OFF,
                                          end * 4, inode=info.inode, extents=info.extents))
        ent = np.zeros(end, dtype="<u4")
        got = np.frombuffer(raw, dtype="<u4")
        ent[:len(got)] = got
        live = ent[:head.c_count]
        bad = np.nonzero(live > xhead.x_nlist)[0]
        if len(bad):
            self.add("collection.index_entry", ino=ino, count=len(bad), first=int(bad[0]),
                     value=int(live[bad[0]]), nlist=xhead.x_nlist)
        tail = np.nonzero(ent[head.c_count:])[0]
        if len(tail):
            self.add("collection.index_dangling", ino=ino, count=len(tail),
                     first=int(head.c_count + tail[0]))

    # pass 3 ---------------------------------------------------------------
    def dotdot_of(self, info: InodeInfo) -> int | None:
        """The inode the directory's own '..' entry names (None if unreadable)."""
        first = next((e for e in info.extents if e.logical == 0), None)
        if first is None:
            return None
        recs, _ = parse_dir_block(self.img.dev.read_block(first.start))
        if len(recs) > 1 and recs[1].name == b"..":
            return recs[1].inode
        return None

    def walk_directories(self) -> None:
        root = self.infos[L.VEXFS_ROOT_INO]
        root.parent = L.VEXFS_ROOT_INO
        root.path = "/"
        root.reached = True
        self._walk_from(root)
        # directory trees not reachable from / (their parent is gone)
        for ino in sorted(self.infos):
            info = self.infos[ino]
            if info.reached or not info.valid or not stat.S_ISDIR(info.mode):
                continue
            if not info.bit:
                continue          # stale slot nobody references: not in use
            info.disconnected = True
            info.reached = True
            info.parent = 0       # sentinel: any entry naming it is a second parent
            info.path = f"<disconnected directory {ino}>"
            self._walk_from(info)
        for d, r, pblk, where in self.dotdot_checks:
            self.check_dot(d, r, 1, pblk, where)

    def _walk_from(self, top: InodeInfo) -> None:
        todo = [top]
        while todo:
            d = todo.pop()
            for child in self.check_dir(d):
                todo.append(child)

    def check_dir(self, d: InodeInfo) -> list[InodeInfo]:
        """Check one directory's blocks and entries; returns subdirectories to visit."""
        children: list[InodeInfo] = []
        names: set[bytes] = set()
        blocks: list[tuple[int, int]] = []
        for e in d.extents:
            for i in range(e.length):
                blocks.append((e.logical + i, e.start + i))
        for lblk, pblk in blocks:
            data = self.img.dev.read_block(pblk)
            where = f"directory {d.path} (inode {d.ino}) block {lblk} (disk block {pblk})"
            recs, problems = parse_dir_block(data)
            if problems:
                code = "dir.tail" if all("tail magic" in p for p in problems) else "dir.chain"
                keep = [r for r in recs if r.inode]
                fix = self.rewrite_tail_fix(pblk) if code == "dir.tail" else \
                    self.rebuild_dir_block_fix(d, lblk, pblk, keep)
                self.add(code, fix, where=where, why="; ".join(problems), kept=len(keep),
                         dots=" and '.' and '..'" if lblk == 0 else "")
            elif not L.checksum_ok(data, L.DIR_TAIL_CHECKSUM_OFF):
                self.add("dir.checksum", self.patch_dir_block(pblk, lambda b: None),
                         where=where)
            if lblk == 0 and not problems and len(recs) < 2:
                self.check_missing_dotdot(d, recs, pblk, where)
            for idx, r in enumerate(recs):
                if lblk == 0 and idx < 2:
                    if idx == 0:
                        self.check_dot(d, r, idx, pblk, where)
                    else:
                        # '..' is checked once every parent is known: a directory
                        # named twice keeps the entry its '..' agrees with
                        self.dotdot_checks.append((d, r, pblk, where))
                    continue
                if not r.inode:
                    continue
                child = self.check_entry(d, r, pblk, where, names)
                if child is not None:
                    children.append(child)
        return children

    def rewrite_tail_fix(self, pblk: int) -> Callable[[], None]:
        def mutate(b: bytearray) -> None:
            b[L.DIR_TAIL_OFF:] = bytes(L.DirTail(dt_magic=L.VEXFS_DIR_TAIL_MAGIC))
        return self.patch_dir_block(pblk, mutate)

    def rebuild_dir_block_fix(self, d: InodeInfo, lblk: int, pblk: int,
                              keep: list[DirRecord]) -> Callable[[], None]:
        """Rewrite a directory block from the live records found before the break
        in its chain; block 0 always starts with '.' and '..' again. Entries that
        no longer fit become orphans the next round moves to /lost+found."""
        def fix() -> None:
            entries = [(r.inode, r.name, r.file_type) for r in keep]
            if lblk == 0:
                entries = [e for e in entries if e[1] not in (b".", b"..")]
                parent = d.parent if d.parent else d.ino
                head = [(d.ino, b".", L.VEXFS_FT_DIR), (parent, b"..", L.VEXFS_FT_DIR)]
            else:
                head = []
            while True:
                try:
                    block = make_dir_block(head + entries)
                    break
                except ValueError:
                    entries.pop()
            self.write_block(pblk, block)
        return fix

    def _check_name(self, r: DirRecord, pblk: int, where: str, names: set[bytes],
                    clear: Callable[[], None]) -> bytes | None:
        """The name the entry keeps (renamed in place if bad or taken), or None
        when it is removed; records the name as taken."""
        shown = r.name.decode("utf-8", "backslashreplace")
        bad = name_problem(r.name)
        if bad is None and r.name in (b".", b".."):
            bad = f"{shown!r} is only allowed as the first two entries"
        name = r.name
        if bad is not None:
            if r.name in (b".", b".."):
                # a file named '.'/'..' keeps a harmless name; such an entry
                # naming a directory is an extra link to it and goes
                is_dir = stat.S_ISDIR(self.infos[r.inode].mode)
                fixed = None if is_dir else _unique_name(r.name[:-1] + b"~", names)
            else:
                fixed = _unique_name(r.name.replace(b"/", b".").replace(b"\0", b"."), names) \
                    if r.name else None
            if fixed is None:
                self.add("dir.name_removed", clear, where=where, name=shown, ino=r.inode,
                         why=bad)
                return None
            self.add("dir.name", self._rename_entry_fix(pblk, r.offset, fixed), where=where,
                     name=shown, ino=r.inode, why=bad,
                     new=fixed.decode("utf-8", "backslashreplace"))
            name = fixed
        elif r.name in names:
            fixed = _unique_name(r.name, names)
            if fixed is None:
                self.add("dir.duplicate_name_removed", clear, where=where, name=shown)
                return None
            self.add("dir.duplicate_name", self._rename_entry_fix(pblk, r.offset, fixed),
                     where=where, name=shown, new=fixed.decode("utf-8", "backslashreplace"))
            name = fixed
        names.add(name)
        return name

    def _rename_entry_fix(self, pblk: int, off: int, new: bytes) -> Callable[[], None]:
        def mutate(b: bytearray) -> None:
            assert b[off + 6] == len(new)
            b[off + 8:off + 8 + len(new)] = new
        return self.patch_dir_block(pblk, mutate)

    def _clear_entry_fix(self, pblk: int, off: int) -> Callable[[], None]:
        # inode 0 marks the record as free space; neighbours are untouched, so
        # several entries of one block can be cleared in the same round
        def mutate(b: bytearray) -> None:
            b[off:off + 4] = b"\0\0\0\0"
        return self.patch_dir_block(pblk, mutate)

    def check_missing_dotdot(self, d: InodeInfo, recs: list[DirRecord], pblk: int,
                             where: str) -> None:
        """Block 0 holds a single record: split it to make room for '..'."""
        first = recs[0]
        fix = None
        if first.rec_len >= 2 * L.dir_rec_len(2) and first.name == b"." and first.inode:
            parent = d.parent if d.parent else d.ino

            def add_dotdot(b: bytearray, rl: int = first.rec_len, v: int = parent) -> None:
                b[4:6] = (12).to_bytes(2, "little")
                b[12:20] = bytes(L.DirEntry(d_inode=v, d_rec_len=rl - 12, d_name_len=2,
                                            d_file_type=L.VEXFS_FT_DIR))
                b[20:22] = b".."
            fix = self.patch_dir_block(pblk, add_dotdot)
        self.add("dir.dot", fix, where=where, why="the '..' entry is missing",
                 action="; it will be added" if fix else "")

    def check_dot(self, d: InodeInfo, r: DirRecord, idx: int, pblk: int, where: str) -> None:
        want_name = b"." if idx == 0 else b".."
        want_ino = d.ino if idx == 0 else d.parent
        if r.name != want_name or not r.inode:
            fix = None
            if r.rec_len >= L.dir_rec_len(len(want_name)):
                # rewrite the record in place; if it was a live entry, its
                # inode becomes an orphan that the next round reconnects
                target = want_ino if want_ino else d.ino

                def fix_dot(b: bytearray, off: int = r.offset, rl: int = r.rec_len,
                            v: int = target, name: bytes = want_name) -> None:
                    b[off:off + 8] = bytes(L.DirEntry(d_inode=v, d_rec_len=rl,
                                                      d_name_len=len(name),
                                                      d_file_type=L.VEXFS_FT_DIR))
                    b[off + 8:off + 8 + len(name)] = name
                fix = self.patch_dir_block(pblk, fix_dot)
            self.add("dir.dot", fix, where=where,
                     why=f"entry {idx} should be {want_name.decode()!r} but is {r.name!r} "
                         f"(inode {r.inode})", action="; it will be rewritten" if fix else "")
            return
        if d.disconnected and idx == 1:
            return   # fixed when the tree is reconnected to /lost+found
        if r.inode != want_ino and want_ino is not None:
            def mutate(b: bytearray, off: int = r.offset, v: int = want_ino) -> None:
                b[off:off + 4] = v.to_bytes(4, "little")
            self.add("dir.dot", self.patch_dir_block(pblk, mutate), where=where,
                     why=f"{want_name.decode()!r} points to inode {r.inode}, should be "
                         f"{want_ino}", action="; it will be rewritten")
        if r.file_type != L.VEXFS_FT_DIR:
            def mutate_ft(b: bytearray, off: int = r.offset) -> None:
                b[off + 7] = L.VEXFS_FT_DIR
            self.add("dir.file_type", self.patch_dir_block(pblk, mutate_ft), where=where,
                     why=f"{want_name.decode()!r} has file type {r.file_type}, should be "
                         f"{L.VEXFS_FT_DIR} (directory)")

    def check_entry(self, d: InodeInfo, r: DirRecord, pblk: int, where: str,
                    names: set[bytes]) -> InodeInfo | None:
        shown = r.name.decode("utf-8", "backslashreplace")
        clear = self._clear_entry_fix(pblk, r.offset)
        if not 1 <= r.inode <= self.sb.s_inodes_count:
            self.add("dir.entry_inode", clear, where=where, name=shown,
                     why=f"inode {r.inode}, outside 1..{self.sb.s_inodes_count}")
            return None
        if r.inode in self.infos and self.infos[r.inode].valid:
            # the inode is intact: a bad or duplicate name is renamed in place
            # (as e2fsck does), the entry is kept
            name = self._check_name(r, pblk, where, names, clear)
            if name is None:
                return None
            if name != r.name:
                shown = name.decode("utf-8", "backslashreplace")
        info = self.infos.get(r.inode)
        if info is None:
            self.add("dir.entry_inode", clear, where=where, name=shown,
                     why=f"free inode {r.inode}")
            return None
        if not info.valid:
            self.add("dir.entry_inode", clear, where=where, name=shown,
                     why=f"corrupt inode {r.inode} (the inode is cleared)")
            return None
        path = (d.path.rstrip("/") + "/" + shown) if not d.disconnected else \
            f"{d.path}/{shown}"
        ftype = L.file_type_of_mode(info.mode)
        assert ftype is not None          # a valid inode has a valid mode
        if r.file_type != ftype:
            def mutate(b: bytearray, off: int = r.offset, v: int = ftype) -> None:
                b[off + 7] = v
            self.add("dir.file_type", self.patch_dir_block(pblk, mutate), where=where,
                     why=f"entry {shown!r} has file type {r.file_type} "
                         f"({L.FT_NAMES.get(r.file_type, 'invalid')}) but inode {r.inode} is "
                         f"a {L.FT_NAMES[ftype]}")
        if stat.S_ISDIR(info.mode):
            if info.reached or info.parent is not None:
                old = info.parent_entry
                if old is not None and not d.disconnected and info.parent != d.ino and \
                        self.dotdot_of(info) == d.ino and info.parent is not None:
                    # this entry is the one the directory's '..' names: the
                    # earlier one is the extra link
                    self.add("dir.multiple_parents", self._clear_entry_fix(old[0], old[1]),
                             where=old[2], name=old[3], ino=r.inode, path=path)
                    prev = self.infos.get(info.parent)
                    if prev is not None:
                        prev.subdirs -= 1
                    info.parent, info.path = d.ino, path
                    info.parent_entry = (pblk, r.offset, where, shown)
                    d.subdirs += 1
                    return None
                self.add("dir.multiple_parents", clear, where=where, name=shown, ino=r.inode,
                         path=info.path or "?")
                return None
            info.parent = d.ino
            info.parent_entry = (pblk, r.offset, where, shown)
            info.reached = True
            info.path = path
            info.refs += 1
            d.subdirs += 1
            return info
        info.refs += 1
        if not info.reached:
            info.reached = True
            info.path = path
        return None

    # pass 4 ---------------------------------------------------------------
    def in_use(self, info: InodeInfo) -> bool:
        return info.bit or info.reached

    def check_connectivity(self) -> None:
        # report inode problems for every inode that is in use
        for info in self.infos.values():
            if self.in_use(info):
                self.problems.extend(info.problems)
        self.orphans: list[InodeInfo] = []
        for ino in sorted(self.infos):
            info = self.infos[ino]
            if not info.valid or not self.in_use(info):
                continue
            if info.disconnected:
                self.orphans.append(info)
                self.add("orphan.directory", self.reconnect_fix(info), ino=ino)
            elif not info.reached:
                desc = f"{info.kind} inode {ino} ({info.inode.i_size} bytes)"
                if info.inode.i_links_count == 0:
                    # Its inode and blocks stay counted as in use by this round's
                    # bitmap check (they are, until the fix frees them); the next
                    # round then finds and repairs the bitmaps and counts.
                    self.add("orphan.deleted", self.clear_inode_fix(ino), desc=desc)
                else:
                    self.orphans.append(info)
                    self.add("orphan.unreferenced", self.reconnect_fix(info), desc=desc,
                             links=info.inode.i_links_count)

    def reconnect_fix(self, info: InodeInfo) -> Callable[[], None]:
        def fix() -> None:
            self.pending_reconnect.append(info.ino)
        return fix

    def check_link_counts(self) -> None:
        for ino, info in sorted(self.infos.items()):
            if not info.valid or not info.reached or info.disconnected:
                continue
            if stat.S_ISDIR(info.mode):
                want = 2 + info.subdirs
            else:
                want = info.refs
            have = info.inode.i_links_count
            if have != want:
                self.add("inode.links", self.set_inode_field(ino, "i_links_count", want),
                         desc=info.describe(), have=have, want=want)

    # pass 5 ---------------------------------------------------------------
    def check_blocks_and_bitmaps(self, ibits: bytearray, bbits: bytearray) -> None:
        sb = self.sb
        nblocks, ninodes = sb.s_blocks_count, sb.s_inodes_count
        want_i = bytearray(sb.s_ibitmap_blocks * L.VEXFS_BITMAP_BYTES)
        want_b = bytearray(sb.s_bbitmap_blocks * L.VEXFS_BITMAP_BYTES)
        set_bit_range(want_i, ninodes, len(want_i) * 8)
        set_bit_range(want_b, nblocks, len(want_b) * 8)
        set_bit_range(want_b, 0, sb.s_data_start)        # metadata
        used_inodes = 0
        # (first block, end, owner inode, index, description) of every claim
        claims: list[tuple[int, int, int, int, str]] = []
        for ino in sorted(self.infos):
            info = self.infos[ino]
            if not info.valid or not self.in_use(info):
                continue
            want_i[(ino - 1) >> 3] |= 1 << ((ino - 1) & 7)
            used_inodes += 1
            for k, e in enumerate(info.extents):
                claims.append((e.start, e.end, ino, k,
                               f"extent {k} (disk blocks {e.start}-{e.end - 1})"))
            for k, b in enumerate(info.chain):
                claims.append((b, b + 1, ino, 1_000_000 + k, f"extent block {b}"))
            if info.xattr_blk:
                b = info.xattr_blk
                claims.append((b, b + 1, ino, XATTR_CLAIM, f"xattr block {b}"))
        # blocks claimed twice: sweep the claims in disk order
        claims.sort()
        active: tuple[int, int, int, int, str] | None = None
        c: tuple[int, int, int, int, str]
        for c in claims:
            set_bit_range(want_b, c[0], c[1])
            if active is not None and c[0] < active[1]:
                keep, later = sorted((active, c), key=lambda x: (x[2], x[3]))
                shared = min(keep[1], later[1]) - max(keep[0], later[0])
                victim = (later[2], later[3], later[0], later[1])

                def clone(v: tuple[int, int, int, int] = victim) -> None:
                    self.pending_clone.append(v)
                self.add("block.multiply_claimed", clone, ino=later[2], claim=later[4],
                         other=keep[2], other_claim=keep[4], shared=shared,
                         first=max(keep[0], later[0]))
            if active is None or c[1] > active[1]:
                active = c
        fix = self.rebuild_bitmaps_fix()
        for name, have, want, limit in (("block", bbits, want_b, nblocks),
                                        ("inode", ibits, want_i, ninodes)):
            base = 0 if name == "block" else 1
            total = len(want) * 8
            h = int.from_bytes(bytes(have[:len(want)]), "little")
            w = int.from_bytes(bytes(want), "little")
            in_range = (1 << limit) - 1
            lost = w & ~h & in_range
            leak = h & ~w & in_range
            tail = ~h & (((1 << total) - 1) ^ in_range)
            if lost:
                self.add(f"bitmap.{name}_marked_free", fix, count=lost.bit_count(),
                         ranges=_fmt_bits(lost, base))
            if leak:
                self.add(f"bitmap.{name}_marked_used", fix, count=leak.bit_count(),
                         ranges=_fmt_bits(leak, base))
            if tail:
                self.add("bitmap.tail", fix, which=name, count=tail.bit_count())
        self.want_bits = (want_i, want_b)
        used_b = (int.from_bytes(bytes(want_b), "little") & ((1 << nblocks) - 1)).bit_count()
        free_b = nblocks - used_b
        free_i = ninodes - used_inodes
        self.stats = {"inodes_used": used_inodes, "inodes": ninodes,
                      "blocks_used": used_b, "blocks": nblocks}
        # On a journaled filesystem the free counts are not journaled: they
        # hold only once it was unmounted cleanly, and the kernel counts them
        # from the bitmaps when it mounts one that was not (kernel/super.c).
        # So after a crash or an aborted journal a stale count is no
        # inconsistency (e2fsck's "free blocks count wrong" is PR_NO_OK for
        # the same reason); a repair run still writes the counted values.
        summary_only = bool(sb.s_feature_compat & L.VEXFS_FEATURE_COMPAT_HAS_JOURNAL) and \
            not sb.s_state & L.VEXFS_STATE_CLEAN
        for what, have_n, want_n, attr in (("blocks", sb.s_free_blocks, free_b, "s_free_blocks"),
                                           ("inodes", sb.s_free_inodes, free_i, "s_free_inodes")):
            if have_n != want_n:
                def fix_count(attr: str = attr, want_n: int = want_n) -> None:
                    setattr(self.sb, attr, want_n)
                    self.rewrite_superblock()
                if summary_only:
                    if self.img.dev.writable:
                        fix_count()
                    continue
                self.add(f"sb.free_{what}", fix_count, have=have_n, want=want_n)

    def rebuild_bitmaps_fix(self) -> Callable[[], None]:
        def fix() -> None:
            if self.bitmaps_rebuilt:
                return
            self.bitmaps_rebuilt = True
            want_i, want_b = self.want_bits
            sb = self.sb
            for start, count, packed in ((sb.s_ibitmap_start, sb.s_ibitmap_blocks, want_i),
                                         (sb.s_bbitmap_start, sb.s_bbitmap_blocks, want_b)):
                for i, block in enumerate(split_bitmap(packed, count)):
                    self.write_block(start + i, block)
        return fix

    def clone_claims(self, victims: list[tuple[int, int, int, int]]) -> None:
        """Give each (inode, claim index, first, end) its own copy of the blocks
        it shares with another claim (e2fsck's pass 1b "clone"): data extents
        first, then extent-chain blocks, so a cloned chain block carries the
        already re-pointed extents."""
        alloc = Allocator(self.img.dev, self.img.sb)
        try:
            for ino, idx, lo, hi in sorted(set(victims), key=lambda v: (v[1] >= 1_000_000, v)):
                info = self.infos[ino]
                start = alloc.alloc_contiguous(hi - lo)
                for off in range(0, hi - lo, 256):
                    n = min(256, hi - lo - off)
                    self.img.dev.write_block(start + off, self.img.dev.read(
                        (lo + off) * BS, n * BS))
                if idx == XATTR_CLAIM:
                    def repoint(i: L.Inode, v: int = start) -> None:
                        set_xattr_block(i, v)
                    self.patch_inode(ino, repoint)()
                elif idx >= 1_000_000:
                    ci = idx - 1_000_000
                    if ci == 0:
                        self.set_inode_field(ino, "i_extent_block", start)()
                    else:
                        self._set_chain_next(info.chain[ci - 1], start)
                else:
                    self._repoint_extent(info, idx, start)
        except NoSpace as e:
            raise ImageError(f"no contiguous free space to copy shared blocks: {e}") from None
        finally:
            alloc.commit()
            self.sb = self.img.sb

    def _set_chain_next(self, blk: int, nxt: int) -> None:
        data = bytearray(self.img.dev.read_block(blk))
        head = L.ExtentBlockHeader.unpack(data)
        head.eb_next = nxt
        data[:L.EXTENT_BLOCK_HEADER_SIZE] = bytes(head)
        L.seal_block(data, "extent")
        self.write_block(blk, data)

    def _repoint_extent(self, info: InodeInfo, k: int, start: int) -> None:
        inline = info.inode.i_nr_extents
        if k < inline:
            def mutate(i: L.Inode, k: int = k, v: int = start) -> None:
                i.i_extents[k].ee_start = v
            self.patch_inode(info.ino, mutate)()
            return
        j = k - inline
        for cb in info.chain:
            data = bytearray(self.img.dev.read_block(cb))
            count = L.ExtentBlockHeader.unpack(data).eb_count
            if j < count:
                off = L.EXTENT_BLOCK_HEADER_SIZE + j * L.EXTENT_SIZE
                ext = L.Extent.unpack(data, off)
                ext.ee_start = start
                data[off:off + L.EXTENT_SIZE] = bytes(ext)
                L.seal_block(data, "extent")
                self.write_block(cb, data)
                return
            j -= count

    # -- repairs needing allocation -------------------------------------------
    def find_lost_found(self) -> int | None:
        """The /lost+found to use: the one this run already made or found (it is
        never created twice), else root's "lost+found" entry if a directory."""
        for cand in ([self.lost_found] if self.lost_found else []):
            try:
                if stat.S_ISDIR(self.img.iget(cand).i_mode):
                    return cand
            except ImageError:
                pass
        try:
            entries = {e.name: e.ino for e in self.img.list_dir(L.VEXFS_ROOT_INO)}
        except ImageError:
            return None
        ino = entries.get(LOST_FOUND)
        if ino is None:
            return None
        try:
            return ino if stat.S_ISDIR(self.img.iget(ino).i_mode) else None
        except ImageError:
            return None

    def adopt_old_lost_found(self, w: FsWriter, inos: list[int]) -> int | None:
        """An orphaned directory that was /lost+found (its '..' is the root, mode
        0700, nothing in it but '#<ino>' entries) is linked back as /lost+found
        instead of being filed inside a new one."""
        for ino in inos:
            info = self.infos[ino]
            if not info.disconnected or stat.S_IMODE(info.mode) != 0o700:
                continue
            try:
                entries = self.img.list_dir(ino)
            except (ImageError, OSError):
                continue
            dotdot = [e.ino for e in entries if e.name == ".."]
            names = [e.name for e in entries if e.name not in (".", "..")]
            if dotdot != [L.VEXFS_ROOT_INO] or not all(n.startswith("#") for n in names):
                continue
            w.add_entry(L.VEXFS_ROOT_INO, LOST_FOUND.encode(), ino, L.VEXFS_FT_DIR)
            w.bump_links(L.VEXFS_ROOT_INO, 1)
            self.adopted_lost_found = ino
            return ino
        return None

    adopted_lost_found: int | None = None

    def reconnect_orphans(self, inos: list[int]) -> None:
        """Link orphaned inodes into /lost+found as '#<ino>' (creating it once)."""
        w = FsWriter(self.img)
        lf = self.find_lost_found()
        if lf is None:
            lf = self.adopt_old_lost_found(w, inos)
        if lf is None:
            lf = w.mkdir("/" + LOST_FOUND, 0o700)
            self.created_lost_found = lf
        self.lost_found = lf
        for ino in inos:
            if ino == lf:
                continue
            info = self.infos[ino]
            ftype = L.file_type_of_mode(info.mode)
            assert ftype is not None
            w.add_entry(lf, f"#{ino}".encode(), ino, ftype)
            if stat.S_ISDIR(info.mode):
                # point its '..' at lost+found and count the new subdirectory
                first = next(e for e in info.extents if e.logical == 0)
                block = bytearray(self.img.dev.read_block(first.start))
                recs, _ = parse_dir_block(block)
                if len(recs) > 1 and recs[1].name == b"..":
                    block[recs[1].offset:recs[1].offset + 4] = lf.to_bytes(4, "little")
                    L.seal_block(block, "dir")
                    self.write_block(first.start, block)
                w.bump_links(lf, 1)
        w.commit()
        self.sb = self.img.sb


def _unique_name(name: bytes, taken: set[bytes]) -> bytes | None:
    """``name`` if free, else a free name of the same length (its last byte
    replaced by '~', a digit or a letter), else None."""
    if name not in taken:
        return name
    if not name:
        return None
    for ch in b"~0123456789abcdefghijklmnopqrstuvwxyz":
        cand = name[:-1] + bytes([ch])
        if cand not in taken and cand not in (b".", b".."):
            return cand
    return None
