"""The persistent VM behind `vexfs vm start|stop|status|shell|logs`.

Same guest as the harness (Debian kernel, host root over 9p), but it runs
in the background after the CLI exits: QEMU writes the console straight to
logs/test-kernel-vm_<timestamp>.log (printk at loglevel 7 included, so
dmesg is live in that file), forwards host port 2222 to the guest's sshd,
and its state (pid, ports, sockets, log) is in .cache/vm/state.json.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from vexfs.vm import initramfs, ssh
from vexfs.vm.kernel import ensure_kernel
from vexfs.vm.paths import REPO_ROOT, cache_dir, logs_dir
from vexfs.vm.qemu import VMConfig, probe_accel
from vexfs.vm.session import AGENT_PATH, SESSION_JOB

log = logging.getLogger(__name__)

DEFAULT_PORT = 2222
LEGACY_DIR = REPO_ROOT / "tests" / "legacy" / "vm_management" / "vm"
# The commands the checkout installs in its venv, put on the guest's PATH.
VENV_TOOLS = ("mkfs.vexfs", "fsck.vexfs", "vexfs")
# Modules a distribution has loaded (or auto-loads) by the time a user logs
# in: jbd2 (an ext4 root pulls it in; vexfs.ko may depend on it, and the
# spec loads vexfs with a plain `insmod`) and loop (/dev/loop0..7 exist).
DISTRO_MODULES = ("jbd2", "loop")


class VMStateError(RuntimeError):
    pass


@dataclass
class VMState:
    pid: int
    ssh_port: int
    log_path: str
    qmp_socket: str
    job_dir: str
    started_at: float
    accel: str
    memory: str
    cpus: int

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        # The pid must still be our QEMU, not a recycled number.
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return False
        return b"qemu-system" in cmdline and self.qmp_socket.encode() in cmdline


def interactive_setup_script(venv_bin: Path = REPO_ROOT / ".venv" / "bin") -> str:
    """Shell run in the guest at boot (after sshd's setup) that makes the
    interactive VM behave like a distribution for the spec's blocks.

    * DISTRO_MODULES are loaded as a distro's boot would have loaded them.
    * The venv's tools go into /usr/local/sbin, which is on every root PATH
      (sshd's default for root, /etc/profile's for login shells, mkfs(8)
      and fsck(8) search PATH for mkfs.<type>/fsck.<type>): a tmpfs-backed
      overlay over the host's read-only /usr/local/sbin, holding symlinks.
    * TERM for ssh sessions without a terminal: `ssh host "watch ..."` (the
      spec's monitoring commands, no -t) gets no TERM from sshd and watch
      refuses to start; the escape sequences it prints reach the user's
      terminal through ssh, so a plain TERM=xterm is what makes it work.
      Only set when sshd exported none (bash itself sets an unexported
      TERM=dumb; root's bash reads ~/.bashrc for ssh commands).
    """
    mods = " ".join(DISTRO_MODULES)
    links = "\n".join(
        f"ln -sf {shlex.quote(str(venv_bin / tool))} /usr/local/sbin/{tool}" for tool in VENV_TOOLS)
    return f"""\
for m in {mods}; do modprobe "$m" || echo "vexfs-init: modprobe $m failed" > /dev/console; done
mkdir -p /run/vexfs-local/u /run/vexfs-local/w /usr/local/sbin
mount -t overlay \\
  -o lowerdir=/usr/local/sbin,upperdir=/run/vexfs-local/u,workdir=/run/vexfs-local/w \\
  vexfs_local /usr/local/sbin || echo "vexfs-init: overlay on /usr/local/sbin failed" > /dev/console
{links}
{{ echo 'printenv TERM >/dev/null || export TERM=xterm  # vexfs VM: ssh "watch ..." without -t'
  cat /root/.bashrc 2>/dev/null; }} > /run/vexfs-bashrc && cp /run/vexfs-bashrc /root/.bashrc
echo "vexfs-init: interactive VM ready" > /dev/console
"""


def state_dir() -> Path:
    # VEXFS_VM_STATE_DIR: a second, independent persistent VM (tests use it).
    path = Path(os.environ.get("VEXFS_VM_STATE_DIR", cache_dir() / "vm"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def state_file() -> Path:
    return state_dir() / "state.json"


def load_state() -> VMState | None:
    try:
        return VMState(**json.loads(state_file().read_text()))
    except (OSError, ValueError, TypeError):
        return None


def link_legacy_logs() -> None:
    """tests/legacy/vm_management/vm/logs -> the repo's logs/ (the spec's
    `tail -f logs/test-kernel-vm_*.log` from that folder)."""
    link = LEGACY_DIR / "logs"
    target = os.path.relpath(logs_dir(), LEGACY_DIR)
    if link.is_symlink() and os.readlink(link) == target:
        return
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        return  # a real directory someone made; leave it alone
    LEGACY_DIR.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=True)


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ssh_banner(port: int, timeout: float = 2.0) -> str:
    """The SSH server's banner line on localhost:port, or "" if none."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(256).decode(errors="replace").strip()
    except OSError:
        return ""


def start(port: int = DEFAULT_PORT, memory: str = "2G", cpus: int = 2,
          wait: float = 180.0, configure_ssh: bool = True,
          kernel_spec: str | None = None) -> VMState:
    current = load_state()
    if current is not None and current.alive():
        raise VMStateError(f"a VM is already running (pid {current.pid}, ssh port "
                           f"{current.ssh_port}); `vexfs vm stop` first")
    if not port_free(port):
        raise VMStateError(f"port {port} is in use on 127.0.0.1")
    # kernel_spec: vexfs vm start --kernel 6.12 (headers too, so the guest
    # can build modules against them through /lib/modules/<ver>/build)
    kernel = ensure_kernel(kernel_spec, headers=kernel_spec is not None)
    initrd = initramfs.build(kernel)
    accel = probe_accel(kernel, initrd)
    keys = ssh.ensure_keys(port)
    job = state_dir() / "job"
    shutil.rmtree(job, ignore_errors=True)
    job.mkdir()
    ssh.stage_guest_files(job, keys)
    (job / "job.sh").write_text(SESSION_JOB.format(
        python="/usr/bin/python3", agent=str(AGENT_PATH),
        extra=interactive_setup_script() + ssh.guest_setup_script()))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_path = logs_dir() / f"test-kernel-vm_{stamp}.log"
    log_path.touch()
    link_legacy_logs()
    qmp = state_dir() / "qmp.sock"
    agent = state_dir() / "agent.sock"
    if len(str(qmp)) > 100:  # AF_UNIX path limit
        raise VMStateError(f"state directory path too long for a unix socket: {qmp}")
    pidfile = state_dir() / "qemu.pid"
    for path in (qmp, agent, pidfile):
        path.unlink(missing_ok=True)
    config = VMConfig(kernel=kernel, initramfs=initrd, job_dir=job, accel=accel, memory=memory,
                      cpus=cpus, qmp_socket=qmp, agent_socket=agent, hostfwd_ssh=port,
                      console_file=log_path, pidfile=pidfile)
    # Detached: its own session, no terminal, outlives this process.
    proc = subprocess.Popen(config.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(state_dir() / "qemu.stderr", "w"),
                            start_new_session=True, close_fds=True)
    state = VMState(pid=proc.pid, ssh_port=port, log_path=str(log_path), qmp_socket=str(qmp),
                    job_dir=str(job), started_at=time.time(), accel=accel, memory=memory, cpus=cpus)
    state_file().write_text(json.dumps(asdict(state), indent=2))
    if configure_ssh:
        ssh.install_config(port, keys)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = (state_dir() / "qemu.stderr").read_text()[-2000:]
            raise VMStateError(f"QEMU exited ({proc.returncode}) while booting: {err}\n"
                               f"console: {log_path}")
        if ssh_banner(port, 1.0).startswith("SSH-"):
            return state
        time.sleep(0.5)
    raise VMStateError(f"sshd in the guest did not answer on port {port} within {wait:.0f} s; "
                       f"see {log_path}")


def stop(timeout: float = 10.0) -> bool:
    """Stop the VM (QMP quit, then SIGKILL). False if none was running."""
    state = load_state()
    if state is None or not state.alive():
        state_file().unlink(missing_ok=True)
        return False
    try:
        from qemu.qmp.legacy import QEMUMonitorProtocol

        mon = QEMUMonitorProtocol(state.qmp_socket)
        mon.connect()
        try:
            mon.cmd("quit")
        finally:
            try:
                mon.close()
            except Exception:
                pass
    except Exception as exc:
        log.debug("QMP quit failed: %s", exc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and state.alive():
        time.sleep(0.1)
    if state.alive():
        os.kill(state.pid, signal.SIGKILL)
    state_file().unlink(missing_ok=True)
    return True


def status() -> dict:
    state = load_state()
    if state is None or not state.alive():
        return {"running": False}
    info = asdict(state)
    info["running"] = True
    info["uptime_s"] = round(time.time() - state.started_at, 1)
    info["ssh"] = ssh_banner(state.ssh_port) or "not answering"
    try:
        from qemu.qmp.legacy import QEMUMonitorProtocol

        mon = QEMUMonitorProtocol(state.qmp_socket)
        mon.connect()
        try:
            info["qemu_status"] = mon.cmd("query-status").get("status", "?")
        finally:
            mon.close()
    except Exception as exc:
        info["qemu_status"] = f"unknown ({exc})"
    return info
