#!/usr/bin/env python3
"""Install what VexFS needs on a Debian 12 machine, idempotently.

Run by `make setup` (and so by `make run` and `make test`). Standard library
only: it runs before the virtualenv exists. It installs missing Debian
packages (apt-get update only when something is missing), creates `.venv`,
and installs the package with its test extras when pyproject.toml changed
since the last install. The guest kernel and its headers are fetched by
`vexfs` itself (vexfs/vm/kernel.py), which knows the version to use.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"
STAMP = VENV / ".vexfs-installed"
APT_LOG = REPO / "logs" / "bootstrap.log"  # apt/dpkg/pip output: a few lines on screen, all here

# Debian packages and why each is needed.
APT_PACKAGES = {
    "qemu-system-x86": "the test VM",
    "busybox-static": "the guest's initramfs",
    "cpio": "packing the initramfs",
    "kmod": "depmod/modinfo for the guest kernel's modules",
    "udev": "device nodes for the guest's loop devices",
    "make": "building the kernel module",
    "gcc": "building the kernel module and the ABI check programs",
    "sparse": "static checks of the kernel module (make -C kernel sparse)",
    "util-linux": "losetup, mount in the guest",
    "e2fsprogs": "ext4 baseline in the guest",
    "attr": "getfattr/setfattr on vexfs in the guest (tests/vm/test_posix.py)",
    "acl": "getfacl/setfacl on vexfs in the guest (tests/vm/test_posix.py)",
    "nfs-kernel-server": "rpc.nfsd, rpc.mountd, exportfs: the guest exports vexfs (test_nfs.py)",
    "nfs-common": "mount.nfs: the guest's NFS client mounts the export (tests/vm/test_nfs.py)",
    "rpcbind": "the portmapper NFSv3 needs in the guest (tests/vm/test_nfs.py)",
    "openssh-server": "sshd in the persistent VM (ssh -p 2222 root@localhost)",
    "openssh-client": "ssh/scp into the persistent VM",
    "file": "the spec's `file` step",
    "bsdextrautils": "the spec's `hexdump` step",
    "python3-venv": "the virtualenv",
    "python3-dev": "building Python packages with C extensions",
    "chromium": "rendering report.html in tests",
    "dpkg-dev": "dpkg-deb, to unpack the guest kernel package",
    "xz-utils": "unpacking Debian packages",
    "linux-source-6.1": "scripts/checkpatch.pl for the kernel style check",
    "linux-headers-amd64": "headers of the current Debian kernel, to build vexfs.ko",
    "zstd": "unpacking the 6.12 kernels' vmlinux (zstd-compressed) for a fast PVH boot",
    "dkms": "building vexfs.ko from the vexfs-dkms package (tests/vm/test_packages.py)",
    "python3-click": "vexfs-tools package dependency (installed in a guest by a VM test)",
    "python3-numpy": "vexfs-tools package dependency (installed in a guest by a VM test)",
    "python3-crc32c": "vexfs-tools package dependency (installed in a guest by a VM test)",
    "dataset-fashion-mnist": "real data for `vexfs bench ann` (ann-benchmarks fashion-mnist-784)",
}

log = logging.getLogger("bootstrap")


def missing_packages(names: list[str]) -> list[str]:
    missing = []
    for name in names:
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", name],
            capture_output=True, text=True, check=False,
        )
        if "install ok installed" not in result.stdout:
            missing.append(name)
    return missing


def ensure_apt() -> None:
    missing = missing_packages(list(APT_PACKAGES))
    if not missing:
        log.info("apt: all %d packages present", len(APT_PACKAGES))
        return
    log.info("apt: installing %d packages: %s (full log: %s)", len(missing), " ".join(missing),
             APT_LOG.relative_to(REPO))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    started = time.monotonic()
    quiet_run(sudo + ["apt-get", "-o", "DPkg::Lock::Timeout=900", "update", "-qq"], env=env,
              what="apt-get update")
    quiet_run(sudo + ["apt-get", "-o", "DPkg::Lock::Timeout=900", "install", "-y", "-qq",
                      "--no-install-recommends", *missing], env=env, what="apt-get install")
    log.info("apt: done in %.0f s", time.monotonic() - started)


def quiet_run(cmd: list[str], what: str, env: dict[str, str] | None = None) -> None:
    """Run `cmd` with its output appended to logs/bootstrap.log (dpkg prints
    hundreds of lines); on failure show the log's tail and raise."""
    APT_LOG.parent.mkdir(parents=True, exist_ok=True)
    with open(APT_LOG, "a", encoding="utf-8", errors="replace") as logf:
        logf.write(f"\n$ {' '.join(cmd)}\n")
        logf.flush()
        proc = subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, check=False)
    if proc.returncode != 0:
        tail = APT_LOG.read_text(errors="replace").splitlines()[-30:]
        log.error("%s failed (exit %d); last lines of %s:\n%s", what, proc.returncode, APT_LOG,
                  "\n".join(tail))
        raise subprocess.CalledProcessError(proc.returncode, cmd)


def pyproject_digest() -> str:
    return hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()


def ensure_venv() -> None:
    python = VENV / "bin" / "python"
    if not python.exists():
        log.info("venv: creating %s", VENV)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    digest = pyproject_digest()
    if STAMP.exists() and STAMP.read_text().strip() == digest:
        log.info("venv: up to date")
        return
    log.info("venv: installing vexfs[test] (editable; full log: %s)", APT_LOG.relative_to(REPO))
    started = time.monotonic()
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]
    quiet_run(pip + ["install", "-U", "pip"], what="pip install -U pip")
    # compat mode: a plain .pth path entry, no import-hook finder; every
    # Python start in the VM guest (over 9p) pays for the finder otherwise.
    quiet_run(pip + ["install", "--config-settings", "editable_mode=compat",
                     "-e", f"{REPO}[test]"], what="pip install vexfs[test]")
    log.info("venv: done in %.0f s", time.monotonic() - started)
    STAMP.write_text(digest + "\n")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="bootstrap: %(message)s")
    if shutil.which("apt-get") is None:
        log.error("this bootstrap expects Debian (apt-get); install the packages in "
                  "tools/bootstrap.py by hand")
        return 1
    ensure_apt()
    ensure_venv()
    return 0


if __name__ == "__main__":
    sys.exit(main())
