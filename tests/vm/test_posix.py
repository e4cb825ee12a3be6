"""POSIX behaviour and the features ext4 users expect, on vexfs and on ext4.

Like tests/vm/test_fs_ops.py this file is both the host-side pytest module
(one VM boot) and the guest-side program: the guest runs
``python tests/vm/test_posix.py <phase> <mountpoint> <fs>`` and prints one
JSON object ``{check: [ok, detail]}``. Every phase runs on a vexfs mount
and on an ext4 mount in the same VM: ext4 passing the same checks is what
validates them (a check that ext4 fails is a wrong check, not a finding).

Phases: ``posix`` (permissions as unprivileged users, sticky and setgid
directories, S_ISUID/S_ISGID clearing, time stamps per call, errnos, open
flags), ``features`` (xattrs, POSIX ACLs with getfacl/setfacl, chattr +i/+a,
FIEMAP against the block device, O_TMPFILE, file handles - the
export_operations NFS uses), ``persist`` (after umount and a cache drop:
xattrs, ACLs, flags still there), ``ro`` (EROFS for every modifying call on
a read-only mount).

EMLINK at the documented maximum (65000 links, sb->s_max_links) makes
65000 names of one file with a C helper's link(2) loop
(vexfs/fuzz/guest/links_max.c, built on the host; a Python loop took minutes
under TCG) and removes them again.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import re
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PY = REPO / ".venv/bin/python"
THIS = Path(__file__).resolve()
MODULE = REPO / "kernel/build/vexfs.ko"

# ---------------------------------------------------------------- guest side

UA, UB, GA, GB, GSHARED = 1001, 1002, 1001, 1002, 1500
AT_FDCWD = -100
AT_SYMLINK_FOLLOW = 0x400
RENAME_NOREPLACE = 1
FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_IMMUTABLE_FL, FS_APPEND_FL = 0x10, 0x20
FS_IOC_FIEMAP = 0xC020660B
FIEMAP_FLAG_SYNC = 0x1
FIEMAP_EXTENT_LAST = 0x1

_libc = ctypes.CDLL(None, use_errno=True)


def _err(fn: Callable[[], object]) -> int:
    """The errno ``fn`` fails with, 0 if it succeeds."""
    try:
        fn()
    except OSError as e:
        return e.errno or -1
    return 0


def _name(e: int) -> str:
    return errno.errorcode.get(e, str(e)) if e else "OK"


def as_user(uid: int, gid: int, fn: Callable[[], object],
            groups: tuple[int, ...] = ()) -> object:
    """Run ``fn`` in a child with these credentials (no capabilities); its
    return value (JSON-able) or ``{"errno": n}`` if it raised OSError."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups(list(groups))
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            try:
                out: object = fn()
            except OSError as e:
                out = {"errno": e.errno}
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data) if data else {"errno": -1}


def user_err(uid: int, gid: int, fn: Callable[[], object],
             groups: tuple[int, ...] = ()) -> int:
    """The errno ``fn`` fails with as that user, 0 on success."""
    def wrapped() -> object:
        fn()
        return 0
    res = as_user(uid, gid, wrapped, groups)
    return res["errno"] if isinstance(res, dict) else int(res)  # type: ignore[return-value]


def _linkat_follow(src: str, dst: str) -> int:
    rc = _libc.linkat(AT_FDCWD, src.encode(), AT_FDCWD, dst.encode(), AT_SYMLINK_FOLLOW)
    return 0 if rc == 0 else ctypes.get_errno()


def _renameat2(old: str, new: str, flags: int) -> int:
    rc = _libc.renameat2(AT_FDCWD, old.encode(), AT_FDCWD, new.encode(), flags)
    return 0 if rc == 0 else ctypes.get_errno()


def _fresh(m: Path, name: str) -> Path:
    d = m / name
    os.mkdir(d)
    os.chmod(d, 0o777)
    return d


class Checks:
    def __init__(self) -> None:
        self.r: dict[str, list] = {}

    def __call__(self, name: str, ok: bool, detail: object = "") -> None:
        self.r[name] = [bool(ok), str(detail)]

    def errno_is(self, name: str, got: int, *want: int) -> None:
        self(name, got in want, f"got {_name(got)}, want {'/'.join(_name(w) for w in want)}")


