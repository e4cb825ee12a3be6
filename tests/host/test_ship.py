"""Host tests for shipping VexFS: kernel specs, per-kernel builds, parallel
scenario runs, the kernel matrix report and the Debian packages."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from vexfs.harness import matrix as mx
from vexfs.harness.framework import RunOptions, Scenario
from vexfs.harness.runner import RunnerConfig, run_all
from vexfs.report.events import PlainObserver
from vexfs.report.model import Status
from vexfs.report.sample import sample_run
from vexfs.vm import kernel as k

REPO = Path(__file__).resolve().parents[2]

IMAGE_META = """\
linux-image-6.12-amd64
  Depends: linux-image-6.12.117+deb12-amd64
"""
IMAGE_META_UNSIGNED = """\
linux-image-6.12-rt-amd64
 |Depends: linux-image-6.12.9+deb12-rt-amd64-unsigned
  Depends: linux-image-6.12.117+deb12-rt-amd64
"""


def test_parse_image_depends() -> None:
    assert k.parse_image_depends(IMAGE_META) == "6.12.117+deb12-amd64"
    # numeric order across alternatives; -unsigned names the same release
    assert k.parse_image_depends(IMAGE_META_UNSIGNED) == "6.12.117+deb12-rt-amd64"
    with pytest.raises(k.KernelError):
        k.parse_image_depends("linux-image-6.12-amd64\n  Depends: kmod\n")


@pytest.mark.parametrize("spec,meta", [
    ("6.12", "linux-image-6.12-amd64"), ("6.12-rt", "linux-image-6.12-rt-amd64"),
    ("linux-image-6.12-amd64", "linux-image-6.12-amd64"), ("rt", "linux-image-rt-amd64"),
    ("6.1", "linux-image-amd64"), ("default", "linux-image-amd64"),
])
def test_meta_package(spec: str, meta: str) -> None:
    assert k.meta_package(spec) == meta


def test_resolve_version(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def fake_run(cmd, cwd=None):
        calls.append(cmd)
        if cmd == ["apt-cache", "depends", "linux-image-6.12-amd64"]:
            return IMAGE_META
        if cmd == ["apt-cache", "depends", "linux-headers-amd64"]:
            return "linux-headers-amd64\n  Depends: linux-headers-6.1.0-57-amd64\n"
        raise k.KernelError("E: No packages found")

    monkeypatch.setattr(k, "_run", fake_run)
    monkeypatch.setenv("VEXFS_CACHE", "/nonexistent-vexfs-cache")
    assert k.resolve_version("6.12") == "6.12.117+deb12-amd64"
    assert k.resolve_version(None) == "6.1.0-57-amd64"
    # full releases need no lookup
    calls.clear()
    for full in ("6.1.0-57-amd64", "6.12.117+deb12-rt-amd64", "linux-image-6.1.0-9-amd64"):
        assert k.resolve_version(full) == full.removeprefix("linux-image-")
    assert calls == []
    with pytest.raises(k.KernelError, match="apt knows no kernel '9.9'"):
        k.resolve_version("9.9")
    with pytest.raises(k.KernelError, match="not a kernel version"):
        k.resolve_version("6.12; rm -rf /")


def test_version_key_mixes_debian_and_numeric_releases() -> None:
    versions = ["6.12.117+deb12-amd64", "6.1.0-57-amd64", "6.1.0-9-amd64",
                "6.12.117+deb12-rt-amd64", "6.12.9+deb12-amd64"]
    ordered = sorted(versions, key=k._version_key)
    assert ordered.index("6.1.0-9-amd64") < ordered.index("6.1.0-57-amd64")
    assert ordered.index("6.12.9+deb12-amd64") < ordered.index("6.12.117+deb12-amd64")
    assert ordered[0].startswith("6.1.")


def test_ensure_kernel_offline_prefers_recorded_default(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A cached 6.12 must not become the default when apt cannot answer."""
    monkeypatch.setenv("VEXFS_CACHE", str(tmp_path))
    monkeypatch.delenv(k.KERNEL_ENV, raising=False)
    for version in ("6.1.0-57-amd64", "6.12.117+deb12-amd64"):
        (tmp_path / "kernel" / version).mkdir(parents=True)
        (tmp_path / "kernel" / version / "unpacked.ok").write_text("x")
    (tmp_path / "kernel" / "default-version").write_text("6.1.0-57-amd64\n")

    def offline(cmd, cwd=None):
        raise k.KernelError("network down")

    monkeypatch.setattr(k, "_run", offline)
    monkeypatch.setattr(k, "fetch", lambda v: v)
    assert k.ensure_kernel(headers=False) == "6.1.0-57-amd64"


def test_kernel_env_selects_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(k.KERNEL_ENV, "6.12.117+deb12-amd64")
    monkeypatch.setattr(k, "fetch", lambda v: v)
    assert k.ensure_kernel(headers=False) == "6.12.117+deb12-amd64"


def _sleeper(sid: str, seconds: float, active: list[int], peak: list[int], lock: threading.Lock,
             passed: bool = True) -> Scenario:
    def fn(ctx) -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(seconds)
        with lock:
            active[0] -= 1
        ctx.check(f"{sid} ran", passed, "slept")

    return Scenario(id=sid, name=f"sleep {sid}", fn=fn, needs_module=False, own_vms=True)


