"""A long-lived guest: boot once, run many commands, detect crashes/hangs.

    with GuestVM(name="S1", log_dir=run_dir / "console") as vm:
        vm.put_file(Path("kernel/build/vexfs.ko"), "/tmp/vexfs.ko")
        r = vm.run("insmod /tmp/vexfs.ko")   # CommandResult(rc, stdout, stderr, duration_s)

Commands go to the guest agent (vexfs/vm/agent.py) over a virtio-serial
port whose host side is a unix socket; the serial console is a separate
channel, streamed to log files and to callbacks (observer, crash detector)
as it arrives. While a command runs, the session watches three things:
 - a crash report completed by the detector -> GuestCrashed
 - QEMU exited (panic=-1 + -no-reboot)      -> GuestCrashed / GuestDied
 - no reply, no agent heartbeat (sent every 2 s while guest userspace
   runs) and a silent console for `hang_timeout` s (30, the spec's "wait
   30 seconds") -> the session asks the agent for a sysrq dump of blocked
   tasks and CPUs, then raises GuestHung. A command stuck in the kernel
   while the rest of the guest lives is reported by the kernel itself:
   the session sets hung_task_timeout_secs=10, and the soft-lockup and RCU
   stall detectors speak after ~20 s; the crash detector turns those
   reports into GuestCrashed.
After any of these the VM is unusable by design: the caller kills it and
boots a fresh one for the next scenario.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import shlex
import shutil
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from vexfs.report.model import Crash
from vexfs.vm import initramfs
from vexfs.vm.crashwatch import CrashWatch
from vexfs.vm.kernel import GuestKernel, ensure_kernel
from vexfs.vm.paths import cache_dir, logs_dir
from vexfs.vm.qemu import QemuProcess, VMConfig, probe_accel

log = logging.getLogger(__name__)

HANG_TIMEOUT_S = 30.0
AGENT_PATH = Path(__file__).resolve().parent / "agent.py"

# Job script for a session boot: tune the kernel's own hang reporting so it
# speaks before our 30 s limit, then hand the guest to the agent.
SESSION_JOB = """\
echo 10 > /proc/sys/kernel/hung_task_timeout_secs 2>/dev/null
echo 1 > /proc/sys/kernel/sysrq
{extra}
exec {python} -I {agent}
"""


class VMError(RuntimeError):
    """The guest could not do what was asked."""


class GuestCrashed(VMError):
    def __init__(self, crash: Crash, message: str = "") -> None:
        super().__init__(message or f"kernel crash: {crash.title}")
        self.crash = crash


class GuestHung(GuestCrashed):
    pass


class GuestDied(VMError):
    """QEMU went away with no crash report on the console."""


class CommandFailed(VMError):
    def __init__(self, result: "CommandResult") -> None:
        super().__init__(f"`{result.cmd}` exited {result.rc}: {result.stderr.strip()[-500:]}")
        self.result = result


@dataclass
class CommandResult:
    cmd: str
    rc: int
    stdout: str
    stderr: str
    duration_s: float  # measured in the guest around the process
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.rc == 0


@dataclass
class BootInfo:
    accel: str
    boot_s: float  # QEMU start to agent hello
    guest_uptime_s: float  # guest's uptime when the agent said hello
    console_logs: list[Path] = field(default_factory=list)


class GuestVM:
    """One QEMU guest with an agent; see the module docstring."""

    def __init__(self, *, name: str = "vm", log_dir: Path | None = None,
                 kernel: GuestKernel | None = None, memory: str = "2G", cpus: int = 2,
                 hang_timeout: float = HANG_TIMEOUT_S,
                 console_callbacks: list[Callable[[str], None]] | None = None,
                 on_crash: Callable[[Crash], None] | None = None,
                 echo: bool = False, extra_job: str = "",
                 cmdline_extra: list[str] | None = None,
                 hostfwd_ssh: int | None = None, spec_log: bool = True) -> None:
        self.name = name
        self.kernel = kernel
        self.memory, self.cpus = memory, cpus
        self.hang_timeout = hang_timeout
        self.console_callbacks = list(console_callbacks or [])
        self.echo = echo
        self.extra_job = extra_job
        self.cmdline_extra = list(cmdline_extra or [])
        self.hostfwd_ssh = hostfwd_ssh
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.log_paths: list[Path] = []
        if log_dir is not None:
            self.log_paths.append(Path(log_dir) / f"{name}-{stamp}.log")
        if spec_log:
            # The spec's `tail -f logs/test-kernel-vm_*.log` follows every boot.
            # Parallel test workers may boot VMs of one name in one second:
            # the worker id keeps their logs apart.
            worker = os.environ.get("PYTEST_XDIST_WORKER", "")
            self.log_paths.append(logs_dir() / f"test-kernel-vm_{stamp}_{name}"
                                  f"{'-' + worker if worker else ''}.log")
        self.watch = CrashWatch(on_crash)
        self.proc: QemuProcess | None = None
        self.boot: BootInfo | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._sock: socket.socket | None = None
        self._replies: dict[int, queue.Queue] = {}
        self._replies_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._hello = threading.Event()
        self._hello_msg: dict = {}
        self._reader: threading.Thread | None = None
        self.dead = False
        self.last_heartbeat = 0.0

    # -- lifecycle -----------------------------------------------------
    def start(self, timeout: float = 180.0) -> BootInfo:
        kernel = self.kernel or ensure_kernel(headers=False)
        self.kernel = kernel
        initrd = initramfs.build(kernel)
        accel = probe_accel(kernel, initrd)
        jobs = cache_dir() / "jobs"
        jobs.mkdir(parents=True, exist_ok=True)
        self._tmp = tempfile.TemporaryDirectory(prefix=f"vm-{self.name}-", dir=jobs)
        job = Path(self._tmp.name)
        # Unix socket paths are limited to 107 bytes: keep them in /tmp.
        self._sockdir = tempfile.mkdtemp(prefix="vexfs-vm-")
        agent_sock = Path(self._sockdir) / "agent.sock"
        self.qmp_path = Path(self._sockdir) / "qmp.sock"
        python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
        (job / "job.sh").write_text(SESSION_JOB.format(
            python=python, agent=shlex.quote(str(AGENT_PATH)), extra=self.extra_job))
        config = VMConfig(kernel=kernel, initramfs=initrd, job_dir=job, accel=accel,
                          memory=self.memory, cpus=self.cpus, qmp_socket=self.qmp_path,
                          agent_socket=agent_sock, cmdline_extra=self.cmdline_extra,
                          hostfwd_ssh=self.hostfwd_ssh)
        self.config = config
        callbacks = [self.watch.feed] + self.console_callbacks
        started = time.monotonic()
        self.proc = QemuProcess(config.argv(), self.log_paths, callbacks, echo=self.echo)
        self._connect(agent_sock, started + 10)
        while not self._hello.wait(0.2):
            self._check_alive("booting")
            if self.watch.crashed:
                raise GuestCrashed(self.watch.crashes[0], "kernel crashed during boot")
            if time.monotonic() - started > timeout:
                self.kill()
                raise VMError(f"guest agent did not start within {timeout:.0f} s; "
                              f"see {self.log_paths[0] if self.log_paths else 'the console'}")
        self.boot = BootInfo(accel=accel, boot_s=time.monotonic() - started,
                             guest_uptime_s=float(self._hello_msg.get("uptime_s", 0.0)),
                             console_logs=list(self.log_paths))
        log.info("%s: booted in %.1f s (%s)", self.name, self.boot.boot_s, accel)
        return self.boot

    def _connect(self, path: Path, deadline: float) -> None:
        while True:
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                self._check_alive("starting")
                if time.monotonic() > deadline:
                    self.kill()
                    raise VMError(f"QEMU did not open the agent socket {path}")
                time.sleep(0.05)
        self._sock = sock
        self._reader = threading.Thread(target=self._read_agent, daemon=True,
                                        name=f"agent-{self.name}")
        self._reader.start()

    def _read_agent(self) -> None:
        # A local reference: kill() sets self._sock to None from another
        # thread (an AttributeError was seen here at VM shutdown); a closed
        # socket object raises OSError, which ends the loop.
        sock = self._sock
        assert sock is not None
        pending = b""
        while True:
            try:
                chunk = sock.recv(1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                try:
                    msg = json.loads(line)
                except ValueError:
                    log.warning("%s: bad agent line %r", self.name, line[:200])
                    continue
                if msg.get("heartbeat"):
                    self.last_heartbeat = time.monotonic()
                    continue
                if msg.get("hello"):
                    self._hello_msg = msg
                    self._hello.set()
                    continue
                with self._replies_lock:
                    q = self._replies.get(msg.get("id"))
                if q is not None:
                    q.put(msg)

    def _check_alive(self, what: str) -> None:
        if self.proc is not None and not self.proc.alive():
            self.proc.wait(5)
            self.watch.flush()
            self.dead = True
            if self.watch.crashed:
                raise GuestCrashed(self.watch.crashes[0])
            tail = "\n".join(self.proc.lines[-20:])
            raise GuestDied(f"QEMU exited ({self.proc.proc.returncode}) while {what}; "
                            f"console tail:\n{tail}")

    def kill(self) -> None:
        """Stop QEMU at once (SIGKILL to its process group); logs are kept."""
        self.dead = True
        if self._sock is not None:
            try:
                # shutdown first: it wakes the reader thread's recv(), which
                # close() alone would leave blocked until QEMU goes away.
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
        if self.proc is not None:
            self.proc.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        if getattr(self, "_sockdir", None):
            for name in ("agent.sock", "qmp.sock"):
                try:
                    os.unlink(Path(self._sockdir) / name)
                except OSError:
                    pass
            try:
                os.rmdir(self._sockdir)
            except OSError:
                pass
            self._sockdir = None

    def shutdown(self) -> None:
        """Stop the guest through QMP `quit` (its state is throwaway: tmpfs
        and overlays), then reap QEMU. The guest has no ACPI daemon, so
        system_powerdown would only wait."""
        if self.proc is not None and self.proc.alive():
            try:
                self.qmp("quit")
                self.proc.wait(10)
            except Exception as exc:
                log.debug("qmp quit failed: %s", exc)
        self.kill()

    def status(self) -> str:
        """QEMU's run state via QMP (`running`, `paused`, `shutdown`...)."""
        return str(self.qmp("query-status").get("status", "?"))

    def qmp(self, command: str, **args):
        """One QMP command (status, reset, quit...) on a fresh connection."""
        from qemu.qmp.legacy import QEMUMonitorProtocol

        mon = QEMUMonitorProtocol(str(self.qmp_path))
        try:
            mon.connect()
            return mon.cmd(command, **args)
        finally:
            mon.close()

    def __enter__(self) -> "GuestVM":
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.kill()

    # -- requests ------------------------------------------------------
    def request(self, msg: dict, hang_timeout: float | None = None,
                what: str = "") -> dict:
        """Send one request; wait for its reply while watching for trouble."""
        if self.dead or self._sock is None:
            raise VMError(f"{self.name}: the VM is not running")
        if self.watch.crashed:
            raise GuestCrashed(self.watch.crashes[0])
        rid = next(self._ids)
        q: queue.Queue = queue.Queue()
        with self._replies_lock:
            self._replies[rid] = q
        msg = dict(msg, id=rid)
        limit = self.hang_timeout if hang_timeout is None else hang_timeout
        started = time.monotonic()
        try:
            self._sock.sendall((json.dumps(msg) + "\n").encode())
            while True:
                try:
                    reply = q.get(timeout=0.1)
                    break
                except queue.Empty:
                    pass
                self.watch.poll()
                if self.watch.crashed:
                    self.dead = True
                    raise GuestCrashed(self.watch.crashes[0])
                self._check_alive(f"running {what or msg.get('op')}")
                quiet_for = time.monotonic() - max(started, self.proc.last_output,
                                                   self.last_heartbeat)
                if quiet_for > limit:
                    raise self._hang(what or str(msg.get("op")), limit)
        finally:
            with self._replies_lock:
                self._replies.pop(rid, None)
        if "error" in reply:
            raise VMError(f"agent: {reply['error']}")
        return reply

    def _hang(self, what: str, limit: float) -> GuestHung:
        """Build the hang report: ask the kernel for blocked tasks and CPU
        backtraces (sysrq w, l) through a second agent request, give the
        console a moment, and keep what it printed."""
        self.dead = True
        mark = len(self.proc.lines)
        try:
            rid = next(self._ids)
            self._sock.sendall((json.dumps({
                "id": rid, "op": "exec",
                "cmd": "echo w > /proc/sysrq-trigger; echo l > /proc/sysrq-trigger"}) + "\n").encode())
        except OSError:
            pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not self.watch.crashed:
            time.sleep(0.2)
        if self.watch.crashed:  # the kernel's own report arrived meanwhile
            crash = self.watch.crashes[0]
            return GuestHung(crash, f"hang while running {what}: {crash.title}")
        dump = "\n".join(self.proc.lines[mark:])
        tail = "\n".join(self.proc.lines[max(0, mark - 40):mark])
        what = "; ".join(part.strip() for part in what.strip().splitlines() if part.strip())
        short = what if len(what) <= 80 else what[:77] + "..."
        title = f"hang: no progress for {limit:.0f} s while running {short}"
        try:
            from vexfs.crash.detect import blocked_tasks

            blocked = blocked_tasks(dump)
        except Exception:  # ImportError or a parser bug: the raw dump is still kept
            blocked = []
        if blocked:
            title += "; blocked in " + ", ".join(
                f"{b.func} ({b.comm} pid {b.pid})" for b in blocked[:3])
        trace = (tail + "\n--- sysrq w/l after the hang ---\n" + dump).strip()
        if not dump.strip():
            trace += "\n(no answer to sysrq: the kernel is not scheduling or the console is dead)"
        crash = Crash(kind="hang", title=title, trace=trace,
                      log_path=str(self.log_paths[0]) if self.log_paths else "")
        self.watch.record(crash)
        return GuestHung(crash, title)

    def run(self, cmd: str | list[str], *, timeout: float | None = None, check: bool = False,
            hang_timeout: float | None = None, stdin: str | None = None,
            env: dict[str, str] | None = None, cwd: str | None = None) -> CommandResult:
        """Run a command in the guest as root (a string goes through /bin/sh).

        `timeout` kills the command in the guest (rc 124, timed_out=True);
        `hang_timeout` overrides how long a silent, unanswered command may
        take before the VM is declared hung (give long quiet jobs more).
        """
        msg: dict = {"op": "exec"}
        if isinstance(cmd, str):
            msg["cmd"] = cmd
            text = cmd
        else:
            msg["argv"] = [str(a) for a in cmd]
            text = shlex.join(msg["argv"])
        if timeout is not None:
            msg["timeout"] = timeout
        if stdin is not None:
            msg["stdin"] = stdin
        if env:
            msg["env"] = env
        if cwd:
            msg["cwd"] = cwd
        if timeout is not None and hang_timeout is None:
            hang_timeout = max(self.hang_timeout, timeout + 10)
        reply = self.request(msg, hang_timeout, what=text)
        result = CommandResult(cmd=text, rc=int(reply["rc"]), stdout=reply["stdout"],
                               stderr=reply["stderr"], duration_s=float(reply["duration_s"]),
                               timed_out=bool(reply.get("timed_out")))
        log.debug("%s: `%s` -> %d in %.3f s", self.name, text, result.rc, result.duration_s)
        if check and result.rc != 0:
            raise CommandFailed(result)
        return result

    # Files travel through the per-boot job share (9p, cache=none, mounted
    # at /run/vexfs): a host-side copy plus a guest `cp`, much faster than
    # base64 over the serial port for a multi-MB module under TCG.
    def _xfer(self) -> tuple[Path, str]:
        name = f"xfer-{next(self._ids)}"
        host_dir = Path(self.config.job_dir) / "xfer"
        host_dir.mkdir(exist_ok=True)
        return host_dir / name, f"/run/vexfs/xfer/{name}"

    def put_file(self, src: Path | bytes, dest: str, mode: int = 0o644) -> None:
        host, guest = self._xfer()
        if isinstance(src, bytes):
            host.write_bytes(src)
        else:
            shutil.copyfile(src, host)
        try:
            r = self.run(["sh", "-c", 'cp "$1" "$2" && chmod "$3" "$2"', "put", guest, dest,
                          f"{mode:o}"])
        finally:
            host.unlink(missing_ok=True)
        if r.rc != 0:
            raise VMError(f"copy to {dest} failed: {r.stderr.strip()}")

    def read_file(self, path: str) -> bytes:
        host, guest = self._xfer()
        r = self.run(["cp", path, guest])
        if r.rc != 0:
            raise VMError(f"reading {path} failed: {r.stderr.strip()}")
        try:
            return host.read_bytes()
        finally:
            host.unlink(missing_ok=True)

    def ping(self) -> float:
        return float(self.request({"op": "ping"})["uptime_s"])

    @property
    def console(self) -> str:
        return self.proc.console if self.proc is not None else ""

    @property
    def console_lines(self) -> list[str]:
        return list(self.proc.lines) if self.proc is not None else []
