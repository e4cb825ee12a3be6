"""Corrupt-image mutations, random and field-aware.

`ImageModel.build(path)` reads a valid image with the offline reader and
lists its metadata as typed regions (superblock, bitmap blocks, in-use
inodes, directory blocks and their entries, extent-chain blocks, collection
headers and records, symlink targets, file data), each with the byte range
of the checksum that covers it. `mutate(model, base, rng)` applies one to
four operations to a copy of the image:

 - bit flips anywhere (metadata regions weighted up);
 - a struct field (from the ctypes mirror in vexfs/layout.py, nested
   extents included) set to a boundary value (0, 1, max, max-1, blocks_count
   +-1, data_start-1, inodes_count+1, random...);
 - directory-entry surgery (rec_len, name_len, inode number: 0/self/parent/
   huge/free inode, file type);
 - bitmap surgery (a used block or inode marked free, so it is handed out
   twice; a free one marked used);
 - whole-object copies (one inode over another: shared blocks; a directory
   block over another);
 - collection records (NaN/Inf floats, duplicated ids, c_count/c_dim/
   c_record_size lies);
 - random bytes over a short span;
 - structure-aware cases (``op_struct``, issue 14), each a defect class that
   field mutation cannot reach: one block cross-linked between two metadata
   types (an inode's extent onto another object's directory, extent or
   collection-header block, possibly freed in the bitmap so the kernel hands
   it out again), empty extent blocks (eb_count 0, self-linked, i_blocks
   huge), extent-chain cycles, forged collection headers (huge c_count, valid
   checksum, i_size to match over a sparse file), link counts lower than
   the number of names.

``op_label()`` maps each logged operation to the structure it targets, for
the per-structure coverage that R1 reports.

After each operation the covering checksum is recomputed with probability
`p_fix` (default 0.6) and left wrong otherwise, so both the checksum
rejection paths and the code behind them get exercised. Everything is a
pure function of (model, base bytes, rng): `case_rng(seed, case)` gives the
rng, so a case number and a seed reproduce a mutation exactly.
"""

from __future__ import annotations

import ctypes
import logging
import random
import stat
from dataclasses import dataclass, field

from vexfs import layout as L
from vexfs.image import BS, Image, ImageError, parse_dir_block

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checksum:
    """Where a region's checksum lives: CRC-32C of image[start:start+length]
    with the 4 bytes at start+field_off zeroed, stored at start+field_off."""

    start: int
    field_off: int
    length: int

    def fix(self, img: bytearray) -> None:
        window = bytearray(img[self.start:self.start + self.length])
        L.set_checksum(window, self.field_off)
        img[self.start + self.field_off:self.start + self.field_off + 4] = \
            window[self.field_off:self.field_off + 4]


@dataclass(frozen=True)
class FieldRef:
    name: str
    offset: int  # absolute, in the image
    size: int  # bytes


@dataclass
class Region:
    kind: str  # super, ibitmap, bbitmap, inode, dirblock, extblock, collhdr, collrec, symlink, data
    offset: int
    length: int
    csum: Checksum | None = None
    fields: list[FieldRef] = field(default_factory=list)
    ino: int = 0
    # dirblock: entry offsets (absolute); collrec: record size
    entries: list[int] = field(default_factory=list)
    extra: int = 0


def struct_fields(cls: type[ctypes.Structure], base: int, prefix: str = "") -> list[FieldRef]:
    """Every scalar field of a layout struct at absolute offset `base`,
    recursing into nested structs and arrays (each array element its own
    field, byte arrays as one field)."""
    out: list[FieldRef] = []
    for name, ctype in cls._fields_:
        desc = getattr(cls, name)
        off = base + desc.offset
        if isinstance(ctype, type) and issubclass(ctype, ctypes.Array):
            elem = ctype._type_
            if isinstance(elem, type) and issubclass(elem, ctypes.Structure):
                for i in range(ctype._length_):
                    out += struct_fields(elem, off + i * ctypes.sizeof(elem), f"{prefix}{name}[{i}].")
            elif ctypes.sizeof(elem) == 1:
                out.append(FieldRef(prefix + name, off, ctypes.sizeof(ctype)))
            else:
                for i in range(ctype._length_):
                    out.append(FieldRef(f"{prefix}{name}[{i}]", off + i * ctypes.sizeof(elem),
                                        ctypes.sizeof(elem)))
        elif isinstance(ctype, type) and issubclass(ctype, ctypes.Structure):
            out += struct_fields(ctype, off, f"{prefix}{name}.")
        else:
            out.append(FieldRef(prefix + name, off, desc.size))
    return out


