"""VFS operations of vexfs.ko, proved in a real VM.

This file is both the pytest module (host side: boots the VM with
``vexfs.vm.quick.run_script``) and the guest-side checker: the guest sees
this checkout at the same path and runs ``python tests/vm/test_fs_ops.py
<phase> <mountpoint>``, which performs the operations on the mounted vexfs
and prints one JSON object ``{check: [ok, detail]}``. The host test asserts
every check. One boot runs many checks to keep TCG time down.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import mmap
import os
import random
import stat
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PY = REPO / ".venv/bin/python"
THIS = Path(__file__).resolve()
MODULE = REPO / "kernel/build/vexfs.ko"

# ---------------------------------------------------------------- guest side

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


def _renameat2(old: str, new: str, flags: int) -> int:
    """renameat2(2) via glibc; returns 0 or the errno."""
    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.renameat2(-100, old.encode(), -100, new.encode(), flags)
    return 0 if rc == 0 else ctypes.get_errno()


def _errno_of(fn) -> int:
    try:
        fn()
    except OSError as e:
        return e.errno
    return 0


def _pattern(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def guest_ops(m: Path) -> dict:
    """Operations on a freshly mounted, empty vexfs; also leaves state for
    guest_verify to check after umount/rmmod/insmod/mount."""
    r: dict = {}

    def check(name: str, ok: bool, detail: object = "") -> None:
        r[name] = [bool(ok), str(detail)]

    # create / write / read / append / seek
    f = m / "hello.txt"
    f.write_bytes(b"hello vexfs\n")
    check("create_read", f.read_bytes() == b"hello vexfs\n")
    with open(f, "ab") as fh:
        fh.write(b"appended\n")
    check("append", f.read_bytes() == b"hello vexfs\nappended\n", f.read_bytes())
    with open(f, "r+b") as fh:
        fh.seek(6)
        fh.write(b"VEXFS")
        fh.seek(0)
        data = fh.read()
    check("seek_overwrite", data == b"hello VEXFS\nappended\n", data)
    fd = os.open(m / "pio", os.O_CREAT | os.O_RDWR, 0o644)
    os.pwrite(fd, b"abc", 10000)
    check("pwrite_pread", os.pread(fd, 3, 10000) == b"abc" and
          os.pread(fd, 10, 0) == bytes(10) and os.fstat(fd).st_size == 10003)
    check("lseek_end", os.lseek(fd, 0, os.SEEK_END) == 10003)
    os.close(fd)

    # multi-block file spanning several extents, read back
    blob = _pattern(1, 3 * 1024 * 1024 + 123)
    (m / "blob").write_bytes(blob)
    check("multiblock_rw", (m / "blob").read_bytes() == blob)

    # sparse file: holes read as zeros, few blocks allocated
    with open(m / "sparse", "wb") as fh:
        fh.seek(50 * 1024 * 1024)
        fh.write(b"end")
    st = os.stat(m / "sparse")
    with open(m / "sparse", "rb") as fh:
        fh.seek(25 * 1024 * 1024)
        hole = fh.read(8192)
    check("sparse_hole_zero", hole == bytes(8192) and st.st_size == 50 * 1024 * 1024 + 3
          and st.st_blocks <= 16, f"size={st.st_size} blocks={st.st_blocks}")

    # truncate shrink / grow; the tail of a shrunk block must read zero after regrow
    t = m / "trunc"
    t.write_bytes(b"x" * 10000)
    os.truncate(t, 5000)
    os.truncate(t, 9000)
    d = t.read_bytes()
    check("truncate_shrink_grow", d == b"x" * 5000 + bytes(4000), len(d))
    os.truncate(t, 0)
    check("truncate_zero", os.stat(t).st_blocks == 0 and t.read_bytes() == b"")

    # fragmented file: every other block, forcing extent chain blocks
    frag = m / "frag"
    fd = os.open(frag, os.O_CREAT | os.O_RDWR, 0o644)
    nfrag = 1200
    for i in range(nfrag):
        os.pwrite(fd, i.to_bytes(4, "little") * 1024, 2 * i * 4096)
    os.fsync(fd)
    ok = all(os.pread(fd, 4096, 2 * i * 4096) == i.to_bytes(4, "little") * 1024
             for i in range(0, nfrag, 7))
    ok = ok and os.pread(fd, 4096, 4096) == bytes(4096)
    st = os.fstat(fd)
    check("fragmented_extent_chain", ok and st.st_blocks // 8 > nfrag,
          f"blocks={st.st_blocks // 8}")
    os.close(fd)

    # mmap write and read, msync
    mm_path = m / "mm"
    mm_path.write_bytes(bytes(3 * 4096))
    with open(mm_path, "r+b") as fh:
        mp = mmap.mmap(fh.fileno(), 3 * 4096)
        mp[4096:4096 + 5] = b"MMAPW"
        mp.flush()
        mp.close()
    check("mmap_write", mm_path.read_bytes()[4096:4101] == b"MMAPW")
    # mmap into a hole (page_mkwrite allocates)
    hp = m / "mmhole"
    with open(hp, "wb") as fh:
        fh.truncate(8 * 4096)
    with open(hp, "r+b") as fh:
        mp = mmap.mmap(fh.fileno(), 8 * 4096)
        mp[5 * 4096] = 0x42
        mp.flush()
        mp.close()
    check("mmap_hole_write", hp.read_bytes()[5 * 4096] == 0x42 and
          os.stat(hp).st_blocks == 8, os.stat(hp).st_blocks)

    # fsync / fdatasync
    fd = os.open(m / "synced", os.O_CREAT | os.O_WRONLY, 0o600)
    os.write(fd, b"durable")
    os.fsync(fd)
    os.fdatasync(fd)
    os.close(fd)
    check("fsync", (m / "synced").read_bytes() == b"durable")

    # O_DIRECT write and read, 4 KiB aligned, into a new file
    buf = mmap.mmap(-1, 3 * 4096)
    buf.write(_pattern(9, 3 * 4096))
    fd = os.open(m / "direct", os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o644)
    n = os.pwritev(fd, [buf], 4096)
    rbuf = mmap.mmap(-1, 3 * 4096)
    got = os.preadv(fd, [rbuf], 4096)
    os.close(fd)
    check("o_direct", n == got == 3 * 4096 and bytes(rbuf) == _pattern(9, 3 * 4096) and
          (m / "direct").read_bytes() == bytes(4096) + _pattern(9, 3 * 4096), f"{n} {got}")

    # fallocate: blocks allocated, content zero, size set
    fd = os.open(m / "falloc", os.O_CREAT | os.O_RDWR, 0o644)
    os.posix_fallocate(fd, 0, 1024 * 1024)
    st = os.fstat(fd)
    check("fallocate", st.st_size == 1024 * 1024 and st.st_blocks == 2048 and
          os.pread(fd, 4096, 8192) == bytes(4096), f"size={st.st_size} blocks={st.st_blocks}")
    os.close(fd)

    # unlink, including an open file that stays readable
    u = m / "unlinked"
    u.write_bytes(b"still here")
    fh = open(u, "rb")
    os.unlink(u)
    check("unlink_open_file", not u.exists() and fh.read() == b"still here")
    fh.close()

    # mkdir / rmdir / nlink / ENOTEMPTY
    root_links = os.stat(m).st_nlink
    (m / "d1").mkdir()
    (m / "d1" / "sub").mkdir()
    (m / "d1" / "sub" / "f").write_bytes(b"f")
    check("mkdir_nlink", os.stat(m).st_nlink == root_links + 1 and
          os.stat(m / "d1").st_nlink == 3)
    check("rmdir_enotempty", _errno_of(lambda: os.rmdir(m / "d1")) == errno.ENOTEMPTY)
    (m / "d1" / "sub" / "f").unlink()
    os.rmdir(m / "d1" / "sub")
    check("rmdir", not (m / "d1" / "sub").exists() and os.stat(m / "d1").st_nlink == 2)
    check("mkdir_eexist", _errno_of(lambda: os.mkdir(m / "d1")) == errno.EEXIST)

    # rename variants
    (m / "r_a").write_bytes(b"A")
    (m / "r_b").write_bytes(b"B")
    os.rename(m / "r_a", m / "r_c")
    check("rename_simple", (m / "r_c").read_bytes() == b"A" and not (m / "r_a").exists())
    os.rename(m / "r_c", m / "r_b")
    check("rename_overwrite", (m / "r_b").read_bytes() == b"A" and not (m / "r_c").exists())
    (m / "r_x").write_bytes(b"X")
    check("rename_noreplace", _renameat2(str(m / "r_x"), str(m / "r_b"), RENAME_NOREPLACE)
          == errno.EEXIST and (m / "r_b").read_bytes() == b"A")
    check("rename_exchange", _renameat2(str(m / "r_x"), str(m / "r_b"), RENAME_EXCHANGE) == 0
          and (m / "r_b").read_bytes() == b"X" and (m / "r_x").read_bytes() == b"A")
    # directory moved to another parent: ".." and link counts follow
    (m / "p1").mkdir()
    (m / "p2").mkdir()
    (m / "p1" / "mv").mkdir()
    os.rename(m / "p1" / "mv", m / "p2" / "mv")
    check("rename_dir_across", os.stat(m / "p1").st_nlink == 2 and
          os.stat(m / "p2").st_nlink == 3 and
          os.stat(m / "p2" / "mv" / "..").st_ino == os.stat(m / "p2").st_ino)
    # exchange a dir and a file across parents
    (m / "p1" / "file").write_bytes(b"F")
    rc = _renameat2(str(m / "p1" / "file"), str(m / "p2" / "mv"), RENAME_EXCHANGE)
    check("rename_exchange_dir_file", rc == 0 and (m / "p2" / "mv").read_bytes() == b"F" and
          (m / "p1" / "file").is_dir() and os.stat(m / "p1").st_nlink == 3 and
          os.stat(m / "p2").st_nlink == 2 and
          os.stat(m / "p1" / "file" / "..").st_ino == os.stat(m / "p1").st_ino, rc)
    # replace an empty dir by a dir
    (m / "p2" / "e1").mkdir()
    (m / "p2" / "e2").mkdir()
    os.rename(m / "p2" / "e1", m / "p2" / "e2")
    check("rename_dir_over_empty_dir", not (m / "p2" / "e1").exists() and
          os.stat(m / "p2").st_nlink == 3)
    (m / "p2" / "ne").mkdir()
    (m / "p2" / "ne" / "x").write_bytes(b"")
    check("rename_dir_over_nonempty", _errno_of(lambda: os.rename(m / "p2" / "e2", m / "p2" / "ne"))
          == errno.ENOTEMPTY)

    # link / symlink / readlink
    (m / "l_src").write_bytes(b"L")
    os.link(m / "l_src", m / "l_hard")
    check("hardlink", os.stat(m / "l_src").st_nlink == 2 and
          os.stat(m / "l_hard").st_ino == os.stat(m / "l_src").st_ino)
    os.symlink("l_src", m / "l_sym")
    target = "t/" * 1000 + "end"
    os.symlink(target, m / "l_longsym")
    check("symlink", os.readlink(m / "l_sym") == "l_src" and (m / "l_sym").read_bytes() == b"L"
          and os.readlink(m / "l_longsym") == target)

    # special files
    os.mkfifo(m / "fifo")
    os.mknod(m / "chr", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    st = os.stat(m / "chr")
    check("mknod", stat.S_ISFIFO(os.stat(m / "fifo").st_mode) and stat.S_ISCHR(st.st_mode)
          and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3)

    # readdir of a multi-block directory, with deletions
    big = m / "bigdir"
    big.mkdir()
    names = {f"entry-{i:05d}-" + "n" * (i % 60) for i in range(600)}
    for n in names:
        (big / n).write_bytes(b"")
    ls1 = set(os.listdir(big))
    for n in sorted(names)[::2]:
        (big / n).unlink()
    ls2 = set(os.listdir(big))
    check("readdir_multiblock", ls1 == names and ls2 == set(sorted(names)[1::2]) and
          os.stat(big).st_size > 4096, f"{len(ls1)} {len(ls2)} size={os.stat(big).st_size}")

    # name length limits
    check("name_255_ok", _errno_of(lambda: (m / ("a" * 255)).write_bytes(b"")) == 0)
    check("name_256_enametoolong",
          _errno_of(lambda: (m / ("b" * 256)).write_bytes(b"")) == errno.ENAMETOOLONG)

    # chmod / chown / utimes with nanoseconds
    c = m / "attrs"
    c.write_bytes(b"")
    os.chown(c, 1234, 5678)  # before chmod: chown clears the setuid bit
    os.chmod(c, 0o4751)
    os.utime(c, ns=(1_000_000_123, 2_000_000_456))
    st = os.stat(c)
    check("chmod_chown_utimes", stat.S_IMODE(st.st_mode) == 0o4751 and st.st_uid == 1234 and
          st.st_gid == 5678 and st.st_atime_ns == 1_000_000_123 and
          st.st_mtime_ns == 2_000_000_456, st)
    # permission checks are the VFS's: a non-owner cannot chmod
    pid = os.fork()
    if pid == 0:
        os.setgid(4321)
        os.setuid(4321)
        os._exit(_errno_of(lambda: os.chmod(c, 0o777)))
    _, status = os.waitpid(pid, 0)
    check("chmod_eperm_non_owner", os.waitstatus_to_exitcode(status) == errno.EPERM)

    # statfs follows usage
    sv1 = os.statvfs(m)
    (m / "tenmb").write_bytes(_pattern(2, 10 * 1024 * 1024))
    os.sync()
    sv2 = os.statvfs(m)
    used = sv1.f_bfree - sv2.f_bfree
    check("statfs", sv1.f_bsize == 4096 and sv1.f_namemax == 255 and 2560 <= used <= 2600
          and sv2.f_ffree == sv1.f_ffree - 1, f"used={used}")
    os.unlink(m / "tenmb")
    os.sync()
    check("statfs_after_unlink", os.statvfs(m).f_bfree == sv1.f_bfree)

    # concurrent writers in different files and directories
    errs: list = []

    def writer(k: int) -> None:
        try:
            dd = m / f"conc{k}"
            dd.mkdir()
            for j in range(40):
                (dd / f"f{j}").write_bytes(_pattern(k * 1000 + j, 20000 + j))
            for j in range(40):
                if (dd / f"f{j}").read_bytes() != _pattern(k * 1000 + j, 20000 + j):
                    errs.append((k, j))
        except OSError as e:
            errs.append(e)
    ths = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    check("concurrent_writers", not errs, errs[:3])

    # state for guest_verify
    (m / "persist").mkdir()
    (m / "persist" / "data").write_bytes(_pattern(3, 777777))
    os.symlink("data", m / "persist" / "sym")
    os.utime(m / "persist" / "data", ns=(5_000_000_001, 6_000_000_002))
    os.sync()
    return r


def guest_verify(m: Path) -> dict:
    """After umount + rmmod + insmod + mount: what guest_ops left is there."""
    r: dict = {}
    p = m / "persist"
    st = os.stat(p / "data")
    r["persist_data"] = [(p / "data").read_bytes() == _pattern(3, 777777), ""]
    r["persist_mtime_ns"] = [st.st_mtime_ns == 6_000_000_002, st.st_mtime_ns]
    r["persist_symlink"] = [os.readlink(p / "sym") == "data", ""]
    r["persist_blob"] = [(m / "blob").read_bytes() == _pattern(1, 3 * 1024 * 1024 + 123), ""]
    fd = os.open(m / "frag", os.O_RDONLY)
    ok = all(os.pread(fd, 4096, 2 * i * 4096) == i.to_bytes(4, "little") * 1024
             for i in range(0, 1200, 11))
    os.close(fd)
    r["persist_extent_chain"] = [ok, ""]
    r["persist_hardlink"] = [os.stat(m / "l_hard").st_nlink == 2, ""]
    r["persist_attrs"] = [stat.S_IMODE(os.stat(m / "attrs").st_mode) == 0o4751 and
                          os.stat(m / "attrs").st_uid == 1234, ""]
    r["persist_bigdir"] = [len(os.listdir(m / "bigdir")) == 300, len(os.listdir(m / "bigdir"))]
    # shrinking the fragmented file frees its chain blocks
    before = os.statvfs(m).f_bfree
    os.truncate(m / "frag", 4096 * 10)
    os.sync()
    after = os.statvfs(m).f_bfree
    r["truncate_frees_chain"] = [after - before >= 1190, after - before]
    # remount read-only refuses writes, then rw again
    return r


def guest_ro(m: Path) -> dict:
    r = {}
    r["ro_write_erofs"] = [_errno_of(lambda: (m / "nope").write_bytes(b"x")) == errno.EROFS, ""]
    r["ro_read_ok"] = [(m / "persist" / "data").read_bytes() == _pattern(3, 777777), ""]
    return r


def guest_offline(img: Path) -> dict:
    """The offline reader (vexfs image) sees what the kernel wrote."""
    import subprocess

    cli = str(REPO / ".venv/bin/vexfs")

    def run(*args: str) -> bytes:
        return subprocess.run([cli, "image", *args], check=True, capture_output=True).stdout

    r = {}
    r["offline_cat"] = [run("cat", str(img), "/persist/data") == _pattern(3, 777777), ""]
    r["offline_cat_chain"] = [run("cat", str(img), "/blob") == _pattern(1, 3 * 1024 * 1024 + 123), ""]
    names = set(run("ls", str(img), "/bigdir").decode().split())
    r["offline_ls"] = [len(names) == 300 and all(n.startswith("entry-") for n in names),
                       len(names)]
    return r


GUEST_PHASES = {"ops": guest_ops, "verify": guest_verify, "ro": guest_ro,
                "offline": guest_offline}

# ----------------------------------------------------------------- host side

GUEST_PREAMBLE = f"""
set -e
cd {REPO}
modprobe loop
insmod /tmp/vexfs.ko
truncate -s 200M /tmp/v.img
.venv/bin/mkfs.vexfs -q /tmp/v.img
LOOP=$(losetup -f --show /tmp/v.img)
mkdir -p /mnt/v
"""


def _phase(name: str, arg: str = "/mnt/v") -> str:
    # printf, not echo: dash's echo would expand the \\n escapes inside the JSON
    return f'printf "RESULT-{name}: %s\\n" "$({PY} {THIS} {name} {arg})"\n'


def _results(output: str) -> dict:
    out = {}
    for line in output.splitlines():
        if line.startswith("RESULT-"):
            tag, _, js = line.partition(": ")
            out[tag[len("RESULT-"):]] = json.loads(js)
    return out


def _assert_checks(res: dict) -> None:
    failed = {k: v for k, v in res.items() if not v[0]}
    assert not failed, f"failed checks: {failed}"


def test_vfs_operations_persist_and_fsck_clean():
    import pytest  # noqa: F401  (marker below needs pytest at import on host)
    from vexfs.vm.quick import run_script

    script = GUEST_PREAMBLE + "mount -t vexfs $LOOP /mnt/v\n" + _phase("ops") + """
