"""The golden repair corpus (tests/host/f_cases/<name>/), as e2fsprogs' tests/f_*.

Each case directory holds:

- ``make.py``: how the damaged image was made. It defines ``make(d: Damage)``,
  which damages a copy of the deterministic base image (``build_base``) through
  the core library and declares what the damage touched (``d.lost``,
  ``d.moved``, ``d.changed``). No kernel, no randomness that is not seeded.
- ``expect.1``: the first ``fsck.vexfs -y`` output and its exit status.
- ``expect.2``: the second ``fsck.vexfs -y`` output and its exit status
  (clean, exit 0, for every case fsck can repair).

``tests/host/test_f_cases.py`` runs every case and its **data oracle**: every
file, directory, symlink, device node and collection of the base image that
the damage did not touch reads back identical after the repair (content,
mode, owner, times, target, vectors), and what was damaged is where the
output says it went (a moved inode under the /lost+found name the output
gives, a lost one named by the output).

Regenerate the expected output after a deliberate change of fsck's messages:
``python tests/host/f_corpus.py [NAME ...]`` (then review the diff).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import os
import shutil
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vexfs import layout as L
from vexfs.fs.dirent import parse_dir_block
from vexfs.fs.filesystem import BS, Image
from vexfs.fsck import run_fsck
from vexfs.imagebuild import ImageBuilder

CASES = Path(__file__).parent / "f_cases"
IMAGE_NAME = "test.img"
BASE_SIZE = 4 << 20
NOW_NS = 1_700_000_000_123_456_789
UUID = bytes(range(16))

# ---------------------------------------------------------------------------
# the base image and its manifest
# ---------------------------------------------------------------------------


def build_base(path: Path, size: int = BASE_SIZE) -> None:
    """A populated image that is the same bytes every time."""
    rng = np.random.default_rng(13)
    with ImageBuilder.create(path, size, now_ns=NOW_NS, uuid=UUID) as b:
        b.mkdir("/lost+found", 0o700)
        b.write_file("/hello.txt", b"hello, world\n")
        b.write_file("/big.bin", bytes(rng.integers(0, 256, 20 * BS - 100, dtype=np.uint8)))
        b.max_extent_blocks = 1            # /frag.bin: 9 extents, 3 in an extent block
        b.write_file("/frag.bin", bytes(rng.integers(0, 256, 9 * BS, dtype=np.uint8)))
        b.max_extent_blocks = None
        b.write_file("/sparse.bin", b"S" * 10 + bytes(5 * BS) + b"E" * 10, sparse=True)
        b.mkdir("/docs")
        b.write_file("/docs/a.txt", b"alpha\n" * 50, mode=0o600, uid=1000, gid=1000)
        b.write_file("/docs/b.txt", b"beta\n")
        b.mkdir("/docs/sub")
        b.write_file("/docs/sub/deep.txt", b"deep down\n")
        b.mkdir("/many")
        for i in range(100):            # two directory blocks
            b.write_file(f"/many/entry-{i:03d}-with-a-longish-name.txt",
                         f"file {i}\n".encode() if i % 3 else b"")
        b.mkdir("/links")
        b.symlink("/links/rel", "../hello.txt")
        b.symlink("/links/abs", "/docs/a.txt")
        b.link("/hello.txt", "/links/hard")
        b.mkdir("/dev")
        b.mknod("/dev/fifo", stat.S_IFIFO | 0o644)
        b.mknod("/dev/null", stat.S_IFCHR | 0o666, rdev=(1 << 8) | 3)
        b.mkdir("/vecs")
        b.create_collection("/vecs/c1", np.arange(100, 150),
                            rng.standard_normal((50, 8)).astype(np.float32))
        b.create_collection("/vecs/c2", [7, 3, 9], np.eye(3, dtype=np.float32),
                            metric=L.VEXFS_METRIC_COSINE)
        b.create_collection("/vecs/empty", dim=4)


@dataclass
class Entry:
    """What one path of the base image holds, to compare after repair."""

    path: str
    ino: int
    kind: str
    facts: dict[str, Any]


def _facts(im: Image, ino: int, inode: L.Inode) -> tuple[str, dict[str, Any]]:
    mode = inode.i_mode
    facts: dict[str, Any] = {"mode": mode, "uid": inode.i_uid, "gid": inode.i_gid,
                             "mtime": (inode.i_mtime, inode.i_mtime_nsec)}
    if stat.S_ISDIR(mode):
        kind = "dir"
    elif stat.S_ISLNK(mode):
        kind = "symlink"
        facts["target"] = im.readlink(ino)
    elif stat.S_ISREG(mode) and inode.i_flags & L.VEXFS_INODE_FL_COLLECTION:
        kind = "collection"
        c = im.collection(ino)
        facts.update(dim=c.dim, metric=c.metric, ids=c.ids.tolist(),
                     vectors=hashlib.sha256(c.vectors.tobytes()).hexdigest())
    elif stat.S_ISREG(mode):
        kind = "file"
        h = hashlib.sha256()
        for piece in im.iter_data(ino, inode=inode):
            h.update(piece)
        facts.update(size=inode.i_size, sha256=h.hexdigest())
    else:
        kind = "node"
        facts["rdev"] = inode.i_rdev
    return kind, facts


def manifest(path: Path) -> dict[str, Entry]:
    """Every path of the image (first name of each hard-linked inode too)."""
    out: dict[str, Entry] = {}
    with Image(path) as im:
        for p, ino, inode in im.walk("/"):
            if p == "/":
                continue
            kind, facts = _facts(im, ino, inode)
            out[p] = Entry(p, ino, kind, facts)
    return out


# ---------------------------------------------------------------------------
# damage, declared
# ---------------------------------------------------------------------------


@dataclass
class Damage:
    """A copy of the base image to damage, and what the damage touched."""

    path: Path
    base: dict[str, Entry]
    #: path -> why: gone after the repair (its inode was corrupt); the output
    #: must name its inode
    lost: dict[str, str] = field(default_factory=dict)
    #: old path -> new path (a /lost+found/#<ino> name the output must give);
    #: everything under a moved directory moves with it
    moved: dict[str, str] = field(default_factory=dict)
    #: paths that stay but whose content or attributes the damage/repair changes
    changed: set[str] = field(default_factory=set)
    #: the repair must leave the image byte for byte as damaged (exit 8 cases)
    untouched_image: bool = False

    # -- lookups --------------------------------------------------------------
    def ino(self, path: str) -> int:
        return self.base[path].ino

    def _image(self) -> Image:
        return Image(self.path, writable=True, require_checksum=False)

    def inode_offset(self, ino: int) -> int:
        with self._image() as im:
            blk, off = im.inode_location(ino)
        return blk * BS + off

    def extents(self, path: str) -> list[tuple[int, int, int]]:
        with self._image() as im:
            ino = self.ino(path)
            em = im.extent_map(im.read_inode_raw(ino), ino)
        return [(e.logical, e.start, e.length) for e in em.extents]

    def chain(self, path: str) -> list[int]:
        with self._image() as im:
            ino = self.ino(path)
            return im.extent_map(im.read_inode_raw(ino), ino).chain

    def dir_block(self, path: str, lblk: int = 0) -> int:
        with self._image() as im:
            ino = self.ino(path) if path != "/" else L.VEXFS_ROOT_INO
            return dict(im.dir_blocks(ino, im.read_inode_raw(ino)))[lblk]

    def sb(self) -> L.SuperBlock:
        return L.SuperBlock.unpack(self.read(0, 256))

    # -- raw edits --------------------------------------------------------------
    def read(self, offset: int, n: int) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(offset)
            return f.read(n)

    def write(self, offset: int, data: bytes) -> None:
        with open(self.path, "r+b") as f:
            f.seek(offset)
            f.write(data)

    def edit_sb(self, reseal: bool = True, **fields: int) -> None:
        sb = self.sb()
        for k, v in fields.items():
            setattr(sb, k, v)
        if reseal:
            L.seal(sb)
        self.write(0, bytes(sb))

    def edit_inode(self, what: str | int, reseal: bool = True, **fields: int) -> int:
        ino = what if isinstance(what, int) else self.ino(what)
        off = self.inode_offset(ino)
        inode = L.Inode.unpack(self.read(off, 256))
        for k, v in fields.items():
            if k.startswith("ext"):                  # ext0_start=..., ext2_len=...
                idx, attr = k[3:].split("_", 1)
                setattr(inode.i_extents[int(idx)], f"ee_{attr}", v)
            else:
                setattr(inode, k, v)
        if reseal:
            L.seal(inode)
        self.write(off, bytes(inode))
        return ino

    def edit_block(self, blk: int, fn: Any, kind: str | None = None) -> None:
        """fn(bytearray) edits block ``blk``; ``kind`` ("dir", "extent",
        "bitmap") reseals it afterwards."""
        block = bytearray(self.read(blk * BS, BS))
        fn(block)
        if kind:
            L.seal_block(block, kind)
        self.write(blk * BS, bytes(block))

    def entry_offset(self, dirpath: str, name: str) -> tuple[int, int]:
        """(disk block, byte offset) of the live entry ``name`` in ``dirpath``."""
        with self._image() as im:
            dino = self.ino(dirpath) if dirpath != "/" else L.VEXFS_ROOT_INO
            for _lblk, pblk in im.dir_blocks(dino, im.read_inode_raw(dino)):
                recs, _ = parse_dir_block(im.dev.read_block(pblk))
                for r in recs:
                    if r.inode and r.name == name.encode():
                        return pblk, r.offset
        raise KeyError(f"{dirpath}/{name}")

    def edit_entry(self, dirpath: str, name: str, reseal: bool = True, *,
                   inode: int | None = None, file_type: int | None = None,
                   new_name: bytes | None = None) -> None:
        pblk, off = self.entry_offset(dirpath, name)

        def fn(b: bytearray) -> None:
            if inode is not None:
                b[off:off + 4] = inode.to_bytes(4, "little")
            if file_type is not None:
                b[off + 7] = file_type
            if new_name is not None:
                assert len(new_name) == b[off + 6]
                b[off + 8:off + 8 + len(new_name)] = new_name
        self.edit_block(pblk, fn, "dir" if reseal else None)

    def unlink_entry(self, dirpath: str, name: str) -> int:
        """Free a directory entry in place (inode 0), as a lost write would."""
        pblk, off = self.entry_offset(dirpath, name)
        ino = self.ino(f"{dirpath.rstrip('/')}/{name}")

        def fn(b: bytearray) -> None:
            b[off:off + 4] = bytes(4)
        self.edit_block(pblk, fn, "dir")
        return ino

    def bitmap_bit(self, which: str, item: int, on: bool, reseal: bool = True) -> None:
        sb = self.sb()
        start = sb.s_ibitmap_start if which == "inode" else sb.s_bbitmap_start
        blk = start + item // L.VEXFS_BITS_PER_BITMAP
        bit = item % L.VEXFS_BITS_PER_BITMAP

        def fn(b: bytearray) -> None:
            if on:
                b[16 + bit // 8] |= 1 << (bit % 8)
            else:
                b[16 + bit // 8] &= ~(1 << (bit % 8)) & 0xFF
        self.edit_block(blk, fn, "bitmap" if reseal else None)

    def commit_journal(self, writes: list[tuple[int, bytes]]) -> None:
        """Put one committed jbd2 transaction writing ``writes`` (fs block,
        4096 bytes) in the (empty) journal, as a crash right after the commit
        and before the checkpoint leaves it (CSUM_V3, as vexfs.ko writes)."""
        import struct

        from vexfs.fs import journal as J
        geom = J.JournalGeometry.from_superblock(self.sb())
        assert geom is not None, "the image has no journal (SIZE >= 8 MiB)"
        start = geom.start_block
        jsb = J.read_journal_superblock(self.read(start * BS, BS))
        seq, uuid = int(jsb.s_sequence), bytes(jsb.s_uuid)
        seed = J.jbd2_crc32c(uuid)
        desc = bytearray(BS)
        struct.pack_into(">III", desc, 0, J.JBD2_MAGIC_NUMBER, J.JBD2_DESCRIPTOR_BLOCK, seq)
        off = 12
        for i, (home, data) in enumerate(writes):
            assert len(data) == BS and struct.unpack_from(">I", data)[0] != J.JBD2_MAGIC_NUMBER
            flags = (0 if i == 0 else 2) | (8 if i == len(writes) - 1 else 0)
            csum = J.jbd2_crc32c(data, J.jbd2_crc32c(struct.pack(">I", seq), seed))
            struct.pack_into(">IIII", desc, off, home & 0xFFFFFFFF, flags, home >> 32, csum)
            off += 16
            if i == 0:
                desc[off:off + 16] = uuid
                off += 16
            self.write((start + 2 + i) * BS, data)
        desc[-4:] = struct.pack(">I", J.jbd2_crc32c(bytes(desc[:-4]) + bytes(4), seed))
        self.write((start + 1) * BS, bytes(desc))
        commit = bytearray(BS)
        struct.pack_into(">III", commit, 0, J.JBD2_MAGIC_NUMBER, J.JBD2_COMMIT_BLOCK, seq)
        struct.pack_into(">Q", commit, 48, NOW_NS // 10**9)
        struct.pack_into(">I", commit, 16, J.jbd2_crc32c(bytes(commit), seed))
        self.write((start + 2 + len(writes)) * BS, bytes(commit))
        jsb.s_start = 1
        jsb.s_checksum = J.superblock_checksum(jsb)
        self.write(start * BS, bytes(jsb))

    # -- declarations -----------------------------------------------------------
    def lose(self, path: str, why: str = "") -> None:
        self.lost[path] = why

    def move(self, path: str) -> str:
        """``path``'s inode ends up as /lost+found/#<ino>; returns that name."""
        new = f"/lost+found/#{self.ino(path)}"
        self.moved[path] = new
        return new


