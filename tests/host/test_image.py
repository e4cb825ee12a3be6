"""The offline reader reads back what the image builder wrote; `vexfs image` CLI."""

from __future__ import annotations

import errno
import io
import subprocess
import sys
import stat
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from vexfs import layout as L
from vexfs.fsck import run_fsck
from vexfs.image import BS, Image, ImageError
from vexfs.image_cli import image as image_cli
from vexfs.imagebuild import ImageBuilder, NoSpace

MiB = 1 << 20


def fsck_clean(path: Path) -> None:
    out = io.StringIO()
    rc = run_fsck(str(path), "n", out=out)
    assert rc == 0, out.getvalue()


@pytest.fixture
def built(tmp_path):
    p = tmp_path / "r.img"
    rng = np.random.default_rng(7)
    content = {
        "/a.txt": b"alpha\n",
        "/d1/d2/d3/deep.bin": rng.bytes(3 * BS + 123),
        "/empty": b"",
        "/exact": rng.bytes(2 * BS),
    }
    with ImageBuilder.create(p, 16 * MiB) as b:
        for path, data in content.items():
            parent = path.rsplit("/", 1)[0]
            if parent:
                b.makedirs(parent)
            b.write_file(path, data)
        b.symlink("/d1/up", "..")
        b.symlink("/abs", "/d1/d2/d3/deep.bin")
        b.symlink("/loop1", "loop2")
        b.symlink("/loop2", "loop1")
        b.max_extent_blocks = 2
        content["/frag"] = rng.bytes(400 * BS + 9)      # 201 extents: chain of 2 blocks
        b.write_file("/frag", content["/frag"])
        b.max_extent_blocks = None
        content["/sparse"] = b"A" * 10 + bytes(BS * 7) + b"Z" * 10
        b.write_file("/sparse", content["/sparse"], sparse=True)
    return p, content


def test_files_read_back(built):
    p, content = built
    with Image(p) as im:
        for path, data in content.items():
            assert im.read_file(path) == data, path
    fsck_clean(p)


def test_partial_reads_and_holes(built):
    p, content = built
    with Image(p) as im:
        ino = im.lookup("/sparse")
        em = im.extents(ino)
        assert [(e.logical, e.length) for e in em.extents] == [(0, 1), (7, 1)]
        assert im.iget(ino).i_blocks == 2
        assert im.read_data(ino, 5, 10) == b"AAAAA" + bytes(5)
        data = content["/frag"]
        ino = im.lookup("/frag")
        for off, n in ((0, 1), (BS - 3, 10), (17 * BS + 5, 3 * BS), (len(data) - 4, 100)):
            assert im.read_data(ino, off, n) == data[off:off + n]


def test_extent_chain(built):
    p, _ = built
    with Image(p) as im:
        ino = im.lookup("/frag")
        inode = im.iget(ino)
        em = im.extents(ino)
        assert len(em.extents) == 201 and len(em.chain) == 2
        assert inode.i_nr_extents == 6
        assert inode.i_blocks == 401 + 2
        head = L.ExtentBlockHeader.unpack(im.read_block(em.chain[0]))
        assert head.eb_count == 169 and head.eb_next == em.chain[1] and head.eb_ino == ino


def test_symlinks_and_lookup(built):
    p, content = built
    with Image(p) as im:
        assert im.readlink(im.lookup("/abs", follow=False)) == "/d1/d2/d3/deep.bin"
        assert im.read_file("/abs") == content["/d1/d2/d3/deep.bin"]
        assert im.lookup("/d1/up/a.txt") == im.lookup("/a.txt")
        assert im.lookup("/d1/d2/../d2/./d3") == im.lookup("/d1/d2/d3")
        with pytest.raises(OSError) as ei:
            im.lookup("/loop1")
        assert ei.value.errno == errno.ELOOP
        with pytest.raises(FileNotFoundError):
            im.lookup("/d1/nope")
        with pytest.raises(NotADirectoryError):
            im.lookup("/a.txt/x")
        with pytest.raises(IsADirectoryError):
            im.read_file("/d1")


