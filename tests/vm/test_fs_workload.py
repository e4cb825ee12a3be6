"""Workloads on vexfs.ko in a real VM: a 100 MB file with random writes,
thousands of files in nested directories with rename/link/unlink churn
(compared file by file with the same workload on ext4 in the same VM), a
full disk (ENOSPC, nothing corrupted, space reusable), mount time against
ext4, and fsck.vexfs clean after each.

Like test_fs_ops.py this file is also the guest-side script:
``python tests/vm/test_fs_workload.py <phase> <dir>`` prints JSON.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PY = REPO / ".venv/bin/python"
THIS = Path(__file__).resolve()
MODULE = REPO / "kernel/build/vexfs.ko"

BIG = 100 * 1024 * 1024
SEED = 20261125

# ---------------------------------------------------------------- guest side


def _big_expected() -> bytearray:
    """The 100 MB file's content after the random writes (deterministic)."""
    rnd = random.Random(SEED)
    data = bytearray(rnd.randbytes(BIG))
    for _ in range(400):
        off = rnd.randrange(0, BIG + 3 * 1024 * 1024)
        n = rnd.randrange(1, 256 * 1024)
        if off + n > len(data):
            data.extend(bytes(off + n - len(data)))
        data[off:off + n] = rnd.randbytes(n)
    return data


def guest_bigfile_write(m: Path) -> dict:
    rnd = random.Random(SEED)
    path = m / "big"
    with open(path, "wb") as fh:
        fh.write(rnd.randbytes(BIG))
    fd = os.open(path, os.O_RDWR)
    for _ in range(400):
        off = rnd.randrange(0, BIG + 3 * 1024 * 1024)
        n = rnd.randrange(1, 256 * 1024)
        os.pwrite(fd, rnd.randbytes(n), off)
    os.fsync(fd)
    os.close(fd)
    want = hashlib.sha256(_big_expected()).hexdigest()
    got = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"bigfile_written": [want == got, f"{want} {got}"]}


def guest_bigfile_verify(m: Path) -> dict:
    want = hashlib.sha256(_big_expected()).hexdigest()
    got = hashlib.sha256((m / "big").read_bytes()).hexdigest()
    return {"bigfile_after_remount": [want == got, f"{want} {got}"]}


def _tree_workload(root: Path) -> None:
    """Deterministic create/rename/link/unlink churn over ~3000 files."""
    rnd = random.Random(7)
    files = []
    for a in range(10):
        for b in range(10):
            d = root / f"a{a}" / f"b{b}"
            d.mkdir(parents=True)
            for c in range(30):
                p = d / f"file-{a}-{b}-{c}.dat"
                p.write_bytes(rnd.randbytes(rnd.randrange(0, 9000)))
                files.append(p)
    rnd.shuffle(files)
    for p in files[:500]:                       # unlink
        p.unlink()
    for i, p in enumerate(files[500:900]):      # rename across directories
        p.rename(root / f"a{i % 10}" / f"moved-{i}")
    for i, p in enumerate(files[900:1100]):     # hard links
        os.link(p, p.parent / f"link-{i}")
    for p in files[1100:1200]:                  # rewrite content
        p.write_bytes(rnd.randbytes(rnd.randrange(0, 20000)))
    for a in range(0, 10, 3):                   # move whole subtrees
        (root / f"a{a}" / "b9").rename(root / f"a{(a + 1) % 10}" / f"from-a{a}")


def _tree_manifest(root: Path) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            st = os.lstat(p)
            rel = str(p.relative_to(root))
            if p.is_dir():
                out[rel] = ["d", st.st_nlink]
            else:
                out[rel] = ["f", st.st_nlink, st.st_size,
                            hashlib.md5(p.read_bytes()).hexdigest()]
    return out


def guest_tree(m: Path) -> dict:
    """Run the churn on vexfs (m) and on ext4 (m.parent / 'ext4'), compare."""
    e = Path(str(m) + "-ext4")
    _tree_workload(m / "tree")
    _tree_workload(e / "tree")
    mv, me = _tree_manifest(m / "tree"), _tree_manifest(e / "tree")
    diff = [k for k in set(mv) | set(me) if mv.get(k) != me.get(k)]
    json.dump(mv, open("/tmp/tree-manifest.json", "w"))
    return {"tree_matches_ext4": [not diff and len(mv) > 2500, f"{len(mv)} entries, diff {diff[:5]}"]}


