"""The spec's persistent-VM workflow: start, ssh, scp, live log, stop.

Runs a second, independent VM (own state dir, port 2232) so it does not
touch a VM the user may have running on 2222, and an ssh config file of its
own holding exactly the block `vexfs vm start` puts in ~/.ssh/config.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from vexfs.vm.paths import REPO_ROOT

pytestmark = pytest.mark.vm

VEXFS = str(REPO_ROOT / ".venv" / "bin" / "vexfs")
PORT = 2232


@pytest.mark.timeout(1500)
def test_start_ssh_scp_logs_stop(tmp_path: Path) -> None:
    from vexfs.vm import ssh

    state = tmp_path / "vm"
    env = dict(os.environ, VEXFS_VM_STATE_DIR=str(state))
    start = subprocess.run([VEXFS, "vm", "start", "--port", str(PORT), "--no-ssh-config"],
                           capture_output=True, text=True, env=env, timeout=600)
    try:
        assert start.returncode == 0, start.stdout + start.stderr
        assert f"ssh -p {PORT} root@localhost" in start.stdout
        status = subprocess.run([VEXFS, "vm", "status"], capture_output=True, text=True, env=env)
        assert status.returncode == 0 and "SSH-2.0-OpenSSH" in status.stdout, status.stdout

        config = tmp_path / "ssh_config"
        ssh.install_config(PORT, ssh.ensure_keys(PORT), config)
        opts = ["-F", str(config), "-o", "ConnectTimeout=120", "-o", "BatchMode=yes"]
        r = subprocess.run(["ssh", *opts, "-p", str(PORT), "root@localhost", "uname -r; id -u"],
                           capture_output=True, text=True, timeout=400)
        assert r.returncode == 0, r.stderr
        from vexfs.vm.kernel import ensure_kernel

        assert r.stdout.split() == [ensure_kernel(headers=False).version, "0"]

        payload = tmp_path / "payload.ko"
        payload.write_bytes(os.urandom(300_000))
        r = subprocess.run(["scp", *opts, "-P", str(PORT), str(payload), "root@localhost:/tmp/"],
                           capture_output=True, text=True, timeout=400)
        assert r.returncode == 0, r.stderr
        r = subprocess.run(["ssh", *opts, "-p", str(PORT), "root@localhost",
                            "sha256sum /tmp/payload.ko; echo vexfs-live-log-marker > /dev/kmsg"],
                           capture_output=True, text=True, timeout=400)
        import hashlib
        assert r.stdout.split()[0] == hashlib.sha256(payload.read_bytes()).hexdigest()

        # dmesg reaches the live console log
        import json
        log_path = Path(json.loads((state / "state.json").read_text())["log_path"])
        text = log_path.read_text()
        assert "vexfs-init: sshd started" in text
        assert "vexfs-live-log-marker" in text
        legacy = REPO_ROOT / "tests" / "legacy" / "vm_management" / "vm" / "logs"
        assert (legacy / log_path.name).exists()
    finally:
        stop = subprocess.run([VEXFS, "vm", "stop"], capture_output=True, text=True, env=env,
                              timeout=60)
    assert "VM stopped" in stop.stdout
    status = subprocess.run([VEXFS, "vm", "status"], capture_output=True, text=True, env=env)
    assert status.returncode == 1 and "not running" in status.stdout