def test_walk_lists_everything(built):
    p, content = built
    with Image(p) as im:
        paths = {path for path, _ino, _inode in im.walk("/")}
    assert set(content) <= paths
    assert {"/d1", "/d1/d2", "/d1/d2/d3", "/d1/up", "/loop1"} <= paths


def test_large_directory_spans_blocks(tmp_path):
    p = tmp_path / "dir.img"
    names = [f"entry-{i:05d}-" + "n" * (i % 200) for i in range(600)]
    with ImageBuilder.create(p, 16 * MiB) as b:
        b.mkdir("/big")
        for n in names:
            b.write_file(f"/big/{n}", n.encode())
        ino = b.img.lookup("/big")
        rm = b.remove_entry(ino, names[3].encode())
        b.img.dev.flush()
        assert rm
    with Image(p) as im:
        ino = im.lookup("/big")
        assert im.iget(ino).i_size // BS > 5
        listed = [e.name for e in im.list_dir(ino)]
        assert listed[:2] == [".", ".."]
        assert sorted(listed[2:]) == sorted(n for i, n in enumerate(names) if i != 3)
        assert im.read_file(f"/big/{names[599]}") == names[599].encode()
    # names[3]'s inode is now unreferenced: fsck must say so
    out = io.StringIO()
    assert run_fsck(str(p), "n", out=out) == 4
    assert "is in no directory" in out.getvalue()


def test_collection_read_into_numpy(tmp_path):
    p = tmp_path / "c.img"
    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((300, 130)).astype(np.float32)
    ids = rng.permutation(10**6)[:300].astype(np.uint64)
    with ImageBuilder.create(p, 16 * MiB) as b:
        b.create_collection("/c", ids, vecs, metric=L.VEXFS_METRIC_IP)
        b.create_collection("/empty", dim=4)
    with Image(p) as im:
        c = im.collection(im.lookup("/c"))
        assert (c.dim, c.metric_name, c.count) == (130, "ip", 300)
        assert c.record_size == 16 + 4 * 132
        assert np.array_equal(c.ids, ids) and np.array_equal(c.vectors, vecs)
        inode = im.iget(im.lookup("/c"))
        assert inode.i_size == 4096 + 300 * c.record_size
        e = im.collection(im.lookup("/empty"))
        assert e.count == 0 and e.vectors.shape == (0, 4)
        with pytest.raises(ImageError, match="not a collection"):
            im.collection(im.lookup("/"))
    fsck_clean(p)


def test_device_nodes_and_hard_links(tmp_path):
    p = tmp_path / "n.img"
    with ImageBuilder.create(p, 4 * MiB) as b:
        b.mknod("/blk", stat.S_IFBLK | 0o600, rdev=(8 << 8) | 1)
        b.mknod("/sock", stat.S_IFSOCK | 0o755)
        b.write_file("/f", b"x")
        b.mkdir("/d")
        b.link("/f", "/d/g")
        with pytest.raises(IsADirectoryError):
            b.link("/d", "/d2")
        with pytest.raises(FileExistsError):
            b.write_file("/f", b"y")
    with Image(p) as im:
        assert im.iget(im.lookup("/blk")).i_rdev == (8 << 8) | 1
        assert im.lookup("/d/g") == im.lookup("/f")
        assert im.iget(im.lookup("/f")).i_links_count == 2
        types = {e.name: e.file_type for e in im.list_dir(1)}
        assert types["blk"] == L.VEXFS_FT_BLKDEV and types["sock"] == L.VEXFS_FT_SOCK
    fsck_clean(p)


def test_builder_fills_the_disk_then_nospace(tmp_path):
    p = tmp_path / "full.img"
    with ImageBuilder.create(p, 1 * MiB) as b:
        free = b.sb.s_free_blocks
        b.write_file("/fill", b"\x01" * (free - 1) * BS)   # 1 block left for chain/dir
        with pytest.raises(NoSpace):
            b.write_file("/more", b"\x02" * 2 * BS)
    with Image(p) as im:
        assert im.sb.s_free_blocks <= 1
    fsck_clean(p)


