"""mkfs.vexfs, fsck.vexfs and the offline reader against the real kernel module.

In one VM boot:
  1. mkfs.vexfs on a loop device; the kernel mounts it; a workload writes
     files (small, large, fragmented, sparse, preallocated), nested and large
     directories, symlinks (short and multi-block), hard links, device nodes,
     fifos, renames, unlinks, chmod/chown/utime, and a vector collection when
     the ioctl API works; the tree is recorded through the VFS (lstat,
     content hashes, readlink).
  2. After umount: fsck.vexfs -n is clean, -p skips the clean fs, -f -p
     finds nothing; the offline reader (vexfs.image) sees exactly the recorded
     tree: same names, inode numbers, modes, sizes, link counts, owners,
     mtimes, symlink targets and content.
  3. The other direction: an image written offline by vexfs.imagebuild is
     mounted by the kernel, which reads the same content, and after the kernel
     writes to it fsck is still clean.

Like tests/vm/test_fs_ops.py, this file is both the host-side pytest module
and the guest-side program (``python tests/vm/test_tools_vm.py guest``), which
prints one JSON object of named checks {name: [ok, detail]}.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
VENV_BIN = REPO / ".venv" / "bin"
MODULE = REPO / "kernel" / "build" / "vexfs.ko"
MARK = "TOOLS-VM-RESULT "

# ------------------------------------------------------------------ guest side


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(list(cmd), capture_output=True, text=True)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} -> {res.returncode}: {res.stderr.strip()}")
    return res


def record_tree(root: Path) -> dict:
    """What the VFS says about every object under root (a mounted vexfs)."""
    out: dict = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames + ["."]:
            p = Path(dirpath) / name if name != "." else Path(dirpath)
            rel = "/" + str(p.relative_to(root)) if p != root else "/"
            rel = rel.replace("/.", "/") if rel == "/." else rel
            st = os.lstat(p)
            item = {"ino": st.st_ino, "mode": st.st_mode, "nlink": st.st_nlink,
                    "uid": st.st_uid, "gid": st.st_gid, "mtime": st.st_mtime_ns,
                    "size": st.st_size}
            if stat.S_ISREG(st.st_mode):
                item["sha"] = hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                item["target"] = os.readlink(p)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                item["rdev"] = [os.major(st.st_rdev), os.minor(st.st_rdev)]
            elif stat.S_ISDIR(st.st_mode):
                item["entries"] = sorted(os.listdir(p))
            out[rel] = item
    return out


def read_tree(dev: str) -> dict:
    """The same record, read offline from the device by vexfs.image."""
    from vexfs.image import Image
    out: dict = {}
    with Image(dev) as im:
        for path, ino, inode in im.walk("/"):
            item = {"ino": ino, "mode": inode.i_mode, "nlink": inode.i_links_count,
                    "uid": inode.i_uid, "gid": inode.i_gid,
                    "mtime": inode.i_mtime * 10**9 + inode.i_mtime_nsec,
                    "size": inode.i_size}
            if stat.S_ISREG(inode.i_mode):
                item["sha"] = hashlib.sha256(im.read_data(ino, inode=inode)).hexdigest()
            elif stat.S_ISLNK(inode.i_mode):
                item["target"] = im.readlink(ino)
            elif stat.S_ISCHR(inode.i_mode) or stat.S_ISBLK(inode.i_mode):
                rdev = inode.i_rdev
                item["rdev"] = [(rdev & 0xFFF00) >> 8, (rdev & 0xFF) | ((rdev >> 12) & 0xFFF00)]
            elif stat.S_ISDIR(inode.i_mode):
                item["entries"] = sorted(e.name for e in im.list_dir(ino)
                                         if e.name not in (".", ".."))
            out[path] = item
    return out


def workload(m: Path) -> dict:
    """Populate a mounted vexfs; returns facts for later checks."""
    import random
    rnd = random.Random(42)
    facts: dict = {}
    (m / "docs" / "deep" / "er" / "est").mkdir(parents=True)
    (m / "docs" / "hello.txt").write_text("Hello VexFS\n")
    (m / "docs" / "deep" / "er" / "est" / "leaf.bin").write_bytes(rnd.randbytes(12345))
    (m / "empty").write_bytes(b"")
    (m / "exact4k").write_bytes(rnd.randbytes(4096))
    (m / "big.bin").write_bytes(rnd.randbytes(6 * 1024 * 1024 + 77))
    # two files appended in turns: each ends up with many extents
    with open(m / "frag1", "ab") as a, open(m / "frag2", "ab") as b:
        for _ in range(300):
            a.write(rnd.randbytes(4096))
            a.flush()
            os.fsync(a.fileno())
            b.write(rnd.randbytes(4096))
            b.flush()
            os.fsync(b.fileno())
    # sparse: data at 0 and at 10 MiB
    with open(m / "sparse", "wb") as f:
        f.write(b"start")
        f.seek(10 << 20)
        f.write(b"end")
    # preallocated past EOF
    with open(m / "prealloc", "wb") as f:
        f.write(b"x" * 100)
        try:
            os.posix_fallocate(f.fileno(), 0, 64 * 4096)
        except OSError as e:
            facts["fallocate"] = str(e)
    try:
        fd = os.open(m / "keepsize", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"abc")
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
        facts["keepsize_rc"] = libc.fallocate(fd, 1, 0, 32 * 4096)  # FALLOC_FL_KEEP_SIZE
        os.close(fd)
    except OSError as e:
        facts["keepsize"] = str(e)
    many = m / "many"
    many.mkdir()
    for i in range(400):
        (many / f"file-{i:04d}-{'x' * (i % 90)}").write_bytes(str(i).encode() * (i % 7))
    for i in range(0, 400, 3):
        (many / f"file-{i:04d}-{'x' * (i % 90)}").unlink()
    os.symlink("docs/hello.txt", m / "short-link")
    os.symlink("/" + "long/" * 700 + "target", m / "long-link")   # > 1 block
    os.symlink("dangling", m / "docs" / "dangling")
    os.link(m / "docs" / "hello.txt", m / "hard1")
    os.link(m / "docs" / "hello.txt", m / "docs" / "deep" / "hard2")
    os.mkfifo(m / "fifo")
    os.mknod(m / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(m / "sda9", 0o600 | stat.S_IFBLK, os.makedev(8, 9))
    os.rename(m / "docs" / "deep" / "er", m / "moved-er")
    os.rename(m / "exact4k", m / "docs" / "exact4k-renamed")
    os.mkdir(m / "gone")
    os.rmdir(m / "gone")
    os.chmod(m / "docs" / "hello.txt", 0o600)
    os.chown(m / "big.bin", 1234, 5678)
    os.utime(m / "empty", ns=(1_600_000_000_123_456_789, 1_600_000_000_987_654_321))
    with open(m / "big.bin", "r+b") as f:
        f.truncate(3 * 1024 * 1024 + 5)
    # a vector collection through the ioctl API, if the vector client exists
    try:
        import numpy as np
        from vexfs.vector import Collection
        vecs = np.random.default_rng(5).standard_normal((200, 33)).astype(np.float32)
        ids = np.arange(1000, 1200, dtype=np.uint64)
        c = Collection.create(m / "vectors.vxc", 33, "cosine")
        c.insert(ids, vecs)
        c.delete(np.array([1005, 1100], dtype=np.uint64))
        c.close() if hasattr(c, "close") else None
        facts["collection"] = {"ids": sorted(int(i) for i in ids if i not in (1005, 1100)),
                               "vec0": vecs[0].tolist()}
    except Exception as e:       # reported as a failed check on the host
        facts["collection_error"] = f"{type(e).__name__}: {e}"
    os.sync()
    return facts


def guest() -> dict:
    r: dict = {}

    def check(name: str, ok: bool, detail: object = "") -> None:
        r[name] = [bool(ok), detail if not ok else ""]

    mkfs = str(VENV_BIN / "mkfs.vexfs")
    fsck = str(VENV_BIN / "fsck.vexfs")
    img = Path("/tmp/tools.img")
    with open(img, "wb") as f:
        f.truncate(128 << 20)
    loop = sh("losetup", "-f", "--show", str(img)).stdout.strip()
    t0 = time.perf_counter()
    res = sh(mkfs, "-L", "vmtest", loop, check=False)
    r["mkfs_seconds"] = [True, round(time.perf_counter() - t0, 3)]
    check("mkfs on loop device exits 0", res.returncode == 0, res.stderr)
    check("mkfs prints the geometry", "32768 4k blocks" in res.stdout, res.stdout)
    res = sh(mkfs, loop, check=False)
    check("mkfs refuses an existing vexfs without -f",
          res.returncode == 1 and "vexfs signature" in res.stderr, res.stderr)
    check("fsck -n clean on the fresh fs", sh(fsck, "-n", loop, check=False)
          .returncode == 0)
    m = Path("/mnt/tools")
    m.mkdir(parents=True, exist_ok=True)
    res = sh("mount", "-t", "vexfs", loop, str(m), check=False)
    check("kernel mounts the mkfs.vexfs image", res.returncode == 0, res.stderr)
    if res.returncode != 0:
        return r
    res = sh(mkfs, "-f", loop, check=False)
    check("mkfs refuses the mounted device even with -f",
          res.returncode == 1 and "mounted" in res.stderr, res.stderr)
    res = sh(fsck, "-y", loop, check=False)
    check("fsck -y refuses a mounted device (exit 8)", res.returncode == 8, res.stderr)
    facts = workload(m)
    check("collection created through the ioctl API", "collection" in facts,
          facts.get("collection_error"))
    check("fallocate works", "fallocate" not in facts and facts.get("keepsize_rc") == 0, facts)
    # a crash-like snapshot: synced while mounted, with an unlinked-but-open file
    fd = os.open(m / "open-unlinked", os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, b"still open " * 5000)
    os.unlink(m / "open-unlinked")
    os.sync()
    sh("dd", f"if={loop}", "of=/tmp/snap.img", "bs=1M", "status=none")
    os.close(fd)
    seen = record_tree(m)
    df = os.statvfs(m)
    sh("umount", str(m))

    res = sh(fsck, "-n", "-v", loop, check=False)
    check("fsck -n clean after the kernel workload", res.returncode == 0,
          res.stdout[-3000:] + res.stderr)
    res = sh(fsck, "-p", loop, check=False)
    check("fsck -p skips the clean fs", res.returncode == 0 and "clean," in res.stdout,
          res.stdout)
    res = sh(fsck, "-p", "-f", loop, check=False)
    check("fsck -p -f finds nothing", res.returncode == 0, res.stdout[-2000:])

    # the snapshot: dirty state, an orphan with link count 0; -p frees it
    snap = "/tmp/snap.img"
    res = sh(fsck, "-n", snap, check=False)
    lines = [x for x in res.stdout.splitlines() if "files," not in x]
    check("fsck -n on the mounted snapshot finds the open-unlinked inode",
          res.returncode == 4 and any("was deleted (link count 0)" in x for x in lines),
          res.stdout[-2000:])
    unexpected = [x for x in lines if "was deleted (link count 0)" not in x
                  and "problems found" not in x]
    check("the synced snapshot has no other inconsistency", not unexpected, unexpected[:10])
    res = sh(fsck, "-p", snap, check=False)
    check("fsck -p repairs the snapshot (exit 1)", res.returncode == 1, res.stdout[-2000:])
    res = sh(fsck, "-n", snap, check=False)
    check("the repaired snapshot is clean", res.returncode == 0, res.stdout[-2000:])

    offline = read_tree(loop)
    check("reader sees the same set of paths", set(offline) == set(seen),
          {"only_vfs": sorted(set(seen) - set(offline))[:20],
           "only_reader": sorted(set(offline) - set(seen))[:20]})
    diffs = {p: {k: (seen[p][k], offline[p].get(k)) for k in seen[p]
                 if seen[p][k] != offline[p].get(k)}
             for p in seen if p in offline}
    diffs = {p: d for p, d in diffs.items() if d}
    check("reader agrees with the VFS on every inode field and content", not diffs,
          dict(list(diffs.items())[:10]))
    from vexfs.image import Image
    with Image(loop) as im:
        sb = im.sb
        check("superblock free counts match statfs",
              sb.s_free_blocks == df.f_bfree and sb.s_free_inodes == df.f_ffree,
              {"sb": [sb.s_free_blocks, sb.s_free_inodes], "statfs": [df.f_bfree, df.f_ffree]})
        check("superblock state clean after umount", sb.s_state == 1, sb.s_state)
        check("label kept", sb.label == "vmtest", sb.label)
        for name in ("frag1", "frag2"):
            ino = im.lookup("/" + name)
            em = im.extents(ino)
            r[f"{name}_extents"] = [True, [len(em.extents), len(em.chain)]]
        if "collection" in facts:
            try:
                c = im.collection(im.lookup("/vectors.vxc"))
                ok = sorted(int(i) for i in c.ids) == facts["collection"]["ids"]
                row = list(c.ids).index(1000)
                ok = ok and [float(x) for x in c.vectors[row]] == facts["collection"]["vec0"]
                check("reader reads the kernel's collection", ok and c.dim == 33 and
                      c.metric_name == "cosine", {"count": c.count, "dim": c.dim})
            except Exception as e:
                check("reader reads the kernel's collection", False, repr(e))

    # the other direction: the kernel reads what the offline builder wrote
    sh("losetup", "-d", loop)
    built = Path("/tmp/built.img")
    import numpy as np
    from vexfs.imagebuild import ImageBuilder
    payload = np.random.default_rng(9).bytes(300 * 4096 + 5)
    with ImageBuilder.create(built, 32 << 20, label="built") as b:
        b.makedirs("/a/b")
        b.write_file("/a/b/f.txt", b"from the builder\n")
        b.max_extent_blocks = 1           # 301 extents: inline + 2 chain blocks
        b.write_file("/frag", payload)
        b.max_extent_blocks = None
        b.symlink("/ln", "a/b/f.txt")
        b.link("/a/b/f.txt", "/hl")
        for i in range(300):
            b.write_file(f"/a/n{i:03d}", b"%d" % i)
    loop = sh("losetup", "-f", "--show", str(built)).stdout.strip()
    res = sh("mount", "-t", "vexfs", loop, str(m), check=False)
    check("kernel mounts a builder-made image", res.returncode == 0, res.stderr)
    if res.returncode == 0:
        ok = ((m / "ln").read_bytes() == b"from the builder\n"
              and (m / "frag").read_bytes() == payload
              and os.stat(m / "hl").st_nlink == 2
              and len(os.listdir(m / "a")) == 301
              and (m / "a" / "n299").read_bytes() == b"299")
        check("kernel reads the builder's files, chains, links, big dirs", ok)
        (m / "a" / "new").write_bytes(b"kernel write")
        with open(m / "frag", "ab") as f:
            f.write(b"appended by the kernel")
        os.unlink(m / "a" / "n000")
        sh("umount", str(m))
        res = sh(fsck, "-n", loop, check=False)
        check("fsck clean after the kernel modified a builder image", res.returncode == 0,
              res.stdout[-2000:])
        from vexfs.image import Image as Img
        with Img(loop) as im:
            check("reader sees the kernel's changes",
                  im.read_file("/a/new") == b"kernel write"
                  and im.read_file("/frag") == payload + b"appended by the kernel"
                  and "n000" not in {e.name for e in im.list_dir(im.lookup("/a"))})
    sh("losetup", "-d", loop)
    repaired_image_checks(check, fsck, m)
    return r


def repaired_image_checks(check, fsck: str, m: Path) -> None:
    """fsck -y's repairs (entry cleared in place, /lost+found, rebuilt
    bitmaps) must give an image the kernel mounts and keeps using."""
    from vexfs import layout as L
    from vexfs.image import BS, Image, parse_dir_block
    from vexfs.imagebuild import ImageBuilder
    rep = Path("/tmp/repair.img")
    with ImageBuilder.create(rep, 16 << 20) as b:
        b.mkdir("/d")
        for i in range(50):
            b.write_file(f"/d/f{i:02d}", b"%d\n" % i)
        b.mkdir("/d/sub")
        b.write_file("/d/sub/x", b"in sub\n")
        d_ino = b.img.lookup("/d")
        sub_ino = b.img.lookup("/d/sub")
        b.remove_entry(d_ino, b"sub")                  # orphaned directory tree
    with Image(rep) as im:
        pblk = dict(im.dir_blocks(d_ino, im.iget(d_ino)))[0]
        block = bytearray(im.read_block(pblk))
    recs, _ = parse_dir_block(block)
    victim = next(x for x in recs if x.name == b"f10")
    block[victim.offset:victim.offset + 4] = (900).to_bytes(4, "little")  # free inode
    L.seal_block(block, "dir")
    with open(rep, "r+b") as f:
        f.seek(pblk * BS)
        f.write(block)
    res = sh(fsck, "-y", str(rep), check=False)
    check("fsck -y repairs a damaged builder image (exit 1)", res.returncode == 1,
          res.stdout[-2000:])
    res = sh(fsck, "-n", str(rep), check=False)
    check("damaged image clean after fsck -y", res.returncode == 0, res.stdout[-2000:])
    loop = sh("losetup", "-f", "--show", str(rep)).stdout.strip()
    try:
        res = sh("mount", "-t", "vexfs", loop, str(m), check=False)
        check("kernel mounts the fsck-repaired image", res.returncode == 0, res.stderr)
        if res.returncode != 0:
            return
        names = set(os.listdir(m / "d"))
        ok = ("f10" not in names and "sub" not in names and len(names) == 49
              and (m / "lost+found" / f"#{sub_ino}" / "x").read_bytes() == b"in sub\n")
        check("kernel sees the repaired tree (entry gone, orphan in lost+found)", ok,
              sorted(names)[:5])
        for i in range(200):
            (m / "d" / f"new-{i:03d}").write_bytes(b"n" * i)
        os.mkdir(m / "lost+found" / "made-by-kernel")
        os.rename(m / "lost+found" / f"#{sub_ino}", m / "d" / "sub-again")
        sh("umount", str(m))
        res = sh(fsck, "-n", loop, check=False)
        check("fsck clean after the kernel used the repaired image", res.returncode == 0,
              res.stdout[-2000:])
    finally:
        sh("losetup", "-d", loop, check=False)


# ------------------------------------------------------------------ host side


def test_tools_against_kernel():
    from vexfs.vm.quick import run_script

    script = f"""