def test_run_all_runs_scenarios_in_parallel_and_keeps_their_order(tmp_path: Path) -> None:
    active, peak, lock = [0], [0], threading.Lock()
    scenarios = [_sleeper(f"X{i}", 1.0 if i == 1 else 0.1, active, peak, lock) for i in range(1, 5)]
    cfg = RunnerConfig(kernel=k.GuestKernel(version="6.1.0-57-amd64", root=tmp_path),
                       out_dir=tmp_path / "run", options=RunOptions(), observer=PlainObserver(),
                       jobs=2, write_report=False)
    run = run_all(scenarios, cfg)
    assert peak[0] == 2  # two at once (X2.. ran beside X1), never more
    assert [s.id for s in run.scenarios] == ["X1", "X2", "X3", "X4"]  # report order = given order
    assert all(s.status == Status.PASSED for s in run.scenarios)
    assert run.environment.extra["jobs"] == 2
    for s in run.scenarios:  # each has its own transcript
        assert (tmp_path / "run" / f"{s.id}.log").read_text().startswith(f"# {s.id} ")


def test_run_all_serial_with_one_job(tmp_path: Path) -> None:
    active, peak, lock = [0], [0], threading.Lock()
    scenarios = [_sleeper(f"X{i}", 0.05, active, peak, lock, passed=(i != 2)) for i in range(1, 4)]
    cfg = RunnerConfig(kernel=k.GuestKernel(version="6.1.0-57-amd64", root=tmp_path),
                       out_dir=tmp_path / "run", options=RunOptions(), observer=PlainObserver(),
                       jobs=1, write_report=False)
    run = run_all(scenarios, cfg)
    assert peak[0] == 1
    assert [s.status for s in run.scenarios] == [Status.PASSED, Status.FAILED, Status.PASSED]
    assert not run.passed


def test_matrix_report_links_every_cell_to_its_run(tmp_path: Path) -> None:
    run_a = sample_run("a", seed=1)
    run_b = sample_run("b", seed=2)
    run_b.environment.kernel_version = "6.12.117+deb12-amd64"
    m = mx.Matrix(matrix_id="matrix-test", started_at="2026-12-02T00:00:00+00:00",
                  scenarios=[s.id for s in run_a.scenarios])
    m.rows.append(mx.row_from_run("6.1", run_a, run_a.environment.kernel_version))
    m.rows.append(mx.row_from_run("6.12", run_b, "6.12.117+deb12-amd64"))
    m.rows.append(mx.KernelRow(spec="6.12-rt", error="linux-headers-6.12-rt failed"))
    mx.write_matrix(m, tmp_path)
    data = json.loads((tmp_path / "matrix.json").read_text())
    assert data["passed"] is False  # a kernel that did not run is never a pass
    assert [r["spec"] for r in data["rows"]] == ["6.1", "6.12", "6.12-rt"]
    row = data["rows"][1]
    assert set(row["cells"]) == set(m.scenarios)
    s1 = row["cells"]["S1"]
    assert s1["report_link"] == "6.12.117+deb12-amd64/report.html#S1"
    assert s1["transcript_link"] == "6.12.117+deb12-amd64/S1.log"
    assert s1["figures"]  # load/unload times
    page = (tmp_path / "matrix.html").read_text()
    assert 'href="6.12.117+deb12-amd64/report.html#S4"' in page
    assert "linux-headers-6.12-rt failed" in page
    assert page.count("<tr>") == 1 + 3


def test_matrix_passes_only_when_every_cell_passed() -> None:
    run = sample_run("a", seed=1)
    for s in run.scenarios:
        s.status = Status.PASSED
        for c in s.criteria:
            c.passed = True
    m = mx.Matrix(matrix_id="m", started_at="", scenarios=[s.id for s in run.scenarios])
    m.rows.append(mx.row_from_run("6.1", run, "k"))
    assert m.passed == run.passed
    m.scenarios.append("S9")  # a scenario the kernel never ran
    assert not m.passed


def test_version_has_one_source() -> None:
    version = (REPO / "kernel" / "VERSION").read_text().strip()
    import vexfs

    assert vexfs.__version__ == version
    assert "VEXFS_MODULE_VERSION\t\"" not in (REPO / "kernel" / "vexfs.h").read_text()
    assert "$(src)/VERSION" in (REPO / "kernel" / "Kbuild").read_text()
    assert 'PACKAGE_VERSION="@VERSION@"' in (REPO / "kernel" / "dkms.conf").read_text()


def test_make_deb_builds_both_packages(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "mkdeb.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    version = (REPO / "kernel" / "VERSION").read_text().strip()
    dkms = tmp_path / f"vexfs-dkms_{version}_all.deb"
    tools = tmp_path / f"vexfs-tools_{version}_all.deb"

    def field(deb: Path, name: str) -> str:
        return subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True,
                              text=True, check=True).stdout.strip()

    def files(deb: Path) -> list[str]:
        out = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True,
                             check=True).stdout
        return [line.split()[-1].lstrip(".") for line in out.splitlines()]

    assert field(dkms, "Version") == field(tools, "Version") == version
    assert "dkms" in field(dkms, "Depends")
    src = f"/usr/src/vexfs-{version}"
    dkms_files = files(dkms)
    for name in ("dkms.conf", "Kbuild", "VERSION", "compat.h", "super.c", "uapi/vexfs_fs.h"):
        assert f"{src}/{name}" in dkms_files
    assert not any("/test/" in f or f.endswith((".o", ".ko")) for f in dkms_files)
    conf = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(dkms)], capture_output=True,
                          check=True).stdout
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(conf)) as tar:
        text = tar.extractfile(f".{src}/dkms.conf").read().decode()
    assert f'PACKAGE_VERSION="{version}"' in text and "@VERSION@" not in text
    tool_files = files(tools)
    for path in ("/usr/sbin/mkfs.vexfs", "/usr/sbin/fsck.vexfs", "/usr/bin/vexfs",
                 "/usr/lib/python3/dist-packages/vexfs/mkfs.py",
                 f"/usr/lib/python3/dist-packages/vexfs-{version}.dist-info/METADATA"):
        assert path in tool_files, path
    assert "python3-numpy" in field(tools, "Depends")
