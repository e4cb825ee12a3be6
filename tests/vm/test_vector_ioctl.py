"""Vector collection ioctls of vexfs.ko, proved in a real VM.

This file is both the pytest module (host side: one boot with
``vexfs.vm.quick.run_script``) and the guest-side checker: the guest sees this
checkout at the same path and runs ``python tests/vm/test_vector_ioctl.py
<phase> <dir>``, which prints one JSON object ``{check: [ok, detail]}``; the
host asserts every check.

Phases: ``ops`` (every ioctl, every bad-input class, all metrics and
dimensions against a float64 numpy reference, SIMD vs scalar paths), ``enospc``
(a tiny filesystem: a batch that does not fit fails with ENOSPC and changes
nothing), ``verify`` (after umount/mount and after rmmod/insmod: the same
searches return bit-identical answers) and ``ro`` (read-only mount: EROFS
for mutations, searches still work).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import mmap
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from vexfs.vector import abi  # noqa: E402
from vexfs.vector.client import Collection  # noqa: E402

PY = REPO / ".venv/bin/python"
THIS = Path(__file__).resolve()
# the module under test: kernel/build/vexfs.ko (make -C kernel), or $VEXFS_MODULE
MODULE = Path(os.environ.get("VEXFS_MODULE", REPO / "kernel/build/vexfs.ko"))
STATE = Path("/tmp/vector_state.npz")
SIMD_PARAM = Path("/sys/module/vexfs/parameters/simd")
U64_MAX = (1 << 64) - 1

# ---------------------------------------------------------------- guest side


def _errno(fn) -> int:
    try:
        fn()
    except OSError as e:
        return e.errno
    return 0


def _ioctl(fd: int, req: int, arg) -> int:
    """Raw ioctl; returns 0 or the errno."""
    return _errno(lambda: fcntl.ioctl(fd, req, arg, True))


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


def reference(x: np.ndarray, xid: np.ndarray, q: np.ndarray, metric: str, k: int):
    """Exact float64 distances, sorted by (distance, id): (dist, ids, full matrix)."""
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    dot = q64 @ x64.T
    if metric == "l2":
        # float64 expansion: ~1e-13 relative error, far below the 1e-5 tolerance
        full = np.maximum((q64 * q64).sum(1)[:, None] + (x64 * x64).sum(1)[None, :] - 2 * dot,
                          0.0)
    else:
        if metric == "ip":
            full = -dot
        else:
            nq_ = np.linalg.norm(q64, axis=1)[:, None]
            nx = np.linalg.norm(x64, axis=1)[None, :]
            with np.errstate(divide="ignore", invalid="ignore"):
                full = np.where((nq_ == 0) | (nx == 0), 1.0, 1.0 - dot / (nq_ * nx))
    order = np.lexsort((np.broadcast_to(xid, full.shape), full), axis=1)[:, :k]
    return np.take_along_axis(full, order, 1), xid[order], full


def tolerance(x: np.ndarray, q: np.ndarray, metric: str, ref: np.ndarray) -> np.ndarray:
    """Allowed |kernel - exact|: 1e-5 relative to the scale of each distance."""
    if metric == "cosine":
        return np.full(ref.shape, 1e-5)
    if metric == "ip":
        scale = np.linalg.norm(q.astype(np.float64), axis=1)[:, None] * \
            np.linalg.norm(x.astype(np.float64), axis=1).max()
        return 1e-5 * np.maximum(scale, 1e-30) + np.zeros(ref.shape)
    return 1e-5 * np.abs(ref) + 1e-6


def compare(kd, ki, x, xid, q, metric, k, need_tie_free: bool = True) -> tuple[bool, str]:
    """Kernel (kd, ki) vs exact: distances within tolerance; ids equal where no tie.

    need_tie_free=False for data where every distance may tie (cosine in one
    dimension: every distance is 0, 1 or 2), where only distances and the
    (distance, id) order can be checked.
    """
    rd, ri, _ = reference(x, xid, q, metric, k)
    n = min(k, x.shape[0])
    tol = tolerance(x, q, metric, rd)
    if not (ki[:, n:] == -1).all() or not np.isinf(kd[:, n:]).all():
        return False, "padding past the stored count is not (-1, +inf)"
    err = np.abs(kd[:, :n].astype(np.float64) - rd[:, :n])
    if not (err <= tol[:, :n]).all():
        i = np.unravel_index(np.argmax(err - tol[:, :n]), err.shape)
        return False, f"distance {kd[i]} vs exact {rd[i]} at {i}"
    # sorted by distance, then id
    for row_d, row_i in zip(kd[:, :n], ki[:, :n]):
        keys = list(zip(row_d.tolist(), row_i.tolist()))
        if keys != sorted(keys):
            return False, f"not sorted by (distance, id): {keys[:5]}"
    # ids: every position whose exact distance is apart from its neighbours
    # (and from the first excluded candidate) by more than 2 tolerances
    ext, _, _ = reference(x, xid, q, metric, min(k + 1, x.shape[0]))
    mismatches = 0
    checked = 0
    for qi in range(q.shape[0]):
        for r in range(n):
            lo = ext[qi, r - 1] if r else -np.inf
            hi = ext[qi, r + 1] if r + 1 < ext.shape[1] else np.inf
            t = 2 * tol[qi, r]
            if ext[qi, r] - lo > t and hi - ext[qi, r] > t:
                checked += 1
                if ki[qi, r] != ri[qi, r]:
                    mismatches += 1
    return (mismatches == 0 and (checked > 0 or not need_tie_free),
            f"{mismatches} id mismatches of {checked} tie-free")


def guest_ops(d: Path) -> dict:
    r: dict = {}

    def check(name: str, ok: bool, detail: object = "") -> None:
        r[name] = [bool(ok), str(detail)[:300]]

    rng = np.random.default_rng(1234)

    # ---- create ----
    c = Collection.create(d / "basic", 3, "l2")
    st = c.stats()
    check("create_stats", (st.count, st.dim, st.metric, st.record_size, st.bytes) ==
          (0, 3, "l2", 32, 4096), st)
    fd = c.fileno()
    check("create_again_eexist",
          _ioctl(fd, abi.VEXFS_IOC_CREATE, abi.IocCreate(dim=3)) == errno.EEXIST)
    (d / "nonempty").write_bytes(b"x")
    with open(d / "nonempty", "r+b") as f:
        check("create_nonempty_enotempty",
              _ioctl(f.fileno(), abi.VEXFS_IOC_CREATE, abi.IocCreate(dim=3)) == errno.ENOTEMPTY)
        check("stats_plain_file_enotty",
              _ioctl(f.fileno(), abi.VEXFS_IOC_STATS, abi.IocStats()) == errno.ENOTTY)
        check("search_plain_file_enotty",
              _ioctl(f.fileno(), abi.VEXFS_IOC_SEARCH, abi.IocSearch(nq=0, k=1)) == errno.ENOTTY)
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    check("create_on_dir_enotty",
          _ioctl(dfd, abi.VEXFS_IOC_CREATE, abi.IocCreate(dim=3)) == errno.ENOTTY)
    os.close(dfd)
    efd = os.open(d / "empty", os.O_CREAT | os.O_RDWR, 0o644)
    for name, arg in [("dim0", abi.IocCreate(dim=0)), ("dim4097", abi.IocCreate(dim=4097)),
                      ("metric3", abi.IocCreate(dim=3, metric=3)),
                      ("flags", abi.IocCreate(dim=3, flags=1)),
                      ("dtype2", abi.IocCreate(dim=3, dtype=2))]:
        check(f"create_{name}_einval", _ioctl(efd, abi.VEXFS_IOC_CREATE, arg) == errno.EINVAL)
    check("create_bad_argptr_efault", _errno(
        lambda: fcntl.ioctl(efd, abi.VEXFS_IOC_CREATE, 16)) == errno.EFAULT)
    check("failed_create_leaves_file_empty", os.fstat(efd).st_size == 0)
    check("unknown_cmd_enotty", _ioctl(fd, abi._IOW(abi.VEXFS_IOC_MAGIC, 99, abi.IocCreate),
                                       abi.IocCreate()) == errno.ENOTTY)
    os.close(efd)

    # ---- insert / get / upsert / delete semantics ----
    check("insert_count", c.insert([10, 20, 30], [[0, 0, 0], [1, 0, 0], [0, 2, 0]]) == 3)
    e = _errno(lambda: c.insert([40, 20], [[9, 9, 9], [5, 5, 5]]))
    check("insert_existing_eexist_nothing_changed",
          e == errno.EEXIST and len(c) == 3 and
          c.get([20]).tolist() == [[1, 0, 0]] and
          c.get([40], missing="mask")[1].tolist() == [False], e)
    e = _errno(lambda: c.insert([50, 50], [[1, 1, 1], [2, 2, 2]]))
    check("insert_dup_in_batch_eexist", e == errno.EEXIST and len(c) == 3, e)
    vec, found = c.get([30, 99, 10], missing="mask")
    check("get_found_mask_and_zeros", found.tolist() == [True, False, True] and
          vec.tolist() == [[0, 2, 0], [0, 0, 0], [0, 0, 0]], (found, vec))
    ids = np.array([99], dtype=np.uint64)
    out = np.zeros((1, 3), np.float32)
    check("get_missing_without_found_enoent", _ioctl(fd, abi.VEXFS_IOC_GET, abi.IocGet(
        ids_ptr=_ptr(ids), vectors_ptr=_ptr(out), count=1)) == errno.ENOENT)
    added, updated = c.upsert([20, 60, 60, 30], [[7, 7, 7], [1, 1, 1], [6, 6, 6], [3, 3, 3]])
    check("upsert_counts", (added, updated, len(c)) == (1, 2, 4), (added, updated, len(c)))
    check("upsert_values_last_wins",
          c.get([20, 60, 30]).tolist() == [[7, 7, 7], [6, 6, 6], [3, 3, 3]])
    dist, got = c.search([[0, 0, 0]], 10)
    check("search_after_upsert", got[0].tolist() == [10, 30, 60, 20, -1, -1, -1, -1, -1, -1]
          and dist[0, :4].tolist() == [0, 27, 108, 147] and np.isinf(dist[0, 4:]).all(),
          (dist, got))
    check("delete_counts", c.delete([30, 12345, 30]) == 1 and len(c) == 3)
    check("delete_effect", c.get([30], missing="mask")[1].tolist() == [False] and
          c.search([[0, 0, 0]], 5)[1][0].tolist() == [10, 60, 20, -1, -1])
    check("delete_all", c.delete([10, 20, 60]) == 3 and len(c) == 0 and
          c.stats().bytes == 4096)
    dist, got = c.search([[1, 2, 3]], 3)
    check("search_empty_pads", got.tolist() == [[-1, -1, -1]] and np.isinf(dist).all())
    check("bit_exact_roundtrip", c.insert([1], [[np.float32(1e-38), -0.0, 3.4e38]]) == 1 and
          c.get([1]).tobytes() == np.array([[1e-38, -0.0, 3.4e38]], np.float32).tobytes())

    # ---- ties broken by id ----
    t = Collection.create(d / "ties", 4, "l2")
    same = np.ones((4, 4), np.float32)
    t.insert([9, 3, 7, 5], same)
    dist, got = t.search(same[:1], 4)
    check("ties_by_id", got[0].tolist() == [3, 5, 7, 9] and (dist == 0).all(), got)

    # ---- metrics x dims against the float64 reference ----
    saved: dict = {}
    for metric in ("l2", "cosine", "ip"):
        for dim, n in ((1, 500), (3, 20000), (128, 2000), (4096, 300)):
            name = f"{metric}_{dim}"
            x = rng.standard_normal((n, dim)).astype(np.float32)
            if metric == "cosine":
                x[5] = 0  # a zero vector: distance 1 by definition
            xid = rng.permutation(n * 3)[:n].astype(np.uint64)
            q = rng.standard_normal((13, dim)).astype(np.float32)
            q[2] = x[7]  # an exact stored vector
            coll = Collection.create(d / f"m_{name}", dim, metric)
            coll.insert(xid, x)
            k = 10 if n > 10 else n + 3
            kd, ki = coll.search(q, k)
            ok, detail = compare(kd, ki, x, xid.astype(np.int64), q, metric, k,
                                 need_tie_free=(metric, dim) != ("cosine", 1))
            check(f"search_{name}", ok, detail)
            if metric == "l2":
                check(f"self_match_{name}", ki[2, 0] == int(xid[7]) and kd[2, 0] == 0,
                      (ki[2, :2], kd[2, :2]))
            # One to three queries per call take the kernel's unscreened
            # path (one exact pass per pair), a batch the screened one: the
            # answers must be the same.
            for nq in (1, 2, 3):
                sd, si = coll.search(q[:nq], k)
                check(f"search_{name}_nq{nq}_equals_batch",
                      np.array_equal(si, ki[:nq]) and np.allclose(sd, kd[:nq], rtol=1e-5,
                                                                  atol=1e-6),
                      f"{si[:, :3].tolist()} vs {ki[:nq, :3].tolist()}")
            saved[f"{name}_q"], saved[f"{name}_d"], saved[f"{name}_i"] = q, kd, ki
            # the path these answers came from: a later load may measure
            # another path fastest, whose float rounding differs (FMA)
            saved["simd_mode"] = np.array(coll.stats().simd)
            coll.close()
    zq = Collection.open(d / "m_cosine_3")
    kd, ki = zq.search(np.zeros((1, 3), np.float32), 4)
    check("cosine_zero_query", (kd == 1).all() and ki[0].tolist() == sorted(ki[0].tolist()),
          (kd, ki))
    zq.close()

    # ---- k > count, big k, batch of queries larger than one kernel chunk ----
    big = Collection.open(d / "m_l2_128")
    q = rng.standard_normal((150, 128)).astype(np.float32)
    kd, ki = big.search(q, 1024)
    xall = big.get(np.arange(0, 6000, dtype=np.uint64), missing="mask")
    xs, xm = xall[0][xall[1]], np.arange(0, 6000)[xall[1]]
    ok, detail = compare(kd, ki, xs, xm.astype(np.int64), q, "l2", 1024)
    check("search_k1024_nq150", ok, detail)

    # ---- SIMD paths agree ----
    if SIMD_PARAM.exists():
        results = {}
        for mode in ("0", "1", "2", "-1"):
            SIMD_PARAM.write_text(mode)
            for metric in ("l2", "cosine", "ip"):
                with Collection.open(d / f"m_{metric}_128") as coll:
                    results[(mode, metric)] = (coll.search(saved[f"{metric}_128_q"], 10),
                                               coll.stats().simd)
        SIMD_PARAM.write_text("-1")
        for metric in ("l2", "cosine", "ip"):
            (d0, i0), s0 = results[("0", metric)]
            for mode in ("1", "2"):
                (d1, i1), s1 = results[(mode, metric)]
                check(f"simd_{mode}_vs_scalar_{metric}",
                      (i0 == i1).mean() > 0.99 and np.allclose(d0, d1, rtol=1e-5, atol=1e-5),
                      (s0, s1, (i0 == i1).mean(), np.abs(d0 - d1).max()))
        check("simd_modes_reported", results[("0", "l2")][1] == "scalar" and
              results[("1", "l2")][1] == "sse2" and
              results[("-1", "l2")][1] in ("sse2", "avx2"),
              [results[(m, "l2")][1] for m in ("0", "1", "2", "-1")])
        # the automatic choice is the fastest path timed at load (sysfs)
        speed = dict(line.split() for line in
                     Path("/sys/fs/vexfs/simd_speed").read_text().splitlines())
        fastest = max(speed, key=lambda m: int(speed[m]))
        check("simd_auto_is_measured_fastest",
              {"scalar", "sse2"} <= set(speed) and results[("-1", "l2")][1] == fastest
              and Path("/sys/fs/vexfs/simd").read_text().strip() == fastest, (speed, fastest))
        SIMD_PARAM.write_text("0")
        check("simd_sysfs_follows_param",
              Path("/sys/fs/vexfs/simd").read_text().strip() == "scalar",
              Path("/sys/fs/vexfs/simd").read_text())
        SIMD_PARAM.write_text("-1")
    else:
        check("simd_param_exists", False, SIMD_PARAM)

    # ---- bad input: every class gets its errno, nothing changes ----
    b = Collection.create(d / "bad", 4, "l2")
    bfd = b.fileno()
    b.insert([1, 2], np.eye(2, 4, dtype=np.float32))
    size0 = os.fstat(bfd).st_size
    ids1 = np.array([7], np.uint64)
    v1 = np.ones((1, 4), np.float32)

    def ins(**kw):
        base = dict(ids_ptr=_ptr(ids1), vectors_ptr=_ptr(v1), count=1)
        base.update(kw)
        return _ioctl(bfd, abi.VEXFS_IOC_INSERT, abi.IocInsert(**base))

    for bad, name in ((np.nan, "nan"), (np.inf, "inf"), (-np.inf, "neginf")):
        vb = v1.copy()
        vb[0, 2] = bad
        check(f"insert_{name}_einval", ins(vectors_ptr=_ptr(vb)) == errno.EINVAL)
    up_ids = np.array([1, 500], np.uint64)
    up_vec = np.ones((2, 4), np.float32)
    up_vec[0, 1] = np.nan  # the row that would overwrite id 1
    check("upsert_nan_overwrite_einval_nothing_changed",
          ins(ids_ptr=_ptr(up_ids), vectors_ptr=_ptr(up_vec), count=2,
              flags=abi.VEXFS_INSERT_UPSERT) == errno.EINVAL and len(b) == 2 and
          b.get([1]).tolist() == [[1, 0, 0, 0]] and
          b.get([500], missing="mask")[1].tolist() == [False])
    check("insert_flags_einval", ins(flags=2) == errno.EINVAL)
    check("insert_count_too_big_einval", ins(count=abi.VEXFS_MAX_BATCH + 1) == errno.EINVAL)
    check("insert_misaligned_ids_einval", ins(ids_ptr=_ptr(ids1) + 1) == errno.EINVAL)
    check("insert_misaligned_vec_einval", ins(vectors_ptr=_ptr(v1) + 2) == errno.EINVAL)
    check("insert_null_ids_efault", ins(ids_ptr=0) == errno.EFAULT)
    check("insert_null_vec_efault", ins(vectors_ptr=0) == errno.EFAULT)
    check("insert_kernel_ptr_efault", ins(vectors_ptr=0xffff888000000000) == errno.EFAULT)
    # vectors run into a PROT_NONE page: EFAULT half way, nothing inserted
    mm = mmap.mmap(-1, 2 * mmap.PAGESIZE)
    libc = ctypes.CDLL(None, use_errno=True)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(mm))
    libc.mprotect(ctypes.c_void_p(addr + mmap.PAGESIZE), mmap.PAGESIZE, 0)
    n_fit = mmap.PAGESIZE // 16
    many_ids = np.arange(100, 100 + n_fit + 10, dtype=np.uint64)
    check("insert_partial_buffer_efault",
          ins(ids_ptr=_ptr(many_ids), vectors_ptr=addr, count=n_fit + 10) == errno.EFAULT)
    check("failed_inserts_change_nothing", len(b) == 2 and os.fstat(bfd).st_size == size0 and
          b.get([7], missing="mask")[1].tolist() == [False], (len(b), os.fstat(bfd).st_size))

    qd = np.zeros((1, 1), np.float32)
    qi = np.zeros((1, 1), np.uint64)

    def srch(**kw):
        base = dict(queries_ptr=_ptr(v1), distances_ptr=_ptr(qd), ids_ptr=_ptr(qi), nq=1, k=1)
        base.update(kw)
        return _ioctl(bfd, abi.VEXFS_IOC_SEARCH, abi.IocSearch(**base))

    check("search_ok_raw", srch() == 0 and qi[0, 0] in (1, 2))
    check("search_k0_einval", srch(k=0) == errno.EINVAL)
    check("search_k_too_big_einval", srch(k=abi.VEXFS_MAX_K + 1) == errno.EINVAL)
    check("search_nq_too_big_einval", srch(nq=abi.VEXFS_MAX_NQ + 1) == errno.EINVAL)
    check("search_flags_einval", srch(flags=1) == errno.EINVAL)
    check("search_reserved_einval", srch(reserved=1) == errno.EINVAL)
    check("search_misaligned_ids_einval", srch(ids_ptr=_ptr(qi) + 4) == errno.EINVAL)
    vn = v1.copy()
    vn[0, 0] = np.nan
    check("search_nan_query_einval", srch(queries_ptr=_ptr(vn)) == errno.EINVAL)
    check("search_bad_out_efault", srch(distances_ptr=8) == errno.EFAULT)
    check("search_readonly_out_efault", srch(ids_ptr=_readonly_page()) == errno.EFAULT)
    check("get_flags_einval", _ioctl(bfd, abi.VEXFS_IOC_GET, abi.IocGet(
        ids_ptr=_ptr(ids1), vectors_ptr=_ptr(v1), count=1, flags=1)) == errno.EINVAL)
    check("get_count_einval", _ioctl(bfd, abi.VEXFS_IOC_GET, abi.IocGet(
        ids_ptr=_ptr(ids1), vectors_ptr=_ptr(v1), count=abi.VEXFS_MAX_BATCH + 1)) == errno.EINVAL)
    check("get_bad_out_efault", _ioctl(bfd, abi.VEXFS_IOC_GET, abi.IocGet(
        ids_ptr=_ptr(np.array([1], np.uint64)), vectors_ptr=8, count=1)) == errno.EFAULT)
    check("delete_flags_einval", _ioctl(bfd, abi.VEXFS_IOC_DELETE, abi.IocDelete(
        ids_ptr=_ptr(ids1), count=1, flags=1)) == errno.EINVAL)
    check("delete_null_efault", _ioctl(bfd, abi.VEXFS_IOC_DELETE, abi.IocDelete(
        ids_ptr=0, count=1)) == errno.EFAULT)
    check("delete_count_einval", _ioctl(bfd, abi.VEXFS_IOC_DELETE, abi.IocDelete(
        ids_ptr=_ptr(ids1), count=abi.VEXFS_MAX_BATCH + 1)) == errno.EINVAL)
    sts = abi.IocStats()
    ctypes.memset(ctypes.addressof(sts), 0xFF, ctypes.sizeof(sts))
    check("stats_reserved_zeroed", _ioctl(bfd, abi.VEXFS_IOC_STATS, sts) == 0 and
          sts.reserved == 0 and sts.dtype == 0 and sts.count == 2)
    check("bad_input_left_collection_intact", len(b) == 2 and
          b.get([1, 2]).tolist() == np.eye(2, 4).tolist())

    # ---- open mode: mutations need a writable fd, reads a readable one ----
    rfd = os.open(d / "bad", os.O_RDONLY)
    check("insert_rdonly_ebadf", _ioctl(rfd, abi.VEXFS_IOC_INSERT, abi.IocInsert(
        ids_ptr=_ptr(ids1), vectors_ptr=_ptr(v1), count=1)) == errno.EBADF)
    check("delete_rdonly_ebadf", _ioctl(rfd, abi.VEXFS_IOC_DELETE, abi.IocDelete(
        ids_ptr=_ptr(ids1), count=1)) == errno.EBADF)
    os.close(rfd)
    wfd = os.open(d / "bad", os.O_WRONLY)
    check("search_wronly_ebadf", _ioctl(wfd, abi.VEXFS_IOC_SEARCH, abi.IocSearch(
        queries_ptr=_ptr(v1), distances_ptr=_ptr(qd), ids_ptr=_ptr(qi), nq=1, k=1)) ==
        errno.EBADF)
    os.close(wfd)

    # ---- corrupt header: EUCLEAN, no crash ----
    cc = Collection.create(d / "corrupt", 2, "l2")
    cc.insert([1], [[1, 2]])
    with open(d / "corrupt", "r+b") as f:
        f.seek(8)
        f.write(b"\xff\xff\x00\x00")  # c_dim = 65535, checksum now wrong
    check("corrupt_header_euclean", _errno(cc.stats) == errno.EUCLEAN and
          _errno(lambda: cc.search([[0, 0]], 1)) == errno.EUCLEAN)
    cc.close()
    os.unlink(d / "corrupt")  # fsck at the end would (rightly) report it

    # ---- concurrent search and insert ----
    cur = Collection.create(d / "conc", 16, "l2")
    stop = threading.Event()
    errors: list = []

    def reader():
        with Collection.open(d / "conc", readonly=True) as rc:
            last = 0
            while not stop.is_set():
                _, i = rc.search(np.zeros((2, 16), np.float32), 5)
                n_ = int((i[0] >= 0).sum())
                if n_ < min(last, 5):
                    errors.append((n_, last))
                last = n_

    th = threading.Thread(target=reader)
    th.start()
    for j in range(20):
        cur.insert(np.arange(j * 50, j * 50 + 50), rng.standard_normal((50, 16)))
    stop.set()
    th.join()
    check("concurrent_search_insert", not errors and len(cur) == 1000, errors[:3])

    # ---- the CLI end to end: text, .npy and .fvecs files ----
    import subprocess

    from vexfs.vector.vecio import write_fvecs

    def vexfs(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(REPO / ".venv/bin/vexfs"), "vec", *args],
                              capture_output=True, text=True, timeout=300)

    (d / "v.txt").write_text("[0.1, 0.2, 0.3, 0.4]\n1 1 1 1\n# c\n2,2,2,2\n")
    np.save(d / "v.npy", np.full((2, 4), 5, np.float32))
    write_fvecs(d / "v.fvecs", np.full((1, 4), 9, np.float32))
    steps = [vexfs("create", str(d / "cli.vcol"), "--dim", "4", "--metric", "l2"),
             vexfs("insert", str(d / "cli.vcol"), str(d / "v.txt")),
             vexfs("insert", str(d / "cli.vcol"), str(d / "v.npy"), "--ids", "10-11"),
             vexfs("insert", str(d / "cli.vcol"), str(d / "v.fvecs"))]
    search = vexfs("search", str(d / "cli.vcol"), str(d / "v.fvecs"), "-k", "2", "--json")
    info = vexfs("info", str(d / "cli.vcol"), "--json")
    get = vexfs("get", str(d / "cli.vcol"), "1", "99")
    dele = vexfs("delete", str(d / "cli.vcol"), "0-2")
    dup = vexfs("insert", str(d / "cli.vcol"), str(d / "v.npy"), "--ids", "10,11")
    try:
        hit = json.loads(search.stdout.splitlines()[0])
        meta = json.loads(info.stdout)
    except (ValueError, IndexError):
        hit, meta = {}, {}
    check("cli_create_insert", all(p.returncode == 0 for p in steps),
          [p.stderr[-200:] for p in steps if p.returncode])
    check("cli_search_json", hit.get("ids") == [5, 10] and hit["distances"][0] == 0, search)
    check("cli_info", meta.get("count") == 6 and meta.get("dim") == 4, info.stdout)
    check("cli_get_missing_exit1", get.returncode == 1 and "1: [1, 1, 1, 1]" in get.stdout
          and "99: not found" in get.stdout, get.stdout)
    check("cli_delete", dele.returncode == 0 and "deleted 3 of 3" in dele.stdout, dele.stdout)
    check("cli_duplicate_insert_fails", dup.returncode == 1 and "exists" in dup.stderr.lower(),
          dup.stderr[-200:])

    # ---- state for the persistence phases ----
    with Collection.open(d / "basic") as bc:
        saved["basic_vec"] = bc.get([1])
    np.savez(STATE, **saved)
    return r


def _readonly_page() -> int:
    """Address of a fresh PROT_READ anonymous page (Python's mmap cannot give it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    p = libc.mmap(None, mmap.PAGESIZE, 1, 0x22, -1, 0)  # PROT_READ, PRIVATE|ANONYMOUS
    return p


def guest_verify(d: Path) -> dict:
    r: dict = {}
    saved = np.load(STATE)
    # bit-identical answers need the path that computed them (see above)
    modes = {"scalar": "0", "sse2": "1", "avx2": "2"}
    SIMD_PARAM.write_text(modes[str(saved["simd_mode"])])
    for metric in ("l2", "cosine", "ip"):
        for dim in (1, 3, 128, 4096):
            name = f"{metric}_{dim}"
            with Collection.open(d / f"m_{name}", readonly=True) as coll:
                k = saved[f"{name}_i"].shape[1]
                kd, ki = coll.search(saved[f"{name}_q"], k)
            same = (ki == saved[f"{name}_i"]).all() and \
                kd.tobytes() == saved[f"{name}_d"].tobytes()
            r[f"persist_{name}"] = [bool(same), ""]
    SIMD_PARAM.write_text("-1")
    with Collection.open(d / "basic", readonly=True) as bc:
        r["persist_basic"] = [bc.get([1]).tobytes() == saved["basic_vec"].tobytes(), ""]
    f16 = np.load(F16_STATE)
    with Collection.open(d / "f16_100", readonly=True) as fc:
        got = fc.get(f16["ids"])
        r["persist_f16"] = [fc.dtype == "float16" and got.dtype == np.float16 and
                            got.tobytes() == f16["x16"].tobytes(), fc.dtype]
    return r


def guest_ro(d: Path) -> dict:
    """Read-only mount: searches work, every mutation is EROFS."""
    r: dict = {}
    with Collection.open(d / "m_l2_3", readonly=True) as coll:
        q = np.zeros((1, 3), np.float32)
        r["ro_search_ok"] = [coll.search(q, 3)[1].shape == (1, 3), ""]
    fd = os.open(d / "m_l2_3", os.O_RDONLY)
    ids = np.array([1], np.uint64)
    v = np.zeros((1, 3), np.float32)
    r["ro_insert_erofs"] = [_ioctl(fd, abi.VEXFS_IOC_INSERT, abi.IocInsert(
        ids_ptr=_ptr(ids), vectors_ptr=_ptr(v), count=1)) == errno.EROFS, ""]
    r["ro_delete_erofs"] = [_ioctl(fd, abi.VEXFS_IOC_DELETE, abi.IocDelete(
        ids_ptr=_ptr(ids), count=1)) == errno.EROFS, ""]
    os.close(fd)
    fd = os.open(d / "empty", os.O_RDONLY)
    r["ro_create_erofs"] = [_ioctl(fd, abi.VEXFS_IOC_CREATE, abi.IocCreate(dim=3)) ==
                            errno.EROFS, ""]
    os.close(fd)
    r["ro_open_rdwr_erofs"] = [_errno(lambda: os.open(d / "m_l2_3", os.O_RDWR)) == errno.EROFS,
                               ""]
    return r


def guest_enospc(d: Path) -> dict:
    r: dict = {}
    c = Collection.create(d / "full", 512, "l2")
    rng = np.random.default_rng(5)
    first = rng.standard_normal((50, 512)).astype(np.float32)
    c.insert(np.arange(50), first)
    before = os.statvfs(d)
    size0 = os.fstat(c.fileno()).st_size
    huge = rng.standard_normal((4000, 512)).astype(np.float32)  # ~8 MB: does not fit
    e = _errno(lambda: c.insert(np.arange(1000, 5000), huge))
    after = os.statvfs(d)
    r["enospc_errno"] = [e == errno.ENOSPC, str(e)]
    r["enospc_nothing_changed"] = [len(c) == 50 and os.fstat(c.fileno()).st_size == size0 and
                                   c.get(np.arange(50)).tobytes() == first.tobytes(),
                                   str((len(c), os.fstat(c.fileno()).st_size, size0))]
    r["enospc_blocks_returned"] = [after.f_bfree == before.f_bfree,
                                   str((before.f_bfree, after.f_bfree))]
    e2 = _errno(lambda: c.upsert(np.array([3, 9000] + list(range(10000, 14000))),
                                 rng.standard_normal((4002, 512))))
    r["enospc_upsert_no_partial"] = [e2 == errno.ENOSPC and len(c) == 50 and
                                     c.get([3]).tobytes() == first[3:4].tobytes(), str(e2)]
    r["after_enospc_small_insert_ok"] = [c.insert([777], first[:1]) == 1 and len(c) == 51, ""]
    kd, ki = c.search(first[:2], 1)
    r["after_enospc_search_ok"] = [ki[:, 0].tolist() == [0, 1], str(ki)]
    c.close()
    return r


F16_STATE = Path("/tmp/vector_f16.npz")
F16CVT_PARAM = Path("/sys/module/vexfs/parameters/f16cvt")


def f16_bound(x: np.ndarray, q: np.ndarray, metric: str, full32: np.ndarray) -> np.ndarray:
    """The documented bound (docs/vector-api.md, "float16") of |distance on the
    float16-stored vectors - distance on the float32 originals|, per (query,
    vector); full32 = the float64 distances of the originals."""
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    xn = np.linalg.norm(x64, axis=1)[None, :]
    qn = np.linalg.norm(q64, axis=1)[:, None]
    e = 2.0 ** -11 * xn + 2.0 ** -25 * np.sqrt(x.shape[1])
    if metric == "l2":
        return 2 * np.sqrt(full32) * e + e ** 2 + 1e-5 * (qn ** 2 + xn ** 2) + 1e-6
    if metric == "ip":
        return qn * e + 1e-5 * qn * xn + 1e-6
    return 2 * e / np.maximum(xn, 1e-30) + 1e-5 + 0 * qn


def guest_f16(d: Path) -> dict:
    """float16 collections: create, insert float32/float16, get float16 bit-exact,
    search on every SIMD path and float16 converter against numpy (exact on the
    float16 values, within the documented bound of float32 on the originals),
    bad input, the measured converter pick, old filesystems without the
    feature bit."""
    import subprocess

    from vexfs import layout as L

    r: dict = {}

    def check(name: str, ok: bool, detail: object = "") -> None:
        r[name] = [bool(ok), str(detail)[:300]]

    rng = np.random.default_rng(16)
    cvt_speed = dict(line.split() for line in
                     Path("/sys/fs/vexfs/f16cvt_speed").read_text().splitlines())
    auto = Path("/sys/fs/vexfs/f16cvt").read_text().strip()
    check("f16cvt_measured_pick", auto == max(cvt_speed, key=lambda n: int(cvt_speed[n])) and
          {"scalar", "sse2"} <= set(cvt_speed), (auto, cvt_speed))
    for dim in (100, 128):
        c = Collection.create(d / f"f16_{dim}", dim, "l2", dtype="float16")
        st = c.stats()
        check(f"f16_{dim}_stats", (st.dtype, st.record_size, st.count, st.f16cvt) ==
              ("float16", 16 + 2 * ((dim + 7) // 8 * 8), 0, auto), st)
        n = 3000
        x = rng.standard_normal((n, dim)).astype(np.float32)
        ids = np.arange(n, dtype=np.uint64) * 3
        half = n // 2
        c.insert(ids[:half], x[:half])                          # float32 in
        c.insert(ids[half:], x[half:].astype(np.float16))       # float16 in
        x16 = x.astype(np.float16)
        got = c.get(ids)
        check(f"f16_{dim}_get_bitexact", got.dtype == np.float16 and
              got.tobytes() == x16.tobytes(), got.dtype)
        q = rng.standard_normal((7, dim)).astype(np.float32)
        q[0] = x16[5].astype(np.float32)
        ok_all, details = True, []
        for metric in ("l2", "cosine", "ip"):
            mc = Collection.create(d / f"f16_{dim}_{metric}", dim, metric, dtype="float16") \
                if metric != "l2" else None
            coll = mc if mc is not None else c
            if mc is not None:
                mc.insert(ids, x16)
            _, _, full32 = reference(x, ids, q, metric, 10)
            bound = f16_bound(x, q, metric, full32)
            for simd in ("0", "1", "2"):
                SIMD_PARAM.write_text(simd)
                for cvt in ("0", "1", "2"):
                    F16CVT_PARAM.write_text(cvt)
                    for nq in (1, 7):       # the single-query and the blocked paths
                        kd, ki = coll.search(q[:nq], 10)
                        ok, why = compare(kd, ki, x16.astype(np.float32), ids, q[:nq],
                                          metric, 10)
                        pos = ki // 3
                        err = np.abs(kd.astype(np.float64) -
                                     np.take_along_axis(full32[:nq], pos, 1))
                        within = (err <= np.take_along_axis(bound[:nq], pos, 1)).all()
                        if not (ok and within):
                            ok_all = False
                            details.append((metric, simd, cvt, nq, why, float(err.max())))
            if mc is not None:
                mc.close()
        SIMD_PARAM.write_text("-1")
        F16CVT_PARAM.write_text("-1")
        check(f"f16_{dim}_search_all_paths", ok_all, details[:3])
        # upsert + delete keep float16 records
        a, u = c.upsert([int(ids[0]), 99999], np.ones((2, dim), np.float32))
        check(f"f16_{dim}_upsert", (a, u) == (1, 1) and
              c.get([ids[0]]).tolist() == [[1.0] * dim], (a, u))
        check(f"f16_{dim}_delete", c.delete([99999, int(ids[1])]) == 2 and len(c) == n - 1)
        if dim == 100:      # what verify/reload expect after the remount
            left = np.delete(ids, 1)
            np.savez(F16_STATE, ids=left, x16=c.get(left))
        c.close()

    c = Collection.open(d / "f16_128")
    fd = c.fileno()
    check("f16_client_refuses_out_of_range",
          isinstance(_exc(lambda: c.insert([7], np.full((1, 128), 70000.0))), ValueError))
    one = np.array([7], np.uint64)
    bad = np.zeros((1, 128), np.uint16)
    bad[0, 5] = 0x7c00                                      # +Inf as float16
    check("f16_inf_einval", _ioctl(fd, abi.VEXFS_IOC_INSERT, abi.IocInsert(
        ids_ptr=_ptr(one), vectors_ptr=_ptr(bad), count=1)) == errno.EINVAL)
    bad[0, 5] = 0x7e01                                      # NaN
    check("f16_nan_einval", _ioctl(fd, abi.VEXFS_IOC_INSERT, abi.IocInsert(
        ids_ptr=_ptr(one), vectors_ptr=_ptr(bad), count=1)) == errno.EINVAL)
    buf = np.zeros(129, np.uint16)                          # 2-byte aligned: fine for float16
    check("f16_insert_2_aligned_ok", _ioctl(fd, abi.VEXFS_IOC_INSERT, abi.IocInsert(
        ids_ptr=_ptr(one), vectors_ptr=_ptr(buf) + 2, count=1)) == 0)
    check("f16_insert_odd_ptr_einval", _ioctl(fd, abi.VEXFS_IOC_INSERT, abi.IocInsert(
        ids_ptr=_ptr(one), vectors_ptr=_ptr(buf) + 1, count=1)) == errno.EINVAL)
    c.close()
    with Collection.create(d / "f32_align", 4, "l2") as c32:
        v = np.zeros(6, np.float32)
        check("f32_insert_2_aligned_einval", _ioctl(c32.fileno(), abi.VEXFS_IOC_INSERT,
              abi.IocInsert(ids_ptr=_ptr(one), vectors_ptr=_ptr(v) + 2, count=1)) ==
              errno.EINVAL)
        check("f32_stats_dtype", c32.stats().dtype == "float32" and c32.dtype == "float32")

    # a filesystem made before float16 (no FLOAT16 bit): float16 CREATE refused
    img = Path("/tmp/old16.img")
    subprocess.run(["truncate", "-s", "16M", str(img)], check=True)
    subprocess.run([str(REPO / ".venv/bin/mkfs.vexfs"), "-q", str(img)], check=True)
    with open(img, "r+b") as f:
        sb = L.SuperBlock.unpack(f.read(256))
        sb.s_feature_ro_compat &= ~L.VEXFS_FEATURE_RO_COMPAT_FLOAT16
        L.seal(sb)
        f.seek(0)
        f.write(bytes(sb))
    mnt = Path("/mnt/old16")
    mnt.mkdir(exist_ok=True)
    loop = subprocess.run(["losetup", "-f", "--show", str(img)], check=True,
                          capture_output=True, text=True).stdout.strip()
    subprocess.run(["mount", "-t", "vexfs", loop, str(mnt)], check=True)
    e = _errno(lambda: Collection.create(mnt / "h", 8, "l2", dtype="float16"))
    check("f16_without_feature_eopnotsupp", e == errno.EOPNOTSUPP and
          not (mnt / "h").exists(), e)
    with Collection.create(mnt / "f", 8, "l2") as oc:
        check("f32_on_old_fs_ok", oc.insert([1], np.ones((1, 8))) == 1)
    subprocess.run(["umount", str(mnt)], check=True)
    subprocess.run(["losetup", "-d", loop], check=True)
    # the detach completes asynchronously; fsck refuses an image a loop holds
    backing = Path("/sys/block") / Path(loop).name / "loop" / "backing_file"
    for _ in range(100):
        if not backing.exists():
            break
        time.sleep(0.1)
    fsck = subprocess.run([str(REPO / ".venv/bin/fsck.vexfs"), "-n", "-f", str(img)],
                          capture_output=True, text=True)
    check("old_fs_fsck_clean", fsck.returncode == 0,
          f"rc {fsck.returncode}: {fsck.stdout[-150:]} {fsck.stderr[-150:]}")
    return r


def _exc(fn) -> BaseException | None:
    try:
        fn()
    except BaseException as e:   # noqa: BLE001 - the test looks at the type
        return e
    return None


GUEST_PHASES = {"ops": guest_ops, "verify": guest_verify, "ro": guest_ro,
                "enospc": guest_enospc, "f16": guest_f16}

# ----------------------------------------------------------------- host side

GUEST_SCRIPT = f"""
set -e
cd {REPO}
modprobe loop
insmod /tmp/vexfs.ko
truncate -s 300M /tmp/v.img
.venv/bin/mkfs.vexfs -q /tmp/v.img
LOOP=$(losetup -f --show /tmp/v.img)
mkdir -p /mnt/v /mnt/small
mount -t vexfs $LOOP /mnt/v
{PY} {THIS} ops /mnt/v ops
{PY} {THIS} f16 /mnt/v f16
umount /mnt/v
mount -t vexfs $LOOP /mnt/v
{PY} {THIS} verify /mnt/v verify
umount /mnt/v
rmmod vexfs
insmod /tmp/vexfs.ko
mount -t vexfs -o ro $LOOP /mnt/v
{PY} {THIS} verify /mnt/v reload
{PY} {THIS} ro /mnt/v ro
umount /mnt/v
truncate -s 4M /tmp/small.img
.venv/bin/mkfs.vexfs -q /tmp/small.img
SLOOP=$(losetup -f --show /tmp/small.img)
mount -t vexfs $SLOOP /mnt/small
{PY} {THIS} enospc /mnt/small enospc
umount /mnt/small
losetup -d $SLOOP
losetup -d $LOOP
if .venv/bin/fsck.vexfs -n -f /tmp/v.img; then echo FSCK-RC=0; else echo "FSCK-RC=$?"; fi
if .venv/bin/fsck.vexfs -n -f /tmp/small.img; then echo FSCK2-RC=0; else echo "FSCK2-RC=$?"; fi
rmmod vexfs
"""


def _results(output: str) -> dict:
    """{phase: {check: [ok, detail]}} from the guest's CHECK lines."""
    out: dict = {}
    for line in output.splitlines():
        parts = line.strip().split(" ", 4)
        if len(parts) >= 4 and parts[0] == "CHECK" and parts[3] in ("0", "1"):
            label, name = parts[1], parts[2]
            out.setdefault(label, {})[name] = [parts[3] == "1",
                                               parts[4] if len(parts) > 4 else ""]
    return out


def test_vector_ioctls_in_vm():
    import pytest

    from vexfs.vm.quick import run_script

    if not MODULE.exists():
        pytest.fail(f"{MODULE} not built: run make -C kernel")
    res = run_script(GUEST_SCRIPT, modules=[MODULE], timeout=1500)
    assert not res.crashed, res.console[-4000:]
    assert res.returncode == 0, res.output[-4000:]
    phases = _results(res.output)
    assert set(phases) == {"ops", "verify", "reload", "ro", "enospc", "f16"}, \
        res.output[-3000:]
    failed = {f"{p}.{k}": v for p, checks in phases.items() for k, v in checks.items()
              if not v[0]}
    assert not failed, f"failed checks: {json.dumps(failed, indent=1)}"
    assert len(phases["ops"]) >= 70
    assert "FSCK-RC=0" in res.output and "FSCK2-RC=0" in res.output, res.output[-3000:]


try:  # host side only: mark for `pytest -m vm`
    import pytest as _pytest

    test_vector_ioctls_in_vm = _pytest.mark.vm(_pytest.mark.timeout(1800)(
        test_vector_ioctls_in_vm))
except ImportError:  # pragma: no cover
    pass


if __name__ == "__main__":
    # one short line per check: long lines can be broken up by console output
    phase, where = sys.argv[1], Path(sys.argv[2])
    label = sys.argv[3] if len(sys.argv) > 3 else phase
    for name, (ok, detail) in GUEST_PHASES[phase](where).items():
        print(f"CHECK {label} {name} {int(bool(ok))} {str(detail)[:150]!r}", flush=True)
