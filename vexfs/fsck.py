"""fsck.vexfs: check and repair a VexFS filesystem.

    fsck.vexfs [-n] [-y] [-p] [-f] [-v] DEVICE|FILE

  -n  check only; the device is opened read-only and nothing is written
  -y  repair everything that can be repaired (may remove directory entries,
      clear corrupt inodes, reconnect orphans to /lost+found, copy blocks two
      files share, rebuild a damaged superblock from the on-disk layout)
  -p  preen: repair only what is safe without a human (counts, bitmaps, link
      counts, checksums of blocks whose structure is valid, deleted inodes,
      file types, state); anything else -> exit 4 and "run fsck manually".
      A filesystem whose state is clean is skipped unless -f.
  -f  force a full check with -p even if the state is clean
  -v  verbose: pass headers and statistics

Without -n/-y/-p the check is read-only, as with -n (this tool never asks
questions).

Exit codes (fsck(8)): 0 no errors, 1 errors corrected, 4 errors left
uncorrected, 8 operational error (cannot open, not VexFS, unsupported
version or features), 16 usage error.

How it works: ``Checker.check()`` scans the whole filesystem and returns
``Problem``s; each problem carries a machine-readable ``code`` (tests assert
on it), a sentence for people, and, when it can be repaired, a ``fix``
closure and whether that fix is safe for -p. In repair mode the fixes are
applied and the whole check runs again (up to ``MAX_ROUNDS`` times: clearing
an inode in one round creates dangling entries and stale bitmaps that the
next round repairs), so the exit code always reflects a re-check of what is
on disk, never a hope.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import stat
import sys
from dataclasses import dataclass, field
from typing import Callable


from vexfs import layout as L
from vexfs.image import BS, MAX_FILE_SIZE, MAX_SYMLINK_LEN, Device, Image, ImageError, \
    collection_header_problems, make_dir_block, name_problem, parse_dir_block, \
    superblock_problems, ExtentRec

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_CORRECTED = 1
EXIT_UNCORRECTED = 4
EXIT_OPERATIONAL = 8
EXIT_USAGE = 16

MAX_ROUNDS = 6
LOST_FOUND = "lost+found"
#: how many ranges a bitmap message lists before summarising
MAX_RANGES = 8


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
    #: safe to apply in preen (-p) mode
    preen: bool = False
    fixed: bool = False

    def __str__(self) -> str:
        return self.message


@dataclass
class InodeInfo:
    ino: int
    inode: L.Inode
    bit: bool                       # inode bitmap bit
    valid: bool = True              # structure usable (mode, extents)
    problems: list[Problem] = field(default_factory=list)
    extents: list[ExtentRec] = field(default_factory=list)
    chain: list[int] = field(default_factory=list)
    refs: int = 0                   # directory entries naming it (not . / ..)
    subdirs: int = 0                # for directories: child directories
    parent: int | None = None       # for directories: the dir whose entry we followed
    reached: bool = False
    path: str = ""
    disconnected: bool = False      # a directory tree root not reachable from /

    @property
    def mode(self) -> int:
        return self.inode.i_mode

    @property
    def kind(self) -> str:
        ft = L.file_type_of_mode(self.mode)
        if ft == L.VEXFS_FT_REG_FILE and self.inode.i_flags & L.VEXFS_INODE_FL_COLLECTION:
            return "collection"
        return L.FT_NAMES.get(ft, "inode") if ft is not None else "inode"

    def describe(self) -> str:
        where = f" {self.path}" if self.path else ""
        return f"{self.kind}{where} (inode {self.ino})"


def _fmt_bits(bits: int, base: int) -> str:
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


class Checker:
    """One full check of an image; ``repair`` decides whether fixes get built to write."""

    def __init__(self, img: Image, error_state_acked: bool = False) -> None:
        self.error_state_acked = error_state_acked
        self.img = img
        self.sb = img.sb
        self.problems: list[Problem] = []
        self.infos: dict[int, InodeInfo] = {}
        self.stats: dict[str, int] = {}

    # -- helpers --------------------------------------------------------------
    def add(self, code: str, message: str, fix: Callable[[], None] | None = None,
            preen: bool = False) -> Problem:
        p = Problem(code, message, fix, preen)
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
    def check(self) -> list[Problem]:
        self.check_superblock()
        ibits, bbits = self.check_bitmap_blocks()
        self.scan_inodes(ibits)
        self.walk_directories()
        self.check_connectivity()
        self.check_link_counts()
        self.check_blocks_and_bitmaps(ibits, bbits)
        return self.problems

    # pass 1 ---------------------------------------------------------------
    def check_superblock(self) -> None:
        sb = self.sb
        if not L.struct_checksum_ok(sb):
            self.add("sb.checksum",
                     f"superblock checksum mismatch (stored 0x{sb.s_checksum:08x}, computed "
                     f"0x{L.struct_checksum(sb):08x}); its fields are consistent, so the "
                     "checksum will be rewritten", self.rewrite_superblock, preen=True)
        if sb.s_state & L.VEXFS_STATE_ERROR and not self.error_state_acked:
            # Cleared (with the CLEAN state written) only once a final re-check
            # finds nothing left; run_fsck does that write.
            self.add("sb.error_state", "the kernel recorded errors on this filesystem "
                     "(state ERROR)", lambda: None, preen=True)

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
                if head.bh_magic != L.VEXFS_BITMAP_MAGIC:
                    self.add("bitmap.header", f"{name} bitmap block {i} (block {blk}) has bad "
                             f"magic 0x{head.bh_magic:08x}; it will be rebuilt",
                             self.rebuild_bitmaps_fix(), preen=True)
                elif head.bh_index != i:
                    self.add("bitmap.header", f"{name} bitmap block {i} (block {blk}) says it "
                             f"is block {head.bh_index} of its bitmap; it will be rebuilt",
                             self.rebuild_bitmaps_fix(), preen=True)
                elif not L.checksum_ok(data, L.BITMAP_CHECKSUM_OFF):
                    self.add("bitmap.checksum", f"{name} bitmap block {i} (block {blk}): "
                             "checksum mismatch; it will be rebuilt",
                             self.rebuild_bitmaps_fix(), preen=True)
                bits += data[16:]
            out.append(bits)
        return out[0], out[1]

    # pass 2 ---------------------------------------------------------------
    def scan_inodes(self, ibits: bytearray) -> None:
        sb = self.sb
        n = sb.s_inodes_count
        for b in range(sb.s_itable_blocks):
            data = self.img.dev.read_block(sb.s_itable_start + b)
            for slot in range(L.VEXFS_INODES_PER_BLOCK):
                ino = b * L.VEXFS_INODES_PER_BLOCK + slot + 1
                if ino > n:
                    break
                off = slot * L.VEXFS_INODE_SIZE
                bit = bool(ibits[(ino - 1) >> 3] >> ((ino - 1) & 7) & 1)
                if data[off] == 0 and data[off + 1] == 0:   # i_mode == 0: free slot
                    continue
                inode = L.Inode.unpack(data, off)
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

    def _inode_problem(self, info: InodeInfo, code: str, msg: str,
                       fix: Callable[[], None] | None = None, preen: bool = False,
                       fatal: bool = False) -> None:
        """A problem of one inode; reported later only if the inode is in use.
        ``fatal``: the inode's structure cannot be trusted -> clear it (-y)."""
        if fatal:
            info.valid = False
            if fix is None and info.ino != L.VEXFS_ROOT_INO:
                fix = self.clear_inode_fix(info.ino)
                msg += "; the inode will be cleared"
        info.problems.append(Problem(code, f"inode {info.ino}: {msg}", fix, preen))

    def check_inode(self, info: InodeInfo) -> None:
        inode, ino = info.inode, info.ino
        mode = inode.i_mode
        if not L.mode_valid(mode):
            self._inode_problem(info, "inode.mode", f"invalid mode 0o{mode:o} (file type "
                                f"bits 0o{stat.S_IFMT(mode):o} name no file type)", fatal=True)
            return
        ftype = L.file_type_of_mode(mode)
        unknown = inode.i_flags & ~L.VEXFS_INODE_FL_COLLECTION
        if unknown:
            self._inode_problem(info, "inode.flags", f"unknown flags 0x{unknown:x}",
                                self.patch_inode(ino, lambda i: setattr(
                                    i, "i_flags", i.i_flags & L.VEXFS_INODE_FL_COLLECTION)))
        if inode.i_flags & L.VEXFS_INODE_FL_COLLECTION and ftype != L.VEXFS_FT_REG_FILE:
            self._inode_problem(info, "inode.flags", f"collection flag set on a "
                                f"{L.FT_NAMES[ftype]}", self.patch_inode(ino, lambda i: setattr(
                                    i, "i_flags", i.i_flags & ~L.VEXFS_INODE_FL_COLLECTION)))
        em = self.img.extent_map(inode, ino)
        if em.problems:
            for msg in em.problems:
                code = "inode.extent_chain" if "extent block" in msg else "inode.extent"
                self._inode_problem(info, code, msg, fatal=True)
            return
        info.extents, info.chain = em.extents, em.chain
        for blk in em.bad_checksum:
            def reseal(blk=blk) -> None:
                data = bytearray(self.img.dev.read_block(blk))
                L.seal_block(data, "extent")
                self.write_block(blk, data)
            self._inode_problem(info, "inode.extent_block_checksum",
                                f"extent block {blk}: checksum mismatch (its extents are "
                                "valid, the checksum will be rewritten)", reseal, preen=True)
        checksum_ok = L.struct_checksum_ok(inode)
        if ftype in (L.VEXFS_FT_CHRDEV, L.VEXFS_FT_BLKDEV, L.VEXFS_FT_FIFO, L.VEXFS_FT_SOCK):
            if em.extents or inode.i_size:
                self._inode_problem(info, "inode.size", f"a {L.FT_NAMES[ftype]} has size "
                                    f"{inode.i_size} and {len(em.extents)} extents",
                                    fatal=True)
                return
        if inode.i_size > MAX_FILE_SIZE:
            mapped_end = max((e.logical + e.length for e in em.extents), default=0) * BS
            if ftype == L.VEXFS_FT_REG_FILE and \
                    not inode.i_flags & L.VEXFS_INODE_FL_COLLECTION:
                self._inode_problem(info, "inode.size", f"size {inode.i_size} exceeds the "
                                    f"largest file size {MAX_FILE_SIZE}; it will be set to "
                                    f"the end of its last extent ({mapped_end})",
                                    self.patch_inode(ino, lambda i, v=mapped_end: setattr(
                                        i, "i_size", v)), preen=True)
                inode.i_size = mapped_end        # check the rest as it will be
            elif ftype != L.VEXFS_FT_REG_FILE:
                self._inode_problem(info, "inode.size", f"size {inode.i_size} exceeds the "
                                    f"largest file size {MAX_FILE_SIZE}", fatal=True)
                return
        nblocks_size = (inode.i_size + BS - 1) // BS
        mapped_past = [e for e in em.extents if e.logical + e.length > nblocks_size]
        if ftype == L.VEXFS_FT_DIR:
            if inode.i_size == 0 or inode.i_size % BS:
                self._inode_problem(info, "inode.size", f"directory size {inode.i_size} is "
                                    "not a positive multiple of 4096", fatal=True)
                return
            if mapped_past:
                self._inode_problem(info, "inode.size", f"directory maps blocks past its "
                                    f"size {inode.i_size}", fatal=True)
                return
        if ftype == L.VEXFS_FT_SYMLINK:
            if not 1 <= inode.i_size <= MAX_SYMLINK_LEN:
                self._inode_problem(info, "symlink.size", f"symlink target length "
                                    f"{inode.i_size} is outside 1..{MAX_SYMLINK_LEN}", fatal=True)
                return
            if mapped_past:
                self._inode_problem(info, "inode.size", "symlink maps blocks past its "
                                    f"size {inode.i_size}", fatal=True)
                return
        if ftype in (L.VEXFS_FT_DIR, L.VEXFS_FT_SYMLINK):
            mapped = sum(e.length for e in em.extents)
            if mapped != nblocks_size:
                self._inode_problem(info, "inode.hole", f"{L.FT_NAMES[ftype]} of "
                                    f"{inode.i_size} bytes has holes ({mapped} of "
                                    f"{nblocks_size} blocks mapped)", fatal=True)
                return
        expect_blocks = sum(e.length for e in em.extents) + len(em.chain)
        if inode.i_blocks != expect_blocks:
            self._inode_problem(info, "inode.i_blocks", f"i_blocks is {inode.i_blocks}, "
                                f"its extents and extent blocks hold {expect_blocks}",
                                self.patch_inode(ino, lambda i: setattr(i, "i_blocks",
                                                                        expect_blocks)),
                                preen=True)
        if not checksum_ok:
            self._inode_problem(info, "inode.checksum",
                                f"checksum mismatch (stored 0x{inode.i_checksum:08x}, "
                                f"computed 0x{L.struct_checksum(inode):08x}); the inode is "
                                "otherwise valid, so the checksum will be rewritten",
                                self.patch_inode(ino, lambda i: None), preen=True)
        if ftype == L.VEXFS_FT_SYMLINK:
            target = self.img.read_data(ino, inode=inode, extents=info.extents)
            if b"\0" in target:
                self._inode_problem(info, "symlink.target", "symlink target contains a NUL "
                                    "byte", fatal=True)
        if inode.i_flags & L.VEXFS_INODE_FL_COLLECTION and ftype == L.VEXFS_FT_REG_FILE:
            self.check_collection(info)

    def check_collection(self, info: InodeInfo) -> None:
        inode, ino = info.inode, info.ino
        if not self.sb.s_feature_ro_compat & L.VEXFS_FEATURE_RO_COMPAT_COLLECTIONS:
            def set_feature() -> None:
                self.sb.s_feature_ro_compat |= L.VEXFS_FEATURE_RO_COMPAT_COLLECTIONS
                self.rewrite_superblock()
            self._inode_problem(info, "collection.feature", "is a collection but the "
                                "superblock lacks the COLLECTIONS feature", set_feature,
                                preen=True)
        # the header lives in file block 0, whatever i_size says
        first = next((e for e in info.extents if e.logical == 0), None)
        raw = self.img.dev.read_block(first.start)[:L.COLLECTION_HEADER_SIZE] if first \
            else bytes(L.COLLECTION_HEADER_SIZE)
        head = L.CollectionHeader.unpack(raw)
        problems = collection_header_problems(head)
        for msg in problems:
            self._inode_problem(info, "collection.header", f"collection header: {msg}")
        if problems:
            return
        expect = L.VEXFS_DATA_OFFSET + head.c_count * head.c_record_size
        if inode.i_size != expect:
            mapped_end = max((e.logical + e.length) * BS for e in info.extents)
            fix = None
            if L.struct_checksum_ok(head) and mapped_end >= expect:
                # the checksummed header is the better witness: trust its count
                fix = self.patch_inode(ino, lambda i, v=expect: setattr(i, "i_size", v))
            self._inode_problem(info, "collection.size",
                                f"collection size {inode.i_size} is not 4096 + "
                                f"{head.c_count} records x {head.c_record_size} bytes = {expect}"
                                + ("; i_size will be set from the header" if fix else ""),
                                fix)
            return
        if not L.struct_checksum_ok(head):
            lblk_start = next((e.start for e in info.extents if e.logical == 0), None)

            def fix_header() -> None:
                blk = bytearray(self.img.dev.read_block(lblk_start))
                h = L.CollectionHeader.unpack(blk)
                L.seal(h)
                blk[:L.COLLECTION_HEADER_SIZE] = bytes(h)
                self.write_block(lblk_start, blk)
            self._inode_problem(info, "collection.checksum",
                                f"collection header checksum mismatch (stored "
                                f"0x{head.c_checksum:08x}, computed "
                                f"0x{L.struct_checksum(head):08x})",
                                fix_header if lblk_start is not None else None, preen=True)
        body = self.img.read_data(ino, L.VEXFS_DATA_OFFSET, head.c_count * head.c_record_size,
                                  inode=inode, extents=info.extents)
        import numpy as np       # only collections need it; keeps fsck quick to start
        recs = np.frombuffer(body, dtype=np.uint8).reshape(head.c_count, head.c_record_size) \
            if head.c_count else np.zeros((0, head.c_record_size), dtype=np.uint8)
        ids = recs[:, 0:8].copy().view("<u8").ravel()
        rflags = recs[:, 8:12].copy().view("<u4").ravel()
        uniq, counts = np.unique(ids, return_counts=True)
        dups = uniq[counts > 1]
        if len(dups):
            shown = ", ".join(str(int(x)) for x in dups[:8])
            self._inode_problem(info, "collection.duplicate_id",
                                f"collection has {len(dups)} duplicate record ids ({shown}"
                                f"{', ...' if len(dups) > 8 else ''})")
        bad = np.nonzero(rflags)[0]
        if len(bad):
            self._inode_problem(info, "collection.record_flags",
                                f"{len(bad)} records have non-zero reserved r_flags (first: "
                                f"record {int(bad[0])}, id {int(ids[bad[0]])}, flags "
                                f"0x{int(rflags[bad[0]]):x})")

    # pass 3 ---------------------------------------------------------------
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
                keep = [r for r in recs]

                def salvage(pblk=pblk, keep=keep) -> None:
                    block = bytearray(self.img.dev.read_block(pblk))
                    # keep the records before the break, stretch the last one
                    new = bytearray(BS)
                    if keep:
                        end = keep[-1].offset
                        new[:end] = block[:end]
                        last = keep[-1]
                        new[end:end + 8] = bytes(L.DirEntry(
                            d_inode=last.inode, d_rec_len=L.VEXFS_DIR_DATA_BYTES - end,
                            d_name_len=last.name_len, d_file_type=last.file_type))
                        new[end + 8:end + 8 + len(last.name)] = last.name
                    else:
                        new[:] = make_dir_block([])
                    new[L.DIR_TAIL_OFF:] = bytes(L.DirTail(dt_magic=L.VEXFS_DIR_TAIL_MAGIC))
                    L.seal_block(new, "dir")
                    self.write_block(pblk, new)
                code = "dir.tail" if all("tail magic" in p for p in problems) else "dir.chain"
                self.add(code, f"{where}: {'; '.join(problems)}; the block will be "
                         f"rebuilt keeping its first {len(keep)} entries", salvage,
                         preen=(code == "dir.tail"))
            elif not L.checksum_ok(data, L.DIR_TAIL_CHECKSUM_OFF):
                self.add("dir.checksum", f"{where}: checksum mismatch (the entries are "
                         "valid, the checksum will be rewritten)",
                         self.patch_dir_block(pblk, lambda b: None), preen=True)
            if lblk == 0 and not problems and len(recs) < 2:
                self.check_missing_dotdot(d, recs, pblk, where)
            for idx, r in enumerate(recs):
                if lblk == 0 and idx < 2:
                    self.check_dot(d, r, idx, pblk, where)
                    continue
                if not r.inode:
                    continue
                child = self.check_entry(d, r, pblk, where, names)
                if child is not None:
                    children.append(child)
        return children

    def _clear_entry_fix(self, pblk: int, off: int) -> Callable[[], None]:
        # inode 0 marks the record as free space; neighbours are untouched, so
        # several entries of one block can be cleared in the same round
        def mutate(b: bytearray) -> None:
            b[off:off + 4] = b"\0\0\0\0"
        return self.patch_dir_block(pblk, mutate)

    def check_missing_dotdot(self, d: InodeInfo, recs: list, pblk: int, where: str) -> None:
        """Block 0 holds a single record: split it to make room for '..'."""
        first = recs[0]
        fix = None
        if first.rec_len >= 2 * L.dir_rec_len(2) and first.name == b"." and first.inode:
            parent = d.parent if d.parent else d.ino

            def add_dotdot(b: bytearray, rl=first.rec_len, v=parent) -> None:
                b[4:6] = (12).to_bytes(2, "little")
                b[12:20] = bytes(L.DirEntry(d_inode=v, d_rec_len=rl - 12, d_name_len=2,
                                            d_file_type=L.VEXFS_FT_DIR))
                b[20:22] = b".."
            fix = self.patch_dir_block(pblk, add_dotdot)
        self.add("dir.dot", f"{where}: the '..' entry is missing"
                 + ("; it will be added" if fix else ""), fix)

    def check_dot(self, d: InodeInfo, r, idx: int, pblk: int, where: str) -> None:
        want_name = b"." if idx == 0 else b".."
        want_ino = d.ino if idx == 0 else d.parent
        if r.name != want_name or not r.inode:
            fix = None
            if r.rec_len >= L.dir_rec_len(len(want_name)):
                # rewrite the record in place; if it was a live entry, its
                # inode becomes an orphan that the next round reconnects
                target = want_ino if want_ino else d.ino

                def fix_dot(b: bytearray, off=r.offset, rl=r.rec_len, v=target,
                            name=want_name) -> None:
                    b[off:off + 8] = bytes(L.DirEntry(d_inode=v, d_rec_len=rl,
                                                      d_name_len=len(name),
                                                      d_file_type=L.VEXFS_FT_DIR))
                    b[off + 8:off + 8 + len(name)] = name
                fix = self.patch_dir_block(pblk, fix_dot)
            self.add("dir.dot", f"{where}: entry {idx} should be {want_name.decode()!r} but "
                     f"is {r.name!r} (inode {r.inode})"
                     + ("; it will be rewritten" if fix else ""), fix)
            return
        if d.disconnected and idx == 1:
            return   # fixed when the tree is reconnected to /lost+found
        if r.inode != want_ino:
            def mutate(b: bytearray, off=r.offset, v=want_ino) -> None:
                b[off:off + 4] = v.to_bytes(4, "little")
            self.add("dir.dot", f"{where}: {want_name.decode()!r} points to inode "
                     f"{r.inode}, should be {want_ino}",
                     self.patch_dir_block(pblk, mutate), preen=(idx == 0))
        if r.file_type != L.VEXFS_FT_DIR:
            def mutate_ft(b: bytearray, off=r.offset) -> None:
                b[off + 7] = L.VEXFS_FT_DIR
            self.add("dir.file_type", f"{where}: {want_name.decode()!r} has file type "
                     f"{r.file_type}, should be {L.VEXFS_FT_DIR} (directory)",
                     self.patch_dir_block(pblk, mutate_ft), preen=True)

    def check_entry(self, d: InodeInfo, r, pblk: int, where: str,
                    names: set[bytes]) -> InodeInfo | None:
        shown = r.name.decode("utf-8", "backslashreplace")
        clear = self._clear_entry_fix(pblk, r.offset)
        bad_name = name_problem(r.name)
        if bad_name is None and r.name in (b".", b".."):
            bad_name = f"{shown!r} is only allowed as the first two entries"
        if bad_name:
            self.add("dir.name", f"{where}: entry {shown!r} -> inode {r.inode}: {bad_name}; "
                     "the entry will be removed", clear)
            return None
        if r.name in names:
            self.add("dir.duplicate_name", f"{where}: name {shown!r} appears twice; the "
                     "second entry will be removed", clear)
            return None
        if not 1 <= r.inode <= self.sb.s_inodes_count:
            self.add("dir.entry_inode", f"{where}: entry {shown!r} points to inode "
                     f"{r.inode}, outside 1..{self.sb.s_inodes_count}; the entry will be "
                     "removed", clear)
            return None
        info = self.infos.get(r.inode)
        if info is None:
            self.add("dir.entry_inode", f"{where}: entry {shown!r} points to free inode "
                     f"{r.inode}; the entry will be removed", clear)
            return None
        if not info.valid:
            self.add("dir.entry_inode", f"{where}: entry {shown!r} points to corrupt inode "
                     f"{r.inode}; the entry will be removed with the inode", clear)
            return None
        names.add(r.name)
        path = (d.path.rstrip("/") + "/" + shown) if not d.disconnected else \
            f"{d.path}/{shown}"
        ftype = L.file_type_of_mode(info.mode)
        if r.file_type != ftype:
            def mutate(b: bytearray, off=r.offset, v=ftype) -> None:
                b[off + 7] = v
            self.add("dir.file_type", f"{where}: entry {shown!r} has file type "
                     f"{r.file_type} ({L.FT_NAMES.get(r.file_type, 'invalid')}) but inode "
                     f"{r.inode} is a {L.FT_NAMES[ftype]}", self.patch_dir_block(pblk, mutate),
                     preen=True)
        if stat.S_ISDIR(info.mode):
            if info.reached or info.parent is not None:
                self.add("dir.multiple_parents", f"{where}: entry {shown!r} is a second link "
                         f"to directory inode {r.inode} (already at {info.path or '?'}); "
                         "the entry will be removed", clear)
                return None
            info.parent = d.ino
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
                self.add("orphan.directory", f"directory inode {ino} is not reachable from "
                         f"/ (its parent is gone); it will be moved to /{LOST_FOUND}",
                         self.reconnect_fix(info))
            elif not info.reached:
                desc = f"{info.kind} inode {ino} ({info.inode.i_size} bytes)"
                if info.inode.i_links_count == 0:
                    # Its inode and blocks stay counted as in use by this round's
                    # bitmap check (they are, until the fix frees them); the next
                    # round then finds and repairs the bitmaps and counts.
                    self.add("orphan.deleted", f"{desc} was deleted (link count 0) but is "
                             "still in use; it will be freed", self.clear_inode_fix(ino),
                             preen=True)
                else:
                    self.orphans.append(info)
                    self.add("orphan.unreferenced", f"{desc} with link count "
                             f"{info.inode.i_links_count} is in no directory; it will be "
                             f"moved to /{LOST_FOUND}", self.reconnect_fix(info))

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
                self.add("inode.links", f"{info.describe()}: link count is {have}, should "
                         f"be {want}", self.patch_inode(ino, lambda i, w=want: setattr(
                             i, "i_links_count", w)), preen=True)

    # pass 5 ---------------------------------------------------------------
    def check_blocks_and_bitmaps(self, ibits: bytearray, bbits: bytearray) -> None:
        from vexfs.mkfs import set_bit_range
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
        # blocks claimed twice: sweep the claims in disk order
        claims.sort()
        active: tuple[int, int, int, int, str] | None = None
        for c in claims:
            set_bit_range(want_b, c[0], c[1])
            if active is not None and c[0] < active[1]:
                a, b = sorted((active, c), key=lambda x: (x[2], x[3]))
                shared = min(a[1], b[1]) - max(a[0], b[0])
                victim = (b[2], b[3], b[0], b[1])

                def clone(v=victim) -> None:
                    self.pending_clone.append(v)
                self.add("block.multiply_claimed",
                         f"inode {b[2]}: {b[4]} overlaps inode {a[2]}'s {a[4]} ({shared} "
                         f"shared blocks, first {max(a[0], b[0])}); inode {b[2]}'s blocks "
                         "will be copied to free space", clone)
            if active is None or c[1] > active[1]:
                active = c
        fix = self.rebuild_bitmaps_fix()
        for name, have, want, limit in (("block", bbits, want_b, nblocks),
                                        ("inode", ibits, want_i, ninodes)):
            label = "blocks" if name == "block" else "inodes"
            base = 0 if name == "block" else 1
            total = len(want) * 8
            h = int.from_bytes(bytes(have[:len(want)]), "little")
            w = int.from_bytes(bytes(want), "little")
            in_range = (1 << limit) - 1
            lost = w & ~h & in_range
            leak = h & ~w & in_range
            tail = ~h & (((1 << total) - 1) ^ in_range)
            if lost:
                self.add(f"bitmap.{name}_marked_free", f"{name} bitmap: {lost.bit_count()} "
                         f"{label} in use are marked free ({_fmt_bits(lost, base)})", fix,
                         preen=True)
            if leak:
                self.add(f"bitmap.{name}_marked_used", f"{name} bitmap: {leak.bit_count()} "
                         f"{label} marked in use are not used by anything "
                         f"({_fmt_bits(leak, base)})", fix, preen=True)
            if tail:
                self.add("bitmap.tail", f"{name} bitmap: {tail.bit_count()} bits past the "
                         f"last {name} are clear (they must be set)", fix, preen=True)
        self.want_bits = (want_i, want_b)
        used_b = (int.from_bytes(bytes(want_b), "little") & ((1 << nblocks) - 1)).bit_count()
        free_b = nblocks - used_b
        free_i = ninodes - used_inodes
        self.stats = {"inodes_used": used_inodes, "inodes": ninodes,
                      "blocks_used": used_b, "blocks": nblocks}
        for what, have_n, want_n, attr in (("blocks", sb.s_free_blocks, free_b, "s_free_blocks"),
                                           ("inodes", sb.s_free_inodes, free_i, "s_free_inodes")):
            if have_n != want_n:
                def fix_count(attr=attr, want_n=want_n) -> None:
                    setattr(self.sb, attr, want_n)
                    self.rewrite_superblock()
                self.add(f"sb.free_{what}", f"superblock free {what} count is {have_n}, "
                         f"counted {want_n}", fix_count, preen=True)

    def rebuild_bitmaps_fix(self) -> Callable[[], None]:
        def fix() -> None:
            if self.bitmaps_rebuilt:
                return
            self.bitmaps_rebuilt = True
            want_i, want_b = self.want_bits
            sb = self.sb
            for start, count, packed in ((sb.s_ibitmap_start, sb.s_ibitmap_blocks, want_i),
                                         (sb.s_bbitmap_start, sb.s_bbitmap_blocks, want_b)):
                for i in range(count):
                    block = bytearray(BS)
                    block[:16] = bytes(L.BitmapHeader(bh_magic=L.VEXFS_BITMAP_MAGIC,
                                                      bh_index=i))
                    block[16:] = packed[i * L.VEXFS_BITMAP_BYTES:(i + 1) * L.VEXFS_BITMAP_BYTES]
                    L.seal_block(block, "bitmap")
                    self.write_block(start + i, block)
        return fix

    bitmaps_rebuilt = False
    pending_reconnect: list[int]
    pending_clone: list[tuple[int, int, int, int]]

    def clone_claims(self, victims: list[tuple[int, int, int, int]]) -> None:
        """Give each (inode, claim index, first, end) its own copy of the blocks
        it shares with another claim (e2fsck's pass 1b "clone"): data extents
        first, then extent-chain blocks, so a cloned chain block carries the
        already re-pointed extents."""
        from vexfs.imagebuild import ImageBuilder, NoSpace
        b = ImageBuilder(self.img)
        try:
            for ino, idx, lo, hi in sorted(set(victims), key=lambda v: (v[1] >= 1_000_000, v)):
                info = self.infos[ino]
                start = self._alloc_contiguous(b, hi - lo)
                for off in range(0, hi - lo, 256):
                    n = min(256, hi - lo - off)
                    self.img.dev.write_block(start + off, self.img.dev.read(
                        (lo + off) * BS, n * BS))
                if idx >= 1_000_000:
                    ci = idx - 1_000_000
                    if ci == 0:
                        self.patch_inode(ino, lambda i, v=start: setattr(
                            i, "i_extent_block", v))()
                    else:
                        self._set_chain_next(info.chain[ci - 1], start)
                else:
                    self._repoint_extent(info, idx, start)
        except NoSpace as e:
            raise ImageError(f"no contiguous free space to copy shared blocks: {e}") from None
        finally:
            b.commit()
            self.sb = self.img.sb

    @staticmethod
    def _alloc_contiguous(b, n: int) -> int:
        from vexfs.imagebuild import NoSpace
        sb = b.sb
        if n > sb.s_blocks_count - sb.s_data_start:
            raise NoSpace(f"{n} blocks")
        run = 0
        for blk in range(sb.s_data_start, sb.s_blocks_count):
            run = 0 if b._get(b.bbits, blk) else run + 1
            if run == n:
                first = blk - n + 1
                for x in range(first, blk + 1):
                    b._set(b.bbits, x, True)
                return first
        raise NoSpace(f"{n} contiguous blocks")

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
            def mutate(i: L.Inode, k=k, v=start) -> None:
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
    def reconnect_orphans(self, inos: list[int]) -> None:
        """Link orphaned inodes into /lost+found as '#<ino>' (creating it)."""
        from vexfs.imagebuild import ImageBuilder   # builder imports mkfs; keep it lazy
        b = ImageBuilder(self.img)
        try:
            lf = self.img.lookup("/" + LOST_FOUND)
        except FileNotFoundError:
            lf = b.mkdir("/" + LOST_FOUND, 0o700)
        for ino in inos:
            info = self.infos[ino]
            ftype = L.file_type_of_mode(info.mode)
            b.add_entry(lf, f"#{ino}".encode(), ino, ftype)
            if stat.S_ISDIR(info.mode):
                # point its '..' at lost+found and count the new subdirectory
                first = next(e for e in info.extents if e.logical == 0)
                block = bytearray(self.img.dev.read_block(first.start))
                recs, _ = parse_dir_block(block)
                if len(recs) > 1 and recs[1].name == b"..":
                    block[recs[1].offset:recs[1].offset + 4] = lf.to_bytes(4, "little")
                    L.seal_block(block, "dir")
                    self.write_block(first.start, block)
                b._bump_links(lf, 1)
        b.commit()
        self.sb = self.img.sb


