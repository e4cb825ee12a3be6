"""QEMU: the command line, the accelerator probe, and a running process
whose console is streamed line by line as it arrives.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shlex
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from vexfs.vm.kernel import GuestKernel
from vexfs.vm.paths import cache_dir

log = logging.getLogger(__name__)

QEMU = "qemu-system-x86_64"
CPU_MODEL = "max"  # under TCG this gives the guest AVX2 + FMA

ConsoleCallback = Callable[[str], None]


def qemu_binary() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise FileNotFoundError(f"{QEMU} not found (apt-get install qemu-system-x86)")
    return path


def qemu_version() -> str:
    try:
        out = subprocess.run([qemu_binary(), "--version"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    match = re.search(r"version (\S+)", out)
    return match.group(1) if match else ""


@dataclass
class VMConfig:
    """What one guest boot looks like."""

    kernel: GuestKernel
    initramfs: Path
    job_dir: Path  # shared read-write as tag `vexfsjob`, mounted at /run/vexfs
    accel: str = "tcg"
    memory: str = "2G"
    cpus: int = 2
    cmdline_extra: list[str] = field(default_factory=list)
    qmp_socket: Path | None = None
    agent_socket: Path | None = None  # virtio-serial port `vexfs.agent`
    hostfwd_ssh: int | None = None  # host port forwarded to guest :22
    cache_mode: str = "loose"
    console_file: Path | None = None  # QEMU writes the console here itself (background VM)
    pidfile: Path | None = None
    # Raw host files attached as virtio-blk disks (/dev/vda, /dev/vdb... once
    # the guest loads virtio_blk). Writes reach the host file when QEMU
    # flushes them, so a disk outlives the boot: the next VM sees what this
    # one wrote, which is how persistence across a reboot is tested.
    disks: list[Path] = field(default_factory=list)
    # Let a guest reboot (sysrq-b, a panic) restart the machine in this QEMU
    # process instead of ending it (-no-reboot): the power-cut rounds reuse
    # one process for many boots. Off by default: a reboot ends the VM.
    allow_reboot: bool = False

    def cmdline(self) -> str:
        args = [
            "console=ttyS0,115200",
            # panic=-1: reboot at once on panic; with -no-reboot QEMU exits.
            "panic=-1",
            "quiet",
            "printk.time=1",
            "rdinit=/init",
            "tsc=reliable",
            "no_timer_check",
            "nokaslr",
            # TCG vCPUs are host threads: on a loaded host they can be
            # descheduled for 20+ s, which the default 21 s RCU stall timeout
            # reports as a kernel stall during boot (seen at load average
            # 16). 60 s still reports real stalls.
            "rcupdate.rcu_cpu_stall_timeout=60",
            # resolved: the guest follows no host symlink (.cache/kernel may be one)
            f"vexfs_moddir={self.kernel.modules_dir.resolve()}",
            f"vexfs_cache={self.cache_mode}",
        ]
        return " ".join(args + self.cmdline_extra)

    def argv(self) -> list[str]:
        argv = [
            qemu_binary(), "-nodefaults", "-no-user-config",
            *([] if self.allow_reboot else ["-no-reboot"]),
            "-machine", "q35", "-accel", self.accel, "-cpu", CPU_MODEL,
            "-m", self.memory, "-smp", str(self.cpus),
            "-display", "none", "-vga", "none",
            "-chardev", (f"file,id=con,path={self.console_file}" if self.console_file
                         else "stdio,id=con,signal=off"),
            "-serial", "chardev:con",
            "-kernel", str(self.kernel.boot_image), "-initrd", str(self.initramfs),
            "-append", self.cmdline(),
            "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
            "-fsdev", f"local,id=vexfsjob,path={self.job_dir},security_model=none",
            "-device", "virtio-9p-pci,fsdev=vexfsjob,mount_tag=vexfsjob",
        ]
        for i, disk in enumerate(self.disks):
            argv += ["-drive", f"file={disk},format=raw,if=none,id=disk{i},cache=writeback",
                     "-device", f"virtio-blk-pci,drive=disk{i}"]
        if self.pidfile is not None:
            argv += ["-pidfile", str(self.pidfile)]
        if self.qmp_socket is not None:
            argv += ["-qmp", f"unix:{self.qmp_socket},server=on,wait=off"]
        else:
            argv += ["-monitor", "none"]
        if self.agent_socket is not None:
            argv += [
                "-device", "virtio-serial-pci,id=vser0",
                "-chardev", f"socket,id=agent,path={self.agent_socket},server=on,wait=off",
                "-device", "virtserialport,bus=vser0.0,chardev=agent,name=vexfs.agent",
            ]
        if self.hostfwd_ssh is not None:
            argv += [
                "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{self.hostfwd_ssh}-:22",
                "-device", "virtio-net-pci,netdev=net0",
            ]
        return argv


def _die_with_parent(argv: list[str]) -> list[str]:
    """`argv` run so that the kernel SIGKILLs it when its parent dies.

    QEMU runs in its own session (a Ctrl-C for the harness must not reach the
    guest before the harness has saved its logs), so nothing else ends it
    when the harness is killed: a `kill -9` of `vexfs run` or of a pytest
    worker left TCG guests burning both cores. util-linux's setpriv (in every
    Debian, util-linux is Essential) sets PR_SET_PDEATHSIG and then execs
    QEMU, which keeps it (only set-uid execs clear it); no preexec_fn, which
    is unsafe in a process with threads. The "parent" is the thread that
    started QEMU: the harness starts a VM and waits for it in the same
    thread (scenario pool threads live until the run ends).
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        log.debug("no setpriv: QEMU will outlive a killed harness")
        return argv
    return [setpriv, "--pdeathsig", "KILL", "--", *argv]