modprobe loop
insmod /tmp/vexfs.ko || exit 3
cd {REPO}
{VENV_BIN}/python {Path(__file__).resolve()} guest
rc=$?
rmmod vexfs
exit $rc
"""
    res = run_script(script, modules=[MODULE], timeout=900)
    assert not res.crashed, res.console[-4000:]
    assert res.returncode == 0, res.output[-4000:]
    line = next(x for x in res.output.splitlines() if x.startswith(MARK))
    checks = json.loads(line[len(MARK):])
    failed = {k: v[1] for k, v in checks.items() if not v[0]}
    assert not failed, json.dumps(failed, indent=1)[:6000]
    assert len(checks) >= 20
    # frag1/frag2 really exercised many extents
    assert checks["frag1_extents"][1][0] > 6
    print("mkfs.vexfs on a 128 MiB loop device in the TCG guest:",
          checks["mkfs_seconds"][1], "s")


try:
    import pytest

    test_tools_against_kernel = pytest.mark.vm(
        pytest.mark.timeout(1200)(test_tools_against_kernel))
except ImportError:
    pass


if __name__ == "__main__":
    if sys.argv[1:] == ["guest"]:
        try:
            result = guest()
        except Exception as e:          # one readable failure instead of a traceback soup
            import traceback
            traceback.print_exc()
            result = {"guest crashed": [False, f"{type(e).__name__}: {e}"]}
        print(MARK + json.dumps(result))
