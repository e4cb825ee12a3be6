"""ctypes mirror of the vector-collection ioctl ABI in ``kernel/uapi/vexfs_fs.h``.

The header is the source of truth. ``tests/host/test_layout.py`` and
``tests/host/test_vector_abi.py`` compile C programs against it and compare
every struct size, field offset, constant and ioctl number with this module.

ioctl numbers are computed exactly like the kernel's ``_IOC()`` macro for
x86-64 (and every other architecture with the generic ioctl encoding):
``dir << 30 | size << 16 | type << 8 | nr``.
"""

from __future__ import annotations

import ctypes

from vexfs.layout import (  # noqa: F401  (re-exported for client code)
    METRIC_NAMES,
    VEXFS_IOC_MAGIC,
    VEXFS_MAX_DIM,
    VEXFS_METRIC_COSINE,
    VEXFS_METRIC_IP,
    VEXFS_METRIC_L2,
)

VEXFS_MAX_K = 1024
VEXFS_MAX_NQ = 65536
VEXFS_MAX_BATCH = 65536
VEXFS_NO_ID = 0xFFFFFFFFFFFFFFFF

VEXFS_INSERT_UPSERT = 0x1
VEXFS_INSERT_FLAGS = VEXFS_INSERT_UPSERT

VEXFS_SIMD_SCALAR = 0
VEXFS_SIMD_SSE2 = 1
VEXFS_SIMD_AVX2 = 2
SIMD_NAMES = {VEXFS_SIMD_SCALAR: "scalar", VEXFS_SIMD_SSE2: "sse2", VEXFS_SIMD_AVX2: "avx2"}

u32 = ctypes.c_uint32
u64 = ctypes.c_uint64

# asm-generic/ioctl.h
_IOC_NRBITS, _IOC_TYPEBITS, _IOC_SIZEBITS = 8, 8, 14
_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS
_IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS
_IOC_NONE, _IOC_WRITE, _IOC_READ = 0, 1, 2


def _IOC(direction: int, type_: int, nr: int, size: int) -> int:
    if size >= 1 << _IOC_SIZEBITS:
        raise ValueError(f"ioctl argument size {size} does not fit in {_IOC_SIZEBITS} bits")
    return ((direction << _IOC_DIRSHIFT) | (type_ << _IOC_TYPESHIFT)
            | (nr << _IOC_NRSHIFT) | (size << _IOC_SIZESHIFT))


def _IOW(type_: int, nr: int, struct: type) -> int:
    return _IOC(_IOC_WRITE, type_, nr, ctypes.sizeof(struct))


def _IOR(type_: int, nr: int, struct: type) -> int:
    return _IOC(_IOC_READ, type_, nr, ctypes.sizeof(struct))


def _IOWR(type_: int, nr: int, struct: type) -> int:
    return _IOC(_IOC_READ | _IOC_WRITE, type_, nr, ctypes.sizeof(struct))


class _Struct(ctypes.Structure):
    # Native order (the ioctl ABI is host-endian); the header pads explicitly,
    # so _pack_ = 1 changes nothing and forbids ctypes padding of its own.
    _pack_ = 1
    C_NAME = ""


class IocCreate(_Struct):
    C_NAME = "vexfs_ioc_create"
    _fields_ = [("dim", u32), ("metric", u32), ("flags", u32), ("reserved", u32)]


class IocInsert(_Struct):
    C_NAME = "vexfs_ioc_insert"
    _fields_ = [("ids_ptr", u64), ("vectors_ptr", u64), ("count", u32), ("flags", u32),
                ("added", u64), ("updated", u64)]


class IocGet(_Struct):
    C_NAME = "vexfs_ioc_get"
    _fields_ = [("ids_ptr", u64), ("vectors_ptr", u64), ("found_ptr", u64), ("count", u32),
                ("flags", u32), ("nfound", u64)]


class IocDelete(_Struct):
    C_NAME = "vexfs_ioc_delete"
    _fields_ = [("ids_ptr", u64), ("count", u32), ("flags", u32), ("deleted", u64)]


class IocSearch(_Struct):
    C_NAME = "vexfs_ioc_search"
    _fields_ = [("queries_ptr", u64), ("distances_ptr", u64), ("ids_ptr", u64), ("nq", u32),
                ("k", u32), ("flags", u32), ("reserved", u32)]