def _ts(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns


def _times_changed(before: os.stat_result, after: os.stat_result) -> str:
    """Which of a/m/c changed, e.g. "mc"."""
    return "".join(k for k, b, a in zip("amc", _ts(before), _ts(after), strict=True) if a != b)


def posix_phase(m: Path, fs: str) -> dict:
    c = Checks()
    os.umask(0o022)

    # -- sticky directories ------------------------------------------------
    sd = _fresh(m, "sticky")
    os.chmod(sd, 0o1777)
    as_user(UA, GA, lambda: Path(sd / "a-file").write_text("a") and 0)
    as_user(UA, GA, lambda: os.mkdir(sd / "a-dir") or 0)
    c.errno_is("sticky_other_unlink", user_err(UB, GB, lambda: os.unlink(sd / "a-file")),
               errno.EPERM)
    c.errno_is("sticky_other_rename", user_err(UB, GB, lambda: os.rename(
        sd / "a-file", sd / "b-name")), errno.EPERM)
    c.errno_is("sticky_other_rmdir", user_err(UB, GB, lambda: os.rmdir(sd / "a-dir")),
               errno.EPERM)
    as_user(UB, GB, lambda: Path(sd / "b-file").write_text("b") and 0)
    c.errno_is("sticky_other_replace", user_err(UB, GB, lambda: os.rename(
        sd / "b-file", sd / "a-file")), errno.EPERM)
    c.errno_is("sticky_owner_unlink", user_err(UA, GA, lambda: os.unlink(sd / "a-file")), 0)
    c.errno_is("sticky_root_unlink", _err(lambda: os.unlink(sd / "b-file")), 0)
    # the directory's owner may delete in it
    os.chown(sd, UB, GB)
    c.errno_is("sticky_dir_owner_rmdir", user_err(UB, GB, lambda: os.rmdir(sd / "a-dir")), 0)

    # -- setgid directories ------------------------------------------------
    gd = _fresh(m, "sgid")
    os.chown(gd, 0, GSHARED)
    os.chmod(gd, 0o2777)
    Path(gd / "root-file").write_text("x")
    st = os.stat(gd / "root-file")
    c("sgid_file_group", st.st_gid == GSHARED, st.st_gid)
    c("sgid_file_no_sgid", not st.st_mode & stat.S_ISGID, oct(st.st_mode))
    os.mkdir(gd / "sub")
    st = os.stat(gd / "sub")
    c("sgid_subdir_group", st.st_gid == GSHARED, st.st_gid)
    c("sgid_subdir_inherits", bool(st.st_mode & stat.S_ISGID), oct(st.st_mode))
    as_user(UA, GA, lambda: Path(gd / "ua-file").write_text("u") and 0)
    st = os.stat(gd / "ua-file")
    c("sgid_user_file_group", st.st_gid == GSHARED and st.st_uid == UA, (st.st_uid, st.st_gid))
    as_user(UA, GA, lambda: os.mkdir(gd / "ua-dir") or 0)
    st = os.stat(gd / "ua-dir")
    c("sgid_user_subdir", st.st_gid == GSHARED and bool(st.st_mode & stat.S_ISGID),
      (st.st_gid, oct(st.st_mode)))
    # a non-member creating an S_ISGID|S_IXGRP file in it: S_ISGID is dropped
    fd = as_user(UA, GA, lambda: os.close(os.open(gd / "ua-sgid", os.O_CREAT | os.O_WRONLY,
                                                  0o2755)) or 0)
    st = os.stat(gd / "ua-sgid")
    c("sgid_nonmember_create_drops_sgid", fd == 0 and not st.st_mode & stat.S_ISGID,
      oct(st.st_mode))

    # -- S_ISUID / S_ISGID cleared on write and on chown by non-root -----
    wd = _fresh(m, "privs")
    f = wd / "suid"
    f.write_text("v1")
    os.chown(f, UA, GA)
    os.chmod(f, 0o6755)

    def write_it() -> object:
        with open(f, "a") as fh:
            fh.write("more")
        return 0
    as_user(UA, GA, write_it)
    st = os.stat(f)
    c("suid_cleared_on_write", not st.st_mode & (stat.S_ISUID | stat.S_ISGID), oct(st.st_mode))
    os.chmod(f, 0o6755)
    with open(f, "a") as fh:       # root has CAP_FSETID: kept
        fh.write("root")
    st = os.stat(f)
    c("suid_kept_on_root_write", st.st_mode & 0o7777 == 0o6755, oct(st.st_mode))
    os.chmod(f, 0o6755)
    as_user(UA, GA, lambda: os.truncate(f, 1) or 0)
    st = os.stat(f)
    c("suid_cleared_on_truncate", not st.st_mode & stat.S_ISUID, oct(st.st_mode))
    os.chmod(f, 0o6755)
    got = user_err(UA, GA, lambda: os.chown(f, -1, GSHARED), groups=(GSHARED,))
    st = os.stat(f)
    c("suid_cleared_on_user_chown", got == 0 and st.st_gid == GSHARED and
      not st.st_mode & (stat.S_ISUID | stat.S_ISGID), (got, oct(st.st_mode)))
    # a non-member may not give a file the S_ISGID bit of a group it is not in
    g = wd / "sgid-nonmember"
    g.write_text("g")
    os.chown(g, UA, GSHARED)
    as_user(UA, GA, lambda: os.chmod(g, 0o2755) or 0)
    st = os.stat(g)
    c("sgid_chmod_nonmember_dropped", not st.st_mode & stat.S_ISGID, oct(st.st_mode))

    # -- time stamps per call -------------------------------------------------
    td = _fresh(m, "times")
    os.chmod(td, 0o755)

    def step(name: str, target: Path, op: Callable[[], object], want: str,
             follow: bool = True, moved_to: Path | None = None) -> None:
        before = os.stat(target, follow_symlinks=follow)
        time.sleep(0.02)
        op()
        after = os.stat(moved_to or target, follow_symlinks=follow)
        got = _times_changed(before, after)
        c(f"time_{name}", got == want, f"changed {got!r}, want {want!r}")

    step("create_parent", td, lambda: Path(td / "f").write_bytes(b""), "mc")
    st = os.stat(td / "f")
    c("time_create_new", st.st_mtime_ns == st.st_ctime_ns == st.st_atime_ns,
      _ts(st))
    step("write", td / "f", lambda: (td / "f").write_bytes(b"data"), "mc")
    step("read_relatime", td / "f", lambda: (td / "f").read_bytes(), "a")
    step("link_file", td / "f", lambda: os.link(td / "f", td / "f2"), "c")
    step("link_parent", td, lambda: os.link(td / "f", td / "f3"), "mc")
    step("unlink_file", td / "f", lambda: os.unlink(td / "f3"), "c")
    step("unlink_parent", td, lambda: os.unlink(td / "f2"), "mc")
    os.mkdir(td / "src")
    os.mkdir(td / "dst")
    Path(td / "src" / "x").write_text("x")
    step("rename_src_dir", td / "src", lambda: os.rename(td / "src" / "x", td / "dst" / "x"),
         "mc")
    Path(td / "src" / "y").write_text("y")
    step("rename_dst_dir", td / "dst", lambda: os.rename(td / "src" / "y", td / "dst" / "y"),
         "mc")
    step("rename_inode", td / "dst" / "y", lambda: os.rename(td / "dst" / "y",
                                                             td / "dst" / "y2"), "c",
         moved_to=td / "dst" / "y2")
    Path(td / "dst" / "victim").write_text("v")
    os.link(td / "dst" / "victim", td / "victim-link")
    step("rename_replaced", td / "victim-link", lambda: os.rename(
        td / "dst" / "y2", td / "dst" / "victim"), "c")
    step("mkdir_parent", td, lambda: os.mkdir(td / "sub"), "mc")
    step("rmdir_parent", td, lambda: os.rmdir(td / "sub"), "mc")
    step("truncate", td / "dst" / "x", lambda: os.truncate(td / "dst" / "x", 100), "mc")
    step("truncate_shrink", td / "dst" / "x", lambda: os.truncate(td / "dst" / "x", 10), "mc")

    def ftrunc(size: int) -> None:
        with open(td / "dst" / "x", "r+b") as fh:
            os.ftruncate(fh.fileno(), size)
    step("ftruncate", td / "dst" / "x", lambda: ftrunc(5000), "mc")
    step("ftruncate_same", td / "dst" / "x", lambda: ftrunc(5000), "mc")
    step("chmod", td / "dst" / "x", lambda: os.chmod(td / "dst" / "x", 0o600), "c")
    step("chown", td / "dst" / "x", lambda: os.chown(td / "dst" / "x", UA, GA), "c")
    step("utime_now", td / "dst" / "x", lambda: os.utime(td / "dst" / "x"), "amc")
    os.utime(td / "dst" / "x", ns=(1_000_000_000_123_456_789, 1_100_000_000_987_654_321))
    st = os.stat(td / "dst" / "x")
    c("time_utime_set_ns", (st.st_atime_ns, st.st_mtime_ns) ==
      (1_000_000_000_123_456_789, 1_100_000_000_987_654_321), _ts(st))
    os.symlink("x", td / "dst" / "sl")
    step("symlink_parent", td / "dst", lambda: os.symlink("x", td / "dst" / "sl2"), "mc")
    os.utime(td / "dst" / "sl", ns=(5 * 10**9, 6 * 10**9), follow_symlinks=False)
    st = os.lstat(td / "dst" / "sl")
    c("time_lutimes", (st.st_atime_ns, st.st_mtime_ns) == (5 * 10**9, 6 * 10**9), _ts(st))

    # -- EACCES vs EPERM -----------------------------------------------------
    pd = _fresh(m, "perm")
    os.chown(pd, UA, GA)
    os.chmod(pd, 0o755)
    pf = pd / "private"
    pf.write_text("secret")
    os.chown(pf, UA, GA)
    os.chmod(pf, 0o600)
    c.errno_is("eacces_open_read", user_err(UB, GB, lambda: open(pf).close()), errno.EACCES)
    c.errno_is("eperm_chmod", user_err(UB, GB, lambda: os.chmod(pf, 0o666)), errno.EPERM)
    c.errno_is("eperm_chown", user_err(UB, GB, lambda: os.chown(pf, UB, GB)), errno.EPERM)
    c.errno_is("eperm_chown_by_owner", user_err(UA, GA, lambda: os.chown(pf, UB, -1)),
               errno.EPERM)
    c.errno_is("eperm_utime_explicit", user_err(UB, GB, lambda: os.utime(pf, (1, 1))),
               errno.EPERM)
    c.errno_is("eacces_utime_now", user_err(UB, GB, lambda: os.utime(pf)), errno.EACCES)
    os.chmod(pf, 0o666)
    c.errno_is("utime_now_writable_ok", user_err(UB, GB, lambda: os.utime(pf)), 0)
    c.errno_is("eacces_create_in_dir", user_err(UB, GB, lambda: open(pd / "new", "w").close()),
               errno.EACCES)
    c.errno_is("eacces_unlink_in_dir", user_err(UB, GB, lambda: os.unlink(pf)), errno.EACCES)
    os.chmod(pd, 0o700)
    c.errno_is("eacces_search", user_err(UB, GB, lambda: os.stat(pf)), errno.EACCES)
    md = _fresh(m, "mknod")
    c.errno_is("eperm_mknod_dev", user_err(UB, GB, lambda: os.mknod(
        md / "dev", stat.S_IFCHR | 0o600, os.makedev(1, 3))), errno.EPERM)

    # -- names ----------------------------------------------------------------
    nd = _fresh(m, "names")
    n255, n256 = "n" * 255, "n" * 256
    c.errno_is("name_255_ok", _err(lambda: open(nd / n255, "w").close()), 0)
    c.errno_is("enametoolong_create", _err(lambda: open(nd / n256, "w").close()),
               errno.ENAMETOOLONG)
    c.errno_is("enametoolong_mkdir", _err(lambda: os.mkdir(nd / n256)), errno.ENAMETOOLONG)
    c.errno_is("enametoolong_stat", _err(lambda: os.stat(nd / n256)), errno.ENAMETOOLONG)
    c.errno_is("enametoolong_symlink", _err(lambda: os.symlink("t", nd / n256)),
               errno.ENAMETOOLONG)
    c.errno_is("enametoolong_link", _err(lambda: os.link(nd / n255, nd / n256)),
               errno.ENAMETOOLONG)
    c.errno_is("enametoolong_rename", _err(lambda: os.rename(nd / n255, nd / n256)),
               errno.ENAMETOOLONG)
    os.symlink("loop-b", nd / "loop-a")
    os.symlink("loop-a", nd / "loop-b")
    c.errno_is("eloop_cycle", _err(lambda: open(nd / "loop-a").close()), errno.ELOOP)
    prev = "chain-target"
    Path(nd / prev).write_text("end")
    for i in range(41):
        os.symlink(prev, nd / f"chain-{i}")
        prev = f"chain-{i}"
    c.errno_is("symlink_40_hops_ok", _err(lambda: open(nd / "chain-39").close()), 0)
    c.errno_is("eloop_41_hops", _err(lambda: open(nd / "chain-40").close()), errno.ELOOP)
    c.errno_is("eloop_nofollow", _err(lambda: os.close(os.open(
        nd / "chain-0", os.O_RDONLY | os.O_NOFOLLOW))), errno.ELOOP)

    # -- rename and directory errnos ----------------------------------------
    rd = _fresh(m, "ren")
    for d in ("a", "b", "empty"):
        os.mkdir(rd / d)
    Path(rd / "b" / "inside").write_text("i")
    Path(rd / "file").write_text("f")
    c.errno_is("enotempty_rename_over_dir", _err(lambda: os.rename(rd / "a", rd / "b")),
               errno.ENOTEMPTY, errno.EEXIST)
    c.errno_is("rename_over_empty_dir_ok", _err(lambda: os.rename(rd / "a", rd / "empty")), 0)
    c("rename_over_empty_dir_result", (rd / "empty").is_dir() and not (rd / "a").exists())
    c.errno_is("eexist_noreplace", _renameat2(str(rd / "file"), str(rd / "b"),
                                              RENAME_NOREPLACE), errno.EEXIST)
    c.errno_is("enotdir_rename_dir_over_file", _err(lambda: os.rename(rd / "b", rd / "file")),
               errno.ENOTDIR)
    c.errno_is("eisdir_rename_file_over_dir", _err(lambda: os.rename(rd / "file", rd / "b")),
               errno.EISDIR)
    c.errno_is("einval_rename_into_self", _err(lambda: os.rename(rd / "b", rd / "b" / "sub")),
               errno.EINVAL)
    c.errno_is("enotempty_rmdir", _err(lambda: os.rmdir(rd / "b")), errno.ENOTEMPTY)
    c.errno_is("eexist_mkdir", _err(lambda: os.mkdir(rd / "b")), errno.EEXIST)
    c.errno_is("eisdir_open_write", _err(lambda: open(rd / "b", "w").close()), errno.EISDIR)
    c.errno_is("eisdir_unlink_dir", _err(lambda: os.unlink(rd / "b")), errno.EISDIR)
    c.errno_is("enotdir_path_through_file", _err(lambda: os.stat(rd / "file" / "x")),
               errno.ENOTDIR)
    c.errno_is("enotdir_rmdir_file", _err(lambda: os.rmdir(rd / "file")), errno.ENOTDIR)
    c.errno_is("eperm_link_dir", _err(lambda: os.link(rd / "b", rd / "b-link")), errno.EPERM)
    other = Path("/tmp/posix-exdev")
    other.mkdir(exist_ok=True)
    c.errno_is("exdev_rename", _err(lambda: os.rename(rd / "file", other / "file")),
               errno.EXDEV)
    c.errno_is("exdev_link", _err(lambda: os.link(rd / "file", other / "file")), errno.EXDEV)

    # -- open flags ---------------------------------------------------------------
    od = _fresh(m, "open")
    Path(od / "exists").write_text("content")
    c.errno_is("o_excl_existing", _err(lambda: os.close(os.open(
        od / "exists", os.O_CREAT | os.O_EXCL | os.O_WRONLY))), errno.EEXIST)
    os.symlink("nowhere", od / "dangling")
    c.errno_is("o_excl_dangling_symlink", _err(lambda: os.close(os.open(
        od / "dangling", os.O_CREAT | os.O_EXCL | os.O_WRONLY))), errno.EEXIST)
    c("o_excl_dangling_not_created", not (od / "nowhere").exists())
    c.errno_is("o_excl_new_ok", _err(lambda: os.close(os.open(
        od / "new", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))), 0)
    before = os.stat(od / "exists")
    time.sleep(0.02)
    os.close(os.open(od / "exists", os.O_WRONLY | os.O_TRUNC))
    after = os.stat(od / "exists")
    c("o_trunc", after.st_size == 0 and _times_changed(before, after) == "mc",
      (after.st_size, _times_changed(before, after)))
    c.errno_is("o_directory_on_file", _err(lambda: os.close(os.open(
        od / "exists", os.O_RDONLY | os.O_DIRECTORY))), errno.ENOTDIR)
    c.errno_is("o_directory_on_dir", _err(lambda: os.close(os.open(
        od, os.O_RDONLY | os.O_DIRECTORY))), 0)
    c.errno_is("o_nofollow_symlink", _err(lambda: os.close(os.open(
        od / "dangling", os.O_RDONLY | os.O_NOFOLLOW))), errno.ELOOP)
    fifo = od / "fifo"
    os.mkfifo(fifo, 0o644)
    c("fifo_type", stat.S_ISFIFO(os.lstat(fifo).st_mode))
    c.errno_is("fifo_wronly_nonblock_no_reader", _err(lambda: os.close(os.open(
        fifo, os.O_WRONLY | os.O_NONBLOCK))), errno.ENXIO)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    wfd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    c.errno_is("fifo_read_empty", _err(lambda: os.read(rfd, 1)), errno.EAGAIN)
    os.write(wfd, b"through the fifo")
    c("fifo_data", os.read(rfd, 100) == b"through the fifo")
    os.close(wfd)
    c("fifo_eof_after_writer", os.read(rfd, 1) == b"")
    os.close(rfd)
    c("fifo_size_zero", os.stat(fifo).st_size == 0)

    # -- link count limit ----------------------------------------------------------
    # 65000 names (sb->s_max_links, ext4's EXT4_LINK_MAX too) made by a C
    # helper's link(2) loop; the 65000th link(2) must fail with EMLINK
    helper = os.environ.get("VEXFS_LINKS_MAX", "")
    ld = _fresh(m, "links")
    target = ld / "t"
    target.write_text("t")
    t0 = time.monotonic()
    out = _run(helper, str(target), str(ld)) if helper else None
    # "LINKS names=N errno=E nlink=L link_ms=T", then "CLEANUP unlinked=U nlink=1"
    links = re.search(r"^LINKS (.*)$", out.stdout, re.M) if out else None
    clean = re.search(r"^CLEANUP (.*)$", out.stdout, re.M) if out else None
    lm = dict(re.findall(r"(\w+)=(\d+)", links.group(1))) if links else {}
    cm = dict(re.findall(r"(\w+)=(\d+)", clean.group(1))) if clean else {}
    c("emlink_at_65000", lm.get("names") == "65000" and lm.get("errno") == str(errno.EMLINK)
      and lm.get("nlink") == "65000",
      f"{out.stdout.strip() if out else 'VEXFS_LINKS_MAX not set'} "
      f"({time.monotonic() - t0:.0f} s)")
    c("emlink_cleanup", out is not None and out.returncode == 0 and
      cm.get("unlinked") == "64999" and cm.get("nlink") == "1" and
      os.stat(target).st_nlink == 1 and
      os.listdir(ld) == ["t"], (out.stderr[-200:] if out else "", os.listdir(ld)[:5]))
    return c.r


# -- features --------------------------------------------------------------------

def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False)


