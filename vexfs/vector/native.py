"""The kernel's vector core (``kernel/vec/``) as a host library, through ctypes.

``kernel/vec/*.c`` compile unchanged into vexfs.ko and, with
``kernel/vec/host/`` (a userspace glue file and a Makefile), into
``libvexfsvec.so``. This module builds that library on first use (the system
``cc``; a few seconds) into ``.cache/vecnative/<hash of the sources>/`` and
calls ``vexfs_host_search()``: the same distance kernels, screening and
top-k code as the in-kernel SEARCH ioctl, on vectors in host memory. It is
what ``vexfs bench native`` times against FAISS and numpy, and
``build(sanitize=True)`` gives the AddressSanitizer/UBSan test driver.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np

from vexfs.vector import abi
from vexfs.vector.client import metric_value
from vexfs.vm.paths import REPO_ROOT, cache_dir

log = logging.getLogger(__name__)

VEC_DIR = REPO_ROOT / "kernel" / "vec"
UAPI = REPO_ROOT / "kernel" / "uapi" / "vexfs_fs.h"
SIMD_BY_NAME = {name: mode for mode, name in abi.SIMD_NAMES.items()}


def _sources_hash() -> str:
    h = hashlib.sha256()
    for p in sorted(VEC_DIR.rglob("*")) + [UAPI]:
        if p.is_file() and (p.suffix in (".c", ".h") or p.name == "Makefile"):
            h.update(p.relative_to(REPO_ROOT).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def build(sanitize: bool = False) -> Path:
    """Build (once per source version) and return libvexfsvec.so, or with
    sanitize=True the ASan+UBSan ``vec_cli`` test driver."""
    out = cache_dir() / "vecnative" / (_sources_hash() + ("-san" if sanitize else ""))
    target = out / ("vec_cli" if sanitize else "libvexfsvec.so")
    if target.exists():
        return target
    out.mkdir(parents=True, exist_ok=True)
    cmd = ["make", "-s", "-C", str(VEC_DIR / "host"), f"OUT={out}"]
    cmd += ["SAN=1", "vec_cli"] if sanitize else ["all"]
    log.info("building %s", target)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if res.returncode != 0 or not target.exists():
        raise RuntimeError(f"building the vector core failed: {' '.join(cmd)}\n"
                           f"{res.stdout[-2000:]}{res.stderr[-2000:]}")
    return target


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL:
    # VEXFS_VECLIB: another build of the library (the ASan/UBSan test)
    lib = ctypes.CDLL(os.environ.get("VEXFS_VECLIB") or str(build()))
    lib.vexfs_host_search.restype = ctypes.c_int
    lib.vexfs_host_search.argtypes = [
        ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32,
        ctypes.c_uint32, ctypes.c_uint32, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    lib.vexfs_host_simd_ok.restype = ctypes.c_int
    lib.vexfs_host_simd_ok.argtypes = [ctypes.c_int]
    lib.vexfs_host_simd_default.restype = ctypes.c_int
    return lib


def simd_available() -> list[str]:
    """Paths this CPU can run, slowest kind first."""
    lib = library()
    return [name for mode, name in sorted(abi.SIMD_NAMES.items()) if lib.vexfs_host_simd_ok(mode)]


def default_simd() -> str:
    return abi.SIMD_NAMES[library().vexfs_host_simd_default()]


def search(x: np.ndarray, q: np.ndarray, k: int, metric: str | int = "l2",
           simd: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of q over x with the kernel's code: (distances float32,
    ids int64), shape (nq, k), FAISS order; ids are row numbers of x."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    q = np.ascontiguousarray(q, dtype=np.float32)
    if x.ndim != 2 or q.ndim != 2 or x.shape[1] != q.shape[1]:
        raise ValueError(f"x {x.shape} and q {q.shape} must be 2-d with the same dim")
    mode = -1 if simd is None else SIMD_BY_NAME[simd]
    nq = q.shape[0]
    dist = np.empty((nq, k), dtype=np.float32)
    ids = np.empty((nq, k), dtype=np.int64)
    rc = library().vexfs_host_search(x.ctypes.data, x.shape[0], x.shape[1], q.ctypes.data, nq,
                                     k, metric_value(metric), mode, dist.ctypes.data,
                                     ids.ctypes.data)
    if rc:
        raise OSError(-rc, f"vexfs_host_search: {os.strerror(-rc)}")
    return dist, ids


def ivf_search(x: np.ndarray, cent: np.ndarray, assign: np.ndarray, q: np.ndarray, k: int,
               nprobe: int, metric: str | int = "l2", simd: str | None = None
               ) -> tuple[np.ndarray, np.ndarray, int]:
    """IVF top-k with the kernel's code (vec_ivf.c + the scan loop), as
    VEXFS_IOC_INDEX_SEARCH runs it: (distances, ids = row numbers, rows scanned).
    assign[i] is row i's list + 1, or 0 for pending."""
    lib = library()
    fn = lib.vexfs_host_ivf_search
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_void_p,
                   ctypes.c_uint32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32,
                   ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_int,
                   ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    x = np.ascontiguousarray(x, dtype=np.float32)
    cent = np.ascontiguousarray(cent, dtype=np.float32)
    assign = np.ascontiguousarray(assign, dtype=np.uint32)
    q = np.ascontiguousarray(q, dtype=np.float32)
    if assign.shape != (x.shape[0],) or cent.shape[1:] != x.shape[1:] or \
            q.shape[1:] != x.shape[1:]:
        raise ValueError("shapes of x, cent, assign and q do not agree")
    mode = -1 if simd is None else SIMD_BY_NAME[simd]
    nq = q.shape[0]
    dist = np.empty((nq, k), dtype=np.float32)
    ids = np.empty((nq, k), dtype=np.int64)
    scanned = ctypes.c_uint64(0)
    rc = fn(x.ctypes.data, x.shape[0], x.shape[1], cent.ctypes.data, cent.shape[0],
            assign.ctypes.data, q.ctypes.data, nq, k, nprobe, metric_value(metric), mode,
            dist.ctypes.data, ids.ctypes.data, ctypes.byref(scanned))
    if rc:
        raise OSError(-rc, f"vexfs_host_ivf_search: {os.strerror(-rc)}")
    return dist, ids, int(scanned.value)
