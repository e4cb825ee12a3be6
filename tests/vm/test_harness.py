"""VM tests of the harness itself: the quick runner, a guest session, and
`vexfs run S1 S2` against the real kernel/build/vexfs.ko (both must pass)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vexfs.vm.paths import REPO_ROOT

pytestmark = pytest.mark.vm

VEXFS = REPO_ROOT / ".venv" / "bin" / "vexfs"


@pytest.fixture(scope="module")
def kernel():
    from vexfs.vm.kernel import ensure_kernel

    return ensure_kernel()


@pytest.fixture(scope="module")
def vexfs_ko(kernel) -> Path:
    from vexfs.vm.build import build_vexfs

    return build_vexfs(kernel).path


@pytest.mark.timeout(600)
def test_quick_runner_exit_code_output_modules_and_writable_dirs(tmp_path: Path) -> None:
    from vexfs.vm.quick import run_script

    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"vexfs-payload-42\n")
    script = """
cat /tmp/payload.bin
echo to-stderr >&2
touch /tmp/t /mnt/t /root/t /etc/t /var/t || exit 90
test -x /work/main/.venv/bin/python || exit 91
modprobe loop || exit 92
test "$(id -u)" = 0 || exit 93
exit 7
"""
    result = run_script(script, [payload], timeout=400)
    assert result.returncode == 7, result.output + result.console[-3000:]
    assert "vexfs-payload-42" in result.output
    assert "to-stderr" in result.output
    assert not result.crashed and not result.timed_out
    assert "vexfs-init: root ready" in result.console
    assert result.log_path is not None and result.log_path.exists()
    assert "vexfs-payload-42" in result.log_path.read_text()


@pytest.mark.timeout(600)
def test_quick_runner_timeout_is_124() -> None:
    from vexfs.vm.quick import run_script

    result = run_script("echo started; sleep 1000", timeout=60)
    assert result.returncode == 124 and result.timed_out
    assert not result.crashed


@pytest.mark.timeout(600)
def test_quick_cli_passes_exit_code() -> None:
    proc = subprocess.run([sys.executable, "-m", "vexfs.vm.quick", "--quiet", "--",
                           "echo hello-from-guest; exit 3"],
                          capture_output=True, text=True, timeout=500, cwd=REPO_ROOT)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert proc.stdout == "hello-from-guest\n"


@pytest.mark.timeout(600)
def test_session_many_commands_and_files(tmp_path: Path) -> None:
    from vexfs.vm.session import GuestVM

    with GuestVM(name="test-session", log_dir=tmp_path, spec_log=False) as vm:
        assert vm.boot is not None and vm.boot.accel in ("tcg", "kvm")
        r = vm.run("uname -r")
        assert r.ok and r.stdout.strip() == vm.kernel.version
        assert vm.run(["sh", "-c", "exit 5"]).rc == 5
        data = bytes(range(256)) * 4096  # 1 MiB, binary
        vm.put_file(data, "/tmp/blob", 0o600)
        assert vm.read_file("/tmp/blob") == data
        r = vm.run("sha256sum /tmp/blob; stat -c %a /tmp/blob")
        import hashlib
        assert r.stdout.split()[0] == hashlib.sha256(data).hexdigest()
        assert r.stdout.split()[-1] == "600"
        r = vm.run("sleep 0.5")
        assert 0.4 < r.duration_s < 20
        assert vm.status() == "running"
        # printk reaches the console (and so the live log) as it happens
        vm.run("echo vexfs-test-printk-marker > /dev/kmsg")
        import time
        deadline = time.monotonic() + 20
        while "vexfs-test-printk-marker" not in vm.console and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "vexfs-test-printk-marker" in vm.console
        vm.shutdown()
        assert not vm.proc.alive()
    log_text = vm.log_paths[0].read_text()
    assert "vexfs-test-printk-marker" in log_text
    assert not vm.watch.crashed


@pytest.mark.timeout(1500)
def test_vexfs_run_s1_s2_pass_on_the_real_module(tmp_path: Path, kernel, vexfs_ko: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run([str(VEXFS), "run", "S1", "S2", "--module", str(vexfs_ko),
                           "--out", str(out)], capture_output=True, text=True, timeout=1400,
                          cwd=REPO_ROOT)
    report = json.loads((out / "report.json").read_text())
    by_id = {s["id"]: s for s in report["scenarios"]}
    detail = json.dumps(report["scenarios"], indent=1)[:6000]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + detail
    assert by_id["S1"]["status"] == "passed" and by_id["S2"]["status"] == "passed", detail
    # the kernel apt offers now (Debian bumps the ABI number: -56, -57, ...)
    assert report["environment"]["kernel_version"] == kernel.version
    assert report["environment"]["accelerator"] in ("tcg", "kvm")
    s1 = by_id["S1"]
    names = [c["name"] for c in s1["criteria"]]
    for needed in ("Module loads without kernel panic", "Module appears in lsmod and /proc/modules",
                   "VexFS initialization messages appear in dmesg", "Module unloads cleanly",
                   "No error messages in dmesg"):
        assert needed in names
    assert 0 < s1["metrics"]["load_s"] < 5
    s2 = by_id["S2"]
    m = s2["metrics"]
    assert m["cycles"] == 20
    for key in ("load_s", "unload_s", "mem_available_kb", "slab_kb", "module_counters"):
        assert len(m[key]) == 20, key
    assert all(c for c in m["module_counters"]), "module counters read every cycle"
    assert (out / "junit.xml").exists()
    consoles = list((out / "console").glob("*.log"))
    assert len(consoles) == 2 and all(p.stat().st_size > 0 for p in consoles)
    assert (out / "S1.log").read_text().count("insmod") >= 1
