"""SSH into the persistent VM: keys, the guest's sshd setup, ~/.ssh/config.

The guest runs the host's own /usr/sbin/sshd (through the shared root) with
a config and keys the harness generates once under `.cache/ssh/`:
  id_ed25519            client key, authorized for root in the guest
  ssh_host_ed25519_key  the guest's host key (stable across boots, so a
                        known_hosts entry can pin it instead of disabling
                        host key checks)
  known_hosts           "[localhost]:PORT ssh-ed25519 ..." for that key
A marked block at the top of ~/.ssh/config applies these to
`ssh -p PORT root@localhost` (and scp -P PORT), so the spec's commands work
as written, without a password prompt.
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from vexfs.vm.paths import cache_dir

log = logging.getLogger(__name__)

BEGIN = "# >>> vexfs test VM (managed by `vexfs vm start`; do not edit) >>>"
END = "# <<< vexfs test VM <<<"


def ssh_dir() -> Path:
    path = cache_dir() / "ssh"
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _keygen(path: Path, comment: str) -> None:
    if path.exists():
        return
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True)


def ensure_keys(port: int) -> dict[str, Path]:
    d = ssh_dir()
    client = d / "id_ed25519"
    hostkey = d / "ssh_host_ed25519_key"
    _keygen(client, "vexfs-harness")
    _keygen(hostkey, "vexfs-vm-host")
    pub = (hostkey.with_suffix(".pub")).read_text().split()
    known = d / "known_hosts"
    lines = known.read_text().splitlines() if known.exists() else []
    for host in (f"[localhost]:{port}", f"[127.0.0.1]:{port}"):
        entry = f"{host} {pub[0]} {pub[1]}"
        # keep other ports' entries (a second VM), replace this port's
        lines = [line for line in lines if line.split(" ", 1)[0] != host] + [entry]
    known.write_text("\n".join(lines) + "\n")
    return {"client": client, "hostkey": hostkey, "known_hosts": known}


def sshd_config(hostkey_in_guest: str) -> str:
    return "\n".join([
        "Port 22",
        f"HostKey {hostkey_in_guest}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "AuthorizedKeysFile /root/.ssh/authorized_keys",
        "Subsystem sftp /usr/lib/openssh/sftp-server",
        "PidFile /run/sshd.pid",
        "UseDNS no",
        "PrintMotd no",
        "AcceptEnv LANG LC_*",
        # OpenSSH 9's default post-quantum key exchange (sntrup761) costs
        # seconds of emulated CPU per login under TCG; curve25519 is ~6x
        # cheaper (measured: 6.6 s -> 1.1 s of ssh client CPU in the guest).
        "KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org",
        "GSSAPIAuthentication no",
        "",
    ])


def guest_setup_script(job_dir_in_guest: str = "/run/vexfs") -> str:
    """Shell run in the guest before the agent: network + sshd."""
    j = job_dir_in_guest
    return f"""\
modprobe virtio_net 2>/dev/null
for i in $(seq 50); do [ -e /sys/class/net/eth0 ] && break; sleep 0.1; done
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
mkdir -p /run/sshd /run/ssh /root/.ssh && chmod 700 /root/.ssh /run/ssh
cp {j}/ssh_host_ed25519_key /run/ssh/ && chmod 600 /run/ssh/ssh_host_ed25519_key
cp {j}/authorized_keys /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys
/usr/sbin/sshd -f {j}/sshd_config -E /run/sshd.log && echo "vexfs-init: sshd started" > /dev/console
"""


def stage_guest_files(job_dir: Path, keys: dict[str, Path]) -> None:
    (job_dir / "ssh_host_ed25519_key").write_bytes(keys["hostkey"].read_bytes())
    (job_dir / "authorized_keys").write_text(keys["client"].with_suffix(".pub").read_text())
    (job_dir / "sshd_config").write_text(sshd_config("/run/ssh/ssh_host_ed25519_key"))


def config_block(port: int, keys: dict[str, Path]) -> str:
    return "\n".join([
        BEGIN,
        f'Match host localhost,127.0.0.1 exec "test %p = {port}"',
        f"    IdentityFile {keys['client']}",
        "    IdentitiesOnly yes",
        f"    UserKnownHostsFile {keys['known_hosts']}",
        "    StrictHostKeyChecking yes",
        "    LogLevel ERROR",
        *(f"    {k} {v}" for k, v in multiplex_options(port).items()),
        "Host *",
        END,
        "",
    ])


def install_config(port: int, keys: dict[str, Path], config: Path | None = None) -> Path:
    """Put our block at the top of ~/.ssh/config (replacing an older one).

    At the top because ssh takes the first value it finds for most options.
    """
    config = config or Path.home() / ".ssh" / "config"
    config.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(config.parent, 0o700)
    text = config.read_text() if config.exists() else ""
    text = remove_block(text)
    config.write_text(config_block(port, keys) + text)
    os.chmod(config, 0o600)
    return config


def remove_block(text: str) -> str:
    lines = text.splitlines(keepends=True)
    out, skipping = [], False
    for line in lines:
        if line.rstrip("\n") == BEGIN:
            skipping = True
            continue
        if skipping:
            if line.rstrip("\n") == END:
                skipping = False
            continue
        out.append(line)
    return "".join(out)


def multiplex_options(port: int) -> dict[str, str]:
    """Connection sharing: a new login to the TCG guest costs its sshd a
    re-exec plus a key exchange in emulated CPU (7-10 s idle, 20-60 s under
    load measured); later ssh/scp commands reuse the first connection for
    10 min and cost a session only. The master exits when the VM stops."""
    return {"ControlMaster": "auto", "ControlPath": str(ssh_dir() / f"cm-{port}"),
            "ControlPersist": "600"}


def ssh_argv(port: int, keys: dict[str, Path]) -> list[str]:
    """An ssh command line that works without the ~/.ssh/config block."""
    mux = [arg for k, v in multiplex_options(port).items() for arg in ("-o", f"{k}={v}")]
    return ["ssh", "-p", str(port), "-i", str(keys["client"]), "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={keys['known_hosts']}", "-o", "StrictHostKeyChecking=yes",
            "-o", "LogLevel=ERROR", *mux, "root@localhost"]


@dataclass
class SshResult:
    cmd: str
    rc: int
    stdout: str
    stderr: str


def ssh_run(argv: list[str], cmd: str, timeout: float = 600) -> SshResult:
    """Run `cmd` in the guest over ssh (`argv` from ssh_argv())."""
    proc = subprocess.run(argv + [cmd], capture_output=True, text=True, timeout=timeout)
    return SshResult(cmd, proc.returncode, proc.stdout, proc.stderr)


def scp_argv(ssh: list[str]) -> list[str]:
    """The scp command line matching an ssh_argv() (same key, known_hosts, port)."""
    argv = ["scp"]
    it = iter(ssh[1:-1])
    for arg in it:
        argv += ["-P", next(it)] if arg == "-p" else [arg, next(it)] if arg in ("-i", "-o") \
            else [arg]
    return argv