umount /mnt/v
rmmod vexfs
# detach the loop device too: every block is read from the image again
losetup -d $LOOP
echo 3 > /proc/sys/vm/drop_caches
insmod /tmp/vexfs.ko
LOOP=$(losetup -f --show /tmp/v.img)
mount -t vexfs $LOOP /mnt/v
""" + _phase("verify") + """
mount -o remount,ro /mnt/v
grep ' /mnt/v ' /proc/mounts
""" + _phase("ro") + """
mount -o remount,rw,errors=continue /mnt/v
grep ' /mnt/v ' /proc/mounts
touch /mnt/v/after-rw
umount /mnt/v
echo "COUNTERS $(cat /sys/fs/vexfs/inodes) $(cat /sys/fs/vexfs/buffers) $(cat /sys/fs/vexfs/mounts) $(cat /sys/fs/vexfs/extent_maps)"
losetup -d $LOOP
""" + _phase("offline", "/tmp/v.img") + """if .venv/bin/fsck.vexfs -n -f /tmp/v.img; then echo FSCK-RC=0; else echo "FSCK-RC=$?"; fi
rmmod vexfs
dmesg | grep -i 'vexfs (' || true
"""
    res = run_script(script, modules=[MODULE], timeout=600)
    assert not res.crashed, res.console[-3000:]
    assert res.returncode == 0, res.output[-3000:]
    phases = _results(res.output)
    assert set(phases) == {"ops", "verify", "ro", "offline"}, res.output[-3000:]
    for checks in phases.values():
        _assert_checks(checks)
    assert len(phases["ops"]) >= 35
    assert "/mnt/v vexfs ro" in res.output
    assert "/mnt/v vexfs rw,relatime,errors=continue" in res.output
    assert "COUNTERS 0 0 0 0" in res.output, res.output[-2000:]
    assert "FSCK-RC=0" in res.output, res.output[-3000:]
    assert "error:" not in res.output


try:
    import pytest

    test_vfs_operations_persist_and_fsck_clean = pytest.mark.vm(
        pytest.mark.timeout(900)(test_vfs_operations_persist_and_fsck_clean))
except ImportError:  # the guest may run this file without pytest
    pass


if __name__ == "__main__":
    phase, mnt = sys.argv[1], Path(sys.argv[2])
    print(json.dumps(GUEST_PHASES[phase](mnt)))
