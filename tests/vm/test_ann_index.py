"""The ANN (IVF) index of a collection (issue 12), proved in a real VM.

Host side: one boot (``vexfs.vm.quick.run_script``); guest side: this file run
as ``python tests/vm/test_ann_index.py <phase> <dir> <label>``, printing
``CHECK <label> <name> <0|1> <detail>`` lines the host asserts.

Phases: ``ops`` (build on clustered synthetic data, recall against exact
numpy, inserts found at once, deletes never returned, upserts, recall after
10% deletes + 10% upserts, compact, hostile ioctl arguments, concurrent
searches during inserts, SIGKILL during a build), ``verify`` (after umount/
mount: identical answers, stats), ``corrupt`` (index header and entries
damaged in place: EUCLEAN, never a crash; fsck reports them).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from vexfs import layout as L  # noqa: E402
from vexfs.vector import abi  # noqa: E402
from vexfs.vector.client import Collection  # noqa: E402

PY = REPO / ".venv/bin/python"
THIS = Path(__file__).resolve()
MODULE = Path(os.environ.get("VEXFS_MODULE", REPO / "kernel/build/vexfs.ko"))
STATE = Path("/tmp/ann_state.npz")
N, DIM, NQ, K = 6000, 24, 100, 10


def data(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Clustered data (50 gaussian blobs) and queries near them."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4, (50, DIM)).astype(np.float32)
    x = centers[rng.integers(0, 50, N)] + rng.normal(0, 1, (N, DIM)).astype(np.float32)
    q = centers[rng.integers(0, 50, NQ)] + rng.normal(0, 1, (NQ, DIM)).astype(np.float32)
    return x.astype(np.float32), q.astype(np.float32)


def exact(x: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    d = ((q[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return ids[order]


def recall(got: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(g.tolist()) & set(t.tolist())) / k
                          for g, t in zip(got, truth, strict=True)]))


def _errno(fn) -> int:
    try:
        fn()
    except OSError as e:
        return e.errno
    return 0


class Checks:
    def __init__(self, label: str):
        self.label = label

    def __call__(self, name: str, ok: bool, detail: object = "") -> None:
        print(f"CHECK {self.label} {name} {int(bool(ok))} {str(detail)[:300]}", flush=True)


def guest_ops(where: Path, check: Checks) -> None:
    x, q = data()
    ids = np.arange(N, dtype=np.uint64) * 7 + 3
    path = where / "ann.vec"
    c = Collection.create(path, DIM, "l2")
    c.insert(ids, x)
    st = c.index_stats()
    check("no_index_stats", st.nlist == 0 and st.pending == N, st)
    try:
        c.search(q[:1], K, nprobe=2)
        check("nprobe_without_index", False, "no error")
    except ValueError:
        check("nprobe_without_index", True)
    t0 = time.perf_counter()
    info = c.build_index(nlist=64, nprobe=8, sample=3000, niter=8)
    build_s = time.perf_counter() - t0
    st = c.index_stats()
    check("built", st.nlist == 64 and st.indexed == N and st.pending == 0,
          f"{st} {info} {build_s:.1f}s")
    truth = exact(x, ids, q, K)
    d_ex, i_ex = c.search(q, K, exact=True)
    check("exact_path", recall(i_ex, truth) == 1.0, recall(i_ex, truth))
    curve = {}
    for nprobe in (1, 2, 4, 8, 16, 64):
        d, i = c.search(q, K, nprobe=nprobe)
        curve[nprobe] = (recall(i, truth), c.last_scanned / NQ)
    check("recall_curve_monotone", all(curve[a][0] <= curve[b][0] + 1e-9
                                       for a, b in [(1, 2), (2, 4), (4, 8), (8, 16), (16, 64)]),
          curve)
    check("recall_full_probe_exact", curve[64][0] == 1.0, curve[64])
    check("recall_default", curve[8][0] >= 0.95, curve[8])
    check("scans_fewer", curve[8][1] < N / 3, curve[8])
    d, i = c.search(q, K)
    check("distances_exact", np.allclose(d[:, 0], d_ex[:, 0], rtol=1e-5) or
          recall(i, truth) < 1.0, "")
    # single query shape
    d1, i1 = c.search(q[0], K)
    check("single_query_shape", d1.shape == (1, K) and i1.shape == (1, K), d1.shape)

    # inserts after the build are found at once (pending, searched exactly)
    rng = np.random.default_rng(5)
    newx = q[:20] + rng.normal(0, 0.01, (20, DIM)).astype(np.float32)
    newids = np.arange(20, dtype=np.uint64) + 10**9
    c.insert(newids, newx)
    st = c.index_stats()
    check("insert_pending", st.pending == 20 and st.indexed == N, st)
    d, i = c.search(q[:20], 1, nprobe=1)
    check("insert_found_at_once", (i[:, 0] == newids.astype(np.int64)).all(), i[:5, 0])

    # deletes are never returned; recall after 10% deletes + 10% upserts
    allids = np.concatenate([ids, newids])
    allx = np.concatenate([x, newx])
    dels = rng.choice(allids, N // 10, replace=False)
    dels = np.concatenate([dels, newids[:5]])
    dels = np.unique(dels)
    got = c.delete(dels)
    keep = ~np.isin(allids, dels)
    allids, allx = allids[keep], allx[keep]
    check("delete_count", got == len(dels), got)
    ups = rng.choice(allids, N // 10, replace=False)
    pos = np.searchsorted(allids, ups) if np.all(np.diff(allids.astype(np.int64)) > 0) else None
    upx = allx[np.isin(allids, ups)] + rng.normal(0, 0.5, (len(ups), DIM)).astype(np.float32)
    order = allids[np.isin(allids, ups)]
    added, updated = c.upsert(order, upx)
    allx[np.isin(allids, ups)] = upx
    check("upsert_counts", added == 0 and updated == len(ups), (added, updated, pos is None))
    st = c.index_stats()
    want_pending = len(set(newids.tolist()) - set(dels.tolist()) | set(ups.tolist()))
    check("stats_after_mutations", st.count == len(allids) and
          st.pending == want_pending, (st, want_pending))
    truth2 = exact(allx, allids.astype(np.int64), q, K)
    d, i = c.search(q, K)
    check("deleted_never_returned", not np.isin(i, dels.astype(np.int64)).any(), "")
    r_mut = recall(i, truth2)
    check("recall_after_mutations", r_mut >= 0.95, r_mut)
    compacted = c.compact_index()
    st = c.index_stats()
    check("compact", compacted == want_pending and st.pending == 0, (compacted, st))
    d, i = c.search(q, K)
    r_cmp = recall(i, truth2)
    check("recall_after_compact", r_cmp >= 0.95 and
          not np.isin(i, dels.astype(np.int64)).any(), r_cmp)
    np.savez(STATE, q=q, d=d, i=i, nprobe=np.array([st.nprobe]))

    # hostile arguments for the new ioctls
    fd = c.fileno()
    qq = np.ascontiguousarray(q[:2])
    dd = np.empty((2, K), np.float32)
    ii = np.empty((2, K), np.uint64)

    def srch(**kw):
        a = dict(queries_ptr=qq.ctypes.data, distances_ptr=dd.ctypes.data,
                 ids_ptr=ii.ctypes.data, nq=2, k=K, nprobe=4)
        a.update(kw)
        return _errno(lambda: fcntl.ioctl(fd, abi.VEXFS_IOC_INDEX_SEARCH,
                                          abi.IocIndexSearch(**a), True))
    bad = {
        "k0": srch(k=0) == errno.EINVAL,
        "kbig": srch(k=abi.VEXFS_MAX_K + 1) == errno.EINVAL,
        "flags": srch(flags=1) == errno.EINVAL,
        "nprobe_big": srch(nprobe=L.VEXFS_INDEX_MAX_NLIST + 1) == errno.EINVAL,
        "qnull": srch(queries_ptr=0) == errno.EFAULT,
        "qkernel": srch(queries_ptr=0xffffffff81000000) == errno.EFAULT,
        "misaligned": srch(ids_ptr=ii.ctypes.data + 1) == errno.EINVAL,
        "outro": srch(distances_ptr=0x1000) == errno.EFAULT,
    }
    nan = qq.copy()
    nan[1, 3] = np.nan
    bad["nan_query"] = srch(queries_ptr=nan.ctypes.data) == errno.EINVAL

    def build(**kw):
        cent = np.zeros((4, DIM), np.float32)
        a = dict(centroids_ptr=cent.ctypes.data, nlist=4, nprobe=1)
        a.update(kw)
        return _errno(lambda: fcntl.ioctl(fd, abi.VEXFS_IOC_INDEX_BUILD,
                                          abi.IocIndexBuild(**a), True))
    bad["build_nlist0"] = build(nlist=0) == errno.EINVAL
    bad["build_nlist_big"] = build(nlist=L.VEXFS_INDEX_MAX_NLIST + 1) == errno.EINVAL
    bad["build_nprobe0"] = build(nprobe=0) == errno.EINVAL
    bad["build_nprobe_gt"] = build(nprobe=5) == errno.EINVAL
    bad["build_reserved"] = build(reserved=1) == errno.EINVAL
    bad["build_efault"] = build(centroids_ptr=8) == errno.EFAULT
    # a failed build leaves no index, the records untouched
    st = c.index_stats()
    bad["failed_build_no_index"] = st.nlist == 0 and st.count == len(allids)
    d0, i0 = c.search(q, K)
    bad["failed_build_exact"] = recall(i0, truth2) == 1.0
    c.build_index(nlist=64, nprobe=8, sample=3000, niter=8)
    infc = np.zeros((4, DIM), np.float32)
    infc[2, 1] = np.inf
    bad["build_inf"] = build(centroids_ptr=infc.ctypes.data) == errno.EINVAL
    c.build_index(nlist=64, nprobe=8, sample=3000, niter=8)

    def assign(**kw):
        i_ = np.array([3, 10], np.uint64)
        l_ = np.array([0, 1], np.uint32)
        a = dict(ids_ptr=i_.ctypes.data, lists_ptr=l_.ctypes.data, count=2)
        a.update(kw)
        return _errno(lambda: fcntl.ioctl(fd, abi.VEXFS_IOC_INDEX_ASSIGN,
                                          abi.IocIndexAssign(**a), True))
    big = np.array([3, 10], np.uint64)
    biglist = np.array([0, 64], np.uint32)
    bad["assign_list_range"] = assign(ids_ptr=big.ctypes.data,
                                      lists_ptr=biglist.ctypes.data) == errno.EINVAL
    bad["assign_count"] = assign(count=abi.VEXFS_MAX_BATCH + 1) == errno.EINVAL
    bad["assign_flags"] = assign(flags=2) == errno.EINVAL
    bad["assign_efault"] = assign(lists_ptr=0x1000) == errno.EFAULT
    bad["assign_misaligned"] = assign(lists_ptr=biglist.ctypes.data + 1) == errno.EINVAL
    rofd = os.open(path, os.O_RDONLY)
    bad["assign_rdonly_fd"] = _errno(lambda: fcntl.ioctl(
        rofd, abi.VEXFS_IOC_INDEX_DROP, 0)) == errno.EBADF
    os.close(rofd)
    wofd = os.open(path, os.O_WRONLY)
    bad["stats_wronly_fd"] = _errno(lambda: fcntl.ioctl(
        wofd, abi.VEXFS_IOC_INDEX_STATS, abi.IocIndexStats(), True)) == errno.EBADF
    os.close(wofd)
    plain = where / "plain"
    plain.write_bytes(b"x")
    pfd = os.open(plain, os.O_RDWR)
    st_ = abi.IocIndexStats()
    bad["plain_file"] = _errno(lambda: fcntl.ioctl(pfd, abi.VEXFS_IOC_INDEX_STATS, st_,
                                                   True)) == errno.ENOTTY
    os.close(pfd)
    st = c.index_stats()
    bad["still_indexed"] = st.nlist == 64 and st.pending == 0
    for name, ok in bad.items():
        check(f"hostile_{name}", ok)

    # concurrent searches during inserts: no errors, deleted ids never seen
    errs: list[str] = []
    stop = threading.Event()

    def searcher() -> None:
        with Collection.open(path, readonly=True) as r:
            while not stop.is_set():
                try:
                    _, i_ = r.search(q[:8], K)
                    if np.isin(i_, dels.astype(np.int64)).any():
                        errs.append("deleted id returned")
                except OSError as e:
                    errs.append(str(e))
    th = [threading.Thread(target=searcher) for _ in range(2)]
    for t in th:
        t.start()
    extra = np.arange(300, dtype=np.uint64) + 2 * 10**9
    for s in range(0, 300, 30):
        c.insert(extra[s:s + 30], x[s:s + 30])
    c.delete(extra[::2])
    stop.set()
    for t in th:
        t.join()
    check("concurrent_search_insert", not errs, errs[:3])
    c.delete(extra[1::2])
    c.compact_index()
    c.sync()
    c.close()

    # SIGKILL during a build: the collection stays usable and fsck-clean
    kill_path = where / "kill.vec"
    with Collection.create(kill_path, DIM, "l2") as kc:
        kc.insert(ids, x)
    proc = subprocess.Popen([str(PY), "-c", (
        "import sys; sys.path.insert(0, %r)\n"
        "from vexfs.vector.client import Collection\n"
        "c = Collection.open(%r)\n"
        "for _ in range(50):\n"
        "    c.build_index(nlist=64, nprobe=4, sample=6000, niter=2)\n") % (str(REPO),
                                                                           str(kill_path))])
    time.sleep(6)
    proc.send_signal(signal.SIGKILL)
    rc = proc.wait(timeout=120)
    with Collection.open(kill_path) as kc:
        st = kc.index_stats()
        d, i = kc.search(q, K)
        check("sigkill_build", rc == -signal.SIGKILL and st.count == N and
              not np.isin(i, -1).any(), (rc, st))
        kc.build_index(nlist=32, nprobe=4, sample=3000, niter=4)
        d, i = kc.search(q, K)
        check("sigkill_rebuild", recall(i, truth) >= 0.9, recall(i, truth))


def guest_verify(where: Path, check: Checks) -> None:
    s = np.load(STATE)
    with Collection.open(where / "ann.vec", readonly=True) as c:
        d, i = c.search(s["q"], K)
        check("identical_after_remount", np.array_equal(i, s["i"]) and
              np.array_equal(d.view(np.uint32), s["d"].view(np.uint32)), "")
        st = c.index_stats()
        check("stats_after_remount", st.nlist == 64 and st.pending == 0, st)


def guest_corrupt(where: Path, check: Checks) -> None:
    """Damage the index in place (as a user with write access could): EUCLEAN, no crash."""
    path = where / "ann.vec"
    with Collection.open(path) as c:
        st = c.index_stats()
        q = np.load(STATE)["q"]
    fd = os.open(path, os.O_RDWR)
    # an assign entry naming no list
    os.pwrite(fd, (st.nlist + 7).to_bytes(4, "little"),
              L.VEXFS_INDEX_BASE + L.VEXFS_INDEX_ASSIGN_OFF + 4 * 17)
    os.close(fd)
    with Collection.open(path) as c:
        e = _errno(lambda: c.search(q[:2], K))
        check("bad_entry_euclean", e == errno.EUCLEAN, e)
        e = _errno(lambda: c.index_stats())
        check("bad_entry_stats_euclean", e == errno.EUCLEAN, e)
        d, i = c.search(q[:2], K, exact=True)
        check("exact_still_works", i.shape == (2, K), "")
    fd = os.open(path, os.O_RDWR)
    os.pwrite(fd, b"\xff\xff", L.VEXFS_INDEX_BASE + 12)     # x_nlist, checksum now wrong
    os.close(fd)
    with Collection.open(path) as c:
        e = _errno(lambda: c.search_index(q[:2], K))
        check("bad_header_euclean", e == errno.EUCLEAN, e)
        e = _errno(lambda: c.insert([123456789], q[:1]))
        check("insert_still_works", e == 0, e)


GUEST_PHASES = {"ops": guest_ops, "verify": guest_verify, "corrupt": guest_corrupt}

GUEST_SCRIPT = f"""
set -e
cd {REPO}
modprobe loop
insmod /tmp/vexfs.ko
truncate -s 200M /tmp/a.img
.venv/bin/mkfs.vexfs -q /tmp/a.img
LOOP=$(losetup -f --show /tmp/a.img)
mkdir -p /mnt/a
mount -t vexfs $LOOP /mnt/a
{PY} {THIS} ops /mnt/a ops
umount /mnt/a
if .venv/bin/fsck.vexfs -n -f /tmp/a.img; then echo FSCK-RC=0; else echo "FSCK-RC=$?"; fi
.venv/bin/vexfs image stat /tmp/a.img /ann.vec | grep "ANN index" | sed 's/^/IMAGE-STAT /'
mount -t vexfs $LOOP /mnt/a
{PY} {THIS} verify /mnt/a verify
{PY} {THIS} corrupt /mnt/a corrupt
umount /mnt/a
if .venv/bin/fsck.vexfs -n -f /tmp/a.img > /tmp/fsck2.txt 2>&1
then echo FSCK2-RC=0; else echo "FSCK2-RC=$?"; fi
cat /tmp/fsck2.txt
echo FSCK2-INDEX-LINES=$(grep -c "ANN index" /tmp/fsck2.txt || true)
losetup -d $LOOP
rmmod vexfs
"""


def _results(output: str) -> dict:
    out: dict = {}
    for line in output.splitlines():
        parts = line.strip().split(" ", 4)
        if len(parts) >= 4 and parts[0] == "CHECK" and parts[3] in ("0", "1"):
            out.setdefault(parts[1], {})[parts[2]] = [parts[3] == "1",
                                                      parts[4] if len(parts) > 4 else ""]
    return out


def test_ann_index_in_vm():
    import pytest

    from vexfs.vm.quick import run_script

    if not MODULE.exists():
        pytest.fail(f"{MODULE} not built: run make module")
    res = run_script(GUEST_SCRIPT, modules=[MODULE], timeout=1500)
    assert not res.crashed, res.console[-4000:]
    assert res.returncode == 0, res.output[-4000:]
    phases = _results(res.output)
    assert set(phases) == {"ops", "verify", "corrupt"}, res.output[-3000:]
    failed = {f"{p}.{k}": v for p, checks in phases.items() for k, v in checks.items()
              if not v[0]}
    assert not failed, f"failed checks: {json.dumps(failed, indent=1)}"
    assert len(phases["ops"]) >= 40
    assert "FSCK-RC=0" in res.output, res.output[-3000:]
    # the offline reader shows the index
    assert "IMAGE-STAT   ANN index: IVF, 64 lists, default nprobe 8, 5415 records indexed, " \
        "0 pending" in res.output, res.output[-3000:]
    # the damaged index is reported by fsck (exit 4: errors left uncorrected)
    assert "FSCK2-RC=4" in res.output, res.output[-3000:]
    assert "FSCK2-INDEX-LINES=0" not in res.output, res.output[-3000:]


try:  # host side only: mark for `pytest -m vm`
    import pytest as _pytest

    test_ann_index_in_vm = _pytest.mark.vm(_pytest.mark.timeout(1800)(test_ann_index_in_vm))
except ImportError:  # pragma: no cover
    pass


if __name__ == "__main__":
    phase, where = sys.argv[1], Path(sys.argv[2])
    label = sys.argv[3] if len(sys.argv) > 3 else phase
    GUEST_PHASES[phase](where, Checks(label))
