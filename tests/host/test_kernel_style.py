"""The kernel sources are checkpatch-clean and sparse-clean.

Both are the kernel community's own gates; running them in the suite keeps
them true for every change, not just when someone remembers.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parents[2]


def installed_headers() -> list[Path]:
    """Every Debian amd64 header tree installed (`make setup` installs
    linux-headers-amd64; the 6.12 and -rt trees come with `--kernel` runs)."""
    return sorted(p for p in Path("/usr/src").glob("linux-headers-*-amd64")
                  if (p / "Makefile").exists())


def test_version_tests_only_in_compat_header() -> None:
    """Kernel-version differences live in kernel/compat.h alone: no .c file
    tests LINUX_VERSION_CODE or VEXFS_AT_LEAST itself."""
    offenders = [f"{path.relative_to(REPO)}:{n}: {line.strip()}"
                 for path in sorted((REPO / "kernel").rglob("*.[ch]"))
                 if path.name != "compat.h" and not path.name.endswith(".mod.c")
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if "LINUX_VERSION_CODE" in line or "VEXFS_AT_LEAST" in line]
    assert not offenders, "version tests outside kernel/compat.h:\n" + "\n".join(offenders)


def test_checkpatch_clean() -> None:
    result = subprocess.run([sys.executable, str(REPO / "tools" / "checkpatch.py")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, "checkpatch findings:\n" + result.stdout + result.stderr


@pytest.mark.parametrize("kdir", installed_headers() or [Path("/usr/src/linux-headers-missing")],
                         ids=lambda p: p.name.removeprefix("linux-headers-"))
def test_sparse_clean(tmp_path: Path, kdir: Path) -> None:
    """sparse and the compiler are clean against every installed kernel's
    headers (6.1, and 6.12 / 6.12-rt when present): kernel/compat.h covers them."""
    assert shutil.which("sparse"), "sparse not installed: run `make setup`"
    assert (kdir / "Makefile").exists(), "no /usr/src/linux-headers-*-amd64: run `make setup`"
    # Build a private copy so the check never races a build in kernel/.
    build = tmp_path / "kernel"
    shutil.copytree(REPO / "kernel", build, ignore=shutil.ignore_patterns(
        "*.o", "*.ko", "*.mod*", ".*.cmd", "build", "test"))
    result = subprocess.run(["make", "-C", str(kdir), f"M={build}", "C=2", "modules"],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    findings = [line for line in result.stderr.splitlines()
                if ": warning:" in line or ": error:" in line]
    assert not findings, "sparse/compiler findings:\n" + "\n".join(findings)
