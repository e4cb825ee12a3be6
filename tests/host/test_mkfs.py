"""mkfs.vexfs: geometry, what it writes, safety checks, speed, command line."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from vexfs import layout as L
from vexfs.fsck import run_fsck
from vexfs.image import BS, Device, Image
from vexfs.mkfs import BYTES_PER_INODE, Geometry, MkfsError, format_device, main, mkfs

MiB = 1 << 20


def sparse_file(path: Path, size: int, fill: bytes | None = None) -> Path:
    with open(path, "wb") as f:
        if fill:
            f.write(fill * (size // len(fill)))
        f.truncate(size)
    return path


def fsck_rc(path: Path) -> tuple[int, str]:
    out = io.StringIO()
    return run_fsck(str(path), "n", out=out), out.getvalue()


# -- geometry ------------------------------------------------------------------------------


def test_default_geometry_100mb():
    g = Geometry.compute(100 * MiB // BS)
    assert g.blocks == 25600
    assert g.inodes == 100 * MiB // BYTES_PER_INODE == 6400
    assert (g.ibitmap_start, g.ibitmap_blocks) == (1, 1)
    assert (g.bbitmap_start, g.bbitmap_blocks) == (2, 1)
    assert (g.itable_start, g.itable_blocks) == (3, 400)
    assert g.data_start == 403


def test_geometry_multiple_bitmap_blocks():
    blocks = 40000            # > 32640 bits: two block-bitmap blocks
    g = Geometry.compute(blocks, inodes=70000)
    assert g.bbitmap_blocks == 2 and g.ibitmap_blocks == 3
    assert g.inodes == 70000 and g.itable_blocks == 4375
    assert g.data_start == 1 + 3 + 2 + 4375


def test_inodes_round_up_to_whole_table_block():
    assert Geometry.compute(1000, inodes=17).inodes == 32
    assert Geometry.compute(64).inodes == 16          # minimum


def test_too_small_and_too_many_inodes():
    with pytest.raises(MkfsError, match="too small"):
        Geometry.compute(63)
    with pytest.raises(MkfsError, match="inode-table blocks"):
        Geometry.compute(64, inodes=5000)
    with pytest.raises(MkfsError, match="too many inodes"):
        Geometry.compute(2**40, inodes=2**32)


# -- what is written -------------------------------------------------------------------------


def test_fresh_image_contents(tmp_path):
    p = sparse_file(tmp_path / "a.img", 100 * MiB)
    u = uuid.uuid4()
    res = mkfs(str(p), label="data", uuid=str(u))
    with Image(p) as im:
        sb = im.sb
        assert sb.s_magic == L.VEXFS_MAGIC and sb.s_version == 1
        assert sb.label == "data" and bytes(sb.s_uuid) == u.bytes
        assert sb.s_state == L.VEXFS_STATE_CLEAN
        # 100 MiB: mke2fs's default 4 MiB journal after the inode table
        assert (sb.s_journal_start, sb.s_journal_blocks) == (403, 1024)
        assert sb.s_data_start == 403 + 1024 == res.geometry.data_start
        assert sb.s_free_blocks == 25600 - 1428 and sb.s_free_inodes == 6399
        assert sb.s_feature_incompat == L.VEXFS_FEATURE_INCOMPAT_EXTENTS
        assert sb.s_feature_compat == L.VEXFS_FEATURE_COMPAT_HAS_JOURNAL
        root = im.iget(1)
        assert root.i_mode == 0o40755 and root.i_links_count == 2 and root.i_size == BS
        assert [(e.name, e.ino) for e in im.list_dir(1)] == [(".", 1), ("..", 1)]
        assert im.block_in_use(res.geometry.data_start)
        assert not im.block_in_use(res.geometry.data_start + 1)
        assert im.inode_in_use(1) and not im.inode_in_use(2)
        # the rest of block 0 is zero
        assert im.dev.read_block(0)[256:] == bytes(BS - 256)
    assert fsck_rc(p)[0] == 0


def test_stale_data_is_wiped_from_inode_table(tmp_path):
    p = sparse_file(tmp_path / "junk.img", 8 * MiB, fill=b"\xa5" * 4096)
    mkfs(str(p), force=True)
    with Image(p) as im:
        sb = im.sb
        table = im.dev.read(sb.s_itable_start * BS, sb.s_itable_blocks * BS)
        # only inode 1 is non-zero
        assert table[256:] == bytes(len(table) - 256)
    rc, out = fsck_rc(p)
    assert rc == 0, out


def test_only_metadata_is_written(tmp_path):
    """Data blocks past the first MiB keep their old content (mkfs does not
    touch them) and the format takes well under a second for 500 MB."""
    p = sparse_file(tmp_path / "big.img", 500 * MiB)
    marker = b"DATA-BLOCK-MARK!" * 256
    with open(p, "r+b") as f:
        f.seek(400 * MiB)
        f.write(marker)
    t0 = time.perf_counter()
    res = mkfs(str(p))
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0, f"mkfs of 500 MB took {elapsed:.3f} s"
    assert res.geometry.blocks == 128000
    with open(p, "rb") as f:
        f.seek(400 * MiB)
        assert f.read(len(marker)) == marker
    assert fsck_rc(p)[0] == 0


def test_last_partial_block_is_ignored(tmp_path):
    p = sparse_file(tmp_path / "odd.img", 4 * MiB + 1000)
    res = mkfs(str(p))
    assert res.geometry.blocks == 1024
    assert fsck_rc(p)[0] == 0


# -- safety ----------------------------------------------------------------------------------


def test_refuses_existing_vexfs(tmp_path):
    p = sparse_file(tmp_path / "v.img", 4 * MiB)
    mkfs(str(p))
    with pytest.raises(MkfsError, match="contains a vexfs signature; use -f"):
        mkfs(str(p))
    mkfs(str(p), force=True)


@pytest.mark.skipif(shutil.which("mkfs.ext4") is None, reason="needs e2fsprogs")
def test_refuses_ext4(tmp_path):
    p = sparse_file(tmp_path / "e.img", 16 * MiB)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(p)], check=True)
    with pytest.raises(MkfsError, match="ext"):
        mkfs(str(p))
    mkfs(str(p), force=True)
    # the old signature is gone: blkid no longer sees ext4
    res = subprocess.run(["blkid", "-p", "-o", "export", str(p)], capture_output=True, text=True)
    assert "TYPE=ext4" not in res.stdout
    assert fsck_rc(p)[0] == 0


@pytest.mark.parametrize("name,offset,magic", [
    ("xfs", 0, b"XFSB"),
    ("btrfs", 65536 + 64, b"_BHRfS_M"),
    ("swap", 4086, b"SWAPSPACE2"),
    ("gpt", 512, b"EFI PART"),
    ("LUKS", 0, b"LUKS\xba\xbe"),
])
def test_refuses_other_signatures(tmp_path, name, offset, magic):
    p = sparse_file(tmp_path / "s.img", 4 * MiB)
    with open(p, "r+b") as f:
        f.seek(offset)
        f.write(magic)
    with pytest.raises(MkfsError, match=name):
        mkfs(str(p))
    mkfs(str(p), force=True)
    with open(p, "rb") as f:
        f.seek(offset)
        assert f.read(len(magic)) != magic


def test_gpt_backup_header_at_the_end_is_wiped(tmp_path):
    size = 4 * MiB + 512
    p = sparse_file(tmp_path / "gpt.img", size)
    with open(p, "r+b") as f:
        f.seek(512)
        f.write(b"EFI PART")
        f.seek(size - 512)
        f.write(b"EFI PART")
    mkfs(str(p), force=True)
    with open(p, "rb") as f:
        f.seek(size - 512)
        assert f.read(512) == bytes(512)
    if shutil.which("blkid"):
        res = subprocess.run(["blkid", "-p", "-o", "export", str(p)], capture_output=True,
                             text=True)
        assert "PTTYPE" not in res.stdout
    mkfs(str(p), force=True)          # and the next mkfs only finds VexFS
    with pytest.raises(MkfsError, match=r"contains a vexfs signature; use -f"):
        mkfs(str(p))


def test_refuses_dos_partition_table(tmp_path):
    p = sparse_file(tmp_path / "mbr.img", 4 * MiB)
    mbr = bytearray(512)
    mbr[446 + 4] = 0x83          # partition 1: type Linux
    mbr[510:512] = b"\x55\xaa"
    with open(p, "r+b") as f:
        f.write(mbr)
    with pytest.raises(MkfsError, match="partition table"):
        mkfs(str(p))


def _losetup(path: Path) -> str | None:
    res = subprocess.run(["losetup", "-f", "--show", str(path)], capture_output=True, text=True)
    return res.stdout.strip() if res.returncode == 0 else None


def test_block_device_and_mounted_refusal(tmp_path):
    """On a loop device: format with pwrite/BLKZEROOUT, then refuse while mounted."""
    if os.geteuid() != 0 or shutil.which("losetup") is None:
        pytest.skip("needs root and losetup (runs in the VM test otherwise)")
    img = sparse_file(tmp_path / "loop.img", 32 * MiB, fill=b"\xff" * 4096)
    dev = _losetup(img)
    if dev is None:
        pytest.skip("no loop device available on this host")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        res = mkfs(dev, force=True)
        assert res.geometry.blocks == 8192
        rc, out = fsck_rc(Path(dev))
        assert rc == 0, out
        subprocess.run(["mkfs.ext4", "-q", "-F", dev], check=True)
        if subprocess.run(["mount", dev, str(mnt)], capture_output=True).returncode != 0:
            pytest.skip("cannot mount ext4 here")
        try:
            with pytest.raises(MkfsError, match="is mounted on"):
                mkfs(dev, force=True)
            with pytest.raises(MkfsError, match="is mounted on"):
                mkfs(str(img), force=True)      # the backing file of a mounted loop
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


def test_format_device_refuses_long_label(tmp_path):
    p = sparse_file(tmp_path / "l.img", 4 * MiB)
    with Device(p, writable=True) as dev, pytest.raises(MkfsError, match="label"):
        format_device(dev, label="x" * 65)


# -- command line -----------------------------------------------------------------------------


def test_cli_creates_file_with_size_and_prints_geometry(tmp_path, capsys):
    p = tmp_path / "new.img"
    assert main(["-L", "lab", "-U", "clear", "-N", "100", str(p), "20M"]) == 0
    out = capsys.readouterr().out
    assert "Creating filesystem with 5120 4k blocks" in out and "112 inodes" in out
    assert "Inode table:   blocks 3-9" in out
    with Image(p) as im:
        assert im.sb.label == "lab" and bytes(im.sb.s_uuid) == bytes(16)
        assert im.sb.s_inodes_count == 112


def test_cli_errors_exit_1(tmp_path, capsys):
    assert main([]) == 1
    assert main([str(tmp_path / "missing.img")]) == 1
    assert "no such file" in capsys.readouterr().err
    p = sparse_file(tmp_path / "x.img", 4 * MiB)
    assert main(["-U", "not-a-uuid", str(p)]) == 1
    assert "invalid UUID" in capsys.readouterr().err
    assert main(["-L", "y" * 80, str(p)]) == 1
    assert main([str(tmp_path / "tiny.img"), "100K"]) == 1
    assert main(["--bogus", str(p)]) == 1
    assert main(["-q", str(p)]) == 0
    assert capsys.readouterr().out == ""
    assert main([str(p)]) == 1                     # now it holds VexFS
    assert "use -f" in capsys.readouterr().err
    assert main(["-f", "-q", str(p)]) == 0


def test_cli_dry_run_writes_nothing(tmp_path, capsys):
    p = sparse_file(tmp_path / "d.img", 4 * MiB)
    assert main(["-n", str(p)]) == 0
    assert "1024 4k blocks" in capsys.readouterr().out
    assert p.read_bytes() == bytes(4 * MiB)


def test_console_script_runs(tmp_path):
    exe = Path(sys.executable).with_name("mkfs.vexfs")
    if not exe.exists():
        pytest.skip("console script not installed in this environment")
    p = sparse_file(tmp_path / "c.img", 8 * MiB)
    t0 = time.perf_counter()
    res = subprocess.run([str(exe), str(p)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    assert res.returncode == 0, res.stderr
    assert "Writing superblock and filesystem metadata: done" in res.stdout
    assert wall < 5


def test_multi_block_bitmaps_end_to_end(tmp_path):
    """Bitmaps of several blocks: items past 32640 land in the right block,
    and fsck names the right block/inode numbers."""
    from vexfs.imagebuild import ImageBuilder
    p = sparse_file(tmp_path / "multi.img", 200 * MiB)
    mkfs(str(p), inodes=40000)
    with Image(p) as im:
        sb = im.sb
        assert (sb.s_ibitmap_blocks, sb.s_bbitmap_blocks) == (2, 2)
        assert im.inode_in_use(1) and not im.inode_in_use(40000)
    with ImageBuilder.open(p) as b:
        b._cursor = 32600                       # allocate across the bitmap-block boundary
        ino = b.write_file("/straddle", b"s" * 100 * BS)
    with Image(p) as im:
        e = im.extents(ino).extents[0]
        assert e.start < 32640 < e.end
        assert im.block_in_use(32640) and im.block_in_use(e.end - 1)
        assert not im.block_in_use(e.end)
        bb2 = im.sb.s_bbitmap_start + 1
    assert fsck_rc(p)[0] == 0
    # clear the bit of block 32650 in the second block-bitmap block
    with open(p, "r+b") as f:
        f.seek(bb2 * BS)
        block = bytearray(f.read(BS))
        block[16 + 10 // 8] &= ~(1 << (10 % 8)) & 0xFF
        L.seal_block(block, "bitmap")
        f.seek(bb2 * BS)
        f.write(block)
    rc, out = fsck_rc(p)
    assert rc == 4 and "1 blocks in use are marked free (32650)" in out, out


# -- issue 13 defect 3: validate first, never change what is refused -------------------------


def _snapshot(p: Path) -> tuple[int, bytes]:
    return p.stat().st_size, p.read_bytes()


def test_refused_signature_leaves_the_file_untouched_even_with_size(tmp_path, capsys):
    """`mkfs.vexfs ext4.img 64M` used to grow the 32 MiB file before refusing."""
    p = sparse_file(tmp_path / "ext.img", 32 * MiB)
    with open(p, "r+b") as f:
        f.seek(1080)
        f.write(b"\x53\xef")
    before = _snapshot(p)
    assert main([str(p), "64M"]) == 1
    assert "use -f" in capsys.readouterr().err
    assert _snapshot(p) == before


@pytest.mark.parametrize("bad", [["-L", "x" * 80], ["-U", "nonsense"], ["-N", "0"],
                                 ["-N", "999999999"]])
def test_bad_options_leave_no_new_file(tmp_path, bad, capsys):
    p = tmp_path / "new.img"
    assert main([*bad, str(p), "16M"]) == 1
    assert not p.exists()
    assert capsys.readouterr().err.startswith("mkfs.vexfs: ")


@pytest.mark.parametrize("bad", [["-L", "x" * 80], ["-U", "nonsense"], ["-N", "999999999"]])
def test_dry_run_refuses_what_a_real_run_refuses(tmp_path, bad):
    p = sparse_file(tmp_path / "d.img", 4 * MiB)
    assert main(["-n", *bad, str(p)]) == 1
    assert main([*bad, str(p)]) == 1
    with open(p, "r+b") as f:
        f.seek(1080)
        f.write(b"\x53\xef")
    assert main(["-n", str(p)]) == 1            # a signature: -n refuses too
    assert main(["-n", "-f", str(p)]) == 0


def test_dry_run_prints_the_same_geometry(tmp_path, capsys):
    p = sparse_file(tmp_path / "g.img", 12 * MiB)
    assert main(["-n", "-U", "clear", "-N", "200", str(p)]) == 0
    dry = capsys.readouterr().out
    assert main(["-U", "clear", "-N", "200", str(p)]) == 0
    real = capsys.readouterr().out
    geo = [ln for ln in dry.splitlines() if ln.startswith(("Creating", "Filesystem", "Super",
                                                          "Inode", "Block", "Data"))]
    assert geo and all(ln in real.splitlines() for ln in geo)


@pytest.mark.parametrize("start,size,want", [(None, "8M", 8 * MiB), (4 * MiB, "8M", 8 * MiB),
                                             (16 * MiB, "8M", 8 * MiB)])
def test_size_sets_the_file_size(tmp_path, start, size, want):
    p = tmp_path / "s.img"
    if start is not None:
        sparse_file(p, start)
    assert main(["-q", "-f", str(p), size]) == 0
    assert p.stat().st_size == want
    with Image(p) as im:
        assert im.sb.s_blocks_count == want // BS
    assert fsck_rc(p)[0] == 0


def test_overwrite_warning_is_visible(tmp_path, capsys):
    p = sparse_file(tmp_path / "w.img", 4 * MiB)
    mkfs(str(p))
    assert main(["-f", "-q", str(p)]) == 0
    err = capsys.readouterr().err
    assert "warning: overwriting existing signatures: vexfs" in err


def test_version(capsys):
    assert main(["-V"]) == 0
    assert "mkfs.vexfs (vexfs)" in capsys.readouterr().out


# -- mkfs -d: populate from a directory tree ---------------------------------------------------


def test_populate_from_directory(tmp_path, capsys):
    import numpy as np
    src = tmp_path / "tree"
    (src / "sub" / "deep").mkdir(parents=True)
    (src / "hello.txt").write_bytes(b"hello\n")
    big = bytes(range(256)) * 100
    (src / "sub" / "big.bin").write_bytes(big)
    with open(src / "sparse.bin", "wb") as f:
        f.seek(3 * BS)
        f.write(b"end")
    os.symlink("hello.txt", src / "link")
    os.link(src / "hello.txt", src / "sub" / "hard")
    os.chmod(src / "sub" / "big.bin", 0o600)
    os.utime(src / "hello.txt", ns=(1_600_000_000_123_456_789, 1_600_000_001_987_654_321))
    vecs = np.arange(30, dtype=np.float32).reshape(10, 3)
    np.save(src / "sub" / "vecs.npy", vecs)
    p = tmp_path / "pop.img"
    assert main(["-d", str(src), "--npy-collections", str(p), "8M"]) == 0
    assert "Copied" in capsys.readouterr().out
    assert fsck_rc(p)[0] == 0
    with Image(p) as im:
        assert im.read_file("/hello.txt") == b"hello\n"
        assert im.read_file("/sub/big.bin") == big
        assert im.read_file("/sparse.bin") == bytes(3 * BS) + b"end"
        sp = im.iget(im.lookup("/sparse.bin"))
        assert sp.i_blocks == 1                        # the hole stayed a hole
        assert im.readlink(im.lookup("/link", follow=False)) == "hello.txt"
        h = im.lookup("/hello.txt")
        assert im.lookup("/sub/hard") == h and im.iget(h).i_links_count == 2
        assert im.iget(im.lookup("/sub/big.bin")).i_mode & 0o777 == 0o600
        ih = im.iget(h)
        assert (ih.i_mtime, ih.i_mtime_nsec) == (1_600_000_001, 987_654_321)
        c = im.collection(im.lookup("/sub/vecs.npy"))
        assert c.dim == 3 and (c.vectors == vecs).all() and list(c.ids) == list(range(10))
        assert stat.S_ISDIR(im.iget(im.lookup("/sub/deep")).i_mode)


def test_populate_refuses_a_tree_that_does_not_fit_before_writing(tmp_path, capsys):
    src = tmp_path / "tree"
    src.mkdir()
    (src / "huge").write_bytes(b"x" * (6 * MiB))
    p = tmp_path / "small.img"
    assert main(["-d", str(src), str(p), "4M"]) == 1
    assert "needs about" in capsys.readouterr().err
    assert not p.exists()
    assert main(["-d", str(tmp_path / "missing"), str(p), "4M"]) == 1
    assert not p.exists()
# -- the journal -----------------------------------------------------------------------------


def test_default_journal_size_scales_like_mke2fs():
    from vexfs.fs.journal import default_journal_blocks
    assert default_journal_blocks(2047) == 0                 # < 8 MiB: none
    assert default_journal_blocks(2048) == 1024              # 8 MiB: 4 MiB
    assert default_journal_blocks(256 * MiB // BS) == 4096    # 256 MiB: 16 MiB
    assert default_journal_blocks(1536 * MiB // BS) == 8192   # 1.5 GiB: 32 MiB
    assert default_journal_blocks(8 * 1024 * MiB // BS) == 16384
    assert default_journal_blocks(1 << 40) == 262144         # capped at 1 GiB


def test_journal_superblock_is_valid_jbd2_v2(tmp_path):
    from vexfs.fs import journal as J
    p = sparse_file(tmp_path / "j.img", 64 * MiB)
    u = uuid.uuid4()
    mkfs(str(p), uuid=str(u))
    with Image(p) as im:
        sb = im.sb
        geom = J.JournalGeometry.from_superblock(sb)
        assert geom is not None and geom.blocks == 1024
        raw = im.dev.read_block(geom.start_block)
        jsb = J.read_journal_superblock(raw)
        assert jsb.s_header.h_magic == J.JBD2_MAGIC_NUMBER
        assert jsb.s_header.h_blocktype == J.JBD2_SUPERBLOCK_V2
        assert (jsb.s_blocksize, jsb.s_maxlen, jsb.s_first) == (BS, 1024, 1)
        assert jsb.s_start == 0 and jsb.s_sequence == 1 and jsb.s_nr_users == 1
        assert jsb.s_feature_incompat == J.VEXFS_JOURNAL_INCOMPAT
        assert jsb.s_checksum_type == J.JBD2_CRC32C_CHKSUM
        assert jsb.s_checksum == J.superblock_checksum(jsb) != 0
        assert bytes(jsb.s_uuid) == u.bytes
        # big endian on disk, as jbd2 reads it
        assert raw[:4] == bytes.fromhex("c03b3998")
        # the rest of the journal is zero
        assert im.dev.read_block(geom.start_block + 1, geom.blocks - 1) == \
            bytes((geom.blocks - 1) * BS)
        # the journal is metadata: in use in the block bitmap
        assert all(im.block_in_use(b) for b in (geom.start_block,
                                                geom.start_block + geom.blocks - 1))
    assert fsck_rc(p)[0] == 0


def test_journal_size_option_and_no_journal(tmp_path, capsys):
    p = sparse_file(tmp_path / "a.img", 64 * MiB)
    assert main(["-q", "-J", "size=8", str(p)]) == 0
    with Image(p) as im:
        assert im.sb.s_journal_blocks == 2048
    assert fsck_rc(p)[0] == 0
    assert main(["-q", "-f", "-O", "^has_journal", str(p)]) == 0
    with Image(p) as im:
        sb = im.sb
        assert sb.s_feature_compat == 0
        assert (sb.s_journal_start, sb.s_journal_blocks) == (0, 0)
        assert sb.s_data_start == 1 + 1 + 1 + 256
    assert fsck_rc(p)[0] == 0
    assert main(["-q", "-f", "-J", "size=2", str(p)]) == 1          # below jbd2's minimum
    assert main(["-q", "-f", "-J", "bogus", str(p)]) == 1
    assert main(["-q", "-f", "-J", "size=8", "-O", "^has_journal", str(p)]) == 1
    assert "below jbd2's minimum" in capsys.readouterr().err


def test_small_device_gets_no_journal(tmp_path):
    p = sparse_file(tmp_path / "s.img", 4 * MiB)
    mkfs(str(p))
    with Image(p) as im:
        assert im.sb.s_feature_compat == 0 and im.sb.s_journal_blocks == 0
    assert fsck_rc(p)[0] == 0


def test_superblock_journal_fields_are_checked(tmp_path):
    from vexfs.image import superblock_problems
    p = sparse_file(tmp_path / "c.img", 64 * MiB)
    mkfs(str(p))
    with Image(p) as im:
        sb = L.SuperBlock.from_buffer_copy(bytes(im.sb))
    assert superblock_problems(sb, 64 * MiB // BS) == []
    bad = L.SuperBlock.from_buffer_copy(bytes(sb))
    bad.s_journal_start = sb.s_itable_start          # overlaps the inode table
    assert any("overlaps" in m for m in superblock_problems(bad, None))
    bad = L.SuperBlock.from_buffer_copy(bytes(sb))
    bad.s_journal_blocks = 10
    assert any("jbd2 needs" in m for m in superblock_problems(bad, None))
    bad = L.SuperBlock.from_buffer_copy(bytes(sb))
    bad.s_feature_compat = 0
    assert any("without the HAS_JOURNAL" in m for m in superblock_problems(bad, None))


def test_mounted_in_another_mount_namespace_is_refused(tmp_path):
    """A loop device mounted only inside another mount namespace (a container,
    unshare -m) is invisible in our /proc/self/mountinfo; mkfs and fsck -y
    must still refuse it and its backing file (issue 13: any namespace)."""
    if os.geteuid() != 0 or not shutil.which("losetup") or not shutil.which("unshare") \
            or not shutil.which("mkfs.ext4"):
        pytest.skip("needs root, losetup, unshare and e2fsprogs")
    img = sparse_file(tmp_path / "ns.img", 16 * MiB)
    dev = _losetup(img)
    if dev is None:
        pytest.skip("no loop device available on this host")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    holder = None
    try:
        subprocess.run(["mkfs.ext4", "-q", "-F", dev], check=True)
        holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                   f"mount {dev} {mnt} && echo ready && exec sleep 120"],
                                  stdout=subprocess.PIPE, text=True)
        if holder.stdout.readline().strip() != "ready":
            pytest.skip("cannot mount ext4 in a new mount namespace here")
        with open("/proc/self/mountinfo") as f:
            assert str(mnt) not in f.read()          # invisible from here
        before = img.read_bytes()[:1 << 16]
        with pytest.raises(MkfsError, match="mount namespace"):
            mkfs(str(img), force=True)
        rc = run_fsck(str(img), "y", out=io.StringIO())
        assert rc == 8
        assert img.read_bytes()[:1 << 16] == before
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        subprocess.run(["losetup", "-d", dev], check=False)