def test_reader_rejects_corrupt_superblock(tmp_path):
    p = tmp_path / "bad.img"
    p.write_bytes(bytes(1 * MiB))
    with pytest.raises(ImageError, match="not a VexFS"):
        Image(p)
    with ImageBuilder.create(p, 1 * MiB):
        pass
    with open(p, "r+b") as f:
        f.seek(100)
        f.write(b"\x01")
    with pytest.raises(ImageError, match="checksum"):
        Image(p)


# -- property: random trees ------------------------------------------------------------------

name_st = st.text(alphabet=st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)),
                  min_size=1, max_size=40).filter(lambda s: s not in (".", "..")
                                                  and len(s.encode()) <= 255)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(tree=st.dictionaries(name_st, st.one_of(st.binary(max_size=3 * BS),
                                               st.dictionaries(name_st, st.binary(max_size=BS),
                                                               max_size=8)),
                            max_size=12))
def test_random_trees_round_trip(tmp_path_factory, tree):
    p = tmp_path_factory.mktemp("tree") / "t.img"
    with ImageBuilder.create(p, 4 * MiB) as b:
        for name, val in tree.items():
            if isinstance(val, dict):
                b.mkdir("/" + name)
                for sub, data in val.items():
                    b.write_file(f"/{name}/{sub}", data)
            else:
                b.write_file("/" + name, val)
    with Image(p) as im:
        assert sorted(e.name for e in im.list_dir(1))[0:0] == []
        top = {e.name for e in im.list_dir(1)} - {".", ".."}
        assert top == set(tree)
        for name, val in tree.items():
            if isinstance(val, dict):
                ino = im.lookup("/" + name)
                assert {e.name for e in im.list_dir(ino)} - {".", ".."} == set(val)
                for sub, data in val.items():
                    assert im.read_file(f"/{name}/{sub}") == data
            else:
                assert im.read_file("/" + name) == val
    fsck_clean(p)


# -- CLI ---------------------------------------------------------------------------------------


def test_cli(built):
    p, content = built
    r = CliRunner()
    res = r.invoke(image_cli, ["info", str(p)])
    assert res.exit_code == 0 and "Filesystem magic:     0x58455656" in res.output
    assert "Checksum:" in res.output and "(ok)" in res.output
    res = r.invoke(image_cli, ["ls", str(p), "/"])
    assert res.exit_code == 0
    assert res.output.split() == sorted(["a.txt", "abs", "d1", "empty", "exact", "frag",
                                         "loop1", "loop2", "sparse"])
    res = r.invoke(image_cli, ["ls", "-l", str(p), "/"])
    assert "abs -> /d1/d2/d3/deep.bin" in res.output and "drwxr-xr-x" in res.output
    res = r.invoke(image_cli, ["ls", "-R", str(p), "/d1"])
    assert "/d1/d2/d3:" in res.output and "deep.bin" in res.output
    res = r.invoke(image_cli, ["cat", str(p), "/d1/d2/d3/deep.bin"])
    assert res.exit_code == 0 and res.stdout_bytes == content["/d1/d2/d3/deep.bin"]
    res = r.invoke(image_cli, ["stat", str(p), "/frag"])
    assert res.exit_code == 0 and "Extents: 201 (6 inline, chain blocks" in res.output
    res = r.invoke(image_cli, ["cat", str(p), "/nope"])
    assert res.exit_code == 1 and "no such file" in res.output


def test_cli_via_vexfs_root(built):
    from vexfs.cli import main as vexfs_main
    p, _ = built
    res = CliRunner().invoke(vexfs_main, ["image", "cat", str(p), "/a.txt"])
    assert res.exit_code == 0 and res.output == "alpha\n"