def _fiemap(fd: int, count: int = 32) -> list[tuple[int, int, int, int]]:
    """(logical, physical, length, flags) of a file's extents."""
    head = struct.pack("=QQIIII", 0, 2**64 - 1, FIEMAP_FLAG_SYNC, 0, count, 0)
    buf = bytearray(head + bytes(56 * count))
    fcntl.ioctl(fd, FS_IOC_FIEMAP, buf)
    n = struct.unpack_from("=I", buf, 20)[0]
    out = []
    for i in range(n):
        lo, ph, ln, _r0, _r1, fl = struct.unpack_from("=QQQQQI", buf, 32 + 56 * i)
        out.append((lo, ph, ln, fl))
    return out


class FileHandle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                ("f_handle", ctypes.c_ubyte * 128)]


def _name_to_handle(path: Path) -> tuple[FileHandle, int]:
    fh = FileHandle()
    fh.handle_bytes = 128
    mount_id = ctypes.c_int()
    rc = _libc.name_to_handle_at(AT_FDCWD, str(path).encode(), ctypes.byref(fh),
                                 ctypes.byref(mount_id), 0)
    if rc:
        raise OSError(ctypes.get_errno(), "name_to_handle_at")
    return fh, mount_id.value


def _open_by_handle(mount_fd: int, fh: FileHandle, flags: int = os.O_RDONLY) -> int:
    fd = _libc.open_by_handle_at(mount_fd, ctypes.byref(fh), flags)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "open_by_handle_at")
    return int(fd)


