"""ruff and mypy over the filesystem tools, as part of `make test`.

Strict mypy covers the core library (vexfs/fs/) and the tools on it (fsck,
mkfs, the offline reader, the image builder); ruff covers those and the
golden repair corpus. Both come with the package's test extras.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STRICT = ["vexfs/fs", "vexfs/fsck", "vexfs/mkfs.py", "vexfs/image.py", "vexfs/image_cli.py",
          "vexfs/imagebuild.py"]
RUFF = STRICT + ["tests/host/f_corpus.py", "tests/host/test_f_cases.py", "tests/host/f_cases",
                 "tests/host/test_lint.py", "tests/host/test_fsck_random.py"]


def _tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    found = str(exe) if exe.exists() else shutil.which(name)
    assert found, f"{name} is missing: `make setup` installs the test extras"
    return found


def test_ruff_clean() -> None:
    res = subprocess.run([_tool("ruff"), "check", "--output-format", "concise", *RUFF],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_strict_clean() -> None:
    res = subprocess.run([_tool("mypy"), "--strict", *STRICT], cwd=ROOT, capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stdout + res.stderr
