"""vexfs.vm.bytecode: the checkout's .pyc files are written before a guest boots."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from vexfs.vm.bytecode import PACKAGE_DIR, ensure_compiled


def test_writes_missing_pyc_and_reports_bad_source(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    good = pkg / "good.py"
    good.write_text("X = 1\n")
    pyc = Path(importlib.util.cache_from_source(str(good)))
    assert not pyc.exists()
    assert ensure_compiled(pkg) is True
    assert pyc.exists()
    (pkg / "bad.py").write_text("def broken(:\n")
    assert ensure_compiled(pkg) is False


def test_package_dir_is_the_vexfs_package() -> None:
    assert (PACKAGE_DIR / "__init__.py").exists()
    assert (PACKAGE_DIR / "vm" / "bytecode.py").exists()