@dataclass
class ImageModel:
    size: int
    sb: L.SuperBlock
    regions: list[Region]
    used_inodes: list[int]
    dirs: list[int]

    def of_kind(self, *kinds: str) -> list[Region]:
        return [r for r in self.regions if r.kind in kinds]

    @classmethod
    def build(cls, path: str) -> "ImageModel":
        """Map a *valid* image (the reader must accept it)."""
        with Image(path) as img:
            sb = img.sb
            size = img.dev.size
            regions: list[Region] = [Region(
                "super", 0, ctypes.sizeof(L.SuperBlock),
                Checksum(0, L.SB_CHECKSUM_OFF, ctypes.sizeof(L.SuperBlock)),
                struct_fields(L.SuperBlock, 0))]
            for kind, start, count in (("ibitmap", sb.s_ibitmap_start, sb.s_ibitmap_blocks),
                                       ("bbitmap", sb.s_bbitmap_start, sb.s_bbitmap_blocks)):
                for b in range(count):
                    off = (start + b) * BS
                    regions.append(Region(kind, off, BS, Checksum(off, L.BITMAP_CHECKSUM_OFF, BS),
                                          struct_fields(L.BitmapHeader, off)))
            used: list[int] = []
            dirs: list[int] = []
            for ino in range(1, sb.s_inodes_count + 1):
                if not img.inode_in_use(ino):
                    continue
                inode = img.read_inode_raw(ino)
                if inode.i_mode == 0:
                    continue
                used.append(ino)
                blk, boff = img.inode_location(ino)
                off = blk * BS + boff
                regions.append(Region("inode", off, L.VEXFS_INODE_SIZE,
                                      Checksum(off, L.INODE_CHECKSUM_OFF, L.VEXFS_INODE_SIZE),
                                      struct_fields(L.Inode, off), ino=ino))
                try:
                    em = img.extents(ino, inode)
                except ImageError as e:
                    raise ValueError(f"base image {path} is not valid: {e}") from e
                for cblk in em.chain:
                    coff = cblk * BS
                    flds = struct_fields(L.ExtentBlockHeader, coff)
                    head = L.ExtentBlockHeader.unpack(img.read_block(cblk))
                    for i in range(min(head.eb_count + 1, L.VEXFS_EXTENTS_PER_BLOCK)):
                        flds += struct_fields(L.Extent, coff + L.EXTENT_BLOCK_HEADER_SIZE
                                              + i * L.EXTENT_SIZE, f"ext[{i}].")
                    regions.append(Region("extblock", coff, BS,
                                          Checksum(coff, L.EXTENT_BLOCK_CHECKSUM_OFF, BS),
                                          flds, ino=ino))
                mode = inode.i_mode
                if stat.S_ISDIR(mode):
                    dirs.append(ino)
                    for _lblk, pblk in img.dir_blocks(ino, inode):
                        doff = pblk * BS
                        recs, _ = parse_dir_block(img.read_block(pblk))
                        regions.append(Region("dirblock", doff, BS,
                                              Checksum(doff, L.DIR_TAIL_CHECKSUM_OFF, BS),
                                              [], ino=ino,
                                              entries=[doff + r.offset for r in recs]))
                    continue
                data = [(e.logical, e.start, e.length) for e in em.extents]
                if stat.S_ISREG(mode) and inode.i_flags & L.VEXFS_INODE_FL_COLLECTION \
                        and inode.i_size >= L.VEXFS_DATA_OFFSET:
                    head_blk = next((s + (0 - lg) for lg, s, n in data if lg <= 0 < lg + n), None)
                    if head_blk is not None:
                        hoff = head_blk * BS
                        hsz = L.COLLECTION_HEADER_SIZE
                        regions.append(Region("collhdr", hoff, hsz,
                                              Checksum(hoff, L.COLLECTION_CHECKSUM_OFF, hsz),
                                              struct_fields(L.CollectionHeader, hoff), ino=ino))
                        head = L.CollectionHeader.unpack(img.read_block(head_blk))
                        for lg, s, n in data:
                            for i in range(n):
                                if lg + i >= 1 and (lg + i) * BS < inode.i_size:
                                    regions.append(Region("collrec", (s + i) * BS, BS, ino=ino,
                                                          extra=head.c_record_size))
                    continue
                kind = "symlink" if stat.S_ISLNK(mode) else "data"
                for lg, s, n in data:
                    for i in range(n):
                        if (lg + i) * BS < inode.i_size:
                            regions.append(Region(kind, (s + i) * BS, BS, ino=ino))
            return cls(size=size, sb=sb, regions=regions, used_inodes=used, dirs=dirs)