def _drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3")


def features_phase(m: Path, fs: str, dev: str) -> dict:
    c = Checks()
    os.umask(0o022)
    fd_ = _fresh(m, "feat")
    os.chmod(fd_, 0o755)
    f = fd_ / "x.txt"
    f.write_text("xattr file")

    # -- xattrs: syscalls ----------------------------------------------------
    os.setxattr(f, "user.color", b"blue")
    c("xattr_get", os.getxattr(f, "user.color") == b"blue")
    c.errno_is("xattr_create_exists", _err(lambda: os.setxattr(
        f, "user.color", b"red", os.XATTR_CREATE)), errno.EEXIST)
    c.errno_is("xattr_replace_missing", _err(lambda: os.setxattr(
        f, "user.none", b"x", os.XATTR_REPLACE)), errno.ENODATA)
    os.setxattr(f, "user.color", b"green", os.XATTR_REPLACE)
    c("xattr_replace", os.getxattr(f, "user.color") == b"green")
    c.errno_is("xattr_get_missing", _err(lambda: os.getxattr(f, "user.none")), errno.ENODATA)
    os.setxattr(f, "user.empty", b"")
    c("xattr_empty_value", os.getxattr(f, "user.empty") == b"")
    big = bytes(range(256)) * 12            # 3072 bytes
    os.setxattr(f, "user.big", big)
    c("xattr_big_value", os.getxattr(f, "user.big") == big)
    c.errno_is("xattr_too_big", _err(lambda: os.setxattr(f, "user.huge", b"h" * 8000)),
               errno.ENOSPC, errno.E2BIG)
    size = _libc.getxattr(str(f).encode(), b"user.big", None, 0)
    c("xattr_size_query", size == len(big), size)
    buf = ctypes.create_string_buffer(10)
    rc = _libc.getxattr(str(f).encode(), b"user.big", buf, 10)
    c.errno_is("xattr_erange", ctypes.get_errno() if rc < 0 else 0, errno.ERANGE)
    os.setxattr(f, "trusted.t", b"root only")
    os.setxattr(f, "security.s", b"label")
    names = set(os.listxattr(f))
    c("xattr_list_root", {"user.color", "user.empty", "user.big", "trusted.t",
                          "security.s"} <= names, sorted(names))
    os.chmod(f, 0o666)
    ulist = as_user(UA, GA, lambda: sorted(os.listxattr(f)))
    c("xattr_trusted_hidden_from_user", isinstance(ulist, list) and "trusted.t" not in ulist
      and "user.color" in ulist, ulist)
    c.errno_is("xattr_user_sets_trusted", user_err(UA, GA, lambda: os.setxattr(
        f, "trusted.u", b"x")), errno.EPERM)
    c.errno_is("xattr_user_sets_user_on_writable", user_err(UA, GA, lambda: os.setxattr(
        f, "user.by-ua", b"ok")), 0)
    os.chmod(f, 0o644)
    c.errno_is("xattr_user_no_write_perm", user_err(UA, GA, lambda: os.setxattr(
        f, "user.denied", b"x")), errno.EACCES, errno.EPERM)
    os.removexattr(f, "user.empty")
    c("xattr_remove", "user.empty" not in os.listxattr(f))
    c.errno_is("xattr_remove_missing", _err(lambda: os.removexattr(f, "user.empty")),
               errno.ENODATA)
    os.symlink("x.txt", fd_ / "sl")
    c.errno_is("xattr_user_on_symlink", _err(lambda: os.setxattr(
        fd_ / "sl", "user.x", b"x", follow_symlinks=False)), errno.EPERM)
    os.setxattr(fd_ / "sl", "trusted.sl", b"on the link", follow_symlinks=False)
    c("xattr_trusted_on_symlink", os.getxattr(fd_ / "sl", "trusted.sl",
                                              follow_symlinks=False) == b"on the link")
    d = fd_ / "dir"
    os.mkdir(d)
    os.setxattr(d, "user.d", b"dir attr")
    c("xattr_on_dir", os.getxattr(d, "user.d") == b"dir attr")
    os.mkfifo(fd_ / "fifo")
    os.setxattr(fd_ / "fifo", "trusted.f", b"fifo attr")
    c("xattr_on_fifo", os.getxattr(fd_ / "fifo", "trusted.f") == b"fifo attr")
    # many attributes until the block is full, then remove them all
    n = 0
    while not _err(lambda: os.setxattr(d, f"user.many{n:04d}", b"v" * 20)):  # noqa: B023
        n += 1
        if n > 1000:
            break
    c("xattr_fill_block", 20 <= n < 1000, n)
    for i in range(n):
        os.removexattr(d, f"user.many{i:04d}")
    c("xattr_emptied", os.listxattr(d) == ["user.d"], os.listxattr(d))

    # -- xattr tools ----------------------------------------------------------
    r = _run("setfattr", "-n", "user.tool", "-v", "from setfattr", str(f))
    out = _run("getfattr", "-d", "-m", "-", str(f)).stdout
    c("setfattr_getfattr", r.returncode == 0 and 'user.tool="from setfattr"' in out, out)

    # -- POSIX ACLs --------------------------------------------------------------
    af = fd_ / "acl-file"
    af.write_text("acl")
    os.chmod(af, 0o600)
    c.errno_is("acl_before_denied", user_err(UA, GA, lambda: af.read_text()), errno.EACCES)
    r = _run("setfacl", "-m", f"u:{UA}:rw", str(af))
    c("setfacl_ok", r.returncode == 0, r.stderr)
    c.errno_is("acl_named_user_reads", user_err(UA, GA, lambda: af.read_text()), 0)
    c.errno_is("acl_other_user_denied", user_err(UB, GB, lambda: af.read_text()), errno.EACCES)
    out = _run("getfacl", "-c", str(af)).stdout
    c("getfacl_shows_entry", f"user:{UA}:rw-" in out and "mask::rw-" in out, out)
    c("acl_mode_group_is_mask", stat.S_IMODE(os.stat(af).st_mode) == 0o660,
      oct(os.stat(af).st_mode))
    os.chmod(af, 0o640)                        # chmod sets the mask
    out = _run("getfacl", "-c", str(af)).stdout
    c("acl_chmod_updates_mask", "mask::r--" in out, out)
    c.errno_is("acl_mask_limits_write", user_err(UA, GA, lambda: open(af, "a").close()),
               errno.EACCES)
    _run("setfacl", "-b", str(af))
    c("setfacl_b_removes", "system.posix_acl_access" not in os.listxattr(af),
      os.listxattr(af))
    c.errno_is("acl_removed_denied", user_err(UA, GA, lambda: af.read_text()), errno.EACCES)
    _run("setfacl", "-m", "u::rw,g::r,o::-", str(af))      # equivalent to the mode
    c("acl_equiv_mode_not_stored", "system.posix_acl_access" not in os.listxattr(af),
      os.listxattr(af))
    dd = fd_ / "acl-dir"
    os.mkdir(dd)
    r = _run("setfacl", "-d", "-m", f"u:{UA}:rwx,g::rx,o::-", str(dd))
    c("setfacl_default_ok", r.returncode == 0, r.stderr)
    os.umask(0o077)                            # ignored under a default ACL
    Path(dd / "child").write_text("c")
    os.mkdir(dd / "subdir")
    os.umask(0o022)
    out = _run("getfacl", "-c", str(dd / "child")).stdout
    c("acl_default_inherited_by_file", f"user:{UA}:rwx" in out, out)
    c.errno_is("acl_inherited_grants", user_err(UA, GA, lambda: (dd / "child").read_text()), 0)
    out = _run("getfacl", "-c", str(dd / "subdir")).stdout
    c("acl_default_inherited_by_subdir", f"default:user:{UA}:rwx" in out, out)
    os.umask(0o027)
    Path(fd_ / "umask-file").write_text("u")
    os.mkdir(fd_ / "umask-dir")
    os.umask(0o022)
    c("umask_applied_without_default_acl",
      stat.S_IMODE(os.stat(fd_ / "umask-file").st_mode) == 0o640 and
      stat.S_IMODE(os.stat(fd_ / "umask-dir").st_mode) == 0o750,
      (oct(os.stat(fd_ / "umask-file").st_mode), oct(os.stat(fd_ / "umask-dir").st_mode)))
    # kept for the persist phase
    _run("setfacl", "-m", f"u:{UB}:r", str(fd_ / "x.txt"))

    # -- chattr flags ------------------------------------------------------------------
    imm = fd_ / "immutable"
    imm.write_text("frozen")
    r = _run("chattr", "+i", str(imm))
    c("chattr_i", r.returncode == 0 and "i" in _run("lsattr", str(imm)).stdout.split()[0],
      r.stderr + _run("lsattr", str(imm)).stdout)
    c.errno_is("immutable_write", _err(lambda: open(imm, "a").close()), errno.EPERM)
    c.errno_is("immutable_unlink", _err(lambda: os.unlink(imm)), errno.EPERM)
    c.errno_is("immutable_rename", _err(lambda: os.rename(imm, fd_ / "moved")), errno.EPERM)
    c.errno_is("immutable_link", _err(lambda: os.link(imm, fd_ / "imm-link")), errno.EPERM)
    c.errno_is("immutable_chmod", _err(lambda: os.chmod(imm, 0o777)), errno.EPERM)
    c.errno_is("immutable_truncate", _err(lambda: os.truncate(imm, 0)), errno.EPERM)
    c.errno_is("immutable_setxattr", _err(lambda: os.setxattr(imm, "user.x", b"x")),
               errno.EPERM)
    c.errno_is("immutable_utime", _err(lambda: os.utime(imm)), errno.EPERM)
    app = fd_ / "append-only"
    app.write_text("log\n")
    _run("chattr", "+a", str(app))
    c.errno_is("append_only_trunc_open", _err(lambda: open(app, "w").close()), errno.EPERM)
    c.errno_is("append_only_write_open", _err(lambda: os.close(os.open(app, os.O_WRONLY))),
               errno.EPERM)
    c.errno_is("append_only_append_ok", _err(lambda: Path(app).open("a").write("more\n")), 0)
    c("append_only_content", app.read_text() == "log\nmore\n", app.read_text())
    c.errno_is("append_only_unlink", _err(lambda: os.unlink(app)), errno.EPERM)
    own = fd_ / "ua-own"
    own.write_text("mine")
    os.chown(own, UA, GA)

    def user_chattr(flag: int) -> None:
        fdn = os.open(own, os.O_RDONLY)
        try:
            fcntl.ioctl(fdn, FS_IOC_SETFLAGS, struct.pack("i", flag))
        finally:
            os.close(fdn)
    c.errno_is("chattr_i_needs_cap", user_err(UA, GA, lambda: user_chattr(FS_IMMUTABLE_FL)),
               errno.EPERM)
    fdn = os.open(imm, os.O_RDONLY)
    got = fcntl.ioctl(fdn, FS_IOC_GETFLAGS, struct.pack("i", 0))
    os.close(fdn)
    c("getflags_ioctl", struct.unpack("i", got)[0] & FS_IMMUTABLE_FL, got.hex())

    # -- FIEMAP (checked against the block device) --------------------------------
    ff = fd_ / "fragmented"
    pieces = {0: b"A" * 8192, 40960: b"B" * 4096, 409600: b"C" * 12288}
    with open(ff, "wb") as fh:
        for off, data in pieces.items():
            fh.seek(off)
            fh.write(data)
    os.sync()
    fdn = os.open(ff, os.O_RDONLY)
    ext = _fiemap(fdn)
    os.close(fdn)
    logical = sorted({lo for lo, _, _, _ in ext})
    c("fiemap_extents", [lo for lo in logical] == sorted(pieces) and
      bool(ext[-1][3] & FIEMAP_EXTENT_LAST) if ext else False, ext)
    same = True
    _drop_caches()                         # read the device, not stale cached pages
    with open(dev, "rb") as bd:
        for lo, ph, _ln, _fl in ext:
            want = pieces.get(lo)
            bd.seek(ph)
            if want is None or bd.read(len(want)) != want:
                same = False
    c("fiemap_physical_matches_device", bool(ext) and same, ext)
    r = _run("filefrag", "-v", str(ff))
    rows = [ln for ln in r.stdout.splitlines() if re.match(r"^\s+\d+:\s+\d+\.\.", ln)]
    c("filefrag_v", r.returncode == 0 and len(rows) == 3 and "last" in rows[-1] and
      "extent" in r.stdout.splitlines()[-1], r.stdout[-400:])

    # -- O_TMPFILE -------------------------------------------------------------
    sv0 = os.statvfs(m)
    tfd = os.open(fd_, os.O_TMPFILE | os.O_RDWR, 0o600)
    os.write(tfd, b"t" * (1 << 20))
    c("tmpfile_nlink0", os.fstat(tfd).st_nlink == 0, os.fstat(tfd).st_nlink)
    c("tmpfile_unnamed", not any(n.startswith("#") for n in os.listdir(fd_)))
    os.close(tfd)
    os.sync()
    sv1 = os.statvfs(m)
    c("tmpfile_freed_at_close", sv1.f_bfree >= sv0.f_bfree - 2 and
      sv1.f_ffree >= sv0.f_ffree - 1, (sv0.f_bfree, sv1.f_bfree, sv0.f_ffree, sv1.f_ffree))
    tfd = os.open(fd_, os.O_TMPFILE | os.O_RDWR, 0o640)
    os.write(tfd, b"named later")
    got = _linkat_follow(f"/proc/self/fd/{tfd}", str(fd_ / "from-tmpfile"))
    os.close(tfd)
    c("tmpfile_linkat", got == 0 and (fd_ / "from-tmpfile").read_bytes() == b"named later" and
      os.stat(fd_ / "from-tmpfile").st_nlink == 1, _name(got))
    tfd = os.open(fd_, os.O_TMPFILE | os.O_WRONLY | os.O_EXCL, 0o600)
    got = _linkat_follow(f"/proc/self/fd/{tfd}", str(fd_ / "never"))
    os.close(tfd)
    c.errno_is("tmpfile_excl_not_linkable", got, errno.ENOENT)

    # -- file handles (export_operations: what nfsd uses) ------------------------
    hf = fd_ / "handle-file"
    hf.write_bytes(b"by handle")
    hsub = fd_ / "hdir" / "deeper"
    os.makedirs(hsub)
    fh_file, _ = _name_to_handle(hf)
    fh_dir, _ = _name_to_handle(hsub)
    gone = fd_ / "gone"
    gone.write_text("soon deleted")
    fh_gone, _ = _name_to_handle(gone)
    mfd = os.open(m, os.O_RDONLY | os.O_DIRECTORY)
    _drop_caches()                       # decode from disk, not the dcache
    try:
        hfd = _open_by_handle(mfd, fh_file)
        data = os.read(hfd, 100)
        os.close(hfd)
        c("handle_open_file", data == b"by handle", data)
    except OSError as e:
        c("handle_open_file", False, e)
    try:
        hfd = _open_by_handle(mfd, fh_dir, os.O_RDONLY | os.O_DIRECTORY)
        path = os.readlink(f"/proc/self/fd/{hfd}")
        os.close(hfd)
        c("handle_open_dir_reconnected", path.endswith("feat/hdir/deeper"), path)
    except OSError as e:
        c("handle_open_dir_reconnected", False, e)
    os.unlink(gone)
    _drop_caches()
    c.errno_is("handle_deleted_estale", _err(lambda: os.close(_open_by_handle(mfd, fh_gone))),
               errno.ESTALE)
    os.close(mfd)
    return c.r