# ---------------------------------------------------------------------------
# running a case
# ---------------------------------------------------------------------------


def load_make(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"f_case_{name}", CASES / name / "make.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_BASE_CACHE: dict[int, bytes] = {}


def make_case(name: str, workdir: Path) -> Damage:
    """Build case ``name``'s damaged image as workdir/test.img."""
    mod = load_make(name)
    size = getattr(mod, "SIZE", BASE_SIZE)
    img = workdir / IMAGE_NAME
    if size not in _BASE_CACHE:
        tmp = workdir / "base.img"
        build_base(tmp, size)
        _BASE_CACHE[size] = tmp.read_bytes()
        tmp.unlink()
    img.write_bytes(_BASE_CACHE[size])
    base = manifest(img)
    d = Damage(img, base)
    mod.make(d)
    return d


def run_y(workdir: Path) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.chdir(workdir):
        rc = run_fsck(IMAGE_NAME, "y", force=True, out=out)
    return rc, out.getvalue() + f"Exit status is {rc}\n"


def render(rc_out: tuple[int, str]) -> str:
    return rc_out[1]


def regenerate(names: list[str]) -> None:
    import tempfile
    for name in names:
        with tempfile.TemporaryDirectory() as t:
            work = Path(t)
            make_case(name, work)
            (CASES / name / "expect.1").write_text(run_y(work)[1])
            (CASES / name / "expect.2").write_text(run_y(work)[1])
        print(f"{name}: regenerated")


def all_cases() -> list[str]:
    return sorted(p.name for p in CASES.iterdir() if (p / "make.py").is_file())


if __name__ == "__main__":
    regenerate(sys.argv[1:] or all_cases())
    shutil.rmtree(CASES / "__pycache__", ignore_errors=True)
    _ = os
