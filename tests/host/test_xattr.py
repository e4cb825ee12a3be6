"""Extended attribute blocks offline: the format library, mkfs.vexfs -d
copying xattrs and ACLs, the offline reader, and fsck.vexfs finding and
repairing each kind of damage (the kernel side is tests/vm/test_posix.py)."""

from __future__ import annotations

import io
import os
import struct
import subprocess
from pathlib import Path

import pytest

from vexfs import layout as L
from vexfs.fs.filesystem import Image
from vexfs.fs.xattr import Xattr, acl_problem, build_xattr_block, parse_xattr_block, \
    xattr_block_of
from vexfs.fsck import run_fsck

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
#: user::rw- user:1234:rw- group::r-- mask::rw- other::r-- (Linux xattr form)
ACL = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, p, i) for t, p, i in (
    (1, 6, 0xFFFFFFFF), (2, 6, 1234), (4, 4, 0xFFFFFFFF), (16, 6, 0xFFFFFFFF),
    (32, 4, 0xFFFFFFFF)))


def test_block_roundtrip_and_limits() -> None:
    xs = [Xattr(L.VEXFS_XATTR_INDEX_USER, b"color", b"blue"),
          Xattr(L.VEXFS_XATTR_INDEX_ACL_ACCESS, b"", ACL),
          Xattr(L.VEXFS_XATTR_INDEX_SECURITY, b"selinux", b"system_u:object_r:t:s0\0")]
    block = build_xattr_block(xs, 7)
    got = parse_xattr_block(block, 7)
    assert got.entries == xs and not got.problems and not got.bad_checksum
    assert [x.full_name for x in got.entries] == ["user.color", "system.posix_acl_access",
                                                   "security.selinux"]
    assert parse_xattr_block(block, 8).problems == ["owned by inode 7"]
    # exactly the documented space: 4064 bytes of entries fit, one more does not
    name = b"n" * 10
    fits = L.VEXFS_XATTR_SPACE - L.VEXFS_XATTR_ENTRY_HEADER - len(name)
    build_xattr_block([Xattr(1, name, b"v" * fits)], 1)
    with pytest.raises(ValueError):
        build_xattr_block([Xattr(1, name, b"v" * (fits + 1))], 1)
    assert acl_problem(ACL) is None
    assert "mask" in (acl_problem(ACL[:4] + ACL[4:28] + ACL[36:]) or "")


def _tree_with_xattrs(root: Path) -> bool:
    (root / "sub").mkdir(parents=True)
    (root / "a").write_text("data")
    try:
        os.setxattr(root / "a", "user.k", b"hello")
        os.setxattr(root / "a", "system.posix_acl_access", ACL)
        os.setxattr(root / "sub", "trusted.t", b"\x01\x02")
    except OSError:
        return False
    return True