def persist_phase(m: Path, fs: str) -> dict:
    c = Checks()
    fd_ = m / "feat"
    f = fd_ / "x.txt"
    c("persist_xattr", os.getxattr(f, "user.color") == b"green")
    c("persist_xattr_big", os.getxattr(f, "user.big") == bytes(range(256)) * 12)
    c("persist_trusted", os.getxattr(f, "trusted.t") == b"root only")
    c("persist_symlink_xattr", os.getxattr(fd_ / "sl", "trusted.sl",
                                           follow_symlinks=False) == b"on the link")
    out = _run("getfacl", "-c", str(f)).stdout
    c("persist_acl", f"user:{UB}:r--" in out, out)
    c.errno_is("persist_acl_enforced", user_err(UB, GB, lambda: f.read_text()), 0)
    out = _run("getfacl", "-c", str(fd_ / "acl-dir")).stdout
    c("persist_default_acl", f"default:user:{UA}:rwx" in out, out)
    c("persist_immutable", "i" in _run("lsattr", str(fd_ / "immutable")).stdout.split()[0])
    c.errno_is("persist_immutable_enforced", _err(lambda: os.unlink(fd_ / "immutable")),
               errno.EPERM)
    c("persist_append", "a" in _run("lsattr", str(fd_ / "append-only")).stdout.split()[0])
    c("persist_tmpfile_link", (fd_ / "from-tmpfile").read_bytes() == b"named later")
    return c.r


