"""The founding spec's workflow, verbatim, in the interactive VM.

The six scenario blocks and the monitoring commands are read out of
../shared/seed/vm-testing-scenarios.md (vexfs.vm.specblocks), not retyped.
As a reader of the spec would: start the VM with the spec's
run_qemu_fast.sh, run the spec's `scp` on the host from the checkout, then
paste each block into the spec's `ssh -p 2222 root@localhost` (the block is
that ssh's stdin; the block's own scp line is the host step above, so it is
left out of what the guest runs). Then the three monitoring commands, each
stopped (bounded) once it showed what it is for.

Port: other runs share the host, so this VM uses a free port and its own
state dir; the spec's `-p 2222` / `-P 2222` become that port (the only
change made to the spec's commands), plus `-F <config>` holding exactly the
block `vexfs vm start` puts in ~/.ssh/config.

Runtime: the blocks keep the spec's `sleep`s (Scenario 2's 20 cycles sleep
40 s). Measured about 5 min on the shared 2-core host (docs/harness.md).
"""

from __future__ import annotations

import os
import re
import select
import shlex
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from vexfs.crash.detect import parse_log
from vexfs.vm import specblocks
from vexfs.vm.build import VEXFS_KO
from vexfs.vm.paths import REPO_ROOT

pytestmark = pytest.mark.vm

LEGACY = REPO_ROOT / "tests" / "legacy" / "vm_management" / "vm"
VEXFS = REPO_ROOT / ".venv" / "bin" / "vexfs"
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]")
KERNEL_PROBLEMS = re.compile(r"\bOops\b|\bBUG[: ]|WARNING:|Call Trace:|general protection fault|"
                             r"Kernel panic|\bUBSAN\b")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SpecVM:
    """The running interactive VM and the spec's commands on its port."""

    def __init__(self, port: int, config: Path, env: dict[str, str], log_path: Path) -> None:
        self.port = port
        self.config = config
        self.env = env
        self.log_path = log_path

    def command(self, spec_line: str) -> list[str]:
        """A spec ssh/scp line on this VM's port, with our ssh config."""
        argv = shlex.split(specblocks.with_port(spec_line, self.port))
        assert argv[0] in ("ssh", "scp"), spec_line
        return [argv[0], "-F", str(self.config), "-o", "BatchMode=yes",
                "-o", "ConnectTimeout=300", *argv[1:]]

    def paste(self, spec_ssh: str, script: str, timeout: float = 900) -> tuple[str, float]:
        started = time.monotonic()
        proc = subprocess.run(self.command(spec_ssh), input=script, capture_output=True,
                              text=True, timeout=timeout)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 255, f"ssh failed: {out[-2000:]}"
        return out, time.monotonic() - started