class IocStats(_Struct):
    C_NAME = "vexfs_ioc_stats"
    _fields_ = [("count", u64), ("bytes", u64), ("blocks", u64), ("dim", u32), ("metric", u32),
                ("record_size", u32), ("simd", u32), ("reserved", u64 * 2)]


class IocIndexBuild(_Struct):
    C_NAME = "vexfs_ioc_index_build"
    _fields_ = [("centroids_ptr", u64), ("nlist", u32), ("nprobe", u32), ("flags", u32),
                ("reserved", u32)]


class IocIndexAssign(_Struct):
    C_NAME = "vexfs_ioc_index_assign"
    _fields_ = [("ids_ptr", u64), ("lists_ptr", u64), ("count", u32), ("flags", u32),
                ("assigned", u64)]


class IocIndexSearch(_Struct):
    C_NAME = "vexfs_ioc_index_search"
    _fields_ = [("queries_ptr", u64), ("distances_ptr", u64), ("ids_ptr", u64), ("nq", u32),
                ("k", u32), ("nprobe", u32), ("flags", u32), ("scanned", u64)]


class IocIndexStats(_Struct):
    C_NAME = "vexfs_ioc_index_stats"
    _fields_ = [("count", u64), ("indexed", u64), ("pending", u64), ("index_bytes", u64),
                ("nlist", u32), ("nprobe", u32), ("kind", u32), ("reserved", u32)]


#: Every ioctl struct, by C name (test_layout.py picks these up).
STRUCTS: dict[str, type[_Struct]] = {
    cls.C_NAME: cls for cls in (IocCreate, IocInsert, IocGet, IocDelete, IocSearch, IocStats,
                                IocIndexBuild, IocIndexAssign, IocIndexSearch, IocIndexStats)
}

VEXFS_IOC_CREATE = _IOW(VEXFS_IOC_MAGIC, 1, IocCreate)
VEXFS_IOC_INSERT = _IOWR(VEXFS_IOC_MAGIC, 2, IocInsert)
VEXFS_IOC_GET = _IOWR(VEXFS_IOC_MAGIC, 3, IocGet)
VEXFS_IOC_DELETE = _IOWR(VEXFS_IOC_MAGIC, 4, IocDelete)
VEXFS_IOC_SEARCH = _IOW(VEXFS_IOC_MAGIC, 5, IocSearch)
VEXFS_IOC_STATS = _IOR(VEXFS_IOC_MAGIC, 6, IocStats)
VEXFS_IOC_INDEX_BUILD = _IOW(VEXFS_IOC_MAGIC, 8, IocIndexBuild)
VEXFS_IOC_INDEX_ASSIGN = _IOWR(VEXFS_IOC_MAGIC, 9, IocIndexAssign)
VEXFS_IOC_INDEX_SEARCH = _IOWR(VEXFS_IOC_MAGIC, 10, IocIndexSearch)
VEXFS_IOC_INDEX_STATS = _IOR(VEXFS_IOC_MAGIC, 11, IocIndexStats)
VEXFS_IOC_INDEX_DROP = _IOC(0, VEXFS_IOC_MAGIC, 12, 0)

IOCTLS: dict[str, int] = {
    "VEXFS_IOC_CREATE": VEXFS_IOC_CREATE,
    "VEXFS_IOC_INSERT": VEXFS_IOC_INSERT,
    "VEXFS_IOC_GET": VEXFS_IOC_GET,
    "VEXFS_IOC_DELETE": VEXFS_IOC_DELETE,
    "VEXFS_IOC_SEARCH": VEXFS_IOC_SEARCH,
    "VEXFS_IOC_STATS": VEXFS_IOC_STATS,
    "VEXFS_IOC_INDEX_BUILD": VEXFS_IOC_INDEX_BUILD,
    "VEXFS_IOC_INDEX_ASSIGN": VEXFS_IOC_INDEX_ASSIGN,
    "VEXFS_IOC_INDEX_SEARCH": VEXFS_IOC_INDEX_SEARCH,
    "VEXFS_IOC_INDEX_STATS": VEXFS_IOC_INDEX_STATS,
    "VEXFS_IOC_INDEX_DROP": VEXFS_IOC_INDEX_DROP,
}

METRICS_BY_NAME = {name: value for value, name in METRIC_NAMES.items()}
