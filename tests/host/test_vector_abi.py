"""The ioctl ABI mirror (vexfs/vector/abi.py) agrees with kernel/uapi/vexfs_fs.h.

A C program is generated from the Python struct definitions, compiled against
the header and run: sizeof, every offsetof/size and every ioctl number must
match ctypes. The same structs are then compiled for i386 (-m32) to prove the
layout is identical for 32-bit callers, which is what lets the kernel use
compat_ptr_ioctl().
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

from vexfs.vector import abi

REPO = Path(__file__).resolve().parents[2]
UAPI = REPO / "kernel" / "uapi"


def _program(static_only: bool) -> str:
    lines = ['#include <stddef.h>', '#include "vexfs_fs.h"']
    if not static_only:
        lines.insert(0, "#include <stdio.h>")
    body = []
    for cname, cls in abi.STRUCTS.items():
        if static_only:
            lines.append(f"_Static_assert(sizeof(struct {cname}) == {ctypes.sizeof(cls)}, "
                         f'"{cname}");')
            for fname, _ in cls._fields_:
                off = getattr(cls, fname).offset
                lines.append(f"_Static_assert(offsetof(struct {cname}, {fname}) == {off}, "
                             f'"{cname}.{fname}");')
            continue
        body.append(f'printf("S {cname} %zu\\n", sizeof(struct {cname}));')
        for fname, _ in cls._fields_:
            body.append(f'printf("F {cname} {fname} %zu %zu\\n", offsetof(struct {cname}, '
                        f"{fname}), sizeof(((struct {cname} *)0)->{fname}));")
    for name in abi.IOCTLS:
        if static_only:
            lines.append(f'_Static_assert({name} == {abi.IOCTLS[name]}U, "{name}");')
        else:
            body.append(f'printf("I {name} %lu\\n", (unsigned long){name});')
    if not static_only:
        lines += ["int main(void)", "{", *("\t" + b for b in body), "\treturn 0;", "}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def c_output(tmp_path_factory) -> dict:
    if shutil.which("gcc") is None:
        pytest.fail("gcc is required for the ABI test")
    tmp = tmp_path_factory.mktemp("vabi")
    src, exe = tmp / "vabi.c", tmp / "vabi"
    src.write_text(_program(static_only=False))
    subprocess.run(["gcc", "-Wall", "-Werror", f"-I{UAPI}", "-o", str(exe), str(src)],
                   check=True, capture_output=True, text=True)
    out: dict = {"S": {}, "F": {}, "I": {}}
    for line in subprocess.run([str(exe)], check=True, capture_output=True,
                               text=True).stdout.splitlines():
        kind, *rest = line.split()
        if kind == "S":
            out["S"][rest[0]] = int(rest[1])
        elif kind == "F":
            out["F"][(rest[0], rest[1])] = (int(rest[2]), int(rest[3]))
        else:
            out["I"][rest[0]] = int(rest[1])
    return out


def test_struct_sizes_and_offsets(c_output):
    assert set(c_output["S"]) == set(abi.STRUCTS)
    for cname, cls in abi.STRUCTS.items():
        assert ctypes.sizeof(cls) == c_output["S"][cname], cname
        end = 0
        for fname, _ in cls._fields_:
            f = getattr(cls, fname)
            assert (f.offset, f.size) == c_output["F"][(cname, fname)], f"{cname}.{fname}"
            assert f.offset == end, f"{cname}.{fname}: implicit padding"
            end += f.size
        # explicit padding: every struct is a multiple of 8 bytes
        assert ctypes.sizeof(cls) % 8 == 0, cname


def test_ioctl_numbers(c_output):
    assert c_output["I"] == abi.IOCTLS
    # spot-check the encoding by hand: _IOW('V', 1, 16 bytes)
    assert abi.VEXFS_IOC_CREATE == (1 << 30) | (16 << 16) | (ord("V") << 8) | 1
    assert abi.VEXFS_IOC_STATS >> 30 == 2  # _IOR
    assert abi.VEXFS_IOC_INSERT >> 30 == 3  # _IOWR
    assert len(set(abi.IOCTLS.values())) == len(abi.IOCTLS)


def test_same_layout_for_32bit_callers(tmp_path):
    src = tmp_path / "vabi32.c"
    src.write_text(_program(static_only=True))
    # i386 has no asm/types.h of its own on a 64-bit Debian: the x86-64 one
    # (asm-generic/int-ll64.h) is the same for both.
    res = subprocess.run(["gcc", "-m32", "-fsyntax-only", f"-I{UAPI}", "-idirafter",
                          "/usr/include/x86_64-linux-gnu", str(src)],
                         capture_output=True, text=True)
    if "unrecognized" in res.stderr or "-m32" in res.stderr:
        pytest.skip(f"gcc cannot target i386 here: {res.stderr.strip()[:200]}")
    assert res.returncode == 0, res.stderr


def test_ioc_struct_mirror_is_native_endian():
    # The ioctl ABI is host-endian (x86-64: little), unlike the on-disk structs.
    arg = abi.IocCreate(dim=3, metric=abi.VEXFS_METRIC_COSINE)
    assert bytes(arg)[:8] == (3).to_bytes(4, "little") + (1).to_bytes(4, "little")