def case_rng(seed: int, case: int) -> random.Random:
    """The rng of one case: independent of every other case."""
    return random.Random((seed & 0xFFFFFFFF) << 32 | (case & 0xFFFFFFFF))


def interesting(size: int, sb: L.SuperBlock, rng: random.Random) -> int:
    """A boundary value for a field of `size` bytes."""
    top = (1 << (8 * size)) - 1
    pool = [0, 1, 2, 3, 4, 7, 8, 15, 16, 255, 256, 4095, 4096, 4097, top, top - 1, top >> 1,
            (top >> 1) + 1, rng.randrange(top + 1), rng.randrange(64),
            sb.s_blocks_count, sb.s_blocks_count - 1, sb.s_blocks_count + 1,
            sb.s_data_start, sb.s_data_start - 1, sb.s_inodes_count, sb.s_inodes_count + 1,
            sb.s_itable_start, sb.s_bbitmap_start, 1 << 31, (1 << 32) - 1, 1 << 40]
    return rng.choice(pool) & top


def _put(img: bytearray, off: int, size: int, value: int) -> None:
    img[off:off + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def _get(img: bytearray | bytes, off: int, size: int) -> int:
    return int.from_bytes(img[off:off + size], "little")


class Mutator:
    """Applies operations to one image copy and records what it did."""

    OPS = ["bitflip", "field", "field", "field", "dirent", "dirent", "bitmap", "copy",
           "collection", "bytes", "extent", "extent", "struct", "struct"]
    STRUCT_KINDS = ("crosslink", "empty_extblock", "chain_cycle", "forged_collection",
                    "links_low")

    def __init__(self, model: ImageModel, img: bytearray, rng: random.Random,
                 p_fix: float = 0.6) -> None:
        self.m = model
        self.img = img
        self.rng = rng
        self.p_fix = p_fix
        self.log: list[str] = []

    def _maybe_fix(self, region: Region | None, always: bool = False) -> str:
        if region is None or region.csum is None:
            return ""
        if always or self.rng.random() < self.p_fix:
            region.csum.fix(self.img)
            return " (checksum recomputed)"
        return " (checksum left wrong)"

    def _pick(self, *kinds: str) -> Region | None:
        pool = self.m.of_kind(*kinds)
        return self.rng.choice(pool) if pool else None

    def op_bitflip(self) -> None:
        rng = self.rng
        if rng.random() < 0.25:
            off, where = rng.randrange(self.m.size), "anywhere"
            region = None
        else:
            region = rng.choice(self.m.regions)
            off, where = region.offset + rng.randrange(region.length), region.kind
        nbits = rng.choice([1, 1, 1, 2, 3, 8])
        for _ in range(nbits):
            self.img[off] ^= 1 << rng.randrange(8)
            if rng.random() < 0.3:
                off = min(self.m.size - 1, off + rng.randrange(1, 16))
        self.log.append(f"bitflip x{nbits} at {off:#x} ({where})" + self._maybe_fix(region))

    def op_field(self) -> None:
        region = self._pick("super", "inode", "extblock", "collhdr", "ibitmap", "bbitmap")
        if region is None or not region.fields:
            return self.op_bitflip()
        # The superblock is the first thing the kernel validates: keep it
        # passing its checksum more often so the deeper checks get reached.
        f = self.rng.choice(region.fields)
        old = _get(self.img, f.offset, min(f.size, 8))
        if f.size > 8:
            # byte arrays (uuid, label): scribble
            for i in range(self.rng.randrange(1, 4)):
                self.img[f.offset + self.rng.randrange(f.size)] = self.rng.randrange(256)
            new = "scribbled"
        else:
            val = interesting(f.size, self.m.sb, self.rng)
            if self.rng.random() < 0.2:
                val = old + self.rng.choice([-1, 1, -2, 2, 8, -8])
            _put(self.img, f.offset, f.size, val)
            new = hex(val & ((1 << (8 * f.size)) - 1))
        self.log.append(f"{region.kind}{'#%d' % region.ino if region.ino else ''}.{f.name} "
                        f"{old:#x} -> {new}" + self._maybe_fix(region))

    def op_dirent(self) -> None:
        region = self._pick("dirblock")
        if region is None or not region.entries:
            return self.op_field()
        rng = self.rng
        e = rng.choice(region.entries)
        what = rng.choice(["inode", "inode", "rec_len", "rec_len", "name_len", "type", "name"])
        if what == "inode":
            val = rng.choice([0, region.ino, 1, self.m.sb.s_inodes_count,
                              self.m.sb.s_inodes_count + 1, 0xFFFFFFFF, 1 << 31,
                              rng.choice(self.m.used_inodes), rng.choice(self.m.dirs),
                              rng.randrange(1, self.m.sb.s_inodes_count + 1)])
            _put(self.img, e, 4, val)
        elif what == "rec_len":
            old = _get(self.img, e + 4, 2)
            val = rng.choice([0, 1, 4, 8, 12, old + 4, old - 4, old * 2, 4088, 4092, 4096,
                              0xFFFF, rng.randrange(0x10000)])
            _put(self.img, e + 4, 2, val)
        elif what == "name_len":
            val = rng.choice([0, 1, 255, _get(self.img, e + 6, 1) + 1, rng.randrange(256)])
            _put(self.img, e + 6, 1, val)
        elif what == "type":
            val = rng.randrange(256) if rng.random() < 0.3 else rng.randrange(8)
            _put(self.img, e + 7, 1, val)
        else:
            nlen = _get(self.img, e + 6, 1)
            if nlen:
                self.img[e + 8 + rng.randrange(nlen)] = rng.choice([0, ord("/"), ord("."),
                                                                     rng.randrange(256)])
            val = -1
        self.log.append(f"dirent of dir #{region.ino} at {e:#x}: {what} -> {val:#x}"
                        + self._maybe_fix(region))

    def op_bitmap(self) -> None:
        region = self._pick("ibitmap", "bbitmap")
        if region is None:
            return self.op_bitflip()
        rng = self.rng
        if region.kind == "bbitmap" and rng.random() < 0.7:
            # free a block that is in use (data, dir, extent or metadata)
            targets = [r.offset // BS for r in self.m.regions
                       if r.kind in ("dirblock", "extblock", "data", "collhdr", "symlink",
                                     "collrec")] or [0]
            item = rng.choice(targets + [0, self.m.sb.s_itable_start])
        elif region.kind == "ibitmap" and rng.random() < 0.7:
            item = rng.choice(self.m.used_inodes) - 1
        else:
            item = rng.randrange(L.VEXFS_BITS_PER_BITMAP)
        base_item = _get(self.img, region.offset + 8, 8) * L.VEXFS_BITS_PER_BITMAP
        local = item - base_item
        if not 0 <= local < L.VEXFS_BITS_PER_BITMAP:
            local = rng.randrange(L.VEXFS_BITS_PER_BITMAP)
        byte = region.offset + 16 + local // 8
        self.img[byte] ^= 1 << (local % 8)
        self.log.append(f"{region.kind} bit {base_item + local} toggled"
                        + self._maybe_fix(region, always=rng.random() < 0.85))

    def op_copy(self) -> None:
        rng = self.rng
        kind = rng.choice(["inode", "inode", "dirblock"])
        pool = self.m.of_kind(kind)
        if len(pool) < 2:
            return self.op_field()
        src, dst = rng.sample(pool, 2)
        self.img[dst.offset:dst.offset + dst.length] = self.img[src.offset:src.offset + src.length]
        note = ""
        if kind == "inode" and rng.random() < 0.7:
            note = self._maybe_fix(dst, always=True)
        self.log.append(f"copy {kind} #{src.ino}@{src.offset:#x} over #{dst.ino}@{dst.offset:#x}"
                        + note)

    def op_collection(self) -> None:
        rng = self.rng
        if rng.random() < 0.5:
            region = self._pick("collhdr")
            if region is None:
                return self.op_field()
            names = {f.name: f for f in region.fields}
            fname = rng.choice(["c_dim", "c_count", "c_record_size", "c_metric", "c_magic",
                                "c_version", "c_flags"])
            f = names[fname]
            old = _get(self.img, f.offset, f.size)
            val = rng.choice([0, 1, old + 1, old - 1, old * 2, 4096, 4097, 0xFFFFFFFF,
                              1 << 31, interesting(f.size, self.m.sb, rng)])
            _put(self.img, f.offset, f.size, val)
            self.log.append(f"collhdr #{region.ino}.{fname} {old:#x} -> {val:#x}"
                            + self._maybe_fix(region))
            return
        region = self._pick("collrec")
        if region is None:
            return self.op_field()
        rs = max(region.extra, 16)
        rec = region.offset + rng.randrange(BS // rs) * rs if rs <= BS else region.offset
        what = rng.choice(["nan", "inf", "id", "flags", "denorm"])
        if what == "id":
            _put(self.img, rec, 8, rng.choice([0, 1, 0xFFFFFFFFFFFFFFFF]))
        elif what == "flags":
            _put(self.img, rec + 8, 4, rng.randrange(1 << 32))
        else:
            word = {"nan": 0x7FC00000, "inf": 0x7F800000, "denorm": 0x00000001}[what]
            pos = rec + 16 + 4 * rng.randrange(max(1, (rs - 16) // 4))
            if pos + 4 <= region.offset + BS:
                _put(self.img, pos, 4, word)
        self.log.append(f"collection record at {rec:#x}: {what}")

    def op_bytes(self) -> None:
        region = self.rng.choice(self.m.regions)
        n = self.rng.randrange(1, 33)
        off = region.offset + self.rng.randrange(max(1, region.length - n))
        fill = self.rng.choice(["random", "zero", "ff"])
        for i in range(n):
            if off + i < self.m.size:
                self.img[off + i] = {"random": self.rng.randrange(256), "zero": 0,
                                     "ff": 255}[fill]
        self.log.append(f"{n} {fill} bytes at {off:#x} ({region.kind})" + self._maybe_fix(region))

    def op_extent(self) -> None:
        rng = self.rng
        region = self._pick("inode", "extblock")
        if region is None:
            return self.op_field()
        cands = [f for f in region.fields if "ee_" in f.name or f.name in
                 ("i_nr_extents", "i_extent_block", "i_size", "i_blocks", "eb_next", "eb_count",
                  "eb_ino")]
        if not cands:
            return self.op_field()
        f = rng.choice(cands)
        sb = self.m.sb
        pool = [0, 1, sb.s_itable_start, sb.s_bbitmap_start, sb.s_data_start - 1,
                sb.s_blocks_count - 1, sb.s_blocks_count, 7, 169, 170,
                region.offset // BS, (1 << (8 * f.size)) - 1, interesting(f.size, sb, rng)]
        old = _get(self.img, f.offset, f.size)
        val = rng.choice(pool + [old + 1, old - 1])
        _put(self.img, f.offset, f.size, val)
        self.log.append(f"{region.kind}#{region.ino}.{f.name} {old:#x} -> "
                        f"{val & ((1 << (8 * f.size)) - 1):#x}" + self._maybe_fix(region))

    # -- structure-aware cases ------------------------------------------------
    def _field(self, region: Region, name: str) -> FieldRef | None:
        return next((f for f in region.fields if f.name == name), None)

    def _inode_region(self, ino: int) -> Region | None:
        return next((r for r in self.m.of_kind("inode") if r.ino == ino), None)

    def _set(self, region: Region, name: str, value: int) -> int | None:
        f = self._field(region, name)
        if f is None:
            return None
        old = _get(self.img, f.offset, f.size)
        _put(self.img, f.offset, f.size, value)
        return old

    def op_struct(self, kind: str | None = None) -> None:
        kind = kind or self.rng.choice(self.STRUCT_KINDS)
        before = len(self.log)
        getattr(self, "_struct_" + kind)()
        if len(self.log) == before:       # nothing to aim at in this base
            self.op_extent()

    def _struct_crosslink(self) -> None:
        """An inline extent of one inode onto a metadata block of another
        object (directory, extent-chain or collection-header block): one block,
        two types. Sometimes the block is also freed in the bitmap, so the
        kernel may hand it out a third time."""
        rng = self.rng
        targets = self.m.of_kind("dirblock", "extblock", "collhdr")
        inodes = [r for r in self.m.of_kind("inode")
                  if _get(self.img, r.offset + L.Inode.i_nr_extents.offset, 4)]
        if not targets or not inodes:
            return
        t = rng.choice(targets)
        cands = [r for r in inodes if r.ino != t.ino] or inodes
        r = rng.choice(cands)
        n = min(_get(self.img, r.offset + L.Inode.i_nr_extents.offset, 4),
                L.VEXFS_INLINE_EXTENTS)
        k = rng.randrange(n)
        blk = t.offset // BS
        length = _get(self.img, r.offset + L.Inode.i_extents.offset + k * L.EXTENT_SIZE + 16, 4)
        if blk + length > self.m.sb.s_blocks_count:
            blk = max(self.m.sb.s_data_start, self.m.sb.s_blocks_count - length)
        old = self._set(r, f"i_extents[{k}].ee_start", blk)
        freed = ""
        if rng.random() < 0.3:
            for bm in self.m.of_kind("bbitmap"):
                first = _get(self.img, bm.offset + 8, 8) * L.VEXFS_BITS_PER_BITMAP
                local = t.offset // BS - first
                if 0 <= local < L.VEXFS_BITS_PER_BITMAP:
                    self.img[bm.offset + 16 + local // 8] &= ~(1 << (local % 8)) & 0xFF
                    self._maybe_fix(bm, always=True)
                    freed = ", freed in the bitmap"
        self.log.append(f"struct:crosslink inode#{r.ino} extent {k} {old:#x} -> {blk:#x} "
                        f"({t.kind} of #{t.ino}{freed})" + self._maybe_fix(r, always=True))

    def _struct_empty_extblock(self) -> None:
        rng = self.rng
        e = self._pick("extblock")
        if e is None:
            return
        blk = e.offset // BS
        self._set(e, "eb_count", 0)
        what = ["eb_count 0"]
        if rng.random() < 0.6:
            self._set(e, "eb_next", blk)
            what.append("eb_next -> itself")
        self._maybe_fix(e, always=True)
        ir = self._inode_region(e.ino)
        if ir is not None and rng.random() < 0.5:
            val = rng.choice([1 << 40, 1 << 32, self.m.sb.s_blocks_count,
                              self.m.sb.s_blocks_count - self.m.sb.s_data_start])
            self._set(ir, "i_blocks", val)
            self._maybe_fix(ir, always=True)
            what.append(f"inode i_blocks {val:#x}")
        self.log.append(f"struct:empty_extblock #{e.ino} block {blk:#x}: " + ", ".join(what))

    def _struct_chain_cycle(self) -> None:
        e = self._pick("extblock")
        if e is None:
            return
        ir = self._inode_region(e.ino)
        head = _get(self.img, ir.offset + L.Inode.i_extent_block.offset, 8) if ir else 0
        chain = [r.offset // BS for r in self.m.of_kind("extblock") if r.ino == e.ino]
        to = self.rng.choice([x for x in (head, e.offset // BS, *chain) if x])
        old = self._set(e, "eb_next", to)
        self.log.append(f"struct:chain_cycle #{e.ino} block {e.offset // BS:#x} eb_next "
                        f"{old:#x} -> {to:#x}" + self._maybe_fix(e, always=True))

    def _struct_forged_collection(self) -> None:
        rng = self.rng
        h = self._pick("collhdr")
        if h is None:
            return
        rs = max(_get(self.img, h.offset + L.CollectionHeader.c_record_size.offset, 4), 1)
        limit = ((1 << 63) - 2 * BS) // rs
        count = min(rng.choice([1 << 34, 1 << 38, 1 << 26, limit, (1 << 64) - 1]), (1 << 64) - 1)
        old = self._set(h, "c_count", count)
        self._maybe_fix(h, always=True)
        ir = self._inode_region(h.ino)
        size = ""
        if ir is not None and count <= limit and rng.random() < 0.8:
            self._set(ir, "i_size", L.VEXFS_DATA_OFFSET + count * rs)
            self._maybe_fix(ir, always=True)
            size = ", i_size to match (sparse)"
        self.log.append(f"struct:forged_collection #{h.ino} c_count {old:#x} -> {count:#x}"
                        + size)

    def _struct_links_low(self) -> None:
        rng = self.rng
        cands = [r for r in self.m.of_kind("inode") if r.ino not in self.m.dirs]
        if not cands:
            return
        r = rng.choice(cands)
        f = self._field(r, "i_links_count")
        old = _get(self.img, f.offset, f.size) if f else 1
        self._set(r, "i_links_count", max(1, old - 1))
        extra = ""
        entries = [(d, e) for d in self.m.of_kind("dirblock") for e in d.entries[2:]
                   if _get(self.img, e, 4) not in (0, r.ino)]
        if entries and (old <= 1 or rng.random() < 0.5):
            d, e = rng.choice(entries)
            _put(self.img, e, 4, r.ino)
            self._maybe_fix(d, always=True)
            extra = f", one more name in dir #{d.ino}"
        self.log.append(f"struct:links_low inode#{r.ino} i_links_count {old} -> "
                        f"{max(1, old - 1)}{extra}" + self._maybe_fix(r, always=True))

    def apply(self, nops: int | None = None) -> list[str]:
        n = nops if nops is not None else self.rng.choice([1, 1, 1, 2, 2, 3, 4])
        for _ in range(n):
            getattr(self, "op_" + self.rng.choice(self.OPS))()
        return self.log


def mutate(model: ImageModel, base: bytes, rng: random.Random,
           p_fix: float = 0.6) -> tuple[bytearray, list[str]]:
    """One mutated copy of `base` and the list of operations applied. A
    mutation that changes nothing (e.g. a field set to its own value) is
    retried so every case differs from its base."""
    for _ in range(8):
        img = bytearray(base)
        log_ = Mutator(model, img, rng, p_fix).apply()
        if img != base:
            return img, log_
    img[rng.randrange(len(img))] ^= 0x80
    return img, log_ + ["forced bit flip"]


def op_label(entry: str) -> str:
    """The structure one logged mutation targeted ("struct:crosslink",
    "inode", "dirent", "bbitmap", "bitflip:extblock"...), for coverage."""
    import re

    if entry.startswith("struct:"):
        return entry.split(" ", 1)[0]
    if entry.startswith(("bitflip", "forced bit flip")):
        m = re.search(r"\((\w+)\)", entry)
        return f"bitflip:{m.group(1)}" if m else "bitflip"
    if entry.startswith("dirent of dir"):
        return "dirent"
    if entry.startswith("copy "):
        return "copy:" + entry.split()[1]
    if entry.startswith("collection record"):
        return "collrec"
    m = re.match(r"\d+ \w+ bytes at \S+ \((\w+)\)", entry)
    if m:
        return f"bytes:{m.group(1)}"
    m = re.match(r"([a-z]+)", entry)
    return m.group(1) if m else "other"


def diff_runs(base: bytes, img: bytes, gap: int = 8) -> list[tuple[int, bytes]]:
    """(offset, new bytes) runs where `img` differs from `base`; runs closer
    than `gap` bytes are merged (a patch header costs 8 bytes)."""
    import numpy as np

    a = np.frombuffer(base, dtype=np.uint8)
    b = np.frombuffer(img, dtype=np.uint8)
    idx = np.flatnonzero(a != b)
    runs: list[tuple[int, bytes]] = []
    if idx.size == 0:
        return runs
    start = prev = int(idx[0])
    for i in idx[1:]:
        i = int(i)
        if i - prev > gap:
            runs.append((start, bytes(img[start:prev + 1])))
            start = i
        prev = i
    runs.append((start, bytes(img[start:prev + 1])))
    return runs


def changed_bytes(base: bytes, img: bytes) -> list[int]:
    """Offsets of every byte that differs (the shrinker's unit)."""
    import numpy as np

    a = np.frombuffer(base, dtype=np.uint8)
    b = np.frombuffer(img, dtype=np.uint8)
    return [int(i) for i in np.flatnonzero(a != b)]


def apply_bytes(base: bytes, img: bytes, offsets: list[int]) -> bytearray:
    """`base` with only the bytes at `offsets` taken from `img`."""
    out = bytearray(base)
    for off in offsets:
        out[off] = img[off]
    return out