def guest_tree_verify(m: Path) -> dict:
    mv = _tree_manifest(m / "tree")
    want = json.load(open("/tmp/tree-manifest.json"))
    diff = [k for k in set(mv) | set(want) if mv.get(k) != want.get(k)]
    return {"tree_after_remount": [not diff, f"diff {diff[:5]}"]}


def guest_enospc(m: Path) -> dict:
    r: dict = {}
    free0 = os.statvfs(m).f_bfree
    chunk = random.Random(1).randbytes(1024 * 1024)
    written, err = 0, 0
    fd = os.open(m / "fill", os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        while True:
            n = os.write(fd, chunk)
            written += n
            if n < len(chunk):
                continue
    except OSError as e:
        err = e.errno
    os.close(fd)
    sv = os.statvfs(m)
    r["enospc_errno"] = [err == errno.ENOSPC, errno.errorcode.get(err, err)]
    r["enospc_all_used"] = [sv.f_bfree <= 2 and written >= (free0 - 10) * 4096,
                            f"free={sv.f_bfree} written={written} free0={free0}"]
    r["enospc_size_matches"] = [os.stat(m / "fill").st_size == written, ""]
    r["enospc_data_intact"] = [(m / "fill").read_bytes()[:len(chunk)] == chunk, ""]
    e2 = 0
    try:
        (m / "another").write_bytes(b"x" * 10000)
    except OSError as e:
        e2 = e.errno
    r["enospc_new_file"] = [e2 == errno.ENOSPC, errno.errorcode.get(e2, e2)]
    os.unlink(m / "fill")
    if (m / "another").exists():
        os.unlink(m / "another")
    os.sync()
    r["enospc_space_back"] = [os.statvfs(m).f_bfree == free0, f"{os.statvfs(m).f_bfree} {free0}"]
    (m / "again").write_bytes(chunk * 4)
    r["enospc_reuse"] = [(m / "again").read_bytes() == chunk * 4, ""]
    # inode exhaustion is ENOSPC as well
    n, e3 = 0, 0
    try:
        while True:
            (m / f"i{n}").write_bytes(b"")
            n += 1
    except OSError as e:
        e3 = e.errno
    r["inodes_enospc"] = [e3 == errno.ENOSPC and os.statvfs(m).f_ffree == 0, f"{n} files"]
    for i in range(n):
        (m / f"i{i}").unlink()
    return r


def guest_fsync_crash(m: Path) -> dict:
    """Power cut after fsync: copy the image while it is mounted (what the
    disk holds at that instant), mount the copy, find the fsynced data."""
    r = {}
    data = random.Random(5).randbytes(300_000)
    (m / "dsub").mkdir()
    fd = os.open(m / "dsub" / "durable", os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, data)
    os.fsync(fd)
    os.close(fd)
    (m / "unsynced").write_bytes(b"u" * 5000)
    subprocess.run(["cp", "/tmp/v.img", "/tmp/crash.img"], check=True)
    loop = subprocess.run(["losetup", "-f", "--show", "/tmp/crash.img"], check=True,
                          capture_output=True, text=True).stdout.strip()
    Path("/mnt/crash").mkdir(exist_ok=True)
    mark = len(subprocess.run(["dmesg"], capture_output=True, text=True).stdout.splitlines())
    subprocess.run(["mount", "-t", "vexfs", loop, "/mnt/crash"], check=True)
    got = Path("/mnt/crash/dsub/durable").read_bytes()
    subprocess.run(["umount", "/mnt/crash"], check=True)
    subprocess.run(["losetup", "-d", loop], check=True)
    new = subprocess.run(["dmesg"], capture_output=True, text=True).stdout.splitlines()[mark:]
    r["fsync_survives_power_cut"] = [got == data, len(got)]
    # with a journal the mount replays it and says so; without one it warns
    r["unclean_mount_warns"] = [any("not cleanly unmounted" in ln or
                                    re.search(r"recovered \d+ transactions", ln)
                                    for ln in new), new[:3]]
    fsck = str(REPO / ".venv/bin/fsck.vexfs")
    y = subprocess.run([fsck, "-y", "/tmp/crash.img"], capture_output=True, text=True)
    n = subprocess.run([fsck, "-n", "-f", "/tmp/crash.img"], capture_output=True, text=True)
    r["fsck_repairs_power_cut"] = [y.returncode in (0, 1) and n.returncode == 0,
                                   f"-y rc={y.returncode} -n rc={n.returncode} {y.stdout[-300:]}"]
    os.unlink("/tmp/crash.img")
    return r


def _churn_worker(args: tuple) -> list:
    """One process of the concurrent churn: its own dir plus a shared one."""
    m, k, seconds = args
    rnd = random.Random(k)
    own = Path(m) / f"own{k}"
    shared = Path(m) / "shared"
    own.mkdir(exist_ok=True)
    shared.mkdir(exist_ok=True)
    errors = []
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
        op = rnd.randrange(6)
        name = f"{k}-{rnd.randrange(40)}"
        try:
            if op == 0:
                data = rnd.randbytes(rnd.randrange(1, 30000))
                (own / name).write_bytes(data)
                if (own / name).read_bytes() != data:
                    errors.append(f"content {name}")
            elif op == 1:
                (shared / name).write_bytes(b"s" * rnd.randrange(0, 5000))
            elif op == 2:
                os.rename(shared / name, shared / f"{k}-{rnd.randrange(40)}")
            elif op == 3:
                os.unlink(shared / name)
            elif op == 4:
                os.listdir(shared)
            else:
                (own / f"d{name}").mkdir()
                (own / f"d{name}" / "x").write_bytes(b"x")
                (own / f"d{name}" / "x").unlink()
                (own / f"d{name}").rmdir()
        except FileNotFoundError:
            pass
        except FileExistsError:
            pass
        except OSError as e:
            errors.append(f"{op}: {e}")
    return errors + [f"ops={n}"]


def guest_concurrency(m: Path) -> dict:
    """Four processes creating, renaming, unlinking and listing at once."""
    import multiprocessing

    with multiprocessing.Pool(4) as pool:
        outs = pool.map(_churn_worker, [(str(m), k, 20) for k in range(4)])
    errs = [e for out in outs for e in out if not e.startswith("ops=")]
    ops = [e for out in outs for e in out if e.startswith("ops=")]
    return {"concurrent_churn": [not errs, f"{ops} {errs[:5]}"]}


def guest_mount_timing(img_dir: Path) -> dict:
    """Median mount(2)/umount(2) time of a 200 MB vexfs vs ext4 image.

    mount(2) is called directly (mount(8)'s own start-up would dominate) and
    the two filesystems alternate, so load on the host hits both alike.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    loops, times = {}, {}
    for fs in ("vexfs", "ext4"):
        img = img_dir / f"time-{fs}.img"
        subprocess.run(["truncate", "-s", "200M", str(img)], check=True)
        if fs == "vexfs":
            subprocess.run([str(REPO / ".venv/bin/mkfs.vexfs"), "-q", str(img)], check=True)
        else:
            subprocess.run(["mkfs.ext4", "-q", "-F", str(img)], check=True)
        loops[fs] = subprocess.run(["losetup", "-f", "--show", str(img)], check=True,
                                   capture_output=True, text=True).stdout.strip()
        Path(f"/mnt/time-{fs}").mkdir(exist_ok=True)
        times[fs] = ([], [])
    for _ in range(15):
        for fs in ("vexfs", "ext4"):
            mnt = f"/mnt/time-{fs}".encode()
            t0 = time.perf_counter()
            rc = libc.mount(loops[fs].encode(), mnt, fs.encode(), 0, None)
            t1 = time.perf_counter()
            assert rc == 0, os.strerror(ctypes.get_errno())
            rc = libc.umount2(mnt, 0)
            t2 = time.perf_counter()
            assert rc == 0, os.strerror(ctypes.get_errno())
            times[fs][0].append(t1 - t0)
            times[fs][1].append(t2 - t1)
    for fs in loops:
        subprocess.run(["losetup", "-d", loops[fs]], check=True)
    res = {fs: {"mount_ms": round(statistics.median(m) * 1000, 2),
                "umount_ms": round(statistics.median(u) * 1000, 2)}
           for fs, (m, u) in times.items()}
    ok = res["vexfs"]["mount_ms"] < res["ext4"]["mount_ms"]
    return {"mount_faster_than_ext4": [ok, json.dumps(res)]}


GUEST_PHASES = {
    "bigfile_write": guest_bigfile_write, "bigfile_verify": guest_bigfile_verify,
    "tree": guest_tree, "tree_verify": guest_tree_verify,
    "enospc": guest_enospc, "mount_timing": guest_mount_timing,
    "concurrency": guest_concurrency, "fsync_crash": guest_fsync_crash,
}

# ----------------------------------------------------------------- host side


def _phase(name: str, arg: str) -> str:
    # printf, not echo: dash's echo would expand the \\n escapes inside the JSON
    return f'printf "RESULT-{name}: %s\\n" "$({PY} {THIS} {name} {arg})"\n'


def _run(script: str, timeout: float = 900) -> dict:
    from vexfs.vm.quick import run_script

    res = run_script(script, modules=[MODULE], timeout=timeout)
    assert not res.crashed, res.console[-3000:]
    assert res.returncode == 0, res.output[-3000:]
    checks = {}
    for line in res.output.splitlines():
        if line.startswith("RESULT-"):
            checks.update(json.loads(line.partition(": ")[2]))
    failed = {k: v for k, v in checks.items() if not v[0]}
    assert not failed, f"failed checks: {failed}\n{res.output[-2000:]}"
    assert "FSCK-RC=0" in res.output, res.output[-3000:]
    assert "vexfs (loop" not in res.output or " error:" not in res.output, res.output[-3000:]
    return checks


PRE = f"""
set -e
cd {REPO}
modprobe loop
modprobe ext4
insmod /tmp/vexfs.ko
mkdir -p /mnt/v /mnt/v-ext4
"""

FSCK = ('if .venv/bin/fsck.vexfs -n -f /tmp/v.img; then echo FSCK-RC=0; '
        'else echo "FSCK-RC=$?"; fi\n')


def test_bigfile_and_tree_vs_ext4():
    script = PRE + """
truncate -s 300M /tmp/v.img
.venv/bin/mkfs.vexfs -q /tmp/v.img
LOOP=$(losetup -f --show /tmp/v.img)
mount -t vexfs $LOOP /mnt/v
truncate -s 200M /tmp/e.img
mkfs.ext4 -q -F /tmp/e.img
mount -o loop /tmp/e.img /mnt/v-ext4
""" + _phase("bigfile_write", "/mnt/v") + _phase("tree", "/mnt/v") + \
        _phase("concurrency", "/mnt/v") + """
umount /mnt/v
rmmod vexfs
# detach the loop device too: every block is read from the image again
losetup -d $LOOP
echo 3 > /proc/sys/vm/drop_caches
insmod /tmp/vexfs.ko
LOOP=$(losetup -f --show /tmp/v.img)
mount -t vexfs $LOOP /mnt/v
""" + _phase("bigfile_verify", "/mnt/v") + _phase("tree_verify", "/mnt/v") + """
umount /mnt/v
losetup -d $LOOP
""" + FSCK
    checks = _run(script, timeout=1500)
    assert {"bigfile_written", "bigfile_after_remount", "tree_matches_ext4",
            "tree_after_remount", "concurrent_churn"} <= set(checks)


def test_enospc_and_mount_time():
    script = PRE + """
truncate -s 16M /tmp/v.img
.venv/bin/mkfs.vexfs -q -N 256 /tmp/v.img
LOOP=$(losetup -f --show /tmp/v.img)
mount -t vexfs $LOOP /mnt/v
""" + _phase("enospc", "/mnt/v") + _phase("fsync_crash", "/mnt/v") + """
umount /mnt/v
losetup -d $LOOP
""" + FSCK + _phase("mount_timing", "/tmp")
    checks = _run(script)
    assert checks["enospc_errno"][0] and checks["mount_faster_than_ext4"][0]
    print("mount timing:", checks["mount_faster_than_ext4"][1])


try:
    import pytest

    test_bigfile_and_tree_vs_ext4 = pytest.mark.vm(pytest.mark.timeout(1800)(
        test_bigfile_and_tree_vs_ext4))
    test_enospc_and_mount_time = pytest.mark.vm(pytest.mark.timeout(900)(
        test_enospc_and_mount_time))
except ImportError:
    pass


if __name__ == "__main__":
    print(json.dumps(GUEST_PHASES[sys.argv[1]](Path(sys.argv[2]))))