@pytest.fixture
def image(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    if not _tree_with_xattrs(tree):
        pytest.skip("the host filesystem of the test directory has no xattrs")
    img = tmp_path / "v.img"
    with open(img, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run([VENV_BIN / "mkfs.vexfs", "-q", "-d", tree, img], check=True)
    return img


def _fsck(img: Path, mode: str) -> tuple[int, str]:
    out = io.StringIO()
    rc = run_fsck(str(img), mode, force=True, out=out)
    return rc, out.getvalue()


def _xattr_blk(img: Path, path: str) -> tuple[int, int]:
    with Image(img) as im:
        ino = im.lookup(path)
        return ino, xattr_block_of(im.iget(ino))


def test_mkfs_copies_xattrs_and_fsck_is_clean(image: Path) -> None:
    rc, out = _fsck(image, "n")
    assert rc == 0, out
    with Image(image) as im:
        assert im.sb.s_feature_incompat & L.VEXFS_FEATURE_INCOMPAT_XATTR
        a = {x.full_name: x.value for x in im.xattrs(im.lookup("/a"))}
        assert a == {"user.k": b"hello", "system.posix_acl_access": ACL}
        sub = {x.full_name: x.value for x in im.xattrs(im.lookup("/sub"))}
        assert sub == {"trusted.t": b"\x01\x02"}
        # i_blocks counts the xattr block: 1 data block + 1 xattr block
        assert im.iget(im.lookup("/a")).i_blocks == 2
    out = subprocess.run([VENV_BIN / "vexfs", "image", "getfattr", "-d", image, "/a"],
                         check=True, capture_output=True, text=True).stdout
    assert 'user.k="hello"' in out and "system.posix_acl_access=0x02000000" in out


def _corrupt(img: Path, blk: int, off: int, data: bytes) -> None:
    with open(img, "r+b") as f:
        f.seek(blk * L.VEXFS_BLOCK_SIZE + off)
        f.write(data)


def test_fsck_reseals_bad_checksum(image: Path) -> None:
    _ino, blk = _xattr_blk(image, "/a")
    _corrupt(image, blk, L.XATTR_CHECKSUM_OFF, b"\0\0\0\0")
    rc, out = _fsck(image, "y")
    assert rc == 1 and "checksum mismatch" in out and "xattr block" in out, out
    assert _fsck(image, "n")[0] == 0
    with Image(image) as im:
        assert len(im.xattrs(im.lookup("/a"))) == 2


def test_fsck_clears_a_damaged_block(image: Path) -> None:
    ino, blk = _xattr_blk(image, "/a")
    _corrupt(image, blk, 0, b"XXXX")
    rc, out = _fsck(image, "y")
    assert rc == 1 and f"inode {ino}: xattr block {blk}: bad magic" in out, out
    rc2, out2 = _fsck(image, "n")
    assert rc2 == 0, out2
    with Image(image) as im:
        inode = im.iget(ino)
        assert xattr_block_of(inode) == 0 and inode.i_blocks == 1
        assert not im.block_in_use(blk)          # the block went back to the free pool


def test_fsck_removes_an_invalid_acl(image: Path) -> None:
    ino, blk = _xattr_blk(image, "/a")
    bad = ACL[:4] + ACL[4:28] + ACL[36:]          # a named user without a mask
    with open(image, "r+b") as f:
        f.seek(blk * L.VEXFS_BLOCK_SIZE)
        f.write(build_xattr_block([Xattr(1, b"k", b"hello"), Xattr(2, b"", bad)], ino))
    rc, out = _fsck(image, "y")
    assert rc == 1 and "system.posix_acl_access" in out and "mask" in out, out
    assert _fsck(image, "n")[0] == 0
    with Image(image) as im:
        assert [x.full_name for x in im.xattrs(ino)] == ["user.k"]


def test_fsck_sets_missing_feature_and_claims_the_block(image: Path) -> None:
    with Image(image) as im:
        sb = im.sb
    sb.s_feature_incompat &= ~L.VEXFS_FEATURE_INCOMPAT_XATTR
    L.seal(sb)
    _corrupt(image, 0, 0, bytes(sb))
    rc, out = _fsck(image, "y")
    assert rc == 1 and "lacks the XATTR feature" in out, out
    assert _fsck(image, "n")[0] == 0
    # an xattr block marked free in the bitmap is found as used
    _ino, blk = _xattr_blk(image, "/sub")
    with Image(image) as im:
        start = im.sb.s_bbitmap_start
        idx, bit = divmod(blk, L.VEXFS_BITS_PER_BITMAP)
    with open(image, "r+b") as f:
        f.seek((start + idx) * L.VEXFS_BLOCK_SIZE)
        data = bytearray(f.read(L.VEXFS_BLOCK_SIZE))
        data[16 + bit // 8] &= ~(1 << (bit % 8))
        L.seal_block(data, "bitmap")
        f.seek((start + idx) * L.VEXFS_BLOCK_SIZE)
        f.write(data)
    rc, out = _fsck(image, "y")
    assert rc == 1 and "in use are marked free" in out, out
    assert _fsck(image, "n")[0] == 0