def unflag_phase(m: Path, fs: str) -> dict:
    """Clear the chattr flags (so the image can be cleaned up); check -i works."""
    c = Checks()
    fd_ = m / "feat"
    for name, flag in (("immutable", "-i"), ("append-only", "-a")):
        r = _run("chattr", flag, str(fd_ / name))
        c(f"chattr_clear_{name}", r.returncode == 0, r.stderr)
    c.errno_is("unlink_after_clear", _err(lambda: os.unlink(fd_ / "immutable")), 0)
    return c.r


def ro_phase(m: Path, fs: str) -> dict:
    c = Checks()
    fd_ = m / "feat"
    f = fd_ / "x.txt"
    ro = errno.EROFS
    calls: dict[str, Callable[[], object]] = {
        "create": lambda: open(fd_ / "new-on-ro", "w").close(),
        "open_write": lambda: open(f, "r+").close(),
        "open_trunc": lambda: os.close(os.open(f, os.O_RDONLY | os.O_TRUNC)),
        "tmpfile": lambda: os.close(os.open(fd_, os.O_TMPFILE | os.O_RDWR, 0o600)),
        "mkdir": lambda: os.mkdir(fd_ / "newdir"),
        "rmdir": lambda: os.rmdir(fd_ / "dir"),
        "unlink": lambda: os.unlink(f),
        "rename": lambda: os.rename(f, fd_ / "renamed"),
        "link": lambda: os.link(f, fd_ / "hard"),
        "symlink": lambda: os.symlink("x", fd_ / "sym"),
        "mknod_fifo": lambda: os.mkfifo(fd_ / "fifo2"),
        "chmod": lambda: os.chmod(f, 0o600),
        "chown": lambda: os.chown(f, UA, GA),
        "utime": lambda: os.utime(f),
        "truncate": lambda: os.truncate(f, 0),
        "setxattr": lambda: os.setxattr(f, "user.ro", b"x"),
        "removexattr": lambda: os.removexattr(f, "user.color"),
        "set_acl": lambda: os.setxattr(f, "system.posix_acl_access",
                                       os.getxattr(f, "system.posix_acl_access")),
    }
    for name, fn in calls.items():
        c.errno_is(f"erofs_{name}", _err(fn), ro)

    def setflags() -> None:
        fdn = os.open(f, os.O_RDONLY)
        try:
            fcntl.ioctl(fdn, FS_IOC_SETFLAGS, struct.pack("i", FS_APPEND_FL))
        finally:
            os.close(fdn)
    c.errno_is("erofs_chattr", _err(setflags), ro)
    c("ro_reads_still_work", os.getxattr(f, "user.color") == b"green")
    return c.r


