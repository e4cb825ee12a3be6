"""The Debian packages, installed in a guest as an administrator would.

`tools/mkdeb.py` (= `make deb`) builds vexfs-dkms and vexfs-tools on the
host; a fresh VM (host root over 9p, with writable overlays on /usr and the
guest kernel's /lib/modules/<ver> so dpkg, DKMS and depmod can write) runs
`dpkg -i` on both. Then, with the checkout's .venv out of PATH:

- DKMS has built vexfs.ko against the guest kernel's own headers and
  installed it under /lib/modules/<ver>/updates/dkms; `modprobe vexfs`
  loads that module (modinfo -n says which file) and registers the fs;
- S4's steps with the installed tools: `mkfs -t vexfs` (finds
  /usr/sbin/mkfs.vexfs the way it finds mkfs.ext4), mount -t vexfs,
  write and read back a file, umount, `fsck -t vexfs -n` clean (exit 0),
  remount and the data is still there, `vexfs --version` from /usr/bin;
- every version number (packages, modinfo, tools) is kernel/VERSION;
- `dpkg -r` removes both and DKMS forgets the module.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"  # no .venv: the installed tools only


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "mkdeb.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    version = (REPO / "kernel" / "VERSION").read_text().strip()
    found = {name: out / f"{name}_{version}_all.deb" for name in ("vexfs-dkms", "vexfs-tools")}
    for path in found.values():
        assert path.is_file(), f"make deb did not build {path.name}: {sorted(out.iterdir())}"
    return found


@pytest.fixture(scope="module")
def mok(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A DKMS module-signing key pair, made on the host as DKMS makes it
    (`openssl req -x509 -newkey rsa:2048`, DER certificate). A machine that
    has used DKMS has one in /var/lib/dkms; the guest's /var is a fresh
    tmpfs, and generating the RSA key under TCG costs minutes."""
    out = tmp_path_factory.mktemp("mok")
    key, pub = out / "mok.key", out / "mok.pub"
    proc = subprocess.run(["openssl", "req", "-new", "-x509", "-nodes", "-days", "36500",
                           "-subj", "/CN=DKMS module signing key", "-newkey", "rsa:2048",
                           "-keyout", str(key), "-outform", "DER", "-out", str(pub)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return key, pub


# DKMS compiles vexfs.ko inside the TCG guest: 1709 s and 1790 s for `dpkg -i`
# on the shared 2-core machine at load 12-22, over 1800 s at load 32. Too
# long for every `make test`, so it runs when asked: VEXFS_PACKAGE_TEST=1
# (or `make test-packages`).
@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("VEXFS_PACKAGE_TEST") != "1",
                    reason="DKMS build under TCG takes ~10-30 min: VEXFS_PACKAGE_TEST=1 "
                           "(make test-packages) runs it")
def test_debs_install_build_and_work_in_guest(debs: dict[str, Path], mok: tuple[Path, Path],
                                             tmp_path: Path) -> None:
    from vexfs.vm.kernel import ensure_kernel
    from vexfs.vm.session import GuestVM

    version = (REPO / "kernel" / "VERSION").read_text().strip()
    kernel = ensure_kernel()  # headers too: DKMS builds against them
    with GuestVM(name="packages", log_dir=tmp_path, kernel=kernel, memory="2G",
                 cmdline_extra=["vexfs_overlay=usr,modules"], hang_timeout=600) as vm:
        env = {"PATH": SYSTEM_PATH}

        def sh(cmd: str, timeout: float = 300) -> tuple[int, str]:
            r = vm.run(cmd, env=env, timeout=timeout)
            return r.rc, (r.stdout + r.stderr).strip()

        for name, path in debs.items():
            vm.put_file(path, f"/tmp/{path.name}")
        vm.run("mkdir -p /var/lib/dkms", check=True)
        vm.put_file(mok[0], "/var/lib/dkms/mok.key", mode=0o600)
        vm.put_file(mok[1], "/var/lib/dkms/mok.pub")
        ncpu = vm.run("nproc").stdout.strip()
        started = time.monotonic()
        # DKMS runs make -j<nproc> itself (parallel_jobs)
        rc, out = sh("dpkg -i /tmp/vexfs-tools_*.deb /tmp/vexfs-dkms_*.deb 2>&1",
                     timeout=float(os.environ.get("VEXFS_PACKAGE_TIMEOUT", "3600")))
        install_s = time.monotonic() - started
        load = "/".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"dpkg -i (with the DKMS build in the guest, {ncpu} vCPUs): {install_s:.0f} s "
              f"(host load {load})")
        assert rc == 0, f"dpkg -i failed ({rc}):\n{out[-3000:]}"
        assert "generating self signed certificate" not in out, out  # our key was used

        kver = vm.run("uname -r").stdout.strip()
        assert kver == kernel.version
        rc, status = sh("dkms status vexfs")
        assert f"vexfs/{version}, {kver}, x86_64: installed" in status, status
        assert rc == 0 and "Warning" not in status and "No such file" not in status, status
        rc, ko = sh("modinfo -n vexfs")
        assert rc == 0 and ko.startswith(f"/lib/modules/{kver}/updates/dkms/vexfs.ko"), ko
        rc, info = sh("modinfo -F version vexfs; modinfo -F vermagic vexfs")
        assert info.split()[0] == version and info.split()[1] == kver, info

        rc, out = sh("modprobe vexfs && grep -w vexfs /proc/filesystems && lsmod | grep -w ^vexfs")
        assert rc == 0, f"modprobe vexfs: {out}"

        # S4's steps with the installed tools, found the way ext4's are.
        # dash's `command -v` answers for its first argument only
        rc, which = sh("for c in mkfs.vexfs fsck.vexfs vexfs; do command -v $c; done")
        assert which.split() == ["/usr/sbin/mkfs.vexfs", "/usr/sbin/fsck.vexfs", "/usr/bin/vexfs"], which
        rc, out = sh("head -1 /usr/sbin/mkfs.vexfs; vexfs --version")
        assert rc == 0 and "/usr/bin/python3" in out and version in out, out
        steps = [
            "dd if=/dev/zero of=/tmp/pkg.img bs=1M count=64 status=none",
            # loop is a module in Debian's kernel: no /dev/loop0 before it loads
            "modprobe loop && losetup /dev/loop0 /tmp/pkg.img",
            "mkfs -t vexfs -L pkgtest /dev/loop0",
            "mkdir -p /mnt/pkg && mount -t vexfs /dev/loop0 /mnt/pkg",
            "grep ' /mnt/pkg vexfs ' /proc/mounts",
            "echo 'installed tools' > /mnt/pkg/hello && mkdir /mnt/pkg/dir && sync",
            "umount /mnt/pkg",
            "fsck -t vexfs -n /dev/loop0",
            "mount -t vexfs /dev/loop0 /mnt/pkg && test \"$(cat /mnt/pkg/hello)\" = 'installed tools'"
            " && test -d /mnt/pkg/dir",
            "umount /mnt/pkg && losetup -d /dev/loop0",
            "modprobe -r vexfs && ! grep -qw vexfs /proc/filesystems",
        ]
        for step in steps:
            rc, out = sh(step)
            assert rc == 0, f"`{step}` failed ({rc}): {out}"

        rc, out = sh("dpkg -r vexfs-dkms vexfs-tools 2>&1", timeout=600)
        assert rc == 0, out
        assert "not empty so not removed" not in out, out  # prerm's py3clean ran
        rc, status = sh("dkms status vexfs; command -v mkfs.vexfs || echo gone; "
                        "test -e /usr/lib/python3/dist-packages/vexfs || echo nodir")
        assert "installed" not in status and status.endswith("gone\nnodir"), status
        assert not vm.watch.crashed, vm.watch.crashes
