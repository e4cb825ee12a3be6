"""The kernel sources are checkpatch-clean and sparse-clean.

Both are the kernel community's own gates; running them in the suite keeps
them true for every change, not just when someone remembers.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]


def headers_dir() -> Path:
    """The newest Debian amd64 headers; `make setup` installs linux-headers-amd64."""
    found = sorted(Path("/usr/src").glob("linux-headers-*-amd64"),
                   key=lambda p: [int(x) if x.isdigit() else x for x in p.name.replace("-", ".").split(".")])
    assert found, "no /usr/src/linux-headers-*-amd64: run `make setup`"
    return found[-1]


def test_checkpatch_clean() -> None:
    result = subprocess.run([sys.executable, str(REPO / "tools" / "checkpatch.py")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, "checkpatch findings:\n" + result.stdout + result.stderr


def test_sparse_clean(tmp_path: Path) -> None:
    assert shutil.which("sparse"), "sparse not installed: run `make setup`"
    kdir = headers_dir()
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
