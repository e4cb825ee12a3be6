"""fsck.vexfs on images corrupted on purpose.

One test per class of corruption: fsck -n must detect it (right problem code,
a message naming the broken thing, exit 4 or 8) and, where fsck claims it can
repair it, -y must exit 1 and leave an image that a fresh -n finds clean.
Plus random bit flips in metadata blocks (hypothesis).
"""

from __future__ import annotations

import ctypes
import io
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from vexfs import layout as L
from vexfs.fsck import Checker, run_fsck
from vexfs.image import BS, Image, parse_dir_block
from vexfs.imagebuild import ImageBuilder

MiB = 1 << 20


def build_populated(path: Path) -> dict:
    """A small image with one of everything; returns facts tests use."""
    facts: dict = {}
    with ImageBuilder.create(path, 8 * MiB, label="fscktest") as b:
        b.mkdir("/docs")
        facts["a"] = b.write_file("/docs/a.txt", b"hello\n")
        b.write_file("/docs/b.bin", bytes(range(256)) * 48)
        b.mkdir("/docs/sub")
        b.write_file("/docs/sub/deep.txt", b"deep\n" * 100)
        b.max_extent_blocks = 1
        facts["frag"] = b.write_file("/frag", np.random.default_rng(1).bytes(20 * BS + 5))
        b.max_extent_blocks = None
        facts["link"] = b.symlink("/link", "docs/a.txt")
        b.link("/docs/a.txt", "/hard")
        b.mknod("/fifo", stat.S_IFIFO | 0o644)
        b.mknod("/null", stat.S_IFCHR | 0o666, rdev=(1 << 8) | 3)
        rng = np.random.default_rng(2)
        facts["vecs"] = b.create_collection("/vecs", ids=np.arange(100, 110),
                                            vectors=rng.random((10, 5), dtype=np.float32),
                                            metric=L.VEXFS_METRIC_COSINE)
        b.mkdir("/many")
        for i in range(150):
            b.write_file(f"/many/file-{i:03d}-with-a-longish-name", b"x" * i)
        b.write_file("/sparse", b"head" + bytes(5 * BS) + b"tail", sparse=True)
    return facts


