"""Build checks of the float rule: no soft-float helpers, FPU code only in vec/vec_math_*.o.

The kernel is built without FPU/SSE for every file except vec_math_*.c (see
kernel/Kbuild). If float code slipped into another file, the compiler would
either fail or call libgcc soft-float helpers (__addsf3, __mulsf3,
__floatsisf, ...) that the kernel does not export; and SSE instructions in
another object would corrupt user FPU state because only vec_math_* calls are
bracketed by kernel_fpu_begin()/kernel_fpu_end(). Both are checked on a fresh
private build of the module.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FPU_FILES = {"vec/vec_math_sse2.o", "vec/vec_math_avx2.o"}
# libgcc soft-float and float conversion helpers (sf = float, df = double)
SOFT_FLOAT = re.compile(r"^__(add|sub|mul|div|neg|cmp|eq|ne|lt|le|gt|ge|unord|float\w*|fix\w*|"
                        r"trunc\w*|extend\w*)[sdtx]f\d?$|^(sqrtf?|fabsf?|fmaf?)$")
# any x87/SSE/AVX register or instruction in the disassembly
FPU_INSN = re.compile(r"%[xy]mm\d+|\b(fld|fst|fadd|fmul|fdiv|fsqrt|v?cvt\w+|v?sqrt[sp][sd]|"
                      r"v?(add|sub|mul|div|min|max)[sp][sd]|vfn?m(add|sub)\w+)\b")


def _headers() -> Path:
    # the harness's guest kernel (6.1) first: 6.12 headers may be installed
    # for the compat work and build only once compat.h covers them
    found = (sorted(Path("/usr/src").glob("linux-headers-6.1.*-amd64"))
             or sorted(Path("/usr/src").glob("linux-headers-*-amd64")))
    if not found:
        pytest.fail("no /usr/src/linux-headers-*-amd64: run `make setup`")
    return found[-1]


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vbuild") / "kernel"
    shutil.copytree(REPO / "kernel", out, ignore=shutil.ignore_patterns(
        "*.o", "*.ko", "*.mod*", ".*.cmd", "build", "test"))
    res = subprocess.run(["make", "-C", str(_headers()), f"M={out}", "modules"],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return out


def test_no_soft_float_helpers(build: Path) -> None:
    undefined = subprocess.run(["nm", "-u", str(build / "vexfs.ko")], capture_output=True,
                               text=True, check=True).stdout.split()
    names = [u for u in undefined if u != "U"]
    assert "kernel_fpu_begin_mask" in names or "kernel_fpu_begin" in names, \
        "FPU sections not found: is vector.c still using kernel_fpu_begin()?"
    bad = [n for n in names if SOFT_FLOAT.match(n)]
    assert not bad, f"vexfs.ko needs soft-float/libm helpers: {bad}"


def test_fpu_instructions_only_in_vec_math(build: Path) -> None:
    objs = sorted(p for p in build.rglob("*.o")
                  if p.name not in ("vexfs.o", "vexfs.mod.o") and not p.name.startswith(".")
                  and "host" not in p.parts)
    names = {o.relative_to(build).as_posix(): o for o in objs}
    assert set(names) >= FPU_FILES | {"vector.o", "ioctl.o", "vec_select.o", "vec/vec_scan.o"}
    offenders = {}
    for name, obj in names.items():
        text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(obj)],
                              capture_output=True, text=True, check=True).stdout
        hits = [line.strip() for line in text.splitlines() if FPU_INSN.search(line)]
        if name in FPU_FILES:
            assert hits, f"{name} has no SIMD code: did the Kbuild flags change?"
        elif hits:
            offenders[name] = hits[:5]
    assert not offenders, f"FPU/SSE instructions outside vec_math_*.o: {offenders}"


def test_avx2_code_only_in_the_avx2_object(build: Path) -> None:
    # The SSE2 object must run on any x86-64: no VEX-encoded (v...) instructions.
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(build / "vec" / "vec_math_sse2.o")],
                          capture_output=True, text=True, check=True).stdout
    vex = [line.strip() for line in text.splitlines() if re.search(r"\tv\w+\s", line)
           or "%ymm" in line]
    assert not vex, f"AVX instructions in the SSE2 object: {vex[:5]}"


def test_no_gather_instructions(build: Path) -> None:
    # QEMU 7.2's TCG (the test VM) mis-emulates AVX2 gathers indexed by
    # ymm4, so a gather that GCC's auto-vectoriser might emit would be
    # tested against a broken CPU model. The kernels need none: keep it so.
    offenders = {}
    for name in sorted(FPU_FILES):
        text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(build / name)],
                              capture_output=True, text=True, check=True).stdout
        hits = [line.strip() for line in text.splitlines() if re.search(r"\tv(p)?gather", line)]
        if hits:
            offenders[name] = hits[:5]
    assert not offenders, f"AVX2 gather instructions: {offenders}"