def run_fsck(path: str, mode: str, force: bool = False, verbose: bool = False,
             out=sys.stdout) -> int:
    """Check (and in mode 'y'/'p' repair) the filesystem; returns the exit code.
    mode: 'n' read-only, 'y' repair all, 'p' preen."""
    writable = mode in ("y", "p")
    from vexfs.mkfs import mounted_at
    try:
        mnt = mounted_at(path)
    except OSError as e:
        print(f"fsck.vexfs: cannot open {path}: {e.strerror}", file=sys.stderr)
        return EXIT_OPERATIONAL
    if mnt is not None:
        if writable:
            print(f"fsck.vexfs: {path} is mounted on {mnt}; cannot repair a mounted "
                  "filesystem", file=sys.stderr)
            return EXIT_OPERATIONAL
        print(f"fsck.vexfs: warning: {path} is mounted on {mnt}; results may be stale",
              file=sys.stderr)
    try:
        with Device(path) as dev:
            size = dev.size
            raw = dev.read(0, min(BS, size)) if size else b""
    except OSError as e:
        print(f"fsck.vexfs: cannot open {path}: {e.strerror}", file=sys.stderr)
        return EXIT_OPERATIONAL
    if len(raw) < 256:
        print(f"fsck.vexfs: {path}: too small ({size} bytes) to hold a VexFS filesystem",
              file=sys.stderr)
        return EXIT_OPERATIONAL
    sb = L.SuperBlock.unpack(raw)
    problems = superblock_problems(sb, size // BS)
    rebuilt: L.SuperBlock | None = None
    sb_problem: Problem | None = None
    if problems:
        fatal_op = sb.s_magic != L.VEXFS_MAGIC or sb.s_version != L.VEXFS_FORMAT_VERSION or \
            sb.s_feature_incompat & ~L.VEXFS_FEATURE_INCOMPAT_SUPP or \
            sb.s_feature_ro_compat & ~L.VEXFS_FEATURE_RO_COMPAT_SUPP
        print(f"fsck.vexfs: {path}: superblock is unusable: " + "; ".join(problems),
              file=out)
        if fatal_op:
            return EXIT_OPERATIONAL
        try:
            with Device(path) as dev:
                found = rebuild_superblock(sb, dev)
        except OSError as e:
            print(f"fsck.vexfs: cannot read {path}: {e.strerror}", file=out)
            return EXIT_OPERATIONAL
        if found is None:
            print("fsck.vexfs: the geometry is corrupt, no layout matching the bitmaps and "
                  "root inode was found, and there is no backup superblock; cannot check "
                  "further", file=out)
            return EXIT_UNCORRECTED
        rebuilt, changes = found
        sb_problem = Problem("sb.geometry", "superblock fields are corrupt; rebuilt from the "
                             "on-disk layout (bitmaps and root inode found where the format "
                             "puts them): " + ", ".join(changes))
        if mode != "y":
            print(f"fsck.vexfs: {path}: checking with the rebuilt superblock; "
                  "run fsck.vexfs -y to write it", file=out)
            writable = False      # -p must not build repairs on an unwritten superblock
    elif not L.struct_checksum_ok(sb):
        # Fields look sane but the checksum says one is not: if the layout
        # explains the superblock better with some field changed, use that.
        try:
            with Device(path) as dev:
                found = rebuild_superblock(sb, dev)
        except OSError:
            found = None
        if found is not None and found[1]:
            rebuilt, changes = found
            sb_problem = Problem("sb.geometry", "superblock checksum mismatch and fields "
                                 "that disagree with the on-disk layout; rebuilt from the "
                                 "layout: " + ", ".join(changes))
            if mode != "y":
                print(f"fsck.vexfs: {path}: checking with the rebuilt superblock; "
                      "run fsck.vexfs -y to write it", file=out)
                writable = False
    if mode == "p" and not force and sb.s_state == L.VEXFS_STATE_CLEAN and \
            L.struct_checksum_ok(sb) and rebuilt is None:
        used_i = sb.s_inodes_count - sb.s_free_inodes
        used_b = sb.s_blocks_count - sb.s_free_blocks
        print(f"{path}: clean, {used_i}/{sb.s_inodes_count} files, "
              f"{used_b}/{sb.s_blocks_count} blocks", file=out)
        return EXIT_OK

    fixed_any = False
    error_acked = False
    error_problem: Problem | None = None
    reported: list[Problem] = []
    remaining: list[Problem] = []
    stats: dict[str, int] = {}
    try:
        img = Image(path, writable=writable, require_checksum=False, sb=rebuilt)
    except (OSError, ImageError) as e:
        print(f"fsck.vexfs: {path}: {e}", file=sys.stderr)
        return EXIT_OPERATIONAL
    with img:
        if sb_problem is not None:
            reported.append(sb_problem)
            if mode == "y":
                block0 = bytearray(img.dev.read_block(0))
                block0[:256] = bytes(L.seal(rebuilt))
                img.dev.write_block(0, block0)
                sb_problem.fixed = fixed_any = True

        if verbose:
            print("Pass 1: superblock and bitmap blocks\nPass 2: inodes, extents, "
                  "collections\nPass 3: directory structure\nPass 4: connectivity and "
                  "link counts\nPass 5: block ownership, bitmaps, free counts", file=out)
        for rnd in range(MAX_ROUNDS + 1):
            if not (rebuilt is not None and mode != "y"):
                img.sb = L.SuperBlock.unpack(img.dev.read_block(0))
            checker = Checker(img, error_state_acked=error_acked)
            checker.pending_reconnect = []
            checker.pending_clone = []
            try:
                problems = checker.check()
            except FatalError as e:
                print(f"fsck.vexfs: {path}: {e}", file=out)
                return e.exit_code
            except ImageError as e:
                print(f"fsck.vexfs: {path}: {e}", file=out)
                return EXIT_UNCORRECTED
            stats = checker.stats
            if not problems:
                remaining = []
                break
            reported += problems
            if not writable or rnd == MAX_ROUNDS:
                remaining = problems
                break
            if verbose:
                print(f"Round {rnd + 1}: {len(problems)} problems, repairing", file=out)
            bitmaps_bad = any(q.code.startswith("bitmap.") for q in problems)
            for p in problems:
                if not p.fix or not (mode == "y" or p.preen):
                    continue
                # reconnecting orphans and cloning shared blocks allocate blocks:
                # wait for correct bitmaps
                if p.code in ("orphan.directory", "orphan.unreferenced",
                              "block.multiply_claimed") and bitmaps_bad:
                    continue
                try:
                    p.fix()
                    p.fixed = True
                except (OSError, ImageError) as e:
                    print(f"fsck.vexfs: could not repair ({p.message}): {e}", file=out)
            for p in problems:
                if p.code == "sb.error_state" and p.fixed:
                    error_acked, error_problem = True, p
            if checker.pending_clone:
                try:
                    checker.clone_claims(checker.pending_clone)
                except (OSError, ImageError) as e:
                    print(f"fsck.vexfs: could not copy shared blocks: {e}", file=out)
                    for p in problems:
                        if p.code == "block.multiply_claimed":
                            p.fixed = False
                img.sb = L.SuperBlock.unpack(img.dev.read_block(0))
            if checker.pending_reconnect:
                try:
                    checker.reconnect_orphans(checker.pending_reconnect)
                except (OSError, ImageError) as e:
                    print(f"fsck.vexfs: could not reconnect orphans: {e}", file=out)
                    for p in problems:
                        if p.code in ("orphan.directory", "orphan.unreferenced"):
                            p.fixed = False
            img.dev.flush()
            if not any(p.fixed for p in problems):
                remaining = problems
                break
            fixed_any = True
        if sb_problem is not None and not sb_problem.fixed:
            remaining.append(sb_problem)
        if remaining and error_problem is not None:
            remaining.append(error_problem)    # the ERROR state stays while errors do
        if writable and not remaining:
            sbn = L.SuperBlock.unpack(img.dev.read_block(0))
            if sbn.s_state != L.VEXFS_STATE_CLEAN:
                sbn.s_state = L.VEXFS_STATE_CLEAN
                L.seal(sbn)
                block0 = bytearray(img.dev.read_block(0))
                block0[:256] = bytes(sbn)
                img.dev.write_block(0, block0)
            img.dev.flush()
    still = {p.message for p in remaining}
    seen: set[str] = set()
    for p in reported:
        if p.message in seen:
            continue
        seen.add(p.message)
        if mode == "n":
            tag = ""
        elif p.message in still:
            tag = " [NOT FIXED]"
        else:
            tag = " [FIXED]"
        print(f"{path}: {p.message}{tag}", file=out)
    if stats:
        print(f"{path}: {stats['inodes_used']}/{stats['inodes']} files, "
              f"{stats['blocks_used']}/{stats['blocks']} blocks", file=out)
    if remaining:
        if mode == "p":
            print(f"{path}: UNEXPECTED INCONSISTENCY; RUN fsck.vexfs MANUALLY "
                  "(without -p)", file=out)
        elif mode == "n":
            print(f"{path}: {len(still)} problems found; run fsck.vexfs -y to repair",
                  file=out)
        else:
            print(f"{path}: errors remain that fsck.vexfs cannot repair", file=out)
        return EXIT_UNCORRECTED
    if fixed_any:
        print(f"{path}: ***** FILE SYSTEM WAS MODIFIED *****", file=out)
        return EXIT_CORRECTED
    return EXIT_OK


def rebuild_superblock(sb: L.SuperBlock, dev: Device
                       ) -> tuple[L.SuperBlock, list[str]] | None:
    """A usable superblock for a damaged one, or None.

    There is no backup superblock, but mkfs.vexfs's layout is a pure function
    of (blocks_count, inodes_count). Try the counts the damaged superblock and
    the device suggest; accept the first layout whose bitmap blocks carry the
    right magic and index and whose inode table starts with a valid root
    directory inode, and restore the fields that have one legal value.
    """
    from vexfs.mkfs import Geometry, MkfsError
    dev_blocks = dev.size // BS
    found: list[tuple[L.SuperBlock, list[str]]] = []
    blocks_c = [sb.s_blocks_count, dev_blocks]
    inodes_c = [sb.s_inodes_count, sb.s_itable_blocks * L.VEXFS_INODES_PER_BLOCK,
                (sb.s_data_start - sb.s_itable_start) * L.VEXFS_INODES_PER_BLOCK]
    for blocks in dict.fromkeys(blocks_c):
        for inodes in dict.fromkeys(inodes_c):
            if not 0 < blocks <= dev_blocks or not 0 < inodes < 2**32:
                continue
            try:
                g = Geometry.compute(blocks, inodes, int(sb.s_journal_blocks) if
                                     sb.s_feature_compat & L.VEXFS_FEATURE_COMPAT_HAS_JOURNAL
                                     else 0)
            except MkfsError:
                continue
            if g.inodes != inodes:
                continue
            cand = L.SuperBlock.from_buffer_copy(bytes(sb))
            for field_name, value in (
                    ("s_blocks_count", g.blocks), ("s_inodes_count", g.inodes),
                    ("s_ibitmap_start", g.ibitmap_start), ("s_ibitmap_blocks", g.ibitmap_blocks),
                    ("s_bbitmap_start", g.bbitmap_start), ("s_bbitmap_blocks", g.bbitmap_blocks),
                    ("s_itable_start", g.itable_start), ("s_itable_blocks", g.itable_blocks),
                    ("s_data_start", g.data_start), ("s_block_size", BS),
                    ("s_journal_start", g.journal_start),
                    ("s_journal_blocks", g.journal_blocks),
                    ("s_inode_size", L.VEXFS_INODE_SIZE), ("s_root_ino", L.VEXFS_ROOT_INO)):
                setattr(cand, field_name, value)
            cand.s_feature_incompat |= L.VEXFS_FEATURE_INCOMPAT_EXTENTS
            cand.s_state &= L.VEXFS_STATE_CLEAN | L.VEXFS_STATE_ERROR
            cand.s_free_blocks = min(cand.s_free_blocks, g.blocks)   # recounted later
            cand.s_free_inodes = min(cand.s_free_inodes, g.inodes)
            if superblock_problems(cand, dev_blocks) or not _layout_matches(cand, dev):
                continue
            changes = [f"{name} {getattr(sb, name)} -> {getattr(cand, name)}"
                       for name, _ in L.SuperBlock._fields_
                       if name not in ("s_checksum", "s_uuid", "s_label", "s_reserved")
                       and getattr(sb, name) != getattr(cand, name)]
            found.append((L.seal(cand), changes))
    # the layout that explains the damaged superblock with the fewest changes
    return min(found, key=lambda f: len(f[1])) if found else None


def _layout_matches(sb: L.SuperBlock, dev: Device) -> bool:
    try:
        for start, count in ((sb.s_ibitmap_start, sb.s_ibitmap_blocks),
                             (sb.s_bbitmap_start, sb.s_bbitmap_blocks)):
            for i in range(count):
                head = L.BitmapHeader.unpack(dev.read_block(start + i))
                if head.bh_magic != L.VEXFS_BITMAP_MAGIC or head.bh_index != i:
                    return False
        root = L.Inode.unpack(dev.read_block(sb.s_itable_start))
        # metadata blocks [0, data_start) are marked in use, and inode 1 is
        bits = dev.read_block(sb.s_bbitmap_start)[16:]
        ibits = dev.read_block(sb.s_ibitmap_start)[16:]
    except ImageError:
        return False
    n = min(sb.s_data_start, L.VEXFS_BITS_PER_BITMAP)
    meta_marked = all(bits[i >> 3] >> (i & 7) & 1 for i in range(n))
    return stat.S_ISDIR(root.i_mode) and L.struct_checksum_ok(root) and meta_marked \
        and bool(ibits[0] & 1)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fsck.vexfs", description="Check and repair VexFS.",
                                epilog="Exit: 0 clean, 1 corrected, 4 uncorrected, "
                                       "8 operational error, 16 usage error.")
    p.add_argument("-n", action="store_true", help="check only, open read-only")
    p.add_argument("-y", action="store_true", help="repair everything repairable")
    p.add_argument("-p", "-a", dest="p", action="store_true", help="preen: safe repairs only")
    p.add_argument("-f", action="store_true", help="check even if the state is clean")
    p.add_argument("-v", action="store_true", help="verbose")
    p.add_argument("device")
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="fsck.vexfs: %(message)s")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        return EXIT_OK if e.code == 0 else EXIT_USAGE
    if sum((args.n, args.y, args.p)) > 1:
        print("fsck.vexfs: only one of -n, -y and -p may be given", file=sys.stderr)
        return EXIT_USAGE
    mode = "y" if args.y else "p" if args.p else "n"
    if not os.path.exists(args.device):
        print(f"fsck.vexfs: {args.device}: no such file or device", file=sys.stderr)
        return EXIT_OPERATIONAL
    try:
        return run_fsck(args.device, mode, force=args.f, verbose=args.v)
    except BrokenPipeError:             # output piped into head & co.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OPERATIONAL
    except Exception as e:              # a bug here must still give fsck(8)'s code
        log.exception("internal error")
        print(f"fsck.vexfs: internal error while checking {args.device}: "
              f"{type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_OPERATIONAL


if __name__ == "__main__":
    sys.exit(main())