def guest_main(argv: list[str]) -> dict:
    phase, mnt, fs = argv[0], Path(argv[1]), argv[2]
    if phase == "posix":
        return posix_phase(mnt, fs)
    if phase == "features":
        return features_phase(mnt, fs, argv[3])
    if phase == "persist":
        return persist_phase(mnt, fs)
    if phase == "unflag":
        return unflag_phase(mnt, fs)
    if phase == "ro":
        return ro_phase(mnt, fs)
    raise SystemExit(f"unknown phase {phase}")


# ----------------------------------------------------------------- host side

PHASES = ("posix", "features", "persist", "ro", "unflag")


def _guest_script() -> str:
    run = f"{PY} {THIS}"

    def phase(name: str, fs: str, extra: str = "") -> str:
        # printf, not echo: dash's echo would expand the \\n escapes in the JSON
        err = f"/tmp/{fs}-{name}.err"
        return (f'out=$({run} {name} /mnt/{fs} {fs} {extra} 2>{err}) || '
                f'{{ cat {err}; out=\'{{"crashed": [false, "see the traceback above"]}}\'; }}\n'
                f'printf "RESULT-{fs}-{name}: %s\\n" "$out"\n')

    from vexfs.fuzz import cbuild

    s = f"""
set -e
cd {REPO}
export VEXFS_LINKS_MAX={cbuild.build("links_max")}
modprobe loop
modprobe ext4
insmod /tmp/vexfs.ko
truncate -s 256M /tmp/v.img /tmp/e.img
.venv/bin/mkfs.vexfs -q /tmp/v.img
mkfs.ext4 -q -F -b 4096 /tmp/e.img
VL=$(losetup -f --show /tmp/v.img)
EL=$(losetup -f --show /tmp/e.img)
mkdir -p /mnt/vexfs /mnt/ext4
mount -t vexfs $VL /mnt/vexfs
mount -t ext4 $EL /mnt/ext4
set +e
"""
    for fs, dev in (("vexfs", "$VL"), ("ext4", "$EL")):
        s += phase("posix", fs) + phase("features", fs, dev)
    s += """umount /mnt/vexfs; umount /mnt/ext4
echo 3 > /proc/sys/vm/drop_caches
rmmod vexfs; insmod /tmp/vexfs.ko
mount -t vexfs $VL /mnt/vexfs
mount -t ext4 $EL /mnt/ext4
"""
    for fs in ("vexfs", "ext4"):
        s += phase("persist", fs)
    s += "mount -o remount,ro /mnt/vexfs; mount -o remount,ro /mnt/ext4\n"
    for fs in ("vexfs", "ext4"):
        s += phase("ro", fs)
    s += "mount -o remount,rw /mnt/vexfs; mount -o remount,rw /mnt/ext4\n"
    for fs in ("vexfs", "ext4"):
        s += phase("unflag", fs)
    s += """umount /mnt/vexfs; umount /mnt/ext4
losetup -d $VL; losetup -d $EL
if .venv/bin/fsck.vexfs -n -f /tmp/v.img; then echo FSCK-RC=0; else echo "FSCK-RC=$?"; fi
X=$(.venv/bin/vexfs image getfattr -d /tmp/v.img /feat/x.txt | tr '\\n' '|')
printf 'OFFLINE-XATTRS: %s\\n' "$X"
e2fsck -fn /tmp/e.img >/dev/null 2>&1; echo "E2FSCK-RC=$?"
dmesg | grep -i 'vexfs (' || true
"""
    return s