class QemuProcess:
    """A running QEMU whose serial console is read by a thread.

    Every complete console line goes to the log file (flushed at once, so
    `tail -f` follows it live), to the in-memory transcript and to each
    callback. `last_output` is the monotonic time of the last console byte,
    which hang detection uses.
    """

    def __init__(self, argv: list[str], log_paths: list[Path],
                 callbacks: list[ConsoleCallback] | None = None, echo: bool = False) -> None:
        self.argv = argv
        self.callbacks = list(callbacks or [])
        self.echo = echo
        self.lines: list[str] = []
        self.last_output = time.monotonic()
        self._lock = threading.Lock()
        self._logs = []
        for path in log_paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._logs.append(open(path, "a", encoding="utf-8", errors="backslashreplace"))
        log.debug("qemu: %s", shlex.join(argv))
        self.started = time.monotonic()
        self.proc = subprocess.Popen(_die_with_parent(argv), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self._reader = threading.Thread(target=self._read, name="qemu-console", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        pending = b""
        fd = self.proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            self.last_output = time.monotonic()
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                self._line(raw)
        if pending:
            self._line(pending)
        for fh in self._logs:
            fh.flush()

    def _line(self, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="backslashreplace").rstrip("\r")
        with self._lock:
            self.lines.append(line)
        for fh in self._logs:
            fh.write(line + "\n")
            fh.flush()
        if self.echo:
            print(line, flush=True)
        for callback in self.callbacks:
            try:
                callback(line)
            except Exception:  # an observer must never break the console reader
                log.exception("console callback failed")

    @property
    def console(self) -> str:
        with self._lock:
            return "\n".join(self.lines) + ("\n" if self.lines else "")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._reader.join(5)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        self._reader.join(5)

    def close(self) -> None:
        self.kill()
        for fh in self._logs:
            fh.close()
        self._logs = []


def _accel_cache() -> Path:
    return cache_dir() / "accel.json"


def probe_accel(kernel: GuestKernel, initramfs: Path, timeout: float = 20.0) -> str:
    """"kvm" if a KVM guest really boots to our init here, else "tcg".

    /dev/kvm existing proves nothing (on some hosts QEMU aborts on an MSR or
    the guest hangs), so we boot the real kernel with `-accel kvm` and wait
    for the init's first line. The answer is cached per host kernel and QEMU
    version; VEXFS_ACCEL=tcg|kvm overrides it.
    """
    forced = os.environ.get("VEXFS_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    key = f"{platform.release()} {qemu_version()}"
    cache = _accel_cache()
    try:
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return cached["accel"]
    except (OSError, ValueError, KeyError):
        pass
    import tempfile

    accel = "tcg"
    with tempfile.TemporaryDirectory(prefix="vexfs-probe-") as tmp:
        job = Path(tmp)
        (job / "job.sh").write_text("exit 0\n")
        config = VMConfig(kernel=kernel, initramfs=initramfs, job_dir=job, accel="kvm",
                          memory="512M", cpus=1)
        seen = threading.Event()

        def watch(line: str) -> None:
            if "vexfs-init: root ready" in line:
                seen.set()

        proc = QemuProcess(config.argv(), [job / "console.log"], [watch])
        ok = seen.wait(timeout)
        proc.close()
        if ok:
            accel = "kvm"
    log.info("accelerator probe: %s", accel)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "accel": accel}))
    return accel