@pytest.fixture(scope="module")
def golden(tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("golden") / "golden.img"
    facts = build_populated(path)
    return path, facts


@pytest.fixture
def img(golden, tmp_path) -> Path:
    path = tmp_path / "t.img"
    shutil.copyfile(golden[0], path)
    return path


def fsck(path: Path, mode: str = "n", force: bool = True) -> tuple[int, str]:
    out = io.StringIO()
    rc = run_fsck(str(path), mode, force=force, out=out)
    return rc, out.getvalue()


def codes(path: Path) -> set[str]:
    with Image(path, require_checksum=False) as im:
        c = Checker(im)
        c.pending_reconnect = []
        return {p.code for p in c.check()}


# -- raw patching helpers ----------------------------------------------------------------


def patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def read(path: Path, offset: int, n: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(n)


def edit_sb(path: Path, reseal: bool = True, **fields) -> None:
    sb = L.SuperBlock.unpack(read(path, 0, 256))
    for k, v in fields.items():
        setattr(sb, k, v)
    if reseal:
        L.seal(sb)
    patch(path, 0, bytes(sb))


def lookup(path: Path, p: str) -> int:
    with Image(path) as im:
        return im.lookup(p, follow=False)


def inode_offset(path: Path, ino: int) -> int:
    with Image(path, require_checksum=False) as im:
        blk, off = im.inode_location(ino)
        return blk * BS + off


def edit_inode(path: Path, ino: int, reseal: bool = True, fn=None, **fields) -> None:
    off = inode_offset(path, ino)
    inode = L.Inode.unpack(read(path, off, 256))
    for k, v in fields.items():
        setattr(inode, k, v)
    if fn:
        fn(inode)
    if reseal:
        L.seal(inode)
    patch(path, off, bytes(inode))


def dir_block(path: Path, dirpath: str, lblk: int = 0) -> int:
    with Image(path) as im:
        ino = im.lookup(dirpath)
        return dict(im.dir_blocks(ino, im.iget(ino)))[lblk]


def edit_dir_block(path: Path, pblk: int, fn, reseal: bool = True) -> None:
    block = bytearray(read(path, pblk * BS, BS))
    fn(block)
    if reseal:
        L.seal_block(block, "dir")
    patch(path, pblk * BS, bytes(block))


def entry(path: Path, pblk: int, name: bytes):
    recs, _ = parse_dir_block(read(path, pblk * BS, BS))
    return next(r for r in recs if r.name == name and r.inode)


def first_extent_start(path: Path, p: str) -> int:
    with Image(path) as im:
        ino = im.lookup(p, follow=False)
        return im.extents(ino).extents[0].start


def assert_detected(path: Path, code: str, words: list[str] | None = None,
                    rc_expected: int = 4) -> str:
    rc, out = fsck(path, "n")
    assert rc == rc_expected, out
    assert code in codes(path), out
    for w in words or []:
        assert w in out, f"{w!r} not in fsck output:\n{out}"
    return out


def assert_repaired(path: Path, mode: str = "y") -> str:
    rc, out = fsck(path, mode)
    assert rc == 1, out
    rc2, out2 = fsck(path, "n")
    assert rc2 == 0, f"not clean after repair:\n{out}\n--- recheck:\n{out2}"
    assert "[FIXED]" in out
    return out


def assert_not_repairable(path: Path, mode: str = "y") -> str:
    rc, out = fsck(path, mode)
    assert rc == 4, out
    assert "NOT FIXED" in out
    return out


# -- clean cases -------------------------------------------------------------------------


def test_fresh_mkfs_is_clean(tmp_path):
    p = tmp_path / "fresh.img"
    with ImageBuilder.create(p, 4 * MiB):
        pass
    rc, out = fsck(p)
    assert rc == 0, out
    assert "1/" in out          # one inode used: the root


def test_populated_image_is_clean(img):
    rc, out = fsck(img)
    assert rc == 0, out


def test_clean_image_is_not_modified_by_y(img):
    before = img.read_bytes()
    rc, out = fsck(img, "y")
    assert rc == 0, out
    assert img.read_bytes() == before


def test_preen_skips_clean_fs_unless_forced(img):
    # corrupt something preen would fix; without -f the clean state skips the check
    edit_sb(img, s_free_blocks=5)
    rc, out = fsck(img, "p", force=False)
    assert rc == 0 and "clean" in out
    rc, out = fsck(img, "p", force=True)
    assert rc == 1, out


def test_dirty_state_is_checked_by_preen_and_marked_clean(img):
    edit_sb(img, s_state=0)
    rc, out = fsck(img, "p", force=False)
    assert rc == 0, out
    assert L.SuperBlock.unpack(read(img, 0, 256)).s_state == L.VEXFS_STATE_CLEAN


def test_n_never_writes(img):
    edit_sb(img, s_free_blocks=5)
    edit_inode(img, lookup(img, "/docs/a.txt"), reseal=False, i_uid=77)
    before = img.read_bytes()
    rc, _ = fsck(img, "n")
    assert rc == 4
    assert img.read_bytes() == before


# -- superblock ---------------------------------------------------------------------------


def test_sb_checksum(img):
    edit_sb(img, reseal=False, s_mount_count=9)
    assert_detected(img, "sb.checksum", ["superblock checksum mismatch"])
    assert_repaired(img, "p")


def test_sb_bad_magic_is_operational_error(img):
    edit_sb(img, s_magic=0x12345678)
    rc, out = fsck(img)
    assert rc == 8 and "not a VexFS filesystem" in out


def test_sb_unknown_incompat_feature(img):
    edit_sb(img, s_feature_incompat=L.VEXFS_FEATURE_INCOMPAT_EXTENTS | 0x80)
    rc, out = fsck(img, "y")
    assert rc == 8 and "unknown incompatible features 0x80" in out


def test_sb_bad_version(img):
    edit_sb(img, s_version=7)
    rc, out = fsck(img)
    assert rc == 8 and "version 7" in out


def _assert_sb_rebuilt(img: Path, words: list[str]) -> None:
    rc, out = fsck(img, "n")
    assert rc == 4, out
    for w in words + ["rebuilt from the"]:
        assert w in out, out
    assert "sb.geometry" not in out
    rc, out = fsck(img, "p")
    assert rc == 4 and "UNEXPECTED INCONSISTENCY" in out, out
    assert_repaired(img)


def test_sb_bad_geometry(img):
    edit_sb(img, s_itable_blocks=3)
    _assert_sb_rebuilt(img, ["inode table is 3 blocks", "s_itable_blocks 3 -> 32"])


def test_sb_bigger_than_device(img):
    """A superblock describing more blocks than the device holds is never "fixed"
    by shrinking the filesystem (issue 13 defect 1): exit 8, nothing written."""
    edit_sb(img, s_blocks_count=10**6)
    before = img.read_bytes()
    for mode in ("y", "p", "n"):
        rc, out = fsck(img, mode)
        assert rc == 8, out
        assert "device holds only 2048" in out and "nothing was changed" in out, out
        assert img.read_bytes() == before


def test_truncated_image_is_refused_and_untouched(tmp_path):
    """Issue 13 defect 1 as a user met it: a 16 MiB image truncated to 8 MiB."""
    p = tmp_path / "short.img"
    with ImageBuilder.create(p, 16 * MiB) as b:
        b.write_file("/a", b"x" * 5000)
        b.mkdir("/d")
    os.truncate(p, 8 * MiB)
    before = p.read_bytes()
    rc, out = fsck(p, "y")
    assert rc == 8, out
    assert "4096 blocks but the device holds only 2048" in out
    assert "FIXED" not in out and "removed" not in out
    assert p.read_bytes() == before


def test_sb_bit_flip_in_geometry_without_reseal(img):
    sb = L.SuperBlock.unpack(read(img, 0, 256))
    edit_sb(img, reseal=False, s_data_start=sb.s_data_start ^ 0x40)
    _assert_sb_rebuilt(img, ["s_data_start"])


@pytest.mark.parametrize("fields", [
    {"s_inodes_count": 7}, {"s_block_size": 1024}, {"s_inode_size": 128},
    {"s_root_ino": 5}, {"s_feature_incompat": 0}, {"s_state": 0x8001},
    {"s_free_blocks": 10**7}, {"s_ibitmap_start": 9}, {"s_bbitmap_blocks": 7},
])
def test_sb_fields_restored(img, fields):
    edit_sb(img, **fields)
    _assert_sb_rebuilt(img, [f"{k} {v} -> " for k, v in fields.items()])


def test_sb_unrecoverable_geometry(img):
    # no layout matches: the bitmaps are gone too
    ibitmap = L.SuperBlock.unpack(read(img, 0, 256)).s_ibitmap_start
    edit_sb(img, s_itable_blocks=3)
    patch(img, ibitmap * BS, b"\0" * 16)
    rc, out = fsck(img, "y")
    assert rc == 4 and "no layout matching" in out


def test_sb_free_block_count(img):
    edit_sb(img, s_free_blocks=5)
    assert_detected(img, "sb.free_blocks", ["free blocks count is 5"])
    assert_repaired(img, "p")


def test_sb_free_inode_count(img):
    edit_sb(img, s_free_inodes=3)
    assert_detected(img, "sb.free_inodes", ["free inodes count is 3"])
    assert_repaired(img, "p")


def test_sb_error_state(img):
    edit_sb(img, s_state=L.VEXFS_STATE_ERROR)
    assert_detected(img, "sb.error_state", ["recorded errors"])
    assert_repaired(img, "p")
    assert L.SuperBlock.unpack(read(img, 0, 256)).s_state == L.VEXFS_STATE_CLEAN


def test_error_state_stays_while_errors_remain(img):
    edit_sb(img, s_state=L.VEXFS_STATE_ERROR)
    _edit_collection_header(img, c_metric=9)      # nothing can repair this
    rc, out = fsck(img, "y")
    assert rc == 4, out
    assert "recorded errors on this filesystem (state ERROR) [NOT FIXED]" in out
    assert L.SuperBlock.unpack(read(img, 0, 256)).s_state & L.VEXFS_STATE_ERROR


# -- bitmaps --------------------------------------------------------------------------------


def _bitmap_block(img: Path, which: str) -> int:
    sb = L.SuperBlock.unpack(read(img, 0, 256))
    return sb.s_ibitmap_start if which == "inode" else sb.s_bbitmap_start


def _flip_bitmap_bit(img: Path, which: str, item: int, reseal: bool = True) -> None:
    blk = _bitmap_block(img, which)
    block = bytearray(read(img, blk * BS, BS))
    block[16 + item // 8] ^= 1 << (item % 8)
    if reseal:
        L.seal_block(block, "bitmap")
    patch(img, blk * BS, bytes(block))


def test_bitmap_bad_magic(img):
    patch(img, _bitmap_block(img, "block") * BS, b"XXXX")
    assert_detected(img, "bitmap.header", ["block bitmap block 0", "bad magic"])
    assert_repaired(img, "p")


def test_bitmap_bad_index(img):
    patch(img, _bitmap_block(img, "inode") * BS + 8, (3).to_bytes(8, "little"))
    assert_detected(img, "bitmap.header", ["says it is block 3"])
    assert_repaired(img)


def test_bitmap_checksum(img):
    blk = _bitmap_block(img, "block")
    patch(img, blk * BS + 4, b"\0\0\0\0")
    assert_detected(img, "bitmap.checksum", ["checksum mismatch"])
    assert_repaired(img, "p")


def test_block_in_use_marked_free(img):
    start = first_extent_start(img, "/docs/b.bin")
    _flip_bitmap_bit(img, "block", start)
    assert_detected(img, "bitmap.block_marked_free", [f"({start})", "in use are marked free"])
    assert_repaired(img, "p")


def test_block_marked_used_but_free(img):
    _flip_bitmap_bit(img, "block", 2000)
    assert_detected(img, "bitmap.block_marked_used", ["(2000)", "not used by anything"])
    assert_repaired(img, "p")


def test_inode_in_use_marked_free(img):
    ino = lookup(img, "/docs/a.txt")
    _flip_bitmap_bit(img, "inode", ino - 1)
    assert_detected(img, "bitmap.inode_marked_free", [f"({ino})"])
    assert_repaired(img, "p")


def test_free_inode_marked_used(img):
    _flip_bitmap_bit(img, "inode", 400)
    assert_detected(img, "bitmap.inode_marked_used", ["(401)"])
    assert_repaired(img, "p")


def test_bitmap_tail_bits_clear(img):
    # 2048 blocks: bit 2100 lies past the end and must be set
    _flip_bitmap_bit(img, "block", 2100)
    assert_detected(img, "bitmap.tail", ["past the last block"])
    assert_repaired(img, "p")


# -- inodes and extents ------------------------------------------------------------------------


def test_inode_checksum(img):
    ino = lookup(img, "/docs/a.txt")
    edit_inode(img, ino, reseal=False, i_uid=1234)
    assert_detected(img, "inode.checksum", [f"inode {ino}: checksum mismatch"])
    assert_repaired(img, "p")
    with Image(img) as im:
        assert im.iget(ino).i_uid == 1234


def test_inode_invalid_mode(img):
    ino = lookup(img, "/docs/sub/deep.txt")
    edit_inode(img, ino, i_mode=0o170644)
    assert_detected(img, "inode.mode", [f"inode {ino}: invalid mode 0o170644"])
    rc, out = fsck(img, "p")
    assert rc == 4 and "UNEXPECTED INCONSISTENCY" in out
    assert_repaired(img)
    with Image(img) as im:
        assert "deep.txt" not in [e.name for e in im.list_dir(im.lookup("/docs/sub"))]


def test_extent_outside_data_region(img):
    ino = lookup(img, "/docs/b.bin")
    edit_inode(img, ino, fn=lambda i: setattr(i.i_extents[0], "ee_start", 2))
    assert_detected(img, "inode.extent", [f"inode {ino}: extent 0", "outside the data region"])
    assert_repaired(img)


def test_extent_past_device_end(img):
    ino = lookup(img, "/docs/b.bin")
    edit_inode(img, ino, fn=lambda i: setattr(i.i_extents[0], "ee_len", 5000))
    assert_detected(img, "inode.extent", ["outside the data region"])


def test_extents_overlapping_in_file(img):
    ino = lookup(img, "/frag")
    edit_inode(img, ino, fn=lambda i: setattr(i.i_extents[2], "ee_logical", 0))
    assert_detected(img, "inode.extent", [f"inode {ino}: extent 2", "overlaps the previous"])
    assert_repaired(img)


def test_extent_zero_length_in_used_slot(img):
    ino = lookup(img, "/frag")
    edit_inode(img, ino, fn=lambda i: setattr(i.i_extents[1], "ee_len", 0))
    assert_detected(img, "inode.extent", ["length 0"])


def test_nr_extents_too_big(img):
    ino = lookup(img, "/docs/a.txt")
    edit_inode(img, ino, i_nr_extents=9)
    assert_detected(img, "inode.extent", ["i_nr_extents 9 exceeds 6"])


def _chain_block(img: Path) -> int:
    with Image(img) as im:
        em = im.extents(lookup(img, "/frag"))
        assert em.chain
        return em.chain[0]


def _edit_extent_block(img: Path, fn, reseal=True) -> int:
    blk = _chain_block(img)
    block = bytearray(read(img, blk * BS, BS))
    head = L.ExtentBlockHeader.unpack(block)
    fn(head, block)
    block[:32] = bytes(head)
    if reseal:
        L.seal_block(block, "extent")
    patch(img, blk * BS, bytes(block))
    return blk


def test_extent_chain_loop(img):
    blk = _edit_extent_block(img, lambda h, b: setattr(h, "eb_next", _chain_block(img)))
    assert_detected(img, "inode.extent_chain", [f"loops back to block {blk}"])
    assert_repaired(img)


def test_extent_block_bad_magic(img):
    _edit_extent_block(img, lambda h, b: setattr(h, "eb_magic", 0))
    assert_detected(img, "inode.extent_chain", ["bad magic"])


def test_extent_block_wrong_owner(img):
    _edit_extent_block(img, lambda h, b: setattr(h, "eb_ino", 999))
    assert_detected(img, "inode.extent_chain", ["belongs to inode 999"])


def test_extent_block_count_too_big(img):
    _edit_extent_block(img, lambda h, b: setattr(h, "eb_count", 500))
    assert_detected(img, "inode.extent_chain", ["claims 500 extents"])


def test_extent_block_checksum(img):
    blk = _edit_extent_block(img, lambda h, b: setattr(h, "eb_reserved", 1), reseal=False)
    assert_detected(img, "inode.extent_block_checksum", [f"extent block {blk}: checksum"])
    assert_repaired(img, "p")


def test_extent_chain_out_of_range(img):
    ino = lookup(img, "/frag")
    edit_inode(img, ino, i_extent_block=10**7)
    assert_detected(img, "inode.extent_chain", ["outside the data region"])


def test_i_blocks_wrong(img):
    ino = lookup(img, "/frag")
    edit_inode(img, ino, i_blocks=3)
    assert_detected(img, "inode.i_blocks", [f"inode {ino}: i_blocks is 3", "hold 22"])
    assert_repaired(img, "p")


def test_directory_size_not_block_multiple(img):
    ino = lookup(img, "/docs/sub")
    edit_inode(img, ino, i_size=100)
    assert_detected(img, "inode.size", ["not a positive multiple of 4096"])
    assert_repaired(img)


def test_directory_with_hole(img):
    ino = lookup(img, "/many")
    # drop the mapping of block 0 (keep size): a hole in a directory
    def fn(i):
        n = i.i_nr_extents
        for k in range(n - 1):
            i.i_extents[k] = i.i_extents[k + 1]
        i.i_extents[n - 1] = L.Extent()
        i.i_nr_extents = n - 1
        i.i_blocks -= 1
    edit_inode(img, ino, fn=fn)
    assert_detected(img, "inode.hole", ["has holes"])


def test_unknown_inode_flags(img):
    ino = lookup(img, "/docs/a.txt")
    edit_inode(img, ino, i_flags=0x40000)
    assert_detected(img, "inode.flags", ["unknown flags 0x40000"])
    assert_repaired(img)


def test_collection_flag_on_directory(img):
    ino = lookup(img, "/docs")
    edit_inode(img, ino, i_flags=L.VEXFS_INODE_FL_COLLECTION)
    assert_detected(img, "inode.flags", ["collection flag set on a directory"])
    assert_repaired(img)


def test_regular_file_size_beyond_max(img):
    """The kernel refuses i_size > MAX_LFS_FILESIZE (found by the image fuzzer:
    fsck used to call it consistent)."""
    ino = lookup(img, "/docs/b.bin")
    edit_inode(img, ino, i_size=2**64 - 1)
    assert_detected(img, "inode.size_max", [f"inode {ino}: size {2**64 - 1} exceeds"])
    assert_repaired(img, "p")
    with Image(img) as im:
        assert im.iget(ino).i_size == 3 * BS


def test_empty_extent_block_is_accepted(tmp_path):
    """An extent block with eb_count 0 in the chain is legal (the kernel keeps
    such blocks after truncation)."""
    p = tmp_path / "e.img"
    with ImageBuilder.create(p, 4 * MiB, max_extent_blocks=1) as b:
        ino = b.write_file("/f", bytes(range(256)) * 16 * 10)
    with Image(p) as im:
        chain = im.extents(ino).chain
        inode = im.iget(ino)
    # append an empty extent block to the chain
    empty = 1000
    block = bytearray(BS)
    block[:32] = bytes(L.ExtentBlockHeader(eb_magic=L.VEXFS_EXTENT_BLOCK_MAGIC, eb_count=0,
                                           eb_ino=ino))
    L.seal_block(block, "extent")
    patch(p, empty * BS, bytes(block))
    head_blk = bytearray(read(p, chain[-1] * BS, BS))
    h = L.ExtentBlockHeader.unpack(head_blk)
    h.eb_next = empty
    head_blk[:32] = bytes(h)
    L.seal_block(head_blk, "extent")
    patch(p, chain[-1] * BS, bytes(head_blk))
    edit_inode(p, ino, i_blocks=inode.i_blocks + 1)
    with ImageBuilder.open(p) as b:
        b._set(b.bbits, empty, True)
    rc, out = fsck(p, "n")
    assert rc == 0, out


def test_device_node_with_extents(img):
    ino = lookup(img, "/fifo")
    edit_inode(img, ino, i_size=10)
    assert_detected(img, "inode.size", ["a fifo has size 10"])


def test_block_shared_by_two_inodes(img):
    a = lookup(img, "/docs/b.bin")
    b = lookup(img, "/docs/sub/deep.txt")
    start = first_extent_start(img, "/docs/b.bin")
    edit_inode(img, b, fn=lambda i: setattr(i.i_extents[0], "ee_start", start))
    with Image(img) as im:
        a_data = im.read_file("/docs/b.bin")
    out = assert_detected(img, "block.multiply_claimed")
    assert f"inode {b}: extent 0" in out and f"overlaps inode {a}'s extent 0" in out
    rc, out = fsck(img, "p")
    assert rc == 4 and "UNEXPECTED INCONSISTENCY" in out
    assert_repaired(img)
    with Image(img) as im:
        # the victim got its own copy; the first owner is untouched
        assert im.read_file("/docs/b.bin") == a_data
        assert im.extents(b).extents[0].start != start
        assert im.read_file("/docs/sub/deep.txt")[:100] == a_data[:100]


def test_extent_overlapping_another_files_extent_chain(img):
    """A data extent laid over another file's extent block and data: the
    later claims (the chain block, the data) are cloned and that file's
    content survives intact."""
    with Image(img) as im:
        frag = im.lookup("/frag")
        frag_data = im.read_file("/frag")
        chain_blk = im.extents(frag).chain[0]
    b = lookup(img, "/docs/b.bin")
    assert b < frag
    edit_inode(img, b, fn=lambda i: setattr(i.i_extents[0], "ee_start", chain_blk))
    out = assert_detected(img, "block.multiply_claimed")
    assert f"inode {frag}: extent block {chain_blk} overlaps inode {b}'s extent 0" in out
    assert_repaired(img)
    with Image(img) as im:
        assert im.extents(frag).chain[0] != chain_blk
        assert im.read_file("/frag") == frag_data


# -- symlinks -----------------------------------------------------------------------------------


def test_symlink_zero_length(img):
    ino = lookup(img, "/link")
    edit_inode(img, ino, i_size=0)
    assert_detected(img, "symlink.size", ["target length 0"])
    assert_repaired(img)


def test_symlink_target_with_nul(img):
    start = first_extent_start(img, "/link")
    patch(img, start * BS + 2, b"\0")
    assert_detected(img, "symlink.target", ["NUL"])
    assert_repaired(img)


# -- directories ------------------------------------------------------------------------------


def test_dir_block_checksum(img):
    pblk = dir_block(img, "/docs")
    e = entry(img, pblk, b"a.txt")
    edit_dir_block(img, pblk, lambda b: b.__setitem__(e.offset + 8, ord("A")), reseal=False)
    assert_detected(img, "dir.checksum", ["directory /docs", "checksum mismatch"])
    assert_repaired(img, "p")
    with Image(img) as im:
        assert im.read_file("/docs/A.txt") == b"hello\n"


def test_dir_tail_magic(img):
    pblk = dir_block(img, "/docs")
    edit_dir_block(img, pblk, lambda b: b.__setitem__(slice(4088, 4092), b"XXXX"))
    assert_detected(img, "dir.tail", ["bad tail magic"])
    assert_repaired(img, "p")


def test_dir_rec_len_chain_broken(img):
    pblk = dir_block(img, "/many", 0)
    with Image(img) as im:
        recs, _ = parse_dir_block(im.read_block(pblk))
    victim = recs[10]
    edit_dir_block(img, pblk, lambda b: b.__setitem__(slice(victim.offset + 4,
                                                            victim.offset + 6),
                                                      (3).to_bytes(2, "little")))
    out = assert_detected(img, "dir.chain", ["directory /many", "bad rec_len 3"])
    assert "orphan" not in out
    out = assert_repaired(img)
    # the entries after the break became orphans and went to /lost+found
    with Image(img) as im:
        lost = [e.name for e in im.list_dir(im.lookup("/lost+found"))]
        assert len(lost) > 2 and all(n.startswith("#") for n in lost[2:])


def test_dir_entry_rec_len_past_block(img):
    pblk = dir_block(img, "/docs")
    recs, _ = parse_dir_block(read(img, pblk * BS, BS))
    e = recs[-1]          # the last entry's rec_len reaches exactly to the tail
    edit_dir_block(img, pblk, lambda b: b.__setitem__(slice(e.offset + 4, e.offset + 6),
                                                      (e.rec_len + 4).to_bytes(2, "little")))
    assert_detected(img, "dir.chain", [f"offset {e.offset} with rec_len {e.rec_len + 4} "
                                       "runs past byte 4088"])
    assert_repaired(img)


def test_dir_entry_name_with_slash(img):
    pblk = dir_block(img, "/docs")
    e = entry(img, pblk, b"a.txt")
    edit_dir_block(img, pblk, lambda b: b.__setitem__(e.offset + 9, ord("/")))
    assert_detected(img, "dir.name", ["'a/txt'", "contains '/'"])
    assert_repaired(img)


def test_dir_entry_named_dotdot(img):
    pblk = dir_block(img, "/docs")
    e = entry(img, pblk, b"b.bin")
    def fn(b):
        b[e.offset + 6] = 2
        b[e.offset + 8:e.offset + 10] = b".."
    edit_dir_block(img, pblk, fn)
    assert_detected(img, "dir.name", ["only allowed as the first two entries",
                                      "renamed to '.~'"])
    assert_repaired(img)
    # the entry and its intact inode stay, under the new name
    with Image(img) as im:
        assert im.lookup("/docs/.~") == e.inode


def test_dir_entry_to_free_inode(img):
    pblk = dir_block(img, "/docs")
    e = entry(img, pblk, b"a.txt")
    edit_dir_block(img, pblk, lambda b: b.__setitem__(slice(e.offset, e.offset + 4),
                                                      (500).to_bytes(4, "little")))
    assert_detected(img, "dir.entry_inode", ["entry 'a.txt' points to free inode 500"])
    assert_repaired(img)


def test_dir_entry_inode_out_of_range(img):
    pblk = dir_block(img, "/docs")
    e = entry(img, pblk, b"a.txt")
    edit_dir_block(img, pblk, lambda b: b.__setitem__(slice(e.offset, e.offset + 4),
                                                      (10**9).to_bytes(4, "little")))
    assert_detected(img, "dir.entry_inode", ["outside 1..512"])
    assert_repaired(img)


def test_dir_entry_file_type_mismatch(img):
    pblk = dir_block(img, "/")
    e = entry(img, pblk, b"link")
    edit_dir_block(img, pblk, lambda b: b.__setitem__(e.offset + 7, L.VEXFS_FT_REG_FILE))
    assert_detected(img, "dir.file_type", ["entry 'link' has file type 1", "is a symlink"])
    assert_repaired(img, "p")


def test_dotdot_points_elsewhere(img):
    pblk = dir_block(img, "/docs/sub")
    e = entry(img, pblk, b"..")
    edit_dir_block(img, pblk, lambda b: b.__setitem__(slice(e.offset, e.offset + 4),
                                                      (1).to_bytes(4, "little")))
    docs = lookup(img, "/docs")
    assert_detected(img, "dir.dot", [f"'..' points to inode 1, should be {docs}"])
    assert_repaired(img)


def test_dot_missing(img):
    pblk = dir_block(img, "/docs")
    edit_dir_block(img, pblk, lambda b: b.__setitem__(8, ord("x")))
    assert_detected(img, "dir.dot", ["entry 0 should be '.'"])
    assert_repaired(img)


def test_dotdot_replaced_by_a_live_entry(img):
    """'..' overwritten by a real entry: '..' is restored and the entry's
    inode is reconnected to /lost+found."""
    pblk = dir_block(img, "/docs/sub")
    deep = lookup(img, "/docs/sub/deep.txt")
    e = entry(img, pblk, b"..")
    def fn(b):
        b[e.offset:e.offset + 4] = deep.to_bytes(4, "little")
        b[e.offset + 6] = 2
        b[e.offset + 7] = L.VEXFS_FT_REG_FILE
        b[e.offset + 8:e.offset + 10] = b"zz"
    edit_dir_block(img, pblk, fn)
    assert_detected(img, "dir.dot", ["entry 1 should be '..'"])
    assert_repaired(img)
    with Image(img) as im:
        assert im.lookup("/docs/sub/..") == im.lookup("/docs")


def test_dotdot_record_missing(img):
    pblk = dir_block(img, "/docs/sub")
    recs, _ = parse_dir_block(read(img, pblk * BS, BS))
    # make '.' swallow the whole block (its rec_len reaches the tail)
    edit_dir_block(img, pblk, lambda b: b.__setitem__(slice(4, 6), (4088).to_bytes(2, "little")))
    assert_detected(img, "dir.dot", ["the '..' entry is missing"])
    assert_repaired(img)
    assert len(recs) >= 2


def test_duplicate_name(img):
    pblk = dir_block(img, "/docs")
    e = entry(img, pblk, b"b.bin")
    def fn(b):
        b[e.offset + 6] = 5
        b[e.offset + 8:e.offset + 13] = b"a.txt"
    edit_dir_block(img, pblk, fn)
    assert_detected(img, "dir.duplicate_name", ["'a.txt' appears twice"])
    assert_repaired(img)


def test_second_link_to_directory(img):
    sub = lookup(img, "/docs/sub")
    with ImageBuilder.open(img) as b:
        b.add_entry(L.VEXFS_ROOT_INO, b"sub2", sub, L.VEXFS_FT_DIR)
    assert_detected(img, "dir.multiple_parents", [f"second link to directory inode {sub}"])
    assert_repaired(img)


# -- link counts and connectivity -----------------------------------------------------------------


def test_link_count_wrong(img):
    ino = lookup(img, "/hard")
    edit_inode(img, ino, i_links_count=1)
    assert_detected(img, "inode.links", [f"(inode {ino}): link count is 1, should be 2"])
    assert_repaired(img, "p")


def test_directory_link_count_wrong(img):
    ino = lookup(img, "/docs")
    edit_inode(img, ino, i_links_count=7)
    assert_detected(img, "inode.links", ["directory /docs", "link count is 7, should be 3"])
    assert_repaired(img, "p")


def test_orphan_file_goes_to_lost_found(img, golden):
    ino = golden[1]["a"]
    with ImageBuilder.open(img) as b:
        b.remove_entry(lookup(img, "/docs"), b"a.txt")
        b.remove_entry(L.VEXFS_ROOT_INO, b"hard")
    assert_detected(img, "orphan.unreferenced", [f"inode {ino}", "lost+found"])
    rc, out = fsck(img, "p")
    assert rc == 4
    assert_repaired(img)
    with Image(img) as im:
        assert im.read_file(f"/lost+found/#{ino}") == b"hello\n"
        assert im.iget(ino).i_links_count == 1


def test_deleted_inode_still_in_use_is_freed(img):
    ino = lookup(img, "/docs/b.bin")
    with ImageBuilder.open(img) as b:
        b.remove_entry(lookup(img, "/docs"), b"b.bin")
    edit_inode(img, ino, i_links_count=0)
    assert_detected(img, "orphan.deleted", [f"inode {ino}", "link count 0"])
    assert_repaired(img, "p")
    with Image(img) as im:
        assert not im.inode_in_use(ino)


def test_disconnected_directory(img):
    docs = lookup(img, "/docs")
    with ImageBuilder.open(img) as b:
        b.remove_entry(L.VEXFS_ROOT_INO, b"docs")
    assert_detected(img, "orphan.directory", [f"directory inode {docs} is not reachable"])
    assert_repaired(img)
    with Image(img) as im:
        assert im.read_file(f"/lost+found/#{docs}/sub/deep.txt") == b"deep\n" * 100
        assert im.lookup(f"/lost+found/#{docs}/..") == im.lookup("/lost+found")


# -- collections -------------------------------------------------------------------------------------


def _edit_collection_header(img: Path, reseal: bool = True, **fields) -> None:
    start = first_extent_start(img, "/vecs")
    h = L.CollectionHeader.unpack(read(img, start * BS, 72))
    for k, v in fields.items():
        setattr(h, k, v)
    if reseal:
        L.seal(h)
    patch(img, start * BS, bytes(h))


@pytest.mark.parametrize("fields,words", [
    ({"c_magic": 0}, ["bad collection magic"]),
    ({"c_version": 9}, ["unsupported collection version 9"]),
    ({"c_dim": 0}, ["dimension 0 is outside 1..4096"]),
    ({"c_dim": 5000}, ["dimension 5000"]),
    ({"c_metric": 7}, ["unknown metric 7"]),
    ({"c_record_size": 40}, ["record size 40 is not 48 for dimension 5"]),
    ({"c_flags": 2}, ["unknown c_flags 0x2"]),
])
def test_collection_header_fields(img, fields, words):
    _edit_collection_header(img, **fields)
    assert_detected(img, "collection.header", words)
    assert_not_repairable(img)


def test_collection_index_flag_without_index(img):
    """VEXFS_COLL_FL_INDEX with no index region: the index header is missing
    (the kernel says EUCLEAN), and the superblock lacks the ANN_INDEX feature."""
    _edit_collection_header(img, c_flags=1)
    assert_detected(img, "collection.index_header", ["bad index magic 0x00000000"])
    assert_detected(img, "collection.index_feature", [])
    assert_not_repairable(img)


def test_collection_count_vs_size(img):
    _edit_collection_header(img, c_count=11)
    assert_detected(img, "collection.size", ["4096 + 11 records x 48 bytes = 4624"])
    assert_repaired(img)
    with Image(img) as im:
        assert im.collection(lookup(img, "/vecs")).count == 11


def test_collection_size_below_header(img):
    edit_inode(img, lookup(img, "/vecs"), i_size=100)
    assert_detected(img, "collection.size", ["collection size 100 is not"])
    assert_repaired(img)


def test_collection_count_beyond_mapped_blocks(img):
    _edit_collection_header(img, c_count=500)
    assert_detected(img, "collection.size", ["4096 + 500 records"])
    assert_not_repairable(img)


def test_collection_header_checksum(img):
    _edit_collection_header(img, reseal=False, c_reserved2=5)
    assert_detected(img, "collection.checksum", ["collection header checksum mismatch"])
    assert_repaired(img, "p")


def test_collection_duplicate_ids(img):
    start = first_extent_start(img, "/vecs")
    rs = L.collection_record_size(5)
    patch(img, start * BS + 4096 + 3 * rs, (100).to_bytes(8, "little"))
    assert_detected(img, "collection.duplicate_id", ["1 duplicate record ids (100)"])


def test_collection_record_flags(img):
    start = first_extent_start(img, "/vecs")
    rs = L.collection_record_size(5)
    patch(img, start * BS + 4096 + 2 * rs + 8, (4).to_bytes(4, "little"))
    assert_detected(img, "collection.record_flags", ["record 2, id 102, flags 0x4"])


def test_collection_feature_missing(img):
    edit_sb(img, s_feature_ro_compat=0)
    assert_detected(img, "collection.feature", ["lacks the COLLECTIONS feature"])
    assert_repaired(img, "p")


# -- random damage ---------------------------------------------------------------------------


def _metadata_byte_ranges(path: Path) -> list[tuple[int, int]]:
    """Byte ranges covered by a checksum: superblock, bitmaps, in-use inodes,
    directory and extent blocks."""
    ranges = [(0, 256)]
    with Image(path) as im:
        sb = im.sb
        for start, n in ((sb.s_ibitmap_start, sb.s_ibitmap_blocks),
                         (sb.s_bbitmap_start, sb.s_bbitmap_blocks)):
            ranges.append((start * BS, (start + n) * BS))
        for p, ino, inode in im.walk("/"):
            blk, off = im.inode_location(ino)
            ranges.append((blk * BS + off, blk * BS + off + 256))
            em = im.extents(ino, inode)
            for b in em.chain:
                ranges.append((b * BS, (b + 1) * BS))
            if stat.S_ISDIR(inode.i_mode):
                for _l, pb in im.dir_blocks(ino, inode):
                    ranges.append((pb * BS, (pb + 1) * BS))
    return ranges


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_metadata_bit_flips_are_detected(golden, tmp_path_factory, data):
    path = tmp_path_factory.mktemp("flip") / "f.img"
    shutil.copyfile(golden[0], path)
    ranges = _metadata_byte_ranges(path)
    nflips = data.draw(st.integers(1, 3))
    flips: set[tuple[int, int]] = set()
    for _ in range(nflips):
        lo, hi = data.draw(st.sampled_from(ranges))
        off = data.draw(st.integers(lo, hi - 1))
        flips ^= {(off, data.draw(st.integers(0, 7)))}
    assume(flips)                      # two flips of one bit cancel out
    for off, bit in flips:
        b = read(path, off, 1)[0] ^ (1 << bit)
        patch(path, off, bytes([b]))
    rc, out = fsck(path, "n")
    assert rc in (4, 8), out           # every flip hits a checksummed structure
    rc_y, out_y = fsck(path, "y")
    assert rc_y in (1, 4, 8), out_y
    rc2, out2 = fsck(path, "n")
    if rc_y == 1:
        assert rc2 == 0, f"-y said corrected but a re-check fails:\n{out_y}\n---\n{out2}"
    else:
        assert rc2 == rc_y or rc2 in (4, 8), out2


# -- command line ---------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vexfs.fsck", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_exit_codes(img, tmp_path):
    assert _cli("-n", str(img)).returncode == 0
    assert _cli("-n", "-y", str(img)).returncode == 16
    assert _cli("--bogus", str(img)).returncode == 16
    assert _cli("-n", str(tmp_path / "missing.img")).returncode == 8
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"\0" * 65536)
    res = _cli("-n", str(junk))
    assert res.returncode == 8 and "not a VexFS filesystem" in res.stdout
    edit_sb(img, s_free_inodes=3)
    assert _cli("-n", str(img)).returncode == 4
    res = _cli("-y", str(img))
    assert res.returncode == 1 and "FILE SYSTEM WAS MODIFIED" in res.stdout
    assert _cli("-n", str(img)).returncode == 0


def test_bad_checksum_on_a_collections_extent_block(tmp_path):
    """A collection whose extent chain has a stale checksum is still checked
    (records read through the validated extents) and the checksum repaired."""
    p = tmp_path / "c.img"
    rng = np.random.default_rng(4)
    with ImageBuilder.create(p, 8 * MiB, max_extent_blocks=1) as b:
        b.create_collection("/c", np.arange(2000), rng.random((2000, 8), dtype=np.float32))
    with Image(p) as im:
        ino = im.lookup("/c")
        chain = im.extents(ino).chain
    assert chain
    patch(p, chain[0] * BS + 24, b"\x01")          # eb_reserved, no reseal
    assert_detected(p, "inode.extent_block_checksum", ["checksum mismatch"])
    rc, out = fsck(p, "n")
    assert "duplicate" not in out
    assert_repaired(p, "p")


_EDGE = [0, 1, 2, 3, 7, 16, 255, 4095, 4096, 4097, 2047, 2048, 2**16 - 1, 2**31,
         2**32 - 1, 2**63, 2**64 - 1]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_resealed_field_mutations_never_crash_and_y_converges(golden, tmp_path_factory, data):
    """Fields set to edge values with the checksum recomputed, so only the
    semantic checks can catch them: fsck never raises, -y either repairs to a
    clean re-check or says what it left, and a second -y has nothing to do."""
    path = tmp_path_factory.mktemp("mut") / "m.img"
    shutil.copyfile(golden[0], path)
    with Image(path) as im:
        inos = [ino for _p, ino, _i in im.walk("/")]
        where = {ino: im.inode_location(ino) for ino in inos}

    def edit_inode(path, ino, fn=None, **fields):      # the superblock may be garbage now
        blk, off = where[ino]
        inode = L.Inode.unpack(read(path, blk * BS + off, 256))
        for k, v in fields.items():
            setattr(inode, k, v)
        if fn:
            fn(inode)
        patch(path, blk * BS + off, bytes(L.seal(inode)))

    for _ in range(data.draw(st.integers(1, 3))):
        target = data.draw(st.sampled_from(["sb", "inode", "extent"]))
        value = data.draw(st.sampled_from(_EDGE) | st.integers(0, 2**64 - 1))
        if target == "sb":
            name, typ = data.draw(st.sampled_from(
                [f for f in L.SuperBlock._fields_
                 if f[0] not in ("s_checksum", "s_uuid", "s_label", "s_reserved")]))
            edit_sb(path, **{name: value % (1 << (8 * ctypes.sizeof(typ)))})
        else:
            ino = data.draw(st.sampled_from(inos))
            if target == "inode":
                name, typ = data.draw(st.sampled_from(
                    [f for f in L.Inode._fields_ if f[0] not in ("i_checksum", "i_extents")]))
                v = value % (1 << (8 * ctypes.sizeof(typ)))
                if typ is ctypes.c_int64:
                    v -= 2**63
                edit_inode(path, ino, **{name: v})
            else:
                k = data.draw(st.integers(0, 5))
                name, typ = data.draw(st.sampled_from(L.Extent._fields_))
                v = value % (1 << (8 * ctypes.sizeof(typ)))
                edit_inode(path, ino, fn=lambda i: setattr(i.i_extents[k], name, v))
    rc1, out1 = fsck(path, "n")
    rc2, out2 = fsck(path, "y")
    rc3, out3 = fsck(path, "n")
    rc4, out4 = fsck(path, "y")
    assert rc1 in (0, 4, 8) and rc2 in (0, 1, 4, 8), out2
    if rc2 == 1:
        assert rc3 == 0, f"{out2}\n---\n{out3}"
    if rc2 == 0:
        assert rc1 == 0
    assert rc4 != 1, f"second -y still repaired something:\n{out4}"


# -- issue 13 defect 2: a rebuilt directory block and one lost+found --------------------


def _dir_names(im: Image, path: str) -> list[str]:
    return [e.name for e in im.list_dir(im.lookup(path))]


def test_garbage_over_root_block_rebuilds_dots_and_one_lost_found(tmp_path):
    import numpy as np
    p = tmp_path / "root64.img"
    vecs = np.arange(24, dtype=np.float32).reshape(6, 4)
    with ImageBuilder.create(p, 8 * MiB) as b:
        b.mkdir("/lost+found", 0o700)
        b.write_file("/a", b"alpha" * 100)
        b.mkdir("/docs")
        b.write_file("/docs/readme", b"read me\n")
        b.mkdir("/vecs")
        b.create_collection("/vecs/c", np.arange(6), vecs)
    root_blk = dir_block(p, "/")
    patch(p, root_blk * BS, bytes(np.random.default_rng(7).integers(0, 256, 64,
                                                                    dtype=np.uint8)))
    rc, out = fsck(p, "y")
    assert rc == 1, out
    rc2, out2 = fsck(p, "n")
    assert rc2 == 0, out + "\n---\n" + out2
    with Image(p) as im:
        recs, problems = parse_dir_block(im.read_block(root_blk))
        assert not problems
        assert (recs[0].name, recs[0].inode) == (b".", 1)
        assert (recs[1].name, recs[1].inode) == (b"..", 1)
        root_names = _dir_names(im, "/")
        assert root_names.count("lost+found") == 1
        lf_names = [n for n in _dir_names(im, "/lost+found") if n not in (".", "..")]
        # the old lost+found is linked back, not filed inside a new one
        assert "is the old /lost+found" in out, out
        for n in lf_names:
            ino = im.lookup(f"/lost+found/{n}")
            inode = im.iget(ino)
            if stat.S_ISDIR(inode.i_mode):
                assert _dir_names(im, f"/lost+found/{n}") != [".", ".."], \
                    f"an empty stray directory {n} in lost+found"
        # every file and the collection survive, where the output says
        found = {}
        for path, ino, inode in im.walk("/"):
            if stat.S_ISREG(inode.i_mode):
                found[path.rsplit("/", 1)[-1] if "/#" in path else path] = (path, ino)
        data = {path: im.read_file(path) for path, _ in found.values()}
        assert b"alpha" * 100 in data.values()
        assert b"read me\n" in data.values()
        cpath = next(path for path, ino in found.values()
                     if im.iget(ino).i_flags & L.VEXFS_INODE_FL_COLLECTION)
        c = im.collection(im.lookup(cpath))
        assert (c.vectors == vecs).all()
        assert cpath.startswith("/lost+found/#")
        assert f"inode {cpath.split('#')[1].split('/')[0]}" in out


# -- issue 13 defect 6 (fsck part): -V, -v as the passes run, Ctrl-C -> 32 ----------------


def test_version_flag(capsys):
    from vexfs.fsck import main
    assert main(["-V"]) == 0
    assert "fsck.vexfs (vexfs)" in capsys.readouterr().out


def test_verbose_prints_each_pass_as_it_runs(img):
    """A check that stops in pass 2 (root inode cleared) shows the headers of
    passes 1 and 2 only: they are printed when each pass starts."""
    rc, out = fsck(img, "n")
    assert rc == 0
    buf = io.StringIO()
    assert run_fsck(str(img), "n", verbose=True, out=buf) == 0
    heads = [ln.split(":")[0] for ln in buf.getvalue().splitlines() if ln.startswith("Pass ")]
    with Image(img) as im:
        journal = bool(im.sb.s_feature_compat & L.VEXFS_FEATURE_COMPAT_HAS_JOURNAL)
    assert heads == [f"Pass {n}" for n in range(0 if journal else 1, 8)]
    edit_inode(img, 1, i_mode=0)
    buf = io.StringIO()
    assert run_fsck(str(img), "n", verbose=True, out=buf) == 4
    heads = [ln.split(":")[0] for ln in buf.getvalue().splitlines() if ln.startswith("Pass ")]
    assert heads == ["Pass 0"] * journal + ["Pass 1", "Pass 2"]


def test_ctrl_c_exits_32(img, monkeypatch, capsys):
    from vexfs import fsck as fsck_pkg
    from vexfs.fsck import checker

    def interrupted(self):
        raise KeyboardInterrupt
    monkeypatch.setattr(checker.Checker, "check", interrupted)
    assert fsck_pkg.main(["-n", str(img)]) == 32
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err


def test_problem_table_is_complete_and_documented():
    """Every code the checker can raise is a row; docs/format.md holds the
    generated table (regenerate: python -m vexfs.fsck.problems --update docs/format.md)."""
    import re
    from vexfs.fsck.problems import PROBLEMS, render_doc
    src = "".join((Path(__file__).parents[2] / "vexfs" / "fsck" / f).read_text()
                  for f in ("checker.py", "cli.py"))
    used = set(re.findall(r'(?:add|problem|_inode_problem\(info,)\(?\s*"([a-z_]+\.[a-z_]+)"',
                          src))
    used |= {f"bitmap.{w}_marked_{s}" for w in ("block", "inode") for s in ("free", "used")}
    used |= {"sb.free_blocks", "sb.free_inodes"}
    assert used <= set(PROBLEMS), used - set(PROBLEMS)
    doc = (Path(__file__).parents[2] / "docs" / "format.md").read_text()
    assert render_doc(doc) == doc, "docs/format.md problem table is stale: run " \
        "python -m vexfs.fsck.problems --update docs/format.md"