@pytest.fixture(scope="module")
def spec_text() -> str:
    try:
        return specblocks.find_spec().read_text()
    except specblocks.SpecError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory, spec_text: str) -> Iterator[SpecVM]:
    from vexfs.vm import ssh

    assert VEXFS_KO.exists(), f"{VEXFS_KO} missing: build the module first (make module)"
    tmp = tmp_path_factory.mktemp("specvm")
    port = free_port()
    env = dict(os.environ, VEXFS_VM_STATE_DIR=str(tmp / "state"))
    access = specblocks.vm_access_commands(spec_text)
    assert access[0] == "cd tests/legacy/vm_management/vm/" and access[1] == "./run_qemu_fast.sh"
    start = subprocess.run([access[1], "--port", str(port), "--no-ssh-config"], cwd=LEGACY,
                           capture_output=True, text=True, env=env, timeout=900)
    assert start.returncode == 0, start.stdout + start.stderr
    import json
    log_path = Path(json.loads((tmp / "state" / "state.json").read_text())["log_path"])
    config = tmp / "ssh_config"
    ssh.install_config(port, ssh.ensure_keys(port), config)
    try:
        yield SpecVM(port, config, env, log_path)
    finally:
        subprocess.run([str(VEXFS), "vm", "stop"], env=env, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def blocks(spec_text: str, vm: SpecVM) -> dict[int, str]:
    """Every block run once, in the spec's order, after the spec's scp."""
    parsed = specblocks.scenario_blocks(spec_text)
    access = specblocks.vm_access_commands(spec_text)
    scp = parsed[0].host_lines
    assert scp == ["scp -P 2222 kernel/build/vexfs.ko root@localhost:/tmp/"], scp
    r = subprocess.run(vm.command(scp[0]), cwd=REPO_ROOT, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    outputs: dict[int, str] = {}
    for block in parsed:
        out, seconds = vm.paste(access[2], block.guest_script)
        print(f"Scenario {block.number} block: {seconds:.1f} s")
        outputs[block.number] = out
    return outputs


def lines(out: str) -> list[str]:
    return [line.rstrip() for line in out.splitlines()]


def test_scenario1_lifecycle(blocks: dict[int, str]) -> None:
    out = blocks[1]
    assert "Module load result: 0" in out, out
    assert any(re.match(r"^vexfs\s+\d+\s+0$", line) for line in lines(out)), out  # lsmod
    assert any(re.match(r"^vexfs \d+ 0 - Live 0x[0-9a-f]+", line) for line in lines(out)), out
    assert re.search(r"vexfs: VexFS \S+ loaded", out), out  # dmesg | tail -20 | grep -i vexfs
    assert "Module unload result: 0" in out, out
    assert "Module successfully unloaded" in out, out


def test_scenario2_stress(blocks: dict[int, str]) -> None:
    out = blocks[2]
    assert "FAILED" not in out, out
    for cycle in range(1, 21):
        assert f"SUCCESS: Cycle {cycle} completed" in out, out
    assert "Stress test completed" in out


def test_scenario3_blockdev(blocks: dict[int, str]) -> None:
    out = blocks[3]
    assert "Loop device setup: 0" in out, out
    assert "losetup:" not in out, out
    assert re.search(r"^b\S+ 1 root \S+ +7, +0 .* /dev/loop0$", out, re.M), out
    assert "/tmp/vexfs_test.img: data" in out, out  # file
    assert "00000000  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|" in out
    assert "\n06400000\n" in out, out  # hexdump read the whole 100 MiB device


def test_scenario4_filesystem(blocks: dict[int, str]) -> None:
    out = blocks[4]
    assert "\tvexfs" in out and "VexFS filesystem registration: 0" in out, out
    assert "/usr/local/sbin/mkfs.vexfs" in out and "mkfs.vexfs not available" not in out, out
    assert "Mount result: 0" in out, out
    assert "=== MOUNT SUCCESSFUL ===" in out, out
    assert "\nHello VexFS\n" in out, out
    assert re.search(r"^-rw-r--r-- 1 root root +12 .* test\.txt$", out, re.M), out
    assert re.search(r"^d\S+ 2 root root .* testdir$", out, re.M), out
    assert "Unmount result: 0" in out, out
    assert "losetup:" not in out and "rmmod:" not in out, out


def test_scenario5_vectors(blocks: dict[int, str]) -> None:
    out = blocks[5]
    assert "/usr/local/sbin/mkfs.vexfs" in out, out
    assert "=== TESTING VECTOR OPERATIONS ===" in out, out
    for i in range(1, 11):
        size = len(f"vector_{i}: [1.0, 2.0, 3.0, 4.0]\n")
        assert re.search(rf"^-rw-r--r-- 1 root root +{size} .* vector_{i}\.vec$", out, re.M), out
    assert "\nvector_1: [1.0, 2.0, 3.0, 4.0]\n" in out, out
    assert "umount:" not in out and "rmmod:" not in out, out


def test_scenario6_errors(blocks: dict[int, str]) -> None:
    out = blocks[6]
    invalid = re.search(r"Invalid mount result: (\d+)", out)
    assert invalid and invalid.group(1) != "0", out
    invalid_fs = re.search(r"Invalid filesystem mount result: (\d+)", out)
    assert invalid_fs and invalid_fs.group(1) != "0", out
    # The ten zero-filled loop images reach vexfs (loop8-10 created on demand
    # by losetup, as on a distro) and are refused by it, each with its message.
    for i in range(1, 11):
        assert f"mount: /mnt/test_{i}: wrong fs type" in out, out
        assert f"vexfs (loop{i}): error: can't find a vexfs filesystem" in out, out
    assert re.search(r"^Mem: +\S+", out, re.M), out  # free -h
    assert "rmmod:" not in out, out


def test_kernel_clean_after_blocks(blocks: dict[int, str], vm: SpecVM) -> None:
    for number, out in blocks.items():
        bad = [line for line in lines(out) if KERNEL_PROBLEMS.search(line)]
        assert not bad, f"Scenario {number}: {bad}"
    r = subprocess.run(vm.command("ssh -p 2222 root@localhost") + ["dmesg; lsmod"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    bad = [line for line in lines(r.stdout) if KERNEL_PROBLEMS.search(line)]
    assert not bad, bad
    assert not any(line.startswith("vexfs ") for line in lines(r.stdout)), "vexfs left loaded"
    assert parse_log(vm.log_path.read_text(errors="replace")) == []


def stream_until(argv: list[str], needles: list[re.Pattern[str]], timeout: float,
                 cwd: Path | None = None) -> str:
    """Run a never-ending monitoring command until every needle showed in
    its output (escape sequences removed) or `timeout`; then stop it."""
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    assert proc.stdout is not None
    raw = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                raw += chunk
                text = ESCAPES.sub(" ", raw.decode(errors="replace"))
                if all(n.search(text) for n in needles):
                    return text
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()
    return ESCAPES.sub(" ", raw.decode(errors="replace"))


def test_monitoring_commands(spec_text: str, vm: SpecVM, blocks: dict[int, str]) -> None:
    cmds = specblocks.monitoring_commands(spec_text)
    assert cmds[0] == "cd tests/legacy/vm_management/vm/"
    tail, watch_dmesg, watch_free = cmds[1:]
    marker = f"spec-monitor-{os.getpid()}"
    setup = subprocess.run(vm.command("ssh -p 2222 root@localhost")
                           + [f"insmod /tmp/vexfs.ko && echo {marker} > /dev/kmsg"],
                           capture_output=True, text=True, timeout=600)
    assert setup.returncode == 0, setup.stderr
    try:
        # Terminal 1: the console log (dmesg live in it), from the spec's folder
        text = stream_until(["sh", "-c", tail], [re.compile(re.escape(marker))], 60, cwd=LEGACY)
        assert marker in text, text[-2000:]
        # Terminal 2: dmesg in the VM, refreshed every second
        text = stream_until(vm.command(watch_dmesg),
                            [re.compile(r"Every 1\.0s: dmesg \| tail -10"),
                             re.compile(re.escape(marker))], 300)
        assert "Every 1.0s" in text and marker in text, text[-2000:]
        # Terminal 3: memory and the module
        text = stream_until(vm.command(watch_free),
                            [re.compile(r"Every 2\.0s: free -h"), re.compile(r"Mem: +\d"),
                             re.compile(r"vexfs +\d+ +0")], 300)
        assert re.search(r"Mem: +\d", text) and re.search(r"vexfs +\d+ +0", text), text[-2000:]
    finally:
        subprocess.run(vm.command("ssh -p 2222 root@localhost") + ["rmmod vexfs"],
                       capture_output=True, text=True, timeout=600)


def test_mkfs_fsck_by_type(vm: SpecVM, blocks: dict[int, str]) -> None:
    """mkfs(8) / fsck(8) find mkfs.vexfs / fsck.vexfs on the PATH."""
    script = ("dd if=/dev/zero of=/tmp/bytype.img bs=1M count=32 status=none && "
              "losetup /dev/loop0 /tmp/bytype.img && mkfs -t vexfs /dev/loop0 && "
              "fsck -t vexfs /dev/loop0; echo fsck=$?; losetup -d /dev/loop0; "
              "rm /tmp/bytype.img; which mkfs.vexfs fsck.vexfs vexfs")
    r = subprocess.run(vm.command("ssh -p 2222 root@localhost") + [script],
                       capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert "mkfs.vexfs" in out and "Writing superblock" in out, out
    assert "fsck=0" in out, out
    for tool in ("mkfs.vexfs", "fsck.vexfs", "vexfs"):
        assert f"/usr/local/sbin/{tool}" in out, out


# --- the spec's "Module load failure" procedure, done by the harness -----------

def guest_runner(vm: SpecVM):
    from vexfs.vm.ssh import ssh_run

    argv = vm.command("ssh -p 2222 root@localhost")
    return lambda cmd: ssh_run(argv, cmd)


def test_load_failure_truncated_by_transfer(vm: SpecVM, blocks: dict[int, str],
                                            tmp_path: Path) -> None:
    """The guest's copy is cut short (a failed transfer): the kernel refuses
    it and the diagnosis says the copy differs from the build."""
    from vexfs.vm import loadcheck

    data = VEXFS_KO.read_bytes()
    cut = tmp_path / "vexfs.ko"
    cut.write_bytes(data[: len(data) // 3])
    scp = vm.command("scp -P 2222 x root@localhost:/tmp/")[:-2]
    subprocess.run(scp + [str(cut), "root@localhost:/tmp/vexfs_cut.ko"], check=True, timeout=600)
    result, diagnosis = loadcheck.load_and_diagnose(guest_runner(vm), VEXFS_KO, "/tmp/vexfs_cut.ko")
    assert result.rc != 0 and diagnosis is not None
    print(diagnosis.text())
    first = diagnosis.fatal[0]
    assert first.kind == "integrity" and "differs from the build" in first.message, diagnosis.text()
    assert f"{len(data) // 3} bytes in the guest, {len(data)} built" in first.message


def test_load_failure_truncated_build_via_cli(vm: SpecVM, blocks: dict[int, str],
                                              tmp_path: Path) -> None:
    """`vexfs vm insmod` of a truncated .ko: the ELF check names it."""
    cut = tmp_path / "vexfs.ko"
    cut.write_bytes(VEXFS_KO.read_bytes()[:50_000])
    r = subprocess.run([str(VEXFS), "vm", "insmod", str(cut), "--dest", "/tmp/vexfs_cut2.ko"],
                       env=vm.env, capture_output=True, text=True, timeout=900)
    print(r.stdout, r.stderr)
    assert r.returncode == 1
    assert "Invalid module format" in r.stderr or "Invalid module format" in r.stdout
    assert "[integrity] vexfs.ko is not a loadable module: truncated" in r.stdout


def test_load_failure_vermagic(vm: SpecVM, blocks: dict[int, str], tmp_path: Path) -> None:
    """A module whose vermagic is not the guest kernel's (patched in place:
    'preempt' -> 'PREEMPT'): the kernel's own complaint, checked."""
    from vexfs.vm import loadcheck

    data = VEXFS_KO.read_bytes()
    good = loadcheck.modinfo_fields(data)["vermagic"]
    bad = good.replace(" preempt ", " PREEMPT ")
    assert bad != good
    patched = tmp_path / "vexfs.ko"
    patched.write_bytes(data.replace(good.encode(), bad.encode()))
    scp = vm.command("scp -P 2222 x root@localhost:/tmp/")[:-2]
    subprocess.run(scp + [str(patched), "root@localhost:/tmp/vexfs_magic.ko"], check=True,
                   timeout=600)
    result, diagnosis = loadcheck.load_and_diagnose(guest_runner(vm), patched,
                                                    "/tmp/vexfs_magic.ko")
    assert result.rc != 0 and diagnosis is not None
    print(diagnosis.text())
    first = diagnosis.fatal[0]
    assert first.kind == "vermagic", diagnosis.text()
    assert f"'{bad.strip()}' does not match the kernel's '{good.strip()}'" in first.message
    assert any("version magic" in e for e in first.evidence)


def test_load_failure_unknown_symbols(vm: SpecVM, blocks: dict[int, str]) -> None:
    """ext4.ko with jbd2 not loaded: each unknown symbol's module is named
    from the guest's modules.symbols (jbd2, mbcache)."""
    from vexfs.vm import loadcheck
    from vexfs.vm.kernel import ensure_kernel

    run = guest_runner(vm)
    kernel = ensure_kernel(headers=False)
    rel = "kernel/fs/ext4/ext4.ko"
    host_ko = kernel.modules_dir / rel
    assert host_ko.exists(), host_ko
    r = run("rmmod jbd2 2>&1; rmmod mbcache 2>&1; lsmod | grep -E '^(jbd2|mbcache) ' || true")
    assert "jbd2 " not in r.stdout, r.stdout
    try:
        result, diagnosis = loadcheck.load_and_diagnose(
            run, host_ko, f"/lib/modules/{kernel.version}/{rel}")
    finally:
        run("modprobe jbd2")  # back to the distro-like state
    assert result.rc != 0 and diagnosis is not None
    print(diagnosis.text())
    sym = [c for c in diagnosis.fatal if c.kind == "symbols"]
    assert any("module jbd2" in c.message and "jbd2_" in c.message
               and "modprobe jbd2" in c.message for c in sym), diagnosis.text()
    assert any("module mbcache" in c.message for c in sym), diagnosis.text()