# -- issue 13 defect 4: streaming, closed pipes, damaged inodes ------------------------------


def _cli(*args: str, **kw):
    return subprocess.run([sys.executable, "-m", "vexfs.cli", "image", *args],
                          capture_output=True, **kw)


def test_cat_of_an_8_gib_sparse_file_streams_in_bounded_memory(tmp_path):
    import resource
    p = tmp_path / "sparse.img"
    with ImageBuilder.create(p, 8 << 20) as b:
        ino = b.write_file("/big", b"head")
    with Image(p, writable=True) as im:
        inode = im.iget(ino)
        inode.i_size = 8 << 30                       # 8 GiB, all but 4 bytes a hole
        L.seal(inode)
        blk, off = im.inode_location(ino)
        data = bytearray(im.dev.read_block(blk))
        data[off:off + 256] = bytes(inode)
        im.dev.write_block(blk, data)

    def limit() -> None:                              # 1 GiB of address space
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    code = ("import sys; from vexfs.image_cli import image; "
            "sys.argv = ['image', 'cat', sys.argv[1], '/big']; image()")
    res = subprocess.run([sys.executable, "-c", code, str(p)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, preexec_fn=limit, timeout=120)
    assert res.returncode == 0, res.stderr


def test_cat_streams_holes_and_data_in_order(tmp_path):
    p = tmp_path / "holes.img"
    data = b"A" * 5000 + bytes(3 * BS) + b"B" * 100 + bytes(2 * BS) + b"C"
    with ImageBuilder.create(p, 4 << 20) as b:
        b.write_file("/h", data, sparse=True)
    with Image(p) as im:
        ino = im.lookup("/h")
        assert len(im.extents(ino).extents) == 3         # the zero blocks are holes
        pieces = list(im.iter_data(ino, chunk=3000))
        assert max(len(x) for x in pieces) <= 3000
        assert b"".join(pieces) == data
        assert b"".join(im.iter_data(ino, 4000, 9000, chunk=777)) == data[4000:13000]
    res = CliRunner().invoke(image_cli, ["cat", str(p), "/h"])
    assert res.exit_code == 0 and res.stdout_bytes == data


def test_closed_pipe_is_quiet(tmp_path):
    p = tmp_path / "p.img"
    with ImageBuilder.create(p, 4 << 20) as b:
        b.write_file("/f", b"x" * (3 << 20))
    for args in (["info", str(p)], ["cat", str(p), "/f"]):
        res = subprocess.run(f"{sys.executable} -m vexfs.cli image {' '.join(args)} | head -c 10"
                             " >/dev/null; echo ${{PIPESTATUS[0]}}".replace("{{", "{")
                             .replace("}}", "}"), shell=True, executable="/bin/bash",
                             capture_output=True, text=True)
        assert res.stderr == "", res.stderr
        assert res.stdout.strip() in ("0", "141"), res.stdout


def test_ls_lists_past_a_damaged_inode(tmp_path):
    p = tmp_path / "d.img"
    with ImageBuilder.create(p, 4 << 20) as b:
        b.write_file("/a", b"a")
        bad = b.write_file("/b", b"b")
        b.write_file("/c", b"c")
    with Image(p, writable=True) as im:
        blk, off = im.inode_location(bad)
        data = bytearray(im.dev.read_block(blk))
        data[off + 8] ^= 0xFF                         # i_uid: checksum now wrong
        im.dev.write_block(blk, data)
    res = _cli("ls", "-l", str(p), "/", text=True)
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    assert [ln.split()[-1] for ln in lines if "damaged" not in ln] == ["a", "c"]
    marked = [ln for ln in lines if "damaged" in ln]
    assert len(marked) == 1 and " b  [damaged: checksum mismatch" in marked[0]
    assert "1 damaged entries" in res.stderr
    res = _cli("ls", str(p), "/", text=True)
    assert res.stdout.splitlines()[0] == "a" and res.stdout.splitlines()[2] == "c"
