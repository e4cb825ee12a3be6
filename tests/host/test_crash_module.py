"""The test-only crash module builds from Python, is GPL, and is sparse- and checkpatch-clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vexfs.crash import crashtest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import checkpatch  # noqa: E402  (tools/checkpatch.py: extracts checkpatch.pl from linux-source)


def _headers() -> Path:
    kdir = crashtest.headers_dir()
    assert (kdir / "Makefile").exists(), f"{kdir} missing: run `make setup`"
    return kdir


def test_build_crashtest_returns_a_gpl_module(tmp_path: Path):
    _headers()
    ko = crashtest.build_crashtest()
    assert ko.is_file() and ko.name == "vexfs_crashtest.ko"
    info = subprocess.run(["modinfo", str(ko)], capture_output=True, text=True, check=True).stdout
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    assert fields["license"].strip() == "GPL"
    assert fields["vermagic"].strip().startswith(crashtest.default_kver() + " ")
    # the control file name is in the binary
    assert crashtest.CONTROL_FILE.rsplit("/", 1)[1].encode() in ko.read_bytes()


def test_build_error_is_clear(tmp_path: Path):
    with pytest.raises(crashtest.CrashtestBuildError, match="headers not found"):
        crashtest.build_crashtest(kdir=tmp_path)


def test_trigger_script():
    script = crashtest.trigger_script("warn")
    assert "insmod /tmp/vexfs_crashtest.ko" in script
    assert "echo warn > /proc/vexfs_crashtest" in script
    with pytest.raises(ValueError):
        crashtest.trigger_script("nope")


def test_sparse_clean(tmp_path: Path):
    assert shutil.which("sparse"), "sparse not installed: run `make setup`"
    build = tmp_path / "crashtest"
    shutil.copytree(crashtest.SOURCE_DIR, build, ignore=shutil.ignore_patterns(
        "*.o", "*.ko", "*.mod*", ".*.cmd", "Module.symvers", "modules.order"))
    result = subprocess.run(["make", "-C", str(_headers()), f"M={build}", "C=2", "modules"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    findings = [line for line in result.stderr.splitlines() if ": warning:" in line or ": error:" in line]
    assert not findings, "\n".join(findings)


def test_checkpatch_clean():
    script = checkpatch.checkpatch_path()
    assert script.exists(), "checkpatch.pl missing: run `make setup`"
    result = subprocess.run(["perl", str(script), "--no-tree", "-q", "-f",
                             str(crashtest.SOURCE_DIR / "vexfs_crashtest.c")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