def _results(output: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for line in output.splitlines():
        if line.startswith("RESULT-"):
            tag, _, js = line.partition(": ")
            try:
                out[tag[len("RESULT-"):]] = json.loads(js)
            except json.JSONDecodeError:
                out[tag[len("RESULT-"):]] = {"unparsable": [False, js[:300]]}
    return out


def test_posix_and_features_vexfs_like_ext4():
    from vexfs.vm.quick import run_script

    res = run_script(_guest_script(), modules=[MODULE], timeout=1500)
    assert not res.crashed, res.console[-3000:]
    phases = _results(res.output)
    want = {f"{fs}-{p}" for fs in ("vexfs", "ext4") for p in PHASES}
    assert set(phases) == want, (sorted(phases), res.output[-3000:])
    failed = {f"{k}:{name}": v[1] for k, checks in phases.items()
              for name, v in checks.items() if not v[0]}
    # the same program on ext4 must pass too: that validates each check
    ext4_failed = {k: v for k, v in failed.items() if k.startswith("ext4-")}
    vexfs_failed = {k: v for k, v in failed.items() if k.startswith("vexfs-")}
    assert not ext4_failed, f"checks wrong on ext4 (fix the test): {ext4_failed}"
    assert not vexfs_failed, f"vexfs differs from POSIX/ext4: {vexfs_failed}"
    for p in PHASES:
        assert set(phases[f"vexfs-{p}"]) == set(phases[f"ext4-{p}"]), p
    assert len(phases["vexfs-posix"]) >= 80 and len(phases["vexfs-features"]) >= 55
    assert "FSCK-RC=0" in res.output, res.output[-3000:]
    assert "E2FSCK-RC=0" in res.output, res.output[-3000:]
    line = next(x for x in res.output.splitlines() if x.startswith("OFFLINE-XATTRS: "))
    assert 'user.color="green"' in line and "system.posix_acl_access=" in line, line
    assert "error:" not in res.output


try:
    import pytest

    test_posix_and_features_vexfs_like_ext4 = pytest.mark.vm(
        pytest.mark.timeout(1800)(test_posix_and_features_vexfs_like_ext4))
except ImportError:  # the guest runs this file without pytest
    pass


if __name__ == "__main__":
    print(json.dumps(guest_main(sys.argv[1:])))
